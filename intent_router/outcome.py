"""What a run does once its candidate is evaluated: one pure decision that the flow applies.

`plan_outcome` turns (champion, candidate, gate decision, ledger) into a PromotionPlan: promote,
reject, unchanged or blocked, the champion record to write, and which deployments to delete.

Deployments to delete, whatever the outcome: the candidate's unless it serves, and every
deployment a ledger entry names except the one that serves afterwards (the superseded
champion's, a redeployed champion's, that of a champion an operator rolled away from). Deleting
one that is already gone costs a status call and nothing else, so a run that died between the
champion write and the deletions, or whose deletions failed, is cleaned up by the next run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from intent_router.gate import GateDecision
from intent_router.registry import ChampionRecord, LedgerEntry, rolled_back_models

Outcome = Literal["promoted", "rejected", "unchanged", "blocked"]


class Retirement(BaseModel):
    """A deployment to delete and why."""

    model_config = ConfigDict(frozen=True)

    deployment_id: str
    reason: str


class PromotionPlan(BaseModel):
    """The outcome of a run and every change it makes to the registry and the backend."""

    model_config = ConfigDict(frozen=True)

    outcome: Outcome
    reason: str
    candidate: ChampionRecord
    decision: GateDecision
    new_champion: ChampionRecord | None = None
    retire: tuple[Retirement, ...] = ()

    @property
    def announced(self) -> bool:
        """Promotions, rejections and blocks are events; an unchanged run is not."""
        return self.outcome != "unchanged"

    def gate_report(self) -> dict[str, Any]:
        """The gate's verdict as the run summary and the artifacts show it."""
        return {
            "promote": self.decision.promote,
            "summary": self.decision.summary,
            "checks": [c.model_dump() for c in self.decision.checks],
        }


def ledger_deployments(ledger: Sequence[LedgerEntry]) -> list[str]:
    """Every deployment a ledger entry names, oldest first, once each."""
    return list(dict.fromkeys(e.champion.deployment_id for e in ledger))


def _retire(
    deployments: Sequence[str], *, keep: str | None, superseded: str | None
) -> list[Retirement]:
    return [
        Retirement(
            deployment_id=d,
            reason="superseded champion" if d == superseded else "left by an earlier champion",
        )
        for d in deployments
        if d != keep
    ]


def plan_outcome(
    *,
    champion: ChampionRecord | None,
    candidate: ChampionRecord,
    decision: GateDecision,
    ledger: Sequence[LedgerEntry],
) -> PromotionPlan:
    """Decide promote, reject, unchanged or blocked, and what to delete."""
    common: dict[str, Any] = {"candidate": candidate, "decision": decision}
    own = candidate.deployment_id
    serving = champion.deployment_id if champion else None
    history = ledger_deployments(ledger)
    if serving is not None and serving not in history:
        history.append(serving)
    if champion is not None and champion.model_id == candidate.model_id:
        outcome: Outcome = "unchanged"
        reason = f"candidate {candidate.model_id} is already the champion"
    elif candidate.model_id in rolled_back_models(ledger):
        outcome = "blocked"
        reason = (
            f"an operator rolled back from {candidate.model_id}; only `rollback --to` can make "
            "it the champion again"
        )
    elif not decision.promote:
        outcome, reason = "rejected", decision.summary
    else:
        retire = _retire([*history, own], keep=own, superseded=serving)
        return PromotionPlan(
            outcome="promoted",
            reason=decision.summary,
            new_champion=candidate,
            retire=tuple(retire),
            **common,
        )
    discard = (
        [] if own == serving else [Retirement(deployment_id=own, reason="candidate not promoted")]
    )
    stale = _retire([d for d in history if d != own], keep=serving, superseded=None)
    return PromotionPlan(outcome=outcome, reason=reason, retire=(*discard, *stale), **common)


def serve_from(plan: PromotionPlan, deployment_id: str) -> PromotionPlan:
    """A promotion served from `deployment_id` (the router's stable deployment): the champion
    record names it, it is never retired, and the candidate's own deployment is retired."""
    if plan.new_champion is None:
        raise ValueError(f"a {plan.outcome} plan has no champion to serve")
    own = plan.candidate.deployment_id
    retire = [r for r in plan.retire if r.deployment_id != deployment_id]
    if own != deployment_id and all(r.deployment_id != own for r in retire):
        retire.append(
            Retirement(deployment_id=own, reason="candidate's deployment: the stable one serves")
        )
    moved = {"deployment_id": deployment_id}
    return plan.model_copy(
        update={
            "candidate": plan.candidate.model_copy(update=moved),
            "new_champion": plan.new_champion.model_copy(update=moved),
            "retire": tuple(retire),
        }
    )
