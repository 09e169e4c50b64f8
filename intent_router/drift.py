"""Drift of real traffic away from what the champion learned: agreement with the teacher on a
fresh sample, per signal, the worst disagreements, and two shift figures (tokens the student
never saw in training; the change in the predicted top-signal mix). Pure functions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from intent_router.metrics import top_signal, wilson_interval
from intent_router.text import normalise


def tokens(text: str) -> list[str]:
    return normalise(text).split()


def vocabulary(queries: Iterable[str]) -> set[str]:
    """Every token of the queries (the champion's training set)."""
    return {token for query in queries for token in tokens(query)}


def unseen_token_share(queries: Sequence[str], known: set[str]) -> float:
    """Share of the sample's tokens (with repeats) that never occurred in training."""
    all_tokens = [token for query in queries for token in tokens(query)]
    if not all_tokens:
        return 0.0
    return sum(1 for token in all_tokens if token not in known) / len(all_tokens)


def top_signal_mix(
    weights: Sequence[Mapping[str, float]], signals: Sequence[str]
) -> dict[str, float]:
    """Share of queries whose top signal is each signal."""
    counts = Counter(top_signal(w, signals) for w in weights)
    total = max(1, len(weights))
    return {s: counts.get(s, 0) / total for s in signals}


def mix_shift(before: Mapping[str, float], after: Mapping[str, float]) -> float:
    """Total variation distance between two top-signal mixes (0: same, 1: disjoint)."""
    keys = set(before) | set(after)
    return 0.5 * sum(abs(before.get(k, 0.0) - after.get(k, 0.0)) for k in keys)


class Disagreement(BaseModel):
    model_config = ConfigDict(frozen=True)

    query: str
    teacher_top: str
    champion_top: str
    error: float = Field(description="Mean absolute weight error against the teacher.")


class DriftThresholds(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    min_agreement: float = Field(
        0.85, ge=0, le=1, description="Alert when champion/teacher top-signal agreement is below."
    )
    max_unseen_token_share: float = Field(
        0.35, ge=0, le=1, description="Alert when this share of tokens was never seen in training."
    )
    max_mix_shift: float = Field(
        0.25,
        ge=0,
        le=1,
        description="Alert when the predicted top-signal mix moves this far (total variation) "
        "from the training labels' mix.",
    )


class DriftCheck(BaseModel):
    """One monitor check of one router."""

    model_config = ConfigDict(frozen=True)

    router: str
    champion_model_id: str
    checked_at: str
    sample: int
    new_queries: int
    agreement: float
    agreement_ci95: tuple[float, float]
    per_signal_recall: dict[str, float] = Field(
        description="For sample queries the teacher puts on each signal: share the champion does."
    )
    unseen_token_share: float
    training_mix: dict[str, float]
    predicted_mix: dict[str, float]
    mix_shift: float
    worst: tuple[Disagreement, ...]
    alerts: tuple[str, ...] = ()

    @property
    def drifted(self) -> bool:
        return bool(self.alerts)


def per_signal_recall(
    references: Sequence[Mapping[str, float]],
    predictions: Sequence[Mapping[str, float]],
    signals: Sequence[str],
) -> dict[str, float]:
    """Of the queries the teacher puts first on a signal, the share the champion also does."""
    totals: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    for reference, predicted in zip(references, predictions, strict=True):
        expected = top_signal(reference, signals)
        totals[expected] += 1
        hits[expected] += top_signal(predicted, signals) == expected
    return {s: hits[s] / totals[s] for s in signals if totals[s]}


def worst_disagreements(
    queries: Sequence[str],
    references: Sequence[Mapping[str, float]],
    predictions: Sequence[Mapping[str, float]],
    signals: Sequence[str],
    limit: int = 15,
) -> list[Disagreement]:
    """The sample queries where the champion's top signal differs most from the teacher's."""
    rows = []
    for query, reference, predicted in zip(queries, references, predictions, strict=True):
        expected, got = top_signal(reference, signals), top_signal(predicted, signals)
        if expected == got:
            continue
        error = sum(abs(reference[s] - predicted[s]) for s in signals) / len(signals)
        rows.append(Disagreement(query=query, teacher_top=expected, champion_top=got, error=error))
    return sorted(rows, key=lambda d: -d.error)[:limit]


def drift_alerts(
    *, agreement: float, unseen: float, shift: float, thresholds: DriftThresholds
) -> list[str]:
    """Why this check counts as drift (empty: it does not)."""
    alerts = []
    if agreement < thresholds.min_agreement:
        alerts.append(f"agreement {agreement:.3f} below {thresholds.min_agreement:.3f}")
    if unseen > thresholds.max_unseen_token_share:
        alerts.append(
            f"unseen-token share {unseen:.3f} above {thresholds.max_unseen_token_share:.3f}"
        )
    if shift > thresholds.max_mix_shift:
        alerts.append(f"top-signal mix shift {shift:.3f} above {thresholds.max_mix_shift:.3f}")
    return alerts


def assess(
    *,
    router: str,
    champion_model_id: str,
    new_queries: int,
    queries: list[str],
    references: list[dict[str, float]],
    predicted: list[dict[str, float] | None],
    signals: tuple[str, ...],
    training_tokens: set[str] | None,
    training_mix: dict[str, float] | None,
    thresholds: DriftThresholds,
) -> DriftCheck:
    """The drift figures of one check (pure); an unparseable champion answer disagrees."""
    uniform = {s: 1.0 / len(signals) for s in signals}
    answers = [p if p is not None else uniform for p in predicted]
    agreeing = sum(
        1
        for reference, answer, raw in zip(references, answers, predicted, strict=True)
        if raw is not None and top_signal(answer, signals) == top_signal(reference, signals)
    )
    n = len(references)
    agreement = agreeing / n if n else 1.0
    unseen = unseen_token_share(queries, training_tokens) if training_tokens is not None else 0.0
    predicted_mix = top_signal_mix(answers, signals)
    base_mix = training_mix if training_mix is not None else top_signal_mix(references, signals)
    shift = mix_shift(base_mix, predicted_mix)
    return DriftCheck(
        router=router,
        champion_model_id=champion_model_id,
        checked_at=datetime.now(UTC).isoformat(timespec="seconds"),
        sample=n,
        new_queries=new_queries,
        agreement=agreement,
        agreement_ci95=wilson_interval(agreeing, n),
        per_signal_recall=per_signal_recall(references, answers, signals),
        unseen_token_share=unseen,
        training_mix=base_mix,
        predicted_mix=predicted_mix,
        mix_shift=shift,
        worst=tuple(worst_disagreements(queries, references, answers, signals)),
        alerts=tuple(
            drift_alerts(agreement=agreement, unseen=unseen, shift=shift, thresholds=thresholds)
        ),
    )
