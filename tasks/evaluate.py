"""Evaluate one model on the run's evaluation sets: every target sees the same queries."""

from __future__ import annotations

from prefect import task
from prefect.logging import get_run_logger

from intent_router.backends.base import ModelTarget
from intent_router.dataset import LabelledQuery
from intent_router.evaluation import EvaluationResult, evaluate_target
from intent_router.golden import GoldenSet
from intent_router.taxonomy import Taxonomy
from tasks.distill import BACKOFF, JITTER, RETRIES
from tasks.runtime import Runtime, retry_if_transient


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
    golden: GoldenSet | None = None,
) -> EvaluationResult:
    """Route every evaluation query with the target and score it.

    Synthetic holdout, novel vocabulary and the traffic slice against the teacher's labels;
    the golden set against its human labels.
    """
    result = evaluate_target(runtime.backend_client(), target, holdout, taxonomy, golden)
    logger = get_run_logger()
    if result.overall is not None:
        o = result.overall
        logger.info(
            "%s: synthetic accuracy %.3f, MAE %.4f, rubric %.2f, p50 %.3f ms",
            target.name,
            o.top_signal_accuracy,
            o.mean_mae,
            o.mean_rubric,
            o.latency_p50_ms,
        )
    for name, evaluation in result.slices.items():
        logger.info("%s: %s accuracy %.3f", target.name, name, evaluation.top_signal_accuracy)
    if result.golden is not None:
        logger.info(
            "%s: golden strict top-1 %.3f, lenient %.3f (n=%d)",
            target.name,
            result.golden.strict_top1,
            result.golden.lenient_top1,
            result.golden.n,
        )
    return result
