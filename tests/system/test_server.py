"""The deployments on a real `prefect server start`: deploy, serve, run through the API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from prefect.blocks.webhook import Webhook
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments.automations import router_webhook
from deployments.specs import PROJECT_DIR
from tests.support.runs import LENIENT_GATE, TINY_RUN
from tests.system.processes import BIN, Stack, prefect_server, serve_deployments

pytestmark = pytest.mark.server

SMALL_NEWS_RUN: dict[str, Any] = {
    **TINY_RUN,
    "taxonomy": "news_archives",
    "router_name": "news-test",
    "gate": LENIENT_GATE,
    "triggered_by": "server integration test",
}
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with prefect_server(tmp_path_factory.mktemp("server")) as running:
        yield running
    alive = [p.args for p in running.processes if p.poll() is None]
    assert alive == [], f"processes left running: {alive}"


class Receiver:
    """A local HTTP endpoint standing in for a chat or on-call webhook."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


def _api(stack: Stack) -> httpx.Client:
    return stack.api()


def _deployment(client: httpx.Client, name: str) -> dict[str, Any]:
    response = client.get(f"/deployments/name/distill-router/{name}")
    response.raise_for_status()
    return dict(response.json())


def _wait_for_run(stack: Stack, client: httpx.Client, run_id: str) -> dict[str, Any]:
    def finished() -> bool:
        return client.get(f"/flow_runs/{run_id}").json()["state_type"] in TERMINAL

    stack.wait_until(f"flow run {run_id} to finish", finished, timeout=300)
    return dict(client.get(f"/flow_runs/{run_id}").json())


def test_prefect_deploy_all_registers_three_deployments_on_a_process_pool(stack: Stack) -> None:
    stack.run(str(BIN / "prefect"), "work-pool", "create", "router-distill", "--type", "process")
    stack.run(str(BIN / "prefect"), "--no-prompt", "deploy", "--all", cwd=PROJECT_DIR)

    with _api(stack) as client:
        for name in ("scheduled-retraining", "manual", "taxonomy-experiment"):
            deployment = _deployment(client, name)
            assert deployment["work_pool_name"] == "router-distill"
            assert deployment["enforce_parameter_schema"] is True
        retraining = _deployment(client, "scheduled-retraining")
        [schedule] = retraining["schedules"]
        assert schedule["schedule"]["cron"] == "0 3 * * 1"

        # The server's scheduler creates the next weekly runs: Mondays 03:00 UTC.
        def scheduled_runs() -> list[dict[str, Any]]:
            return list(
                client.post(
                    "/flow_runs/filter",
                    json={"flow_runs": {"deployment_id": {"any_": [retraining["id"]]}}},
                ).json()
            )

        stack.wait_until("the scheduled retraining runs", lambda: bool(scheduled_runs()), 60)
        upcoming = scheduled_runs()
        assert all(run["state_type"] == "SCHEDULED" for run in upcoming)
        for run in upcoming:
            start = datetime.fromisoformat(run["expected_start_time"].replace("Z", "+00:00"))
            assert (start.weekday(), start.hour, start.minute) == (0, 3, 0)
            assert run["parameters"]["triggered_by"] == "schedule: weekly retraining"


def test_served_taxonomy_run_completes_with_artifacts_ledger_and_event(
    stack: Stack, receiver: Receiver
) -> None:
    with temporary_settings({PREFECT_API_URL: stack.api_url}):
        webhook_id = Webhook(method="POST", url=receiver.url, allow_private_urls=True).save(
            "router-outcomes", overwrite=True
        )
        router_webhook(webhook_id, router="news-test").create()
    serve_deployments(stack)
    with _api(stack) as client:
        deployment = _deployment(client, "taxonomy-experiment")
        created = client.post(
            f"/deployments/{deployment['id']}/create_flow_run",
            json={"parameters": SMALL_NEWS_RUN},
        )
        assert created.status_code == 201, created.text
        run = _wait_for_run(stack, client, created.json()["id"])
        assert run["state_type"] == "COMPLETED", stack.log("serve")[-4000:]
        assert run["name"] in stack.log("serve")  # executed by the serve process, no worker

        artifacts = client.post(
            "/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run["id"]]}}}
        ).json()
        keys = {a["key"] for a in artifacts}
        assert {"evaluation", "promotion-report", "dataset-summary", "ledger-news-test"} <= keys
        evaluation = next(a for a in artifacts if a["key"] == "evaluation")
        roles = {row["role"] for row in json.loads(evaluation["data"])}
        assert {"candidate", "teacher"} <= roles

        def promoted_events() -> list[dict[str, Any]]:
            events = client.post(
                "/events/filter", json={"filter": {"event": {"name": ["router.promoted"]}}}
            ).json()["events"]
            return [e for e in events if e["payload"]["router"] == "news-test"]

        # The server persists events in batches, a moment after they arrive.
        stack.wait_until("the persisted router.promoted event", lambda: bool(promoted_events()), 60)
        [promoted] = promoted_events()
        assert promoted["payload"]["run_id"] == run["id"]
        assert promoted["payload"]["taxonomy"] == "news-archives"

    stack.wait_until("the automation's webhook call", lambda: bool(receiver.bodies), 60)
    [alert] = receiver.bodies
    assert alert["event"] == "router.promoted" and alert["router"] == "news-test"
    assert alert["run_id"] == run["id"] and float(alert["top_signal_accuracy"]) > 0.3

    ledger = stack.home / "store" / "routers" / "news-test" / "ledger.jsonl"
    [entry] = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert entry["champion"]["run_id"] == run["id"]
    assert entry["champion"]["triggered_by"] == "server integration test"
    assert not (stack.home / "store" / "routers" / "default").exists()
    history = stack.run(str(BIN / "router-distill"), "history", "--router", "news-test")
    assert entry["champion"]["model_id"] in history

    # A rollback from the CLI is recorded in the ledger and refreshes the ledger artifact.
    out = stack.run(str(BIN / "router-distill"), "rollback", "--router", "news-test", "--to", "1")
    assert "ledger artifact ledger-news-test updated" in out
    with _api(stack) as client:
        latest = client.post(
            "/artifacts/filter",
            json={"artifacts": {"key": {"any_": ["ledger-news-test"]}}, "sort": "CREATED_DESC"},
        ).json()[0]
    assert [row["action"] for row in json.loads(latest["data"])] == ["rollback", "promote"]


def test_server_rejects_a_bad_inline_taxonomy_when_the_run_is_created(stack: Stack) -> None:
    bad = {
        "taxonomy_definition": {
            "name": "shop",
            "signals": [{"name": "Visual Signal", "description": "how it looks"}],
            "attributes": [],
        }
    }
    with _api(stack) as client:
        deployment = _deployment(client, "manual")
        response = client.post(
            f"/deployments/{deployment['id']}/create_flow_run", json={"parameters": bad}
        )
    assert response.status_code in (409, 422), response.text
    assert "Validation failed" in response.text
