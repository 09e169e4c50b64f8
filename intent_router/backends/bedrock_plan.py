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
from intent_router.params import DistillParams
from intent_router.planning import distillation_request, plan_generation
from intent_router.prompts import student_system_prompt, teacher_prompt, teacher_user_message
from intent_router.synthesis import QueryWriter
from intent_router.taxonomy import Taxonomy
from intent_router.teacher import ReferenceTeacher


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


def request_plan(
    params: DistillParams,
    taxonomy: Taxonomy,
    settings: BedrockSettings,
    bucket: str,
    folder: str = "router-distill",
) -> list[PlannedRequest]:
    control, runtime = _clients(settings.region_name)
    store = _UriOnly(bucket, folder)
    backend = BedrockBackend(
        settings,
        control=control,
        runtime=runtime,
        store=store,  # type: ignore[arg-type]
    )
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
        if backend.labelling_path(len(written)) == "batch":
            batched.append(written)
    # Stand-in dataset: locally labelled, same shape and about the same size as the real one.
    system = student_system_prompt(taxonomy)
    records = [
        training_record(q, teacher.label_json(q), system)
        for q in train_queries[: params.train_count]
    ]
    data = render_jsonl(records, backend.limits)
    sha = content_hash(data)
    train_path = f"datasets/{router}/{sha[:16]}/train.jsonl"
    request: DistillationRequest = distillation_request(
        router=router,
        dataset_sha256=sha,
        training_path=train_path,
        training_uri=store.uri(train_path),
        output_prefix=f"jobs-output/{router}",
        taxonomy=taxonomy,
        backend_name=backend.name,
        student_config={"backend": params.backend},
    )
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
    evaluate = BedrockBackend.converse_request(
        deployment_arn, system, eval_queries[0], settings.inference_max_tokens
    )
    generated = len(train_queries) + len(eval_queries)
    in_batches = sum(len(b) for b in batched)
    on_demand = generated - in_batches
    items: list[tuple[Any, str, str, str, dict[str, Any]]] = [
        (
            runtime,
            "Converse",
            f"{on_demand:,} (up to {on_demand * settings.label_attempts:,} "
            "with retries of invalid answers)"
            + (f", + retries of failed batch records (up to {in_batches:,})" if batched else ""),
            "teacher labels every generated query"
            + (" not labelled in a batch job" if batched else ""),
            label,
        ),
        *_batch_items(backend, settings, batched, teacher_prompt(taxonomy), store, bucket),
        (
            None,
            "s3:PutObject",
            "2 datasets + task-result and registry objects",
            f"training JSONL ~{len(data):,} bytes, holdout JSONL",
            {"Bucket": bucket, "Key": f"{folder}/{train_path}", "ContentLength": len(data)},
        ),
        (
            control,
            "GetModelCustomizationJob",
            f"1 lookup + up to {polls:,} polls",
            "find an existing job by name; then poll status",
            {"jobIdentifier": request.job_name},
        ),
        (
            control,
            "CreateModelCustomizationJob",
            "0 or 1 (0 when the job already exists)",
            "the distillation job (idempotent token)",
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
            backend.deployment_request(model_arn, request.model_name, request.token),
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
            "rejected candidate, or superseded champion after promotion",
            {"customModelDeploymentIdentifier": deployment_arn},
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
