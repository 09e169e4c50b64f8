"""Confidence and the cascade: answer with the student when it is sure, ask the teacher if not.

Confidence is a calibrated probability that the student's top signal is the teacher's. It is a
logistic function of two features of the answer itself (its top weight and the margin to the
runner-up), so it works for any student whose answer is a weight vector: the local model or a
Bedrock deployment. The calibration and the threshold are fitted on the run's holdout (teacher
labels); the threshold is the lowest one whose cascade meets the target accuracy there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

THRESHOLD_GRID = tuple(round(t / 100, 2) for t in range(0, 101))
ALWAYS_DEFER = 1.01  # a threshold no confidence reaches: every query goes to the fallback


def confidence_features(weights: Sequence[float]) -> tuple[float, float]:
    """(top weight, margin between the top two weights) of one answer."""
    ordered = sorted(weights, reverse=True)
    top = ordered[0] if ordered else 0.0
    second = ordered[1] if len(ordered) > 1 else 0.0
    return top, top - second


COEFFICIENT_BOUND = 1_000.0  # a fitted coefficient beyond this is a corrupt record


class Calibration(BaseModel):
    """confidence = sigmoid(intercept + top_coef * top + margin_coef * margin)."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    intercept: float = Field(ge=-COEFFICIENT_BOUND, le=COEFFICIENT_BOUND)
    top_coef: float = Field(ge=-COEFFICIENT_BOUND, le=COEFFICIENT_BOUND)
    margin_coef: float = Field(ge=-COEFFICIENT_BOUND, le=COEFFICIENT_BOUND)
    n: int = Field(ge=0, description="Holdout answers it was fitted on.")

    def confidence(self, weights: Sequence[float]) -> float:
        top, margin = confidence_features(weights)
        z = self.intercept + self.top_coef * top + self.margin_coef * margin
        return 1 / (1 + math.exp(-max(-50.0, min(50.0, z))))


def fit_calibration(
    answers: Sequence[Sequence[float]], correct: Sequence[bool], *, l2: float = 1e-3
) -> Calibration:
    """Logistic regression (Newton steps, small ridge) of correctness on the answer features."""
    if len(answers) != len(correct):
        raise ValueError(f"{len(answers)} answers for {len(correct)} outcomes")
    if not answers:
        raise ValueError("cannot calibrate on no answers")
    x = np.array([[1.0, *confidence_features(a)] for a in answers])
    y = np.asarray(correct, dtype=float)
    theta = np.zeros(3)
    ridge = l2 * np.diag([0.0, 1.0, 1.0]) * len(y)
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(x @ theta, -50, 50)))
        gradient = x.T @ (p - y) + ridge @ theta
        hessian = (x * (p * (1 - p))[:, None]).T @ x + ridge + 1e-9 * np.eye(3)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return Calibration(
        intercept=float(theta[0]), top_coef=float(theta[1]), margin_coef=float(theta[2]), n=len(y)
    )


def calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 10
) -> float:
    """Expected calibration error: |mean confidence - accuracy| per bin, weighted by bin size."""
    conf = np.asarray(confidences, dtype=float)
    hits = np.asarray(correct, dtype=float)
    if conf.size == 0:
        return 0.0
    which = np.minimum((conf * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(conf[members].mean() - hits[members].mean())
    return float(error)


def cross_fitted_error(answers: Sequence[Sequence[float]], correct: Sequence[bool]) -> float:
    """Calibration error measured out of sample: fit on one half, score the other, both ways."""
    halves = (list(range(0, len(answers), 2)), list(range(1, len(answers), 2)))
    confidences: list[float] = []
    outcomes: list[bool] = []
    for fit_on, score_on in (halves, halves[::-1]):
        if not fit_on or not score_on:
            continue
        calibration = fit_calibration([answers[i] for i in fit_on], [correct[i] for i in fit_on])
        confidences += [calibration.confidence(answers[i]) for i in score_on]
        outcomes += [correct[i] for i in score_on]
    return calibration_error(confidences, outcomes)


class CascadePoint(BaseModel):
    """One threshold of the cascade: how much it answers locally and how well."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    threshold: float = Field(ge=0, le=ALWAYS_DEFER)
    local_share: float = Field(ge=0, le=1)  # answered by the student
    accuracy: float = Field(ge=0, le=1)  # on the holdout, against the teacher's labels
    golden_accuracy: float | None = Field(default=None, ge=0, le=1)  # golden strict top-1
    mean_latency_ms: float = Field(ge=0)
    cost_per_1k_usd: float = Field(ge=0)


class CostModel(BaseModel):
    """Per-query latency and price of the student and of the fallback."""

    model_config = ConfigDict(frozen=True)

    student_ms: float
    fallback_ms: float
    student_cost_per_1k: float
    fallback_cost_per_1k: float

    def point(self, local_share: float) -> tuple[float, float]:
        """(mean latency, cost per 1,000): the student answers always; the rest also waits
        for and pays the fallback."""
        deferred = 1 - local_share
        latency = self.student_ms + deferred * self.fallback_ms
        cost = self.student_cost_per_1k + deferred * self.fallback_cost_per_1k
        return round(latency, 4), round(cost, 6)


def cascade_curve(
    confidences: Sequence[float],
    student_correct: Sequence[bool],
    fallback_correct: Sequence[bool],
    costs: CostModel,
    *,
    golden: tuple[Sequence[float], Sequence[bool], Sequence[bool]] | None = None,
    thresholds: Sequence[float] = THRESHOLD_GRID,
) -> list[CascadePoint]:
    """Share answered locally, accuracy, latency and cost at each threshold.

    A query is answered by the student when its confidence is at or above the threshold; its
    outcome is then the student's, otherwise the fallback's. `golden` is (confidences, student
    correct, fallback correct) on the golden set, for the golden column."""
    conf = np.asarray(confidences, dtype=float)
    student = np.asarray(student_correct, dtype=bool)
    fallback = np.asarray(fallback_correct, dtype=bool)
    if not (len(conf) == len(student) == len(fallback)) or len(conf) == 0:
        raise ValueError("the cascade curve needs the same non-zero number of each input")
    points = []
    for threshold in thresholds:
        local = conf >= threshold
        accuracy = float(np.where(local, student, fallback).mean())
        golden_accuracy = None
        if golden is not None:
            g_conf, g_student, g_fallback = (np.asarray(v) for v in golden)
            g_local = g_conf >= threshold
            golden_accuracy = round(float(np.where(g_local, g_student, g_fallback).mean()), 4)
        share = float(local.mean())
        latency, cost = costs.point(share)
        points.append(
            CascadePoint(
                threshold=threshold,
                local_share=round(share, 4),
                accuracy=round(accuracy, 4),
                golden_accuracy=golden_accuracy,
                mean_latency_ms=latency,
                cost_per_1k_usd=cost,
            )
        )
    return points


def choose_point(curve: Sequence[CascadePoint], target_accuracy: float) -> CascadePoint:
    """The point answering most queries locally whose holdout accuracy meets the target; when
    none does, the one that defers everything it can (the highest threshold)."""
    meeting = [p for p in curve if p.accuracy >= target_accuracy]
    if meeting:
        return max(meeting, key=lambda p: (p.local_share, -p.threshold))
    return max(curve, key=lambda p: p.threshold)


class CascadePolicy(BaseModel):
    """How the router answers a query: the student, or the fallback when unsure."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    calibration: Calibration
    threshold: float = Field(ge=0, le=ALWAYS_DEFER)
    target_accuracy: float = Field(ge=0, le=1)
    fallback: str = Field(description="Model asked when the student is unsure (its name).")
    fallback_role: str = Field(default="teacher", description="Its role in the evaluation.")
    calibration_error: float = Field(
        ge=0, le=1, description="Cross-fitted expected calibration error."
    )
    chosen: CascadePoint
    curve: tuple[CascadePoint, ...]

    def confidence(self, weights: Sequence[float]) -> float:
        return self.calibration.confidence(weights)

    def defers(self, weights: Sequence[float]) -> bool:
        """True when the fallback should answer this student answer."""
        return self.confidence(weights) < self.threshold


def build_policy(
    student_answers: Sequence[Sequence[float] | None],
    student_correct: Sequence[bool],
    fallback_correct: Sequence[bool],
    *,
    costs: CostModel,
    target_accuracy: float,
    fallback: str,
    fallback_role: str = "teacher",
    golden: tuple[Sequence[Sequence[float] | None], Sequence[bool], Sequence[bool]] | None = None,
) -> CascadePolicy:
    """Calibrate on the holdout, draw the curve and choose the threshold for the target.

    An unparseable student answer has confidence 0 (it always goes to the fallback)."""
    parsed = [i for i, a in enumerate(student_answers) if a is not None]
    calibration = fit_calibration(
        [student_answers[i] or () for i in parsed], [student_correct[i] for i in parsed]
    )

    def confidences(answers: Sequence[Sequence[float] | None]) -> list[float]:
        return [calibration.confidence(a) if a is not None else 0.0 for a in answers]

    golden_inputs = None
    if golden is not None:
        golden_inputs = (confidences(golden[0]), golden[1], golden[2])
    curve = cascade_curve(
        confidences(student_answers),
        student_correct,
        fallback_correct,
        costs,
        golden=golden_inputs,
    )
    chosen = choose_point(curve, target_accuracy)
    threshold = chosen.threshold if chosen.accuracy >= target_accuracy else ALWAYS_DEFER
    return CascadePolicy(
        calibration=calibration,
        threshold=threshold,
        target_accuracy=target_accuracy,
        fallback=fallback,
        fallback_role=fallback_role,
        calibration_error=round(
            cross_fitted_error(
                [student_answers[i] or () for i in parsed], [student_correct[i] for i in parsed]
            ),
            4,
        ),
        chosen=chosen,
        curve=tuple(curve),
    )
