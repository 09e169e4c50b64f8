"""The whole flow on each domain taxonomy, small sizes: promoted, and kept under its own router."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flows.distill import distill_router
from intent_router.registry import ChampionRegistry
from intent_router.storage import DirectoryStore
from intent_router.taxonomy import builtin_taxonomy
from tests.support.runs import LENIENT_GATE, SMALL_RUN

SMALL = SMALL_RUN


@pytest.mark.parametrize("name", ["news_archives", "sports_broadcasting"])
def test_domain_taxonomy_run_promotes_a_champion_under_its_own_router(
    router_home: Path, name: str
) -> None:
    router = builtin_taxonomy(name).name
    store = DirectoryStore(router_home / "store")
    started = time.perf_counter()

    summary = distill_router(taxonomy=name, **SMALL, gate=LENIENT_GATE)

    elapsed = time.perf_counter() - started
    candidate = next(r for r in summary.evaluations if r.overall.role == "candidate")
    print(
        f"{name}: {summary.outcome} in {elapsed:.1f} s, candidate top-signal agreement "
        f"{candidate.overall.top_signal_accuracy:.3f} (n={candidate.overall.n})"
    )
    assert summary.outcome == "promoted"
    assert summary.router == router
    assert summary.dataset.train_records == SMALL["train_count"]
    assert candidate.overall.top_signal_accuracy >= LENIENT_GATE["min_top_signal_accuracy"]
    champion = ChampionRegistry(store, router).current()
    assert champion is not None
    assert champion.model_id == summary.model_id
    assert len(ChampionRegistry(store, router).ledger()) == 1
    assert ChampionRegistry(store, "default").current() is None
