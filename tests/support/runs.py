"""Run sizes and a lenient gate shared by the flow, server and browser tests."""

from __future__ import annotations

from typing import Any

# Small enough for a test, large enough for a student that routes (promotion is asserted).
SMALL_RUN: dict[str, Any] = {
    "train_count": 400,
    "holdout_count": 120,
    "novel_vocabulary_count": 40,
    "batches": 4,
    "poll_interval_seconds": 0,
}
TINY_RUN: dict[str, Any] = {
    "train_count": 300,
    "holdout_count": 80,
    "novel_vocabulary_count": 20,
    "batches": 2,
    "poll_interval_seconds": 0,
}
LENIENT_GATE: dict[str, float] = {
    "min_parse_rate": 0.9,
    "min_top_signal_accuracy": 0.3,
    "min_mean_rubric": 1.5,
    "min_golden_top1": 0.3,
}
