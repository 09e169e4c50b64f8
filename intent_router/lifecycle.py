"""Lifecycle of the paid resources a run creates: job attempts, tags, the stable deployment,
rejected-model clean-up and what the janitor may remove. Pure functions, plus the small
record of rejected models kept in storage next to the ledger.

- A job that ended Failed or Stopped keeps its name, so a re-run starts attempt 2, 3, ...:
  the name gets `-a<n>` (the base cut to fit the service's 63 characters) and the token is
  derived from the first attempt's token and the attempt number, so a retried submit task
  finds the same attempt instead of starting another.
- Every job, custom model and deployment carries the tags `product`, `router`, `run-id` and
  `dataset-sha256`; the janitor finds leftovers by them.
- One stable deployment per router (`<router>-serving`) serves the champion; a promotion or a
  rollback swaps its model, so the ARN the search service calls stays the same.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from intent_router.backends.base import DistillationRequest
from intent_router.errors import CorruptStateError
from intent_router.registry import ChampionRecord, LedgerEntry, now_iso
from intent_router.storage import ObjectStore

PRODUCT = "router-distill"
PRODUCT_TAG = "product"
ROUTER_TAG = "router"
RUN_TAG = "run-id"
DATASET_TAG = "dataset-sha256"
NAME_LIMIT = 63  # jobName, customModelName and modelDeploymentName: at most 63 characters
DEFAULT_KEEP_REJECTED = 2
"""Rejected candidates' custom models kept per router (the newest), for inspection."""


def resource_tags(router: str, run_id: str, dataset_sha256: str | None = None) -> dict[str, str]:
    """The tags every job, custom model and deployment of a run carries."""
    tags = {PRODUCT_TAG: PRODUCT, ROUTER_TAG: router, RUN_TAG: run_id}
    if dataset_sha256:
        tags[DATASET_TAG] = dataset_sha256
    return tags


# -- attempts ------------------------------------------------------------------------------


def _with_suffix(base: str, suffix: str) -> str:
    """`base` cut so that base + suffix fits NAME_LIMIT, without a separator before suffix."""
    cut = base[: NAME_LIMIT - len(suffix)].rstrip("-_.+")
    return cut + suffix


def attempt_token(token: str, attempt: int) -> str:
    """Attempt 1 keeps the request's token; later attempts derive theirs from it."""
    if attempt == 1:
        return token
    return hashlib.sha256(f"{token}:attempt:{attempt}".encode()).hexdigest()


def attempt_request(request: DistillationRequest, attempt: int) -> DistillationRequest:
    """The request for attempt `attempt` (1: the request itself)."""
    if attempt < 1:
        raise ValueError(f"attempt must be 1 or more, got {attempt}")
    if attempt == 1:
        return request
    suffix = f"-a{attempt}"
    return request.model_copy(
        update={
            "job_name": _with_suffix(request.job_name, suffix),
            "model_name": _with_suffix(request.model_name, suffix),
            "token": attempt_token(request.token, attempt),
            "output_prefix": f"{request.output_prefix.rstrip('/')}/a{attempt}",
        }
    )


# -- the stable deployment -------------------------------------------------------------------


def stable_deployment_name(router: str) -> str:
    """`<router>-serving`, with separators collapsed (deployment names refuse `--`)."""
    base = re.sub(r"-+", "-", router).strip("-") or "router"
    return _with_suffix(base, "-serving")


def deployment_variable_name(router: str) -> str:
    """The Prefect Variable that holds the ARN (or id) the router's champion serves from."""
    return f"router-{router}-deployment-arn"


def ssm_parameter_for(template: str, router: str) -> str:
    """The SSM parameter name for a router: `{router}` in the template is replaced."""
    return template.replace("{router}", router)


def protected_models(ledger: Iterable[LedgerEntry], champion: ChampionRecord | None) -> set[str]:
    """Models never deleted: the champion's and every model a ledger entry names (rollback
    can return to any entry)."""
    models = {e.champion.model_id for e in ledger}
    if champion is not None:
        models.add(champion.model_id)
    return models


# -- rejected models -------------------------------------------------------------------------


class RejectedModel(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_id: str
    run_id: str
    at: str
    deleted: bool = False


class _RejectedFile(BaseModel):
    models: list[RejectedModel]


class RejectedModels:
    """`routers/<router>/rejected.json`: the custom models of rejected candidates, oldest first.

    Written only under the router's lock (the flow's outcome stage holds it)."""

    def __init__(self, store: ObjectStore, router: str) -> None:
        self.store = store
        self.path = f"routers/{router}/rejected.json"

    def entries(self) -> list[RejectedModel]:
        data = self.store.read(self.path)
        if data is None:
            return []
        try:
            return _RejectedFile.model_validate_json(data).models
        except ValidationError:
            raise CorruptStateError(
                f"{self.path} is corrupt; it lists rejected models (fix or remove it)"
            ) from None

    def _write(self, models: Sequence[RejectedModel]) -> None:
        payload = {"models": [m.model_dump() for m in models]}
        self.store.write(self.path, json.dumps(payload, indent=2).encode())

    def add(self, model_id: str, run_id: str) -> None:
        models = self.entries()
        if any(m.model_id == model_id for m in models):
            return
        self._write([*models, RejectedModel(model_id=model_id, run_id=run_id, at=now_iso())])

    def mark_deleted(self, model_ids: Iterable[str]) -> None:
        gone = set(model_ids)
        if gone:
            models = self.entries()
            self._write(
                [
                    m.model_copy(update={"deleted": True}) if m.model_id in gone else m
                    for m in models
                ]
            )


def models_to_delete(
    rejected: Sequence[RejectedModel], keep: int, protected: set[str]
) -> list[str]:
    """Rejected models beyond the newest `keep` (still existing, not protected), oldest first."""
    alive = [m.model_id for m in rejected if not m.deleted and m.model_id not in protected]
    return alive[: max(0, len(alive) - keep)]


def kept_rejected(rejected: Sequence[RejectedModel], keep: int, protected: set[str]) -> set[str]:
    """The rejected models the clean-up keeps on purpose (the newest `keep`)."""
    alive = [m.model_id for m in rejected if not m.deleted and m.model_id not in protected]
    return set(alive[len(alive) - keep :]) if keep > 0 else set()


# -- janitor ---------------------------------------------------------------------------------

Kind = Literal["job", "deployment", "model"]
RunState = Literal["running", "ended", "unknown"]


class TaggedResource(BaseModel):
    """A paid resource this product tagged, as the backend lists it."""

    model_config = ConfigDict(frozen=True)

    kind: Kind
    arn: str
    name: str
    status: str
    tags: dict[str, str]
    model_arn: str | None = None  # a deployment's model

    @property
    def router(self) -> str | None:
        return self.tags.get(ROUTER_TAG)

    @property
    def run_id(self) -> str | None:
        return self.tags.get(RUN_TAG)


class RouterHoldings(BaseModel):
    """What a router still holds: never removed by the janitor. `reason` by ARN or name."""

    model_config = ConfigDict(frozen=True)

    models: dict[str, str] = {}
    deployments: dict[str, str] = {}
    unreadable: str | None = None  # the registry could not be read: keep everything


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    resource: TaggedResource
    orphan: bool
    reason: str


def holdings(
    router: str,
    champion: ChampionRecord | None,
    ledger: Sequence[LedgerEntry],
    rejected: Sequence[RejectedModel],
    keep_rejected: int,
) -> RouterHoldings:
    """The models and deployments a router holds: the champion's, every ledger model
    (rollback), the rejected models kept on purpose, and the stable deployment (by name)."""
    models = dict.fromkeys(sorted({e.champion.model_id for e in ledger}), "in the ledger")
    protected = protected_models(ledger, champion)
    for model_id in kept_rejected(rejected, keep_rejected, protected):
        models[model_id] = f"rejected model kept (keep_rejected_models={keep_rejected})"
    deployments = {stable_deployment_name(router): "stable deployment"}
    if champion is not None:
        models[champion.model_id] = "champion's model"
        deployments[champion.deployment_id] = "champion's deployment"
    return RouterHoldings(models=models, deployments=deployments)


def classify(
    resources: Sequence[TaggedResource],
    held: Mapping[str, RouterHoldings],
    runs: Mapping[str, RunState],
) -> list[Verdict]:
    """Which tagged resources no run or router holds any more (orphans) and why the rest stay.

    A deployment is held by ARN or name; a model also when a kept deployment uses it."""
    verdicts: dict[str, Verdict] = {}
    for r in resources:
        verdicts[r.arn] = _judge(r, held.get(r.router or ""), runs)
    for r in resources:  # a model serving a kept deployment stays
        if r.kind == "deployment" and not verdicts[r.arn].orphan and r.model_arn:
            used = verdicts.get(r.model_arn)
            if used is not None and used.orphan:
                verdicts[r.model_arn] = used.model_copy(
                    update={"orphan": False, "reason": f"used by kept deployment {r.name}"}
                )
    return [verdicts[r.arn] for r in resources]


def _judge(r: TaggedResource, held: RouterHoldings | None, runs: Mapping[str, RunState]) -> Verdict:
    def keep(reason: str) -> Verdict:
        return Verdict(resource=r, orphan=False, reason=reason)

    if held is not None and held.unreadable:
        return keep(f"router's registry unreadable: {held.unreadable}")
    if held is not None and r.kind == "model" and r.arn in held.models:
        return keep(held.models[r.arn])
    if held is not None and r.kind == "deployment":
        for key in (r.arn, r.name):
            if key in held.deployments:
                return keep(held.deployments[key])
    state = runs.get(r.run_id or "", "ended")
    if state == "running":
        return keep(f"run {r.run_id} is still running")
    if state == "unknown":
        return keep(f"state of run {r.run_id} unknown (Prefect API unreachable)")
    if r.run_id is None:
        return Verdict(resource=r, orphan=True, reason="no run-id tag; no router holds it")
    return Verdict(resource=r, orphan=True, reason=f"run {r.run_id} ended; no router holds it")
