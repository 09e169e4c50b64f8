"""Where the batch fan-out runs: the flow's thread pool, or a Dask cluster (prefect-dask)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from prefect.settings import PREFECT_API_URL
from prefect.task_runners import TaskRunner

from intent_router.errors import UserInputError

logger = logging.getLogger(__name__)

DASK_ADDRESS_ENV = "ROUTER_DISTILL_DASK_ADDRESS"
DASK_WORKERS_ENV = "ROUTER_DISTILL_DASK_WORKERS"


def dask_runner() -> TaskRunner[Any]:
    """A DaskTaskRunner: the scheduler at ROUTER_DISTILL_DASK_ADDRESS, else a local cluster."""
    try:
        from prefect_dask.task_runners import DaskTaskRunner
    except ImportError:
        raise UserInputError(
            "task_runner 'dask' needs the optional 'dask' dependencies: "
            "uv sync --extra dask (or pip install 'router-distill[dask]')"
        ) from None
    if not PREFECT_API_URL.value():
        raise UserInputError(
            "task_runner 'dask' needs a Prefect server (set PREFECT_API_URL, e.g. after "
            "`prefect server start`): without one, every Dask worker process would start its "
            "own temporary Prefect API on the same SQLite database"
        )
    address = os.environ.get(DASK_ADDRESS_ENV)
    if address:
        logger.info("fan-out on the Dask scheduler at %s", address)
        return DaskTaskRunner(address=address)
    raw = os.environ.get(DASK_WORKERS_ENV, "2")
    if not raw.isdigit() or not 1 <= int(raw) <= 64:
        raise UserInputError(f"{DASK_WORKERS_ENV} must be a whole number from 1 to 64, got {raw!r}")
    workers = int(raw)
    logger.info("fan-out on a local Dask cluster with %d worker processes", workers)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        }
    )


@contextmanager
def fan_out(choice: Literal["threads", "dask"]) -> Iterator[TaskRunner[Any] | None]:
    """None means: submit to the flow's own (thread pool) task runner."""
    if choice == "threads":
        yield None
        return
    with dask_runner() as runner:
        yield runner
