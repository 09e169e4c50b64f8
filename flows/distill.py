"""The distillation pipeline as one Prefect flow: stage calls only; decisions live in
intent_router (`plan_outcome`, `decide`), each side effect in a task (tasks/)."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar, cast

from prefect import flow, unmapped
from prefect.client.schemas.objects import State
from prefect.filesystems import WritableFileSystem
from prefect.futures import PrefectFuture, as_completed
from prefect.logging import get_run_logger
from prefect.runtime import flow_run
from prefect.states import Cancelled
from prefect.utilities.annotations import quote

from blocks.backends import check_storage_fits_backend
from blocks.storage import storage_blocks
from flows.approval import ApprovalDeclined, wait_for_approval
from flows.artifacts import publish_run_artifacts
from flows.cleanup import tear_down_run
from flows.fanout import fan_out
from flows.locking import router_lock
from flows.parameters import parameters_of
from flows.progress import StepProgress
from intent_router.backends.base import (
    Backend,
    DistillationRequest,
    JobStatus,
    JudgingBackend,
    ModelTarget,
)
from intent_router.dataset import LabelledQuery, check_record_count
from intent_router.evaluation import (
    TRAFFIC,
    EvaluationResult,
    cascade_policy,
    check_cascade_fallback,
    prior_source,
    prior_target,
    prior_weights,
)
from intent_router.gate import GoldenEvidence, decide
from intent_router.golden import GoldenSet
from intent_router.inputs import resolve_golden, resolve_traffic
from intent_router.lifecycle import RUN_TAG, resource_tags
from intent_router.outcome import PromotionPlan, plan_outcome, serve_from
from intent_router.params import DistillParams
from intent_router.planning import (
    GenerationPlan,
    distillation_request,
    plan_generation,
    split_traffic,
    training_seed,
)
from intent_router.registry import (
    ChampionRecord,
    ChampionRegistry,
    LedgerEntry,
    best_entry,
    now_iso,
    rolled_back_models,
)
from intent_router.report import EvaluationRow, RunSummary, TrafficSummary, artifact_key
from intent_router.taxonomy import Taxonomy, resolve_taxonomy
from intent_router.traffic import (
    TRAIN_CONSUMER,
    TrafficQuery,
    TrafficSource,
    Watermark,
    advance_watermark,
    new_since,
)
from intent_router.training_modes import (
    TrainingMode,
    check_training_mode,
    choose_examples,
    invocation_logs_source,
    teacher_response_tokens,
)
from tasks.dataset import (
    DatasetRef,
    SplitOutput,
    build_datasets,
    merge_and_dedupe,
    summarise_dataset,
)
from tasks.distill import (
    delete_deployment,
    deploy_model,
    ensure_champion_deployed,
    submit_distillation,
    wait_for_deployment,
    wait_for_job,
)
from tasks.evaluate import evaluate_model, judge_models
from tasks.generate import BatchOutput, generate_batch, label_examples
from tasks.lifecycle import clean_up_rejected_models, publish_serving, serve_on_stable_deployment
from tasks.preflight import check_run_inputs, preflight
from tasks.promote import announce, promote_candidate, publish_ledger
from tasks.runtime import Runtime, code_version
from tasks.traffic import (
    TrafficLabels,
    clean,
    label_traffic,
    last_watermark,
    move_watermark,
    read_traffic,
    unlabelled,
)

T = TypeVar("T")


def opaque(value: T) -> T:
    """Pass a large input without Prefect walking every record for futures (prefect `quote`)."""
    return cast(T, quote(value))


@dataclass
class Run:
    """What every stage of one run needs: resolved once at the start."""

    params: DistillParams
    taxonomy: Taxonomy
    router: str
    runtime: Runtime
    backend: Backend
    registry: ChampionRegistry
    run_id: str
    results_block: WritableFileSystem  # task results (label and dedupe caches) persist here
    mode: TrainingMode = TrainingMode.FINE_TUNE_LABELLED
    invocation_logs: str | None = None  # distill-invocation-logs: where the job reads from
    golden: GoldenSet | None = None
    traffic: Traffic | None = None
    started: float = field(default_factory=time.perf_counter)
    seconds: dict[str, float] = field(default_factory=dict)

    def lap(self, stage: str) -> None:
        self.seconds[stage] = round(
            time.perf_counter() - self.started - sum(self.seconds.values()), 2
        )

    @property
    def wait_s(self) -> float:
        return self.params.job_timeout_minutes * 60


@dataclass
class Traffic:
    """The traffic a run uses, read and cleaned at the start (nothing paid yet)."""

    source: TrafficSource
    summary: TrafficSummary  # counts so far; labels and split are filled in later
    train: list[TrafficQuery]  # older traffic, capped to the traffic share of train_count
    holdout: list[TrafficQuery]  # the newest slice
    previous: Watermark | None  # where the router's last run stopped reading
    new: list[TrafficQuery]  # what arrived since


@dataclass
class TrainingData:
    train_outputs: list[BatchOutput]
    holdout_outputs: list[BatchOutput]
    fresh_teacher_calls: int  # made by this run (cached batches cost nothing)
    cached_batches: int
    split: SplitOutput
    train_ref: DatasetRef  # distill-invocation-logs: describes the logs (no file, 0 records)
    holdout_ref: DatasetRef
    traffic: TrafficSummary | None = None
    example_calls: int = 0  # teacher calls for distill-prompts' curated examples


@flow(
    name="distill-router",
    description="Distill the teacher into a student router; "
    "promote it only if it routes well enough.",
    on_crashed=[tear_down_run],
    on_cancellation=[tear_down_run],
)
@parameters_of(DistillParams)
def distill_router(**parameters: Any) -> RunSummary:
    """Generate and label queries, dedupe, build the dataset, distill, deploy, evaluate, gate."""
    run = start(DistillParams.model_validate(parameters))
    data = build_training_data(run)
    declined = ask_approval(run, data)
    if declined is not None:
        return cast(RunSummary, declined)  # Prefect ends the run Cancelled
    job = train_student(run, data)
    with router_lock(run.router, run.wait_s):
        champion = restore_champion(run)
        candidate = deploy_candidate(run, data, job, champion)
        try:
            evaluations = evaluate_all(run, data, candidate, champion)
            candidate = with_cascade(run, data, candidate, evaluations)
            plan = decide_outcome(run, candidate, champion, evaluations)
            plan = apply_outcome(run, data, plan, champion)
        except BaseException:
            discard_candidate(run, candidate)
            raise
    return finish(run, data, job, evaluations, plan)


# -- stages ----------------------------------------------------------------------------------


def start(params: DistillParams) -> Run:
    """Resolve the taxonomy, router, backend, storage, golden set and traffic; check them;
    estimate the cost. Everything here happens before the first paid call."""
    check_storage_fits_backend(params.backend, params.storage_block)  # paid backend: S3 only
    taxonomy = params.taxonomy_definition or resolve_taxonomy(params.taxonomy)
    golden = resolve_golden(params.golden, taxonomy, required=params.require_golden)
    scheduled = flow_run.get_scheduled_start_time()
    params = params.model_copy(
        update={"seed": training_seed(params, scheduled.date() if scheduled else None)}
    )
    runtime = Runtime.for_params(params)
    backend = runtime.backend_client()
    mode = check_training_mode(
        params.training_mode, backend.name, backend.default_training_mode, backend.training_modes
    )
    check_record_count(params.train_count, backend.limits)
    check_cascade_fallback(params.cascade_fallback, backend.baselines(taxonomy))
    router = params.router_name or taxonomy.name
    run = Run(
        params=params,
        taxonomy=taxonomy,
        router=router,
        runtime=runtime,
        backend=backend,
        registry=ChampionRegistry(runtime.store(), router),
        run_id=str(flow_run.get_id() or "local"),
        results_block=storage_blocks(runtime.storage_block)[1],
        mode=mode,
        invocation_logs=_invocation_logs(params, mode, taxonomy),
        golden=golden,
    )
    check_run_inputs(router, runtime)  # storage writable, registry readable: before any paid call
    run.traffic = gather_traffic(run)
    preflight(
        params,
        taxonomy,
        runtime,
        mode=run.mode,
        traffic_queries=_queries_to_label(run),
        extra_eval_queries=_extra_eval_queries(run),
    )
    return run


def gather_traffic(run: Run) -> Traffic | None:
    """Read and clean the run's traffic, split off the newest slice; nothing is paid here."""
    params = run.params
    source = resolve_traffic(params, run.taxonomy)
    if source.kind == "none":
        return None
    raw = read_traffic(source, run.runtime)
    golden_queries = run.golden.queries if run.golden else []
    cleaned = clean(opaque(raw), golden_queries, params.mask_pii)
    watermark = last_watermark(run.router, TRAIN_CONSUMER, run.runtime)
    new = new_since(cleaned.queries, watermark)
    train, holdout = split_traffic(
        list(cleaned.queries),
        holdout_share=params.traffic_holdout_share,
        train_cap=int(params.train_count * params.traffic_share),
    )
    report = raw.report
    summary = TrafficSummary(
        source=source.location,
        read=len(raw.queries),
        skipped_lines=report.non_utf8 + report.too_long + report.unparseable + report.empty,
        kept=len(cleaned.queries),
        cleaning=dict(cleaned.counts),
        new_since_last_run=len(new),
        last_run_watermark=_watermark_text(watermark),
        teacher_calls=0,
        cached_labels=0,
        invalid_labels=0,
        train=len(train),
        holdout=len(holdout),
    )
    return Traffic(
        source=source, summary=summary, train=train, holdout=holdout, previous=watermark, new=new
    )


def build_training_data(run: Run) -> TrainingData:
    """Generate and label batches in parallel (cached), merge, dedupe, split, build datasets."""
    plan = plan_generation(run.params, run.taxonomy)
    labels = _label_traffic(run)
    outputs, fresh_calls, cached = _generate_batches(run, plan)
    train_outputs = outputs[: len(plan.train_batches)]
    holdout_outputs = outputs[len(plan.train_batches) :]
    run.lap("generate")
    held_out = {q.query for q in run.traffic.holdout} if run.traffic else set()
    records = (labels.records if labels else ()) + _unlabelled_traffic(run)
    merge = merge_and_dedupe.with_options(
        result_storage=run.results_block, cache_expiration=_cache_age(run.params)
    )
    split = merge(
        code_version(),
        opaque(train_outputs),
        opaque(holdout_outputs),
        run.params.train_count,
        plan.cell_targets,
        run.params.near_duplicate_threshold,
        traffic_train=opaque(tuple(r for r in records if r.query not in held_out)),
        traffic_holdout=opaque(tuple(r for r in records if r.query in held_out)),
        exclude=tuple(run.golden.queries) if run.golden else (),
    )
    examples, example_calls = _label_examples(run, split)
    train_file, holdout_ref = build_datasets(
        opaque(split),
        run.taxonomy,
        run.router,
        run.backend.limits,
        run.runtime,
        mode=run.mode,
        examples=examples,
    )
    train_ref = train_file or invocation_logs_ref(run.invocation_logs or "", run.params)
    run.lap("dataset")
    return TrainingData(
        train_outputs,
        holdout_outputs,
        fresh_calls + example_calls,
        cached,
        split,
        train_ref,
        holdout_ref,
        traffic=_traffic_summary(run, labels, split),
        example_calls=example_calls,
    )


def ask_approval(run: Run, data: TrainingData) -> State[Any] | None:
    """With require_approval, wait for a reviewer; a Cancelled state if nobody approved."""
    if not run.params.require_approval:
        return None
    try:
        wait_for_approval(
            f"router {run.router}, {data.train_ref.records} training examples on "
            f"{run.backend.name}",
            run.params.approval_timeout_seconds,
        )
    except ApprovalDeclined as declined:
        get_run_logger().warning("run cancelled before the distillation job: %s", declined)
        return Cancelled(message=f"not approved: {declined}")
    return None


def train_student(run: Run, data: TrainingData) -> JobStatus:
    """Submit the distillation job (idempotent) and wait for it."""
    request = _request(run, data)
    job_id = submit_distillation(request, run.taxonomy, run.runtime, run.run_id)
    job = wait_for_job(
        job_id, run.runtime, run.params.poll_interval_seconds, run.wait_s, run.router
    )
    run.lap("distill")
    return job


def restore_champion(run: Run) -> ChampionRecord | None:
    """The champion, redeployed first if it lost its deployment (e.g. after a rollback)."""
    champion = run.registry.current()
    if champion is None:
        return None
    restored = ensure_champion_deployed(
        champion, run.runtime, run.params.poll_interval_seconds, run.wait_s
    )
    if restored.deployment_id != champion.deployment_id:
        publish_serving(run.router, restored.deployment_id, run.runtime)
    return restored


def deploy_candidate(
    run: Run, data: TrainingData, job: JobStatus, champion: ChampionRecord | None
) -> ChampionRecord:
    """Deploy the trained model (unless it is already the champion) and wait until active."""
    assert job.model_id is not None
    if champion is not None and champion.model_id == job.model_id:
        deployment_id = champion.deployment_id
    else:
        request = _request(run, data)
        deployment_id = deploy_model(
            job.model_id,
            request.model_name,
            request.token,
            run.runtime,
            run_id=run.run_id,
            tags=_tags(run, data),
        )
        try:
            wait_for_deployment(
                deployment_id, run.runtime, run.params.poll_interval_seconds, run.wait_s
            )
        except BaseException:
            delete_deployment(deployment_id, run.runtime, "deployment never became active")
            raise
    return ChampionRecord(
        router=run.router,
        model_id=job.model_id,
        deployment_id=deployment_id,
        run_id=run.run_id,
        taxonomy=run.taxonomy.name,
        signals=run.taxonomy.signal_names,
        metrics={},
        promoted_at=now_iso(),
        triggered_by=run.params.triggered_by,
        training_data=data.train_ref.path or None,
        training_mode=run.mode.value,
        prompt=run.mode.student_prompt,
        prior=prior_weights(prior_source(data.split), run.taxonomy),
    )


def evaluate_all(
    run: Run, data: TrainingData, candidate: ChampionRecord, champion: ChampionRecord | None
) -> list[EvaluationResult]:
    """Evaluate the candidate and every baseline (and the champion) on the same sets: the
    synthetic holdout, the traffic slice and the golden set."""
    backend = run.backend
    targets: list[ModelTarget] = [
        backend.target_for_deployment(
            candidate.deployment_id,
            "candidate",
            f"candidate {candidate.model_id}",
            candidate.prompt,
        ),
        *backend.baselines(run.taxonomy),
        prior_target(prior_source(data.split), run.taxonomy),
    ]
    if champion is not None and champion.model_id != candidate.model_id:
        targets.append(
            backend.target_for_deployment(
                champion.deployment_id, "champion", f"champion {champion.model_id}", champion.prompt
            )
        )
    judging = isinstance(backend, JudgingBackend) and backend.judging_enabled()
    if not judging:
        get_run_logger().info("no judge job: the %s backend runs none here", backend.name)
    holdout = opaque(data.split.holdout)
    with StepProgress(
        artifact_key("evaluation-progress", run.router), "Evaluating the models", len(targets)
    ) as progress:
        if backend.paid:
            # Remote calls overlap: every target at once, the global Converse limit bounds
            # the calls in flight. Local answers are in-process CPU work: one at a time, so
            # the latency each measures is not inflated by the others.
            futures = [
                evaluate_model.submit(
                    target, holdout, run.taxonomy, run.runtime, run.golden, judging
                )
                for target in targets
            ]
            for _ in as_completed(futures):
                progress.advance()
            results = [f.result() for f in futures]
        else:
            results = []
            for target in targets:
                results.append(
                    evaluate_model(target, holdout, run.taxonomy, run.runtime, run.golden)
                )
                progress.advance()
    if judging:
        results = judge_models(
            results,
            holdout,
            run.taxonomy,
            run.runtime,
            f"{run.router}-{run.run_id[:8]}",
            run.params.poll_interval_seconds,
            run.wait_s,
        )
    run.lap("evaluate")
    return results


def with_cascade(
    run: Run, data: TrainingData, candidate: ChampionRecord, evaluations: list[EvaluationResult]
) -> ChampionRecord:
    """Calibrate the candidate's confidence and choose its cascade threshold on the holdout."""
    by_role = {e.target.role: e for e in evaluations}
    fallback = by_role.get(run.params.cascade_fallback)
    if fallback is None:  # checked at the start; a backend without baselines has none
        return candidate
    policy = cascade_policy(
        by_role["candidate"],
        fallback,
        data.split.holdout,
        run.taxonomy,
        run.golden,
        target_accuracy=run.params.cascade_target_accuracy,
    )
    if policy is not None:
        get_run_logger().info(
            "cascade: threshold %.2f answers %.1f%% locally at %.3f holdout accuracy "
            "(target %.3f; golden %s)",
            policy.threshold,
            100 * policy.chosen.local_share,
            policy.chosen.accuracy,
            policy.target_accuracy,
            "n/a" if policy.chosen.golden_accuracy is None else policy.chosen.golden_accuracy,
        )
    return candidate.model_copy(update={"cascade": policy})


def decide_outcome(
    run: Run,
    candidate: ChampionRecord,
    champion: ChampionRecord | None,
    evaluations: list[EvaluationResult],
) -> PromotionPlan:
    """Gate the candidate, then plan promote / reject / unchanged / blocked (pure)."""
    by_role = {e.target.role: e for e in evaluations}
    champion_eval = by_role["champion"].overall if "champion" in by_role else None
    ledger = run.registry.ledger()
    candidate_eval = by_role["candidate"]
    assert candidate_eval.overall is not None  # the flow always has a synthetic holdout
    decision = decide(
        candidate_eval.overall,
        champion_eval,
        run.params.gate,
        golden=golden_evidence(candidate_eval, by_role.get("champion"), ledger),
        rolled_back=candidate.model_id in rolled_back_models(ledger),
    )
    scored = candidate.model_copy(
        update={"metrics": candidate_eval.metrics(), "promoted_at": now_iso()}
    )
    plan = plan_outcome(champion=champion, candidate=scored, decision=decision, ledger=ledger)
    get_run_logger().info("outcome %s: %s", plan.outcome, plan.reason)
    return plan


def golden_evidence(
    candidate: EvaluationResult, champion: EvaluationResult | None, ledger: list[LedgerEntry]
) -> GoldenEvidence | None:
    """Golden figures for the gate: the candidate's, the champion's (scored this run) and the
    best promotion's on the same golden version (from the ledger)."""
    golden = candidate.golden
    if golden is None:
        return None
    same_version = [
        e for e in ledger if e.champion.metrics.get("golden_version") == golden.golden_version
    ]
    best = best_entry(same_version, "golden_strict_top1")
    return GoldenEvidence(
        version=golden.golden_version,
        n=golden.n,
        candidate=golden.strict_top1,
        champion=champion.golden.strict_top1 if champion and champion.golden else None,
        best=float(best.champion.metrics["golden_strict_top1"]) if best else None,
        best_model=best.champion.model_id if best else None,
    )


def apply_outcome(
    run: Run, data: TrainingData, plan: PromotionPlan, champion: ChampionRecord | None
) -> PromotionPlan:
    """Serve a promoted candidate from the stable deployment, write the champion and ledger,
    publish where it serves, delete what the plan retires (and rejected models beyond the
    kept ones), then announce. Returns the plan as applied."""
    if plan.new_champion is not None:
        note = plan.reason
        if run.backend.stable_deployments:
            serving = serve_on_stable_deployment(
                run.router,
                plan.new_champion.model_id,
                plan.candidate.deployment_id,
                run.runtime,
                tags=_tags(run, data),
                interval_s=run.params.poll_interval_seconds,
                timeout_s=run.wait_s,
            )
            plan = serve_from(plan, serving.deployment_id)
            note = f"{plan.reason}; {serving.note}"
        assert plan.new_champion is not None
        promote_candidate(plan.new_champion, run.runtime, note=note)
        publish_serving(run.router, plan.new_champion.deployment_id, run.runtime)
    for retirement in plan.retire:
        delete_deployment(retirement.deployment_id, run.runtime, retirement.reason)
    if plan.outcome == "rejected":
        clean_up_rejected_models(run.router, plan.candidate.model_id, run.run_id, run.runtime)
    if plan.announced:
        announce(
            plan.outcome,
            router=run.router,
            run_id=run.run_id,
            model_id=plan.candidate.model_id,
            taxonomy=run.taxonomy.name,
            metrics=plan.candidate.metrics,
            previous_champion=champion.model_id if champion else None,
            summary=plan.reason,
        )
    return plan


def discard_candidate(run: Run, candidate: ChampionRecord) -> None:
    """The run failed after deploying: delete the candidate's deployment unless it serves."""
    current = run.registry.current()
    if current is None or candidate.deployment_id != current.deployment_id:
        delete_deployment(candidate.deployment_id, run.runtime, "run failed before its outcome")


def finish(
    run: Run,
    data: TrainingData,
    job: JobStatus,
    evaluations: list[EvaluationResult],
    plan: PromotionPlan,
) -> RunSummary:
    """Assemble the summary and publish the run's artifacts and the ledger."""
    run.seconds["total"] = round(time.perf_counter() - run.started, 2)
    current = run.registry.current()
    candidate = plan.candidate
    retired = {r.deployment_id for r in plan.retire}
    summary = RunSummary(
        router=run.router,
        taxonomy=run.taxonomy.name,
        backend=run.backend.name,
        training_mode=run.mode.value,
        flow_run_id=run.run_id if run.run_id != "local" else None,
        dataset=summarise_dataset(
            train_outputs=data.train_outputs,
            holdout_outputs=data.holdout_outputs,
            teacher_calls=data.fresh_teacher_calls,
            cached_batches=data.cached_batches,
            split=data.split,
            train_ref=data.train_ref,
            holdout_ref=data.holdout_ref,
        ),
        traffic=data.traffic,
        golden=_golden_info(run.golden),
        seed=run.params.seed,
        job_id=job.job_id,
        model_id=candidate.model_id,
        model_uri=run.backend.artifact_uri(candidate.model_id),
        deployment_id=None if candidate.deployment_id in retired else candidate.deployment_id,
        evaluations=[
            EvaluationRow(
                overall=e.overall, slices=e.slices, golden=e.golden, judge_score=e.judge_score
            )
            for e in evaluations
            if e.overall is not None
        ],
        gate=plan.gate_report(),
        outcome=plan.outcome,
        outcome_reason=plan.reason,
        champion_model_id=current.model_id if current else None,
        seconds=run.seconds,
        cascade=candidate.cascade,
    )
    publish_run_artifacts(summary, data.split.dedupe_report)
    publish_ledger(run.router, run.registry.ledger())
    return summary


# -- traffic helpers ----------------------------------------------------------------------------


def _label_traffic(run: Run) -> TrafficLabels | None:
    """Label the traffic the run uses (only never-seen queries cost a call), then move the
    watermark: what was read is now consumed, whatever happens later in the run."""
    if run.traffic is None:
        return None
    to_label = run.traffic.holdout  # evaluated on: always labelled
    if run.mode.labels_training:
        to_label = run.traffic.train + to_label
    labels = label_traffic(
        opaque(to_label),
        run.taxonomy,
        run.backend.teacher_fingerprint(run.taxonomy),
        run.runtime,
    )
    consumed = advance_watermark(TRAIN_CONSUMER, run.traffic.previous, run.traffic.new)
    move_watermark(run.router, consumed, run.runtime)
    return labels


def _traffic_summary(
    run: Run, labels: TrafficLabels | None, split: SplitOutput
) -> TrafficSummary | None:
    if run.traffic is None or labels is None:
        return None
    return run.traffic.summary.model_copy(
        update={
            "teacher_calls": labels.teacher_calls,
            "cached_labels": labels.cached,
            "invalid_labels": labels.invalid,
            "train": sum(1 for r in split.train if r.vocabulary == TRAFFIC),
            "holdout": sum(1 for r in split.holdout if r.vocabulary == TRAFFIC),
        }
    )


def _queries_to_label(run: Run) -> list[str]:
    """Traffic queries the teacher will be asked to label: those the label cache lacks."""
    if run.traffic is None:
        return []
    used = run.traffic.train + run.traffic.holdout if run.mode.labels_training else []
    queries = [q.query for q in used or run.traffic.holdout]
    return unlabelled(queries, run.backend.teacher_fingerprint(run.taxonomy), run.runtime)


def _unlabelled_traffic(run: Run) -> tuple[LabelledQuery, ...]:
    """Training traffic as prompts only, when the customization job's teacher answers it."""
    if run.traffic is None or run.mode.labels_training:
        return ()
    return tuple(
        LabelledQuery(
            query=q.query,
            cell=TRAFFIC,
            difficulty="real",
            dominant="",
            vocabulary=TRAFFIC,
            teacher_output="",
            weights={},
        )
        for q in run.traffic.train
    )


def _label_examples(run: Run, split: SplitOutput) -> tuple[dict[str, str], int]:
    """distill-prompts: the teacher labels a few training prompts as curated examples (cached;
    only valid routing answers are kept). Returns the examples and the calls made."""
    if run.mode is not TrainingMode.DISTILL_PROMPTS or run.params.prompt_examples == 0:
        return {}, 0
    picked = choose_examples([r.dominant for r in split.train], run.params.prompt_examples)
    queries = tuple(split.train[i].query for i in picked)
    label: Any = label_examples.with_options(
        result_storage=run.results_block, cache_expiration=_cache_age(run.params)
    )
    state = label(
        queries,
        run.taxonomy,
        run.backend.teacher_fingerprint(run.taxonomy),
        code_version(),
        run.runtime,
        return_state=True,
    )
    examples: dict[str, str] = state.result()
    return examples, 0 if state.name == "Cached" else len(queries)


def _extra_eval_queries(run: Run) -> list[str]:
    """Evaluation queries beyond the synthetic holdout: the traffic slice and the golden set."""
    traffic = [q.query for q in run.traffic.holdout] if run.traffic else []
    return traffic + (run.golden.queries if run.golden else [])


def _watermark_text(watermark: Watermark | None) -> str | None:
    if watermark is None:
        return None
    stamp = watermark.last_timestamp.isoformat() if watermark.last_timestamp else "no timestamp"
    return f"{stamp} ({watermark.seen} queries, {watermark.updated_at})"


def _golden_info(golden: GoldenSet | None) -> dict[str, Any] | None:
    if golden is None:
        return None
    return {"source": golden.source, "version": golden.version, "queries": len(golden.items)}


# -- helpers ---------------------------------------------------------------------------------


def _invocation_logs(params: DistillParams, mode: TrainingMode, taxonomy: Taxonomy) -> str | None:
    if mode is not TrainingMode.DISTILL_INVOCATION_LOGS:
        return None
    source = resolve_traffic(params, taxonomy)
    return invocation_logs_source(mode, params.invocation_logs, source.kind, source.location)


def invocation_logs_ref(uri: str, params: DistillParams) -> DatasetRef:
    """distill-invocation-logs reads no file: the logs, the filters and the seed identify the
    training data (a scheduled run's seed is its date, so each day's logs make a new job)."""
    identity = json.dumps(
        {
            "logs": uri,
            "metadata": params.traffic_request_metadata,
            "responses": params.invocation_logs_use_responses,
            "seed": params.seed,
        },
        sort_keys=True,
    )
    return DatasetRef(
        path="",
        uri=uri,
        sha256=hashlib.sha256(identity.encode()).hexdigest(),
        records=0,
        bytes=0,
    )


def _cache_age(params: DistillParams) -> timedelta:
    return timedelta(days=params.cache_max_age_days)


def _request(run: Run, data: TrainingData) -> DistillationRequest:
    """Job, model name and token derive from the router, the dataset and the backend; the
    tags also name the run (not part of the token)."""
    request = distillation_request(
        router=run.router,
        dataset_sha256=data.train_ref.sha256,
        training_path=data.train_ref.path,
        training_uri=data.train_ref.uri,
        output_prefix=f"jobs-output/{run.router}",
        taxonomy=run.taxonomy,
        backend_name=run.backend.name,
        student_config={"backend": run.params.backend},
        mode=run.mode,
        response_tokens=teacher_response_tokens(run.taxonomy),
        invocation_logs_uri=run.invocation_logs,
        use_prompt_response=run.params.invocation_logs_use_responses,
        request_metadata=run.params.traffic_request_metadata,
    )
    return request.model_copy(update={"tags": {**request.tags, RUN_TAG: run.run_id}})


def _tags(run: Run, data: TrainingData) -> dict[str, str]:
    return resource_tags(run.router, run.run_id, data.train_ref.sha256)


def _generate_batches(run: Run, plan: GenerationPlan) -> tuple[list[BatchOutput], int, int]:
    """Fan the batches out on threads or Dask; report progress.

    Returns the outputs, the teacher calls this run made, and how many batches came from cache.
    """
    batches = list(plan.all_batches)
    generate: Any = generate_batch.with_options(
        result_storage=run.results_block, cache_expiration=_cache_age(run.params)
    )
    teacher = run.backend.teacher_fingerprint(run.taxonomy)
    with (
        StepProgress(
            artifact_key("generation-progress", run.router),
            "Generating and labelling batches",
            len(batches),
        ) as progress,
        fan_out(run.params.task_runner) as runner,
    ):
        shared = {
            "taxonomy": unmapped(run.taxonomy),
            "teacher": unmapped(teacher),
            "code_version": unmapped(code_version()),
            "runtime": unmapped(run.runtime),
            # Training prompts are labelled here only when the pipeline's labels train the
            # student; otherwise the customization job's teacher answers them.
            "label": [run.mode.labels_training or b.split != "train" for b in batches],
        }
        futures: list[PrefectFuture[BatchOutput]] = (
            generate.map(batches, **shared)
            if runner is None
            else runner.map(generate, {"batch": batches, **shared})
        )
        for _ in as_completed(futures):
            progress.advance()
        outputs = [f.result() for f in futures]
    fresh = [f.state.name != "Cached" for f in futures]
    calls = sum(o.teacher_calls for o, new in zip(outputs, fresh, strict=True) if new)
    return outputs, calls, fresh.count(False)
