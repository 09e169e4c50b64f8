"""Evaluate one model on the holdout: the candidate and every baseline see the same queries."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from prefect import task
from prefect.logging import get_run_logger
from pydantic import BaseModel, ConfigDict

from intent_router.backends.base import Invocation, ModelTarget
from intent_router.dataset import LabelledQuery
from intent_router.metrics import ModelEvaluation, evaluate_outputs, training_mean
from intent_router.schema import RoutingDecision
from intent_router.taxonomy import Taxonomy
from tasks.distill import BACKOFF, JITTER, RETRIES
from tasks.runtime import Runtime, retry_if_transient

NOVEL = "novel-vocabulary"
PRIOR_PREFIX = "prior:"


def prior_invocations(weights_json: str, n: int) -> list[Invocation]:
    """The trivial prior: the same training-mean weights for every query, at no cost."""
    weights = json.loads(weights_json)
    text = RoutingDecision(weights=weights, reasoning="Training-set average.").to_json()
    return [Invocation(text=text, latency_s=0.0, input_tokens=0, output_tokens=0)] * n


def prior_target(train: Sequence[LabelledQuery], taxonomy: Taxonomy) -> ModelTarget:
    """The trivial baseline: always answer the training set's mean weights."""
    weights = training_mean([r.weights for r in train], taxonomy.signal_names)
    return ModelTarget(
        name="prior (training mean)",
        role="prior",
        ref=PRIOR_PREFIX + json.dumps(weights),
        prompt="student",
        priced_as="local",
    )


class EvaluationResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    target: ModelTarget
    overall: ModelEvaluation
    slices: dict[str, ModelEvaluation]

    def metrics(self) -> dict[str, Any]:
        """The headline figures kept in the ledger and sent with events."""
        e = self.overall
        return {
            "top_signal_accuracy": e.top_signal_accuracy,
            "mean_rubric": e.mean_rubric,
            "mean_mae": e.mean_mae,
            "parse_rate": e.parse_rate,
            "n": e.n,
        }


@task(
    name="evaluate-model",
    task_run_name="evaluate-{target.role}",
    retries=RETRIES,
    retry_delay_seconds=BACKOFF,
    retry_jitter_factor=JITTER,
    retry_condition_fn=retry_if_transient,
)
def evaluate_model(
    target: ModelTarget,
    holdout: tuple[LabelledQuery, ...],
    taxonomy: Taxonomy,
    runtime: Runtime,
) -> EvaluationResult:
    """Route every evaluation query with the target and score it against the teacher.

    `overall` is the holdout (training vocabulary, no near-duplicate of a training query);
    the novel-vocabulary set is scored separately.
    """
    backend = runtime.backend_client()
    queries = [item.query for item in holdout]
    if target.ref.startswith(PRIOR_PREFIX):  # a constant answer: no model to call
        calls = prior_invocations(target.ref.removeprefix(PRIOR_PREFIX), len(queries))
    else:
        calls = backend.invoke(target, queries, taxonomy)
    price = backend.price_for(target.priced_as)

    def score(indices: list[int]) -> ModelEvaluation:
        return evaluate_outputs(
            model=target.name,
            role=target.role,
            references=[holdout[i].weights for i in indices],
            outputs=[calls[i].text for i in indices],
            latencies_s=[calls[i].latency_s for i in indices],
            input_tokens=[calls[i].input_tokens for i in indices],
            output_tokens=[calls[i].output_tokens for i in indices],
            signals=taxonomy.signal_names,
            price=price,
        )

    overall = score([i for i, item in enumerate(holdout) if item.vocabulary == "train"])
    novel = [i for i, item in enumerate(holdout) if item.vocabulary == "heldout"]
    slices = {NOVEL: score(novel)} if novel else {}
    get_run_logger().info(
        "%s: accuracy %.3f, MAE %.4f, rubric %.2f, p50 %.3f ms",
        target.name,
        overall.top_signal_accuracy,
        overall.mean_mae,
        overall.mean_rubric,
        overall.latency_p50_ms,
    )
    return EvaluationResult(target=target, overall=overall, slices=slices)
