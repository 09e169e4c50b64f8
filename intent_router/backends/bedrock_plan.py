"""The dry-run request plan: every kind of AWS request a Bedrock run makes, with one complete
example each (checked against botocore's service model) and how many of it. Calls nothing."""

from __future__ import annotations

import math
from typing import Any

import boto3
from pydantic import BaseModel, ConfigDict

from intent_router.backends.base import DistillationRequest
from intent_router.backends.bedrock import BedrockBackend, BedrockSettings
from intent_router.backends.bedrock_batch import batch_labelling_request_example
from intent_router.backends.bedrock_validation import request_violations
from intent_router.dataset import content_hash, render_jsonl, training_record
from intent_router.lifecycle import (
    RUN_TAG,
    attempt_request,
    resource_tags,
    stable_deployment_name,
)
from intent_router.params import DistillParams
from intent_router.planning import distillation_request, plan_generation
from intent_router.preflight import CostEstimate, cost_inputs, estimate_cost
from intent_router.prompts import student_system_prompt, teacher_prompt, teacher_user_message
from intent_router.synthesis import QueryWriter
from intent_router.taxonomy import Taxonomy
from intent_router.teacher import ReferenceTeacher
from intent_router.training_modes import (
    TrainingMode,
    teacher_response_tokens,
)


class PlannedRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    service: str
    operation: str
    count: str
    purpose: str
    example: dict[str, Any]
    violations: tuple[str, ...] = ()


class _UriOnly:
    """Just enough of an ObjectStore to build S3 URIs for examples."""

    def __init__(self, bucket: str, folder: str) -> None:
        self.prefix = f"s3://{bucket}/{folder.strip('/')}".rstrip("/")

    def uri(self, path: str) -> str:
        return f"{self.prefix}/{path}"


def _clients(region: str) -> tuple[Any, Any]:
    """Real boto3 clients, used only for their service models: no request is ever sent."""
    session = boto3.Session(
        region_name=region, aws_access_key_id="dry-run", aws_secret_access_key="dry-run"
    )
    return session.client("bedrock"), session.client("bedrock-runtime")


def _dry_run_backend(settings: BedrockSettings, store: _UriOnly) -> BedrockBackend:
    """A Bedrock backend on the dry-run clients: builds requests, never sends one."""
    control, runtime = _clients(settings.region_name)
    return BedrockBackend(
        settings,
        control=control,
        runtime=runtime,
        store=store,  # type: ignore[arg-type]
    )


def request_plan(
    params: DistillParams,
    taxonomy: Taxonomy,
    settings: BedrockSettings,
    bucket: str,
    folder: str = "router-distill",
    mode: TrainingMode = TrainingMode.DISTILL_PROMPTS,
) -> list[PlannedRequest]:
    store = _UriOnly(bucket, folder)
    backend = _dry_run_backend(settings, store)
    control, runtime = backend.control, backend.runtime
    router = params.router_name or taxonomy.name
    plan = plan_generation(params, taxonomy)
    teacher = ReferenceTeacher(taxonomy)
    train_queries: list[str] = []
    eval_queries: list[str] = []
    batched: list[list[str]] = []  # labelling batches that go to batch inference
    for batch in plan.all_batches:
        writer = QueryWriter(taxonomy, batch.vocabulary)
        written: list[str] = []
        for quota in batch.quotas:
            written += writer.write_cell(quota)
        (train_queries if batch.split == "train" else eval_queries).extend(written)
        labelled_here = batch.split != "train" or mode.labels_training
        if labelled_here and backend.labelling_path(len(written)) == "batch":
            batched.append(written)
    # Stand-in dataset: locally labelled, same shape and about the same size as the real one.
    train_queries = train_queries[: params.train_count]
    prompts_only = mode is TrainingMode.DISTILL_PROMPTS
    examples = set(train_queries[: params.prompt_examples] if prompts_only else [])
    if mode is TrainingMode.DISTILL_PROMPTS:
        records = [
            training_record(
                teacher_user_message(q),
                teacher.label_json(q) if q in examples else None,
                teacher_prompt(taxonomy),
            )
            for q in train_queries
        ]
    else:
        system = student_system_prompt(taxonomy)
        records = [training_record(q, teacher.label_json(q), system) for q in train_queries]
    data = render_jsonl(records, backend.limits)
    sha = content_hash(data)
    train_path = f"datasets/{router}/{sha[:16]}/train.jsonl"
    logs = (
        params.invocation_logs or f"s3://{bucket}/AWSLogs/"
        if mode is TrainingMode.DISTILL_INVOCATION_LOGS
        else None
    )
    planned: DistillationRequest = distillation_request(
        router=router,
        dataset_sha256=sha,
        training_path=train_path,
        training_uri=store.uri(train_path),
        output_prefix=f"jobs-output/{router}",
        taxonomy=taxonomy,
        backend_name=backend.name,
        student_config={"backend": params.backend},
        mode=mode,
        response_tokens=teacher_response_tokens(taxonomy),
        invocation_logs_uri=logs,
        use_prompt_response=params.invocation_logs_use_responses,
        request_metadata=params.traffic_request_metadata,
    )
    run_id = "0b5ee7e2-5a46-4b1e-9c3e-6f1d2a7b8c90"  # example flow-run id
    tags = resource_tags(router, run_id, sha)
    request = planned.model_copy(update={"tags": {**planned.tags, RUN_TAG: run_id}})
    model_arn = (
        f"arn:aws:bedrock:{settings.region_name}:123456789012:custom-model/"
        f"{settings.student_base_model_id}/abcdef123456"
    )
    deployment_arn = (
        f"arn:aws:bedrock:{settings.region_name}:123456789012:custom-model-deployment/abcdef123456"
    )
    polls = math.ceil(params.job_timeout_minutes * 60 / max(1.0, params.poll_interval_seconds))
    models = [t.ref for t in backend.baselines(taxonomy)] + [deployment_arn]
    sample = train_queries[0]
    label = BedrockBackend.converse_request(
        settings.teacher_model_id,
        teacher_prompt(taxonomy),
        teacher_user_message(sample),
        settings.label_max_tokens,
        settings.label_temperature,
    )
    quoted = mode.student_prompt == "teacher"
    evaluate = BedrockBackend.converse_request(
        deployment_arn,
        teacher_prompt(taxonomy) if quoted else student_system_prompt(taxonomy),
        teacher_user_message(eval_queries[0]) if quoted else eval_queries[0],
        settings.inference_max_tokens,
    )
    in_batches = sum(len(b) for b in batched)
    labelled = len(eval_queries) + len(examples) - in_batches
    labelled += len(train_queries) if mode.labels_training else 0
    what = {
        TrainingMode.FINE_TUNE_LABELLED: "teacher labels every generated query (they train it)",
        TrainingMode.DISTILL_PROMPTS: f"teacher labels the holdout and {len(examples)} curated "
        "examples; the job's teacher answers the training prompts",
        TrainingMode.DISTILL_INVOCATION_LOGS: "teacher labels the holdout; the job distils "
        "from the invocation logs",
    }[mode]
    items: list[tuple[Any, str, str, str, dict[str, Any]]] = [
        (
            runtime,
            "Converse",
            f"{labelled:,} (up to {labelled * settings.label_attempts:,} "
            "with retries of invalid answers)"
            + (f", + retries of failed batch records (up to {in_batches:,})" if batched else ""),
            what + ("; batches at the threshold go to batch inference" if batched else ""),
            label,
        ),
        *_batch_items(backend, settings, batched, teacher_prompt(taxonomy), store, bucket),
        (
            None,
            "s3:PutObject",
            "holdout JSONL + task-result and registry objects"
            if logs
            else "2 datasets + task-result and registry objects",
            "holdout JSONL (no training file: the job reads the logs)"
            if logs
            else f"training JSONL ~{len(data):,} bytes ({mode.value}), holdout JSONL",
            {"Bucket": bucket, "Key": f"{folder}/{train_path}", "ContentLength": len(data)},
        ),
        (
            control,
            "GetModelCustomizationJob",
            f"1 lookup per earlier attempt + up to {polls:,} polls",
            "find an existing job by name (a Failed/Stopped one moves on to -a2, -a3, ...); "
            "then poll status",
            {"jobIdentifier": request.job_name},
        ),
        (
            control,
            "CreateModelCustomizationJob",
            "0 or 1 (0 when the job already exists)",
            f"the {mode.value} job (idempotent token)",
            backend.job_request(request),
        ),
        (
            control,
            "GetCustomModel",
            "1 per poll after the job completes",
            "wait until the custom model is Active",
            {"modelIdentifier": model_arn},
        ),
        (
            control,
            "CreateCustomModelDeployment",
            "0 or 1",
            "on-demand deployment",
            backend.deployment_request(model_arn, request.model_name, request.token, tags),
        ),
        (
            control,
            "GetCustomModelDeployment",
            f"up to {polls:,} polls",
            "wait until Active",
            {"customModelDeploymentIdentifier": deployment_arn},
        ),
        (
            runtime,
            "Converse",
            f"{len(eval_queries):,} x {len(models)} models "
            f"(+ champion if any) = {len(eval_queries) * len(models):,}",
            "evaluate the candidate and baselines on the holdout",
            evaluate,
        ),
        (
            control,
            "DeleteCustomModelDeployment",
            "0 to 2",
            "rejected candidate, or the candidate's own deployment after promotion",
            {"customModelDeploymentIdentifier": deployment_arn},
        ),
        # lifecycle
        (
            control,
            "UpdateCustomModelDeployment",
            "0 or 1 (on promotion, once the stable deployment exists)",
            f"swap the model of {stable_deployment_name(router)}: the serving ARN stays",
            {"customModelDeploymentIdentifier": deployment_arn, "modelArn": model_arn},
        ),
        (
            control,
            "TagResource",
            "0 to 3",
            "re-tag a reused job, model or stable deployment with this run",
            {
                "resourceARN": deployment_arn,
                "tags": [{"key": k, "value": v} for k, v in tags.items()],
            },
        ),
        (
            control,
            "StopModelCustomizationJob",
            "0 or 1 (wait timeout, cancellation or crash)",
            "nothing keeps training after the run gave up",
            {"jobIdentifier": attempt_request(request, 2).job_name},
        ),
        (
            control,
            "DeleteCustomModel",
            f"0 or more (rejected: beyond the newest {settings.keep_rejected_models})",
            "rejected candidates' models (never the champion's or a ledger model)",
            {"modelIdentifier": model_arn},
        ),
    ]
    out = []
    for client, operation, count, purpose, example in items:
        service = "s3" if client is None else client.meta.service_model.service_name
        problems = (
            ()
            if client is None
            else tuple(request_violations(client.meta.service_model, operation, example))
        )
        out.append(
            PlannedRequest(
                service=service,
                operation=operation.removeprefix("s3:"),
                count=count,
                purpose=purpose,
                example=example,
                violations=problems,
            )
        )
    return out


def plan_estimate(
    params: DistillParams, taxonomy: Taxonomy, settings: BedrockSettings, mode: TrainingMode
) -> CostEstimate:
    """The cost estimate a Bedrock run in `mode` would check before its first paid call."""
    backend = _dry_run_backend(settings, _UriOnly("dry-run", "router-distill"))
    return estimate_cost(params, taxonomy, **cost_inputs(backend, taxonomy, mode))


_COST_GROUPS = (
    ("pipeline labelling", "pipeline labelling"),
    ("curated examples", "curated examples"),
    ("teacher inside the job", "teacher inference inside the job"),
    ("student training", "student training"),
    ("evaluation", "evaluation:"),
)


def compare_modes(estimates: dict[TrainingMode, CostEstimate]) -> list[dict[str, Any]]:
    """One row per kind of cost, one column per training mode (USD; '-' for none, 'not priced'
    for a line without a price)."""

    def cell(estimate: CostEstimate, prefix: str) -> str:
        lines = [line for line in estimate.lines if line.item.startswith(prefix)]
        if not lines:
            return "-"
        if any(line.usd is None for line in lines):
            return "not priced"
        return f"{sum(line.usd or 0.0 for line in lines):,.2f}"

    rows = []
    for label, prefix in _COST_GROUPS:
        row: dict[str, Any] = {"cost": label}
        row.update({mode.value: cell(e, prefix) for mode, e in estimates.items()})
        rows.append(row)
    rows.append(
        {"cost": "training tokens per epoch"}
        | {mode.value: f"{e.training_tokens:,}" for mode, e in estimates.items()}
    )
    rows.append(
        {"cost": "pipeline Converse calls for training records"}
        | {mode.value: f"{e.pipeline_training_labels:,}" for mode, e in estimates.items()}
    )
    rows.append(
        {"cost": "total this run (priced lines)"}
        | {mode.value: f"{e.known_usd:,.2f}" for mode, e in estimates.items()}
    )
    rows.append(
        {"cost": "custom model storage, per month"}
        | {mode.value: cell(e, "custom model storage") for mode, e in estimates.items()}
    )
    rows.append(
        {"cost": "drift monitor, per check"}
        | {mode.value: cell(e, "drift monitor") for mode, e in estimates.items()}
    )
    return rows


def _batch_items(
    backend: BedrockBackend,
    settings: BedrockSettings,
    batched: list[list[str]],
    prompt: str,
    store: _UriOnly,
    bucket: str,
) -> list[tuple[Any, str, str, str, dict[str, Any]]]:
    """Batch labelling requests (CreateModelInvocationJob and its polls), when any apply."""
    if not batched:
        return []
    request = batch_labelling_request_example(settings, batched[0], prompt, store.uri)
    timeout_s = settings.batch_job_timeout_hours * 3600
    polls = math.ceil(timeout_s / settings.batch_poll_interval_seconds)
    input_uri = request["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
    jobs = len(batched)
    sizes = ", ".join(f"{len(b):,}" for b in batched[:5]) + (", ..." if jobs > 5 else "")
    return [
        (
            backend.control,
            "ListModelInvocationJobs",
            f"{jobs:,} (1 per batch)",
            "find a batch's job by name (a retried task reattaches)",
            {"nameContains": request["jobName"], "maxResults": 100},
        ),
        (
            None,
            "s3:PutObject",
            f"{jobs:,} batch inputs",
            f"records JSONL of each labelling batch ({sizes} records)",
            {"Bucket": bucket, "Key": input_uri.removeprefix(f"s3://{bucket}/")},
        ),
        (
            backend.control,
            "CreateModelInvocationJob",
            f"{jobs:,} (0 for a batch whose job exists)",
            "teacher labels a batch through batch inference (discounted, idempotent token)",
            request,
        ),
        (
            backend.control,
            "GetModelInvocationJob",
            f"up to {polls:,} polls per job",
            f"wait until Completed (stopped after {settings.batch_job_timeout_hours} h)",
            {"jobIdentifier": "abcdef123456"},
        ),
    ]
