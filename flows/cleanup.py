"""Crash and cancellation clean-up: stop the jobs a run started that still run, and delete the
deployments it created and did not promote.

The worker or `serve` process runs these hooks when the flow's own process was killed, evicted
or cancelled, so they rebuild everything from the run's parameters and its journal in storage.
"""

from __future__ import annotations

import logging
from typing import Any

from intent_router.journal import RunJournal
from intent_router.params import DistillParams
from intent_router.registry import ChampionRegistry
from intent_router.taxonomy import resolve_taxonomy
from tasks.runtime import Runtime

logger = logging.getLogger(__name__)


def run_leftovers(params: DistillParams, run_id: str, runtime: Runtime) -> list[str]:
    """Deployments the run created that do not serve the router's champion."""
    taxonomy = params.taxonomy_definition or resolve_taxonomy(params.taxonomy)
    router = params.router_name or taxonomy.name
    store = runtime.store()
    champion = ChampionRegistry(store, router).current()
    serving = champion.deployment_id if champion else None
    return [d for d in RunJournal(store, run_id).deployments() if d != serving]


def tear_down_run(flow: Any, flow_run: Any, state: Any) -> None:
    """on_crashed / on_cancellation: stop its running jobs (StopModelCustomizationJob; one
    that already ended is skipped), delete what it created and did not promote."""
    params = DistillParams.model_validate(flow_run.parameters)
    runtime = Runtime.for_params(params)
    backend = runtime.backend_client()
    for job in RunJournal(runtime.store(), str(flow_run.id)).jobs():
        if backend.stop_job(job.job_id):
            logger.warning(
                "run %s ended %s: stopped its job %s", flow_run.id, state.name, job.job_id
            )
    for deployment_id in run_leftovers(params, str(flow_run.id), runtime):
        backend.delete_deployment(deployment_id)
        logger.warning(
            "run %s ended %s: deleted its deployment %s", flow_run.id, state.name, deployment_id
        )
