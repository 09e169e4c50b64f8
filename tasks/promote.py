"""Gate and promotion: write the champion pointer and the ledger entry."""

from __future__ import annotations

from prefect import task
from prefect.logging import get_run_logger

from intent_router.registry import ChampionRecord, ChampionRegistry, LedgerEntry
from tasks.runtime import Runtime


@task(name="promote-candidate")
def promote_candidate(record: ChampionRecord, runtime: Runtime, note: str) -> LedgerEntry:
    """Point the router's champion at the candidate and append to the promotion ledger."""
    entry = ChampionRegistry(runtime.store(), record.router).promote(record, note=note)
    get_run_logger().info(
        "promoted %s as champion of %s (ledger entry %d)",
        record.model_id,
        record.router,
        entry.entry,
    )
    return entry
