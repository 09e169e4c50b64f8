"""Serve every deployment of prefect.yaml from one process, schedules included (no worker).

One way to deploy per environment: `serve` and `prefect deploy` register the same deployment
names, so serving would take deployments off their work pool. `serve` therefore refuses while a
deployment of the same flow and name is on a work pool, and it leaves the schedules active when
it stops (`pause_on_shutdown=False`), so stopping it never pauses the weekly retraining.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prefect import Flow, get_client, serve
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import ObjectNotFound
from prefect.schedules import Cron
from prefect.settings import PREFECT_API_URL
from prefect.types.entrypoint import EntrypointType

from deployments.specs import PREFECT_YAML, DeploymentSpec, load_specs
from intent_router.errors import UserInputError
from intent_router.settings import HOME_ENV, home

logger = logging.getLogger(__name__)

# "flow-name/deployment-name" -> the work pool it is deployed on, or None (absent or served).
WorkPoolLookup = Callable[[str], str | None]


def load_flow(spec: DeploymentSpec) -> Flow[Any, Any]:
    """Import the deployment's flow by module path, so the runner can find it from any folder."""
    module_name, _, attribute = spec.module_entrypoint.rpartition(".")
    flow = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(flow, Flow):
        raise UserInputError(f"entrypoint {spec.entrypoint} of {spec.name} is not a flow")
    return flow


def runner_deployment(spec: DeploymentSpec, cron: str | None = None) -> RunnerDeployment:
    """The prefect.yaml deployment as a RunnerDeployment; `cron` replaces its schedules."""
    schedules = [Cron(s.cron, timezone=s.timezone, active=s.active) for s in spec.schedules]
    if cron is not None and schedules:
        schedules = [Cron(cron, timezone=spec.schedules[0].timezone)]
    deployment = load_flow(spec).to_deployment(
        name=spec.name,
        description=spec.description,
        tags=spec.tags,
        parameters=spec.parameters,
        schedules=schedules or None,
        concurrency_limit=spec.concurrency_limit,
        enforce_parameter_schema=spec.enforce_parameter_schema,
        entrypoint_type=EntrypointType.MODULE_PATH,
        _sync=True,  # type: ignore[call-arg]
    )
    assert isinstance(deployment, RunnerDeployment)
    return deployment


def work_pool_on_server(full_name: str) -> str | None:
    """The work pool of the deployment `flow/name` on the configured server, if it has one."""
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(full_name)
        except ObjectNotFound:
            return None
    return deployment.work_pool_name


def refuse_pool_deployments(full_names: Iterable[str], work_pool_of: WorkPoolLookup) -> None:
    """Raise UserInputError when any of these deployments is already deployed on a work pool."""
    on_pools = {name: pool for name in full_names if (pool := work_pool_of(name))}
    if not on_pools:
        return
    pools = sorted(set(on_pools.values()))
    raise UserInputError(
        f"{', '.join(on_pools)} already deployed on work pool {', '.join(pools)} "
        f"by prefect deploy: run them with `prefect worker start --pool {pools[0]}`, or delete "
        f"them first (`prefect deployment delete NAME`) to serve them instead"
    )


def serve_deployments(
    path: Path = PREFECT_YAML,
    *,
    cron: str | None = None,
    only: list[str] | None = None,
    limit: int | None = None,
    work_pool_of: WorkPoolLookup = work_pool_on_server,
) -> None:
    """Register the deployments with the Prefect server and run their flow runs here.

    Refuses when a deployment of the same name is on a work pool (`work_pool_of` looks it up);
    stopping the process leaves the schedules active.
    """
    if not PREFECT_API_URL.value():
        raise UserInputError(
            "serve needs a Prefect server: run `prefect server start` and set "
            "PREFECT_API_URL (e.g. http://127.0.0.1:4200/api)"
        )
    specs = load_specs(path)
    if only:
        unknown = sorted(set(only) - {s.name for s in specs})
        if unknown:
            raise UserInputError(
                f"no deployment named {', '.join(unknown)} in {path}; "
                f"declared: {', '.join(s.name for s in specs)}"
            )
        specs = [s for s in specs if s.name in only]
    deployments = [runner_deployment(s, cron) for s in specs]
    refuse_pool_deployments((f"{d.flow_name}/{d.name}" for d in deployments), work_pool_of)
    # Served runs inherit this process's environment: pin the storage root to an absolute path
    # now, so a run that starts elsewhere still writes where the CLI started here reads.
    os.environ[HOME_ENV] = str(home())
    logger.info("serving %s; runs write to %s", ", ".join(s.name for s in specs), home())
    serve(*deployments, limit=limit, pause_on_shutdown=False)
