"""Gate and promotion: write the champion pointer and the ledger, announce the outcome."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger

from intent_router.registry import ChampionRecord, ChampionRegistry, LedgerEntry
from intent_router.report import artifact_key
from tasks.events import emit_router_event
from tasks.runtime import Runtime

PROMOTED_EVENT = "router.promoted"
REJECTED_EVENT = "router.rejected"


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


def ledger_rows(entries: list[LedgerEntry]) -> list[dict[str, Any]]:
    """The ledger as table rows, newest first."""
    rows = []
    for e in reversed(entries):
        metrics = e.champion.metrics
        rows.append(
            {
                "entry": e.entry,
                "action": e.action,
                "at": e.at,
                "model": e.champion.model_id,
                "previous": e.previous_model_id or "",
                "run": e.champion.run_id,
                "triggered_by": e.champion.triggered_by,
                "top_signal_accuracy": metrics.get("top_signal_accuracy"),
                "mean_rubric": metrics.get("mean_rubric"),
                "mean_mae": metrics.get("mean_mae"),
                "note": e.note,
            }
        )
    return rows


def publish_ledger(router: str, entries: list[LedgerEntry]) -> None:
    """Show the router's promotion ledger as a table artifact (key ledger-<router>)."""
    create_table_artifact(
        key=artifact_key("ledger", router),
        table=ledger_rows(entries) or [{"entry": None, "action": "no promotions yet"}],
        description=f"Promotion ledger of router `{router}`, newest first",
    )


def announce(
    outcome: str,
    *,
    router: str,
    run_id: str,
    model_id: str,
    taxonomy: str,
    metrics: dict[str, Any],
    previous_champion: str | None,
    summary: str,
) -> None:
    """Emit router.promoted, or router.rejected (also for a blocked candidate), so automations
    can react."""
    event = PROMOTED_EVENT if outcome == "promoted" else REJECTED_EVENT
    emit_router_event(
        event,
        router,
        run_id,
        {
            "outcome": outcome,  # promoted, rejected or blocked
            "router": router,
            "run_id": run_id,
            "model_id": model_id,
            "taxonomy": taxonomy,
            "metrics": metrics,
            "previous_champion": previous_champion,
            "gate": summary,
        },
    )
    get_run_logger().info("emitted %s for router %s", event, router)
