"""Unit tests for intent_router.dataset: Bedrock conversation records, their rules, JSONL I/O."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from intent_router.dataset import (
    SCHEMA_VERSION,
    check_record,
    check_record_count,
    content_hash,
    parse_jsonl,
    render_jsonl,
    training_record,
)
from intent_router.errors import BackendLimitError, DatasetRuleError, UserInputError
from intent_router.pricing import BEDROCK_NOVA_LIMITS, RESERVED_KEYWORDS, BackendLimits

SYSTEM = "Return JSON with visual, audio, transcription, metadata weights (sum=1.0) and reasoning."
ANSWER = '{"visual": 1.0, "audio": 0.0, "transcription": 0.0, "metadata": 0.0, "reasoning": "r"}'


def record(query: str = "dog barking in the park", answer: str = ANSWER) -> dict[str, Any]:
    return training_record(query, answer, SYSTEM)


def records(count: int) -> list[dict[str, Any]]:
    return [record(f"query number {i}") for i in range(count)]


def rule_error(bad: Any, index: int = 7) -> str:
    with pytest.raises(DatasetRuleError) as caught:
        check_record(bad, index)
    return str(caught.value)


# -- training_record -----------------------------------------------------------------------------
def test_training_record_has_bedrock_conversation_shape() -> None:
    rec = record("cat video", "answer")

    assert rec["schemaVersion"] == SCHEMA_VERSION == "bedrock-conversation-2024"
    assert rec["system"] == [{"text": SYSTEM}]
    assert [m["role"] for m in rec["messages"]] == ["user", "assistant"]
    assert rec["messages"][0]["content"] == [{"text": "cat video"}]
    assert rec["messages"][1]["content"] == [{"text": "answer"}]


def test_training_record_passes_check_record() -> None:
    check_record(record(), 0)  # does not raise


def test_record_without_system_passes() -> None:
    rec = record()
    del rec["system"]

    check_record(rec, 0)


def test_multi_turn_record_alternating_roles_passes() -> None:
    rec = record()
    rec["messages"] += [
        {"role": "user", "content": [{"text": "and another"}]},
        {"role": "assistant", "content": [{"text": ANSWER}]},
    ]

    check_record(rec, 0)


# -- each rule -----------------------------------------------------------------------------------
def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(rec: dict[str, Any]) -> None:
        target: Any = rec
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


BROKEN_RECORDS: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    ("schema-version", _set(["schemaVersion"], "bedrock-conversation-2023")),
    ("schema-version", lambda r: r.pop("schemaVersion")),
    ("system-text-only", _set(["system"], [{"text": SYSTEM, "cachePoint": {}}])),
    ("system-text-only", _set(["system"], [{"image": "x"}])),
    ("system-text-only", _set(["system"], "plain string")),
    ("system-text-only", _set(["system"], [{"text": 3}])),
    ("messages-present", _set(["messages"], [])),
    ("messages-present", lambda r: r.pop("messages")),
    ("messages-present", _set(["messages"], {"role": "user"})),
    ("roles-alternate", _set(["messages", 0, "role"], "assistant")),
    ("roles-alternate", _set(["messages", 1, "role"], "user")),
    ("roles-alternate", _set(["messages", 1, "role"], "bot")),
    ("roles-alternate", _set(["messages", 0], "just text")),
    ("text-only-content", _set(["messages", 0, "content"], [])),
    ("text-only-content", _set(["messages", 0, "content"], "dog barking")),
    ("text-only-content", _set(["messages", 0, "content"], [{"image": {"format": "png"}}])),
    ("text-only-content", _set(["messages", 0, "content"], [{"text": "q", "video": {}}])),
    ("text-only-content", _set(["messages", 1, "content"], [{"text": "   "}])),
    ("text-only-content", _set(["messages", 1, "content"], [{"text": None}])),
    ("text-only-content", _set(["messages", 1, "content"], ["bare string"])),
]


@pytest.mark.parametrize(
    ("rule", "mutate"),
    BROKEN_RECORDS,
    ids=[f"{rule}-{i}" for i, (rule, _) in enumerate(BROKEN_RECORDS)],
)
def test_each_broken_rule_is_named_with_the_record_index(
    rule: str, mutate: Callable[[dict[str, Any]], None]
) -> None:
    rec = record()
    mutate(rec)

    message = rule_error(rec, index=42)

    assert f"dataset rule '{rule}'" in message
    assert "record 42" in message


@pytest.mark.parametrize("bad", [[record()], "a string", 3, None])
def test_non_object_record_breaks_record_is_object(bad: Any) -> None:
    message = rule_error(bad, index=3)

    assert "dataset rule 'record-is-object'" in message
    assert "record 3" in message
    assert "(not an object)" in message


def test_error_quotes_the_user_text_of_the_record() -> None:
    rec = record("goalkeeper diving save")
    rec["schemaVersion"] = "v0"

    assert "'goalkeeper diving save'" in rule_error(rec)


def test_dataset_rule_error_is_a_user_input_error() -> None:
    assert issubclass(DatasetRuleError, UserInputError)
    assert issubclass(BackendLimitError, UserInputError)


@pytest.mark.parametrize(
    "mutate",
    [
        _set(["messages"], 5),
        _set(["system"], 5),
        _set(["messages", 0, "content"], 5),
    ],
    ids=["messages-number", "system-number", "content-number"],
)
def test_non_iterable_fields_raise_dataset_rule_error(
    mutate: Callable[[dict[str, Any]], None],
) -> None:
    rec = record()
    mutate(rec)

    with pytest.raises(DatasetRuleError):
        check_record(rec, 0)


# -- reserved keywords ---------------------------------------------------------------------------
@pytest.mark.parametrize("keyword", RESERVED_KEYWORDS)
def test_reserved_keyword_in_user_text_is_rejected(keyword: str) -> None:
    message = rule_error(record(f"clip where someone types {keyword} on screen"), index=9)

    assert "dataset rule 'reserved-keyword'" in message
    assert "record 9" in message
    assert "user text" in message
    assert repr(keyword) in message


@pytest.mark.parametrize("keyword", ["Bot:", "[EOS]"])
def test_reserved_keyword_in_assistant_text_is_rejected(keyword: str) -> None:
    message = rule_error(record(answer=ANSWER + keyword))

    assert "reserved-keyword" in message
    assert "assistant text" in message


@pytest.mark.parametrize("keyword", ["System:", "<video>"])
def test_reserved_keyword_in_system_text_is_rejected(keyword: str) -> None:
    rec = training_record("dog barking", ANSWER, f"{keyword} you route queries")

    message = rule_error(rec)

    assert "reserved-keyword" in message
    assert "system text" in message


def test_lowercase_lookalikes_of_reserved_keywords_are_allowed() -> None:
    check_record(record("user: bot: the system: <Video> eos"), 0)


# -- counts and render_jsonl ---------------------------------------------------------------------
def test_nova_limits_are_100_to_15000() -> None:
    assert BEDROCK_NOVA_LIMITS.min_records == 100
    assert BEDROCK_NOVA_LIMITS.max_records == 15_000


@pytest.mark.parametrize("count", [0, 1, 99, 15_001])
def test_record_count_outside_limits_raises_backend_limit_error(count: int) -> None:
    with pytest.raises(BackendLimitError) as caught:
        check_record_count(count, BEDROCK_NOVA_LIMITS)

    message = str(caught.value)
    assert f"{count} training records" in message
    assert "bedrock-nova" in message
    assert "100 to 15000" in message


@pytest.mark.parametrize("count", [100, 15_000])
def test_record_count_at_the_limits_is_accepted(count: int) -> None:
    check_record_count(count, BEDROCK_NOVA_LIMITS)


def test_render_jsonl_with_too_few_records_raises() -> None:
    with pytest.raises(BackendLimitError, match="99 training records"):
        render_jsonl(records(99), BEDROCK_NOVA_LIMITS)


def test_render_jsonl_with_too_many_records_raises() -> None:
    many = [record()] * 15_001

    with pytest.raises(BackendLimitError, match="15001 training records"):
        render_jsonl(many, BEDROCK_NOVA_LIMITS)


def test_valid_100_record_dataset_round_trips_through_parse_jsonl() -> None:
    original = records(100)

    data = render_jsonl(original, BEDROCK_NOVA_LIMITS)

    assert isinstance(data, bytes)
    assert data.endswith(b"\n")
    lines = data.decode("utf-8").split("\n")[:-1]
    assert len(lines) == 100
    assert all(json.loads(line) == rec for line, rec in zip(lines, original, strict=True))
    assert parse_jsonl(data, "train.jsonl") == original


def test_render_jsonl_keeps_non_ascii_text_readable() -> None:
    original = [*records(99), record("café in Zürich — “quoted”")]

    data = render_jsonl(original, BEDROCK_NOVA_LIMITS)

    assert "café in Zürich".encode() in data
    assert parse_jsonl(data, "x")[-1] == original[-1]


def test_render_jsonl_names_the_first_broken_record() -> None:
    dataset = records(100)
    dataset[57] = copy.deepcopy(dataset[57])
    dataset[57]["messages"][0]["content"][0]["text"] = "User: hi"

    with pytest.raises(DatasetRuleError, match="record 57"):
        render_jsonl(dataset, BEDROCK_NOVA_LIMITS)


def test_render_jsonl_enforces_the_byte_limit() -> None:
    tiny = BackendLimits(name="tiny", min_records=1, max_records=10, max_bytes=100, source="test")

    with pytest.raises(DatasetRuleError, match="'max-size'"):
        render_jsonl(records(2), tiny)


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_render_then_parse_round_trips_unicode_line_separators(separator: str) -> None:
    original = [*records(99), record(f"first line{separator}second line")]

    data = render_jsonl(original, BEDROCK_NOVA_LIMITS)

    assert parse_jsonl(data, "train.jsonl") == original


# -- parse_jsonl ---------------------------------------------------------------------------------
def test_parse_jsonl_skips_blank_lines_and_accepts_crlf() -> None:
    data = b'{"a": 1}\r\n\r\n   \n{"b": 2}\n'

    assert parse_jsonl(data, "x") == [{"a": 1}, {"b": 2}]


def test_parse_jsonl_on_non_utf8_bytes_names_the_source_and_offset() -> None:
    with pytest.raises(DatasetRuleError) as caught:
        parse_jsonl(b'{"a": 1}\n\xff\xfe', "train.jsonl")

    message = str(caught.value)
    assert "train.jsonl is not UTF-8" in message
    assert "offset 9" in message


def test_parse_jsonl_on_broken_line_names_the_line() -> None:
    data = b'{"a": 1}\n{"b": 2}\n{"c": \n{"d": 4}\n'

    with pytest.raises(DatasetRuleError) as caught:
        parse_jsonl(data, "train.jsonl")

    message = str(caught.value)
    assert "train.jsonl line 3 is not JSON" in message


def test_parse_jsonl_counts_blank_lines_in_the_line_number() -> None:
    with pytest.raises(DatasetRuleError, match="line 4"):
        parse_jsonl(b'{"a": 1}\n\n\nnot json\n', "x")


def test_parse_jsonl_of_empty_bytes_is_empty() -> None:
    assert parse_jsonl(b"", "x") == []


def test_content_hash_is_sha256_hex_and_content_sensitive() -> None:
    assert content_hash(b"abc") == content_hash(b"abc")
    assert content_hash(b"abc") != content_hash(b"abd")
    assert len(content_hash(b"")) == 64
