"""Real queries in the flow: search-log traffic labelled once per query, appended traffic that
changes the model, scheduled runs that are not `unchanged`, a rollback that holds, the golden
set and traffic checked before any teacher call."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from deployments.specs import load_specs
from flows.distill import distill_router
from intent_router.backends.base import LabelResult
from intent_router.backends.local import LocalBackend
from intent_router.errors import UserInputError
from intent_router.golden import load_golden
from intent_router.inputs import builtin_traffic_path
from intent_router.registry import ChampionRegistry
from intent_router.storage import DirectoryStore
from intent_router.taxonomy import Taxonomy, builtin_taxonomy
from intent_router.traffic import TrafficQuery, clean_traffic, read_local_traffic
from tests.flows.conftest import TeacherCalls
from tests.support.runs import LENIENT_GATE, TINY_RUN

ALWAYS = {
    **LENIENT_GATE,
    "max_accuracy_regression": 1.0,
    "max_rubric_regression": 4.0,
    "max_golden_regression": 1.0,
}
TINY: dict[str, Any] = {**TINY_RUN, "gate": ALWAYS}
SAMPLE = builtin_traffic_path("default")
REALISTIC = Path(__file__).resolve().parents[1] / "data" / "realistic_queries.csv"


def sample_lines(n: int) -> list[str]:
    assert SAMPLE is not None
    return SAMPLE.read_text("utf-8").splitlines()[:n]


def write_log(path: Path, lines: Sequence[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def new_lines(existing: Path, count: int, start: str = "2026-12-01T00:00:00") -> list[str]:
    """`count` queries that survive cleaning next to the existing log and the golden set,
    timestamped after it (from the hand-written teacher-development queries)."""
    with REALISTIC.open(encoding="utf-8", newline="") as handle:
        candidates = [row["query"] for row in csv.DictReader(handle)]
    taxonomy = builtin_taxonomy()
    assert taxonomy.golden is not None
    golden = load_golden(taxonomy.golden, taxonomy.signal_names).queries
    old = [q.query for q in read_local_traffic(existing).queries]
    fresh = [
        TrafficQuery(query=q, timestamp=None, source="new", line=i + 1)
        for i, q in enumerate(candidates)
    ]
    kept = clean_traffic(fresh, exclude=[*old, *golden]).queries
    assert len(kept) >= count
    return [
        json.dumps({"timestamp": f"{start[:10]}T{i // 60:02d}:{i % 60:02d}:00Z", "query": q.query})
        for i, q in enumerate(kept[:count])
    ]


def test_appended_traffic_is_labelled_once_and_trains_a_different_model(
    router_home: Path, tmp_path: Path, teacher_calls: TeacherCalls
) -> None:
    log = write_log(tmp_path / "search.jsonl", sample_lines(400))
    run = {**TINY, "router_name": "traffic-growth", "traffic": str(log)}
    first = distill_router(**run)
    assert first.traffic is not None
    assert first.traffic.teacher_calls > 0 and first.traffic.cached_labels == 0
    assert first.traffic.train > 0 and first.traffic.holdout > 0
    # The mess is cleaned before anything is paid: junk counted, duplicates collapsed.
    assert first.traffic.skipped_lines > 0
    assert first.traffic.cleaning["exact_duplicates"] > 0

    with log.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(new_lines(log, 100)) + "\n")
    teacher_calls.count = 0
    second = distill_router(**run)
    assert second.traffic is not None
    assert second.traffic.teacher_calls == 100  # exactly the new lines
    assert second.traffic.new_since_last_run == 100
    assert second.traffic.cached_labels > 0
    assert second.model_id != first.model_id
    assert second.outcome == "promoted"
    assert second.dataset.teacher_calls == 0  # the synthetic batches came from the cache
    assert teacher_calls.count == 100


def test_labels_paid_before_a_failure_stay_cached(
    router_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = write_log(tmp_path / "search.jsonl", sample_lines(700))
    original = LocalBackend.label
    calls = {"n": 0}

    def fails_on_third_chunk(
        self: LocalBackend, queries: Sequence[str], taxonomy: Taxonomy
    ) -> list[LabelResult]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise ValueError("teacher fell over")  # not transient: the run fails
        return original(self, queries, taxonomy)

    monkeypatch.setattr(LocalBackend, "label", fails_on_third_chunk)
    run = {**TINY, "router_name": "paid-labels", "traffic": str(log)}
    with pytest.raises(ValueError, match="teacher fell over"):
        distill_router(**run)
    monkeypatch.setattr(LocalBackend, "label", original)
    summary = distill_router(**run)
    assert summary.traffic is not None
    used = summary.traffic.train + summary.traffic.holdout
    assert summary.traffic.cached_labels == 200  # two chunks of 100 were paid and kept
    assert summary.traffic.teacher_calls < used


def test_scheduled_runs_with_new_traffic_change_and_a_rollback_holds(
    router_home: Path, tmp_path: Path
) -> None:
    [spec] = [s for s in load_specs() if s.name == "scheduled-retraining"]
    log = write_log(tmp_path / "search.jsonl", sample_lines(400))
    run = {**spec.parameters, **TINY, "router_name": "weekly", "traffic": str(log)}
    first = distill_router(**run)
    with log.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(new_lines(log, 40)) + "\n")
    second = distill_router(**run)
    assert (first.outcome, second.outcome) == ("promoted", "promoted")
    assert second.model_id != first.model_id

    unchanged = distill_router(**run)  # nothing new: the same model, honestly unchanged
    assert unchanged.outcome == "unchanged"

    registry = ChampionRegistry(DirectoryStore(router_home / "store"), "weekly")
    registry.rollback(to_entry=1, note="operator: second model misroutes music")
    again = distill_router(**run)  # rebuilds the rolled-back model from the same inputs
    assert again.model_id == second.model_id
    assert again.outcome == "blocked"
    assert any(c["name"] == "not_rolled_back" and not c["passed"] for c in again.gate["checks"])
    champion = registry.current()
    assert champion is not None and champion.model_id == first.model_id


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"traffic": "/nonexistent/search.log"}, "does not exist"),
        ({"golden": "/nonexistent/golden.jsonl"}, "golden"),
        ({"taxonomy": "news_archives", "golden": "none", "require_golden": True}, "golden"),
    ],
)
def test_bad_real_query_inputs_stop_before_any_teacher_call(
    router_home: Path, teacher_calls: TeacherCalls, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(UserInputError, match=message):
        distill_router(**{**TINY, **overrides})
    assert teacher_calls.count == 0


def test_traffic_without_a_usable_query_stops_before_any_teacher_call(
    router_home: Path, tmp_path: Path, teacher_calls: TeacherCalls
) -> None:
    junk = tmp_path / "junk.jsonl"
    junk.write_bytes(b'{"timestamp": "2026-10-01T00:00:00Z"}\n\xff\xfe broken\n{"query": ""}\n')
    with pytest.raises(UserInputError, match="no usable query"):
        distill_router(**{**TINY, "traffic": str(junk)})
    assert teacher_calls.count == 0
