"""Unit tests for intent_router.metrics (rubric, Wilson interval, evaluation) and gate.decide."""

from __future__ import annotations

import json
from typing import Any

import pytest

from intent_router.gate import GateConfig, decide
from intent_router.metrics import (
    UNPARSEABLE,
    ModelEvaluation,
    agrees,
    evaluate_outputs,
    rubric_score,
    top_signal,
    top_signals,
    wilson_interval,
)
from intent_router.pricing import ModelPrice

SIGNALS = ("visual", "audio", "transcription", "metadata")
REFERENCE = {"visual": 0.7, "audio": 0.1, "transcription": 0.1, "metadata": 0.1}


def weights(visual: float, audio: float, transcription: float, metadata: float) -> dict[str, float]:
    return dict(zip(SIGNALS, (visual, audio, transcription, metadata), strict=True))


def output(w: dict[str, float], reasoning: str = "cues") -> str:
    return json.dumps({**w, "reasoning": reasoning})


# -- rubric ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("predicted", "expected"),
    [
        (weights(0.7, 0.1, 0.1, 0.1), 5),  # identical
        (weights(0.65, 0.15, 0.1, 0.1), 5),  # worst error exactly 0.05
        (weights(0.6, 0.2, 0.1, 0.1), 4),  # worst error 0.10
        (weights(0.62, 0.12, 0.13, 0.13), 4),
        (weights(0.5, 0.3, 0.1, 0.1), 3),  # top right, worst 0.2, mean 0.1
        (weights(0.45, 0.2, 0.25, 0.1), 3),  # top right, mean 0.125
        (weights(0.3, 0.5, 0.1, 0.1), 2),  # top wrong, mean 0.2
        (weights(0.4, 0.3, 0.3, 0.0), 2),  # top right but mean error 0.2 >= 0.15
        (weights(0.0, 0.0, 0.0, 1.0), 1),  # mean error 0.45 > 0.30
        (weights(0.1, 0.8, 0.05, 0.05), 1),  # mean error 0.35
    ],
)
def test_rubric_levels(predicted: dict[str, float], expected: int) -> None:
    assert rubric_score(REFERENCE, predicted, SIGNALS) == expected


def test_rubric_for_unparseable_prediction_is_one() -> None:
    assert rubric_score(REFERENCE, None, SIGNALS) == 1


def test_rubric_top_signal_right_when_prediction_picks_one_of_tied_reference_tops() -> None:
    tied = weights(0.4, 0.4, 0.1, 0.1)
    predicted = weights(0.2, 0.5, 0.2, 0.1)  # audio: one of the tied tops; mean error 0.1

    assert rubric_score(tied, predicted, SIGNALS) == 3


# -- wilson_interval ------------------------------------------------------------------------------
def test_wilson_interval_of_half() -> None:
    low, high = wilson_interval(50, 100)

    assert low == pytest.approx(0.404, abs=1e-3)
    assert high == pytest.approx(0.596, abs=1e-3)


def test_wilson_interval_of_empty_sample_is_zero() -> None:
    assert wilson_interval(0, 0) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("successes", "total"), [(0, 1), (0, 10), (1, 10), (9, 10), (10, 10), (1000, 1000), (3, 7)]
)
def test_wilson_interval_is_within_unit_range_and_contains_the_estimate(
    successes: int, total: int
) -> None:
    low, high = wilson_interval(successes, total)

    estimate = successes / total
    assert 0.0 <= low <= high <= 1.0
    # the bounds touch the estimate at 0/n and n/n; allow one ulp of float rounding there
    assert low <= estimate + 1e-12
    assert high >= estimate - 1e-12


def test_wilson_interval_narrows_with_more_data() -> None:
    small = wilson_interval(9, 10)
    large = wilson_interval(900, 1000)

    assert large[1] - large[0] < small[1] - small[0]


def test_wilson_interval_of_all_failures_starts_at_zero() -> None:
    low, high = wilson_interval(0, 20)

    assert low == 0.0
    assert 0.0 < high < 0.2


# -- top signal and agreement ---------------------------------------------------------------------
def test_top_signals_returns_every_tied_signal() -> None:
    assert top_signals(weights(0.4, 0.4, 0.1, 0.1), SIGNALS) == {"visual", "audio"}
    assert top_signals(weights(0.25, 0.25, 0.25, 0.25), SIGNALS) == set(SIGNALS)
    assert top_signals(REFERENCE, SIGNALS) == {"visual"}


def test_top_signals_treats_float_noise_as_a_tie() -> None:
    noisy = weights(0.1 + 0.2, 0.3, 0.2, 0.2)  # 0.30000000000000004 vs 0.3

    assert top_signals(noisy, SIGNALS) == {"visual", "audio"}


def test_top_signal_breaks_ties_by_taxonomy_order() -> None:
    assert top_signal(weights(0.1, 0.4, 0.4, 0.1), SIGNALS) == "audio"
    assert top_signal(weights(0.1, 0.4, 0.4, 0.1), tuple(reversed(SIGNALS))) == "transcription"


def test_agrees_when_predicted_top_is_among_tied_reference_tops() -> None:
    tied = weights(0.4, 0.4, 0.1, 0.1)

    assert agrees(tied, weights(0.1, 0.7, 0.1, 0.1), SIGNALS)
    assert agrees(tied, weights(0.7, 0.1, 0.1, 0.1), SIGNALS)
    assert not agrees(tied, weights(0.1, 0.1, 0.7, 0.1), SIGNALS)


def test_agrees_uses_the_first_of_tied_predicted_tops() -> None:
    predicted_tie = weights(0.1, 0.45, 0.45, 0.0)  # top_signal -> audio (earlier)

    assert agrees(weights(0.1, 0.8, 0.05, 0.05), predicted_tie, SIGNALS)
    assert not agrees(weights(0.1, 0.05, 0.8, 0.05), predicted_tie, SIGNALS)


# -- evaluate_outputs -----------------------------------------------------------------------------
PRICE = ModelPrice(model_id="test-model", input_per_1k=1.0, output_per_1k=2.0, source="test")


def tiny_evaluation(**overrides: Any) -> ModelEvaluation:
    references = [
        weights(0.7, 0.1, 0.1, 0.1),
        weights(0.1, 0.7, 0.1, 0.1),
        weights(0.1, 0.1, 0.7, 0.1),
        weights(0.1, 0.1, 0.1, 0.7),
    ]
    outputs = [
        output(weights(0.7, 0.1, 0.1, 0.1)),  # exact: rubric 5, agrees
        "```json\n" + output(weights(0.1, 0.6, 0.2, 0.1)) + "\n```",  # rubric 4, agrees
        output(weights(0.7, 0.1, 0.1, 0.1)),  # wrong top (visual vs transcription): rubric 2
        "I cannot answer that.",  # unparseable
    ]
    kwargs: dict[str, Any] = {
        "model": "candidate",
        "role": "student",
        "references": references,
        "outputs": outputs,
        "latencies_s": [0.01, 0.02, 0.03, 0.04],
        "input_tokens": [100, 100, 100, 100],
        "output_tokens": [50, 50, 50, 50],
        "signals": SIGNALS,
        "price": PRICE,
    }
    kwargs.update(overrides)
    return evaluate_outputs(**kwargs)


def test_evaluate_outputs_parse_rate_and_accuracy() -> None:
    evaluation = tiny_evaluation()

    assert evaluation.n == 4
    assert evaluation.parse_rate == pytest.approx(0.75)
    assert evaluation.top_signal_accuracy == pytest.approx(0.5)
    assert evaluation.accuracy_ci95 == wilson_interval(2, 4)


def test_evaluate_outputs_confusion_counts_the_unparseable_output() -> None:
    confusion = tiny_evaluation().confusion

    assert set(confusion) == set(SIGNALS)
    assert all(set(row) == {*SIGNALS, UNPARSEABLE} for row in confusion.values())
    assert confusion["metadata"][UNPARSEABLE] == 1
    assert confusion["visual"]["visual"] == 1
    assert confusion["audio"]["audio"] == 1
    assert confusion["transcription"]["visual"] == 1
    assert sum(sum(row.values()) for row in confusion.values()) == 4


def test_evaluate_outputs_rubric_counts_include_one_for_unparseable() -> None:
    evaluation = tiny_evaluation()

    # wrong top with mean error exactly 0.30 scores 2; the unparseable output scores 1
    assert evaluation.rubric_counts == {1: 1, 2: 1, 3: 0, 4: 1, 5: 1}
    assert evaluation.mean_rubric == pytest.approx((5 + 4 + 2 + 1) / 4)


def test_evaluate_outputs_mae_uses_parsed_outputs_only() -> None:
    evaluation = tiny_evaluation()

    # parsed errors: visual [0, 0, 0.6], audio [0, 0.1, 0], transcription [0, 0.1, 0.6]
    assert evaluation.mae_per_signal["visual"] == pytest.approx(0.2)
    assert evaluation.mae_per_signal["audio"] == pytest.approx(0.1 / 3)
    assert evaluation.mae_per_signal["transcription"] == pytest.approx(0.7 / 3)
    assert evaluation.mae_per_signal["metadata"] == pytest.approx(0.0)


def test_evaluate_outputs_cost_uses_the_price() -> None:
    evaluation = tiny_evaluation()

    # 1,000 queries x (100 input tokens at $1/1K + 50 output tokens at $2/1K)
    assert evaluation.cost_per_1k_queries_usd == pytest.approx(100 * 1.0 + 50 * 2.0)
    assert evaluation.priced_as == "test-model"
    assert evaluation.mean_input_tokens == 100
    assert evaluation.mean_output_tokens == 50


def test_evaluate_outputs_latency_percentiles_in_milliseconds() -> None:
    evaluation = tiny_evaluation()

    assert evaluation.latency_p50_ms == pytest.approx(25.0)
    assert 35.0 < evaluation.latency_p95_ms <= 40.0


def test_evaluate_outputs_with_nothing_parseable() -> None:
    evaluation = tiny_evaluation(outputs=["", "nope", "{}", '{"visual": NaN}'])

    assert evaluation.parse_rate == 0.0
    assert evaluation.top_signal_accuracy == 0.0
    assert evaluation.mean_rubric == 1.0
    assert evaluation.mae_per_signal == dict.fromkeys(SIGNALS, 1.0)


def test_evaluate_outputs_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        tiny_evaluation(latencies_s=[0.1])


def test_evaluate_outputs_rejects_an_empty_set() -> None:
    with pytest.raises(ValueError, match="empty"):
        tiny_evaluation(
            references=[], outputs=[], latencies_s=[], input_tokens=[], output_tokens=[]
        )


# -- gate.decide ----------------------------------------------------------------------------------
def evaluation(**overrides: Any) -> ModelEvaluation:
    data: dict[str, Any] = {
        "model": "candidate",
        "role": "student",
        "n": 100,
        "parse_rate": 1.0,
        "top_signal_accuracy": 0.95,
        "accuracy_ci95": (0.89, 0.98),
        "mae_per_signal": dict.fromkeys(SIGNALS, 0.03),
        "mean_mae": 0.03,
        "mean_rubric": 4.5,
        "rubric_counts": {1: 0, 2: 0, 3: 5, 4: 40, 5: 55},
        "confusion": {},
        "latency_p50_ms": 1.0,
        "latency_p95_ms": 2.0,
        "mean_input_tokens": 20.0,
        "mean_output_tokens": 40.0,
        "cost_per_1k_queries_usd": 0.0,
        "priced_as": "local",
    }
    data.update(overrides)
    return ModelEvaluation.model_validate(data)


CONFIG = GateConfig()


def failed(decision: Any) -> set[str]:
    return {c.name for c in decision.checks if not c.passed}


def test_gate_defaults() -> None:
    assert CONFIG.min_parse_rate == 0.99
    assert CONFIG.min_top_signal_accuracy == 0.85
    assert CONFIG.min_mean_rubric == 4.0


def test_gate_promotes_when_floors_pass_and_there_is_no_champion() -> None:
    decision = decide(evaluation(), None, CONFIG)

    assert decision.promote
    assert [c.name for c in decision.checks] == [
        "parse_rate",
        "top_signal_accuracy",
        "mean_rubric",
        "golden_set",
    ]
    assert "no golden set" in decision.checks[-1].detail
    assert decision.summary == "PROMOTE: all checks passed"


def test_gate_promotes_a_candidate_exactly_at_the_floors() -> None:
    candidate = evaluation(parse_rate=0.99, top_signal_accuracy=0.85, mean_rubric=4.0)

    assert decide(candidate, None, CONFIG).promote


@pytest.mark.parametrize(
    ("overrides", "check", "fragment"),
    [
        ({"parse_rate": 0.98}, "parse_rate", "parse rate 0.980 (floor 0.990)"),
        ({"top_signal_accuracy": 0.84}, "top_signal_accuracy", "top-signal accuracy 0.840"),
        ({"mean_rubric": 3.9}, "mean_rubric", "mean rubric 3.90 (floor 4.00)"),
    ],
)
def test_gate_rejects_naming_the_failed_floor(
    overrides: dict[str, Any], check: str, fragment: str
) -> None:
    decision = decide(evaluation(**overrides), None, CONFIG)

    assert not decision.promote
    assert failed(decision) == {check}
    assert decision.summary.startswith("REJECT: ")
    assert fragment in decision.summary


def test_gate_lists_every_failed_floor() -> None:
    candidate = evaluation(parse_rate=0.5, top_signal_accuracy=0.5, mean_rubric=2.0)

    decision = decide(candidate, None, CONFIG)

    assert failed(decision) == {"parse_rate", "top_signal_accuracy", "mean_rubric"}
    assert decision.summary.count(";") == 2


def test_gate_adds_regression_checks_when_there_is_a_champion() -> None:
    decision = decide(evaluation(), evaluation(model="champion"), CONFIG)

    assert decision.promote
    assert {c.name for c in decision.checks} >= {"no_accuracy_regression", "no_rubric_regression"}


def test_gate_rejects_accuracy_regression_beyond_tolerance() -> None:
    champion = evaluation(model="champion", top_signal_accuracy=0.98)
    candidate = evaluation(top_signal_accuracy=0.95)  # passes the 0.90 floor

    decision = decide(candidate, champion, CONFIG)

    assert not decision.promote
    assert failed(decision) == {"no_accuracy_regression"}
    assert "vs champion 0.980" in decision.summary


def test_gate_rejects_rubric_regression_beyond_tolerance() -> None:
    champion = evaluation(model="champion", mean_rubric=4.8)
    candidate = evaluation(mean_rubric=4.5)

    decision = decide(candidate, champion, CONFIG)

    assert not decision.promote
    assert failed(decision) == {"no_rubric_regression"}


def test_gate_accepts_a_small_regression_within_tolerance() -> None:
    champion = evaluation(model="champion", top_signal_accuracy=0.96, mean_rubric=4.52)
    candidate = evaluation(top_signal_accuracy=0.955, mean_rubric=4.5)

    decision = decide(candidate, champion, CONFIG)

    assert decision.promote
    assert failed(decision) == set()


def test_gate_accepts_a_candidate_better_than_the_champion() -> None:
    champion = evaluation(model="champion", top_signal_accuracy=0.91, mean_rubric=4.1)

    assert decide(evaluation(), champion, CONFIG).promote


def test_gate_floors_apply_even_when_the_champion_is_worse() -> None:
    champion = evaluation(model="champion", top_signal_accuracy=0.5, mean_rubric=2.0)
    candidate = evaluation(top_signal_accuracy=0.8)

    decision = decide(candidate, champion, CONFIG)

    assert not decision.promote
    assert failed(decision) == {"top_signal_accuracy"}


def test_gate_custom_tolerance_accepts_a_larger_regression() -> None:
    champion = evaluation(model="champion", top_signal_accuracy=0.99)
    candidate = evaluation(top_signal_accuracy=0.95)
    lenient = GateConfig(max_accuracy_regression=0.05)

    assert not decide(candidate, champion, CONFIG).promote
    assert decide(candidate, champion, lenient).promote


def test_gate_config_rejects_out_of_range_thresholds() -> None:
    with pytest.raises(ValueError):
        GateConfig(min_parse_rate=1.5)
    with pytest.raises(ValueError):
        GateConfig(min_mean_rubric=0.5)


def test_gate_accepts_a_rubric_drop_exactly_equal_to_the_tolerance() -> None:
    champion = evaluation(model="champion", mean_rubric=88 / 20)
    candidate = evaluation(mean_rubric=87 / 20)

    assert champion.mean_rubric - candidate.mean_rubric == pytest.approx(0.05)
    assert decide(candidate, champion, CONFIG).promote
