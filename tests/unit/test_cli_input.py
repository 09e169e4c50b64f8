"""Bad input to the CLI: one-line `error: ...`, exit code 2, before Prefect starts."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from intent_router.errors import UserInputError
from intent_router.params import DistillParams
from intent_router.registry import ChampionRecord, ChampionRegistry, now_iso
from intent_router.storage import DirectoryStore, check_writable
from intent_router.student import HashedNgramStudent
from intent_router.text import check_query
from router_distill.cli import _parser, main, run_params

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


def _route_process(home: Path, *args: str, **streams: Any) -> subprocess.Popen[bytes]:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "ROUTER_DISTILL_HOME": str(home), "PYTHONPATH": str(root)}
    command = [sys.executable, "-m", "router_distill", "route", *args]
    return subprocess.Popen(command, env=env, cwd=root, stderr=subprocess.PIPE, **streams)


def test_route_stops_quietly_when_its_reader_goes_away(champion: str, router_home: Path) -> None:
    queries = b"".join(b"dog barking %d\n" % n for n in range(5000))
    process = _route_process(router_home, "-", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(queries)
    process.stdin.close()
    assert process.stdout.readline().startswith(b"dog barking 0")
    process.stdout.close()  # `route - | head -1`
    assert process.wait(timeout=120) == 1
    assert process.stderr is not None and process.stderr.read() == b""  # no traceback


def test_route_says_in_one_line_when_stdout_cannot_be_written(
    champion: str, router_home: Path
) -> None:
    with open("/dev/full", "wb") as full:
        process = _route_process(router_home, "rain", stdout=full)
        _, err = process.communicate(timeout=120)
    assert process.returncode == 1
    assert err.decode().splitlines() == [
        "error: cannot write the answers to standard output: No space left on device"
    ]


def test_route_with_standard_input_closed_says_so(champion: str, router_home: Path) -> None:
    closed = _route_process(
        router_home,
        "-",
        stdout=subprocess.PIPE,
        preexec_fn=lambda: os.close(0),  # `<&-`
    )
    _, err = closed.communicate(timeout=120)
    assert closed.returncode == 2
    assert err.decode().splitlines() == ["error: argument 1 is '-' but standard input is closed"]


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


# -- run: parameters -----------------------------------------------------------------------------
@pytest.fixture
def no_flow(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Replace the flow module: a test fails if the CLI gets as far as starting the flow."""
    calls: list[object] = []

    def distill_router(params: object) -> None:
        calls.append(params)
        raise AssertionError("the flow started")

    monkeypatch.setitem(
        sys.modules, "flows.distill", types.SimpleNamespace(distill_router=distill_router)
    )
    return calls


def write_json(path: Path, content: str) -> Path:
    path.write_text(content, encoding="utf-8")
    return path


def params_for(*argv: str) -> DistillParams:
    return run_params(_parser().parse_args(["run", *argv]))  # type: ignore[no-any-return]


def test_params_file_is_not_overridden_by_flag_defaults(tmp_path: Path) -> None:
    file = write_json(
        tmp_path / "p.json", '{"train_count": 300, "batches": 2, "taxonomy": "news_archives"}'
    )

    params = params_for("--params-json", str(file))

    assert (params.train_count, params.batches, params.taxonomy) == (300, 2, "news_archives")
    assert (params.seed, params.holdout_count, params.backend) == (7, 1_000, "local")
    assert params.triggered_by == "cli"


def test_flags_given_explicitly_override_the_params_file(tmp_path: Path) -> None:
    file = write_json(
        tmp_path / "p.json", '{"train_count": 300, "batches": 2, "triggered_by": "ops"}'
    )

    assert params_for("--params-json", str(file)).triggered_by == "ops"
    params = params_for("--params-json", str(file), "--batches", "5", "--triggered-by", "me")
    assert (params.train_count, params.batches, params.triggered_by) == (300, 5, "me")


def test_dry_run_uses_the_params_file(
    router_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_flow: list[object]
) -> None:
    file = write_json(tmp_path / "p.json", '{"train_count": 300, "taxonomy": "news_archives"}')

    assert main(["run", "--params-json", str(file), "--dry-run"]) == 0

    assert "router 'news-archives' (300 training examples, training mode distill-prompts)" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"train_count": -5}', "invalid parameter train_count: Input should be greater than"),
        ('{"train_count": "lots"}', "invalid parameter train_count: Input should be a valid int"),
        ('{"train_count": NaN}', "invalid parameter train_count: not a finite number"),
        ('{"budget_usd": Infinity}', "invalid parameter budget_usd: not a finite number"),
        ('{"gate": {"min_parse_rate": NaN}}', "invalid parameter gate.min_parse_rate: not a fin"),
        ('{"trian_count": 300}', "unknown parameter 'trian_count'"),
        ("null", "must hold a JSON object of parameters, not null"),
        ("[1, 2]", "must hold a JSON object of parameters, not list"),
        ("3", "must hold a JSON object of parameters, not int"),
        ('{"train_count": ', "is not valid JSON"),
    ],
)
def test_bad_params_files_get_one_line_errors(
    router_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_flow: list[object],
    content: str,
    message: str,
) -> None:
    file = write_json(tmp_path / "p.json", content)

    for extra in (["--dry-run"], []):
        assert main(["run", "--params-json", str(file), *extra]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err
    assert not no_flow


def test_a_directory_as_params_file_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_flow: list[object]
) -> None:
    assert main(["run", "--params-json", str(tmp_path)]) == 2
    assert "is a directory, not a JSON file" in capsys.readouterr().err


def test_non_finite_budget_flag_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["run", "--budget-usd", "nan", "--dry-run"])

    assert caught.value.code == 2
    assert "'nan' is not a finite number" in capsys.readouterr().err


# -- run: dry-run settings -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--role-arn", "not-an-arn"],
            "error: invalid --role-arn: 'not-an-arn' is not an IAM role",
        ),
        (["--region", "mars-1"], "error: invalid --region: 'mars-1' is not a Region with Amazon"),
    ],
)
def test_bad_bedrock_settings_in_a_dry_run_are_one_line_errors(
    router_home: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert main(["run", "--backend", "aws", "--dry-run", "--train-count", "300", *flags]) == 2

    err = capsys.readouterr().err
    assert err.splitlines() == [err.strip()] and err.startswith(message)
    if "--region" in flags:
        assert "us-east-1" in err and "us-west-2" in err  # names the valid ones


# -- run: taxonomy ---------------------------------------------------------------------------
TAXONOMY = """\
name: t
signals:
  - {name: visual, description: how things look}
  - {name: audio, description: how things sound}
attributes:
  - name: mood
    values: [calm, eerie]
    informs: {visual: 1.0}
    phrasings: [PHRASING]
"""


@pytest.mark.parametrize(
    ("phrasing", "message"),
    [("'{value} {'", "unbalanced braces"), ("'{value} at {venue}'", "unknown slot(s) venue")],
)
def test_bad_phrasings_are_rejected_by_the_dry_run_and_the_run(
    router_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_flow: list[object],
    phrasing: str,
    message: str,
) -> None:
    file = tmp_path / "t.yaml"
    file.write_text(TAXONOMY.replace("PHRASING", phrasing), encoding="utf-8")

    for extra in (["--dry-run"], []):
        assert main(["run", "--taxonomy", str(file), "--train-count", "300", *extra]) == 2
        [line] = capsys.readouterr().err.splitlines()
        assert line.startswith(f"error: invalid taxonomy {file}: ") and message in line
    assert not no_flow


def test_a_directory_as_taxonomy_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_flow: list[object]
) -> None:
    assert main(["run", "--taxonomy", str(tmp_path), "--dry-run"]) == 2
    assert "is a directory, not a taxonomy file" in capsys.readouterr().err


# -- run: storage --------------------------------------------------------------------------------
def test_unwritable_local_storage_stops_the_run_before_the_flow(
    router_home: Path, capsys: pytest.CaptureFixture[str], no_flow: list[object]
) -> None:
    router_home.mkdir(parents=True)
    (router_home / "store").write_text("not a directory")  # works for root too, unlike chmod

    assert main(["run", "--train-count", "300"]) == 2

    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: storage root file://") and "is not writable" in line
    assert not no_flow


def test_check_writable_leaves_nothing_behind(tmp_path: Path) -> None:
    check_writable(DirectoryStore(tmp_path))

    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_check_writable_names_the_root_when_its_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    store = DirectoryStore(tmp_path / "file" / "store")

    with pytest.raises(UserInputError, match=r"storage root file://.*/file/store is not writable"):
        check_writable(store)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_check_writable_names_the_root_and_os_error_when_read_only(tmp_path: Path) -> None:
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o555)
    try:
        with pytest.raises(UserInputError, match=r"ro is not writable: Permission denied"):
            check_writable(DirectoryStore(root))
    finally:
        root.chmod(0o755)


def test_backend_aws_in_the_params_file_means_the_saved_aws_blocks(tmp_path: Path) -> None:
    from blocks.create import AWS_BACKEND_REF, AWS_STORAGE_REF

    file = write_json(tmp_path / "p.json", '{"backend": "aws", "train_count": 300}')

    params = params_for("--params-json", str(file))

    assert (params.backend, params.storage_block) == (AWS_BACKEND_REF, AWS_STORAGE_REF)


def test_a_count_the_local_backend_cannot_train_stops_before_the_flow(
    router_home: Path, capsys: pytest.CaptureFixture[str], no_flow: list[object]
) -> None:
    assert main(["run", "--train-count", "50"]) == 2

    [line] = capsys.readouterr().err.splitlines()
    assert "50 training records is outside what backend 'local' accepts" in line
    assert not no_flow


@pytest.mark.parametrize(
    "flags,named",
    [
        (["--role-arn", "not-an-arn"], "--role-arn"),
        (["--role-arn", "arn:aws:iam::123456789012:role/r", "--region", "mars-1"], "--region"),
    ],
)
def test_blocks_create_rejects_bad_settings_before_saving_anything(
    flags: list[str],
    named: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import blocks.create

    def must_not_save(**_: object) -> list[str]:
        raise AssertionError("blocks were saved for bad settings")

    monkeypatch.setattr(blocks.create, "create_aws_blocks", must_not_save)
    assert main(["blocks", "create", "--backend", "aws", "--bucket", "b", *flags]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert named in line


def test_route_json_never_echoes_control_characters(
    champion: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["route", "--json", "clear\x1b[2J screen\x7f\x9b", "rain"]) == 2
    out = capsys.readouterr().out
    assert not any(ch in out for ch in ("\x1b", "\x7f", "\x9b"))
    bad, good = (json.loads(line) for line in out.splitlines())
    assert "control characters" in bad["error"] and good["query"] == "rain"


@pytest.mark.parametrize("damage", ["empty pointer", "missing model", "lost ledger"])
def test_run_stops_on_corrupt_state_before_prefect_starts(
    damage: str, champion: str, router_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = router_home / "store"
    if damage == "empty pointer":
        (store / "routers" / "default" / "champion.json").write_bytes(b"")
    elif damage == "missing model":
        (store / "models" / "tiny" / "student.npz").unlink()
    else:
        (store / "routers" / "default" / "ledger.jsonl").unlink()

    assert main(["run", "--train-count", "300", "--batches", "2"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err  # one line: no Prefect start, no traceback
    assert err.startswith("error: ")


@pytest.mark.parametrize("value", [True, 300.0, "300"])
def test_a_count_that_is_not_an_integer_is_a_type_error(
    value: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"train_count": value}))
    assert main(["run", "--params-json", str(params), "--dry-run"]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert "train_count" in line and "integer" in line
