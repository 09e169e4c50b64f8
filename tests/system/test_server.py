"""The deployments on a real `prefect server start`, one way to deploy at a time.

The tests run in file order on one server: `prefect deploy --all` onto a process pool, a run
executed by `prefect worker start`, `serve` refusing the names that are on the pool, the
deployments deleted and served instead, a served run, and `serve` stopped with its schedule left
active. No deployment name is ever deployed and served at the same time.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from prefect.blocks.webhook import Webhook
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments.automations import retrain_on_drift, router_webhook
from deployments.specs import PROJECT_DIR
from intent_router.registry import ChampionRecord, ChampionRegistry
from intent_router.storage import DirectoryStore
from tests.support.runs import LENIENT_GATE, TINY_RUN
from tests.system.processes import BIN, Stack, prefect_server, serve_deployments, start_worker

pytestmark = pytest.mark.server
logger = logging.getLogger(__name__)

NAMES = ("scheduled-retraining", "manual", "taxonomy-experiment", "drift-monitor")
FLOW_OF = {"drift-monitor": "monitor-router"}  # the others deploy distill-router
POOL = "router-distill"
# On top of the taxonomy-experiment presets: small sizes and a lenient gate, but no taxonomy, so
# the preset's sports_broadcasting must survive the server's per-key merge.
SMALL_PRESET_TAXONOMY_RUN: dict[str, Any] = {
    **TINY_RUN,
    "gate": LENIENT_GATE,
    "triggered_by": "worker integration test",
}

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
    alive = [p.args for p in [*running.processes, *running.stopped] if p.poll() is None]
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
    response = client.get(f"/deployments/name/{FLOW_OF.get(name, 'distill-router')}/{name}")
    response.raise_for_status()
    return dict(response.json())


def _run_and_wait(
    stack: Stack, client: httpx.Client, deployment: str, parameters: dict[str, Any]
) -> dict[str, Any]:
    """Create a run of the deployment through the REST API and wait until it ends."""
    created = client.post(
        f"/deployments/{_deployment(client, deployment)['id']}/create_flow_run",
        json={"parameters": parameters},
    )
    assert created.status_code == 201, created.text
    return _wait_for_run(stack, client, created.json()["id"])


def _wait_for_run(stack: Stack, client: httpx.Client, run_id: str) -> dict[str, Any]:
    def finished() -> bool:
        return client.get(f"/flow_runs/{run_id}").json()["state_type"] in TERMINAL

    stack.wait_until(f"flow run {run_id} to finish", finished, timeout=300)
    return dict(client.get(f"/flow_runs/{run_id}").json())


def test_prefect_deploy_all_registers_four_deployments_on_a_process_pool(stack: Stack) -> None:
    stack.run(str(BIN / "prefect"), "work-pool", "create", POOL, "--type", "process")
    stack.run(str(BIN / "prefect"), "--no-prompt", "deploy", "--all", cwd=PROJECT_DIR)

    with _api(stack) as client:
        for name in NAMES:
            deployment = _deployment(client, name)
            assert deployment["work_pool_name"] == POOL
            assert deployment["enforce_parameter_schema"] is True
            # The worker runs the code in this folder and stores under the deployer's home.
            assert deployment["pull_steps"] == [
                {"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT_DIR)}}
            ]
            env = deployment["job_variables"]["env"]
            assert env == {"ROUTER_DISTILL_HOME": str(stack.home)}
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


def test_worker_runs_a_partial_override_with_the_presets_taxonomy(stack: Stack) -> None:
    # The worker's own ROUTER_DISTILL_HOME differs: the deployment's job variables must win.
    worker_env_home = stack.root / "worker-env-home"
    started = time.monotonic()
    worker = start_worker(stack, POOL, env={"ROUTER_DISTILL_HOME": str(worker_env_home)})
    with _api(stack) as client:
        run = _run_and_wait(stack, client, "taxonomy-experiment", SMALL_PRESET_TAXONOMY_RUN)
    assert run["state_type"] == "COMPLETED", stack.log("worker")[-4000:]
    logger.info("worker run done in %.1f s", time.monotonic() - started)
    assert run["name"] in stack.log("worker")  # executed by the worker, nothing is served
    assert run["work_pool_name"] == POOL
    # The server merged the run's keys into the presets: the preset's taxonomy survived.
    assert run["parameters"]["taxonomy"] == "sports_broadcasting"
    assert run["parameters"]["train_count"] == TINY_RUN["train_count"]

    ledger = stack.home / "store" / "routers" / "sports-broadcasting" / "ledger.jsonl"
    [entry] = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert entry["action"] == "promote"
    assert entry["champion"]["run_id"] == run["id"]
    assert entry["champion"]["taxonomy"] == "sports-broadcasting"
    assert entry["champion"]["triggered_by"] == "worker integration test"
    assert not (worker_env_home / "store").exists()
    logger.info("worker stopped in %.1f s", stack.stop_one(worker, signal.SIGINT))


def test_serve_refuses_names_deployed_on_the_work_pool(stack: Stack) -> None:
    refused = stack.attempt(str(BIN / "router-distill"), "serve", "--limit", "1", timeout=120)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert all(f"{FLOW_OF.get(name, 'distill-router')}/{name}" in line for name in NAMES)
    assert f"prefect worker start --pool {POOL}" in line and "delete" in line
    with _api(stack) as client:
        for name in NAMES:  # left on the pool, untouched
            assert _deployment(client, name)["work_pool_name"] == POOL
            # Delete them so this server can switch to serve (one way at a time).
            deleted = client.delete(f"/deployments/{_deployment(client, name)['id']}")
            assert deleted.status_code == 204, deleted.text


def test_served_taxonomy_run_completes_with_artifacts_ledger_and_event(
    stack: Stack, receiver: Receiver
) -> None:
    with temporary_settings({PREFECT_API_URL: stack.api_url}):
        webhook_id = Webhook(method="POST", url=receiver.url, allow_private_urls=True).save(
            "router-outcomes", overwrite=True
        )
        router_webhook(webhook_id, router="news-test").create()
    serve_deployments(stack, expected=len(NAMES))
    with _api(stack) as client:
        assert _deployment(client, "taxonomy-experiment")["work_pool_name"] is None  # served
        run = _run_and_wait(stack, client, "taxonomy-experiment", SMALL_NEWS_RUN)
        assert run["state_type"] == "COMPLETED", stack.log("serve")[-4000:]
        assert run["name"] in stack.log("serve")  # executed by the serve process, no worker

        artifacts = client.post(
            "/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run["id"]]}}}
        ).json()
        keys = {a["key"] for a in artifacts}
        assert {
            "evaluation-news-test",
            "promotion-report-news-test",
            "dataset-summary-news-test",
            "ledger-news-test",
        } <= keys
        evaluation = next(a for a in artifacts if a["key"] == "evaluation-news-test")
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

    # A later champion (recorded directly: a second served run would add a minute), then a
    # rollback from the CLI to the served run's entry: recorded, and the artifact refreshed.
    registry = ChampionRegistry(DirectoryStore(stack.home / "store"), "news-test")
    later = ChampionRecord.model_validate(
        {**entry["champion"], "model_id": "local-model/later", "deployment_id": "dep-later"}
    )
    registry.promote(later)
    out = stack.run(str(BIN / "router-distill"), "rollback", "--router", "news-test", "--to", "1")
    assert "ledger artifact ledger-news-test updated" in out
    with _api(stack) as client:
        latest = client.post(
            "/artifacts/filter",
            json={"artifacts": {"key": {"any_": ["ledger-news-test"]}}, "sort": "CREATED_DESC"},
        ).json()[0]
    rows = json.loads(latest["data"])
    assert [row["action"] for row in rows] == ["rollback", "promote", "promote"]
    assert rows[0]["model"] == entry["champion"]["model_id"]


def test_stopping_serve_leaves_the_weekly_schedule_active(stack: Stack) -> None:
    logger.info("serve stopped in %.1f s", stack.stop_one(stack.process("serve")))
    with _api(stack) as client:
        retraining = _deployment(client, "scheduled-retraining")
    assert retraining["paused"] is False
    [schedule] = retraining["schedules"]
    assert schedule["active"] is True and schedule["schedule"]["cron"] == "0 3 * * 1"


# Sound-only, foreign-language and slang searches: a student trained on a few hundred synthetic
# news queries misroutes them, and most of their tokens never occurred in its training data.
HARD_TRAFFIC = [
    "sonido de lluvia sobre el tejado de chapa",
    "bruit des vagues la nuit sans musique",
    "geräusch von donner und regen zum einschlafen",
    "asmr whispering tapping no talking",
    "dial-up modem noise",
    "vinyl crackle loop",
    "squeaky sneakers on a gym floor",
    "cicadas at dusk",
    "kettle whistling",
    "geese honking overhead",
    "didgeridoo drone",
    "a baby giggling uncontrollably",
]


def test_monitor_drift_event_starts_the_retraining_deployment(stack: Stack) -> None:
    """router.drift from the monitor (run from the CLI against the server) fires the documented
    automation, which creates a run of scheduled-retraining (no executor is running: it waits)."""
    with _api(stack) as client:
        retraining = _deployment(client, "scheduled-retraining")
    with temporary_settings({PREFECT_API_URL: stack.api_url}):
        retrain_on_drift(retraining["id"], router="news-test").create()
    traffic = stack.root / "hard-traffic.jsonl"
    traffic.write_text(
        "".join(
            json.dumps({"timestamp": f"2026-11-20T{i:02d}:00:00Z", "query": q}) + "\n"
            for i, q in enumerate(HARD_TRAFFIC)
        ),
        "utf-8",
    )
    out = stack.run(
        str(BIN / "router-distill"),
        "monitor",
        "--router",
        "news-test",
        "--taxonomy",
        "news_archives",
        "--traffic",
        str(traffic),
        "--sample-size",
        "10",
        timeout=180,
    )
    assert "DRIFT:" in out, out

    def drift_runs() -> list[dict[str, Any]]:
        with _api(stack) as client:
            runs = client.post(
                "/flow_runs/filter",
                json={"flow_runs": {"deployment_id": {"any_": [retraining["id"]]}}},
            ).json()
        return [
            r for r in runs if r["parameters"].get("triggered_by") == "automation: router.drift"
        ]

    stack.wait_until("the retraining run started by router.drift", lambda: bool(drift_runs()), 90)
    [run] = drift_runs()
    assert run["parameters"]["seed_policy"] == "scheduled-date"  # the deployment's presets
    with _api(stack) as client:  # nobody executes it here; cancel it so nothing is left
        client.post(
            f"/flow_runs/{run['id']}/set_state",
            json={"state": {"type": "CANCELLED"}, "force": True},
        )


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
