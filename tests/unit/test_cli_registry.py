"""`router-distill champion | history | rollback` over the local champion registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from intent_router.backends.local import LocalBackend
from intent_router.registry import ChampionRecord, ChampionRegistry, now_iso
from intent_router.storage import DirectoryStore
from intent_router.student import HashedNgramStudent
from router_distill.cli import main
from tests.support.records import champion_record


def record(model: str, accuracy: float) -> ChampionRecord:
    return champion_record(
        model,
        metrics={"top_signal_accuracy": accuracy, "mean_rubric": 4.5},
        promoted_at=now_iso(),
        triggered_by="schedule",
    )


def test_champion_history_and_rollback(
    router_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["champion"]) == 1
    assert "no router has been promoted yet" in capsys.readouterr().err

    registry = ChampionRegistry(DirectoryStore(router_home / "store"), "default")
    registry.promote(record("model-a", 0.95))
    registry.promote(record("model-b", 0.97))

    assert main(["champion"]) == 0
    assert '"model_id": "model-b"' in capsys.readouterr().out
    assert main(["history"]) == 0
    table = capsys.readouterr().out
    assert "model-a" in table and "model-b" in table and "schedule" in table

    assert main(["rollback"]) == 0
    assert "now model-a (ledger entry 3, was model-b)" in capsys.readouterr().out
    assert registry.current() is not None and registry.current().model_id == "model-a"  # type: ignore[union-attr]

    assert main(["rollback", "--to", "9"]) == 2
    assert "has no entry 9" in capsys.readouterr().err


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    return lines[0]


COMMANDS = [["champion"], ["history"], ["rollback"], ["route", "sound of rain"]]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("router", ["../../etc", "x" * 300, "../routers/default", "Default"])
def test_bad_router_names_are_a_one_line_usage_error(
    router_home: Path, capsys: pytest.CaptureFixture[str], command: list[str], router: str
) -> None:
    ChampionRegistry(DirectoryStore(router_home / "store"), "default").promote(
        record("model-a", 0.95)
    )

    assert main([*command[:1], "--router", router, *command[1:]]) == 2
    assert "invalid router name" in _one_error_line(capsys)


@pytest.mark.parametrize("command", [["champion"], ["rollback"], ["route", "sound of rain"]])
@pytest.mark.parametrize("content", [b"", b'{"router": "def'])
def test_a_corrupt_pointer_is_a_one_line_usage_error(
    router_home: Path, capsys: pytest.CaptureFixture[str], command: list[str], content: bytes
) -> None:
    store = DirectoryStore(router_home / "store")
    registry = ChampionRegistry(store, "default")
    registry.promote(record("model-a", 0.95))
    registry.promote(record("model-b", 0.97))
    store.write("routers/default/champion.json", content)

    assert main(command) == 2
    assert "routers/default/champion.json is corrupt" in _one_error_line(capsys)
    assert store.read("routers/default/champion.json") == content


@pytest.mark.parametrize("command", [["history"], ["rollback"]])
def test_a_corrupt_ledger_is_a_one_line_usage_error(
    router_home: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    store = DirectoryStore(router_home / "store")
    ChampionRegistry(store, "default").promote(record("model-a", 0.95))
    ledger = store.read("routers/default/ledger.jsonl") or b""
    store.write("routers/default/ledger.jsonl", ledger + b"{garbage\n")

    assert main(command) == 2
    assert "ledger.jsonl line 2 is corrupt" in _one_error_line(capsys)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_router_folder_that_is_a_file_is_a_one_line_usage_error(
    router_home: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    (router_home / "store" / "routers").mkdir(parents=True)
    (router_home / "store" / "routers" / "default").write_text("not a folder")

    assert main(command) == 2
    assert "routers/default is a file, not a folder" in _one_error_line(capsys)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_home_that_is_a_file_is_a_one_line_usage_error(
    router_home: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    router_home.parent.mkdir(parents=True, exist_ok=True)
    router_home.write_text("not a folder")

    assert main(command) == 2
    assert "ROUTER_DISTILL_HOME" in _one_error_line(capsys)


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_route_with_a_broken_model_artifact_names_it(
    router_home: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    store = DirectoryStore(router_home / "store")
    ChampionRegistry(store, "default").promote(record("local-model/m-1", 0.95))
    path = LocalBackend(store).artifact_path("local-model/m-1")
    if damage == "truncated":
        data = HashedNgramStudent(signals=("visual", "audio"), n_buckets=1024).to_bytes()
        store.write(path, data[:100])

    assert main(["route", "sound of rain"]) == 2
    line = _one_error_line(capsys)
    assert f"model artifact {path}" in line
    assert ("missing" if damage == "missing" else "corrupt") in line
