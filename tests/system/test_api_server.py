"""`router-distill api` as a real server on 127.0.0.1, driven over HTTP: answers, a promotion
under traffic, bad input, a graceful shutdown that drains an in-flight request."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from intent_router.serving import load_router
from intent_router.storage import DirectoryStore
from router_distill.api import bind, create_app, server
from tests.support.champions import promote_bedrock, promote_local, trained_student
from tests.support.fake_bedrock import FakeBedrock
from tests.unit.test_fake_bedrock import active_deployment

ROOT = Path(__file__).resolve().parents[2]


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, port: int) -> None:
        self.http = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self.http.request(method, path, body=body, headers=headers)
        response = self.http.getresponse()
        data = response.read()
        kind = response.getheader("content-type", "")
        return response.status, json.loads(data) if "json" in kind else data.decode()

    def route(self, payload: Any) -> tuple[int, Any]:
        return self.request("POST", "/v1/route", json.dumps(payload).encode())


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, DirectoryStore]]:
    home = tmp_path / "home"
    store = DirectoryStore(home / "store")
    promote_local(store, "m-1")
    env = {**os.environ, "ROUTER_DISTILL_HOME": str(home), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "router_distill", "api", "--port", "0", "--reload-interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()  # printed once the socket listens
    if not line.startswith("listening on http://127.0.0.1:"):
        process.kill()
        raise AssertionError(f"no listening line: {line!r} {process.stderr.read()!r}")  # type: ignore[union-attr]
    port = int(line.rsplit(":", 1)[1])
    try:
        yield process, port, store
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def test_the_real_server_answers_swaps_on_promotion_and_stops_cleanly(
    api: tuple[subprocess.Popen[bytes], int, DirectoryStore],
) -> None:
    process, port, store = api
    connection = Connection(port)
    assert connection.request("GET", "/healthz") == (200, {"status": "ok"})
    status, ready = connection.request("GET", "/readyz")
    assert status == 200 and ready["routers"]["default"]["model_id"] == "local-model/m-1"
    status, answer = connection.route({"query": "sound of rain on a tin roof"})
    assert status == 200 and answer["model_id"] == "local-model/m-1"
    assert max(answer["weights"], key=answer["weights"].get) == "audio"

    # bad input over the wire: 4xx JSON, never a 500
    for body, expected in [
        (b"{oops", 400),
        (b'{"query": "\xff\xfe"}', 400),
        (json.dumps({"query": "x" * 100_000}).encode(), 422),
        (json.dumps({"queries": ["rain"] * 10_000}).encode(), 413),
        (json.dumps({"query": "rain", "router": "nope"}).encode(), 404),
    ]:
        status, error = connection.request("POST", "/v1/route", body)
        assert status == expected and error["error"]

    # a promotion under traffic: every request answers, the new model within the interval
    promote_local(store, "m-2", student=trained_student(["crickets chirping"] * 4))
    seen: list[str] = []
    for _ in range(200_000):  # bounded: the reload interval is 0.2 s
        status, answer = connection.route({"query": "rain"})
        assert status == 200
        seen.append(answer["model_id"])
        if answer["model_id"] == "local-model/m-2":
            break
    assert seen[-1] == "local-model/m-2"
    assert set(seen) <= {"local-model/m-1", "local-model/m-2"}
    status, routers = connection.request("GET", "/v1/routers")
    assert routers["routers"][0]["model_id"] == "local-model/m-2"
    metrics = connection.request("GET", "/metrics")[1]
    assert 'router_reloads_total{router="default"} 1.0' in metrics

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0


class DrainObserved:
    """A fake Bedrock model that holds its answer until released, and a server that says when
    its shutdown started."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.shutdown_started = threading.Event()


def test_a_graceful_shutdown_lets_the_in_flight_request_finish(tmp_path: Path) -> None:
    import uvicorn

    observed = DrainObserved()

    def responder(model_id: str, system: str, user: str) -> str:
        observed.entered.set()
        assert observed.release.wait(30)
        weights = {"visual": 0.1, "audio": 0.7, "transcription": 0.1, "metadata": 0.1}
        return json.dumps({**weights, "reasoning": "held"})

    fake = FakeBedrock(responder=responder, job_polls_to_finish=1, deployment_polls_to_active=0)
    store = DirectoryStore(tmp_path / "store")
    promote_bedrock(store, active_deployment(fake))
    router = load_router("default", store=store, runtime_factory=lambda *_: fake.runtime)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app_server = server(create_app({"default": router}), drain_seconds=30)

    original = uvicorn.Server.shutdown

    async def observed_shutdown(self: uvicorn.Server, sockets: Any = None) -> None:
        observed.shutdown_started.set()
        await original(self, sockets)

    app_server.shutdown = observed_shutdown.__get__(app_server)  # type: ignore[method-assign]
    serving = threading.Thread(target=app_server.run, kwargs={"sockets": [sock]})
    serving.start()
    answers: list[tuple[int, Any]] = []
    try:
        # the socket already listens: the request waits in its backlog until the server runs
        caller = threading.Thread(
            target=lambda: answers.append(Connection(port).route({"query": "sound of rain"}))
        )
        caller.start()
        assert observed.entered.wait(30)  # the request is in flight, held by the model
        app_server.should_exit = True
        assert observed.shutdown_started.wait(30)
        observed.release.set()
        caller.join(timeout=30)
        serving.join(timeout=30)
    finally:
        observed.release.set()
        app_server.should_exit = True
        serving.join(timeout=30)
        sock.close()
    assert not serving.is_alive()
    assert len(answers) == 1
    status, answer = answers[0]
    assert status == 200 and answer["reasoning"] == "held" and answer["fallback"] is False


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., int]]:
    """Start a real uvicorn server in a thread on a local champion, with create_app options;
    returns its port. Stopped at the end of the test."""
    store = DirectoryStore(tmp_path / "store")
    promote_local(store, "m-1")
    running: list[tuple[Any, threading.Thread, socket.socket]] = []

    def start(**options: Any) -> int:
        router = load_router("default", store=store, watch=False)
        sock = bind("127.0.0.1", 0)
        app_server = server(create_app({"default": router}, **options), drain_seconds=2)
        thread = threading.Thread(target=app_server.run, kwargs={"sockets": [sock]})
        thread.start()
        running.append((app_server, thread, sock))
        return int(sock.getsockname()[1])

    yield start
    for app_server, thread, sock in running:
        app_server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _raw_exchange(port: int, data: bytes, timeout_s: float) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as client:
        client.sendall(data)
        received = b""
        while chunk := client.recv(65536):  # until the server closes the connection
            received += chunk
    return received


def test_a_body_that_never_arrives_is_a_408_and_the_connection_closes(
    start_server: Callable[..., int],
) -> None:
    port = start_server(body_timeout_s=0.5)
    started = time.monotonic()
    lying = b'POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"query": "rain"}'
    received = _raw_exchange(port, lying, timeout_s=20)  # a socket timeout fails the test
    assert time.monotonic() - started < 10
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert b"connection: close" in head.lower()
    assert json.loads(body) == {"error": "request body did not arrive within 0.5 s (17 bytes came)"}
