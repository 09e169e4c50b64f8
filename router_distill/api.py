"""`router-distill api`: the routers over HTTP, on FastAPI and uvicorn.

    POST /v1/route     {"query": "..."} or {"queries": [...]}, optional "router"
    GET  /v1/routers   the champions served (model id, promoted at, metrics)
    GET  /healthz      the process is up
    GET  /readyz       200 once every router has a champion loaded (reload errors reported)
    GET  /metrics      Prometheus text: requests, latency per router, fallbacks, reloads

Every client error is a 4xx JSON body `{"error": "...", "field": "..."}` naming the problem,
never a 500. Answers come from `intent_router.serving.Router`: a promotion swaps the model
between requests, and a model failure answers the fallback (marked) instead of an error.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from intent_router.errors import UserInputError
from intent_router.registry import check_router_name
from intent_router.serving import Decision, NoChampionError, Router
from intent_router.text import MAX_QUERY_CHARS, check_query

logger = logging.getLogger(__name__)

MAX_QUERIES_PER_REQUEST = 1_000
MAX_BODY_BYTES = 4 * 1024 * 1024  # 1,000 queries of 2,000 characters fit, with room for JSON
BODY_TIMEOUT_S = 30.0  # a body that has not all arrived by then (a stalled or lying client): 408
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_FIELDS = frozenset({"query", "queries", "router"})
BATCH_SLICE = 64  # local queries answered between two turns of the event loop


class ApiError(Exception):
    """A client error: the HTTP status, the message, and the field at fault (if any)."""

    def __init__(
        self, status: int, message: str, field: str | None = None, *, close: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.close = close  # the connection is not at a request boundary: close it


@dataclass(frozen=True)
class RouteRequest:
    router: str | None
    queries: list[str]
    single: bool


def _decode_problem(body: bytes) -> str | None:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = body[error.start]
        return f"request body is not UTF-8 (bad byte 0x{bad:02x} at byte {error.start + 1})"
    return None


def _query(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise ApiError(422, f"{field} must be a string, got {_json_type(value)}", field)
    if len(value) > MAX_QUERY_CHARS:
        raise ApiError(
            422, f"{field} is {len(value):,} characters; the limit is {MAX_QUERY_CHARS:,}", field
        )
    try:
        return check_query(value)
    except ValueError as error:  # "query is empty": named by its field in a batch
        message = str(error) if field == "query" else f"{field}: {error}"
        raise ApiError(422, message, field) from None


def _json_type(value: object) -> str:
    names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
    }
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def parse_route_request(body: bytes, max_queries: int = MAX_QUERIES_PER_REQUEST) -> RouteRequest:
    """The routing request in a POST body, or ApiError naming what is wrong with it."""
    if not body.strip():
        raise ApiError(400, 'request body is empty; send {"query": "..."} or {"queries": [...]}')
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        problem = _decode_problem(body)
        raise ApiError(400, problem or f"request body is not valid JSON ({error})") from None
    if not isinstance(payload, dict):
        raise ApiError(
            422,
            'request body must be a JSON object like {"query": "..."}, got ' + _json_type(payload),
        )
    unknown = sorted(set(payload) - _FIELDS)
    if unknown:
        raise ApiError(
            422, f"unknown field {unknown[0]!r}; allowed: query, queries, router", unknown[0]
        )
    router = payload.get("router")
    if router is not None:
        if not isinstance(router, str):
            raise ApiError(422, f"router must be a string, got {_json_type(router)}", "router")
        try:
            check_router_name(router)
        except UserInputError as error:
            raise ApiError(422, str(error), "router") from None
    if ("query" in payload) == ("queries" in payload):
        raise ApiError(
            422, 'send exactly one of "query" (a string) or "queries" (an array)', "query"
        )
    if "query" in payload:
        return RouteRequest(router, [_query(payload["query"], "query")], single=True)
    queries = payload["queries"]
    if not isinstance(queries, list):
        raise ApiError(422, f"queries must be an array, got {_json_type(queries)}", "queries")
    if not queries:
        raise ApiError(422, "queries is empty", "queries")
    if len(queries) > max_queries:
        raise ApiError(
            413,
            f"queries has {len(queries):,} items; the limit is {max_queries:,} per request",
            "queries",
        )
    return RouteRequest(
        router, [_query(q, f"queries[{i}]") for i, q in enumerate(queries)], single=False
    )


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def _error(error: ApiError) -> Response:
    body: dict[str, Any] = {"error": error.message}
    if error.field is not None:
        body["field"] = error.field
    response = _json(body, error.status)
    if error.close:
        response.headers["connection"] = "close"
    return response


class RouterCollector(Collector):
    """The routers' own counts (answers, fallbacks, reloads) at scrape time."""

    def __init__(self, routers: Mapping[str, Router]) -> None:
        self.routers = routers

    def collect(self) -> Iterator[Metric]:
        queries = CounterMetricFamily(
            "router_queries", "Queries answered, by who answered", labels=["router", "answered_by"]
        )
        fallbacks = CounterMetricFamily(
            "router_fallbacks", "Answers from the fallback, by reason", labels=["router", "reason"]
        )
        reloads = CounterMetricFamily(
            "router_reloads", "Champions swapped in after a pointer change", labels=["router"]
        )
        failures = CounterMetricFamily(
            "router_reload_failures",
            "Pointer checks that could not load a champion (the previous one kept serving)",
            labels=["router"],
        )
        ready = GaugeMetricFamily("router_ready", "1 when a champion is loaded", labels=["router"])
        healthy = GaugeMetricFamily(
            "router_reload_healthy", "0 when the last pointer check failed", labels=["router"]
        )
        champion = GaugeMetricFamily(
            "router_champion_info", "The champion answering", labels=["router", "model_id"]
        )
        for name, router in self.routers.items():
            status = router.status()
            for who, count in status["queries"].items():
                queries.add_metric([name, who], count)
            for reason, count in status["fallbacks"].items():
                fallbacks.add_metric([name, reason], count)
            reloads.add_metric([name], status["reloads"])
            failures.add_metric([name], status["reload_failures"])
            ready.add_metric([name], 1.0 if status["ready"] else 0.0)
            healthy.add_metric([name], 0.0 if status["reload_error"] else 1.0)
            if status["model_id"]:
                champion.add_metric([name, status["model_id"]], 1.0)
        yield from (queries, fallbacks, reloads, failures, ready, healthy, champion)


async def _read_body(request: Request, limit: int, timeout_s: float = BODY_TIMEOUT_S) -> bytes:
    """The body, refusing (413) one larger than `limit` before reading it all, and (408) one
    that has not all arrived within `timeout_s`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body is {int(declared):,} bytes; the limit is {limit:,}")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, f"request body is over the limit of {limit:,} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(
            408,
            f"request body did not arrive within {timeout_s:g} s ({size:,} bytes came)",
            close=True,
        ) from None
    except ClientDisconnect:  # nobody reads the answer; counted, and no traceback logged
        raise ApiError(
            400, f"the client closed the connection after {size:,} bytes of the body"
        ) from None
    return b"".join(chunks)


async def _answer(router: Router, queries: list[str]) -> list[Decision]:
    """The router's decisions without holding up the other requests: Converse waits on the
    network in the threadpool; a large local batch is answered in slices with one champion,
    letting the event loop serve single queries between them."""
    if router.blocking:
        return await run_in_threadpool(router.route_checked, queries)
    if len(queries) <= BATCH_SLICE:
        return router.route_checked(queries)
    champion = router.pin()  # one model for the whole response, even across a reload
    decisions: list[Decision] = []
    for start in range(0, len(queries), BATCH_SLICE):
        decisions += router.route_checked(queries[start : start + BATCH_SLICE], champion)
        await asyncio.sleep(0)
    return decisions


def create_app(
    routers: Mapping[str, Router],
    *,
    max_queries: int = MAX_QUERIES_PER_REQUEST,
    max_body_bytes: int = MAX_BODY_BYTES,
    body_timeout_s: float = BODY_TIMEOUT_S,
) -> FastAPI:
    """The HTTP service over started routers (the first is the default `router`)."""
    if not routers:
        raise UserInputError("the service needs at least one router")
    default = next(iter(routers))
    names = ", ".join(routers)
    registry = CollectorRegistry()
    requests_total = Counter(
        "router_requests",
        "HTTP routing requests, by status code",
        ["router", "status"],
        registry=registry,
    )
    latency = Histogram(
        "router_request_duration_seconds",
        "Time to answer a routing request (server side)",
        ["router", "kind"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    registry.register(RouterCollector(routers))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        for router in routers.values():
            router.close()

    app = FastAPI(
        title="router-distill",
        summary="Routes video-search queries to signal weights with the promoted champion.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )

    app.state.routers = routers

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> Response:
        return _json({"error": str(error.detail)}, error.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> Response:  # pragma: no cover - a bug
        logger.exception("unexpected error answering a request")
        return _json({"error": f"internal error ({type(error).__name__})"}, 500)

    async def route(request: Request) -> Response:
        started = time.perf_counter()
        name = default
        try:
            parsed = parse_route_request(
                await _read_body(request, max_body_bytes, body_timeout_s), max_queries
            )
            name = parsed.router or default
            router = routers.get(name)
            if router is None:
                raise ApiError(
                    404, f"unknown router {name!r}; this service serves: {names}", "router"
                )
            try:
                decisions = await _answer(router, parsed.queries)
            except NoChampionError as error:
                raise ApiError(503, str(error)) from None
        except asyncio.CancelledError:  # the drain after SIGTERM ran out (uvicorn cancels)
            stopping = ApiError(503, "the service is shutting down; send it again", close=True)
            requests_total.labels(name if name in routers else "unknown", "503").inc()
            return _error(stopping)
        except ApiError as error:
            requests_total.labels(name if name in routers else "unknown", str(error.status)).inc()
            return _error(error)
        if parsed.single:
            body: dict[str, Any] = {"router": name, **decisions[0].as_dict()}
        else:
            body = {
                "router": name,
                "model_id": decisions[0].model_id,
                "decisions": [d.as_dict() for d in decisions],
            }
        response = _json(body)
        requests_total.labels(name, "200").inc()
        latency.labels(name, "single" if parsed.single else "batch").observe(
            time.perf_counter() - started
        )
        return response

    # A plain Starlette route: the handler parses and validates its own body, and skipping
    # FastAPI's per-request dependency and response handling is a third more requests/s.
    app.router.add_route("/v1/route", route, methods=["POST"])

    @app.get("/v1/routers")
    async def list_routers() -> Response:
        served = []
        for name, router in routers.items():
            champion = router.champion
            status = router.status()
            served.append(
                {
                    "router": name,
                    "ready": status["ready"],
                    "model_id": champion.model_id if champion else None,
                    "deployment_id": champion.deployment_id if champion else None,
                    "backend": status["backend"],
                    "taxonomy": champion.taxonomy if champion else None,
                    "signals": list(champion.signals) if champion else None,
                    "training_mode": champion.training_mode if champion else None,
                    "promoted_at": champion.promoted_at if champion else None,
                    "loaded_at": status["loaded_at"],
                    "metrics": champion.metrics if champion else None,
                    "reload_error": status["reload_error"],
                }
            )
        return _json({"routers": served})

    @app.get("/healthz")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        statuses = [router.status() for router in routers.values()]
        ready = all(s["ready"] for s in statuses)
        checks = {
            s["router"]: {
                "ready": s["ready"],
                "model_id": s["model_id"],
                "reload_error": s["reload_error"],
                "reload_failures": s["reload_failures"],
                "last_check_at": s["last_check_at"],
            }
            for s in statuses
        }
        return _json({"ready": ready, "routers": checks}, 200 if ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port); UserInputError when it cannot bind."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise UserInputError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def server(app: FastAPI, *, drain_seconds: float = 30.0) -> Any:
    """A uvicorn server for the app: httptools and uvloop, no access log, and a graceful
    shutdown on SIGTERM / SIGINT that lets in-flight requests finish (`drain_seconds`)."""
    import uvicorn

    config = uvicorn.Config(
        app,
        http="httptools",
        loop="uvloop",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=int(max(1, drain_seconds)),
        timeout_keep_alive=30,
    )
    return uvicorn.Server(config)


def serve(
    routers: Sequence[Router],
    host: str,
    port: int,
    *,
    drain_seconds: float = 30.0,
    announce: Callable[[str], None] = print,
    **app_options: Any,
) -> None:
    """Serve until SIGTERM / SIGINT, then drain and stop the routers' reload threads."""
    sock = bind(host, port)
    app = create_app({r.name: r for r in routers}, **app_options)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
    announce(f"listening on http://{shown}:{bound_port}")
    uv = server(app, drain_seconds=drain_seconds)

    def stop(signum: int, frame: object) -> None:
        uv.should_exit = True

    # uvicorn re-raises the signal it drained on (to these handlers, not the default one
    # that would kill the process with -15): a drained shutdown exits 0.
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        uv.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
        for router in routers:
            router.close()
