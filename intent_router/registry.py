"""Champion pointer and promotion ledger, per router name, in object storage.

The ledger is append-only JSONL: promotions and rollbacks. The champion pointer is a small JSON
object naming the live model and deployment; rollback re-points it to an earlier ledger entry.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from intent_router.errors import UserInputError
from intent_router.storage import ObjectStore


class ChampionRecord(BaseModel):
    """What is live for a router: the model, its deployment and how it scored."""

    model_config = ConfigDict(frozen=True)

    router: str
    model_id: str
    deployment_id: str
    run_id: str
    taxonomy: str
    signals: tuple[str, ...]
    metrics: dict[str, Any]
    promoted_at: str
    triggered_by: str = "manual"


class LedgerEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    entry: int
    action: Literal["promote", "rollback", "redeploy"]
    at: str
    champion: ChampionRecord
    previous_model_id: str | None = None
    note: str = Field(default="")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ChampionRegistry:
    """Champion and ledger for one router name."""

    def __init__(self, store: ObjectStore, router: str) -> None:
        self.store = store
        self.router = router
        self._pointer = f"routers/{router}/champion.json"
        self._ledger = f"routers/{router}/ledger.jsonl"

    def current(self) -> ChampionRecord | None:
        data = self.store.read(self._pointer)
        return ChampionRecord.model_validate_json(data) if data else None

    def ledger(self) -> list[LedgerEntry]:
        data = self.store.read(self._ledger)
        if not data:
            return []
        return [LedgerEntry.model_validate_json(line) for line in data.splitlines() if line.strip()]

    def _append(self, entry: LedgerEntry) -> None:
        existing = self.store.read(self._ledger) or b""
        self.store.write(self._ledger, existing + entry.model_dump_json().encode() + b"\n")

    def promote(self, record: ChampionRecord, note: str = "") -> LedgerEntry:
        previous = self.current()
        entry = LedgerEntry(
            entry=len(self.ledger()) + 1,
            action="promote",
            at=now_iso(),
            champion=record,
            previous_model_id=previous.model_id if previous else None,
            note=note,
        )
        self._append(entry)
        self.store.write(self._pointer, record.model_dump_json(indent=2).encode())
        return entry

    def rollback(self, to_entry: int | None = None, note: str = "") -> LedgerEntry:
        """Re-point the champion to an earlier promotion (default: the one before the current)."""
        entries = self.ledger()
        current = self.current()
        if current is None:
            raise UserInputError(f"router {self.router!r} has no champion to roll back")
        if to_entry is None:
            promotions = [e for e in entries if e.action == "promote"]
            current_entry = max(
                (e.entry for e in promotions if e.champion.model_id == current.model_id),
                default=len(entries) + 1,
            )
            earlier = [
                e
                for e in promotions
                if e.entry < current_entry and e.champion.model_id != current.model_id
            ]
            if not earlier:
                raise UserInputError(f"router {self.router!r} has no earlier champion")
            target = earlier[-1]
        else:
            matches = [e for e in entries if e.entry == to_entry]
            if not matches:
                raise UserInputError(f"ledger of {self.router!r} has no entry {to_entry}")
            target = matches[0]
        entry = LedgerEntry(
            entry=len(entries) + 1,
            action="rollback",
            at=now_iso(),
            champion=target.champion,
            previous_model_id=current.model_id,
            note=note or f"rollback to entry {target.entry}",
        )
        self._append(entry)
        self.store.write(self._pointer, target.champion.model_dump_json(indent=2).encode())
        return entry

    def redeploy(self, deployment_id: str, note: str = "") -> LedgerEntry:
        """Record that the current champion now serves from a new deployment."""
        current = self.current()
        if current is None:
            raise UserInputError(f"router {self.router!r} has no champion to redeploy")
        record = current.model_copy(update={"deployment_id": deployment_id})
        entry = LedgerEntry(
            entry=len(self.ledger()) + 1,
            action="redeploy",
            at=now_iso(),
            champion=record,
            previous_model_id=current.model_id,
            note=note or f"deployment {current.deployment_id} replaced by {deployment_id}",
        )
        self._append(entry)
        self.store.write(self._pointer, record.model_dump_json(indent=2).encode())
        return entry
