"""One run at a time may change a router's champion.

With a Prefect server (PREFECT_API_URL set) the lock is a global concurrency slot named for the
router, so runs on any worker share it; the slot is leased and renewed, and the server frees the
slot of a holder that died once its lease expires. Without a server each process runs its own
temporary API, whose leases live in that process's memory: a killed run's slot would stay taken
forever. There the lock is a file lock under ROUTER_DISTILL_HOME, which the kernel frees when
the holder dies (runs of one machine share it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists
from prefect.logging import get_run_logger
from prefect.settings import PREFECT_API_URL

from intent_router.locks import process_lock
from intent_router.settings import home


def router_lock_name(router: str) -> str:
    return f"router-{router}"


@contextmanager
def router_lock(router: str, timeout_seconds: float) -> Iterator[None]:
    """Hold the router's lock from the champion's check to the champion write, so two runs of
    one router never interleave their promotions."""
    name = router_lock_name(router)
    logger = get_run_logger()
    logger.info("waiting for the %s lock", name)
    if not PREFECT_API_URL.value():
        with process_lock(home() / "locks" / f"{name}.lock", timeout_seconds):
            logger.info("holding the %s lock (a file lock: no Prefect server)", name)
            yield
        return
    # strict: a missing limit is an error, never a silent pass. ObjectAlreadyExists: another
    # run of the router created the limit a moment ago.
    with get_client(sync_client=True) as client, suppress(ObjectAlreadyExists):
        client.upsert_global_concurrency_limit_by_name(name, 1)
    with concurrency(name, occupy=1, strict=True, timeout_seconds=timeout_seconds):
        logger.info("holding the %s lock (a global concurrency slot)", name)
        yield
