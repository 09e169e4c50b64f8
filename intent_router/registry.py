"""Champion pointer and promotion ledger, per router name, in object storage.

Layout (unchanged): `routers/<router>/ledger.jsonl`, one JSON entry per line (promotions,
rollbacks, redeploys), and `routers/<router>/champion.json`, the live champion plus the number
of the ledger entry it came from (`ledger_entry`). The ledger is the authority; the pointer is
what serving reads.

Every change is one transaction per router: read the ledger and its version, compute the next
entry (number = last + 1) from the ledger's tail, then replace the ledger only if it is still at
that version (`ConditionalStore.write_if`); on a lost race, re-read and recompute, a bounded
number of times. After the ledger, the pointer is replaced by compare-and-swap too, and only by
a newer entry than the one it names, so out-of-order pointer writes cannot move it backwards.

- DirectoryStore: the whole transaction also runs under an exclusive `flock` on
  `routers/<router>/.lock`; the ledger is rewritten via temp file + fsync + rename.
- S3 (BlockStore over an S3Bucket): conditional puts, `IfMatch=<etag>` to replace and
  `IfNoneMatch="*"` to create; no lock is needed.

A crash between the ledger and the pointer write leaves the pointer one entry behind; the next
change (or a retried promote, which is idempotent) repairs it, and `check()` logs it.

Corrupt state is an error (CorruptStateError naming the file and the problem), never "empty",
and a corrupt pointer or ledger is never overwritten. A promotion of the model that is already
the champion with the same deployment is a no-op that returns the latest entry (so a retried
promote task does not record twice); with another deployment it is refused (use redeploy).
"""

from __future__ import annotations

import logging
import math
import random
import re
import time
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from intent_router.cascade import CascadePolicy
from intent_router.errors import ConcurrentUpdateError, CorruptStateError, UserInputError
from intent_router.storage import ConditionalStore, ObjectStore

logger = logging.getLogger(__name__)

ROUTER_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,47}$"
"""Router names: 1 to 48 lowercase letters, digits and '-', not starting with '-'."""
_ROUTER_NAME = re.compile(ROUTER_NAME_PATTERN)

MAX_ATTEMPTS = 25
"""Compare-and-swap attempts before a change gives up with ConcurrentUpdateError."""


def check_router_name(name: str) -> str:
    """The name if it is a valid router name; else a one-line UserInputError."""
    if not isinstance(name, str) or not _ROUTER_NAME.fullmatch(name):
        text = str(name)
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise UserInputError(
            f"invalid router name {shown!r}: use 1 to 48 lowercase letters, digits and '-', "
            "starting with a letter or digit"
        )
    return name


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
    training_data: str | None = None  # storage path of the training JSONL (drift monitoring)
    cascade: CascadePolicy | None = None  # when to ask the teacher instead (None: never chosen)
    training_mode: str = "fine-tune-labelled"  # how it learned (training_modes.TrainingMode)
    prompt: Literal["student", "teacher"] = "student"  # the prompt it is called with
    prior: dict[str, float] | None = None  # training-mean weights: the serving fallback


class _Pointer(ChampionRecord):
    """champion.json: the record plus the ledger entry it came from (0: written before that)."""

    ledger_entry: int = 0


def _record(pointer: _Pointer | None) -> ChampionRecord | None:
    if pointer is None:
        return None
    return ChampionRecord.model_validate(pointer.model_dump(exclude={"ledger_entry"}))


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


def _problem(error: ValidationError) -> str:
    """The first validation problem, on one line."""
    first = error.errors()[0]
    where = ".".join(map(str, first["loc"]))
    text = f"{where}: {first['msg']}" if where else str(first["msg"])
    return " ".join(text.split())[:200]


def rolled_back_models(entries: Iterable[LedgerEntry]) -> set[str]:
    """Models a rollback moved away from (their `previous_model_id`)."""
    return {e.previous_model_id for e in entries if e.action == "rollback" and e.previous_model_id}


def best_entry(
    entries: Iterable[LedgerEntry],
    metric: str,
    *,
    higher_is_better: bool = True,
    exclude_models: Collection[str] = (),
) -> LedgerEntry | None:
    """The promotion with the best finite numeric `metric` (the latest of equals), or None.

    Rollbacks and redeploys repeat an earlier champion and are not considered."""
    best: tuple[float, LedgerEntry] | None = None
    for entry in entries:
        if entry.action != "promote" or entry.champion.model_id in exclude_models:
            continue
        value = entry.champion.metrics.get(metric)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        score = float(value) if higher_is_better else -float(value)
        if math.isfinite(score) and (best is None or score >= best[0]):
            best = (score, entry)
    return best[1] if best else None


Build = Callable[[list[LedgerEntry], ChampionRecord | None, int], LedgerEntry]


class ChampionRegistry:
    """Champion and ledger for one router name."""

    def __init__(self, store: ObjectStore, router: str) -> None:
        self.store = store
        self.router = check_router_name(router)
        self._pointer = f"routers/{router}/champion.json"
        self._ledger = f"routers/{router}/ledger.jsonl"
        self._lock = f"routers/{router}/.lock"

    # -- reading -------------------------------------------------------------------------------
    def _parse_pointer(self, data: bytes) -> _Pointer:
        if not data.strip():
            problem = "empty file"
        else:
            try:
                return _Pointer.model_validate_json(data)
            except ValidationError as error:
                problem = _problem(error)
        raise CorruptStateError(
            f"{self._pointer} is corrupt ({problem}); fix or remove it (the ledger has the history)"
        )

    def _parse_ledger(self, data: bytes) -> list[LedgerEntry]:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise CorruptStateError(
                f"{self._ledger} is corrupt (not UTF-8 at byte {error.start}); fix that line"
            ) from None
        entries: list[LedgerEntry] = []
        # split on "\n" only: str.splitlines would also split inside notes (U+2028 etc.)
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                entry = LedgerEntry.model_validate_json(line)
            except ValidationError as error:
                raise CorruptStateError(
                    f"{self._ledger} line {number} is corrupt ({_problem(error)}); "
                    "fix or remove that line"
                ) from None
            if entries and entry.entry <= entries[-1].entry:
                raise CorruptStateError(
                    f"{self._ledger} line {number} is corrupt (entry {entry.entry} after entry "
                    f"{entries[-1].entry}; entry numbers must increase); fix that line"
                )
            entries.append(entry)
        return entries

    def _read_pointer(self) -> _Pointer | None:
        data = self.store.read(self._pointer)
        return None if data is None else self._parse_pointer(data)

    def read_pointer(self) -> tuple[bytes, ChampionRecord] | None:
        """The pointer's bytes (to notice a change) and its champion; None if none was
        promoted. CorruptStateError if unreadable."""
        data = self.store.read(self._pointer)
        if data is None:
            return None
        record = _record(self._parse_pointer(data))
        assert record is not None
        return data, record

    def current(self) -> ChampionRecord | None:
        """The live champion; None if none was promoted. CorruptStateError if unreadable."""
        return _record(self._read_pointer())

    def ledger(self) -> list[LedgerEntry]:
        """All entries, oldest first. CorruptStateError (with the line number) on a bad line,
        and when the pointer names an entry the ledger does not have (a lost or cut ledger)."""
        # The pointer first: it is written after the ledger, so every entry it names is in a
        # ledger read after it, even while another process is promoting.
        try:
            pointer: _Pointer | None = self._read_pointer()
        except CorruptStateError:  # the history stays readable to repair a broken pointer
            pointer = None
        data = self.store.read(self._ledger)
        entries = self._parse_ledger(data) if data else []
        self._check_pointer_in(entries, pointer)
        return entries

    def _check_pointer_in(self, entries: list[LedgerEntry], pointer: _Pointer | None) -> None:
        """The pointer may lag the ledger (a crash between the writes), never lead it."""
        last = entries[-1].entry if entries else 0
        if pointer is not None and pointer.ledger_entry > last:
            where = f"ends at entry {last}" if entries else "is missing"
            raise CorruptStateError(
                f"{self._pointer} names ledger entry {pointer.ledger_entry} but {self._ledger} "
                f"{where}; restore the ledger (it is the history) before changing the champion"
            )

    def check(self) -> None:
        """Raise if the pointer or the ledger is corrupt or the store cannot change them safely.

        CorruptStateError for unreadable state; UserInputError for a store without conditional
        writes. A pointer behind the ledger (a crash between the two writes) is only logged:
        the next change repairs it."""
        pointer = self._read_pointer()
        entries = self.ledger()
        self._conditional_store()
        if pointer is not None and entries and pointer.ledger_entry not in (0, entries[-1].entry):
            logger.warning(
                "%s names ledger entry %d but the ledger ends at entry %d; the next change "
                "repairs it",
                self._pointer,
                pointer.ledger_entry,
                entries[-1].entry,
            )

    # -- changing ------------------------------------------------------------------------------
    def _conditional_store(self) -> ConditionalStore:
        store = self.store
        if not isinstance(store, ConditionalStore) or not store.supports_conditional_writes():
            kind = type(getattr(store, "block", store)).__name__  # BlockStore: name the block
            raise UserInputError(
                f"storage {kind} cannot write the champion ledger safely "
                "(no conditional writes); use a LocalFileSystem or S3Bucket block"
            )
        return store

    def _transact(self, build: Build) -> LedgerEntry:
        """Append the entry `build(entries, current, next_number)` makes, atomically.

        `build` may return the last entry (a no-op) or raise. `current` is the ledger tail's
        champion (the pointer's when the ledger is empty)."""
        store = self._conditional_store()
        with store.locked(self._lock):
            for attempt in range(MAX_ATTEMPTS):
                # The pointer before the ledger (see `ledger`): a pointer ahead of a ledger read
                # after it is a lost ledger, not a concurrent writer.
                pointer = self._read_pointer()  # refuse to go on over a corrupt pointer
                versioned = store.read_versioned(self._ledger)
                data = versioned.data if versioned else b""
                entries = self._parse_ledger(data) if data else []
                self._check_pointer_in(entries, pointer)
                current = entries[-1].champion if entries else _record(pointer)
                entry = build(entries, current, entries[-1].entry + 1 if entries else 1)
                if entries and entry is entries[-1]:  # a no-op: repair the pointer only
                    self._write_pointer(store, entry)
                    return entry
                if data and not data.endswith(b"\n"):
                    data += b"\n"
                line = entry.model_dump_json().encode() + b"\n"
                if store.write_if(
                    self._ledger, data + line, versioned.version if versioned else None
                ):
                    self._write_pointer(store, entry)
                    return entry
                logger.debug("ledger of %s changed meanwhile; retrying", self.router)
                time.sleep(random.uniform(0, min(0.05, 0.002 * (attempt + 1))))  # jittered backoff
        raise ConcurrentUpdateError(
            f"ledger of {self.router!r} kept changing; gave up after {MAX_ATTEMPTS} attempts"
        )

    def _write_pointer(self, store: ConditionalStore, entry: LedgerEntry) -> None:
        """Point at `entry` unless the pointer already names a newer entry (compare-and-swap)."""
        pointer = _Pointer.model_validate(
            {**entry.champion.model_dump(), "ledger_entry": entry.entry}
        )
        data = pointer.model_dump_json(indent=2).encode()
        for _ in range(MAX_ATTEMPTS):
            existing = store.read_versioned(self._pointer)
            if existing is not None:
                if self._parse_pointer(existing.data).ledger_entry >= entry.entry:
                    return
                if existing.data == data:
                    return
            if store.write_if(self._pointer, data, existing.version if existing else None):
                return
        raise ConcurrentUpdateError(
            f"{self._pointer} kept changing; gave up after {MAX_ATTEMPTS} attempts"
        )

    def promote(self, record: ChampionRecord, note: str = "") -> LedgerEntry:
        """Make `record` the champion. Promoting the current champion again with the same
        deployment returns its latest entry; with another deployment it is refused."""

        def build(
            entries: list[LedgerEntry], current: ChampionRecord | None, number: int
        ) -> LedgerEntry:
            if current is not None and current.model_id == record.model_id:
                if entries and current.deployment_id == record.deployment_id:
                    logger.info("%s is already the champion of %s", record.model_id, self.router)
                    return entries[-1]
                raise UserInputError(
                    f"{record.model_id} is already the champion of {self.router!r}; a promotion "
                    "cannot replace a champion with itself (use redeploy for a new deployment)"
                )
            return LedgerEntry(
                entry=number,
                action="promote",
                at=now_iso(),
                champion=record,
                previous_model_id=current.model_id if current else None,
                note=note,
            )

        return self._transact(build)

    def rollback(self, to_entry: int | None = None, note: str = "") -> LedgerEntry:
        """Re-point the champion to an earlier promotion (default: the one before the current)."""

        def build(
            entries: list[LedgerEntry], current: ChampionRecord | None, number: int
        ) -> LedgerEntry:
            if current is None:
                raise UserInputError(f"router {self.router!r} has no champion to roll back")
            if to_entry is None:
                promotions = [e for e in entries if e.action == "promote"]
                current_entry = max(
                    (e.entry for e in promotions if e.champion.model_id == current.model_id),
                    default=number,
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
                if target.champion.model_id == current.model_id:
                    raise UserInputError(
                        f"entry {to_entry} of {self.router!r} is {current.model_id}, "
                        "which is already the champion"
                    )
            return LedgerEntry(
                entry=number,
                action="rollback",
                at=now_iso(),
                champion=target.champion,
                previous_model_id=current.model_id,
                note=note or f"rollback to entry {target.entry}",
            )

        return self._transact(build)

    def redeploy(self, deployment_id: str, note: str = "") -> LedgerEntry:
        """Record that the current champion now serves from a new deployment."""

        def build(
            entries: list[LedgerEntry], current: ChampionRecord | None, number: int
        ) -> LedgerEntry:
            if current is None:
                raise UserInputError(f"router {self.router!r} has no champion to redeploy")
            return LedgerEntry(
                entry=number,
                action="redeploy",
                at=now_iso(),
                champion=current.model_copy(update={"deployment_id": deployment_id}),
                previous_model_id=current.model_id,
                note=note or f"deployment {current.deployment_id} replaced by {deployment_id}",
            )

        return self._transact(build)
