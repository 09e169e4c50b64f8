"""One run at a time may change a router's champion: a Prefect global concurrency slot."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists
from prefect.logging import get_run_logger


def router_lock_name(router: str) -> str:
    return f"router-{router}"


@contextmanager
def router_lock(router: str, timeout_seconds: float) -> Iterator[None]:
    """Hold the router's slot (a limit of 1, created on first use) from the champion's check to
    the champion write, so two runs of one router never interleave their promotions.

    strict: a missing limit is an error, never a silent pass. The slot is leased and renewed;
    a process that dies frees it when the lease expires.
    """
    name = router_lock_name(router)
    # ObjectAlreadyExists: another run of the router created it a moment ago.
    with get_client(sync_client=True) as client, suppress(ObjectAlreadyExists):
        client.upsert_global_concurrency_limit_by_name(name, 1)
    logger = get_run_logger()
    logger.info("waiting for the %s lock", name)
    with concurrency(name, occupy=1, strict=True, timeout_seconds=timeout_seconds):
        logger.info("holding the %s lock", name)
        yield
