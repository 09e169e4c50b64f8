"""Operating safely as a team: honest label caches, expiry, one promotion at a time per router,
clean-up of a run that crashed or was cancelled."""

from __future__ import annotations

import contextvars
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prefect.states import Crashed

from flows.cleanup import tear_down_run
from flows.distill import distill_router
from intent_router.backends.base import TeacherFingerprint
from intent_router.backends.local import LocalBackend
from intent_router.errors import ModelArtifactError
from intent_router.journal import RunJournal
from intent_router.registry import ChampionRegistry
from intent_router.storage import DirectoryStore
from intent_router.taxonomy import Taxonomy
from tests.flows.conftest import TeacherCalls
from tests.support.runs import LENIENT_GATE, TINY_RUN

TINY: dict[str, Any] = {**TINY_RUN, "gate": LENIENT_GATE}


def test_another_teacher_never_reuses_cached_labels(
    router_home: Path, teacher_calls: TeacherCalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = distill_router(**TINY, router_name="fingerprint", seed=31)
    paid = teacher_calls.count
    assert paid == first.teacher_calls > 0

    original = LocalBackend.teacher_fingerprint

    def other_teacher(self: LocalBackend, taxonomy: Taxonomy) -> TeacherFingerprint:
        return original(self, taxonomy).model_copy(update={"teacher_model_id": "another"})

    monkeypatch.setattr(LocalBackend, "teacher_fingerprint", other_teacher)
    teacher_calls.count = 0
    second = distill_router(**TINY, router_name="fingerprint", seed=31)
    assert teacher_calls.count == paid  # every batch labelled again, by the other teacher
    assert second.dataset.cached_batches == 0


def test_cached_labels_expire_after_their_maximum_age(
    router_home: Path, teacher_calls: TeacherCalls
) -> None:
    young = 1e-6  # days: 0.09 s, over before the first run has finished
    distill_router(**TINY, router_name="expiry", seed=32, cache_max_age_days=young)
    teacher_calls.count = 0
    again = distill_router(**TINY, router_name="expiry", seed=32, cache_max_age_days=young)
    assert teacher_calls.count > 0 and again.dataset.cached_batches == 0


def test_two_runs_of_one_router_at_once_promote_one_after_the_other(router_home: Path) -> None:
    """Each run takes the router's lock from the champion check to the champion write."""
    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def run(seed: int) -> None:
        try:
            results[seed] = distill_router(**TINY, router_name="race", seed=seed)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(run, seed))
        for seed in (41, 42)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert errors == []
    registry = ChampionRegistry(DirectoryStore(router_home / "store"), "race")
    ledger = registry.ledger()
    assert [e.entry for e in ledger] == list(range(1, len(ledger) + 1))
    assert all(e.previous_model_id != e.champion.model_id for e in ledger)
    promoted = [e for e in ledger if e.action == "promote"]
    assert len(promoted) == sum(1 for r in results.values() if r.outcome == "promoted") >= 1
    champion = registry.current()
    assert champion is not None and champion == promoted[-1].champion
    # Only the champion's deployment is left; the other run's (or the superseded) one is gone.
    live = sorted(p.stem for p in (router_home / "store" / "deployments").glob("*.json"))
    assert live == [champion.deployment_id]


def test_crash_hook_deletes_what_the_dead_run_deployed_but_not_the_champion(
    router_home: Path,
) -> None:
    assert distill_router.on_crashed_hooks == [tear_down_run]
    assert distill_router.on_cancellation_hooks == [tear_down_run]
    summary = distill_router(**TINY, router_name="crashed", seed=33)
    assert summary.outcome == "promoted"
    store = DirectoryStore(router_home / "store")
    champion = ChampionRegistry(store, "crashed").current()
    assert champion is not None

    # A second run deployed its candidate, then its process was killed.
    backend = LocalBackend(store)
    orphan = backend.deploy(champion.model_id, "orphan", "token-of-the-dead-run")
    journal = RunJournal(store, "dead-run")
    journal.record_deployment(orphan)
    journal.record_deployment(champion.deployment_id)  # listed, but it serves: kept
    flow_run = SimpleNamespace(
        id="dead-run", parameters={**TINY, "router_name": "crashed", "seed": 33}
    )
    tear_down_run(distill_router, flow_run, Crashed(message="process killed"))

    live = sorted(p.stem for p in (router_home / "store" / "deployments").glob("*.json"))
    assert live == [champion.deployment_id]


def test_after_a_rollback_the_next_promotion_deletes_the_rolled_away_deployment(
    router_home: Path,
) -> None:
    always = {
        **LENIENT_GATE,
        "max_accuracy_regression": 1.0,
        "max_rubric_regression": 4.0,
        "max_golden_regression": 1.0,
    }
    run = {**TINY, "router_name": "rollaway", "gate": always}
    first = distill_router(**run, seed=51)
    second = distill_router(**run, seed=52)
    assert (first.outcome, second.outcome) == ("promoted", "promoted")
    registry = ChampionRegistry(DirectoryStore(router_home / "store"), "rollaway")
    registry.rollback(to_entry=1)  # the operator goes back to the first model

    third = distill_router(**run, seed=53)
    assert third.outcome == "promoted"
    champion = registry.current()
    assert champion is not None and champion.model_id == third.model_id
    # The second champion's deployment (rolled away from) and the first one's redeployment
    # are both gone: only the live champion's deployment is left.
    live = sorted(p.stem for p in (router_home / "store" / "deployments").glob("*.json"))
    assert live == [champion.deployment_id]
    assert [e.action for e in registry.ledger()] == [
        "promote",
        "promote",
        "rollback",
        "redeploy",
        "promote",
    ]


def test_a_champion_whose_model_is_gone_stops_the_run_before_any_teacher_call(
    router_home: Path, teacher_calls: TeacherCalls
) -> None:
    distill_router(**TINY, router_name="lost-model", seed=34)
    champion = ChampionRegistry(DirectoryStore(router_home / "store"), "lost-model").current()
    assert champion is not None
    backend = LocalBackend(DirectoryStore(router_home / "store"))
    (router_home / "store" / backend.artifact_path(champion.model_id)).unlink()
    teacher_calls.count = 0
    with pytest.raises(ModelArtifactError, match="is missing"):
        distill_router(**TINY, router_name="lost-model", seed=35)
    assert teacher_calls.count == 0
