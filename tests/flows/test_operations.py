"""Operating the flow: approval gate, promotion events, the ledger artifact, Dask fan-out."""

from __future__ import annotations

import contextvars
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState
from prefect.client.schemas.objects import StateType
from prefect.flow_runs import resume_flow_run

import flows.fanout as fanout
import tasks.events as events_module
from flows.distill import distill_router
from intent_router.params import DistillParams
from intent_router.registry import ChampionRegistry
from intent_router.storage import DirectoryStore
from tests.support.runs import LENIENT_GATE, TINY_RUN

SMALL: dict[str, Any] = {**TINY_RUN, "gate": LENIENT_GATE}


class Events:
    def __init__(self) -> None:
        self.emitted: list[dict[str, Any]] = []


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> Events:
    recorded = Events()
    original = events_module.emit_event

    def recording(**kwargs: Any) -> Any:
        recorded.emitted.append(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(events_module, "emit_event", recording)
    return recorded


def _approve_when_paused(answer: dict[str, Any], stop: threading.Event) -> None:
    """Stand-in for a person pressing Resume in the UI: answer the first paused run."""
    with get_client(sync_client=True) as client:
        while not stop.wait(0.2):
            paused = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type={"any_": [StateType.PAUSED]})
                )
            )
            if paused:
                resume_flow_run(paused[0].id, run_input=answer)
                return


def _needs_approval(router: str, timeout_seconds: int) -> DistillParams:
    return DistillParams.model_validate(
        {
            **SMALL,
            "router_name": router,
            "require_approval": True,
            "approval_timeout_seconds": timeout_seconds,
        }
    )


def _run_with_reviewer(params: DistillParams, answer: dict[str, Any]) -> Any:
    stop = threading.Event()
    context = contextvars.copy_context()  # carries the test harness's API settings
    reviewer = threading.Thread(target=context.run, args=(_approve_when_paused, answer, stop))
    reviewer.start()
    try:
        return distill_router(**params.flow_parameters(), return_state=True)
    finally:
        stop.set()
        reviewer.join(timeout=30)


def test_promotion_emits_event_and_publishes_the_ledger(router_home: Path, events: Events) -> None:
    summary = distill_router(**{**SMALL, "router_name": "events"})

    assert summary.outcome == "promoted"
    [event] = events.emitted
    assert event["event"] == "router.promoted"
    assert event["resource"]["prefect.resource.id"] == "router.events"
    payload = event["payload"]
    assert payload["router"] == "events" and payload["model_id"] == summary.model_id
    assert payload["previous_champion"] is None
    assert payload["metrics"]["top_signal_accuracy"] > 0.3
    assert payload["run_id"] == summary.flow_run_id
    ledger = Artifact.get("ledger-events")
    assert ledger is not None and ledger.type == "table"
    rows = json.loads(str(ledger.data))
    assert rows[0]["model"] == summary.model_id and rows[0]["action"] == "promote"


def test_rejection_emits_router_rejected(router_home: Path, events: Events) -> None:
    strict = {"min_parse_rate": 0.99, "min_top_signal_accuracy": 0.999, "min_mean_rubric": 4.99}
    params = DistillParams.model_validate({**SMALL, "router_name": "strict", "gate": strict})
    summary = distill_router(**params.flow_parameters())

    assert summary.outcome == "rejected"
    [event] = events.emitted
    assert event["event"] == "router.rejected"
    assert event["payload"]["gate"].startswith("REJECT")
    assert ChampionRegistry(DirectoryStore(router_home / "store"), "strict").current() is None


def test_approved_run_continues_to_promotion(router_home: Path) -> None:
    params = _needs_approval("approved", timeout_seconds=20)  # polls every 5 s
    state = _run_with_reviewer(params, {"approve": True, "reviewer": "qa"})

    assert state.is_completed(), state
    assert state.result().outcome == "promoted"


def test_declined_run_is_cancelled_before_the_job(router_home: Path) -> None:
    params = _needs_approval("declined", timeout_seconds=20)
    state = _run_with_reviewer(params, {"approve": False, "reviewer": "qa", "note": "too big"})

    assert state.is_cancelled(), state
    assert "declined by qa: too big" in str(state.message)
    assert not (router_home / "store" / "jobs").exists()
    assert ChampionRegistry(DirectoryStore(router_home / "store"), "declined").current() is None


def test_unanswered_approval_times_out_and_cancels(router_home: Path) -> None:
    params = _needs_approval("unanswered", timeout_seconds=1)
    state = distill_router(**params.flow_parameters(), return_state=True)

    assert state.is_cancelled(), state
    assert "within 1 s" in str(state.message)


def test_batches_fan_out_on_a_local_dask_cluster(
    router_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(fanout.DASK_WORKERS_ENV, "1")
    started: list[Any] = []
    original = fanout.dask_runner

    def spying() -> Any:
        runner = original()
        started.append(runner)
        return runner

    monkeypatch.setattr(fanout, "dask_runner", spying)
    summary = distill_router(**SMALL, router_name="dask", task_runner="dask")

    assert len(started) == 1
    assert summary.outcome == "promoted"
    assert summary.dataset.train_records == 300
