"""The gate's golden checks: the floor, no regression against the champion and against the
best promotion on the same golden version, and the refusal of a rolled-back model."""

from __future__ import annotations

from typing import Any

import pytest

from intent_router.gate import GateConfig, GoldenEvidence, decide
from tests.unit.test_metrics_gate import evaluation

CONFIG = GateConfig()


def names(decision: Any, passed: bool) -> set[str]:
    return {c.name for c in decision.checks if c.passed is passed}


def evidence(**overrides: Any) -> GoldenEvidence:
    values: dict[str, Any] = {"version": "abc", "n": 400, "candidate": 0.9}
    values.update(overrides)
    return GoldenEvidence.model_validate(values)


def test_golden_floor_defaults_to_085_strict_top1() -> None:
    assert CONFIG.min_golden_top1 == 0.85
    assert decide(evaluation(), None, CONFIG, golden=evidence(candidate=0.85)).promote
    decision = decide(evaluation(), None, CONFIG, golden=evidence(candidate=0.84))
    assert not decision.promote
    assert names(decision, False) == {"golden_top1"}
    assert "golden strict top-1 0.840 on 400 queries (floor 0.850)" in decision.summary


@pytest.mark.parametrize(
    ("champion", "best", "failing"),
    [
        (0.93, None, {"no_golden_regression"}),  # 0.90 < 0.93 - 0.02
        (0.92, None, set()),  # exactly at the tolerance
        (None, 0.95, {"no_golden_regression_vs_best"}),
        (0.90, 0.95, {"no_golden_regression_vs_best"}),  # the ratchet: best, not only champion
        (0.91, 0.91, set()),
    ],
)
def test_golden_no_regression_against_champion_and_best(
    champion: float | None, best: float | None, failing: set[str]
) -> None:
    golden = evidence(candidate=0.90, champion=champion, best=best, best_model="m-best")
    decision = decide(evaluation(), None, CONFIG, golden=golden)
    assert names(decision, False) == failing
    assert decision.promote is (not failing)


def test_golden_tolerance_is_a_parameter() -> None:
    lenient = GateConfig(max_golden_regression=0.1)
    golden = evidence(candidate=0.90, champion=0.99)
    assert not decide(evaluation(), None, CONFIG, golden=golden).promote
    assert decide(evaluation(), None, lenient, golden=golden).promote


def test_a_rolled_back_model_is_refused_with_that_reason() -> None:
    decision = decide(evaluation(), None, CONFIG, golden=evidence(), rolled_back=True)
    assert not decision.promote
    assert names(decision, False) == {"not_rolled_back"}
    assert "rolled back" in decision.summary
