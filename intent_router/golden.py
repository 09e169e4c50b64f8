"""Golden sets: human-labelled queries per router, parsed strictly and scored against outputs.

A golden set is a .jsonl or .csv file (each optionally gzipped). Every line names a query, the
expected top signal, other acceptable top signals, optional reference weights and slice tags.
Parsing collects every problem before failing, so one run of `golden check` lists them all.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import re
import zlib
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from intent_router.errors import UserInputError
from intent_router.metrics import (
    UNPARSEABLE,
    parse_outputs,
    top_signal,
    top_signals,
    wilson_interval,
)
from intent_router.text import check_query

MAX_GOLDEN_BYTES = 20_000_000
"""Largest golden file (and largest decompressed content of a .gz) accepted."""
MAX_GOLDEN_QUERY_CHARS = 500
WEIGHT_SUM_TOLERANCE = 0.01
MAX_MISSES = 25
FIELDS = ("query", "top", "also", "weights", "tags")
_TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_LIST_SEPARATORS = re.compile(r"[;|]")
_SPACES = re.compile(r"\s+")


class GoldenItem(BaseModel):
    """One labelled query."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    query: str
    top: str
    also: tuple[str, ...] = ()
    weights: dict[str, float] | None = None
    tags: tuple[str, ...] = ()
    line: int

    @property
    def accepted(self) -> frozenset[str]:
        """Every acceptable top signal: `top` plus `also`."""
        return frozenset((self.top, *self.also))


class GoldenSet(BaseModel):
    """A parsed golden set: where it came from, a content version and its items in file order."""

    model_config = ConfigDict(frozen=True)

    source: str
    version: str
    items: tuple[GoldenItem, ...]

    @property
    def queries(self) -> list[str]:
        return [item.query for item in self.items]


class GoldenSetError(UserInputError):
    """A golden set cannot be read or has problems; `problems` lists every one."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems) or ["unknown problem"]
        if len(self.problems) == 1:
            message = f"golden set {source}: {self.problems[0]}"
        else:
            message = (
                f"golden set {source}: {len(self.problems)} problems; first: {self.problems[0]}"
            )
        super().__init__(message)


# -- parsing -------------------------------------------------------------------------------------
def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _normalised(query: str) -> str:
    return _SPACES.sub(" ", query.lower()).strip()


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class _Checker:
    """Validates raw records (field -> parsed value) into items, collecting problems."""

    def __init__(self, signals: Sequence[str]) -> None:
        self.signals = tuple(signals)
        self.known = ", ".join(self.signals)
        self.problems: list[str] = []
        self.items: list[GoldenItem] = []
        self._seen: dict[str, GoldenItem] = {}

    def problem(self, line: int, message: str, field: str | None = None) -> None:
        where = f"line {line}, field '{field}'" if field else f"line {line}"
        self.problems.append(f"{where}: {message}")

    def _signal(self, line: int, field: str, value: Any) -> str | None:
        if not isinstance(value, str):
            self.problem(line, f"expected a signal name, got {type(value).__name__}", field)
            return None
        if value not in self.signals:
            self.problem(line, f"unknown signal {_short(value)} (known: {self.known})", field)
            return None
        return value

    def _query(self, line: int, value: Any) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            self.problem(line, "missing or empty query", "query")
            return None
        try:
            query = check_query(value)
        except ValueError as error:
            self.problem(line, str(error), "query")
            return None
        if len(query) > MAX_GOLDEN_QUERY_CHARS:
            self.problem(
                line,
                f"query is {len(query):,} characters; the limit is {MAX_GOLDEN_QUERY_CHARS}",
                "query",
            )
            return None
        return query

    def _also(self, line: int, value: Any, top: str | None) -> tuple[str, ...] | None:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.problem(line, f"expected a list of signals, got {type(value).__name__}", "also")
            return None
        also: list[str] = []
        ok = True
        for entry in value:
            signal = self._signal(line, "also", entry)
            if signal is None:
                ok = False
            elif signal != top and signal not in also:
                also.append(signal)
        return tuple(also) if ok else None

    def _weights(self, line: int, value: Any) -> dict[str, float] | None:
        if isinstance(value, str):
            self.problem(
                line, f"expected a JSON object of weights, got text {_short(value)}", "weights"
            )
            return None
        if not isinstance(value, dict):
            self.problem(line, f"expected an object, got {type(value).__name__}", "weights")
            return None
        problems_before = len(self.problems)
        unknown = [k for k in value if k not in self.signals]
        if unknown:
            names = ", ".join(_short(str(k)) for k in unknown)
            self.problem(line, f"unknown signal(s) {names} (known: {self.known})", "weights")
        missing = [s for s in self.signals if s not in value]
        if missing:
            self.problem(line, f"missing signal(s) {', '.join(missing)}", "weights")
        weights: dict[str, float] = {}
        for signal in self.signals:
            if signal not in value:
                continue
            number = _as_number(value[signal])
            if number is None:
                raw = value[signal]
                shown = (
                    f"= {raw} (not finite)"
                    if isinstance(raw, float)
                    else f"is {type(raw).__name__}, not a number"
                )
                self.problem(line, f"weight {signal!r} {shown}", "weights")
            elif not 0.0 <= number <= 1.0:
                self.problem(line, f"weight {signal!r} = {number} is outside 0..1", "weights")
            else:
                weights[signal] = number
        if len(self.problems) > problems_before:
            return None
        total = sum(weights.values())
        if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE + 1e-9:
            self.problem(
                line,
                f"weights sum to {total:.4f}, not 1.0 (tolerance {WEIGHT_SUM_TOLERANCE})",
                "weights",
            )
            return None
        return weights

    def _tags(self, line: int, value: Any) -> tuple[str, ...] | None:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            self.problem(line, "expected a list of strings", "tags")
            return None
        tags: list[str] = []
        ok = True
        for raw in value:
            tag = raw.strip().lower()
            if not _TAG.fullmatch(tag):
                self.problem(
                    line, f"tag {_short(raw)} is not one lowercase word (a-z, 0-9, _ or -)", "tags"
                )
                ok = False
            elif tag not in tags:
                tags.append(tag)
        return tuple(tags) if ok else None

    def add(self, line: int, record: Mapping[str, Any]) -> None:
        """Check one record; keep it as an item when it has no problems."""
        problems_before = len(self.problems)
        for name in record:
            if name not in FIELDS:
                self.problem(
                    line, f"unknown field {_short(str(name))} (known: {', '.join(FIELDS)})"
                )
        query = self._query(line, record.get("query"))
        top: str | None = None
        if record.get("top") is None:
            self.problem(line, "missing expected top signal", "top")
        else:
            top = self._signal(line, "top", record["top"])
        also = self._also(line, record.get("also"), top)
        raw_weights = record.get("weights")
        weights = None if raw_weights is None else self._weights(line, raw_weights)
        tags = self._tags(line, record.get("tags"))
        if weights is not None and top is not None and also is not None:
            accepted = {top, *also}
            if not top_signals(weights, self.signals) & accepted:
                own = top_signal(weights, self.signals)
                self.problem(
                    line,
                    f"the weights' top signal {own!r} is not the expected top or in 'also' "
                    f"({', '.join(sorted(accepted))})",
                    "weights",
                )
        if len(self.problems) > problems_before or query is None or top is None:
            return
        assert also is not None and tags is not None  # no problems were recorded
        item = GoldenItem(query=query, top=top, also=also, weights=weights, tags=tags, line=line)
        key = _normalised(query)
        first = self._seen.get(key)
        if first is None:
            self._seen[key] = item
            self.items.append(item)
            return
        if (first.top, set(first.also)) != (top, set(also)):
            self.problem(
                line,
                f"duplicate of line {first.line} with different labels (top {top!r} "
                f"also [{', '.join(also)}] here, top {first.top!r} also "
                f"[{', '.join(first.also)}] on line {first.line})",
                "query",
            )
        else:
            self.problem(line, f"duplicate of line {first.line}", "query")


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _parse_jsonl(text: str, checker: _Checker) -> None:
    decoder = json.JSONDecoder(parse_constant=_reject_constant)
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if not line.strip():
            continue
        try:
            record = decoder.decode(line)
        except json.JSONDecodeError as error:
            checker.problem(number, f"not valid JSON ({error.msg} at column {error.colno})")
            continue
        except (ValueError, RecursionError) as error:
            checker.problem(number, f"not valid JSON ({error})")
            continue
        if not isinstance(record, dict):
            kind = "null" if record is None else type(record).__name__
            checker.problem(number, f"not a JSON object (got {kind})")
            continue
        checker.add(number, record)


def _split_list(cell: str) -> list[str]:
    return [part.strip() for part in _LIST_SEPARATORS.split(cell) if part.strip()]


def _parse_csv(text: str, checker: _Checker) -> None:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)  # blank lines before the header
    except csv.Error as error:
        checker.problem(reader.line_num, f"not valid CSV ({error})")
        return
    if header is None:
        return
    header_line = reader.line_num
    columns = [cell.strip().lower() for cell in header]
    bad_header = False
    for name in columns:
        if name not in FIELDS:
            checker.problem(
                header_line, f"unknown column {_short(name)} (known: {', '.join(FIELDS)})"
            )
            bad_header = True
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        checker.problem(header_line, f"column(s) given twice: {', '.join(duplicated)}")
        bad_header = True
    missing = [c for c in ("query", "top") if c not in columns]
    if missing:
        checker.problem(header_line, f"header lacks the column(s) {', '.join(missing)}")
        bad_header = True
    if bad_header:
        return
    previous_end = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            checker.problem(previous_end + 1, f"not valid CSV ({error})")
            break
        start, previous_end = previous_end + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(columns) and any(cell.strip() for cell in row[len(columns) :]):
            checker.problem(start, f"{len(row)} cells but the header has {len(columns)} columns")
            continue
        cells = dict(zip(columns, row, strict=False))
        record: dict[str, Any] = {}
        for name, cell in cells.items():
            value = cell.strip()
            if not value and name != "query":
                continue
            if name in ("also", "tags"):
                record[name] = _split_list(value)
            elif name == "weights":
                try:
                    record[name] = json.loads(value, parse_constant=_reject_constant)
                except (ValueError, RecursionError):
                    record[name] = value  # reported as text, not an object
            else:
                record[name] = value
        checker.add(start, record)


def _decompress(data: bytes) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as handle:
            content = handle.read(MAX_GOLDEN_BYTES + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"is not a valid gzip file ({error})") from None
    if len(content) > MAX_GOLDEN_BYTES:
        raise ValueError(f"decompresses to more than the limit of {MAX_GOLDEN_BYTES:,} bytes")
    return content


def _format_of(source: str) -> tuple[str, bool] | None:
    name = source.lower()
    compressed = name.endswith(".gz")
    name = name.removesuffix(".gz")
    for kind in ("jsonl", "csv"):
        if name.endswith(f".{kind}"):
            return kind, compressed
    return None


def parse_golden(data: bytes, source: str, signals: Sequence[str]) -> GoldenSet:
    """Parse golden-set bytes (format from the suffix); GoldenSetError lists every problem."""
    if not signals:
        raise ValueError("signals must not be empty")
    kind = _format_of(source)
    if kind is None:
        raise GoldenSetError(source, ["unsupported file type; use .jsonl or .csv (optionally .gz)"])
    if len(data) > MAX_GOLDEN_BYTES:
        raise GoldenSetError(source, [f"is larger than the limit of {MAX_GOLDEN_BYTES:,} bytes"])
    fmt, compressed = kind
    content = data
    if compressed:
        try:
            content = _decompress(data)
        except ValueError as error:
            raise GoldenSetError(source, [str(error)]) from None
    content = content.removeprefix(b"\xef\xbb\xbf")  # Excel writes a byte order mark
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        line = content[: error.start].count(b"\n") + 1
        raise GoldenSetError(
            source, [f"is not UTF-8 (bad byte 0x{content[error.start]:02x} on line {line})"]
        ) from None
    checker = _Checker(signals)
    if fmt == "jsonl":
        _parse_jsonl(text, checker)
    else:
        _parse_csv(text, checker)
    if not checker.items and not checker.problems:
        checker.problems.append("holds no labelled queries")
    if checker.problems:
        raise GoldenSetError(source, checker.problems)
    version = hashlib.sha256(data).hexdigest()[:12]
    return GoldenSet(source=source, version=version, items=tuple(checker.items))


def load_golden(path: str | Path, signals: Sequence[str]) -> GoldenSet:
    """Read and parse a golden-set file; GoldenSetError (one line per problem) when it is bad."""
    file = Path(path)
    source = str(path)
    if file.is_dir():
        raise GoldenSetError(source, ["is a directory, not a golden-set file"])
    if not file.exists():
        raise GoldenSetError(source, ["file does not exist"])
    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_GOLDEN_BYTES + 1)
    except OSError as error:
        raise GoldenSetError(source, [f"cannot be read: {error.strerror or error}"]) from None
    return parse_golden(data, source, signals)


def builtin_golden_path(taxonomy_name: str) -> Path | None:
    """The shipped golden set of a built-in taxonomy (file stem or name), if there is one."""
    stem = taxonomy_name.replace("-", "_")
    if not re.fullmatch(r"[a-z0-9_]+", stem):
        return None
    candidate = resources.files("intent_router") / "data" / "golden" / f"{stem}.jsonl"
    return Path(str(candidate)) if candidate.is_file() else None


# -- scoring -------------------------------------------------------------------------------------
class GoldenSlice(BaseModel):
    """Accuracy on the items carrying one tag."""

    model_config = ConfigDict(frozen=True)

    n: int
    strict_top1: float
    strict_ci95: tuple[float, float]
    lenient_top1: float
    lenient_ci95: tuple[float, float]


class GoldenMiss(BaseModel):
    """A query whose predicted top signal is not the expected one."""

    model_config = ConfigDict(frozen=True)

    query: str
    expected: str
    also: tuple[str, ...]
    predicted: str


class GoldenEvaluation(BaseModel):
    """How one model did on a golden set."""

    model_config = ConfigDict(frozen=True)

    model: str
    role: str
    golden_version: str
    n: int
    parse_rate: float
    strict_top1: float
    strict_ci95: tuple[float, float]
    lenient_top1: float
    lenient_ci95: tuple[float, float]
    mae: float | None
    n_with_weights: int
    recall_per_signal: dict[str, float]
    slices: dict[str, GoldenSlice]
    misses: tuple[GoldenMiss, ...]


def _share(hits: int, total: int) -> float:
    return hits / total if total else 0.0


def score_golden(
    *,
    model: str,
    role: str,
    golden: GoldenSet,
    outputs: Sequence[str],
    signals: Sequence[str],
) -> GoldenEvaluation:
    """Score raw model outputs (one per golden item, in order) against the golden labels.

    Unparseable output counts as a miss. MAE is over items with reference weights whose output
    parsed (None when there are none); n_with_weights counts the items with reference weights.
    """
    items = golden.items
    if len(outputs) != len(items):
        raise ValueError(f"{len(outputs)} outputs for {len(items)} golden items")
    if not items:
        raise ValueError("cannot score an empty golden set")
    decisions = parse_outputs(outputs, signals)
    predicted = [top_signal(d.weights, signals) if d else UNPARSEABLE for d in decisions]
    strict = [p == item.top for p, item in zip(predicted, items, strict=True)]
    lenient = [p in item.accepted for p, item in zip(predicted, items, strict=True)]
    errors = [
        abs(d.weights[s] - item.weights[s])
        for d, item in zip(decisions, items, strict=True)
        if d is not None and item.weights is not None
        for s in signals
    ]
    recall = {
        s: _share(sum(ok for ok, item in zip(strict, items, strict=True) if item.top == s), n_s)
        for s in signals
        if (n_s := sum(item.top == s for item in items))
    }
    slices: dict[str, GoldenSlice] = {}
    for tag in sorted({t for item in items for t in item.tags}):
        picked = [i for i, item in enumerate(items) if tag in item.tags]
        hits, soft = sum(strict[i] for i in picked), sum(lenient[i] for i in picked)
        slices[tag] = GoldenSlice(
            n=len(picked),
            strict_top1=_share(hits, len(picked)),
            strict_ci95=wilson_interval(hits, len(picked)),
            lenient_top1=_share(soft, len(picked)),
            lenient_ci95=wilson_interval(soft, len(picked)),
        )
    misses = tuple(
        GoldenMiss(query=item.query, expected=item.top, also=item.also, predicted=p)
        for p, ok, item in zip(predicted, strict, items, strict=True)
        if not ok
    )[:MAX_MISSES]
    n = len(items)
    return GoldenEvaluation(
        model=model,
        role=role,
        golden_version=golden.version,
        n=n,
        parse_rate=sum(d is not None for d in decisions) / n,
        strict_top1=sum(strict) / n,
        strict_ci95=wilson_interval(sum(strict), n),
        lenient_top1=sum(lenient) / n,
        lenient_ci95=wilson_interval(sum(lenient), n),
        mae=sum(errors) / len(errors) if errors else None,
        n_with_weights=sum(item.weights is not None for item in items),
        recall_per_signal=recall,
        slices=slices,
        misses=misses,
    )
