"""The command line: run, route, bad input and exit codes."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from router_distill.cli import main
from tests.support.runs import LENIENT_GATE

SMALL_ARGS = ["--train-count", "300", "--holdout-count", "100", "--batches", "3"]


def write_params(path: Path, **extra: Any) -> Path:
    gate = LENIENT_GATE
    path.write_text(
        json.dumps(
            {"novel_vocabulary_count": 30, "poll_interval_seconds": 0, "gate": gate, **extra}
        )
    )
    return path


def test_route_says_clearly_when_nothing_is_promoted(
    router_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["route", "drone shot of a beach"]) == 1
    assert "no router has been promoted yet" in capsys.readouterr().err


def test_run_then_route_single_json_and_stdin(
    router_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report = tmp_path / "report.json"
    params = write_params(tmp_path / "params.json")
    code = main(["run", *SMALL_ARGS, "--params-json", str(params), "--report-json", str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "golden_strict" in out and "Outcome: PROMOTED" in out
    summary = json.loads(report.read_text())
    assert summary["outcome"] == "promoted"
    assert summary["dataset"]["train_records"] == 300

    assert main(["route", "drone shot of a beach at sunset"]) == 0
    text = capsys.readouterr().out
    assert "visual" in text and "Mostly" in text

    monkeypatch.setattr(
        sys,
        "stdin",
        io.TextIOWrapper(
            io.BytesIO(b"dog barking at night\n\nthe mayor says the bridge will reopen\n")
        ),
    )
    assert main(["route", "--json", "-"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["query"] for line in lines] == [
        "dog barking at night",
        "the mayor says the bridge will reopen",
    ]
    for line in lines:
        assert set(line["weights"]) == {"visual", "audio", "transcription", "metadata"}
        assert abs(sum(line["weights"].values()) - 1.0) < 0.01
        assert line["reasoning"]

    # Bad queries: one-line errors, exit code 2, good queries still answered.
    assert main(["route", "--json", "", "x" * 100_000, "sound of rain"]) == 2
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["error"] == "query is empty"
    assert "limit is 2,000" in rows[1]["error"]
    assert "weights" in rows[2]

    # The champion and ledger read through the storage block the run wrote to.
    store_block = ["--storage-block", "local-file-system/router-distill-store"]
    assert main(["history", *store_block]) == 0
    assert summary["model_id"] in capsys.readouterr().out
    assert main(["champion", *store_block, "--router", "nobody"]) == 1


def test_route_rejects_non_utf8_stdin(
    router_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"caf\xe9 scene\n")))
    assert main(["route", "-"]) == 2
    assert "not UTF-8" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--train-count", "50"], "outside what backend 'local' accepts"),
        (["--train-count", "0"], "invalid parameter train_count"),
        (["--taxonomy", "no-such-taxonomy"], "no built-in taxonomy named"),
    ],
)
def test_run_user_errors_exit_2_with_one_line(
    router_home: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["run", "--holdout-count", "50", "--batches", "2", *args]) == 2
    # Prefect's own log lines may share stderr (how depends on test order); ours is one line.
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0]


def test_run_rejects_malformed_taxonomy_files(
    router_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_signal = tmp_path / "bad.yaml"
    bad_signal.write_text(
        "name: bad\nsignals:\n  - {name: visual, description: how things look}\n"
        "  - {name: audio, description: sound}\n"
        "attributes:\n  - {name: mood, values: [calm], informs: {smell: 1.0}}\n"
    )
    assert main(["run", "--taxonomy", str(bad_signal)]) == 2
    assert "informs unknown signal(s) ['smell']" in capsys.readouterr().err

    empty_values = tmp_path / "empty.yaml"
    empty_values.write_text(
        "name: empty\nsignals:\n  - {name: visual, description: how things look}\n"
        "  - {name: audio, description: sound}\n"
        "attributes:\n  - {name: mood, values: [], informs: {visual: 1.0}}\n"
    )
    assert main(["run", "--taxonomy", str(empty_values)]) == 2
    assert "attributes.0.values: values must not be empty" in capsys.readouterr().err

    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert main(["run", "--taxonomy", str(latin1)]) == 2
    assert "is not UTF-8" in capsys.readouterr().err


def test_run_that_nobody_approves_is_reported_as_cancelled(
    router_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = write_params(
        tmp_path / "params.json", require_approval=True, approval_timeout_seconds=1
    )
    report = tmp_path / "report.json"

    code = main(["run", *SMALL_ARGS, "--params-json", str(params), "--report-json", str(report)])

    assert code == 1
    err = capsys.readouterr().err
    assert "run cancelled" in err and "nobody approved the run within 1 s" in err
    assert json.loads(report.read_text())["outcome"] == "cancelled"
