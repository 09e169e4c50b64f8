"""`router-distill bench --api`: the HTTP service under load, measured on this machine.

It copies the promoted champion of `--router` (from ROUTER_DISTILL_HOME) into a temporary store
and measures, in order:

1. single-query requests (`POST /v1/route {"query": ...}`) to a real `router-distill api`
   subprocess (one uvicorn worker, the local student) over `--api-connections` keep-alive
   connections for `--api-seconds`: throughput, client-measured p50/p95/p99, errors (non-200
   responses and socket errors). One connection alone first, for a sixth of that time, gives
   the latency without queueing.
2. halfway through that run, a promotion in the temporary store of a second model id (a copy of
   the artifact under another name): failed requests around it, when the new model id first
   answers and when the old one last answers, against `--reload-interval`.
3. batches of 1,000 queries (`{"queries": [...]}`) for `--api-batch-seconds`: queries/s; then
   (`--api-mixed-seconds`) single queries while one more connection sends such batches.
4. in this process, on one core: `Router.route` per query (p50/p99) and `route_many` of 1,000.
5. a Bedrock champion on the validated fake (tests/support/fake_bedrock.py) whose Converse
   sleeps `--api-bedrock-sleep-ms` and is throttled `--api-bedrock-throttles-per-s` times a
   second, served over HTTP in this process (uvicorn in a thread) for `--api-bedrock-seconds`
   with `--api-bedrock-connections`: latency, throughput, failed requests and the throttled
   calls that fell back (from the answers and from GET /metrics).

The load generator is a closed loop of asyncio connections speaking raw HTTP/1.1 keep-alive:
each sends its next request when it has read the previous response, so latency is the service
time plus the queueing that `connections` requests in flight cause. The queries are the
package's sample search log (and the repository's hand-written set when present), shuffled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import http.client
import itertools
import json
import math
import os
import queue
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from router_distill.bench import REALISTIC, Targets, _one_core, comparison_table, machine
from router_distill.output import positive_number, whole_number

T = TypeVar("T")

ROUTE_PATH = "/v1/route"
BATCH_SIZE = 1_000
OLD, NEW, OTHER = 0, 1, 2  # which model answered, as tagged by the promotion run
STARTUP_TIMEOUT_S = 120.0

# (figure, path in the results, target, higher is better); the reload-interval target is set
# from the run's own --reload-interval (see `api_targets`).
API_TARGETS: Targets = (
    ("single: requests/s", ("single", "req_per_s"), 2_000, True),
    ("single: p50 ms", ("single", "p50_ms"), 2, False),
    ("single: p95 ms", ("single", "p95_ms"), None, False),
    ("single: p99 ms", ("single", "p99_ms"), 10, False),
    ("single: errors", ("single", "errors"), 0, False),
    ("single, one connection: p50 ms", ("single_one_connection", "p50_ms"), None, False),
    ("single, one connection: p99 ms", ("single_one_connection", "p99_ms"), None, False),
    ("promotion: failed requests", ("promotion", "failed_requests_around_promotion"), 0, False),
    ("promotion: new model answers after, s", ("promotion", "new_model_after_s"), None, False),
    ("promotion: last old answer after, s", ("promotion", "last_old_answer_after_s"), None, False),
    ("batch of 1,000: queries/s", ("batch", "queries_per_s"), 50_000, True),
    ("batch of 1,000: p50 ms per request", ("batch", "p50_ms"), None, False),
    ("single beside batches: requests/s", ("mixed", "req_per_s"), None, True),
    ("single beside batches: p50 ms", ("mixed", "p50_ms"), None, False),
    ("single beside batches: p99 ms", ("mixed", "p99_ms"), None, False),
    ("in process: Router.route p50 ms", ("in_process", "route_p50_ms"), None, False),
    ("in process: Router.route p99 ms", ("in_process", "route_p99_ms"), None, False),
    (
        "in process: route_many(1,000) queries/s",
        ("in_process", "route_many_queries_per_s"),
        None,
        True,
    ),
    ("bedrock fake: requests/s", ("bedrock", "req_per_s"), None, True),
    ("bedrock fake: p50 ms", ("bedrock", "p50_ms"), None, False),
    ("bedrock fake: p95 ms", ("bedrock", "p95_ms"), None, False),
    ("bedrock fake: p99 ms", ("bedrock", "p99_ms"), None, False),
    ("bedrock fake: failed requests", ("bedrock", "errors"), 0, False),
    (
        "bedrock fake: throttled, fell back (answers)",
        ("bedrock", "throttled_fallback_answers"),
        None,
        True,
    ),
    (
        "bedrock fake: throttled, fell back (/metrics)",
        ("bedrock", "throttled_fallbacks_metric"),
        None,
        True,
    ),
)


# -- percentiles -----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), interpolated linearly between the closest ranks (numpy's
    default). ValueError for no values or q outside 0-100."""
    return _percentile_sorted(sorted(values), q)


def _percentile_sorted(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100 or math.isnan(q):
        raise ValueError(f"percentile {q} is outside 0-100")
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(seconds: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99/max in milliseconds (None without values)."""
    if not seconds:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(seconds)
    return {
        "p50_ms": round(_percentile_sorted(ordered, 50) * 1000, 3),
        "p95_ms": round(_percentile_sorted(ordered, 95) * 1000, 3),
        "p99_ms": round(_percentile_sorted(ordered, 99) * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


# -- the load generator ----------------------------------------------------------------------


class ProtocolError(ValueError):
    """A response that is not HTTP/1.x."""


Inspect = Callable[[float, float, int, bytes], None]
"""inspect(received_at, latency_s, status, body): called for every response read."""


@dataclass
class LoadResult:
    """What the closed loop saw: counts, client-measured latency of the 200s, error times."""

    connections: int
    seconds: float = 0.0  # first request sent to the last response read
    statuses: Counter[int] = field(default_factory=Counter)
    socket_errors: int = 0
    latencies_s: list[float] = field(default_factory=list)  # of the 200 responses
    error_times: list[float] = field(default_factory=list)  # perf_counter of every error
    error_samples: list[str] = field(default_factory=list)
    client_cpu_s: float = 0.0  # this process's CPU time over the run (all threads)

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def responses(self) -> int:
        return sum(self.statuses.values())

    @property
    def errors(self) -> int:
        return self.responses - self.ok + self.socket_errors

    def figures(self) -> dict[str, Any]:
        rate = self.ok / self.seconds if self.seconds > 0 else 0.0
        return {
            "connections": self.connections,
            "seconds": round(self.seconds, 2),
            "requests": self.responses + self.socket_errors,
            "ok": self.ok,
            "errors": self.errors,
            "socket_errors": self.socket_errors,
            "statuses": {str(code): count for code, count in sorted(self.statuses.items())},
            "req_per_s": round(rate, 1),
            **latency_summary(self.latencies_s),
            "client_cpu_pct": round(100 * self.client_cpu_s / self.seconds, 1)
            if self.seconds > 0
            else None,
            "error_samples": self.error_samples,
        }


def http_request(host: str, port: int, path: str, body: bytes) -> bytes:
    """The bytes of one keep-alive HTTP/1.1 POST of a JSON body."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep the connection) of one HTTP/1.x response."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, _, header_block = head[:-4].partition(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ProtocolError(f"not an HTTP/1 status line: {status_line[:80]!r}")
    status = int(parts[1])
    keep_alive = parts[0] == b"HTTP/1.1"
    length: int | None = None
    chunked = False
    for line in header_block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            token = value.strip().lower()
            keep_alive = token != b"close" and (keep_alive or token == b"keep-alive")
    if chunked:
        body = await _read_chunked(reader)
    elif length is not None:
        body = await reader.readexactly(length)
    else:  # the body runs to the end of the connection
        body = await reader.read()
        keep_alive = False
    return status, body, keep_alive


async def generate_load(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    connections: int,
    seconds: float,
    inspect: Inspect | None = None,
    during: Callable[[], Awaitable[None]] | None = None,
    request_timeout_s: float = 30.0,
    max_error_samples: int = 5,
) -> LoadResult:
    """Send `requests` (whole HTTP requests, taken in turn) over `connections` keep-alive
    connections for `seconds`, each connection sending its next request when it has read the
    previous response. A socket error closes the connection (the next request reconnects);
    `during` runs alongside (e.g. a promotion midway). Requests in flight at the deadline are
    finished and counted."""
    if not requests:
        raise ValueError("no requests to send")
    if connections < 1 or seconds <= 0:
        raise ValueError("connections must be >= 1 and seconds > 0")
    result = LoadResult(connections=connections)
    turn = itertools.count()
    count = len(requests)
    clock = time.perf_counter
    started = clock()
    cpu_started = time.process_time()
    deadline = started + seconds
    last = started

    def failed(at: float, what: str) -> None:
        result.error_times.append(at)
        if len(result.error_samples) < max_error_samples:
            result.error_samples.append(what)

    async def connection() -> None:
        nonlocal last
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            while clock() < deadline:
                if writer is None or reader is None:
                    try:
                        async with asyncio.timeout(request_timeout_s):
                            reader, writer = await asyncio.open_connection(host, port)
                    except (OSError, TimeoutError) as error:
                        result.socket_errors += 1
                        failed(clock(), f"connect: {type(error).__name__}: {error}")
                        await asyncio.sleep(0.05)  # a refused connection: do not spin
                        continue
                request = requests[next(turn) % count]
                sent = clock()
                try:
                    async with asyncio.timeout(request_timeout_s):
                        writer.write(request)
                        status, body, keep_alive = await read_response(reader)
                except (
                    OSError,
                    TimeoutError,
                    EOFError,  # asyncio.IncompleteReadError
                    asyncio.LimitOverrunError,
                    ValueError,  # ProtocolError, a bad number in a header
                ) as error:
                    result.socket_errors += 1
                    failed(clock(), f"socket: {type(error).__name__}: {error}")
                    writer.close()
                    reader = writer = None
                    continue
                received = clock()
                last = max(last, received)
                result.statuses[status] += 1
                if status == 200:
                    result.latencies_s.append(received - sent)
                else:
                    failed(received, f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}")
                if inspect is not None:
                    inspect(received, received - sent, status, body)
                if not keep_alive:
                    writer.close()
                    reader = writer = None
        finally:
            if writer is not None:
                writer.close()

    side = asyncio.ensure_future(during()) if during is not None else None
    try:
        await asyncio.gather(*(connection() for _ in range(connections)))
    finally:
        if side is not None and not side.done():
            side.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await side
    if side is not None and not side.cancelled():
        side.result()  # an error in `during` is the caller's
    result.seconds = last - started
    result.client_cpu_s = time.process_time() - cpu_started
    return result


def run_async(main: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on a fresh event loop (uvloop when installed)."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        pass
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_as_coroutine(main))


async def _as_coroutine(main: Callable[[], Awaitable[T]]) -> T:
    return await main()


def http_get(host: str, port: int, path: str, timeout_s: float = 10.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


_FALLBACKS = re.compile(r"^router_fallbacks_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$", re.M)


def fallbacks_metric(text: str, reason: str, router: str | None = None) -> float:
    """`router_fallbacks_total` for one reason (and router) in Prometheus text; 0 when absent."""
    total = 0.0
    for match in _FALLBACKS.finditer(text):
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match["labels"]))
        if labels.get("reason") == reason and (router is None or labels.get("router") == router):
            total += float(match["value"])
    return total


# -- queries ---------------------------------------------------------------------------------


def bench_queries(seed: int = 0) -> list[str]:
    """The package's sample search log (its malformed lines skipped, as `--traffic` skips
    them), plus the repository's hand-written queries when present: distinct, valid,
    shuffled."""
    from intent_router.text import check_query

    texts: list[str] = []
    log = resources.files("intent_router") / "data" / "traffic" / "default-search-log.jsonl"
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("query"), str):
            texts.append(row["query"])
    if REALISTIC.exists():
        with REALISTIC.open(encoding="utf-8") as rows:
            texts += [row["query"] for row in csv.DictReader(rows)]
    valid: dict[str, None] = {}
    for text in texts:
        with contextlib.suppress(ValueError):
            valid[check_query(text)] = None
    shuffled = list(valid)
    random.Random(seed).shuffle(shuffled)
    return shuffled


def batches(queries: Sequence[str], size: int, count: int) -> list[list[str]]:
    """`count` different batches of `size` queries, cycling through `queries`."""
    cycled = list(itertools.islice(itertools.cycle(queries), size + len(queries)))
    step = max(1, len(queries) // max(1, count))
    return [cycled[(i * step) % len(queries) :][:size] for i in range(count)]


def _dumps(payload: Any) -> bytes:
    import orjson

    return orjson.dumps(payload)


# -- the api subprocess ----------------------------------------------------------------------


@dataclass
class ApiProcess:
    process: subprocess.Popen[str]
    host: str
    port: int
    log: Path

    def cpu_seconds(self) -> float | None:
        """User + system CPU of the server process so far (Linux /proc), None elsewhere."""
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def api_process(
    home: Path, router: str, reload_interval_s: float, log: Path
) -> Iterator[ApiProcess]:
    """`router-distill api --port 0` on 127.0.0.1 serving `home`'s store; stopped (SIGTERM,
    then SIGKILL) on exit. RuntimeError when it does not announce its address or get ready."""
    env = {
        **os.environ,
        "ROUTER_DISTILL_HOME": str(home),
        "PREFECT_HOME": str(home / "prefect"),
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        sys.executable,
        "-m",
        "router_distill",
        "api",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--router",
        router,
        "--reload-interval",
        str(reload_interval_s),
    ]
    with log.open("w", encoding="utf-8") as errors:
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=errors, text=True
        )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, name="api-stdout", daemon=True).start()
    try:
        address = _announced(lines, log)
        host, port = address
        _wait_ready(process, host, port, log)
        yield ApiProcess(process, host, port, log)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _tail(log: Path) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
    except OSError:
        return ""


def _announced(lines: queue.Queue[str | None], log: Path) -> tuple[str, int]:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            raise RuntimeError(f"router-distill api did not start: {_tail(log)}") from None
        if line is None:
            raise RuntimeError(f"router-distill api exited: {_tail(log)}")
        found = re.search(r"listening on http://\[?([^\]/]+?)\]?:(\d+)", line)
        if found:
            return found[1], int(found[2])


def _wait_ready(process: subprocess.Popen[str], host: str, port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"router-distill api exited: {_tail(log)}")
        with contextlib.suppress(OSError):
            if http_get(host, port, "/readyz", timeout_s=2)[0] == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"router-distill api never got ready: {_tail(log)}")


# -- champions -------------------------------------------------------------------------------


class BenchRefused(Exception):
    """The bench cannot run (the message says why, on one line)."""


@dataclass(frozen=True)
class Champions:
    """The user's champion copied into a temporary store, and the second model to promote."""

    home: Path
    record: Any  # ChampionRecord
    second: Any  # ChampionRecord (the same artifact under another model id)


def copy_champion(router: str, home: Path) -> Champions:
    """Copy `router`'s champion (a local student) from ROUTER_DISTILL_HOME into `home`'s store,
    promoted there, with a copy of its artifact under a second model id (not promoted yet)."""
    from intent_router.backends.local import LocalBackend
    from intent_router.errors import UserInputError
    from intent_router.registry import ChampionRegistry, check_router_name, now_iso
    from intent_router.serving import open_store, serving_backend
    from intent_router.settings import home as user_home
    from intent_router.storage import DirectoryStore

    try:
        check_router_name(router)
        root = user_home()
        store = open_store(None)
        record = ChampionRegistry(store, router).current()
    except UserInputError as error:
        raise BenchRefused(str(error)) from None
    if record is None:
        raise BenchRefused(
            f"--api needs a promoted champion for router {router!r} in ROUTER_DISTILL_HOME "
            f"({root}); none found: run `router-distill run` first"
        )
    if serving_backend(record) != "local":
        raise BenchRefused(
            f"--api serves a local student; the champion of router {router!r} is the Bedrock "
            f"deployment {record.deployment_id} (the Bedrock path is measured on the fake)"
        )
    source = LocalBackend(store)
    artifact = store.read(source.artifact_path(record.model_id))
    if artifact is None:
        raise BenchRefused(
            f"the champion {record.model_id} of router {router!r} has no artifact at "
            f"{source.artifact_path(record.model_id)} in {root}"
        )
    target = DirectoryStore(home / "store")
    copied = LocalBackend(target)
    second_id = f"{record.model_id}-bench-b"
    target.write(copied.artifact_path(record.model_id), artifact)
    target.write(copied.artifact_path(second_id), artifact)
    ChampionRegistry(target, router).promote(record, note="router-distill bench --api")
    second = record.model_copy(
        update={
            "model_id": second_id,
            "deployment_id": f"{record.deployment_id}-bench-b",
            "run_id": f"{record.run_id}-bench-b",
            "promoted_at": now_iso(),
            "triggered_by": "bench",
        }
    )
    return Champions(home, record, second)


def promote(home: Path, record: Any) -> None:
    from intent_router.registry import ChampionRegistry
    from intent_router.storage import DirectoryStore

    ChampionRegistry(DirectoryStore(home / "store"), record.router).promote(
        record, note="router-distill bench --api: promotion under load"
    )


# -- figures ---------------------------------------------------------------------------------


def model_tagger(old_model: str, new_model: str, events: list[tuple[float, float, int]]) -> Inspect:
    """An `inspect` that records (received_at, latency, OLD/NEW/OTHER) of every 200 answer."""
    old_needle = b'"model_id":"' + old_model.encode() + b'"'
    new_needle = b'"model_id":"' + new_model.encode() + b'"'

    def inspect(received: float, latency: float, status: int, body: bytes) -> None:
        if status != 200:
            return
        tag = NEW if new_needle in body else OLD if old_needle in body else OTHER
        events.append((received, latency, tag))

    return inspect


def promotion_figures(
    events: Sequence[tuple[float, float, int]],
    error_times: Sequence[float],
    promoted_at: float,
    reload_interval_s: float,
    window_s: float = 5.0,
) -> dict[str, Any]:
    """When the new model first answered and the old one last answered (seconds after the
    promotion was written), failed requests from `window_s` before the promotion to `window_s`
    after the first new answer, and the latency around the swap."""
    new_at = [t for t, _, tag in events if tag == NEW]
    old_at = [t for t, _, tag in events if tag == OLD]
    first_new = min(new_at) if new_at else None
    last_old = max(old_at) if old_at else None
    window_end = (first_new if first_new is not None else promoted_at) + window_s
    failed = [t for t in error_times if promoted_at - window_s <= t <= window_end]
    around: list[float] = []
    if first_new is not None:
        around = [lat for t, lat, _ in events if abs(t - first_new) <= 0.5]
    after = None if first_new is None else round(first_new - promoted_at, 3)
    return {
        "reload_interval_s": reload_interval_s,
        "new_model_after_s": after,
        "last_old_answer_after_s": None if last_old is None else round(last_old - promoted_at, 3),
        "new_model_within_reload_interval": after is not None and after <= reload_interval_s,
        "old_answers_after_first_new": sum(
            1 for t in old_at if first_new is not None and t > first_new
        ),
        "answers_old_model": len(old_at),
        "answers_new_model": len(new_at),
        "answers_other_model": sum(1 for _, _, tag in events if tag == OTHER),
        "failed_requests_around_promotion": len(failed),
        "failure_window_s": window_s,
        "p99_ms_within_half_a_second_of_the_swap": latency_summary(around)["p99_ms"],
    }


def _cpu_pct(before: float | None, after: float | None, seconds: float) -> float | None:
    if before is None or after is None or seconds <= 0:
        return None
    return round(100 * (after - before) / seconds, 1)


def _machine_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of every core on the machine (Linux /proc/stat: all processes,
    those of other containers included), None elsewhere."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    ticks = [int(x) for x in first[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)


def measured(
    server_cpu: Callable[[], float | None], run: Callable[[], LoadResult]
) -> dict[str, Any]:
    """`run`'s figures with the CPU the server and this client used (% of one core) and how
    busy the whole machine was (cores): other work is the rest."""
    cpu_before, ticks_before = server_cpu(), _machine_ticks()
    result = run()
    cpu_after, ticks_after = server_cpu(), _machine_ticks()
    figures = result.figures()
    figures["server_cpu_pct"] = _cpu_pct(cpu_before, cpu_after, result.seconds)
    if ticks_before is not None and ticks_after is not None and ticks_after[1] > ticks_before[1]:
        share = (ticks_after[0] - ticks_before[0]) / (ticks_after[1] - ticks_before[1])
        busy = share * (os.cpu_count() or 1)
        figures["machine_busy_cores"] = round(busy, 2)
        if figures["server_cpu_pct"] is not None and figures["client_cpu_pct"] is not None:
            ours = (figures["server_cpu_pct"] + figures["client_cpu_pct"]) / 100
            figures["other_work_cores"] = round(max(0.0, busy - ours), 2)
    return figures


def bench_single(
    api: ApiProcess,
    queries: Sequence[str],
    champions: Champions,
    *,
    connections: int,
    seconds: float,
    reload_interval_s: float,
) -> dict[str, Any]:
    """Warm-up, one connection alone, then `connections` with a promotion halfway."""
    requests = [http_request(api.host, api.port, ROUTE_PATH, _dumps({"query": q})) for q in queries]

    async def warm() -> None:
        await generate_load(api.host, api.port, requests, connections=connections, seconds=2)

    run_async(warm)

    async def alone() -> LoadResult:
        return await generate_load(
            api.host, api.port, requests, connections=1, seconds=max(1.0, seconds / 6)
        )

    one = measured(api.cpu_seconds, lambda: run_async(alone))
    events: list[tuple[float, float, int]] = []
    marks: dict[str, float] = {}

    async def promote_midway() -> None:
        await asyncio.sleep(seconds / 2)
        loop = asyncio.get_running_loop()
        marks["start"] = time.perf_counter()
        await loop.run_in_executor(None, promote, champions.home, champions.second)
        marks["done"] = time.perf_counter()

    async def loaded() -> LoadResult:
        return await generate_load(
            api.host,
            api.port,
            requests,
            connections=connections,
            seconds=seconds,
            inspect=model_tagger(champions.record.model_id, champions.second.model_id, events),
            during=promote_midway,
        )

    results: list[LoadResult] = []

    def run() -> LoadResult:
        results.append(run_async(loaded))
        return results[-1]

    single = measured(api.cpu_seconds, run)
    single["distinct_queries"] = len(queries)
    promotion = promotion_figures(events, results[0].error_times, marks["done"], reload_interval_s)
    promotion["promote_call_s"] = round(marks["done"] - marks["start"], 3)
    promotion["old_model_id"] = champions.record.model_id
    promotion["new_model_id"] = champions.second.model_id
    status, body = http_get(api.host, api.port, "/v1/routers")
    if status == 200:
        served = json.loads(body)["routers"][0]
        promotion["serving_after_the_run"] = served["model_id"]
    return {"single_one_connection": one, "single": single, "promotion": promotion}


def bench_batch(
    api: ApiProcess, queries: Sequence[str], *, connections: int, seconds: float
) -> dict[str, Any]:
    bodies = [_dumps({"queries": b}) for b in batches(queries, BATCH_SIZE, 8)]
    requests = [http_request(api.host, api.port, ROUTE_PATH, b) for b in bodies]
    sizes: list[int] = []

    def inspect(received: float, latency: float, status: int, body: bytes) -> None:
        if status == 200:
            sizes.append(len(body))

    async def loaded() -> LoadResult:
        return await generate_load(
            api.host, api.port, requests, connections=connections, seconds=seconds, inspect=inspect
        )

    figures = measured(api.cpu_seconds, lambda: run_async(loaded))
    figures["queries_per_request"] = BATCH_SIZE
    figures["queries_per_s"] = round(figures["req_per_s"] * BATCH_SIZE)
    figures["request_body_bytes"] = round(statistics.median(len(b) for b in bodies))
    figures["response_body_bytes"] = round(statistics.median(sizes)) if sizes else None
    return figures


def bench_mixed(
    api: ApiProcess, queries: Sequence[str], *, connections: int, seconds: float
) -> dict[str, Any]:
    """Single queries on `connections` while one more connection sends 1,000-query batches:
    what a batch does to the single queries that share the worker."""
    single = [http_request(api.host, api.port, ROUTE_PATH, _dumps({"query": q})) for q in queries]
    batch = [
        http_request(api.host, api.port, ROUTE_PATH, _dumps({"queries": b}))
        for b in batches(queries, BATCH_SIZE, 8)
    ]

    async def both() -> list[LoadResult]:
        return list(
            await asyncio.gather(
                generate_load(api.host, api.port, single, connections=connections, seconds=seconds),
                generate_load(api.host, api.port, batch, connections=1, seconds=seconds),
            )
        )

    singles, batched = run_async(both)
    figures = singles.figures()
    figures["batch_connections"] = 1
    figures["batch_req_per_s"] = batched.figures()["req_per_s"]
    figures["batch_errors"] = batched.errors
    return figures


def bench_in_process(home: Path, router: str, queries: Sequence[str]) -> dict[str, Any]:
    """`Router.route` per query and `route_many` of 1,000, in this process on one core."""
    from intent_router.serving import load_router
    from intent_router.storage import DirectoryStore

    serving = load_router(router, store=DirectoryStore(home / "store"), watch=False)
    batch = batches(queries, BATCH_SIZE, 1)[0]
    restore = _one_core()
    try:
        serving.route_many(batch)  # warm, as a serving process is
        single: list[float] = []
        clock = time.perf_counter
        for query in itertools.islice(itertools.cycle(queries), 20_000):
            started = clock()
            serving.route(query)
            single.append(clock() - started)
        rates = []
        for _ in range(15):
            started = clock()
            serving.route_many(batch)
            rates.append(BATCH_SIZE / (clock() - started))
    finally:
        restore()
        serving.close()
    summary = latency_summary(single)
    return {
        "model_id": serving.champion.model_id if serving.champion else None,
        "route_calls": len(single),
        "route_p50_ms": summary["p50_ms"],
        "route_p99_ms": summary["p99_ms"],
        "route_many_queries_per_s": round(statistics.median(rates)),
        "route_many_passes": len(rates),
        "one_core": hasattr(os, "sched_setaffinity"),
    }


def _fake_deployment(fake: Any) -> tuple[str, str]:
    """(model ARN, Active deployment ARN) of a distillation job on the fake."""
    job = fake.control.create_model_customization_job(
        jobName="router-distill-bench",
        customModelName="router-micro-bench",
        roleArn="arn:aws:iam::123456789012:role/bench",
        clientRequestToken="bench-api",
        baseModelIdentifier="amazon.nova-micro-v1:0:128k",
        customizationType="DISTILLATION",
        trainingDataConfig={"s3Uri": "s3://router-bucket/runs/bench/train.jsonl"},
        outputDataConfig={"s3Uri": "s3://router-bucket/runs/bench/output/"},
        customizationConfig={
            "distillationConfig": {
                "teacherModelConfig": {
                    "teacherModelIdentifier": "us.amazon.nova-premier-v1:0",
                    "maxResponseLengthForInference": 1000,
                }
            }
        },
    )
    for _ in range(fake.job_polls_to_finish + 1):
        described = fake.control.get_model_customization_job(jobIdentifier=job["jobArn"])
    model_arn = str(described["outputModelArn"])
    for _ in range(fake.model_polls_to_active + 1):
        fake.control.get_custom_model(modelIdentifier=model_arn)
    arn = str(
        fake.control.create_custom_model_deployment(
            modelDeploymentName="router-bench", modelArn=model_arn, clientRequestToken="bench"
        )["customModelDeploymentArn"]
    )
    for _ in range(fake.deployment_polls_to_active + 1):
        fake.control.get_custom_model_deployment(customModelDeploymentIdentifier=arn)
    return model_arn, arn


def bench_bedrock(
    record: Any,
    queries: Sequence[str],
    *,
    connections: int,
    seconds: float,
    sleep_ms: float,
    throttles_per_s: int,
    reload_interval_s: float,
    warmup_s: float = 2.0,
) -> dict[str, Any]:
    """A Bedrock champion on the validated fake, over HTTP in this process (uvicorn in a
    thread): Converse sleeps `sleep_ms`, and `throttles_per_s` calls a second are throttled
    (from the start of the measured run; the warm-up is not throttled or counted)."""
    try:
        from tests.support.fake_bedrock import FakeBedrock  # ships with the repository
    except ImportError:
        return {"error": "needs the repository checkout (tests/support/fake_bedrock.py)"}
    from intent_router.errors import UserInputError
    from intent_router.registry import ChampionRegistry, now_iso
    from intent_router.serving import ServingSettings, load_router
    from intent_router.storage import DirectoryStore
    from router_distill.api import bind, create_app, server

    fake = FakeBedrock(
        sleep_ms=sleep_ms,
        job_polls_to_finish=1,
        model_polls_to_active=0,
        deployment_polls_to_active=0,
    )
    model_arn, deployment_arn = _fake_deployment(fake)
    with tempfile.TemporaryDirectory(prefix="router-distill-bench-bedrock-") as folder:
        store = DirectoryStore(Path(folder) / "store")
        champion = record.model_copy(
            update={
                "model_id": model_arn,
                "deployment_id": deployment_arn,
                "run_id": "bench-bedrock",
                "promoted_at": now_iso(),
                "cascade": None,
            }
        )
        ChampionRegistry(store, record.router).promote(champion, note="bench --api, fake")
        try:
            serving = load_router(
                record.router,
                store=store,
                settings=ServingSettings(reload_interval_s=reload_interval_s),
                runtime_factory=lambda _store, _region, _settings: fake.runtime,
            )
        except UserInputError as error:  # e.g. a taxonomy that is not built in
            return {"error": " ".join(str(error).split())}
        sock = bind("127.0.0.1", 0)
        host, port = sock.getsockname()[:2]
        uvicorn_server = server(create_app({record.router: serving}), drain_seconds=5)
        thread = threading.Thread(
            target=uvicorn_server.run, kwargs={"sockets": [sock]}, name="bench-uvicorn"
        )
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while not uvicorn_server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    return {"error": "the in-process uvicorn server did not start"}
                time.sleep(0.05)
            requests = [http_request(host, port, ROUTE_PATH, _dumps({"query": q})) for q in queries]
            throttled_answers = 0
            fallback_reasons: Counter[str] = Counter()
            throttled_needle = b'"fallback_reason":"throttled"'
            injected = 0

            def inspect(received: float, latency: float, status: int, body: bytes) -> None:
                nonlocal throttled_answers
                if status != 200:
                    return
                if throttled_needle in body:
                    throttled_answers += 1
                elif b'"fallback":true' in body:
                    found = re.search(rb'"fallback_reason":"([^"]*)"', body)
                    fallback_reasons[found[1].decode() if found else "?"] += 1

            async def throttle() -> None:
                nonlocal injected
                while True:  # the next `throttles_per_s` calls, at the start of each second
                    fake.throttle("converse", throttles_per_s)
                    injected += throttles_per_s
                    await asyncio.sleep(1.0)

            async def loaded() -> LoadResult:
                return await generate_load(
                    host,
                    port,
                    requests,
                    connections=connections,
                    seconds=seconds,
                    inspect=inspect,
                    during=throttle if throttles_per_s > 0 else None,
                )

            async def warm() -> None:  # threads, connections and the fake's models loaded
                await generate_load(host, port, requests, connections=connections, seconds=warmup_s)

            run_async(warm)
            calls_before = len(fake.calls_to("converse"))
            results: list[LoadResult] = []

            def run() -> LoadResult:
                results.append(run_async(loaded))
                return results[-1]

            figures = measured(lambda: None, run)
            status, metrics = http_get(host, port, "/metrics")
        finally:
            uvicorn_server.should_exit = True
            thread.join(timeout=30)
            sock.close()
            serving.close()
    unused = len(fake._injected.get("converse", []))  # injected but never reached
    ok = results[0].ok
    figures.update(
        {
            "converse_sleep_ms": sleep_ms,
            "throttles_injected": injected,
            "throttles_reached_converse": injected - unused,
            "throttled_fallback_answers": throttled_answers,
            "throttled_fallbacks_metric": fallbacks_metric(
                metrics.decode() if status == 200 else "", "throttled", record.router
            ),
            "other_fallbacks": dict(fallback_reasons),
            "throttled_share": round(throttled_answers / ok, 4) if ok else None,
            "converse_calls": len(fake.calls_to("converse")) - calls_before,
            "warmup_s": warmup_s,
            "converse_max_in_flight": fake.max_in_flight,
        }
    )
    return figures


# -- the command -----------------------------------------------------------------------------


def _non_negative(text: str) -> float:
    return 0.0 if text.strip() in ("0", "0.0") else positive_number(text)


def add_api_bench_arguments(bench: argparse.ArgumentParser) -> None:
    """The `--api` options of `router-distill bench`."""
    group = bench.add_argument_group(
        "--api", "the HTTP service under load (needs a promoted champion in ROUTER_DISTILL_HOME)"
    )
    group.add_argument(
        "--api",
        action="store_true",
        help="load-test `router-distill api` on a copy of the router's champion instead",
    )
    group.add_argument("--router", default="default", help="router whose champion to copy")
    group.add_argument(
        "--api-seconds", type=positive_number, default=60.0, help="single-query run, s (default 60)"
    )
    group.add_argument(
        "--api-connections",
        type=whole_number(1, 1024),
        default=8,
        help="keep-alive connections of the single-query run (default 8)",
    )
    group.add_argument(
        "--api-batch-seconds",
        type=positive_number,
        default=20.0,
        help="1,000-query batches, s (20)",
    )
    group.add_argument(
        "--api-batch-connections",
        type=whole_number(1, 1024),
        default=2,
        help="batch connections (2)",
    )
    group.add_argument(
        "--api-mixed-seconds",
        type=_non_negative,
        default=10.0,
        help="single queries alongside one batch connection, s (default 10; 0: skip)",
    )
    group.add_argument(
        "--api-bedrock-seconds",
        type=positive_number,
        default=20.0,
        help="Bedrock champion on the fake, s (default 20)",
    )
    group.add_argument(
        "--api-bedrock-connections", type=whole_number(1, 1024), default=32, help="(default 32)"
    )
    group.add_argument(
        "--api-bedrock-sleep-ms",
        type=positive_number,
        default=300.0,
        help="the fake Converse's latency, ms (default 300)",
    )
    group.add_argument(
        "--api-bedrock-throttles-per-s",
        type=whole_number(0),
        default=5,
        help="Converse calls throttled each second (default 5; about 5%% at 32 connections)",
    )
    group.add_argument(
        "--reload-interval",
        type=positive_number,
        default=1.0,
        help="the service's champion-pointer check, s (default 1)",
    )


def api_targets(reload_interval_s: float) -> Targets:
    """The figures with the issue's targets; the promotion's is the reload interval."""
    out = []
    for name, path, target, higher in API_TARGETS:
        if path == ("promotion", "new_model_after_s"):
            target = reload_interval_s
        out.append((name, path, target, higher))
    return tuple(out)


def machine_line(figures: dict[str, Any]) -> str:
    load = figures.get("load_average_before")
    return (
        f"machine: {figures['cpu']}, {figures['cores']} cores, {figures['memory_gb']} GB, "
        f"Python {figures['python']}, {figures['os']}"
        + (f"; load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}" if load else "")
    )


def run_api_bench(args: argparse.Namespace, before: dict[str, Any] | None = None) -> int:
    """`router-distill bench --api`."""
    host_machine = machine()
    with contextlib.suppress(OSError):
        host_machine["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
    results: dict[str, Any] = {"machine": host_machine}
    with tempfile.TemporaryDirectory(prefix="router-distill-bench-api-") as folder:
        workdir = Path(folder)
        try:
            champions = copy_champion(args.router, workdir / "home")
        except BenchRefused as error:
            print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
            return 2
        queries = bench_queries()
        results["settings"] = {
            "router": args.router,
            "model_id": champions.record.model_id,
            "queries": len(queries),
            "api_seconds": args.api_seconds,
            "api_connections": args.api_connections,
            "api_batch_seconds": args.api_batch_seconds,
            "api_batch_connections": args.api_batch_connections,
            "api_mixed_seconds": args.api_mixed_seconds,
            "api_bedrock_seconds": args.api_bedrock_seconds,
            "api_bedrock_connections": args.api_bedrock_connections,
            "reload_interval_s": args.reload_interval,
            "load_generator": "asyncio keep-alive HTTP/1.1, closed loop (uvloop)",
        }
        try:
            with api_process(
                workdir / "home", args.router, args.reload_interval, workdir / "api.log"
            ) as api:
                results.update(
                    bench_single(
                        api,
                        queries,
                        champions,
                        connections=args.api_connections,
                        seconds=args.api_seconds,
                        reload_interval_s=args.reload_interval,
                    )
                )
                results["batch"] = bench_batch(
                    api,
                    queries,
                    connections=args.api_batch_connections,
                    seconds=args.api_batch_seconds,
                )
                if args.api_mixed_seconds > 0:
                    results["mixed"] = bench_mixed(
                        api,
                        queries,
                        connections=args.api_connections,
                        seconds=args.api_mixed_seconds,
                    )
        except RuntimeError as error:
            print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
            return 1
        results["in_process"] = bench_in_process(workdir / "home", args.router, queries)
        results["bedrock"] = bench_bedrock(
            champions.record,
            queries,
            connections=args.api_bedrock_connections,
            seconds=args.api_bedrock_seconds,
            sleep_ms=args.api_bedrock_sleep_ms,
            throttles_per_s=args.api_bedrock_throttles_per_s,
            reload_interval_s=args.reload_interval,
        )
    print(json.dumps(results, indent=2))
    print()
    print(machine_line(host_machine))
    print(comparison_table(results, before, api_targets(args.reload_interval)))
    if args.report_json:
        args.report_json.write_text(json.dumps(results, indent=2), "utf-8")
    return 0
