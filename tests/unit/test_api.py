"""The HTTP service: request validation, answers, readiness, metrics; every client error a 4xx
JSON naming the problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from intent_router.serving import load_router
from intent_router.storage import DirectoryStore
from router_distill.api import ApiError, create_app, parse_route_request
from tests.support.champions import promote_bedrock, promote_local, trained_student
from tests.support.fake_bedrock import FakeBedrock
from tests.unit.test_fake_bedrock import active_deployment


@pytest.fixture
def store(tmp_path: Path) -> DirectoryStore:
    return DirectoryStore(tmp_path / "store")


@pytest.fixture
def client(store: DirectoryStore) -> TestClient:
    promote_local(store, "m-1")
    router = load_router("default", store=store, watch=False)
    return TestClient(create_app({"default": router}, max_queries=1000))


BAD_BODIES: list[tuple[bytes, int, str, str | None]] = [
    (b"", 400, "request body is empty", None),
    (b"{not json", 400, "not valid JSON", None),
    (b'{"query": "caf\xe9"}', 400, "not UTF-8 (bad byte 0xe9 at byte 15)", None),
    (b'["rain"]', 422, "must be a JSON object", None),
    (b'"rain"', 422, 'must be a JSON object like {"query": "..."}, got a string', None),
    (b"{}", 422, 'exactly one of "query"', "query"),
    (b'{"query": "rain", "queries": ["x"]}', 422, 'exactly one of "query"', "query"),
    (b'{"query": ""}', 422, "query is empty", "query"),
    (b'{"query": "   "}', 422, "query is empty", "query"),
    (b'{"query": 42}', 422, "query must be a string, got a number", "query"),
    (b'{"query": null}', 422, "got null", "query"),
    (b'{"query": "!!!"}', 422, "no letters or digits", "query"),
    (b'{"query": "a\\u0000b"}', 422, "control characters", "query"),
    (b'{"queries": "rain"}', 422, "queries must be an array", "queries"),
    (b'{"queries": []}', 422, "queries is empty", "queries"),
    (b'{"queries": ["rain", 3]}', 422, "queries[1] must be a string", "queries[1]"),
    (b'{"queries": ["rain", ""]}', 422, "queries[1]: query is empty", "queries[1]"),
    (b'{"query": "rain", "top_k": 3}', 422, "unknown field 'top_k'", "top_k"),
    (b'{"query": "rain", "router": 7}', 422, "router must be a string", "router"),
    (b'{"query": "rain", "router": "Bad Name"}', 422, "invalid router name", "router"),
]


@pytest.mark.parametrize(("body", "status", "message", "field"), BAD_BODIES)
def test_bad_requests_get_a_json_error_naming_the_problem(
    client: TestClient, body: bytes, status: int, message: str, field: str | None
) -> None:
    response = client.post("/v1/route", content=body)
    assert response.status_code == status
    payload = response.json()
    assert message in payload["error"]
    assert payload.get("field") == field
    assert "\n" not in payload["error"]


def test_a_100000_character_query_is_refused_naming_the_field(client: TestClient) -> None:
    response = client.post("/v1/route", json={"query": "x" * 100_000})
    assert response.status_code == 422
    assert response.json() == {
        "error": "query is 100,000 characters; the limit is 2,000",
        "field": "query",
    }


def test_too_many_queries_and_too_large_a_body_are_413(client: TestClient) -> None:
    response = client.post("/v1/route", json={"queries": ["rain"] * 10_000})
    assert response.status_code == 413
    assert response.json()["error"] == "queries has 10,000 items; the limit is 1,000 per request"
    huge = json.dumps({"query": "x" * (5 * 1024 * 1024)}).encode()
    response = client.post("/v1/route", content=huge)
    assert response.status_code == 413
    assert "limit is 4,194,304" in response.json()["error"]


def test_an_unknown_router_is_404(client: TestClient) -> None:
    response = client.post("/v1/route", json={"query": "rain", "router": "sports"})
    assert response.status_code == 404
    assert response.json() == {
        "error": "unknown router 'sports'; this service serves: default",
        "field": "router",
    }


def test_unknown_paths_and_methods_are_json_errors(client: TestClient) -> None:
    assert client.get("/v2/route").json() == {"error": "Not Found"}
    response = client.get("/v1/route")
    assert response.status_code == 405 and "error" in response.json()


def test_a_query_gets_the_champions_weights_and_model_id(
    client: TestClient, store: DirectoryStore
) -> None:
    one = client.post("/v1/route", json={"query": "sound of rain on a tin roof"})
    assert one.status_code == 200
    body = one.json()
    assert body["router"] == "default" and body["model_id"] == "local-model/m-1"
    assert set(body["weights"]) == {"visual", "audio", "transcription", "metadata"}
    assert abs(sum(body["weights"].values()) - 1) < 1e-6
    assert max(body["weights"], key=body["weights"].get) == "audio"
    assert (body["answered_by"], body["fallback"]) == ("student", False)
    assert body["reasoning"]

    many = client.post("/v1/route", json={"queries": ["sound of rain", "drone shot of a beach"]})
    decisions = many.json()["decisions"]
    assert [max(d["weights"], key=d["weights"].get) for d in decisions] == ["audio", "visual"]
    assert many.json()["model_id"] == "local-model/m-1"


def test_routers_health_readiness_and_metrics(client: TestClient) -> None:
    client.post("/v1/route", json={"query": "sound of rain"})
    client.post("/v1/route", json={"query": ""})
    routers = client.get("/v1/routers").json()["routers"]
    assert [(r["router"], r["model_id"], r["ready"]) for r in routers] == [
        ("default", "local-model/m-1", True)
    ]
    assert routers[0]["metrics"] == {"holdout_top1": 0.9} and routers[0]["promoted_at"]
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    metrics = client.get("/metrics").text
    assert 'router_requests_total{router="default",status="200"} 1.0' in metrics
    assert 'router_requests_total{router="default",status="422"} 1.0' in metrics
    assert 'router_request_duration_seconds_count{kind="single",router="default"} 1.0' in metrics
    assert 'router_queries_total{answered_by="student",router="default"} 1.0' in metrics
    assert 'router_champion_info{model_id="local-model/m-1",router="default"} 1.0' in metrics


def test_a_router_without_a_champion_is_not_ready_until_one_is_promoted(
    store: DirectoryStore,
) -> None:
    router = load_router("default", store=store, watch=False, require_champion=False)
    client = TestClient(create_app({"default": router}))
    assert client.get("/readyz").status_code == 503
    response = client.post("/v1/route", json={"query": "rain"})
    assert response.status_code == 503 and "no champion loaded" in response.json()["error"]
    promote_local(store, "m-1")
    router.refresh()
    assert client.get("/readyz").status_code == 200
    assert client.post("/v1/route", json={"query": "rain"}).json()["model_id"] == "local-model/m-1"


def test_a_failed_reload_keeps_serving_and_shows_in_readyz_and_metrics(
    client: TestClient, store: DirectoryStore
) -> None:
    router_file = store.root / "routers/default/champion.json"
    promote_local(store, "m-2", write_artifact=False)  # the pointer names a missing artifact
    router = next(iter(client.app.state.routers.values()))  # type: ignore[attr-defined]
    assert router.refresh() is False
    answer = client.post("/v1/route", json={"query": "rain"}).json()
    assert answer["model_id"] == "local-model/m-1"
    ready = client.get("/readyz")
    assert ready.status_code == 200  # still serving the previous champion
    check = ready.json()["routers"]["default"]
    assert "models/m-2/student.npz" in check["reload_error"] and check["reload_failures"] == 1
    metrics = client.get("/metrics").text
    assert 'router_reload_failures_total{router="default"} 1.0' in metrics
    assert 'router_reload_healthy{router="default"} 0.0' in metrics
    assert router_file.exists()


def test_a_promotion_swaps_the_model_between_requests(
    client: TestClient, store: DirectoryStore
) -> None:
    router = next(iter(client.app.state.routers.values()))  # type: ignore[attr-defined]
    assert client.post("/v1/route", json={"query": "rain"}).json()["model_id"] == "local-model/m-1"
    promote_local(store, "m-2", student=trained_student(["crickets chirping"] * 4))
    router.refresh()
    assert client.post("/v1/route", json={"query": "rain"}).json()["model_id"] == "local-model/m-2"
    assert 'router_reloads_total{router="default"} 1.0' in client.get("/metrics").text


def test_several_routers_the_first_is_the_default(store: DirectoryStore) -> None:
    promote_local(store, "m-1")
    promote_local(store, "s-1", router="sports")
    routers = {name: load_router(name, store=store, watch=False) for name in ("default", "sports")}
    client = TestClient(create_app(routers))
    assert client.post("/v1/route", json={"query": "rain"}).json()["model_id"] == "local-model/m-1"
    sports = client.post("/v1/route", json={"query": "rain", "router": "sports"}).json()
    assert (sports["router"], sports["model_id"]) == ("sports", "local-model/s-1")


def test_a_throttled_bedrock_champion_answers_the_fallback_not_an_error(
    store: DirectoryStore,
) -> None:
    fake = FakeBedrock(job_polls_to_finish=1, deployment_polls_to_active=0)
    promote_bedrock(store, active_deployment(fake))
    router = load_router(
        "default", store=store, watch=False, runtime_factory=lambda *_: fake.runtime
    )
    client = TestClient(create_app({"default": router}))
    fake.throttle("converse", 1)
    response = client.post("/v1/route", json={"queries": ["rain", "drums"]})
    assert response.status_code == 200
    first, second = response.json()["decisions"]
    assert (first["fallback"], first["fallback_reason"], first["answered_by"]) == (
        True,
        "throttled",
        "prior",
    )
    assert second["fallback"] is False
    metrics = client.get("/metrics").text
    assert 'router_fallbacks_total{reason="throttled",router="default"} 1.0' in metrics


@pytest.mark.parametrize(("body", "status", "message", "field"), BAD_BODIES)
def test_the_parser_alone_raises_the_same_errors(
    body: bytes, status: int, message: str, field: str | None
) -> None:
    with pytest.raises(ApiError) as caught:
        parse_route_request(body)
    assert (caught.value.status, caught.value.field) == (status, field)
    assert message in caught.value.message


def test_the_parser_accepts_both_shapes() -> None:
    single = parse_route_request(b'{"query": " rain\\t on tin "}')
    assert (single.queries, single.single, single.router) == (["rain  on tin"], True, None)
    batch: Any = parse_route_request(b'{"queries": ["a dog", "a cat"], "router": "sports"}')
    assert (batch.queries, batch.single, batch.router) == (["a dog", "a cat"], False, "sports")


def _asgi_post(
    app: Any, messages: list[dict[str, Any]], *, cancel_after_s: float | None = None
) -> list[dict[str, Any]]:
    """POST /v1/route straight to the ASGI app: the body as `messages`, then (when they run
    out) a receive that waits forever; `cancel_after_s`: cancel the request the way uvicorn
    does when the drain after SIGTERM runs out."""
    import asyncio

    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/route",
        "raw_path": b"/v1/route",
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        task = asyncio.ensure_future(app(scope, receive, send))
        if cancel_after_s is not None:
            await asyncio.sleep(cancel_after_s)
            task.cancel()
        await asyncio.wait_for(task, 10)

    asyncio.run(run())
    return sent


def test_a_client_that_hangs_up_mid_body_is_counted_without_a_traceback(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    app = client.app
    partial = {"type": "http.request", "body": b'{"que', "more_body": True}
    sent = _asgi_post(app, [partial, {"type": "http.disconnect"}])
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"]) == {
        "error": "the client closed the connection after 5 bytes of the body"
    }
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert 'router_requests_total{router="default",status="400"} 1.0' in client.get("/metrics").text


def test_a_request_cancelled_by_the_end_of_the_drain_answers_a_503_json(
    client: TestClient,
) -> None:
    partial = {"type": "http.request", "body": b'{"que', "more_body": True}
    sent = _asgi_post(client.app, [partial], cancel_after_s=0.2)
    assert sent[0]["status"] == 503
    assert (b"connection", b"close") in sent[0]["headers"]
    assert json.loads(sent[1]["body"]) == {"error": "the service is shutting down; send it again"}
