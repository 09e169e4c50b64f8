"""Preflight: estimate the run's cost before the first paid call and enforce the budget."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger

from intent_router.backends.base import Backend
from intent_router.params import DistillParams, MonitorParams
from intent_router.preflight import (
    CostEstimate,
    check_budget,
    check_run_state,
    estimate_cost,
    format_estimate,
)
from intent_router.pricing import ModelPrice
from intent_router.report import artifact_key
from intent_router.taxonomy import Taxonomy
from intent_router.training_modes import TrainingMode, teacher_response_tokens
from tasks.runtime import Runtime


@task(name="check-run-inputs")
def check_run_inputs(router: str, runtime: Runtime) -> None:
    """Fail before any paid call if storage cannot be written, the registry is corrupt or the
    champion's model is gone."""
    check_run_state(runtime.store(), router, runtime.backend_client().check_model)
    get_run_logger().info("storage writable, registry of router %s readable", router)


@task(name="preflight")
def preflight(
    params: DistillParams,
    taxonomy: Taxonomy,
    runtime: Runtime,
    mode: TrainingMode = TrainingMode.FINE_TUNE_LABELLED,
    traffic_queries: list[str] | None = None,
    extra_eval_queries: list[str] | None = None,
    traffic_train_queries: int = 0,
) -> CostEstimate | None:
    """Estimate every paid line of the run in its training mode (labelling, curated examples,
    the job's teacher, training, storage, evaluation, the monitor's sample); stop if a budgeted
    run has unpriced lines or exceeds the budget."""
    backend = runtime.backend_client()
    if not backend.paid and params.budget_usd is None:
        return None
    estimate = estimate_cost(
        params,
        taxonomy,
        **cost_inputs(backend, taxonomy, mode)
        | {
            "traffic_queries": traffic_queries or (),
            "extra_eval_queries": extra_eval_queries or (),
            "traffic_train_queries": traffic_train_queries,
        },
    )
    create_table_artifact(
        key=artifact_key("cost-estimate", params.router_name or taxonomy.name),
        table=format_estimate(estimate),
        description=f"Estimated cost of this run ({mode.value}) before any paid call",
    )
    get_run_logger().info(
        "estimated cost $%.2f%s (%s; budget %s)",
        estimate.known_usd,
        f" + unpriced {estimate.unpriced}" if estimate.unpriced else "",
        mode.value,
        "none" if params.budget_usd is None else f"${params.budget_usd:.2f}",
    )
    check_budget(estimate, params.budget_usd, params.allow_unpriced)
    return estimate


def cost_inputs(backend: Backend, taxonomy: Taxonomy, mode: TrainingMode) -> dict[str, Any]:
    """The backend's side of a cost estimate: models, prices and training settings."""
    targets = backend.baselines(taxonomy)
    teacher = next(t for t in targets if t.role == "teacher")
    candidate = backend.target_for_deployment(
        "preflight", "candidate", "candidate", mode.student_prompt
    )

    def price_of(model_id: str) -> ModelPrice | None:
        try:
            return backend.price_for(model_id)
        except KeyError:
            return None

    return {
        "mode": mode,
        "teacher_model_id": teacher.priced_as,
        "evaluated_models": {t.name: t.priced_as for t in [candidate, *targets]},
        "price_of": price_of,
        "training_usd_per_1k_tokens": backend.training_price_per_1k(),
        "storage_usd_per_model_month": backend.storage_price_per_model_month(),
        "epochs": backend.training_epochs(),
        "response_tokens": teacher_response_tokens(taxonomy),
        "monitor_sample": MONITOR_SAMPLE if backend.paid else None,
    }


MONITOR_SAMPLE: int = MonitorParams.model_fields["sample_size"].default
