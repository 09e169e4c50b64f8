"""Bad input to the CLI: one-line `error: ...`, exit code 2, before Prefect starts."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from intent_router.registry import ChampionRecord, ChampionRegistry, now_iso
from intent_router.storage import DirectoryStore
from intent_router.student import HashedNgramStudent
from intent_router.text import check_query
from router_distill.cli import main

SIGNALS = ("visual", "audio", "transcription", "metadata")


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error: ")]


# -- route ---------------------------------------------------------------------------------------
@pytest.fixture
def champion(router_home: Path) -> str:
    """An (untrained) student promoted as the champion of 'default'; no Prefect involved."""
    store = DirectoryStore(router_home / "store")
    store.write("models/tiny/student.npz", HashedNgramStudent(SIGNALS, n_buckets=256).to_bytes())
    ChampionRegistry(store, "default").promote(
        ChampionRecord(
            router="default",
            model_id="local-model/tiny",
            deployment_id="dep-tiny",
            run_id="run-tiny",
            taxonomy="default",
            signals=SIGNALS,
            metrics={},
            promoted_at=now_iso(),
        )
    )
    return "local-model/tiny"


def feed_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_route_answers_the_other_queries_when_one_stdin_line_is_not_utf8(
    champion: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_stdin(monkeypatch, b"sound of rain\ncaf\xe9 scene\r\n\ndog barking\n")

    assert main(["route", "--json", "drone shot", "-"]) == 2

    captured = capsys.readouterr()
    answered = [json.loads(line)["query"] for line in captured.out.splitlines()]
    assert answered == ["drone shot", "sound of rain", "dog barking"]
    assert error_lines(captured.err) == [
        "error: standard input line 2 is not UTF-8 (bad byte 0xe9 at byte 4)"
    ]


def test_route_strips_a_byte_order_mark_and_crlf(
    champion: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_stdin(monkeypatch, b"\xef\xbb\xbfsound of rain\r\nthe mayor said\r\n")

    assert main(["route", "--json", "-"]) == 0

    queries = [json.loads(line)["query"] for line in capsys.readouterr().out.splitlines()]
    assert queries == ["sound of rain", "the mayor said"]


def test_route_rejects_an_argument_that_is_not_utf8(
    champion: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = b"caf\xe9".decode("utf-8", "surrogateescape")  # how Python hands over such argv bytes

    assert main(["route", bad, "sound of rain"]) == 2

    captured = capsys.readouterr()
    assert "sound of rain" in captured.out
    assert error_lines(captured.err) == ["error: argument 1 is not UTF-8 (bad byte 0xe9 at byte 4)"]


@pytest.mark.parametrize(
    "query", ["rain\x00drops", "\x1b[31mred\x1b[0m sunset", "bell\x07", "csi\x9b2J", "a\u202eb"]
)
def test_route_rejects_control_characters_and_never_prints_them(
    champion: str, capsys: pytest.CaptureFixture[str], query: str
) -> None:
    assert main(["route", query, "sound of rain"]) == 2

    captured = capsys.readouterr()
    assert "sound of rain" in captured.out
    [line] = error_lines(captured.err)
    assert line.startswith("error: query 1: query contains control characters (U+")
    for stream in (captured.out, captured.err):
        assert not any(ch in stream for ch in "\x00\x1b\x07\x9b\u202e")


def test_check_query_turns_tabs_into_spaces_and_names_control_characters() -> None:
    assert check_query("rain\ton a roof") == "rain on a roof"
    assert check_query("  sound of rain\n") == "sound of rain"
    with pytest.raises(ValueError, match=r"query contains control characters \(U\+001B at"):
        check_query("\x1b[2Jsound")
    with pytest.raises(ValueError, match="not valid UTF-8"):
        check_query("caf\udce9")
