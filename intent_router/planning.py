"""Pure planning steps of the pipeline: what to generate, and the names and tokens of a job."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import date

from pydantic import BaseModel, ConfigDict

from intent_router.backends.base import DistillationRequest
from intent_router.lifecycle import DATASET_TAG, PRODUCT, PRODUCT_TAG, ROUTER_TAG
from intent_router.params import DistillParams
from intent_router.synthesis import BatchSpec, plan_batches, plan_cells
from intent_router.taxonomy import Taxonomy
from intent_router.traffic import TrafficQuery, newest_slice
from intent_router.training_modes import TrainingMode


class GenerationPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    train_batches: tuple[BatchSpec, ...]
    holdout_batches: tuple[BatchSpec, ...]
    cell_targets: dict[str, int]

    @property
    def all_batches(self) -> tuple[BatchSpec, ...]:
        return self.train_batches + self.holdout_batches


def plan_generation(params: DistillParams, taxonomy: Taxonomy) -> GenerationPlan:
    """Training batches (oversampled), holdout batches (in-distribution and novel vocabulary)."""
    generate = max(params.train_count, round(params.train_count * params.oversample))
    train_quotas = plan_cells(taxonomy, generate, params.seed, "train")
    targets = {
        q.cell.key: q.count for q in plan_cells(taxonomy, params.train_count, params.seed, "train")
    }
    split = {"train": params.holdout_count, "heldout": params.novel_vocabulary_count}
    holdout_batches: list[BatchSpec] = []
    holdout_share = max(1, params.batches // 6)
    for vocabulary in ("train", "heldout"):
        if split[vocabulary] == 0:
            continue
        quotas = plan_cells(
            taxonomy, split[vocabulary], params.holdout_seed, f"holdout-{vocabulary}"
        )
        holdout_batches += plan_batches(quotas, holdout_share, "holdout", vocabulary)
    return GenerationPlan(
        train_batches=tuple(plan_batches(train_quotas, params.batches, "train", "train")),
        holdout_batches=tuple(holdout_batches),
        cell_targets=targets,
    )


def training_seed(params: DistillParams, scheduled: date | None) -> int:
    """The synthesis seed of a run: `seed`, or the scheduled date as YYYYMMDD.

    With 'scheduled-date' each weekly run writes fresh synthetic training queries while the
    holdout (holdout_seed) stays fixed; a retry of the same scheduled run gets the same seed.
    """
    if params.seed_policy == "fixed" or scheduled is None:
        return params.seed
    return int(scheduled.strftime("%Y%m%d"))


def split_traffic(
    queries: Sequence[TrafficQuery], *, holdout_share: float, train_cap: int
) -> tuple[list[TrafficQuery], list[TrafficQuery]]:
    """(train, holdout): the newest `holdout_share` is held out; of the older traffic the
    newest `train_cap` queries train (the rest is left out and never labelled)."""
    older, newest = newest_slice(queries, holdout_share)
    ordered = sorted(
        enumerate(older),
        key=lambda item: (item[1].timestamp is not None, item[1].timestamp or 0, item[0]),
    )
    kept = {index for index, _ in ordered[len(ordered) - train_cap :]} if train_cap > 0 else set()
    return [q for i, q in enumerate(older) if i in kept], list(newest)


def _slug(text: str, limit: int) -> str:
    cleaned = re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-")
    return cleaned[:limit].strip("-") or "router"


def distillation_request(
    *,
    router: str,
    dataset_sha256: str,
    training_path: str,
    training_uri: str,
    output_prefix: str,
    taxonomy: Taxonomy,
    backend_name: str,
    student_config: dict[str, object],
    mode: TrainingMode = TrainingMode.FINE_TUNE_LABELLED,
    response_tokens: int = 1000,
    invocation_logs_uri: str | None = None,
    use_prompt_response: bool = False,
    request_metadata: dict[str, str] | None = None,
) -> DistillationRequest:
    """Deterministic job name, model name and idempotency token from the run's inputs.

    The same router, data, backend and student settings always give the same token, so a
    retried or resumed run finds its job instead of starting a second one.
    """
    inputs: dict[str, object] = {
        "router": router,
        "dataset": dataset_sha256,
        "backend": backend_name,
        "taxonomy": taxonomy.fingerprint,
        "student": student_config,
    }
    if mode is not TrainingMode.FINE_TUNE_LABELLED:  # earlier jobs (labelled) keep their names
        inputs["mode"] = mode.value
    identity = json.dumps(inputs, sort_keys=True, default=str)
    token = hashlib.sha256(identity.encode()).hexdigest()
    short = token[:12]
    base = _slug(router, 36)
    return DistillationRequest(
        job_name=f"{base}-distill-{short}",
        model_name=f"{base}-student-{short}",
        token=token,
        training_path=training_path,
        training_uri=training_uri,
        output_prefix=f"{output_prefix.rstrip('/')}/{short}",
        dataset_sha256=dataset_sha256,
        signals=taxonomy.signal_names,
        tags={PRODUCT_TAG: PRODUCT, ROUTER_TAG: router, DATASET_TAG: dataset_sha256},
        mode=mode,
        response_tokens=response_tokens,
        invocation_logs_uri=invocation_logs_uri,
        use_prompt_response=use_prompt_response,
        request_metadata=dict(request_metadata or {}),
    )
