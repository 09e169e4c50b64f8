"""Training records in Bedrock's `bedrock-conversation-2024` JSONL, and the rules they must meet.

Rules (docs.aws.amazon.com/bedrock/latest/userguide/distillation-data-prep-option-1.html and the
Nova guide): schemaVersion, text-only messages alternating user/assistant and starting with user,
100 to 15,000 records for Nova, at most 1 GB, no reserved keywords. They are checked here, before
anything is uploaded, so Bedrock's validation step never has to reject a paid job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from intent_router.errors import BackendLimitError, DatasetRuleError
from intent_router.pricing import RESERVED_KEYWORDS, BackendLimits

SCHEMA_VERSION = "bedrock-conversation-2024"


class LabelledQuery(BaseModel):
    """A synthetic query with the teacher's decision and where it came from."""

    model_config = ConfigDict(frozen=True)

    query: str
    cell: str
    difficulty: str
    dominant: str
    vocabulary: str  # "train" or "heldout": which half of the slot vocabulary built the query
    teacher_output: str  # the teacher's raw JSON text (what the assistant turn will contain)
    weights: dict[str, float]


def training_record(query: str, assistant_text: str | None, system_prompt: str) -> dict[str, Any]:
    """One `bedrock-conversation-2024` record: system prompt, user query, teacher answer (none:
    a prompt only, which a distillation job's teacher answers)."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": [{"text": query}]}]
    if assistant_text is not None:
        messages.append({"role": "assistant", "content": [{"text": assistant_text}]})
    return {
        "schemaVersion": SCHEMA_VERSION,
        "system": [{"text": system_prompt}],
        "messages": messages,
    }


def _texts(record: dict[str, Any]) -> Iterable[tuple[str, str]]:
    system = record.get("system")
    for part in system if isinstance(system, list) else []:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            yield "system", part["text"]
    messages = record.get("messages")
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield str(message.get("role")), part["text"]


def _describe(record: dict[str, Any]) -> str:
    for role, text in _texts(record):
        if role == "user":
            return repr(text[:60] + ("..." if len(text) > 60 else ""))
    return "(no user text)"


def check_record(record: Any, index: int) -> None:
    """Raise DatasetRuleError naming the rule and the record when one record breaks a rule."""

    def broken(rule: str, detail: str) -> DatasetRuleError:
        where = _describe(record) if isinstance(record, dict) else "(not an object)"
        return DatasetRuleError(f"dataset rule '{rule}' broken by record {index} {where}: {detail}")

    if not isinstance(record, dict):
        raise broken("record-is-object", f"expected a JSON object, got {type(record).__name__}")
    if record.get("schemaVersion") != SCHEMA_VERSION:
        raise broken(
            "schema-version",
            f"schemaVersion is {record.get('schemaVersion')!r}, expected {SCHEMA_VERSION!r}",
        )
    system = record.get("system", [])
    if not isinstance(system, list) or any(
        not isinstance(p, dict) or set(p) != {"text"} or not isinstance(p["text"], str)
        for p in system
    ):
        raise broken("system-text-only", "system must be a list of {'text': str} blocks")
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise broken("messages-present", "messages must be a non-empty list")
    for position, message in enumerate(messages):
        expected = "user" if position % 2 == 0 else "assistant"
        role = message.get("role") if isinstance(message, dict) else None
        if role != expected:
            raise broken(
                "roles-alternate",
                f"message {position} has role {role!r}; roles must alternate starting with user",
            )
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise broken("text-only-content", f"message {position} has no content list")
        for part in content:
            if not isinstance(part, dict) or set(part) != {"text"}:
                keys = sorted(part) if isinstance(part, dict) else type(part).__name__
                raise broken("text-only-content", f"message {position} has non-text content {keys}")
            if not isinstance(part["text"], str) or not part["text"].strip():
                raise broken("text-only-content", f"message {position} has empty text")
    for role, text in _texts(record):
        for keyword in RESERVED_KEYWORDS:
            if keyword in text:
                raise broken(
                    "reserved-keyword", f"{role} text contains reserved keyword {keyword!r}"
                )


def check_record_count(count: int, limits: BackendLimits) -> None:
    """Raise BackendLimitError when the backend cannot accept this many training records."""
    if not limits.min_records <= count <= limits.max_records:
        raise BackendLimitError(
            f"{count} training records is outside what backend '{limits.name}' accepts "
            f"({limits.min_records} to {limits.max_records}; {limits.source})"
        )


def render_jsonl(records: Sequence[dict[str, Any]], limits: BackendLimits) -> bytes:
    """Validate every record and the dataset as a whole, then render it as JSONL bytes."""
    check_record_count(len(records), limits)
    for index, record in enumerate(records):
        check_record(record, index)
    body = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records)
    data = body.encode("utf-8")
    if len(data) > limits.max_bytes:
        raise DatasetRuleError(
            f"dataset rule 'max-size' broken: {len(data):,} bytes exceeds {limits.max_bytes:,}"
        )
    return data


def parse_jsonl(data: bytes, source: str) -> list[dict[str, Any]]:
    """Parse JSONL bytes, naming the file and line of the first fault."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DatasetRuleError(
            f"{source} is not UTF-8 (bad byte at offset {error.start})"
        ) from None
    records = []
    # JSONL lines end at "\n" only: str.splitlines() would also split inside strings at
    # U+2028, U+2029 and U+0085, which json.dumps leaves unescaped.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise DatasetRuleError(f"{source} line {number} is not JSON: {error.msg}") from None
    return records


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
