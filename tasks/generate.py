"""Generate one batch: write queries for its cells, then have the teacher label them."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import INPUTS, TASK_SOURCE
from prefect.logging import get_run_logger
from prefect.tasks import exponential_backoff
from pydantic import BaseModel, ConfigDict

from intent_router.backends.base import TeacherFingerprint
from intent_router.dataset import LabelledQuery
from intent_router.errors import RouterOutputError
from intent_router.schema import parse_routing_output
from intent_router.synthesis import BatchSpec, QueryWriter
from intent_router.taxonomy import Taxonomy
from tasks.runtime import Runtime, retry_if_transient


class BatchOutput(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    records: tuple[LabelledQuery, ...]
    requested: int
    written: int
    dropped_invalid: int
    teacher_calls: int


LABELLING_TASK: dict[str, Any] = {
    "cache_policy": (INPUTS - "runtime") + TASK_SOURCE,  # cached per input; a paid call each
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_if_transient,
}
"""Options of every task that pays the teacher to label."""


@task(
    name="generate-batch",
    task_run_name="generate-{batch.key}",
    **LABELLING_TASK,
)
def generate_batch(
    batch: BatchSpec,
    taxonomy: Taxonomy,
    teacher: TeacherFingerprint,
    code_version: str,
    runtime: Runtime,
    label: bool = True,
) -> BatchOutput:
    """Write the batch's queries and label them with the teacher (cached per batch).

    The cache key is every input but `runtime`: the batch, the taxonomy, the teacher's
    fingerprint (backend, model, prompt, label settings), the label code's hash, this source.
    """
    logger = get_run_logger()
    writer = QueryWriter(taxonomy, batch.vocabulary)
    seen: set[str] = set()
    planned: list[tuple[str, str, str, str]] = []
    for quota in batch.quotas:
        for query in writer.write_cell(quota, exclude=seen):
            seen.add(query.lower())
            planned.append((query, quota.cell.key, quota.cell.difficulty, quota.cell.dominant))
    if not label:  # prompts only: the customization job's teacher answers them
        logger.info("batch %s: %d prompts written (not labelled here)", batch.key, len(planned))
        return BatchOutput(
            key=batch.key,
            records=tuple(
                LabelledQuery(
                    query=query,
                    cell=cell,
                    difficulty=difficulty,
                    dominant=dominant,
                    vocabulary=batch.vocabulary,
                    teacher_output="",
                    weights={},
                )
                for query, cell, difficulty, dominant in planned
            ),
            requested=batch.size,
            written=len(planned),
            dropped_invalid=0,
            teacher_calls=0,
        )
    results = runtime.backend_client().label([p[0] for p in planned], taxonomy)
    records: list[LabelledQuery] = []
    dropped = 0
    for (query, cell, difficulty, dominant), result in zip(planned, results, strict=True):
        try:
            if result.text is None:
                raise RouterOutputError(result.error or "no answer")
            decision = parse_routing_output(result.text, taxonomy.signal_names)
        except RouterOutputError as error:
            dropped += 1
            logger.warning("dropped %r: teacher answer invalid (%s)", query, error)
            continue
        records.append(
            LabelledQuery(
                query=query,
                cell=cell,
                difficulty=difficulty,
                dominant=dominant,
                vocabulary=batch.vocabulary,
                teacher_output=decision.to_json(),
                weights=decision.weights,
            )
        )
    logger.info(
        "batch %s: %d labelled, %d dropped of %d requested",
        batch.key,
        len(records),
        dropped,
        batch.size,
    )
    return BatchOutput(
        key=batch.key,
        records=tuple(records),
        requested=batch.size,
        written=len(planned),
        dropped_invalid=dropped,
        teacher_calls=len(planned),
    )


@task(
    name="label-examples",
    **LABELLING_TASK,
)
def label_examples(
    queries: tuple[str, ...],
    taxonomy: Taxonomy,
    teacher: TeacherFingerprint,
    code_version: str,
    runtime: Runtime,
) -> dict[str, str]:
    """Label the curated examples of a prompts-only training file (cached): only answers that
    are valid routing JSON summing to 1 become examples."""
    logger = get_run_logger()
    examples: dict[str, str] = {}
    for result in runtime.backend_client().label(list(queries), taxonomy):
        try:
            decision = parse_routing_output(result.text or "", taxonomy.signal_names)
        except RouterOutputError as error:
            logger.warning(
                "example %r left as a prompt: teacher answer invalid (%s)", result.query, error
            )
            continue
        examples[result.query] = decision.to_json()
    logger.info("%d of %d curated examples labelled", len(examples), len(queries))
    return examples
