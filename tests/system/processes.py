"""A real `prefect server start`, `router-distill serve` and `prefect worker start`, each in its
own process group.

All get a private PREFECT_HOME and ROUTER_DISTILL_HOME under a temporary folder; every process
started here is stopped (SIGTERM, then SIGKILL) when the context exits, or earlier by `stop_one`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent
STARTUP_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RetryBusy(httpx.HTTPTransport):
    """Retry 503s as Prefect's own client does: SQLite's 'database is locked' surfaces as 503."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(6):
            response = super().handle_request(request)
            if response.status_code != 503:
                return response
            response.close()
            time.sleep(0.5 * 2**attempt)
        return response


@dataclass
class Stack:
    """A running server (and optionally a serve process) and the environment to reach them."""

    root: Path
    url: str
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)  # pid -> log name
    stopped: list[subprocess.Popen[bytes]] = field(default_factory=list)  # by stop_one

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def api(self) -> httpx.Client:
        """An HTTP client for the server's REST API."""
        return httpx.Client(base_url=self.api_url, timeout=30, transport=RetryBusy())

    @property
    def home(self) -> Path:
        return Path(self.env["ROUTER_DISTILL_HOME"])

    def start(
        self,
        name: str,
        *args: str,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a process logging to <root>/<name>.log; `env` overrides the stack's variables."""
        log = (self.root / f"{name}.log").open("wb")
        process = subprocess.Popen(
            args,
            env={**self.env, **(env or {})},
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        self.names[process.pid] = name
        return process

    def attempt(
        self, *args: str, cwd: Path | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run a command to completion, whatever its exit code."""
        return subprocess.run(
            args,
            env=self.env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 120) -> str:
        done = self.attempt(*args, cwd=cwd, timeout=timeout)
        assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_until(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    name = self.names.get(process.pid, "server")
                    raise AssertionError(
                        f"{process.args} exited with {process.returncode} while waiting for "
                        f"{what}:\n{self.log('server')[-3000:]}\n{self.log(name)[-3000:]}"
                    )
            if check():
                return
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def process(self, name: str) -> subprocess.Popen[bytes]:
        """The running process started under this log name."""
        [found] = [p for p in self.processes if self.names.get(p.pid) == name]
        return found

    def stop_one(self, process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> float:
        """Stop one process group before the others; returns the seconds it took to exit.

        It leaves `processes` (whose exit would fail `wait_until`) for `stopped`.
        """
        started = time.monotonic()
        _terminate(process, sig)
        self.processes.remove(process)
        self.stopped.append(process)
        return time.monotonic() - started

    def stop(self) -> None:
        """Newest first, one at a time, so the server outlives the processes that talk to it."""
        for process in reversed(self.processes):
            _terminate(process, signal.SIGTERM)


def _terminate(process: subprocess.Popen[bytes], sig: int) -> None:
    """`sig` to the process group, SIGKILL if it is still alive 20 s later."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _deployment_count(api_url: str) -> int:
    try:
        response = httpx.post(f"{api_url}/deployments/count", json={}, timeout=5)
    except httpx.HTTPError:
        return 0
    return int(response.json()) if response.status_code == 200 else 0


@contextmanager
def prefect_server(root: Path) -> Iterator[Stack]:
    """`prefect server start` on 127.0.0.1 with its own PREFECT_HOME."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ROUTER_DISTILL_"))}
    env.update(
        PREFECT_HOME=str(root / "prefect-home"),
        PREFECT_API_URL=f"{url}/api",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5",  # default 60: schedule runs sooner
        PYTHONUNBUFFERED="1",  # logs reach the files as they are written (tests read them)
        PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT="false",
        ROUTER_DISTILL_HOME=str(root / "home"),
    )
    stack = Stack(root=root, url=url, env=env)
    try:
        stack.start(
            "server",
            str(BIN / "prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        )
        stack.wait_until("the Prefect server", lambda: _healthy(url), STARTUP_TIMEOUT_S)
        yield stack
    finally:
        stack.stop()


def serve_deployments(stack: Stack, expected: int = 4) -> subprocess.Popen[bytes]:
    """`router-distill serve` against the stack's server; returns once it has registered."""
    process = stack.start("serve", str(BIN / "router-distill"), "serve", "--limit", "1")
    stack.wait_until(
        "the served deployments",
        lambda: _deployment_count(stack.api_url) >= expected and "polling" in stack.log("serve"),
        STARTUP_TIMEOUT_S,
    )
    return process


def _workers(api_url: str, pool: str) -> list[dict[str, Any]]:
    try:
        response = httpx.post(f"{api_url}/work_pools/{pool}/workers/filter", json={}, timeout=5)
    except httpx.HTTPError:
        return []
    return list(response.json()) if response.status_code == 200 else []


def start_worker(
    stack: Stack, pool: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`prefect worker start --pool POOL`; returns once the worker has registered with the pool."""
    process = stack.start(
        "worker",
        str(BIN / "prefect"),
        "worker",
        "start",
        "--pool",
        pool,
        "--name",
        "system-test-worker",
        "--limit",
        "1",
        env={"PREFECT_WORKER_QUERY_SECONDS": "2", **(env or {})},  # default 10 s between polls
    )
    stack.wait_until(
        f"a worker on {pool}",
        lambda: any(w["name"] == "system-test-worker" for w in _workers(stack.api_url, pool)),
        STARTUP_TIMEOUT_S,
    )
    return process
