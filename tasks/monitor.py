"""The drift monitor's steps: profile the champion's training data, route the sample, record
the check, publish it, raise `router.drift`."""

from __future__ import annotations

import json

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel, ConfigDict

from intent_router.backends.base import ModelTarget
from intent_router.drift import DriftCheck, top_signal_mix, vocabulary
from intent_router.errors import CorruptStateError, RouterOutputError
from intent_router.metrics import parse_outputs
from intent_router.preflight import CostEstimate, check_budget
from intent_router.prompts import extract_quoted_query
from intent_router.registry import ChampionRecord
from intent_router.report import artifact_key, markdown_table
from intent_router.schema import parse_routing_output
from intent_router.taxonomy import Taxonomy
from tasks.distill import BACKOFF, JITTER, RETRIES
from tasks.events import emit_router_event
from tasks.runtime import Runtime, retry_if_transient

DRIFT_EVENT = "router.drift"
HISTORY_ROWS = 30


def history_path(router: str) -> str:
    return f"routers/{router}/drift-history.jsonl"


class TrainingProfile(BaseModel):
    """What the champion learned from: its training queries' tokens and top-signal mix."""

    model_config = ConfigDict(frozen=True)

    tokens: frozenset[str]
    mix: dict[str, float]
    queries: int


@task(name="profile-training-data")
def profile_training_data(
    champion: ChampionRecord, taxonomy: Taxonomy, runtime: Runtime
) -> TrainingProfile | None:
    """Read the champion's training JSONL (user queries and teacher answers)."""
    if not champion.training_data:
        get_run_logger().warning(
            "champion %s records no training data: shift figures are skipped", champion.model_id
        )
        return None
    data = runtime.store().read(champion.training_data)
    if data is None:
        raise CorruptStateError(
            f"training data {champion.training_data} of champion {champion.model_id} is missing"
        )
    queries, weights = [], []
    for line in data.decode("utf-8").splitlines():
        record = json.loads(line)
        turns = {m["role"]: m["content"][0]["text"] for m in record["messages"]}
        # distill-prompts records quote the query in the teacher's user message
        queries.append(extract_quoted_query(turns["user"]) or turns["user"])
        if "assistant" in turns:
            try:
                weights.append(
                    parse_routing_output(turns["assistant"], taxonomy.signal_names).weights
                )
            except RouterOutputError:
                continue
    return TrainingProfile(
        tokens=frozenset(vocabulary(queries)),
        mix=top_signal_mix(weights, taxonomy.signal_names),
        queries=len(queries),
    )


@task(
    name="route-sample",
    retries=RETRIES,
    retry_delay_seconds=BACKOFF,
    retry_jitter_factor=JITTER,
    retry_condition_fn=retry_if_transient,
)
def route_sample(
    target: ModelTarget, queries: list[str], taxonomy: Taxonomy, runtime: Runtime
) -> list[dict[str, float] | None]:
    """The champion's weights for each sampled query (None: unparseable answer)."""
    calls = runtime.backend_client().invoke(target, queries, taxonomy)
    decisions = parse_outputs([c.text for c in calls], taxonomy.signal_names)
    return [d.weights if d else None for d in decisions]


@task(name="check-monitor-budget")
def check_monitor_budget(estimate: CostEstimate, budget_usd: float | None) -> None:
    """Stop before the teacher labels the sample if the estimate exceeds the budget."""
    get_run_logger().info("estimated cost of this check $%.4f", estimate.known_usd)
    check_budget(estimate, budget_usd)


@task(name="record-drift-check")
def record_check(check: DriftCheck, runtime: Runtime) -> list[DriftCheck]:
    """Append the check to the router's drift history; return the recent history."""
    store = runtime.store()
    path = history_path(check.router)
    old = store.read(path) or b""
    history = []
    for number, line in enumerate(old.decode("utf-8", errors="replace").splitlines(), start=1):
        try:
            history.append(DriftCheck.model_validate_json(line))
        except ValueError:
            get_run_logger().warning("skipped unreadable line %d of %s", number, path)
    history.append(check)
    if old and not old.endswith(b"\n"):  # a cut-off last line: the check must not join it
        old += b"\n"
    store.write(path, old + (check.model_dump_json() + "\n").encode())
    return history[-HISTORY_ROWS:]


def drift_markdown(check: DriftCheck, history: list[DriftCheck]) -> str:
    over_time = [
        {
            "checked_at": h.checked_at,
            "champion": h.champion_model_id,
            "sample": h.sample,
            "agreement": round(h.agreement, 3),
            "unseen_tokens": round(h.unseen_token_share, 3),
            "mix_shift": round(h.mix_shift, 3),
            "drift": "yes" if h.drifted else "",
        }
        for h in reversed(history)
    ]
    per_signal = [
        {
            "signal": s,
            "recall": round(v, 3),
            "training_mix": round(check.training_mix.get(s, 0.0), 3),
            "predicted_mix": round(check.predicted_mix.get(s, 0.0), 3),
        }
        for s, v in check.per_signal_recall.items()
    ]
    worst = [d.model_dump() | {"error": round(d.error, 3)} for d in check.worst]
    verdict = "; ".join(check.alerts) if check.alerts else "no drift"
    return "\n\n".join(
        [
            f"# Drift of router `{check.router}` ({check.champion_model_id})",
            f"**{verdict}**. {check.sample} of {check.new_queries} new queries sampled; "
            f"agreement with the teacher {check.agreement:.3f} "
            f"(95% CI {check.agreement_ci95[0]:.3f}-{check.agreement_ci95[1]:.3f}); "
            f"{check.unseen_token_share:.1%} of tokens never seen in training; "
            f"top-signal mix shift {check.mix_shift:.3f}.",
            "## Agreement over time",
            markdown_table(over_time),
            "## Per signal",
            markdown_table(per_signal),
            "## Most disagreeing queries",
            markdown_table(worst) if worst else "(none)",
        ]
    )


@task(name="publish-drift")
def publish_drift(check: DriftCheck, history: list[DriftCheck]) -> None:
    """The drift artifact (key drift-<router>)."""
    create_markdown_artifact(
        key=artifact_key("drift", check.router),
        markdown=drift_markdown(check, history),
        description=f"Drift of router {check.router} on new traffic",
    )


@task(name="emit-drift")
def emit_drift(check: DriftCheck, run_id: str) -> None:
    """Emit router.drift so an automation can start a retraining run."""
    emit_router_event(
        DRIFT_EVENT,
        check.router,
        run_id,
        {
            "router": check.router,
            "champion_model_id": check.champion_model_id,
            "agreement": check.agreement,
            "unseen_token_share": check.unseen_token_share,
            "mix_shift": check.mix_shift,
            "sample": check.sample,
            "alerts": list(check.alerts),
        },
    )
    get_run_logger().warning(
        "emitted %s for router %s: %s", DRIFT_EVENT, check.router, "; ".join(check.alerts)
    )
