"""The dry-run request plan: every kind of AWS request a Bedrock run makes, with one complete
example each (checked against botocore's service model) and how many of it. Calls nothing."""

from __future__ import annotations

import math
from typing import Any

import boto3
from pydantic import BaseModel, ConfigDict

from intent_router.backends.base import DistillationRequest
from intent_router.backends.bedrock import BedrockBackend, BedrockSettings
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
    for batch in plan.all_batches:
        writer = QueryWriter(taxonomy, batch.vocabulary)
        for quota in batch.quotas:
            target = train_queries if batch.split == "train" else eval_queries
            target += writer.write_cell(quota)
    # Stand-in dataset: locally labelled, same shape and about the same size as the real one.
    system = student_system_prompt(taxonomy)
    records = [
        training_record(q, teacher.label_json(q), system)
        for q in train_queries[: params.train_count]
    ]
    data = render_jsonl(records, backend.limits)
    sha = content_hash(data)
    train_path = f"datasets/{router}/{sha[:16]}/train.jsonl"
    planned: DistillationRequest = distillation_request(
        router=router,
        dataset_sha256=sha,
        training_path=train_path,
        training_uri=store.uri(train_path),
        output_prefix=f"jobs-output/{router}",
        taxonomy=taxonomy,
        backend_name=backend.name,
        student_config={"backend": params.backend},
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
    evaluate = BedrockBackend.converse_request(
        deployment_arn, system, eval_queries[0], settings.inference_max_tokens
    )
    generated = len(train_queries) + len(eval_queries)
    items: list[tuple[Any, str, str, str, dict[str, Any]]] = [
        (
            runtime,
            "Converse",
            f"{generated:,} (up to {generated * settings.label_attempts:,} "
            "with retries of invalid answers)",
            "teacher labels every generated query",
            label,
        ),
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
            f"1 lookup per earlier attempt + up to {polls:,} polls",
            "find an existing job by name (a Failed/Stopped one moves on to -a2, -a3, ...); "
            "then poll status",
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
