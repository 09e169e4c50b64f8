"""Submit the distillation job, wait for it, deploy the model, wait until it is active, tear down.

Submission and deployment are idempotent (a token derived from the inputs), so a retried task or
a re-run attaches to the existing job or deployment instead of paying for a second one.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import cast
from uuid import UUID

from prefect import task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.logging import get_run_logger
from prefect.tasks import exponential_backoff

from intent_router.backends.base import (
    Backend,
    DeploymentState,
    DeploymentStatus,
    DistillationRequest,
    JobState,
    JobStatus,
)
from intent_router.errors import (
    DeploymentFailed,
    DeploymentNotFound,
    DeploymentUpdateRefused,
    DistillationJobFailed,
    WaitTimeout,
)
from intent_router.journal import RunJournal
from intent_router.registry import ChampionRecord, ChampionRegistry
from intent_router.report import artifact_key
from intent_router.taxonomy import Taxonomy
from tasks.runtime import Runtime, retry_if_transient

RETRIES = 4
BACKOFF = exponential_backoff(backoff_factor=2)
JITTER = 0.5
_SUBTASK_SHARE = {
    "Completed": 1.0,
    "InProgress": 0.5,
    "Stopping": 1.0,
    "Stopped": 1.0,
    "Failed": 1.0,
}


def job_progress(status: JobStatus) -> float:
    """0-100 from the job's sub-task states (validation, data processing, training)."""
    if status.state == JobState.COMPLETED:
        return 100.0
    if not status.details:
        return 0.0
    shares = [_SUBTASK_SHARE.get(v, 0.0) for v in status.details.values()]
    return round(100 * sum(shares) / len(shares), 1)


def poll_until(
    read: Callable[[], JobStatus | DeploymentStatus],
    done: Callable[[JobStatus | DeploymentStatus], bool],
    *,
    interval_s: float,
    timeout_s: float,
    what: str,
    on_status: Callable[[JobStatus | DeploymentStatus], None],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> JobStatus | DeploymentStatus:
    """Poll `read` until `done`, calling `on_status` on every change; raise WaitTimeout."""
    deadline = clock() + timeout_s
    last = None
    while True:
        status = read()
        if status != last:
            on_status(status)
            last = status
        if done(status):
            return status
        if clock() >= deadline:
            raise WaitTimeout(f"{what} not finished after {timeout_s:.0f} s (last: {status})")
        sleep(interval_s)


@task(
    name="submit-distillation",
    retries=RETRIES,
    retry_delay_seconds=BACKOFF,
    retry_jitter_factor=JITTER,
    retry_condition_fn=retry_if_transient,
)
def submit_distillation(
    request: DistillationRequest, taxonomy: Taxonomy, runtime: Runtime, run_id: str = "local"
) -> str:
    """Start the distillation job, or find the one this request already started; a job that
    ended Failed or Stopped gets a new attempt. The job goes into the run's journal (so a
    cancelled or crashed run stops it), with its attempt number and how earlier ones ended."""
    logger = get_run_logger()
    submission = runtime.backend_client().start_distillation(request, taxonomy)
    RunJournal(runtime.store(), run_id).record_job(submission)
    for earlier in submission.earlier:
        logger.warning(
            "earlier attempt %s ended %s: %s",
            earlier.job_id,
            earlier.state,
            earlier.failure_message or "no failure message",
        )
    logger.info(
        "distillation job %s (%s, attempt %d)",
        submission.job_id,
        submission.job_name,
        submission.attempt,
    )
    return submission.job_id


@task(
    name="wait-for-distillation",
    retries=RETRIES,
    retry_delay_seconds=BACKOFF,
    retry_jitter_factor=JITTER,
    retry_condition_fn=retry_if_transient,
)
def wait_for_job(
    job_id: str, runtime: Runtime, interval_s: float, timeout_s: float, router: str
) -> JobStatus:
    """Poll the job until it ends; fail with the service's message unless it Completed."""
    logger = get_run_logger()
    backend = runtime.backend_client()
    artifact = create_progress_artifact(  # sync call in a sync task: returns the id
        progress=0.0,
        key=artifact_key("distillation-progress", router),
        description=f"Distillation job {job_id}",
    )

    def report(status: JobStatus | DeploymentStatus) -> None:
        assert isinstance(status, JobStatus)
        details = ", ".join(f"{k.removesuffix('Details')}={v}" for k, v in status.details.items())
        logger.info("job %s: %s (%s)", job_id, status.state, details or "no details")
        update_progress_artifact(artifact_id=cast(UUID, artifact), progress=job_progress(status))

    try:
        status = poll_until(
            lambda: backend.job_status(job_id),
            lambda s: s.state.terminal,
            interval_s=interval_s,
            timeout_s=timeout_s,
            what=f"distillation job {job_id}",
            on_status=report,
        )
    except WaitTimeout:
        if backend.stop_job(job_id):  # nothing paid keeps running after the run gave up
            logger.warning("stopped job %s: the wait timed out", job_id)
        raise
    assert isinstance(status, JobStatus)
    if status.state != JobState.COMPLETED:
        raise DistillationJobFailed(job_id, status.state, status.failure_message)
    return status


@task(
    name="deploy-model",
    retries=RETRIES,
    retry_delay_seconds=BACKOFF,
    retry_jitter_factor=JITTER,
    retry_condition_fn=retry_if_transient,
)
def deploy_model(
    model_id: str,
    name: str,
    token: str,
    runtime: Runtime,
    *,
    run_id: str,
    tags: dict[str, str],
) -> str:
    """Create the on-demand deployment (or find the one this token created) and record it in
    the run's journal, so clean-up can find it even if this process dies."""
    deployment_id = runtime.backend_client().deploy(model_id, name, token, tags)
    RunJournal(runtime.store(), run_id).record_deployment(deployment_id)
    get_run_logger().info("deployment %s for model %s", deployment_id, model_id)
    return deployment_id


@task(
    name="wait-for-deployment",
    retries=RETRIES,
    retry_delay_seconds=BACKOFF,
    retry_jitter_factor=JITTER,
    retry_condition_fn=retry_if_transient,
)
def wait_for_deployment(
    deployment_id: str, runtime: Runtime, interval_s: float, timeout_s: float
) -> DeploymentStatus:
    """Poll the deployment until Active; fail with the service's message if it Failed."""
    return _wait_until_active(runtime.backend_client(), deployment_id, interval_s, timeout_s)


def _wait_until_active(
    backend: Backend, deployment_id: str, interval_s: float, timeout_s: float
) -> DeploymentStatus:
    logger = get_run_logger()
    status = poll_until(
        lambda: backend.deployment_status(deployment_id),
        lambda s: s.state.terminal,
        interval_s=interval_s,
        timeout_s=timeout_s,
        what=f"deployment {deployment_id}",
        on_status=lambda s: logger.info("deployment %s: %s", deployment_id, s.state),
    )
    assert isinstance(status, DeploymentStatus)
    if status.state != DeploymentState.ACTIVE:
        raise DeploymentFailed(deployment_id, status.failure_message)
    return status


def swap_model(
    backend: Backend,
    deployment_id: str,
    model_id: str,
    interval_s: float,
    timeout_s: float,
    tags: dict[str, str] | None = None,
) -> DeploymentStatus:
    """Make the deployment serve `model_id` (UpdateCustomModelDeployment) and wait until the
    update completed; an update already running is waited for first. DeploymentFailed with the
    service's message if the update failed; DeploymentUpdateRefused if the service does not
    allow it."""
    status = backend.deployment_status(deployment_id)
    if status.update_status == "Updating":
        status = _wait_for_update(backend, deployment_id, interval_s, timeout_s)
    if status.model_id != model_id:
        backend.update_deployment(deployment_id, model_id, tags)
        status = _wait_for_update(backend, deployment_id, interval_s, timeout_s)
    if status.model_id != model_id:
        raise DeploymentFailed(
            deployment_id, f"update to {model_id} failed: {status.failure_message}"
        )
    return status


def _wait_for_update(
    backend: Backend, deployment_id: str, interval_s: float, timeout_s: float
) -> DeploymentStatus:
    logger = get_run_logger()

    def report(status: JobStatus | DeploymentStatus) -> None:
        assert isinstance(status, DeploymentStatus)
        logger.info("deployment %s: update %s", deployment_id, status.update_status)

    status = poll_until(
        lambda: backend.deployment_status(deployment_id),
        lambda s: isinstance(s, DeploymentStatus) and s.update_status != "Updating",
        interval_s=interval_s,
        timeout_s=timeout_s,
        what=f"update of deployment {deployment_id}",
        on_status=report,
    )
    assert isinstance(status, DeploymentStatus)
    return status


@task(
    name="delete-deployment",
    retries=RETRIES,
    retry_delay_seconds=BACKOFF,
    retry_jitter_factor=JITTER,
    retry_condition_fn=retry_if_transient,
)
def delete_deployment(deployment_id: str, runtime: Runtime, reason: str) -> None:
    """Delete a deployment so nothing paid outlives the run (one already gone is skipped)."""
    backend = runtime.backend_client()
    try:
        backend.deployment_status(deployment_id)
    except DeploymentNotFound:
        get_run_logger().debug("deployment %s is already deleted (%s)", deployment_id, reason)
        return
    backend.delete_deployment(deployment_id)
    get_run_logger().info("deleted deployment %s (%s)", deployment_id, reason)


@task(
    name="ensure-champion-deployed",
    retries=RETRIES,
    retry_delay_seconds=BACKOFF,
    retry_jitter_factor=JITTER,
    retry_condition_fn=retry_if_transient,
)
def ensure_champion_deployed(
    champion: ChampionRecord, runtime: Runtime, interval_s: float, timeout_s: float
) -> ChampionRecord:
    """Give the champion a live deployment again if it lost it (e.g. after a rollback)."""
    logger = get_run_logger()
    backend = runtime.backend_client()
    try:
        found = backend.deployment_status(champion.deployment_id)
        serves = found.model_id == champion.model_id and found.update_status != "Updating"
        if found.state == DeploymentState.ACTIVE and (serves or not backend.stable_deployments):
            return champion
        reason = f"deployment {champion.deployment_id} is not Active"
        if found.state == DeploymentState.ACTIVE:  # e.g. after a rollback: swap the model back
            logger.warning(
                "deployment %s serves %s, not the champion %s; swapping it back",
                champion.deployment_id,
                found.update_model_id if found.update_status == "Updating" else found.model_id,
                champion.model_id,
            )
            try:
                swap_model(
                    backend, champion.deployment_id, champion.model_id, interval_s, timeout_s
                )
                return champion
            except DeploymentUpdateRefused as refused:
                reason = str(refused)
    except DeploymentNotFound:
        reason = f"deployment {champion.deployment_id} no longer exists"
    registry = ChampionRegistry(runtime.store(), champion.router)
    seed = f"restore:{champion.router}:{champion.model_id}:{len(registry.ledger())}"
    token = hashlib.sha256(seed.encode()).hexdigest()
    logger.warning("champion %s: %s; redeploying it", champion.model_id, reason)
    deployment_id = backend.deploy(
        champion.model_id, f"{champion.router}-restore-{token[:10]}", token
    )
    _wait_until_active(backend, deployment_id, interval_s, timeout_s)
    return registry.redeploy(deployment_id, note=reason).champion
