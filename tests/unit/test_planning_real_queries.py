"""Pure planning for real queries: the scheduled-date seed and the traffic split."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from intent_router.params import DistillParams
from intent_router.planning import plan_generation, split_traffic, training_seed
from intent_router.taxonomy import builtin_taxonomy
from intent_router.traffic import TrafficQuery


def test_training_seed_follows_the_policy() -> None:
    monday = date(2026, 11, 30)
    assert training_seed(DistillParams(seed=11), monday) == 11
    dated = DistillParams(seed=11, seed_policy="scheduled-date")
    assert training_seed(dated, monday) == 20261130
    assert training_seed(dated, monday + timedelta(days=7)) == 20261207  # next week: new data
    assert training_seed(dated, None) == 11


def test_the_holdout_does_not_move_with_the_training_seed() -> None:
    taxonomy = builtin_taxonomy()
    small = {"train_count": 200, "holdout_count": 40, "novel_vocabulary_count": 0, "batches": 2}
    week1 = plan_generation(DistillParams(**small, seed=20261130), taxonomy)
    week2 = plan_generation(DistillParams(**small, seed=20261207), taxonomy)
    assert week1.holdout_batches == week2.holdout_batches
    assert week1.train_batches != week2.train_batches


def queries(n: int) -> list[TrafficQuery]:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    return [
        TrafficQuery(query=f"q{i}", timestamp=start + timedelta(hours=i), source="log", line=i + 1)
        for i in range(n)
    ]


def test_split_traffic_holds_out_the_newest_and_caps_training_to_the_newest_older() -> None:
    traffic = queries(20)
    train, holdout = split_traffic(traffic, holdout_share=0.1, train_cap=5)
    assert [q.query for q in holdout] == ["q18", "q19"]
    assert [q.query for q in train] == ["q13", "q14", "q15", "q16", "q17"]
    train, holdout = split_traffic(traffic, holdout_share=0.0, train_cap=0)
    assert (train, holdout) == ([], [])
