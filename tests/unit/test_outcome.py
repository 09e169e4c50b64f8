"""The outcome table: promote, reject, unchanged, blocked and what each deletes (no Prefect)."""

from __future__ import annotations

from typing import Literal

from intent_router.gate import GateCheck, GateDecision
from intent_router.outcome import ledger_deployments, plan_outcome
from intent_router.registry import ChampionRecord, LedgerEntry
from tests.support.records import champion_record

PASS = GateDecision(promote=True, checks=(GateCheck(name="floor", passed=True, detail="ok"),))
FAIL = GateDecision(promote=False, checks=(GateCheck(name="floor", passed=False, detail="low"),))


def record(model: str, deployment: str | None = None) -> ChampionRecord:
    return champion_record(
        model, router="r", deployment_id=deployment or f"dep-{model}", signals=("visual", "audio")
    )


Action = Literal["promote", "rollback", "redeploy"]


def entry(n: int, action: Action, champion: ChampionRecord, previous: str | None) -> LedgerEntry:
    return LedgerEntry(
        entry=n, action=action, at="t", champion=champion, previous_model_id=previous
    )


def retired(plan: object) -> list[str]:
    return [r.deployment_id for r in plan.retire]  # type: ignore[attr-defined]


def test_first_promotion_retires_nothing() -> None:
    plan = plan_outcome(champion=None, candidate=record("a"), decision=PASS, ledger=[])
    assert plan.outcome == "promoted" and plan.new_champion == record("a")
    assert retired(plan) == []


def test_rejection_deletes_only_the_candidates_deployment() -> None:
    champion = record("a")
    ledger = [entry(1, "promote", champion, None)]
    plan = plan_outcome(champion=champion, candidate=record("b"), decision=FAIL, ledger=ledger)
    assert plan.outcome == "rejected" and plan.new_champion is None
    assert retired(plan) == ["dep-b"]
    assert "low" in plan.reason


def test_promotion_deletes_the_superseded_champions_deployment() -> None:
    champion = record("a")
    ledger = [entry(1, "promote", champion, None)]
    plan = plan_outcome(champion=champion, candidate=record("b"), decision=PASS, ledger=ledger)
    assert plan.outcome == "promoted"
    assert [(r.deployment_id, r.reason) for r in plan.retire] == [("dep-a", "superseded champion")]


def test_unchanged_when_the_candidate_is_the_champion_deletes_nothing() -> None:
    champion = record("a")
    ledger = [entry(1, "promote", champion, None)]
    plan = plan_outcome(champion=champion, candidate=champion, decision=PASS, ledger=ledger)
    assert plan.outcome == "unchanged" and not plan.announced
    assert retired(plan) == []


def test_unchanged_model_on_a_new_deployment_deletes_the_new_one() -> None:
    champion = record("a")
    ledger = [entry(1, "promote", champion, None)]
    plan = plan_outcome(
        champion=champion, candidate=record("a", "dep-new"), decision=PASS, ledger=ledger
    )
    assert plan.outcome == "unchanged"
    assert retired(plan) == ["dep-new"]


def test_a_model_rolled_back_from_is_blocked_even_when_the_gate_passes() -> None:
    a, b = record("a"), record("b")
    ledger = [
        entry(1, "promote", a, None),
        entry(2, "promote", b, "a"),
        entry(3, "rollback", a, "b"),
    ]
    plan = plan_outcome(champion=a, candidate=record("b", "dep-b2"), decision=PASS, ledger=ledger)
    assert plan.outcome == "blocked" and plan.announced and plan.new_champion is None
    assert retired(plan) == ["dep-b2", "dep-b"]  # and the rolled-away one, never the champion's
    assert "rolled back" in plan.reason


def test_after_a_rollback_the_next_promotion_deletes_the_rolled_away_deployment() -> None:
    # A promoted, B promoted (A's deployment deleted), rollback to A, A redeployed as a2.
    a, b = record("a"), record("b")
    a2 = record("a", "dep-a2")
    ledger = [
        entry(1, "promote", a, None),
        entry(2, "promote", b, "a"),
        entry(3, "rollback", a, "b"),
        entry(4, "redeploy", a2, "a"),
    ]
    plan = plan_outcome(champion=a2, candidate=record("c"), decision=PASS, ledger=ledger)
    assert plan.outcome == "promoted"
    # dep-b (rolled away from, never deleted) and dep-a2 (the live champion) both go.
    assert set(retired(plan)) == {"dep-b", "dep-a", "dep-a2"}
    assert "dep-c" not in retired(plan)


def test_a_run_after_a_crash_between_promotion_and_deletion_deletes_the_leftover() -> None:
    # The run that promoted b died before deleting a's deployment; the re-run finds b unchanged.
    a, b = record("a"), record("b")
    ledger = [entry(1, "promote", a, None), entry(2, "promote", b, "a")]
    plan = plan_outcome(champion=b, candidate=b, decision=PASS, ledger=ledger)
    assert plan.outcome == "unchanged"
    assert retired(plan) == ["dep-a"]


def test_rejected_and_blocked_runs_also_sweep_earlier_deployments() -> None:
    a, b = record("a"), record("b")
    ledger = [entry(1, "promote", a, None), entry(2, "promote", b, "a")]
    rejected = plan_outcome(champion=b, candidate=record("c"), decision=FAIL, ledger=ledger)
    assert retired(rejected) == ["dep-c", "dep-a"]
    assert "dep-b" not in retired(rejected)  # the champion's stays


def test_ledger_deployments_are_listed_once_oldest_first() -> None:
    a, b = record("a"), record("b")
    ledger = [
        entry(1, "promote", a, None),
        entry(2, "promote", b, "a"),
        entry(3, "rollback", a, "b"),
    ]
    assert ledger_deployments(ledger) == ["dep-a", "dep-b"]
    assert ledger_deployments([]) == []
