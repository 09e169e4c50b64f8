"""Evaluate one model on the run's evaluation sets: every target sees the same queries."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prefect import task
from prefect.logging import get_run_logger

from intent_router.backends.base import JudgeJobStatus, JudgingBackend, ModelTarget
from intent_router.dataset import LabelledQuery
from intent_router.errors import JudgeJobFailed, WaitTimeout
from intent_router.evaluation import (
    EvaluationResult,
    evaluate_target,
    judge_targets,
    with_judge_scores,
)
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
    keep_responses: bool = False,
) -> EvaluationResult:
    """Route every evaluation query with the target and score it.

    Synthetic holdout, novel vocabulary and the traffic slice against the teacher's labels;
    the golden set against its human labels. A service refusal that no retry fixes (access,
    not found, quota, validation) fails the task with the service's message; a query the
    model keeps failing on counts as unparseable. `keep_responses` keeps the raw holdout
    answers for a judge job.
    """
    result = evaluate_target(
        runtime.backend_client(), target, holdout, taxonomy, golden, keep_responses=keep_responses
    )
    logger = get_run_logger()
    if result.overall is not None:
        o = result.overall
        client = (
            f", client p50 {o.client_latency_p50_ms:.3f} ms p95 {o.client_latency_p95_ms:.3f} ms"
            if o.client_latency_p50_ms is not None and o.client_latency_p95_ms is not None
            else ""
        )
        logger.info(
            "%s: synthetic accuracy %.3f, MAE %.4f, rubric %.2f, p50 %.3f ms p95 %.3f ms%s",
            target.name,
            o.top_signal_accuracy,
            o.mean_mae,
            o.mean_rubric,
            o.latency_p50_ms,
            o.latency_p95_ms,
            client,
        )
    if result.failed_calls:
        logger.warning(
            "%s: %d queries failed after retries (counted as unparseable)",
            target.name,
            result.failed_calls,
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


@task(
    name="judge-models",
    retries=RETRIES,
    retry_delay_seconds=BACKOFF,
    retry_jitter_factor=JITTER,
    retry_condition_fn=retry_if_transient,
)
def judge_models(
    results: list[EvaluationResult],
    holdout: tuple[LabelledQuery, ...],
    taxonomy: Taxonomy,
    runtime: Runtime,
    name: str,
    interval_s: float,
    timeout_s: float,
) -> list[EvaluationResult]:
    """Have a judge model score every evaluated model's holdout answers (Bedrock Model
    Evaluation, the seed's rubric); fold the mean score per model into the results.

    Jobs are named from `name`, so a retried task finds the same jobs (idempotency token).
    A job that ends Failed or Stopped fails the task with the service's failure messages."""
    backend = runtime.backend_client()
    if not isinstance(backend, JudgingBackend) or not backend.judging_enabled():
        return with_judge_scores(results, [])
    return judge_results(
        backend,
        results,
        holdout,
        taxonomy,
        name,
        interval_s=interval_s,
        timeout_s=timeout_s,
        logger=get_run_logger(),
    )


def judge_results(
    backend: JudgingBackend,
    results: list[EvaluationResult],
    holdout: tuple[LabelledQuery, ...],
    taxonomy: Taxonomy,
    name: str,
    *,
    interval_s: float,
    timeout_s: float,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
    sleep: Callable[[float], None] = time.sleep,
) -> list[EvaluationResult]:
    """Start the judge jobs, wait for each, fold the scores in (raise JudgeJobFailed with the
    service's messages when a job does not complete)."""
    targets = judge_targets(results)
    if not targets or not holdout:
        return with_judge_scores(results, [])
    job_ids = backend.start_judging(
        name,
        [item.query for item in holdout],
        [item.teacher_output for item in holdout],  # the teacher's answer is the reference
        targets,
        taxonomy.signal_names,
    )
    scores = []
    for job_id in job_ids:
        status = wait_for_judge(backend.judging_status, job_id, interval_s, timeout_s, sleep=sleep)
        if status.state != "Completed":
            raise JudgeJobFailed(job_id, status.state, list(status.failure_messages))
        found = backend.judge_scores(job_id)
        logger.info(
            "judge job %s: %s",
            job_id,
            ", ".join(f"{s.identifier} {s.mean_score:.2f} (n={s.n})" for s in found),
        )
        scores += found
    return with_judge_scores(results, scores)


def wait_for_judge(
    read: Callable[[str], JudgeJobStatus],
    job_id: str,
    interval_s: float,
    timeout_s: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> JudgeJobStatus:
    """Poll a judge job until it ends (the bedrock client has no waiters)."""
    deadline = clock() + timeout_s
    while True:
        status = read(job_id)
        if status.terminal:
            return status
        if clock() >= deadline:
            raise WaitTimeout(f"judge job {job_id} not finished after {timeout_s:.0f} s")
        sleep(interval_s)
