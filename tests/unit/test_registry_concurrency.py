"""Several OS processes change one router's registry at once (DirectoryStore + flock)."""

from __future__ import annotations

import itertools
import multiprocessing
from pathlib import Path
from typing import Any

from intent_router.errors import UserInputError
from intent_router.registry import ChampionRecord, ChampionRegistry
from intent_router.storage import DirectoryStore
from tests.support.records import champion_record

WORKERS = 3
OPERATIONS = 40


def champion(model_id: str) -> ChampionRecord:
    return champion_record(model_id)


def _worker(root: str, worker: int, start: Any, results: Any) -> None:
    """Alternate promotions of new models and rollbacks; report how many were recorded."""
    registry = ChampionRegistry(DirectoryStore(root), "default")
    start.wait()
    recorded = 0
    for i in range(OPERATIONS):
        try:
            if i % 2:
                registry.rollback()
            else:
                registry.promote(champion(f"w{worker}-m{i}"))
            recorded += 1
        except UserInputError:  # e.g. "no earlier champion" right after a rollback to the first
            pass
    results.put(recorded)


def test_processes_racing_on_one_ledger_get_unique_contiguous_entries(tmp_path: Path) -> None:
    root = tmp_path / "store"
    registry = ChampionRegistry(DirectoryStore(root), "default")
    registry.promote(champion("seed-a"))
    registry.promote(champion("seed-b"))
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(WORKERS)
    results = context.Queue()
    processes = [
        context.Process(target=_worker, args=(str(root), n, start, results)) for n in range(WORKERS)
    ]
    for process in processes:
        process.start()
    recorded = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0

    entries = registry.ledger()  # raises CorruptStateError on any bad line
    raw_lines = (root / "routers/default/ledger.jsonl").read_bytes().splitlines()
    assert len(raw_lines) == len(entries) == 2 + sum(recorded)
    assert sum(recorded) > WORKERS * OPERATIONS // 2  # every promotion at least
    assert [e.entry for e in entries] == list(range(1, len(entries) + 1))
    # serialised: each change saw the one before it
    for before, after in itertools.pairwise(entries):
        assert after.previous_model_id == before.champion.model_id
    assert registry.current() == entries[-1].champion
    assert not list(root.rglob("*.tmp"))
