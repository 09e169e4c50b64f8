"""The drift monitor as one Prefect flow: sample new traffic, have the teacher label a bounded
sample, score the champion on it, publish the drift artifact, emit `router.drift`."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from blocks.backends import resolve_storage_ref
from flows.distill import opaque
from flows.parameters import parameters_of
from intent_router.drift import DriftCheck, assess
from intent_router.errors import UserInputError
from intent_router.inputs import check_champion_taxonomy, resolve_traffic
from intent_router.params import MonitorParams
from intent_router.preflight import estimate_monitor_cost
from intent_router.registry import ChampionRegistry
from intent_router.taxonomy import resolve_taxonomy
from intent_router.traffic import MONITOR_CONSUMER, advance_watermark, new_since, sample_traffic
from tasks.monitor import (
    check_monitor_budget,
    emit_drift,
    profile_training_data,
    publish_drift,
    record_check,
    route_sample,
)
from tasks.runtime import Runtime
from tasks.traffic import clean, label_traffic, last_watermark, move_watermark, read_traffic


@flow(
    name="monitor-router",
    description="Check the champion against the teacher on new traffic; emit router.drift "
    "when it drifts.",
)
@parameters_of(MonitorParams)
def monitor_router(**parameters: Any) -> DriftCheck | None:
    """Sample new traffic, label it with the teacher, score the champion, report drift."""
    params = MonitorParams.model_validate(parameters)
    taxonomy = resolve_taxonomy(params.taxonomy)
    router = params.router_name or taxonomy.name
    runtime = Runtime(
        backend=params.backend,
        storage_block=resolve_storage_ref(params.backend, params.storage_block),
    )
    backend = runtime.backend_client()
    champion = ChampionRegistry(runtime.store(), router).current()
    if champion is None:
        raise UserInputError(f"router {router!r} has no champion to monitor")
    check_champion_taxonomy(champion, taxonomy)
    source = resolve_traffic(params, taxonomy)
    if source.kind == "none":
        raise UserInputError(f"the monitor needs traffic; {params.traffic!r} names none")

    cleaned = clean(opaque(read_traffic(source, runtime)), [], params.mask_pii)
    watermark = last_watermark(router, MONITOR_CONSUMER, runtime)
    new = new_since(cleaned.queries, watermark)
    if not new:
        return None
    sample = sample_traffic(new, params.sample_size, params.seed)
    queries = [q.query for q in sample]
    teacher = next(t for t in backend.baselines(taxonomy) if t.role == "teacher")
    target = backend.target_for_deployment(  # called the way it was trained
        champion.deployment_id, "champion", f"champion {champion.model_id}", champion.prompt
    )
    check_monitor_budget(
        estimate_monitor_cost(
            queries,
            taxonomy,
            teacher_model_id=teacher.priced_as,
            champion_model_id=target.priced_as,
        ),
        params.budget_usd,
    )
    labels = label_traffic(opaque(sample), taxonomy, backend.teacher_fingerprint(taxonomy), runtime)
    labelled = list(labels.records)
    predicted = route_sample(target, [r.query for r in labelled], taxonomy, runtime)
    profile = profile_training_data(champion, taxonomy, runtime)

    check = assess(
        router=router,
        champion_model_id=champion.model_id,
        new_queries=len(new),
        queries=[r.query for r in labelled],
        references=[r.weights for r in labelled],
        predicted=predicted,
        signals=taxonomy.signal_names,
        training_tokens=set(profile.tokens) if profile else None,
        training_mix=profile.mix if profile else None,
        thresholds=params.thresholds,
    )
    history = record_check(check, runtime)
    move_watermark(router, advance_watermark(MONITOR_CONSUMER, watermark, new), runtime)
    publish_drift(check, history)
    if check.drifted:
        emit_drift(check, str(flow_run.get_id() or "local"))
    return check
