"""Preflight: estimate the run's cost before the first paid call and enforce the budget."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger

from intent_router.backends.base import raise_for_failed
from intent_router.params import DistillParams
from intent_router.preflight import (
    CostEstimate,
    check_budget,
    check_run_state,
    cost_inputs,
    estimate_cost,
    format_estimate,
)
from intent_router.report import artifact_key
from intent_router.taxonomy import Taxonomy
from intent_router.training_modes import TrainingMode
from tasks.runtime import Runtime


@task(name="check-run-inputs")
def check_run_inputs(router: str, runtime: Runtime) -> None:
    """Fail before any paid call if the backend's service setup is wrong (Region, profiles,
    models, bucket Region, roles), storage cannot be written, the registry is corrupt or the
    champion's model is gone."""
    logger = get_run_logger()
    backend = runtime.backend_client()
    checks = backend.setup_checks()
    for check in checks:
        result = {True: "ok", False: "FAILED", None: "skipped"}[check.passed]
        logger.info("setup check %s: %s (%s)", check.name, result, check.detail)
    raise_for_failed(checks)
    check_run_state(runtime.store(), router, backend.check_model)
    logger.info("storage writable, registry of router %s readable", router)


@task(name="preflight")
def preflight(
    params: DistillParams,
    taxonomy: Taxonomy,
    runtime: Runtime,
    mode: TrainingMode = TrainingMode.FINE_TUNE_LABELLED,
    traffic_queries: list[str] | None = None,
    extra_eval_queries: list[str] | None = None,
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
