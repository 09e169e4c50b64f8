"""Drift figures: agreement, per-signal recall, unseen tokens, mix shift, alerts."""

from __future__ import annotations

import logging
import types
from pathlib import Path

import pytest

import tasks.monitor
from intent_router.drift import (
    DriftCheck,
    DriftThresholds,
    assess,
    mix_shift,
    top_signal_mix,
    unseen_token_share,
    vocabulary,
)
from intent_router.storage import DirectoryStore

SIGNALS = ("visual", "audio", "transcription", "metadata")


def w(top: str) -> dict[str, float]:
    return {s: (0.7 if s == top else 0.1) for s in SIGNALS}


def test_unseen_token_share_counts_tokens_with_repeats() -> None:
    known = vocabulary(["drone shot of a beach", "rain sounds"])
    assert unseen_token_share(["drone shot", "volcano volcano"], known) == 0.5
    assert unseen_token_share([], known) == 0.0


def test_mix_shift_is_total_variation() -> None:
    a = top_signal_mix([w("visual"), w("audio")], SIGNALS)
    assert a == {"visual": 0.5, "audio": 0.5, "transcription": 0.0, "metadata": 0.0}
    assert mix_shift(a, a) == 0.0
    assert mix_shift(a, {"metadata": 1.0}) == 1.0


def test_assess_flags_low_agreement_and_lists_the_worst_queries() -> None:
    references = [w("audio")] * 8 + [w("visual")] * 2
    predicted: list[dict[str, float] | None] = [w("visual")] * 7 + [None] + [w("visual")] * 2
    check = assess(
        router="default",
        champion_model_id="m1",
        new_queries=50,
        queries=[f"query {i}" for i in range(10)],
        references=references,
        predicted=predicted,
        signals=SIGNALS,
        training_tokens={"query"},
        training_mix={"visual": 0.5, "audio": 0.5, "transcription": 0.0, "metadata": 0.0},
        thresholds=DriftThresholds(),
    )
    assert check.agreement == 0.2
    assert check.per_signal_recall == {"visual": 1.0, "audio": 0.0}
    assert check.unseen_token_share == 0.5  # the digits were never seen
    assert check.drifted
    assert any("agreement 0.200" in a for a in check.alerts)
    assert all(d.teacher_top == "audio" for d in check.worst)
    assert len(check.worst) == 8  # the unparseable answer disagrees too


def test_assess_quiet_when_the_champion_agrees() -> None:
    references = [w("visual"), w("audio"), w("metadata"), w("transcription")]
    check = assess(
        router="default",
        champion_model_id="m1",
        new_queries=4,
        queries=["a b", "a", "b", "a b"],
        references=references,
        predicted=list(references),
        signals=SIGNALS,
        training_tokens={"a", "b"},
        training_mix=top_signal_mix(references, SIGNALS),
        thresholds=DriftThresholds(),
    )
    assert check.agreement == 1.0
    assert check.mix_shift == 0.0
    assert not check.drifted


def test_a_check_survives_a_cut_off_last_line_of_the_drift_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks.monitor, "get_run_logger", lambda: logging.getLogger("test"))
    store = DirectoryStore(tmp_path)
    runtime = types.SimpleNamespace(store=lambda: store)
    store.write(tasks.monitor.history_path("default"), b'{"router": "default", "agree')

    def check(model: str) -> DriftCheck:
        return assess(
            router="default",
            champion_model_id=model,
            new_queries=1,
            queries=["drone shot"],
            references=[w("visual")],
            predicted=[w("visual")],
            signals=SIGNALS,
            training_tokens=None,
            training_mix=None,
            thresholds=DriftThresholds(),
        )

    tasks.monitor.record_check.fn(check("m1"), runtime)
    history = tasks.monitor.record_check.fn(check("m2"), runtime)
    # Appended straight after the cut-off line, m1 became part of it and was lost.
    assert [h.champion_model_id for h in history] == ["m1", "m2"]
