"""Score one model on the run's evaluation sets: the synthetic holdout, its novel-vocabulary
part, the newest traffic slice (all against the teacher) and the golden set (human labels).

One code path for the flow's `evaluate-model` task and for `router-distill eval`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from intent_router.backends.base import Backend, Invocation, JudgeScore, JudgeTarget, ModelTarget
from intent_router.cascade import CascadePolicy, CostModel, build_policy
from intent_router.dataset import LabelledQuery
from intent_router.errors import UserInputError
from intent_router.golden import GoldenEvaluation, GoldenSet, score_golden
from intent_router.judge import source_identifier
from intent_router.metrics import (
    ModelEvaluation,
    agrees,
    evaluate_outputs,
    parse_outputs,
    top_signal,
    training_mean,
)
from intent_router.schema import RoutingDecision
from intent_router.taxonomy import Taxonomy

PRIOR_PREFIX = "prior:"
# LabelledQuery.vocabulary of each evaluation set, and its slice name in reports
SYNTHETIC = "train"  # the synthetic holdout in training vocabulary: `overall`
NOVEL = "novel-vocabulary"  # vocabulary "heldout"
TRAFFIC = "traffic"  # vocabulary "traffic": the newest slice of real queries
SLICE_OF_VOCABULARY = {"heldout": NOVEL, "traffic": TRAFFIC}


class EvaluationResult(BaseModel):
    """How one target did on every evaluation set of a run."""

    model_config = ConfigDict(frozen=True)

    target: ModelTarget
    overall: ModelEvaluation | None  # synthetic holdout (training vocabulary); None: golden only
    slices: dict[str, ModelEvaluation]  # novel-vocabulary, traffic (when present)
    golden: GoldenEvaluation | None = None
    # Parsed weights (in signal order) of every evaluation query, holdout then golden; None
    # where the answer did not parse. Used for the cascade; not part of reports.
    answers: tuple[tuple[float, ...] | None, ...] = ()
    mean_latency_ms: float = 0.0
    # Raw answers on the synthetic holdout and slices (holdout order), kept only for a judge
    # job (`keep_responses`); not part of reports.
    responses: tuple[str, ...] = ()
    failed_calls: int = 0  # queries the model kept failing on (counted as unparseable)
    judge_score: float | None = None  # mean 1-5 score of a Bedrock Model Evaluation judge
    judge_n: int | None = None

    def metrics(self) -> dict[str, Any]:
        """The headline figures kept in the ledger and sent with events."""
        metrics: dict[str, Any] = {}
        if (e := self.overall) is not None:
            metrics |= {
                "top_signal_accuracy": e.top_signal_accuracy,
                "mean_rubric": e.mean_rubric,
                "mean_mae": e.mean_mae,
                "parse_rate": e.parse_rate,
                "n": e.n,
            }
        if TRAFFIC in self.slices:
            metrics["traffic_top_signal_accuracy"] = self.slices[TRAFFIC].top_signal_accuracy
            metrics["traffic_n"] = self.slices[TRAFFIC].n
        if self.golden is not None:
            metrics["golden_strict_top1"] = self.golden.strict_top1
            metrics["golden_lenient_top1"] = self.golden.lenient_top1
            metrics["golden_version"] = self.golden.golden_version
            metrics["golden_n"] = self.golden.n
        return metrics


def prior_invocations(weights_json: str, n: int) -> list[Invocation]:
    """The trivial prior: the same training-mean weights for every query, at no cost."""
    weights = json.loads(weights_json)
    text = RoutingDecision(weights=weights, reasoning="Training-set average.").to_json()
    return [Invocation(text=text, latency_s=0.0, input_tokens=0, output_tokens=0)] * n


def prior_source(split: Any) -> Sequence[LabelledQuery]:
    """The records the prior baseline averages: the labelled training records, or, when the
    training file is prompts only (the job's teacher labels it), the labelled holdout."""
    labelled = [r for r in split.train if r.weights]
    return labelled if len(labelled) >= MIN_PRIOR_RECORDS else split.holdout


MIN_PRIOR_RECORDS = 50


def prior_weights(train: Sequence[LabelledQuery], taxonomy: Taxonomy) -> dict[str, float]:
    """The training set's mean weights: the prior baseline, and the serving fallback."""
    return training_mean([r.weights for r in train], taxonomy.signal_names)


def prior_target(train: Sequence[LabelledQuery], taxonomy: Taxonomy) -> ModelTarget:
    """The trivial baseline: always answer the training set's mean weights."""
    weights = prior_weights(train, taxonomy)
    return ModelTarget(
        name="prior (training mean)",
        role="prior",
        ref=PRIOR_PREFIX + json.dumps(weights),
        prompt="student",
        priced_as="local",
    )


def evaluate_target(
    backend: Backend,
    target: ModelTarget,
    holdout: Sequence[LabelledQuery],
    taxonomy: Taxonomy,
    golden: GoldenSet | None = None,
    *,
    keep_responses: bool = False,
) -> EvaluationResult:
    """Route every evaluation query with the target (one call per query) and score each set.

    `holdout` holds the synthetic holdout (vocabulary "train"), its novel-vocabulary part
    ("heldout") and the traffic slice ("traffic"); each is scored against the teacher. The
    golden set is scored against its human labels. An empty holdout is allowed (eval command).
    """
    queries = [item.query for item in holdout]
    golden_queries = golden.queries if golden is not None else []
    everything = queries + golden_queries
    if target.ref.startswith(PRIOR_PREFIX):  # a constant answer: no model to call
        calls = prior_invocations(target.ref.removeprefix(PRIOR_PREFIX), len(everything))
    else:
        calls = backend.invoke(target, everything, taxonomy)
    price = backend.price_for(target.priced_as)

    def score(indices: list[int]) -> ModelEvaluation:
        return evaluate_outputs(
            model=target.name,
            role=target.role,
            references=[holdout[i].weights for i in indices],
            outputs=[calls[i].text for i in indices],
            latencies_s=[calls[i].latency_s for i in indices],
            client_latencies_s=[calls[i].client_latency_s for i in indices],
            input_tokens=[calls[i].input_tokens for i in indices],
            output_tokens=[calls[i].output_tokens for i in indices],
            signals=taxonomy.signal_names,
            price=price,
        )

    def indices_of(vocabulary: str) -> list[int]:
        return [i for i, item in enumerate(holdout) if item.vocabulary == vocabulary]

    synthetic = indices_of(SYNTHETIC)
    overall = score(synthetic) if synthetic else None  # the eval command: golden set only
    slices = {
        name: score(indices_of(vocabulary))
        for vocabulary, name in SLICE_OF_VOCABULARY.items()
        if indices_of(vocabulary)
    }
    golden_result = None
    if golden is not None:
        golden_result = score_golden(
            model=target.name,
            role=target.role,
            golden=golden,
            outputs=[c.text for c in calls[len(queries) :]],
            signals=taxonomy.signal_names,
        )
    signals = taxonomy.signal_names
    answers = tuple(
        tuple(d.weights[s] for s in signals) if d is not None else None
        for d in parse_outputs([c.text for c in calls], signals)
    )
    mean_latency_ms = 1000 * sum(c.latency_s for c in calls) / len(calls) if calls else 0.0
    return EvaluationResult(
        target=target,
        overall=overall,
        slices=slices,
        golden=golden_result,
        answers=answers,
        mean_latency_ms=round(mean_latency_ms, 4),
        responses=tuple(c.text for c in calls[: len(queries)]) if keep_responses else (),
        failed_calls=sum(1 for c in calls if c.error is not None),
    )


def judge_targets(results: Sequence[EvaluationResult]) -> list[JudgeTarget]:
    """The evaluated models whose raw answers were kept, as judge-job targets."""
    return [
        JudgeTarget(
            identifier=source_identifier(r.target.role), name=r.target.name, responses=r.responses
        )
        for r in results
        if r.responses
    ]


def with_judge_scores(
    results: Sequence[EvaluationResult], scores: Sequence[JudgeScore]
) -> list[EvaluationResult]:
    """Each result with its judge score (when the judge scored it) and without the raw
    answers it kept for the judge."""
    by_id = {s.identifier: s for s in scores}
    out = []
    for r in results:
        score = by_id.get(source_identifier(r.target.role)) if r.responses else None
        update: dict[str, Any] = {"responses": ()}
        if score is not None:
            update |= {"judge_score": score.mean_score, "judge_n": score.n}
        out.append(r.model_copy(update=update))
    return out


def check_cascade_fallback(role: str, baselines: Sequence[ModelTarget]) -> None:
    """UserInputError unless `role` names one of the backend's evaluated baselines."""
    roles = [t.role for t in baselines]
    if role not in roles:
        raise UserInputError(
            f"cascade_fallback {role!r} is not a model this backend evaluates; "
            f"choose one of {', '.join(roles) or 'none'}"
        )


def cascade_policy(
    student: EvaluationResult,
    fallback: EvaluationResult,
    holdout: Sequence[LabelledQuery],
    taxonomy: Taxonomy,
    golden: GoldenSet | None,
    *,
    target_accuracy: float,
) -> CascadePolicy | None:
    """The student's cascade with `fallback` (usually the teacher), from both evaluations.

    Calibrated and thresholded on the holdout (every evaluation set scored against the
    teacher); the golden column shows what the cascade does on human labels. None when there
    is no holdout or an evaluation has no per-query answers."""
    n = len(holdout)
    if n == 0 or len(student.answers) < n or len(fallback.answers) < n:
        return None
    signals = taxonomy.signal_names

    def correct(answers: Sequence[tuple[float, ...] | None]) -> list[bool]:
        return [
            a is not None and agrees(item.weights, dict(zip(signals, a, strict=True)), signals)
            for a, item in zip(answers, holdout, strict=True)
        ]

    def golden_correct(answers: Sequence[tuple[float, ...] | None]) -> list[bool]:
        assert golden is not None
        return [
            a is not None and top_signal(dict(zip(signals, a, strict=True)), signals) == item.top
            for a, item in zip(answers, golden.items, strict=True)
        ]

    golden_inputs = None
    if golden is not None and len(student.answers) == len(fallback.answers) == n + len(
        golden.items
    ):
        student_golden, fallback_golden = student.answers[n:], fallback.answers[n:]
        golden_inputs = (
            student_golden,
            golden_correct(student_golden),
            golden_correct(fallback_golden),
        )
    costs = CostModel(
        student_ms=student.mean_latency_ms,
        fallback_ms=fallback.mean_latency_ms,
        student_cost_per_1k=student.overall.cost_per_1k_queries_usd if student.overall else 0.0,
        fallback_cost_per_1k=fallback.overall.cost_per_1k_queries_usd if fallback.overall else 0.0,
    )
    return build_policy(
        student.answers[:n],
        correct(student.answers[:n]),
        correct(fallback.answers[:n]),
        costs=costs,
        target_accuracy=target_accuracy,
        fallback=fallback.target.name,
        fallback_role=fallback.target.role,
        golden=golden_inputs,
    )
