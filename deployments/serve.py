"""Serve every deployment of prefect.yaml from one process, schedules included (no worker)."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from prefect import Flow, serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron
from prefect.settings import PREFECT_API_URL
from prefect.types.entrypoint import EntrypointType

from deployments.specs import PREFECT_YAML, DeploymentSpec, load_specs
from intent_router.errors import UserInputError

logger = logging.getLogger(__name__)


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


def serve_deployments(
    path: Path = PREFECT_YAML,
    *,
    cron: str | None = None,
    only: list[str] | None = None,
    limit: int | None = None,
) -> None:
    """Register the deployments with the Prefect server and run their flow runs here."""
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
    logger.info("serving %s", ", ".join(s.name for s in specs))
    serve(*deployments, limit=limit)
