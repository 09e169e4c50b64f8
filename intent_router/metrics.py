"""Evaluation metrics: parse rate, top-signal accuracy with a Wilson 95% CI, MAE, rubric, cost."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from intent_router.errors import RouterOutputError
from intent_router.pricing import ModelPrice
from intent_router.schema import RoutingDecision, parse_routing_output

EPS = 1e-9
UNPARSEABLE = "unparseable"


def top_signal(weights: Mapping[str, float], signals: Sequence[str]) -> str:
    """Highest-weighted signal; ties go to the earlier signal in taxonomy order."""
    return max(signals, key=lambda s: (weights[s], -signals.index(s)))


def top_signals(weights: Mapping[str, float], signals: Sequence[str]) -> set[str]:
    """Every signal that shares the highest weight (a tie gives more than one)."""
    best = max(weights[s] for s in signals)
    return {s for s in signals if weights[s] >= best - EPS}


def agrees(
    reference: Mapping[str, float], predicted: Mapping[str, float], signals: Sequence[str]
) -> bool:
    """The predicted top signal is one of the reference's top signals."""
    return top_signal(predicted, signals) in top_signals(reference, signals)


def rubric_score(
    reference: Mapping[str, float], predicted: Mapping[str, float] | None, signals: Sequence[str]
) -> int:
    """The 1-5 rubric of the public AWS evaluation, applied to weights only.

    5: every weight within 0.05 of the reference; 4: within 0.10; 3: top signal right and mean
    error < 0.15; 2: top signal wrong or mean error >= 0.15; 1: unparseable or mean error > 0.30.
    "Top signal right" means the prediction's top signal is one of the reference's (tied) tops.
    """
    if predicted is None:
        return 1
    errors = [abs(predicted[s] - reference[s]) for s in signals]
    worst, mean = max(errors), sum(errors) / len(errors)
    if worst <= 0.05 + EPS:
        return 5
    if worst <= 0.10 + EPS:
        return 4
    if mean > 0.30 + EPS:
        return 1
    if agrees(reference, predicted, signals) and mean < 0.15:
        return 3
    return 2


def parse_outputs(outputs: Sequence[str], signals: Sequence[str]) -> list[RoutingDecision | None]:
    """Each raw model answer as a decision, or None when it does not parse."""
    decisions: list[RoutingDecision | None] = []
    for text in outputs:
        try:
            decisions.append(parse_routing_output(text, signals))
        except RouterOutputError:
            decisions.append(None)
    return decisions


def wilson_interval(successes: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default)."""
    if total == 0:
        return (0.0, 0.0)
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


class ModelEvaluation(BaseModel):
    """How one model did on one evaluation set."""

    model_config = ConfigDict(frozen=True)

    model: str
    role: str
    n: int
    parse_rate: float
    top_signal_accuracy: float
    accuracy_ci95: tuple[float, float]
    mae_per_signal: dict[str, float]
    mean_mae: float
    mean_rubric: float
    rubric_counts: dict[int, int]
    confusion: dict[str, dict[str, int]]
    latency_p50_ms: float  # the service's figure where it reports one (Converse latencyMs)
    latency_p95_ms: float
    client_latency_p50_ms: float | None = None  # measured end to end by the caller
    client_latency_p95_ms: float | None = None
    mean_input_tokens: float
    mean_output_tokens: float
    cost_per_1k_queries_usd: float
    priced_as: str


def evaluate_outputs(
    *,
    model: str,
    role: str,
    references: Sequence[Mapping[str, float]],
    outputs: Sequence[str],
    latencies_s: Sequence[float],
    input_tokens: Sequence[int],
    output_tokens: Sequence[int],
    signals: Sequence[str],
    price: ModelPrice,
    client_latencies_s: Sequence[float | None] | None = None,
) -> ModelEvaluation:
    """Score raw model outputs against the teacher's reference weights.

    `client_latencies_s`: end-to-end times measured by the caller, beside the service's
    `latencies_s`; their percentiles cover the queries that have one (None: not measured)."""
    n = len(references)
    if not (len(outputs) == len(latencies_s) == len(input_tokens) == len(output_tokens) == n):
        raise ValueError("references, outputs, latencies and token counts differ in length")
    if n == 0:
        raise ValueError("cannot evaluate on an empty set")
    decisions = parse_outputs(outputs, signals)
    parsed = [(r, d) for r, d in zip(references, decisions, strict=True) if d is not None]
    correct = sum(1 for r, d in parsed if agrees(r, d.weights, signals))
    abs_errors = {s: [abs(d.weights[s] - r[s]) for r, d in parsed] for s in signals}
    mae = {s: float(np.mean(v)) if v else 1.0 for s, v in abs_errors.items()}
    scores = [
        rubric_score(r, d.weights if d else None, signals)
        for r, d in zip(references, decisions, strict=True)
    ]
    confusion: dict[str, dict[str, int]] = {
        s: {p: 0 for p in [*signals, UNPARSEABLE]} for s in signals
    }
    for r, d in zip(references, decisions, strict=True):
        predicted = top_signal(d.weights, signals) if d else UNPARSEABLE
        confusion[top_signal(r, signals)][predicted] += 1
    latencies_ms = np.asarray(latencies_s, dtype=float) * 1000
    measured = [c for c in client_latencies_s or () if c is not None]
    client_ms = np.asarray(measured, dtype=float) * 1000
    mean_in = float(np.mean(input_tokens))
    mean_out = float(np.mean(output_tokens))
    return ModelEvaluation(
        model=model,
        role=role,
        n=n,
        parse_rate=len(parsed) / n,
        top_signal_accuracy=correct / n,
        accuracy_ci95=wilson_interval(correct, n),
        mae_per_signal=mae,
        mean_mae=float(np.mean(list(mae.values()))),
        mean_rubric=float(np.mean(scores)),
        rubric_counts={k: scores.count(k) for k in range(1, 6)},
        confusion=confusion,
        latency_p50_ms=float(np.percentile(latencies_ms, 50)),
        latency_p95_ms=float(np.percentile(latencies_ms, 95)),
        client_latency_p50_ms=float(np.percentile(client_ms, 50)) if measured else None,
        client_latency_p95_ms=float(np.percentile(client_ms, 95)) if measured else None,
        mean_input_tokens=mean_in,
        mean_output_tokens=mean_out,
        cost_per_1k_queries_usd=price.cost(mean_in * 1000, mean_out * 1000),
        priced_as=price.model_id,
    )


def training_mean(weights: Sequence[dict[str, float]], signals: Sequence[str]) -> dict[str, float]:
    """Mean weight per signal, rounded to 4 places and still summing to 1.0."""
    count = max(1, len(weights))
    mean = {s: round(sum(w[s] for w in weights) / count, 4) for s in signals}
    if not weights:
        mean = {s: round(1.0 / len(signals), 4) for s in signals}
    mean[signals[0]] = round(mean[signals[0]] + 1.0 - sum(mean.values()), 4)
    return mean
