"""Lifecycle side effects: serve the new champion from the router's stable deployment, publish
where it serves, and delete rejected candidates' models beyond the ones kept."""

from __future__ import annotations

import hashlib

from prefect import task
from prefect.logging import get_run_logger
from prefect.variables import Variable
from pydantic import BaseModel, ConfigDict

from intent_router.backends.base import DeploymentState
from intent_router.errors import DeploymentNotFound, DeploymentUpdateRefused
from intent_router.lifecycle import (
    RejectedModels,
    deployment_variable_name,
    models_to_delete,
    protected_models,
    stable_deployment_name,
)
from intent_router.registry import ChampionRegistry
from tasks.distill import BACKOFF, JITTER, RETRIES, _wait_until_active, swap_model
from tasks.runtime import Runtime, retry_if_transient


class Serving(BaseModel):
    """Where the champion serves after a promotion, and what it took."""

    model_config = ConfigDict(frozen=True)

    deployment_id: str
    action: str  # created, updated, unchanged or fallback
    note: str


@task(
    name="serve-on-stable-deployment",
    retries=RETRIES,
    retry_delay_seconds=BACKOFF,
    retry_jitter_factor=JITTER,
    retry_condition_fn=retry_if_transient,
)
def serve_on_stable_deployment(
    router: str,
    model_id: str,
    candidate_deployment: str,
    runtime: Runtime,
    *,
    tags: dict[str, str],
    interval_s: float,
    timeout_s: float,
) -> Serving:
    """Swap the router's stable deployment to `model_id` (UpdateCustomModelDeployment), or
    create it the first time; if the service refuses the update, serve from the candidate's
    own deployment (its ARN differs: said in the log and the ledger note)."""
    logger = get_run_logger()
    backend = runtime.backend_client()
    name = stable_deployment_name(router)
    try:
        stable = backend.deployment_status(name)
    except DeploymentNotFound:
        stable = None
    if stable is not None and stable.state == DeploymentState.FAILED:
        logger.warning(
            "stable deployment %s is Failed (%s); replacing it", name, stable.failure_message
        )
        backend.delete_deployment(stable.deployment_id)
        stable = None
    if stable is None:
        # Same router, model and ledger length: a retried task finds the deployment it created;
        # a later re-creation (after a fallback) gets a new token.
        entries = len(ChampionRegistry(runtime.store(), router).ledger())
        seed = f"serving:{router}:{model_id}:{entries}"
        token = hashlib.sha256(seed.encode()).hexdigest()
        deployment_id = backend.deploy(model_id, name, token, tags)
        _wait_until_active(backend, deployment_id, interval_s, timeout_s)
        logger.info("created stable deployment %s for %s", deployment_id, model_id)
        return Serving(
            deployment_id=deployment_id,
            action="created",
            note=f"stable deployment {deployment_id} created",
        )
    if stable.state != DeploymentState.ACTIVE:
        _wait_until_active(backend, stable.deployment_id, interval_s, timeout_s)
    before = stable.model_id
    try:
        swap_model(backend, stable.deployment_id, model_id, interval_s, timeout_s, tags)
    except DeploymentUpdateRefused as refused:
        logger.warning(
            "%s; serving from the candidate's deployment %s instead (the ARN changes)",
            refused,
            candidate_deployment,
        )
        return Serving(
            deployment_id=candidate_deployment,
            action="fallback",
            note=f"update refused ({refused}); serving from {candidate_deployment}, a new ARN",
        )
    action = "unchanged" if before == model_id else "updated"
    logger.info("stable deployment %s now serves %s", stable.deployment_id, model_id)
    return Serving(
        deployment_id=stable.deployment_id,
        action=action,
        note=f"stable deployment {stable.deployment_id} {action} to {model_id}",
    )


@task(
    name="publish-serving",
    retries=RETRIES,
    retry_delay_seconds=BACKOFF,
    retry_jitter_factor=JITTER,
    retry_condition_fn=retry_if_transient,
)
def publish_serving(router: str, deployment_id: str, runtime: Runtime) -> None:
    """Set the Prefect Variable `router-<router>-deployment-arn` (and the backend's SSM
    parameter, if configured) to where the champion serves."""
    name = deployment_variable_name(router)
    Variable.set(name, deployment_id, overwrite=True)
    runtime.backend_client().publish_serving(router, deployment_id)
    get_run_logger().info("published %s = %s", name, deployment_id)


@task(name="clean-up-rejected-models")
def clean_up_rejected_models(
    router: str, model_id: str, run_id: str, runtime: Runtime
) -> list[str]:
    """Record the rejected candidate's model; delete rejected models beyond the newest
    `keep_rejected_models` (never the champion's or one in the ledger). Returns the deleted
    ones; a failure is logged and left to the next run or the janitor."""
    logger = get_run_logger()
    backend = runtime.backend_client()
    keep = backend.keep_rejected_models
    if keep is None:
        return []
    store = runtime.store()
    registry = ChampionRegistry(store, router)
    record = RejectedModels(store, router)
    record.add(model_id, run_id)
    protected = protected_models(registry.ledger(), registry.current())
    deleted = []
    for old in models_to_delete(record.entries(), keep, protected):
        try:
            backend.delete_model(old)
        except Exception as error:  # the rest still goes; the janitor lists what is left
            logger.warning("could not delete rejected model %s: %s", old, error)
            continue
        deleted.append(old)
        logger.info("deleted rejected model %s (keep_rejected_models=%d)", old, keep)
    record.mark_deleted(deleted)
    return deleted
