"""The distillation pipeline as one Prefect flow. Wiring only: the logic lives in intent_router."""

from __future__ import annotations

import json
import time
from typing import Any, Literal, TypeVar, cast

from prefect import flow, unmapped
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.futures import as_completed
from prefect.logging import get_run_logger
from prefect.runtime import flow_run
from prefect.states import Cancelled
from prefect.utilities.annotations import quote

from blocks.storage import storage_blocks
from flows.approval import ApprovalDeclined, wait_for_approval
from flows.fanout import fan_out
from flows.parameters import parameters_of
from flows.progress import StepProgress
from intent_router.backends.base import ModelTarget
from intent_router.dataset import check_record_count
from intent_router.gate import decide
from intent_router.params import DistillParams
from intent_router.planning import distillation_request, plan_generation
from intent_router.registry import ChampionRecord, ChampionRegistry, now_iso
from intent_router.report import (
    DatasetSummary,
    EvaluationRow,
    RunSummary,
    evaluation_table,
    markdown_table,
)
from intent_router.taxonomy import Taxonomy, resolve_taxonomy
from tasks.dataset import build_datasets, merge_and_dedupe
from tasks.distill import (
    delete_deployment,
    deploy_model,
    ensure_champion_deployed,
    submit_distillation,
    wait_for_deployment,
    wait_for_job,
)
from tasks.evaluate import PRIOR_PREFIX, EvaluationResult, evaluate_model
from tasks.generate import BatchOutput, generate_batch
from tasks.preflight import preflight
from tasks.promote import announce, promote_candidate, publish_ledger
from tasks.runtime import Runtime, code_version

T = TypeVar("T")


def opaque(value: T) -> T:
    """Pass a large input without Prefect walking every record for futures (prefect `quote`).

    The task still receives the plain value; typed as T so call sites keep their types.
    """
    return cast(T, quote(value))


def _taxonomy(params: DistillParams) -> Taxonomy:
    return params.taxonomy_definition or resolve_taxonomy(params.taxonomy)


@flow(
    name="distill-router",
    description="Distill the teacher into a student router; "
    "promote it only if it routes well enough.",
)
@parameters_of(DistillParams)
def distill_router(**parameters: Any) -> RunSummary:
    """Generate and label queries, dedupe, build the dataset, distill, deploy, evaluate, gate."""
    params = DistillParams.model_validate(parameters)
    logger = get_run_logger()
    clock: dict[str, float] = {}
    started = time.perf_counter()

    taxonomy = _taxonomy(params)
    router = params.router_name or taxonomy.name
    runtime = Runtime(backend=params.backend, storage_block=params.storage_block)
    _, results_block = storage_blocks(params.storage_block)
    backend = runtime.backend_client()
    check_record_count(params.train_count, backend.limits)
    store = runtime.store()
    registry = ChampionRegistry(store, router)

    # 0. Preflight: cost estimate and budget, before the first paid call.
    preflight(params, taxonomy, runtime)

    # 1. Generate and label batches in parallel (cached per batch).
    plan = plan_generation(params, taxonomy)
    generate = generate_batch.with_options(result_storage=results_block)
    version = code_version()
    outputs = _generate_batches(
        list(plan.all_batches), generate, taxonomy, version, runtime, params.task_runner
    )
    train_outputs = outputs[: len(plan.train_batches)]
    holdout_outputs = outputs[len(plan.train_batches) :]
    clock["generate"] = time.perf_counter() - started

    # 2. Merge, dedupe, split; build and validate the datasets.
    merge = merge_and_dedupe.with_options(result_storage=results_block)
    split = merge(
        version,
        opaque(train_outputs),
        opaque(holdout_outputs),
        params.train_count,
        plan.cell_targets,
        params.near_duplicate_threshold,
    )
    train_ref, holdout_ref = build_datasets(
        opaque(split), taxonomy, router, backend.limits, runtime
    )
    clock["dataset"] = time.perf_counter() - started - sum(clock.values())

    # 3. Distill (idempotent submit) and wait.
    request = distillation_request(
        router=router,
        dataset_sha256=train_ref.sha256,
        training_path=train_ref.path,
        training_uri=train_ref.uri,
        output_prefix=f"jobs-output/{router}",
        taxonomy=taxonomy,
        backend_name=backend.name,
        student_config={"backend": params.backend},
    )
    if params.require_approval:
        try:
            wait_for_approval(
                f"router {router}, {train_ref.records} training examples on {backend.name}",
                params.approval_timeout_seconds,
            )
        except ApprovalDeclined as declined:
            logger.warning("run cancelled before the distillation job: %s", declined)
            # Prefect ends the run in the returned state; a direct caller gets CancelledRun.
            return cast(RunSummary, Cancelled(message=f"not approved: {declined}"))
    job_id = submit_distillation(request, taxonomy, runtime)
    job = wait_for_job(
        job_id, runtime, params.poll_interval_seconds, params.job_timeout_minutes * 60
    )
    assert job.model_id is not None
    clock["distill"] = time.perf_counter() - started - sum(clock.values())

    # 4. Deploy, evaluate, gate. A deployment that is not promoted never outlives the run.
    champion = registry.current()
    if champion is not None:  # a rollback may point at a model whose deployment was deleted
        champion = ensure_champion_deployed(
            champion, runtime, params.poll_interval_seconds, params.job_timeout_minutes * 60
        )
    unchanged = champion is not None and champion.model_id == job.model_id
    deployment_id: str | None = champion.deployment_id if unchanged and champion else None
    keep_deployment = unchanged
    try:
        if deployment_id is None:
            deployment_id = deploy_model(job.model_id, request.model_name, request.token, runtime)
            wait_for_deployment(
                deployment_id,
                runtime,
                params.poll_interval_seconds,
                params.job_timeout_minutes * 60,
            )
        candidate = backend.target_for_deployment(
            deployment_id, "candidate", f"candidate {request.model_name}"
        )
        targets = [candidate, *backend.baselines(taxonomy), _prior(split.train, taxonomy)]
        if champion is not None and not unchanged:
            targets.append(_champion_target(backend, champion))
        evaluations: list[EvaluationResult] = []
        with StepProgress(
            "evaluation-progress", "Evaluating on the holdout", len(targets)
        ) as progress:
            for target in targets:
                evaluations.append(evaluate_model(target, opaque(split.holdout), taxonomy, runtime))
                progress.advance()
        clock["evaluate"] = time.perf_counter() - started - sum(clock.values())

        by_role = {e.target.role: e for e in evaluations}
        champion_eval = by_role["champion"].overall if "champion" in by_role else None
        decision = decide(by_role["candidate"].overall, champion_eval, params.gate)
        if unchanged:
            outcome = "unchanged"
            logger.info("candidate %s is already the champion; nothing to promote", job.model_id)
        elif decision.promote:
            record = ChampionRecord(
                router=router,
                model_id=job.model_id,
                deployment_id=deployment_id,
                run_id=str(flow_run.get_id() or "local"),
                taxonomy=taxonomy.name,
                signals=taxonomy.signal_names,
                metrics=_metrics(by_role["candidate"]),
                promoted_at=now_iso(),
                triggered_by=params.triggered_by,
            )
            promote_candidate(record, runtime, note=decision.summary)
            keep_deployment = True
            outcome = "promoted"
            if champion is not None and champion.deployment_id != deployment_id:
                delete_deployment(champion.deployment_id, runtime, "superseded champion")
        else:
            outcome = "rejected"
            logger.warning("candidate rejected: %s", decision.summary)
        if outcome != "unchanged":
            announce(
                outcome,
                router=router,
                run_id=str(flow_run.get_id() or "local"),
                model_id=job.model_id,
                taxonomy=taxonomy.name,
                metrics=_metrics(by_role["candidate"]),
                previous_champion=champion.model_id if champion else None,
                summary=decision.summary,
            )
    finally:
        if deployment_id is not None and not keep_deployment:
            delete_deployment(deployment_id, runtime, "candidate not promoted")
    clock["total"] = time.perf_counter() - started

    summary = RunSummary(
        router=router,
        taxonomy=taxonomy.name,
        backend=backend.name,
        flow_run_id=str(flow_run.get_id()) if flow_run.get_id() else None,
        dataset=_dataset_summary(train_outputs, holdout_outputs, split, train_ref, holdout_ref),
        job_id=job_id,
        model_id=job.model_id,
        model_uri=backend.artifact_uri(job.model_id),
        deployment_id=deployment_id if keep_deployment else None,
        evaluations=[EvaluationRow(overall=e.overall, slices=e.slices) for e in evaluations],
        gate={
            "promote": decision.promote,
            "summary": decision.summary,
            "checks": [c.model_dump() for c in decision.checks],
        },
        outcome=outcome,
        champion_model_id=_champion_model_id(registry.current() or champion),
        seconds={k: round(v, 2) for k, v in clock.items()},
    )
    _publish_artifacts(summary, split.dedupe_report)
    publish_ledger(router, registry.ledger())
    return summary


def _generate_batches(
    batches: list[Any],
    generate: Any,
    taxonomy: Taxonomy,
    version: str,
    runtime: Runtime,
    task_runner: Literal["threads", "dask"],
) -> list[BatchOutput]:
    """Fan the batches out on the flow's thread pool or on Dask; report progress as they land."""
    with (
        StepProgress(
            "generation-progress", "Generating and labelling batches", len(batches)
        ) as progress,
        fan_out(task_runner) as runner,
    ):
        if runner is None:
            futures = generate.map(
                batches, unmapped(taxonomy), unmapped(version), unmapped(runtime)
            )
        else:
            futures = runner.map(
                generate,
                {
                    "batch": batches,
                    "taxonomy": unmapped(taxonomy),
                    "code_version": unmapped(version),
                    "runtime": unmapped(runtime),
                },
            )
        for _ in as_completed(futures):
            progress.advance()
        return [f.result() for f in futures]


def _champion_model_id(record: ChampionRecord | None) -> str | None:
    return record.model_id if record else None


def _prior(train: Any, taxonomy: Taxonomy) -> ModelTarget:
    signals = taxonomy.signal_names
    totals = {s: 0.0 for s in signals}
    for record in train:
        for s in signals:
            totals[s] += record.weights[s]
    count = max(1, len(train))
    weights = {s: round(totals[s] / count, 4) for s in signals}
    drift = round(1.0 - sum(weights.values()), 4)
    weights[signals[0]] = round(weights[signals[0]] + drift, 4)
    return ModelTarget(
        name="prior (training mean)",
        role="prior",
        ref=PRIOR_PREFIX + json.dumps(weights),
        prompt="student",
        priced_as="local",
    )


def _champion_target(backend: Any, champion: ChampionRecord) -> ModelTarget:
    target: ModelTarget = backend.target_for_deployment(
        champion.deployment_id, "champion", f"champion {champion.model_id}"
    )
    return target


def _metrics(result: EvaluationResult) -> dict[str, Any]:
    e = result.overall
    return {
        "top_signal_accuracy": e.top_signal_accuracy,
        "mean_rubric": e.mean_rubric,
        "mean_mae": e.mean_mae,
        "parse_rate": e.parse_rate,
        "n": e.n,
    }


def _dataset_summary(
    train_outputs: list[BatchOutput],
    holdout_outputs: list[BatchOutput],
    split: Any,
    train_ref: Any,
    holdout_ref: Any,
) -> DatasetSummary:
    report = split.dedupe_report
    exact = {
        s: sum(int(r["exact_dropped"]) for r in report if r["split"] == s)
        for s in ("train", "holdout")
    }
    near = {
        s: sum(int(r["near_dropped"]) for r in report if r["split"] == s)
        for s in ("train", "holdout")
    }
    return DatasetSummary(
        requested_train=split.requested_train,
        generated_train=sum(len(o.records) for o in train_outputs),
        generated_holdout=sum(len(o.records) for o in holdout_outputs),
        teacher_calls=sum(o.teacher_calls for o in train_outputs + holdout_outputs),
        teacher_invalid_dropped=sum(o.dropped_invalid for o in train_outputs + holdout_outputs),
        exact_dropped=exact,
        near_dropped=near,
        holdout_dropped_near_train=sum(int(r["near_train_dropped"]) for r in report),
        surplus_trimmed=split.trimmed_surplus,
        train_records=train_ref.records,
        holdout_records=holdout_ref.records,
        holdout_novel_vocabulary=sum(1 for r in split.holdout if r.vocabulary == "heldout"),
        train_uri=train_ref.uri,
        holdout_uri=holdout_ref.uri,
        train_sha256=train_ref.sha256,
        train_bytes=train_ref.bytes,
        per_cell=list(report),
    )


def _publish_artifacts(summary: RunSummary, dedupe_report: Any) -> None:
    create_table_artifact(
        key="dataset-summary",
        table=list(dedupe_report),
        description=f"Generated, deduped and kept queries per cell ({summary.router})",
    )
    table = evaluation_table(summary.evaluations)
    create_table_artifact(
        key="evaluation",
        table=table,
        description="Candidate and baselines on the holdout (reference: teacher)",
    )
    checks = "\n".join(
        f"- {'PASS' if c['passed'] else 'FAIL'} {c['detail']}" for c in summary.gate["checks"]
    )
    create_markdown_artifact(
        key="promotion-report",
        markdown=f"# Router `{summary.router}`: {summary.outcome}\n\n"
        f"Model `{summary.model_id}` from job `{summary.job_id}`.\n\n"
        f"## Gate\n{checks}\n\n## Evaluation\n{markdown_table(table)}\n\n"
        f"Champion now: `{summary.champion_model_id or 'none'}`\n",
    )
    create_link_artifact(
        key="training-dataset", link=summary.dataset.train_uri, link_text="training JSONL"
    )
    if summary.model_uri:
        create_link_artifact(
            key="student-model", link=summary.model_uri, link_text="student artifact"
        )
