"""What a run does once its candidate is evaluated: one pure decision that the flow applies.

`plan_outcome` turns (champion, candidate, gate decision, ledger) into a PromotionPlan: promote,
reject, unchanged or blocked, the champion record to write, and which deployments to delete.

Deployments to delete on a promotion: every deployment the ledger has referenced since the last
promotion (the superseded champion's, a redeployed champion's, and the deployment of a champion
an operator rolled away from), except the new champion's. The previous promotion deleted every
older one, so nothing a ledger entry names outlives two promotions.
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


def deployments_since_last_promotion(ledger: Sequence[LedgerEntry]) -> list[str]:
    """Deployments named by the last promotion and every entry after it, oldest first."""
    last = max((i for i, e in enumerate(ledger) if e.action == "promote"), default=0)
    seen: list[str] = []
    for entry in ledger[last:]:
        if entry.champion.deployment_id not in seen:
            seen.append(entry.champion.deployment_id)
    return seen


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
    discard = (
        (Retirement(deployment_id=own, reason="candidate not promoted"),) if own != serving else ()
    )
    if champion is not None and champion.model_id == candidate.model_id:
        return PromotionPlan(
            outcome="unchanged",
            reason=f"candidate {candidate.model_id} is already the champion",
            retire=discard,
            **common,
        )
    if candidate.model_id in rolled_back_models(ledger):
        return PromotionPlan(
            outcome="blocked",
            reason=f"an operator rolled back from {candidate.model_id}; only `rollback --to` "
            "can make it the champion again",
            retire=discard,
            **common,
        )
    if not decision.promote:
        return PromotionPlan(outcome="rejected", reason=decision.summary, retire=discard, **common)
    stale = deployments_since_last_promotion(ledger)
    if serving is not None and serving not in stale:
        stale.append(serving)
    retire = tuple(
        Retirement(
            deployment_id=d,
            reason="superseded champion" if d == serving else "left by an earlier champion",
        )
        for d in stale
        if d != own
    )
    return PromotionPlan(
        outcome="promoted", reason=decision.summary, new_champion=candidate, retire=retire, **common
    )
