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
    estimate_cost,
    format_estimate,
)
from intent_router.pricing import ModelPrice
from intent_router.report import artifact_key
from intent_router.taxonomy import Taxonomy
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
    traffic_queries: list[str] | None = None,
    extra_eval_queries: list[str] | None = None,
) -> CostEstimate | None:
    """Estimate teacher (synthetic and traffic), training and evaluation (holdout, traffic
    slice, golden set) cost; stop if it exceeds the budget."""
    backend = runtime.backend_client()
    if not backend.paid and params.budget_usd is None:
        return None
    targets = backend.baselines(taxonomy)
    teacher = next(t for t in targets if t.role == "teacher")
    candidate = backend.target_for_deployment("preflight", "candidate", "candidate")
    evaluated = {t.name: t.priced_as for t in [candidate, *targets]}

    def price_of(model_id: str) -> ModelPrice | None:
        try:
            return backend.price_for(model_id)
        except KeyError:
            return None

    estimate = estimate_cost(
        params,
        taxonomy,
        teacher_model_id=teacher.priced_as,
        evaluated_models=evaluated,
        price_of=price_of,
        training_usd_per_1k_tokens=backend.training_price_per_1k(),
        traffic_queries=traffic_queries or (),
        extra_eval_queries=extra_eval_queries or (),
        labelling_path_of=backend.labelling_path,
    )
    create_table_artifact(
        key=artifact_key("cost-estimate", params.router_name or taxonomy.name),
        table=format_estimate(estimate),
        description="Estimated cost of this run before any paid call",
    )
    get_run_logger().info(
        "estimated cost $%.2f%s (budget %s)",
        estimate.known_usd,
        f" + unpriced {estimate.unpriced}" if estimate.unpriced else "",
        "none" if params.budget_usd is None else f"${params.budget_usd:.2f}",
    )
    check_budget(estimate, params.budget_usd)
    return estimate
