"""The whole flow on the embedded default, small sizes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prefect.artifacts import Artifact

from flows.distill import distill_router
from intent_router.backends.base import JobState
from intent_router.backends.local import LocalBackend
from intent_router.dedupe import leaked_pairs
from intent_router.errors import BackendLimitError, DistillationJobFailed
from intent_router.params import DistillParams
from intent_router.registry import ChampionRegistry
from intent_router.serving import load_router
from intent_router.storage import DirectoryStore
from router_distill.cli import main
from tests.flows.conftest import TeacherCalls
from tests.support.runs import LENIENT_GATE, SMALL_RUN

SMALL = SMALL_RUN


def store(home: Path) -> DirectoryStore:
    return DirectoryStore(home / "store")


def test_full_flow_promotes_and_second_run_pays_no_teacher_calls(
    router_home: Path, teacher_calls: TeacherCalls, capsys: pytest.CaptureFixture[str]
) -> None:
    params = DistillParams.model_validate({**SMALL, "gate": LENIENT_GATE})
    first = distill_router(**params.flow_parameters())

    assert first.outcome == "promoted"
    assert teacher_calls.count == first.teacher_calls > 0
    assert first.dataset.train_records == 400
    assert {r.overall.role for r in first.evaluations} >= {
        "candidate",
        "teacher",
        "prior",
        "base-student",
    }
    teacher_row = next(r for r in first.evaluations if r.overall.role == "teacher")
    assert teacher_row.overall.top_signal_accuracy == 1.0
    assert "novel-vocabulary" in teacher_row.slices
    # Real queries beside the synthetic ones: the traffic slice and the golden set, every target.
    assert first.traffic is not None and first.traffic.train > 0 and first.traffic.holdout > 0
    # Every labelled query is used, except the few the dedupe drops: a traffic holdout query
    # with a near-duplicate among the synthetic training queries leaves the holdout.
    used = first.traffic.train + first.traffic.holdout
    assert used <= first.traffic.teacher_calls <= used + 5
    assert first.golden is not None and first.golden["queries"] >= 400
    for row in first.evaluations:
        assert "traffic" in row.slices and row.slices["traffic"].n == first.traffic.holdout
        assert row.golden is not None and row.golden.n == first.golden["queries"]
    gate_checks = {c["name"] for c in first.gate["checks"]}
    assert "golden_top1" in gate_checks
    champion = ChampionRegistry(store(router_home), "default").current()
    assert champion is not None and champion.model_id == first.model_id
    # The champion carries its cascade: calibrated on this run's holdout, with its curve.
    policy = champion.cascade
    assert policy is not None and policy == first.cascade
    holdout_n = sum(r.overall.n for r in first.evaluations if r.overall.role == "candidate")
    assert policy.calibration.n >= holdout_n
    assert policy.curve[0].local_share == 1.0 and policy.curve[-1].local_share == 0.0
    assert policy.chosen.accuracy >= policy.target_accuracy == params.cascade_target_accuracy
    assert all(p.golden_accuracy is not None for p in policy.curve)
    train_lines = Path(first.dataset.train_uri.removeprefix("file://")).read_text().splitlines()
    assert len(train_lines) == 400
    assert json.loads(train_lines[0])["schemaVersion"] == "bedrock-conversation-2024"
    holdout = [
        json.loads(line)["query"]
        for line in Path(first.dataset.holdout_uri.removeprefix("file://")).read_text().splitlines()
    ]
    train_queries = [json.loads(line)["messages"][0]["content"][0]["text"] for line in train_lines]
    assert leaked_pairs(train_queries, holdout, threshold=params.near_duplicate_threshold) == []
    for kind in (
        "dataset-summary",
        "evaluation",
        "golden",
        "cascade",
        "promotion-report",
        "training-dataset",
    ):
        assert Artifact.get(f"{kind}-default") is not None, kind
        assert Artifact.get(kind) is None, f"{kind} is not keyed per router"
    assert first.dataset.cached_batches == 0
    # The service answers with the champion the CLI and the ledger artifact show.
    ledger = Artifact.get("ledger-default")
    assert ledger is not None and ledger.data is not None
    newest = json.loads(ledger.data)[0] if isinstance(ledger.data, str) else ledger.data[0]
    with load_router("default", watch=False) as router:
        answer = router.route("sound of rain on a tin roof")
        served = router.champion
    assert answer.model_id == newest["model"] == first.model_id and not answer.fallback
    assert served is not None and served.prior is not None  # the fallback's training mean
    assert main(["champion"]) == 0
    assert json.loads(capsys.readouterr().out)["model_id"] == answer.model_id

    teacher_calls.count = 0
    second = distill_router(**params.flow_parameters())
    assert teacher_calls.count == 0  # every batch came from the cache
    assert second.teacher_calls == 0  # and the summary says so
    assert second.dataset.cached_batches == SMALL["batches"] + 2  # + the holdout batches
    assert second.model_id == first.model_id
    assert second.outcome == "unchanged"
    assert len(ChampionRegistry(store(router_home), "default").ledger()) == 1


def test_rejected_candidate_has_its_deployment_deleted(router_home: Path) -> None:
    strict = {"min_parse_rate": 0.99, "min_top_signal_accuracy": 0.999, "min_mean_rubric": 4.99}
    summary = distill_router(**{**SMALL, "seed": 11, "gate": strict})

    assert summary.outcome == "rejected"
    assert summary.deployment_id is None
    assert "top-signal accuracy" in summary.gate["summary"]
    assert list((router_home / "store" / "deployments").glob("*.json")) == []
    assert ChampionRegistry(store(router_home), "default").current() is None


def test_count_the_backend_cannot_accept_fails_before_generation(
    router_home: Path, teacher_calls: TeacherCalls
) -> None:
    with pytest.raises(BackendLimitError, match="outside what backend 'local' accepts"):
        distill_router(**{**SMALL, "train_count": 50})
    assert teacher_calls.count == 0


def test_crash_while_waiting_then_rerun_resumes_from_cache(
    router_home: Path, teacher_calls: TeacherCalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = DistillParams.model_validate({**SMALL, "seed": 23, "gate": LENIENT_GATE})
    original = LocalBackend.job_status

    def failing(self: LocalBackend, job_id: str) -> Any:
        status = original(self, job_id)
        return status.model_copy(update={"state": JobState.FAILED, "failure_message": "node lost"})

    monkeypatch.setattr(LocalBackend, "job_status", failing)
    with pytest.raises(DistillationJobFailed, match="node lost"):
        distill_router(**params.flow_parameters())
    paid = teacher_calls.count
    assert paid > 0

    monkeypatch.setattr(LocalBackend, "job_status", original)
    teacher_calls.count = 0
    summary = distill_router(**params.flow_parameters())
    assert teacher_calls.count == 0
    assert summary.teacher_calls == 0 and summary.dataset.cached_batches > 0
    assert summary.outcome == "promoted"
    assert len(list((router_home / "store" / "jobs").glob("*.json"))) == 1
    assert len(list((router_home / "store" / "deployments").glob("*.json"))) == 1
