"""Real search traffic: read queries (local files, S3, Bedrock invocation logs), clean and dedupe
them, hold the newest out, cache the teacher's labels and remember what each consumer has read.

Readers never fail on one bad line: a line that is not UTF-8, not a record or has no query is
counted in the ReadReport and skipped. They fail, with one line naming the source, when the
source is missing or unreadable, a gzip file is corrupt, or nothing usable comes out of it.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
import math
import random
import re
import time
import unicodedata
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from intent_router.backends.base import TeacherFingerprint
from intent_router.dedupe import NearIndex
from intent_router.errors import ConcurrentUpdateError, CorruptStateError, UserInputError
from intent_router.prompts import extract_quoted_query
from intent_router.registry import check_router_name
from intent_router.storage import ConditionalStore, ObjectStore
from intent_router.text import has_control_characters, normalise, strip_controls

logger = logging.getLogger(__name__)

SUFFIXES = (".jsonl", ".json", ".csv", ".txt", ".log")
"""Files a folder or prefix is read for (each also as .gz); other files are ignored."""
_SUFFIX_LIST = "/".join(SUFFIXES)
LOG_SUFFIXES = (".json", ".jsonl")
"""Objects read under an invocation-log prefix (each also as .gz)."""
TRAIN_CONSUMER = "train"  # the distill flow's traffic watermark
MONITOR_CONSUMER = "monitor"  # the drift monitor keeps its own watermark
"""The distill flow's watermark consumer (the drift monitor keeps its own)."""
MAX_ATTEMPTS = 25
"""Compare-and-swap attempts per label-cache shard before ConcurrentUpdateError."""
NUM_PERM = 64
MAX_LINE_BYTES = 1_000_000
"""A longer line (no query is that long) is counted as too long and skipped, never held whole."""
_CONSUMER = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_TEXT_OPERATIONS = frozenset(
    {"Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream"}
)


class TrafficSourceError(UserInputError):
    """A traffic source is missing, unreadable, or yields no usable query."""


# -- models ------------------------------------------------------------------------------------
class TrafficQuery(BaseModel):
    """One query as it came in."""

    model_config = ConfigDict(frozen=True)

    query: str
    timestamp: datetime | None = Field(default=None, description="UTC, when known.")
    source: str = Field(description="File path or s3:// URI of the object it came from.")
    line: int = Field(ge=1, description="1-based line (record) number within the source.")

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _as_utc(value)


class TrafficSource(BaseModel):
    """Where traffic comes from, parsed from the user's `traffic` text."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["none", "file", "s3", "invocation-logs"]
    location: str = Field(description="Local path, or s3://bucket/prefix.")
    model_id: str | None = Field(
        default=None, description="invocation-logs: keep records whose modelId ends with this."
    )
    request_metadata: dict[str, str] = Field(
        default_factory=dict,
        description="invocation-logs: keep records whose requestMetadata has these pairs.",
    )


class ReadReport(BaseModel):
    """What a reader saw and skipped."""

    model_config = ConfigDict(frozen=True)

    files: int = Field(default=0, description="Files or objects read.")
    lines: int = Field(default=0, description="Lines read (records, for invocation logs).")
    non_utf8: int = 0
    too_long: int = Field(default=0, description="Lines over MAX_LINE_BYTES, skipped unread.")
    unparseable: int = Field(default=0, description="Lines that are not a record with a query.")
    empty: int = Field(default=0, description="Blank lines and records with a blank query.")
    skipped_records: int = Field(
        default=0, description="Invocation-log records without user text or filtered out."
    )
    skip_reasons: dict[str, int] = Field(default_factory=dict)
    ignored_files: int = Field(default=0, description="Files or objects of another type.")
    older_objects: int = Field(default=0, description="Objects last modified before `since`.")

    def summary(self) -> str:
        """E.g. '12 lines: 2 non-UTF-8, 1 unparseable, 3 empty'."""
        parts = [
            f"{count} {label}"
            for count, label in (
                (self.non_utf8, "non-UTF-8"),
                (self.too_long, "too long"),
                (self.unparseable, "unparseable"),
                (self.empty, "empty"),
                (self.skipped_records, "skipped records"),
            )
            if count
        ]
        head = f"{self.files} file{'s' if self.files != 1 else ''}, {self.lines} lines"
        return f"{head}: {', '.join(parts)}" if parts else head


class RawTraffic(BaseModel):
    model_config = ConfigDict(frozen=True)

    queries: tuple[TrafficQuery, ...]
    report: ReadReport


@dataclass
class _Tally:
    files: int = 0
    lines: int = 0
    non_utf8: int = 0
    too_long: int = 0
    unparseable: int = 0
    empty: int = 0
    ignored_files: int = 0
    older_objects: int = 0
    skips: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skips[reason] = self.skips.get(reason, 0) + 1

    def report(self) -> ReadReport:
        return ReadReport(
            files=self.files,
            lines=self.lines,
            non_utf8=self.non_utf8,
            too_long=self.too_long,
            unparseable=self.unparseable,
            empty=self.empty,
            skipped_records=sum(self.skips.values()),
            skip_reasons=dict(sorted(self.skips.items())),
            ignored_files=self.ignored_files,
            older_objects=self.older_objects,
        )


# -- parsing the source text -------------------------------------------------------------------
def split_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, prefix) of s3://bucket/prefix; TrafficSourceError when there is no bucket."""
    rest = uri[len("s3://") :] if uri.lower().startswith("s3://") else ""
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise TrafficSourceError(f"traffic source {uri!r} has no bucket (use s3://bucket/prefix)")
    if not _BUCKET.fullmatch(bucket):
        raise TrafficSourceError(f"traffic source {uri!r}: {bucket!r} is not an S3 bucket name")
    return bucket, prefix


def parse_traffic_source(
    text: str, *, model_id: str | None = None, request_metadata: dict[str, str] | None = None
) -> TrafficSource:
    """'none', 's3://bucket/prefix', 'bedrock-logs:s3://bucket/prefix', or an existing path.

    The model/metadata filters apply to invocation logs only; given for another kind they are
    an error (they would silently filter nothing)."""
    text = text.strip()
    if not text:
        raise TrafficSourceError("traffic source is empty (use none, a path or an s3:// URI)")
    filters = bool(model_id) or bool(request_metadata)
    if text.lower() == "none":
        kind, location = "none", ""
    elif text.lower().startswith("bedrock-logs:"):
        uri = text[len("bedrock-logs:") :].strip()
        if not uri.lower().startswith("s3://"):
            raise TrafficSourceError(
                f"traffic source {text!r}: bedrock-logs: needs an s3://bucket/prefix location"
            )
        bucket, prefix = split_s3_uri(uri)
        return TrafficSource(
            kind="invocation-logs",
            location=f"s3://{bucket}/{prefix}",
            model_id=model_id or None,
            request_metadata=dict(request_metadata or {}),
        )
    elif text.lower().startswith("s3://"):
        bucket, prefix = split_s3_uri(text)
        kind, location = "s3", f"s3://{bucket}/{prefix}"
    else:
        path = Path(text).expanduser()
        if not path.exists():
            raise TrafficSourceError(f"traffic source {text!r} does not exist")
        kind, location = "file", str(path)
    if filters:
        raise TrafficSourceError(
            f"traffic source {text!r}: the model and request-metadata filters apply only to "
            "bedrock-logs:s3://... sources"
        )
    return TrafficSource(kind=kind, location=location)


# -- reading lines -----------------------------------------------------------------------------
def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


def parse_timestamp(value: object) -> datetime | None:
    """ISO 8601 text (naive means UTC) or epoch seconds (milliseconds above 1e11); None for
    a missing or blank value; ValueError otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        value = float(value)
    if isinstance(value, bool):
        raise ValueError("a boolean is not a timestamp")
    if isinstance(value, int | float):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError("timestamp is not finite")
        if abs(seconds) > 1e11:
            seconds /= 1000
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError) as error:
            raise ValueError(f"timestamp out of range: {error}") from None
    if isinstance(value, str):
        return _as_utc(datetime.fromisoformat(value.strip()))
    raise ValueError(f"a {type(value).__name__} is not a timestamp")


def _readable(name: str, suffixes: tuple[str, ...] = SUFFIXES) -> bool:
    return name.lower().removesuffix(".gz").endswith(suffixes)


def _bounded_lines(stream: IO[bytes] | gzip.GzipFile) -> Iterator[bytes | None]:
    """Lines without their line ending; None for a line over MAX_LINE_BYTES (read past in
    bounded pieces, so one huge line never sits in memory)."""
    while raw := stream.readline(MAX_LINE_BYTES + 1):
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = stream.readline(MAX_LINE_BYTES + 1)
            yield None
        else:
            yield raw.rstrip(b"\r\n")


def _raw_lines(stream: IO[bytes], name: str) -> Iterator[bytes | None]:
    """Lines without their line ending (None: too long); gzip is undone for names ending .gz."""
    if not name.lower().endswith(".gz"):
        yield from _bounded_lines(stream)
        return
    try:
        with gzip.GzipFile(fileobj=stream) as unzipped:
            yield from _bounded_lines(unzipped)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise TrafficSourceError(f"traffic file {name} is not valid gzip: {reason}") from None


def _decoded(lines: Iterable[bytes | None], tally: _Tally) -> Iterator[tuple[int, str]]:
    """(line number, text) of every UTF-8 line; the others are counted and skipped."""
    for number, raw in enumerate(lines, start=1):
        tally.lines += 1
        if raw is None:
            tally.too_long += 1
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            tally.non_utf8 += 1
            continue
        yield number, text.removeprefix("\ufeff") if number == 1 else text


def _query(
    query: str, timestamp: datetime | None, source: str, line: int, tally: _Tally
) -> TrafficQuery | None:
    if not query.strip():
        tally.empty += 1
        return None
    return TrafficQuery(query=query, timestamp=timestamp, source=source, line=line)


def _jsonl(lines: Iterator[tuple[int, str]], source: str, tally: _Tally) -> list[TrafficQuery]:
    out = []
    for number, text in lines:
        if not text.strip():
            tally.empty += 1
            continue
        try:
            record = json.loads(text)
            if not isinstance(record, dict) or not isinstance(record.get("query"), str):
                raise ValueError("not an object with a string query")
            timestamp = parse_timestamp(record.get("timestamp"))
        except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
            tally.unparseable += 1
            continue
        found = _query(record["query"], timestamp, source, number, tally)
        if found is not None:
            out.append(found)
    return out


def _csv(lines: Iterator[tuple[int, str]], source: str, tally: _Tally) -> list[TrafficQuery]:
    numbers: list[int] = []

    def feed() -> Iterator[str]:
        for number, text in lines:
            numbers.append(number)
            yield text

    reader = csv.reader(feed())
    try:
        header = [column.strip().lower() for column in next(reader)]
    except StopIteration:
        return []
    except csv.Error as error:
        raise TrafficSourceError(
            f"traffic file {source} has an unreadable CSV header: {error}"
        ) from None
    if "query" not in header:
        shown = ", ".join(header)[:120]
        raise TrafficSourceError(f"traffic file {source} has no 'query' column (header: {shown})")
    at_query = header.index("query")
    at_time = header.index("timestamp") if "timestamp" in header else None
    out = []
    while True:
        first = len(numbers)
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error:
            tally.unparseable += 1
            continue
        line = numbers[first] if first < len(numbers) else numbers[-1]
        if not row or not any(cell.strip() for cell in row):
            tally.empty += 1
            continue
        try:
            query = row[at_query]
            cell = row[at_time] if at_time is not None and at_time < len(row) else None
            timestamp = parse_timestamp(cell)  # a missing trailing cell: no timestamp
        except (IndexError, ValueError):
            tally.unparseable += 1
            continue
        found = _query(query, timestamp, source, line, tally)
        if found is not None:
            out.append(found)
    return out


def _text(lines: Iterator[tuple[int, str]], source: str, tally: _Tally) -> list[TrafficQuery]:
    out = []
    for number, text in lines:
        found = _query(text, None, source, number, tally)
        if found is not None:
            out.append(found)
    return out


def _parse(stream: IO[bytes], source: str, tally: _Tally) -> list[TrafficQuery]:
    """Queries of one file or object; its format from its name (without .gz)."""
    tally.files += 1
    lines = _decoded(_raw_lines(stream, source), tally)
    name = source.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".json")):
        return _jsonl(lines, source, tally)
    if name.endswith(".csv"):
        return _csv(lines, source, tally)
    return _text(lines, source, tally)


def _result(queries: list[TrafficQuery], tally: _Tally, label: str) -> RawTraffic:
    report = tally.report()
    if not queries:
        raise TrafficSourceError(
            f"traffic source {label} yields no usable query ({report.summary()})"
        )
    logger.info("read %d queries from %s (%s)", len(queries), label, report.summary())
    return RawTraffic(queries=tuple(queries), report=report)


def read_local_traffic(path: str | Path) -> RawTraffic:
    """A file (any name: .jsonl/.json/.csv parsed as such, else one query per line) or a
    folder, recursively and sorted, for files ending .jsonl/.json/.csv/.txt/.log (or .gz)."""
    root = Path(path).expanduser()
    tally = _Tally()
    if root.is_dir():
        found = sorted(
            (p for p in root.rglob("*") if p.is_file()),
            key=lambda p: p.relative_to(root).as_posix(),
        )
        found = [p for p in found if not any(s.startswith(".") for s in p.relative_to(root).parts)]
        files = [p for p in found if _readable(p.name)]
        tally.ignored_files = len(found) - len(files)
        if not files:
            raise TrafficSourceError(
                f"traffic source {root} yields no usable query (no {_SUFFIX_LIST} file, "
                f"optionally .gz, among {len(found)} files)"
            )
    elif root.is_file():
        files = [root]
    elif not root.exists():
        raise TrafficSourceError(f"traffic source {str(path)!r} does not exist")
    else:
        raise TrafficSourceError(f"traffic source {root} is not a file or a folder")
    queries: list[TrafficQuery] = []
    for file in files:
        try:
            with open(file, "rb") as handle:
                queries += _parse(handle, str(file), tally)
        except OSError as error:
            raise TrafficSourceError(
                f"cannot read traffic file {file}: {error.strerror or error}"
            ) from None
    return _result(queries, tally, str(root))


# -- S3 ----------------------------------------------------------------------------------------
def _aws_reason(error: Exception) -> str:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = details.get("Code") or "error"
        message = details.get("Message") or ""
        reason = f"{code} ({message})" if message else str(code)
    else:
        reason = str(error) or type(error).__name__
    return " ".join(reason.split())[:300]


def _objects(
    client: Any, bucket: str, prefix: str, since: datetime | None, suffixes: tuple[str, ...]
) -> tuple[list[str], _Tally]:
    """Keys to read, sorted, and a tally counting the ignored and older objects."""
    tally = _Tally()
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        listed = [item for page in pages for item in page.get("Contents", [])]
    except (ClientError, BotoCoreError) as error:
        raise TrafficSourceError(
            f"cannot read traffic s3://{bucket}/{prefix}: {_aws_reason(error)}"
        ) from None
    cutoff = _as_utc(since) if since is not None else None
    keys = []
    for item in sorted(listed, key=lambda i: str(i["Key"])):
        key = str(item["Key"])
        if key.endswith("/"):
            continue
        if not _readable(key, suffixes):
            tally.ignored_files += 1
        elif cutoff is not None and _as_utc(item["LastModified"]) < cutoff:
            tally.older_objects += 1
        else:
            keys.append(key)
    return keys, tally


def _get(client: Any, bucket: str, key: str) -> bytes:
    try:
        data: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as error:
        raise TrafficSourceError(
            f"cannot read traffic s3://{bucket}/{key}: {_aws_reason(error)}"
        ) from None
    return data


def read_s3_traffic(
    client: Any, bucket: str, prefix: str, *, since: datetime | None = None
) -> RawTraffic:
    """Objects under the prefix (boto3 S3 client), sorted by key, in the local file formats;
    objects last modified before `since` are skipped."""
    keys, tally = _objects(client, bucket, prefix, since, SUFFIXES)
    queries: list[TrafficQuery] = []
    for key in keys:
        data = _get(client, bucket, key)
        queries += _parse(io.BytesIO(data), f"s3://{bucket}/{key}", tally)
    return _result(queries, tally, f"s3://{bucket}/{prefix}")


# -- Bedrock model invocation logs -------------------------------------------------------------
def _last_user_text(body: object) -> str | None:
    """Text parts of the last user message of a Converse request or a messages-API body."""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return None
    users = [m for m in body["messages"] if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        return None
    content = users[-1].get("content")
    if isinstance(content, str):  # Anthropic's shorthand for one text part
        parts = [content]
    elif isinstance(content, list):
        parts = [
            part["text"]
            for part in content
            if isinstance(part, dict)
            and isinstance(part.get("text"), str)
            and part.get("type", "text") == "text"
        ]
    else:
        return None
    text = "\n".join(parts)
    return text if text.strip() else None


def _log_query(
    record: dict[str, Any], model_id: str | None, metadata: Mapping[str, str]
) -> tuple[str | None, str]:
    """(the user's query, "") or (None, why the record is skipped)."""
    if record.get("schemaType") != "ModelInvocationLog":
        return None, "not_invocation_log"
    if record.get("operation") not in _TEXT_OPERATIONS:
        return None, "operation"
    actual = record.get("modelId")
    if model_id and not (isinstance(actual, str) and actual.endswith(model_id)):
        return None, "model"
    if metadata:
        given = record.get("requestMetadata")
        if not isinstance(given, dict) or any(given.get(k) != v for k, v in metadata.items()):
            return None, "request_metadata"
    given_input = record.get("input")
    body = given_input.get("inputBodyJson") if isinstance(given_input, dict) else None
    text = _last_user_text(body)
    if text is None:
        return None, "no_user_text"
    quoted = extract_quoted_query(text)
    return (text if quoted is None else quoted), ""


def read_invocation_logs(
    client: Any,
    bucket: str,
    prefix: str,
    *,
    model_id: str | None = None,
    request_metadata: dict[str, str] | None = None,
    since: datetime | None = None,
) -> RawTraffic:
    """User queries from Bedrock model-invocation logs delivered to S3.

    Bedrock writes objects (usually .json.gz) under
    `AWSLogs/<account>/BedrockModelInvocationLogs/<region>/YYYY/MM/DD/HH/`, one JSON record per
    line (https://docs.aws.amazon.com/bedrock/latest/userguide/model-invocation-logging.html):
    `{"schemaType": "ModelInvocationLog", "schemaVersion": "1.0", "timestamp":
    "2025-03-11T00:38:02Z", "accountId", "region", "requestId", "operation": "Converse",
    "modelId", "input": {"inputContentType": "application/json", "inputBodyJson": {"messages":
    [{"role": "user", "content": [{"text": "..."}]}], ...}, "inputTokenCount": 4}, "output":
    {...}, "requestMetadata": {"k": "v"}}` (requestMetadata only when the request had it).

    The query is the text of the last user message (its text parts joined) for Converse,
    ConverseStream and InvokeModel(-WithResponseStream) with a messages body (Nova:
    `content` parts `{"text"}`; Anthropic: a string or `{"type": "text"}` parts); our own
    teacher wrapper (`<query>"..."</query>`) is undone. Skipped and counted by reason: other
    operations, another modelId (kept: equal to or ending with `model_id`, so ARNs match),
    requestMetadata without every pair of `request_metadata`, no user text (an image-only
    message, a body too large to be inlined)."""
    keys, tally = _objects(client, bucket, prefix, since, LOG_SUFFIXES)
    metadata = dict(request_metadata or {})
    queries: list[TrafficQuery] = []
    for key in keys:
        source = f"s3://{bucket}/{key}"
        tally.files += 1
        lines = _raw_lines(io.BytesIO(_get(client, bucket, key)), source)
        for number, text in _decoded(lines, tally):
            if not text.strip():
                tally.empty += 1
                continue
            try:
                record = json.loads(text)
            except (ValueError, RecursionError):
                record = None
            if not isinstance(record, dict):
                tally.unparseable += 1
                continue
            query, reason = _log_query(record, model_id, metadata)
            if query is None:
                tally.skip(reason)
                continue
            try:
                timestamp = parse_timestamp(record.get("timestamp"))
            except ValueError:
                timestamp = None
            found = _query(query, timestamp, source, number, tally)
            if found is not None:
                queries.append(found)
    return _result(queries, tally, f"bedrock-logs:s3://{bucket}/{prefix}")


def read_traffic(
    source: TrafficSource, *, s3_client: Any | None = None, since: datetime | None = None
) -> RawTraffic:
    """Read any kind of source; 'none' gives no query. S3 kinds need `s3_client`."""
    if source.kind == "none":
        return RawTraffic(queries=(), report=ReadReport())
    if source.kind == "file":
        return read_local_traffic(source.location)
    if s3_client is None:
        raise ValueError(f"reading {source.location} needs an S3 client")
    bucket, prefix = split_s3_uri(source.location)
    if source.kind == "s3":
        return read_s3_traffic(s3_client, bucket, prefix, since=since)
    return read_invocation_logs(
        s3_client,
        bucket,
        prefix,
        model_id=source.model_id,
        request_metadata=source.request_metadata,
        since=since,
    )


# -- cleaning ----------------------------------------------------------------------------------
_ZERO_WIDTH = re.compile(r"[\u200b\u2060\ufeff]")
_APOSTROPHES = re.compile(r"['`‘’]")
_PUNCTUATION = re.compile(r"[^\w\s]|_")
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{2,5}){2,5}"  # +44 20 7946 0958, +14155550123
    r"|(?:1[ .-])?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}"  # (415) 555-0123, 1-800-555-0199
    r"|0\d{2,4}[ .-]\d{3,4}[ .-]\d{3,4}"  # 020 7946 0958
    r"|[2-9]\d{2}[.-]\d{4}"  # 555-0123
    r")(?!\w)"
)
COUNT_KEYS = (
    "read",
    "control_chars",
    "emails_masked",
    "phones_masked",
    "empty",
    "too_long",
    "excluded",
    "exact_duplicates",
    "near_duplicates",
    "kept",
)
DROP_REASONS = ("empty", "too_long", "excluded", "exact_duplicates", "near_duplicates")
"""`read` equals `kept` plus these; the other counts are changes to kept text."""


class CleanedTraffic(BaseModel):
    model_config = ConfigDict(frozen=True)

    queries: tuple[TrafficQuery, ...]
    counts: dict[str, int]


def normalise_query(text: str) -> str:
    """The exact-duplicate and label-cache key: NFKC, casefold, no punctuation, single spaces."""
    text = unicodedata.normalize("NFKC", strip_controls(text)).casefold()
    text = _PUNCTUATION.sub(" ", _APOSTROPHES.sub("", _ZERO_WIDTH.sub("", text)))
    return " ".join(text.split())


def _tidy(text: str) -> str:
    """NFKC, control characters out, whitespace collapsed."""
    text = _ZERO_WIDTH.sub("", strip_controls(unicodedata.normalize("NFKC", text)))
    return " ".join(text.split())


def _mask_phone(match: re.Match[str]) -> str:
    return "[phone]" if sum(c.isdigit() for c in match.group()) >= 7 else match.group()


def mask_personal_data(text: str) -> tuple[str, int, int]:
    """(text with e-mails as [email] and phone numbers as [phone], e-mails, phones masked)."""
    text, emails = _EMAIL.subn("[email]", text)
    masked = _PHONE.sub(_mask_phone, text)
    return masked, emails, masked.count("[phone]") - text.count("[phone]")


@dataclass
class _Group:
    first: TrafficQuery
    text: str
    latest: datetime | None

    def absorb(self, timestamp: datetime | None) -> None:
        if timestamp is not None and (self.latest is None or timestamp > self.latest):
            self.latest = timestamp


def clean_traffic(
    raw: Sequence[TrafficQuery],
    *,
    max_chars: int = 300,
    mask_pii: bool = True,
    near_threshold: float = 0.85,
    exclude: Sequence[str] = (),
) -> CleanedTraffic:
    """Normalise, drop empty and over-long queries, mask e-mails and phone numbers, drop
    queries that are exact or near duplicates of `exclude` (synthetic, holdout, golden sets),
    then exact and near duplicates (char 4-gram Jaccard >= near_threshold, as in dedupe).

    A survivor keeps its first occurrence's text and position and the latest timestamp of its
    duplicates. `counts`: read == kept + sum of DROP_REASONS; control_chars, emails_masked and
    phones_masked count queries with controls and the masked occurrences."""
    if not 0 < near_threshold <= 1:
        raise UserInputError(f"near-duplicate threshold must be in (0, 1], got {near_threshold}")
    counts = dict.fromkeys(COUNT_KEYS, 0)
    counts["read"] = len(raw)
    # 1. text of every query, or its drop reason
    prepared: list[tuple[TrafficQuery, str, str, str]] = []  # query, text, key, unmasked key
    for item in raw:
        if has_control_characters(item.query):
            counts["control_chars"] += 1
        text = _tidy(item.query)
        if not any(ch.isalnum() for ch in text):
            counts["empty"] += 1
            continue
        if len(text) > max_chars:
            counts["too_long"] += 1
            continue
        unmasked_key = normalise_query(text)
        if mask_pii:
            text, emails, phones = mask_personal_data(text)
            counts["emails_masked"] += emails
            counts["phones_masked"] += phones
        prepared.append((item, text, normalise_query(text), unmasked_key))
    # 2. one sketch per distinct key; which keys are (near) copies of an excluded query
    firsts: dict[str, str] = {}
    for _, text, key, _ in prepared:
        firsts.setdefault(key, text)
    index = NearIndex(near_threshold, NUM_PERM)
    texts = [normalise(t) for t in firsts.values()]
    sketches = dict(zip(firsts, index.sketches(texts), strict=True))
    excluded_keys = {normalise_query(_tidy(q)) for q in exclude}
    excluded_keys.discard("")
    if exclude:
        guard = NearIndex(near_threshold, NUM_PERM)
        for sketch in guard.sketches([normalise(_tidy(q)) for q in exclude]):
            guard.add(*sketch)
        excluded_keys |= {key for key, sketch in sketches.items() if guard.has_near(*sketch)}
    # 3. exclusions and exact duplicates, in order
    groups: dict[str, _Group] = {}
    for item, text, key, unmasked_key in prepared:
        if key in excluded_keys or unmasked_key in excluded_keys:
            counts["excluded"] += 1
        elif key in groups:
            counts["exact_duplicates"] += 1
            groups[key].absorb(item.timestamp)
        else:
            groups[key] = _Group(first=item, text=text, latest=item.timestamp)
    # 4. near duplicates among the distinct queries, in order
    kept: list[_Group] = []
    owner: list[_Group] = []  # index position -> the kept group it stands for
    for key, group in groups.items():
        mh, sh = sketches[key]
        near = index.find_near(mh, sh)
        if near is not None:
            counts["near_duplicates"] += 1
            owner[near].absorb(group.latest)
            continue
        index.add(mh, sh)
        owner.append(group)
        kept.append(group)
    counts["kept"] = len(kept)
    queries = tuple(
        g.first.model_copy(update={"query": g.text, "timestamp": g.latest}) for g in kept
    )
    logger.info("traffic cleaning: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    return CleanedTraffic(queries=queries, counts=counts)


# -- slices, watermarks, samples ---------------------------------------------------------------
def _time_order(queries: Sequence[TrafficQuery]) -> list[int]:
    """Positions oldest first: no timestamp first, then by time; ties by source order."""
    minimum = datetime.min.replace(tzinfo=UTC)
    return sorted(
        range(len(queries)),
        key=lambda i: (queries[i].timestamp is not None, queries[i].timestamp or minimum, i),
    )


def newest_slice(
    queries: Sequence[TrafficQuery], share: float
) -> tuple[list[TrafficQuery], list[TrafficQuery]]:
    """(older, newest): the newest `share` held out, at least one when share > 0 and there are
    two or more queries, never all. Both keep the input order."""
    if not 0 <= share < 1:
        raise UserInputError(f"newest traffic share must be at least 0 and below 1, got {share}")
    count = len(queries)
    held = 0 if share == 0 or count < 2 else min(count - 1, max(1, round(share * count)))
    newest = set(_time_order(queries)[count - held :]) if held else set()
    older = [q for i, q in enumerate(queries) if i not in newest]
    return older, [q for i, q in enumerate(queries) if i in newest]


class Watermark(BaseModel):
    """How far a consumer (e.g. 'labelling') has read a router's traffic."""

    model_config = ConfigDict(frozen=True)

    consumer: str
    last_timestamp: datetime | None = None
    seen: int = Field(default=0, ge=0, description="Queries consumed so far, in total.")
    updated_at: str

    @field_validator("last_timestamp")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _as_utc(value)


def watermark_path(router: str, consumer: str) -> str:
    """routers/<router>/traffic-watermark-<consumer>.json; UserInputError for bad names."""
    check_router_name(router)
    if not isinstance(consumer, str) or not _CONSUMER.fullmatch(consumer):
        raise UserInputError(
            f"invalid traffic consumer name {str(consumer)[:60]!r}: use 1 to 48 lowercase "
            "letters, digits and '-'"
        )
    return f"routers/{router}/traffic-watermark-{consumer}.json"


def read_watermark(store: ObjectStore, router: str, consumer: str) -> Watermark | None:
    """The stored watermark, None if there is none; CorruptStateError naming the path."""
    path = watermark_path(router, consumer)
    data = store.read(path)
    if data is None:
        return None
    try:
        watermark = Watermark.model_validate_json(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(map(str, first["loc"]))
        problem = " ".join(f"{where}: {first['msg']}".strip(": ").split())[:200]
        raise CorruptStateError(f"{path} is corrupt ({problem}); fix or remove it") from None
    if watermark.consumer != consumer:
        raise CorruptStateError(
            f"{path} is corrupt (it is the watermark of {watermark.consumer!r}); fix or remove it"
        )
    return watermark


def write_watermark(store: ObjectStore, router: str, watermark: Watermark) -> None:
    store.write(
        watermark_path(router, watermark.consumer), watermark.model_dump_json(indent=2).encode()
    )


def advance_watermark(
    consumer: str, previous: Watermark | None, consumed: Sequence[TrafficQuery]
) -> Watermark:
    """The watermark after `consumed`: the latest timestamp seen, the running count."""
    stamps = [q.timestamp for q in consumed if q.timestamp is not None]
    if previous is not None and previous.last_timestamp is not None:
        stamps.append(previous.last_timestamp)
    return Watermark(
        consumer=consumer,
        last_timestamp=max(stamps) if stamps else None,
        seen=(previous.seen if previous else 0) + len(consumed),
        updated_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def new_since(queries: Sequence[TrafficQuery], watermark: Watermark | None) -> list[TrafficQuery]:
    """Queries after the watermark; without a watermark time, all; an undated query is new
    only then."""
    if watermark is None or watermark.last_timestamp is None:
        return list(queries)
    last = watermark.last_timestamp
    return [q for q in queries if q.timestamp is not None and q.timestamp > last]


def sample_traffic(queries: Sequence[TrafficQuery], size: int, seed: int) -> list[TrafficQuery]:
    """`size` queries drawn without replacement (all when fewer), in input order; the same
    seed and input give the same sample."""
    if size < 0:
        raise UserInputError(f"traffic sample size must be at least 0, got {size}")
    if size >= len(queries):
        return list(queries)
    chosen = sorted(random.Random(seed).sample(range(len(queries)), size))
    return [queries[i] for i in chosen]


# -- label cache -------------------------------------------------------------------------------
class LabelCache:
    """Teacher labels of traffic queries, keyed by normalise_query(query) and the teacher
    fingerprint, in storage: `traffic-labels/<fingerprint hash>/<shard>.jsonl`, one JSON line
    `{"key", "query", "label", "at"}` per query. A corrupt line is logged and skipped (and
    dropped at the shard's next write)."""

    def __init__(self, store: ObjectStore, teacher: TeacherFingerprint, shards: int = 64) -> None:
        if not 1 <= shards <= 256:
            raise ValueError(f"shards must be 1 to 256, got {shards}")
        self.store = store
        self.shards = shards
        digest = hashlib.sha256(teacher.model_dump_json().encode()).hexdigest()[:16]
        self.prefix = f"traffic-labels/{digest}"

    def shard_path(self, key: str) -> str:
        index = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % self.shards
        return f"{self.prefix}/{index:02x}.jsonl"

    def _entries(self, path: str, data: bytes | None) -> dict[str, dict[str, str]]:
        entries: dict[str, dict[str, str]] = {}
        for number, raw in enumerate((data or b"").split(b"\n"), start=1):
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw.decode("utf-8"))
                if not isinstance(entry, dict) or not all(
                    isinstance(entry.get(k), str) for k in ("key", "query", "label")
                ):
                    raise ValueError("not a label entry")
            except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
                logger.warning("%s line %d is corrupt; skipped", path, number)
                continue
            entries[entry["key"]] = entry
        return entries

    def get_many(self, queries: Sequence[str]) -> dict[str, str]:
        """query -> the teacher's raw JSON text, for the cached ones."""
        by_path: dict[str, list[str]] = {}
        for query in queries:
            by_path.setdefault(self.shard_path(normalise_query(query)), []).append(query)
        found: dict[str, str] = {}
        for path, wanted in by_path.items():
            entries = self._entries(path, self.store.read(path))
            for query in wanted:
                entry = entries.get(normalise_query(query))
                if entry is not None:
                    found[query] = entry["label"]
        return found

    def put_many(self, labels: Mapping[str, str]) -> None:
        """Merge query -> label into the touched shards; compare-and-swap with retries on a
        ConditionalStore, so concurrent writers never lose each other's labels."""
        at = datetime.now(UTC).isoformat(timespec="seconds")
        by_path: dict[str, dict[str, dict[str, str]]] = {}
        for query, label in labels.items():
            key = normalise_query(query)
            entry = {"key": key, "query": query, "label": label, "at": at}
            by_path.setdefault(self.shard_path(key), {})[key] = entry
        for path in sorted(by_path):
            self._merge(path, by_path[path])

    def _merged(self, path: str, data: bytes | None, new: dict[str, dict[str, str]]) -> bytes:
        entries = self._entries(path, data)
        for key, entry in new.items():
            if entries.get(key, {}).get("label") != entry["label"]:
                entries[key] = entry
        lines = [json.dumps(entries[k]) + "\n" for k in sorted(entries)]  # ASCII: always encodable
        return "".join(lines).encode()

    def _merge(self, path: str, new: dict[str, dict[str, str]]) -> None:
        store = self.store
        if not isinstance(store, ConditionalStore) or not store.supports_conditional_writes():
            data = store.read(path)
            merged = self._merged(path, data, new)
            if merged != data:
                store.write(path, merged)
            return
        for attempt in range(MAX_ATTEMPTS):
            current = store.read_versioned(path)
            data = current.data if current else None
            merged = self._merged(path, data, new)
            if merged == data:
                return
            if store.write_if(path, merged, current.version if current else None):
                return
            logger.debug("%s changed meanwhile; retrying", path)
            time.sleep(random.uniform(0, min(0.05, 0.002 * (attempt + 1))))  # jittered backoff
        raise ConcurrentUpdateError(f"{path} kept changing; gave up after {MAX_ATTEMPTS} attempts")
