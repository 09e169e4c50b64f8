"""CLI: --traffic, --golden and --require-golden are checked before Prefect starts; `eval`
scores the champion and the teacher on a golden set."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from flows.monitor import monitor_router
from intent_router.errors import UserInputError
from intent_router.registry import ChampionRecord, ChampionRegistry, now_iso
from intent_router.storage import DirectoryStore
from intent_router.student import HashedNgramStudent
from router_distill.cli import main
from tests.unit.test_cli_input import champion, error_lines, no_flow  # noqa: F401 - fixtures

ODD = ("colour", "sound")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--traffic", "/nonexistent/search.log"], "traffic source '/nonexistent/search.log' does"),
        (["--traffic", "s3://"], "s3://"),
        (["--golden", "/nonexistent/golden.jsonl"], "/nonexistent/golden.jsonl"),
        (["--taxonomy", "news_archives", "--golden", "none", "--require-golden"], "require_golden"),
    ],
)
def test_bad_real_query_flags_are_one_line_errors_before_the_flow(
    router_home: Path,
    capsys: pytest.CaptureFixture[str],
    no_flow: list[object],  # noqa: F811
    flags: list[str],
    message: str,
) -> None:
    assert main(["run", "--train-count", "300", *flags]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert message in line
    assert not no_flow


def test_a_malformed_golden_file_names_the_line_and_field(
    router_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_flow: list[object],  # noqa: F811
) -> None:
    golden = tmp_path / "golden.jsonl"
    golden.write_text('{"query": "rain", "top": "smell"}\n', "utf-8")
    assert main(["run", "--train-count", "300", "--golden", str(golden)]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert "line 1" in line and "top" in line and "smell" in line
    assert not no_flow


def test_eval_scores_champion_and_teacher_on_the_golden_set(
    router_home: Path,
    champion: str,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["eval", "--router", "default", "--json"]) == 0
    champion_row, teacher_row = json.loads(capsys.readouterr().out)
    assert champion_row["role"] == "champion" and teacher_row["role"] == "teacher"
    assert champion_row["n"] == teacher_row["n"] >= 400
    # An untrained student is far below the teacher on human labels.
    assert teacher_row["strict_top1"] > champion_row["strict_top1"] + 0.2
    assert set(teacher_row["recall_per_signal"]) == {"visual", "audio", "transcription", "metadata"}

    assert main(["eval", "--router", "default"]) == 0
    out = capsys.readouterr().out
    assert "strict_top1" in out and "by tag:" in out


def test_eval_with_another_golden_file_and_errors(
    router_home: Path,
    champion: str,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    golden = tmp_path / "mine.csv"
    golden.write_text(
        "query,top,tags\nrain on a tin roof,audio,short\nobama speech,transcription,name\n"
    )
    assert main(["eval", "--golden", str(golden), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["n"] for r in rows] == [2, 2]

    assert main(["eval", "--router", "nobody"]) == 1
    assert "no router has been promoted" in capsys.readouterr().err
    assert main(["eval", "--golden", str(tmp_path / "missing.jsonl")]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert "missing.jsonl" in line


@pytest.fixture
def other_champion(router_home: Path) -> str:
    """A champion of router 'odd' trained on a taxonomy with other signals than 'default'."""
    store = DirectoryStore(router_home / "store")
    store.write("models/odd/student.npz", HashedNgramStudent(ODD, n_buckets=256).to_bytes())
    ChampionRegistry(store, "odd").promote(
        ChampionRecord(
            router="odd",
            model_id="local-model/odd",
            deployment_id="dep-odd",
            run_id="run-odd",
            taxonomy="odd",
            signals=ODD,
            metrics={},
            promoted_at=now_iso(),
        )
    )
    return "local-model/odd"


def test_eval_refuses_a_taxonomy_whose_signals_the_champion_was_not_trained_on(
    router_home: Path,
    other_champion: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Scoring it anyway gives parse rate 0 and exit 0: a silent, meaningless result.
    assert main(["eval", "--router", "odd", "--taxonomy", "default"]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert other_champion in line and "colour, sound" in line and "'default'" in line


def test_the_monitor_refuses_a_taxonomy_whose_signals_the_champion_was_not_trained_on(
    router_home: Path, other_champion: str
) -> None:
    # Otherwise agreement is 0 and the monitor emits a false router.drift (a retraining).
    with pytest.raises(UserInputError, match="colour, sound"):
        monitor_router.fn(router_name="odd", taxonomy="default")


def test_eval_with_golden_none_says_so(
    router_home: Path,
    champion: str,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["eval", "--golden", "none"]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert "--golden none" in line and "require_golden" not in line


def test_ctrl_c_during_a_run_is_one_message_and_a_failure_report(
    router_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def distill_router(**parameters: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setitem(
        sys.modules, "flows.distill", types.SimpleNamespace(distill_router=distill_router)
    )
    report = tmp_path / "report.json"
    argv = ["run", "--train-count", "300", "--traffic", "none", "--report-json", str(report)]
    # Before: a KeyboardInterrupt traceback and no report.
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "run interrupted" in err and "cached" in err
    assert json.loads(report.read_text("utf-8"))["outcome"] == "interrupted"


def test_a_corrupt_traffic_watermark_is_named_before_the_flow_starts(
    router_home: Path,
    capsys: pytest.CaptureFixture[str],
    no_flow: list[object],  # noqa: F811
) -> None:
    store = DirectoryStore(router_home / "store")
    store.write("routers/default/traffic-watermark-train.json", b"garbage{")
    # Before: Prefect started, the flow failed in its first stage and logged a traceback.
    assert main(["run", "--train-count", "300"]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert "routers/default/traffic-watermark-train.json is corrupt" in line
    assert not no_flow
    # Without traffic the watermark is not read: it does not block the run.
    assert main(["run", "--train-count", "300", "--traffic", "none"]) == 1  # the fake flow
    err = capsys.readouterr().err
    assert "run failed" in err and "corrupt" not in err


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("junk.jsonl", b'garbage\n{"nope": 1}\n', "yields no usable query (1 file, 2 lines"),
        ("corrupt.jsonl.gz", b"not gzip at all", "is not valid gzip"),
    ],
)
def test_unusable_local_traffic_is_one_line_before_the_flow_starts(
    router_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_flow: list[object],  # noqa: F811
    name: str,
    content: bytes,
    message: str,
) -> None:
    source = tmp_path / name
    source.write_bytes(content)
    # Before: Prefect started and the read-traffic task failed with a logged traceback.
    assert main(["run", "--train-count", "300", "--traffic", str(source)]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert str(source) in line and message in line
    assert not no_flow


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--sample-size", "0"], "invalid parameter sample_size"), (["--budget-usd", "-1"], "budget")],
)
def test_bad_monitor_flags_are_one_line_errors(
    router_home: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert main(["monitor", *flags]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert message in line
