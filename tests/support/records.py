"""Champion records and the store contract for registry, outcome and CLI tests."""

from __future__ import annotations

from typing import Any

from intent_router.registry import ChampionRecord
from intent_router.storage import ConditionalStore


def champion_record(model_id: str, **fields: Any) -> ChampionRecord:
    """A champion record for `model_id` (deployment `dep-<model>`); `fields` override."""
    values: dict[str, Any] = {
        "router": "default",
        "model_id": model_id,
        "deployment_id": f"dep-{model_id}",
        "run_id": f"run-{model_id}",
        "taxonomy": "default",
        "signals": ("visual", "audio", "transcription", "metadata"),
        "metrics": {"top_signal_accuracy": 0.95, "mean_rubric": 4.5},
        "promoted_at": "2026-11-01T00:00:00+00:00",
    }
    return ChampionRecord.model_validate(values | fields)


def assert_compare_and_swap(store: ConditionalStore, key: str) -> None:
    """The conditional-write contract every ledger store keeps: create only when missing,
    replace only an unchanged object."""
    assert store.supports_conditional_writes()
    assert store.read_versioned(key) is None
    assert store.write_if(key, b"one", None) is True
    assert store.write_if(key, b"two", None) is False
    first = store.read_versioned(key)
    assert first is not None and first.data == b"one"
    assert store.write_if(key, b"two", first.version) is True
    assert store.write_if(key, b"three", first.version) is False
    assert store.read(key) == b"two"
