"""The drift monitor: a bounded, budgeted teacher sample of new traffic, the champion scored on
it, a drift artifact, and `router.drift` when the champion routes the traffic badly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prefect.artifacts import Artifact

import tasks.events
from flows.distill import distill_router
from flows.monitor import monitor_router
from intent_router.errors import UserInputError
from tests.flows.conftest import TeacherCalls
from tests.support.runs import LENIENT_GATE, TINY_RUN

# Queries a student trained on a few hundred English synthetic queries has never seen the like
# of: other languages, slang, sound-only searches. The teacher labels them; the champion misroutes.
HARD = [
    "sonido de lluvia sobre el tejado de chapa",
    "bruit des vagues la nuit sans musique",
    "geräusch von donner und regen zum einschlafen",
    "that bit where the crowd goes absolutely feral",
    "asmr whispering tapping no talking",
    "hooting owl",
    "dial-up modem noise",
    "vinyl crackle loop",
    "squeaky sneakers on a gym floor",
    "dentist drill whine",
    "cicadas at dusk",
    "creaking ship hull",
    "low rumble of a subway passing underneath",
    "the clink of ice in a glass",
    "kettle whistling",
    "geese honking overhead",
    "theremin",
    "didgeridoo drone",
    "throat singing tuvan",
    "a baby giggling uncontrollably",
]


def log(path: Path, queries: list[str], day: int) -> Path:
    lines = [
        json.dumps({"timestamp": f"2026-11-{day:02d}T{i % 24:02d}:00:00Z", "query": q})
        for i, q in enumerate(queries)
    ]
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The router.drift events emitted (promotions of the setup runs are left out)."""
    emitted: list[dict[str, Any]] = []

    def record(**event: Any) -> None:
        if event["event"] == "router.drift":
            emitted.append(event)

    monkeypatch.setattr(tasks.events, "emit_event", record)
    return emitted


def test_monitor_emits_drift_when_the_champion_routes_new_traffic_badly(
    router_home: Path, tmp_path: Path, teacher_calls: TeacherCalls, events: list[dict[str, Any]]
) -> None:
    distill_router(**TINY_RUN, gate=LENIENT_GATE, router_name="watched", traffic="none")
    traffic = log(tmp_path / "search.jsonl", HARD, day=20)
    teacher_calls.count = 0
    check = monitor_router(router_name="watched", traffic=str(traffic), sample_size=10)
    assert check is not None
    assert check.sample == 10 and check.new_queries == len(HARD)
    assert teacher_calls.count == 10  # a bounded sample, not the whole log
    assert check.drifted and check.alerts
    assert check.unseen_token_share > 0.35
    [event] = events
    assert event["event"] == "router.drift"
    assert event["resource"]["prefect.resource.id"] == "router.watched"
    assert event["payload"]["alerts"] == list(check.alerts)
    artifact = Artifact.get("drift-watched")
    assert artifact is not None and "Agreement over time" in str(artifact.data)

    # The next check takes only what is new since this one.
    again = monitor_router(router_name="watched", traffic=str(traffic), sample_size=10)
    assert again is None  # nothing new: no teacher call, no event
    assert len(events) == 1
    log(traffic, HARD[:5], day=21)
    third = monitor_router(router_name="watched", traffic=str(traffic), sample_size=10)
    assert third is not None and third.new_queries == 5


def test_a_quiet_check_emits_nothing(
    router_home: Path, tmp_path: Path, events: list[dict[str, Any]]
) -> None:
    distill_router(**TINY_RUN, gate=LENIENT_GATE, router_name="quiet", traffic="none")
    traffic = log(tmp_path / "search.jsonl", HARD, day=20)
    never = {"min_agreement": 0.0, "max_unseen_token_share": 1.0, "max_mix_shift": 1.0}
    check = monitor_router(router_name="quiet", traffic=str(traffic), thresholds=never)
    assert check is not None and not check.drifted
    assert events == []


def test_monitor_budget_stops_before_the_teacher_is_paid(
    router_home: Path, tmp_path: Path, teacher_calls: TeacherCalls
) -> None:
    distill_router(**TINY_RUN, gate=LENIENT_GATE, router_name="budgeted", traffic="none")
    traffic = log(tmp_path / "search.jsonl", HARD, day=20)
    teacher_calls.count = 0
    with pytest.raises(UserInputError, match="exceeds the budget"):
        monitor_router(router_name="budgeted", traffic=str(traffic), budget_usd=0.0)
    assert teacher_calls.count == 0


def test_monitor_refuses_a_router_without_champion(router_home: Path) -> None:
    with pytest.raises(UserInputError, match="no champion"):
        monitor_router(router_name="nobody")
