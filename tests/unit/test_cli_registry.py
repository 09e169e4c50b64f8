"""`router-distill champion | history | rollback` over the local champion registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from intent_router.registry import ChampionRecord, ChampionRegistry, now_iso
from intent_router.storage import DirectoryStore
from router_distill.cli import main


def record(model: str, accuracy: float) -> ChampionRecord:
    return ChampionRecord(
        router="default",
        model_id=model,
        deployment_id=f"dep-{model}",
        run_id=f"run-{model}",
        taxonomy="default",
        signals=("visual", "audio", "transcription", "metadata"),
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
