"""The whole flow on the Bedrock backend: moto for S3, a validated fake for Bedrock.

Every Bedrock request goes through the fake, which checks it against botocore's service model
(names, nesting, types, required members, enums, patterns, maxima) and runs a realistic state
machine (InProgress -> Completed | Failed, Creating -> Active | Failed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from prefect.client.orchestration import get_client

import intent_router.backends.bedrock as bedrock_module
from blocks.bedrock import CONVERSE_LIMIT
from flows.distill import distill_router
from intent_router.errors import (
    BackendServiceError,
    DeploymentFailed,
    DistillationJobFailed,
    UserInputError,
)
from intent_router.params import DistillParams
from intent_router.prompts import extract_quoted_query, teacher_prompt
from intent_router.registry import ChampionRegistry
from intent_router.taxonomy import builtin_taxonomy
from intent_router.teacher import ReferenceTeacher
from intent_router.training_modes import teacher_response_tokens
from router_distill.cli import main
from tasks.runtime import Runtime
from tests.support.aws import bedrock_on_moto
from tests.support.aws import s3_keys as bucket_keys
from tests.support.fake_bedrock import FakeBedrock, FakeBedrockError

BUCKET = "router-test-bucket"
TEACHER = ReferenceTeacher(builtin_taxonomy())
PARAMS: dict[str, Any] = {
    "train_count": 120,
    "holdout_count": 40,
    "novel_vocabulary_count": 0,
    "batches": 2,
    "poll_interval_seconds": 0,
    "job_timeout_minutes": 5,
    "backend": "router-distill-bedrock-backend/test",
    "storage_block": "s3-bucket/test",
    "gate": {"min_top_signal_accuracy": 0.9, "min_mean_rubric": 4.0, "min_golden_top1": 0.5},
    # Small real-query inputs: every fake Converse call is validated against botocore's model.
    "golden": str(Path(__file__).resolve().parents[1] / "data" / "golden_small.jsonl"),
    "traffic": "none",
}


def good_student(model_id: str, system: str, user: str) -> str:
    """The teacher's answer for teacher-prompted models and for the deployed student."""
    return TEACHER.label_json(user)


def bad_student(model_id: str, system: str, user: str) -> str:
    if "custom-model-deployment" in model_id:
        return (
            '{"visual": 0.25, "audio": 0.25, "transcription": 0.25, "metadata": 0.25, '
            '"reasoning": "unsure"}'
        )
    return TEACHER.label_json(user)


@pytest.fixture
def aws(router_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBedrock]:
    """moto S3 with a bucket, saved blocks, and the fake Bedrock clients behind the block."""
    monkeypatch.setattr(bedrock_module, "THROTTLE_BASE_DELAY_S", 0.0)  # no waiting in tests
    fake = FakeBedrock(responder=good_student)
    with bedrock_on_moto(monkeypatch, fake, bucket=BUCKET, name="test"):
        with get_client(sync_client=True) as client:
            client.upsert_global_concurrency_limit_by_name(CONVERSE_LIMIT, 4)
        yield fake


def s3_keys() -> list[str]:
    return bucket_keys(BUCKET)


def teacher_labelled(aws: FakeBedrock) -> list[str]:
    """The queries the pipeline paid the teacher to label (Converse with the teacher prompt)."""
    return [
        extract_quoted_query(c["messages"][0]["content"][0]["text"]) or ""
        for c in aws.calls_to("converse")
        if c["modelId"] == "us.amazon.nova-premier-v1:0" and "temperature" in c["inferenceConfig"]
    ]


def training_records(aws: FakeBedrock) -> list[dict[str, Any]]:
    job = aws.calls_to("create_model_customization_job")[-1]
    assert aws.read_object is not None
    data = aws.read_object(job["trainingDataConfig"]["s3Uri"])
    assert data is not None
    return [json.loads(line) for line in data.decode().splitlines()]


def test_bedrock_run_distils_from_prompts_and_pays_the_teacher_once(aws: FakeBedrock) -> None:
    summary = distill_router(**PARAMS)

    assert summary.outcome == "promoted"
    assert summary.backend == "bedrock" and summary.training_mode == "distill-prompts"
    assert len(aws.jobs) == 1 and len(aws.deployments) == 1
    job = aws.calls_to("create_model_customization_job")[0]
    assert job["customizationType"] == "DISTILLATION"
    assert job["baseModelIdentifier"] == "amazon.nova-micro-v1:0:128k"
    teacher_config = job["customizationConfig"]["distillationConfig"]["teacherModelConfig"]
    assert teacher_config["teacherModelIdentifier"] == "us.amazon.nova-premier-v1:0"
    assert teacher_config["maxResponseLengthForInference"] == teacher_response_tokens(
        builtin_taxonomy()
    )
    assert job["trainingDataConfig"]["s3Uri"].startswith(f"s3://{BUCKET}/runs/datasets/default/")
    # The training file: the full teacher prompt and the quoted query; answers only for the
    # ten curated examples.
    records = training_records(aws)
    assert len(records) == PARAMS["train_count"]
    assert all(r["system"][0]["text"] == teacher_prompt(builtin_taxonomy()) for r in records)
    answered = [r for r in records if len(r["messages"]) == 2]
    assert len(answered) == 10
    prompts = {
        extract_quoted_query(r["messages"][0]["content"][0]["text"])
        for r in records
        if len(r["messages"]) == 1
    }
    # The pipeline paid the teacher for no training prompt: only the examples and the holdout.
    labelled = teacher_labelled(aws)
    assert not prompts & set(labelled)
    assert len(labelled) == 10 + summary.dataset.generated_holdout
    # The job's teacher answered the prompts (and only those) inside the job.
    usage = aws.teacher_in_job[next(iter(aws.jobs))]
    assert (usage.prompts, usage.examples, usage.truncated) == (len(prompts), 10, 0)
    # The candidate is called as it was trained: teacher prompt, quoted query.
    deployment_calls = [
        c for c in aws.calls_to("converse") if "custom-model-deployment" in c["modelId"]
    ]
    assert deployment_calls and all(
        c["system"][0]["text"] == teacher_prompt(builtin_taxonomy()) for c in deployment_calls
    )
    store = Runtime(backend=PARAMS["backend"], storage_block="s3-bucket/test").store()
    champion = ChampionRegistry(store, "default").current()
    assert champion is not None and champion.deployment_id in aws.deployments
    assert (champion.training_mode, champion.prompt) == ("distill-prompts", "teacher")
    # `router-distill eval` also calls the champion the way it was trained.
    before = len(aws.calls_to("converse"))
    golden = ["--golden", PARAMS["golden"], "--json"]
    assert (
        main(["eval", "--backend", PARAMS["backend"], "--storage-block", "s3-bucket/test", *golden])
        == 0
    )
    asked = [
        c for c in aws.calls_to("converse")[before:] if "custom-model-deployment" in c["modelId"]
    ]
    assert asked and all(
        c["system"][0]["text"] == teacher_prompt(builtin_taxonomy()) for c in asked
    )


def test_fine_tune_labelled_trains_on_the_pipelines_labels(aws: FakeBedrock) -> None:
    summary = distill_router(**{**PARAMS, "training_mode": "fine-tune-labelled", "seed": 11})

    assert summary.outcome == "promoted" and summary.training_mode == "fine-tune-labelled"
    job = aws.calls_to("create_model_customization_job")[0]
    assert job["customizationType"] == "FINE_TUNING" and "customizationConfig" not in job
    assert job["hyperParameters"] == {
        "epochCount": "2",
        "learningRate": "1e-05",
        "learningRateWarmupSteps": "10",
    }
    records = training_records(aws)
    assert all(len(r["messages"]) == 2 for r in records)  # every record carries its label
    assert all(r["system"][0]["text"].startswith("Return JSON with") for r in records)
    assert aws.teacher_in_job == {}  # no second teacher bill
    assert len(teacher_labelled(aws)) == summary.dataset.teacher_calls
    deployment_calls = [
        c for c in aws.calls_to("converse") if "custom-model-deployment" in c["modelId"]
    ]
    assert deployment_calls and all(
        c["system"][0]["text"].startswith("Return JSON with") for c in deployment_calls
    )


def test_invocation_log_mode_without_logs_stops_before_any_call(aws: FakeBedrock) -> None:
    with pytest.raises(UserInputError, match="needs the router's invocation logs"):
        distill_router(**{**PARAMS, "training_mode": "distill-invocation-logs"})
    assert aws.calls == []


def test_rerun_after_a_crash_while_waiting_reuses_the_job(
    aws: FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = bedrock_module.BedrockBackend.job_status
    polls = {"n": 0}

    def crash_once(self: Any, job_id: str) -> Any:
        polls["n"] += 1
        if polls["n"] == 1:
            raise RuntimeError("worker lost while waiting")
        return original(self, job_id)

    monkeypatch.setattr(bedrock_module.BedrockBackend, "job_status", crash_once)
    params = DistillParams.model_validate({**PARAMS, "seed": 5})
    with pytest.raises(RuntimeError, match="worker lost"):
        distill_router(**params.flow_parameters())
    labelled = len(aws.calls_to("converse"))

    summary = distill_router(**params.flow_parameters())
    assert summary.outcome == "promoted"
    assert len(aws.jobs) == 1 and len(aws.deployments) == 1
    assert len(aws.calls_to("create_model_customization_job")) == 1
    teacher_calls = [
        c
        for c in aws.calls_to("converse")[labelled:]
        if c["modelId"].startswith("us.amazon")
        and "Return JSON" not in c["system"][0]["text"]
        and c["inferenceConfig"].get("temperature")
    ]
    assert teacher_calls == []  # labels came from the cache, the teacher was not paid twice


def test_failed_job_fails_the_run_with_bedrocks_message(aws: FakeBedrock) -> None:
    aws.fail_job_with = "Validation failed: 3 records contain reserved keywords"
    with pytest.raises(DistillationJobFailed, match="reserved keywords"):
        distill_router(**{**PARAMS, "seed": 6})
    assert aws.deployments == {}


def test_failed_deployment_is_deleted_and_fails_the_run(aws: FakeBedrock) -> None:
    aws.fail_deployment_with = "Insufficient capacity"
    with pytest.raises(DeploymentFailed, match="Insufficient capacity"):
        distill_router(**{**PARAMS, "seed": 7})
    assert aws.deployments == {}
    assert len(aws.deleted_deployments) == 1


def test_candidate_that_fails_the_gate_has_its_deployment_deleted(aws: FakeBedrock) -> None:
    aws.responder = bad_student
    summary = distill_router(**{**PARAMS, "seed": 8})
    assert summary.outcome == "rejected"
    assert aws.deployments == {}
    assert len(aws.deleted_deployments) == 1


def test_throttling_storm_is_absorbed(aws: FakeBedrock) -> None:
    aws.throttle("converse", times=12)
    summary = distill_router(**{**PARAMS, "seed": 9})
    assert summary.outcome == "promoted"
    assert summary.dataset.teacher_invalid_dropped == 0


def test_budget_stops_the_run_before_any_paid_call(aws: FakeBedrock) -> None:
    # Training and storage have no price in the table: a budget cannot be checked...
    with pytest.raises(UserInputError, match="no price for student training"):
        distill_router(**{**PARAMS, "seed": 10, "budget_usd": 100.0})
    # ...unless the user accepts unpriced lines; then the priced ones exceed this budget.
    with pytest.raises(UserInputError, match="exceeds the budget"):
        distill_router(**{**PARAMS, "seed": 10, "budget_usd": 0.01, "allow_unpriced": True})
    assert aws.calls_to("converse") == []
    assert aws.jobs == {}


def test_champion_without_a_deployment_is_redeployed_before_evaluation(aws: FakeBedrock) -> None:
    """E.g. after `rollback` to a champion whose deployment a later promotion deleted."""
    first = distill_router(**PARAMS)
    store = Runtime(backend=PARAMS["backend"], storage_block="s3-bucket/test").store()
    registry = ChampionRegistry(store, "default")
    lost = registry.current()
    assert first.outcome == "promoted" and lost is not None
    aws.control.delete_custom_model_deployment(customModelDeploymentIdentifier=lost.deployment_id)

    second = distill_router(**PARAMS)

    assert second.outcome == "unchanged"
    restored = registry.current()
    assert restored is not None and restored.model_id == lost.model_id
    assert restored.deployment_id != lost.deployment_id
    assert restored.deployment_id in aws.deployments
    assert [e.action for e in registry.ledger()] == ["promote", "redeploy"]
    assert "no longer exists" in registry.ledger()[-1].note


def test_paid_backend_with_local_storage_is_refused_before_any_call(
    aws: FakeBedrock, router_home: Path
) -> None:
    from prefect.filesystems import LocalFileSystem

    LocalFileSystem(basepath=str(router_home / "elsewhere")).save("not-s3", overwrite=True)
    with pytest.raises(UserInputError, match="needs S3 storage"):
        distill_router(**{**PARAMS, "storage_block": "local-file-system/not-s3"})
    assert aws.calls == []  # not one Converse call paid for


def test_backend_bucket_is_the_default_store(aws: FakeBedrock) -> None:
    summary = distill_router(**{**PARAMS, "storage_block": None, "seed": 12})
    assert summary.outcome == "promoted"
    assert summary.dataset.train_uri.startswith(f"s3://{BUCKET}/runs/datasets/")
    assert any(key.startswith("runs/routers/default/") for key in s3_keys())


def test_invocation_logs_are_traffic_and_the_jobs_training_data(aws: FakeBedrock) -> None:
    """Bedrock's model-invocation logs (JSON records, gzipped, under AWSLogs/) as traffic: the
    user text of the production router's Converse calls, filtered by model id and metadata.
    In distill-invocation-logs the job distils from the same logs; the pipeline labels only the
    traffic it evaluates on and writes no training file."""
    import gzip
    import json

    import boto3

    router_model = "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/router-prod"
    queries = [f"{thing} in slow motion" for thing in ("a hummingbird", "a waterfall", "rain")]
    queries += ["crowd chanting at a football match", "interview about inflation"]

    def logged(query: str, model_id: str, app: str) -> str:
        return json.dumps(
            {
                "schemaType": "ModelInvocationLog",
                "schemaVersion": "1.0",
                "timestamp": "2026-11-30T10:00:00Z",
                "accountId": "123456789012",
                "region": "us-east-1",
                "requestId": "r-1",
                "operation": "Converse",
                "modelId": model_id,
                "requestMetadata": {"app": app},
                "input": {
                    "inputContentType": "application/json",
                    "inputBodyJson": {"messages": [{"role": "user", "content": [{"text": query}]}]},
                    "inputTokenCount": 12,
                },
            }
        )

    lines = [logged(q, router_model, "search") for q in queries]
    lines += [logged("not ours", "amazon.nova-lite-v1:0", "search")]
    lines += [logged("other app", router_model, "chat")]
    key = "AWSLogs/123456789012/BedrockModelInvocationLogs/us-east-1/2026/11/30/10/log.json.gz"
    client = boto3.client("s3", region_name="us-east-1")
    client.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress("\n".join(lines).encode()))

    summary = distill_router(
        **{
            **PARAMS,
            "traffic": f"bedrock-logs:s3://{BUCKET}/AWSLogs/",
            "traffic_model_id": "custom-model-deployment/router-prod",
            "traffic_request_metadata": {"app": "search"},
            "traffic_holdout_share": 0.2,
            "training_mode": "distill-invocation-logs",
        }
    )
    assert summary.traffic is not None
    assert summary.traffic.read == len(queries)
    assert (summary.traffic.train, summary.traffic.holdout) == (4, 1)
    assert summary.traffic.teacher_calls == 1  # only the evaluation slice is labelled here
    labelled = teacher_labelled(aws)
    assert len(set(labelled) & set(queries)) == 1
    assert len(labelled) == summary.dataset.generated_holdout + 1
    assert not {"not ours", "other app"} & set(labelled)
    job = aws.calls_to("create_model_customization_job")[0]
    assert job["trainingDataConfig"] == {
        "invocationLogsConfig": {
            "usePromptResponse": False,
            "invocationLogSource": {"s3Uri": f"s3://{BUCKET}/AWSLogs/"},
            "requestMetadataFilters": {"equals": {"app": "search"}},
        }
    }
    assert not any(key.endswith("/train.jsonl") for key in s3_keys())


def test_bucket_in_another_region_stops_the_run_before_any_teacher_call(
    aws: FakeBedrock,
) -> None:
    import boto3
    from prefect_aws import AwsCredentials, S3Bucket

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(
        Bucket="router-eu-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    S3Bucket(
        bucket_name="router-eu-bucket", credentials=AwsCredentials.load("test"), bucket_folder="r"
    ).save("eu", overwrite=True)

    with pytest.raises(UserInputError, match="bucket 'router-eu-bucket' is in eu-west-1, but"):
        distill_router(**{**PARAMS, "storage_block": "s3-bucket/eu", "seed": 13})

    assert aws.calls_to("converse") == []
    assert aws.calls_to("create_model_invocation_job") == []
    assert aws.jobs == {}


def test_access_denied_during_evaluation_fails_the_run_with_the_service_message(
    aws: FakeBedrock,
) -> None:
    """An infrastructure error is not scored as a bad model: the evaluate task fails with the
    service's message (not retried), and the candidate's deployment is torn down."""
    denied = "User is not authorized to perform: bedrock:InvokeModel on the deployment"

    def deployment_denied(model_id: str, system: str, user: str) -> str:
        if "custom-model-deployment" in model_id:
            raise FakeBedrockError("AccessDeniedException", denied)
        return TEACHER.label_json(user)

    aws.responder = deployment_denied
    with pytest.raises(BackendServiceError, match="not authorized to perform") as raised:
        distill_router(**{**PARAMS, "seed": 13})
    assert raised.value.code == "AccessDeniedException"
    asked = [c for c in aws.calls_to("converse") if "custom-model-deployment" in c["modelId"]]
    assert 1 <= len(asked) <= 8  # at most the calls already in flight; no Prefect retry
    assert aws.deployments == {} and len(aws.deleted_deployments) == 1


def test_bedrock_model_evaluation_scores_land_in_the_evaluation_table(aws: FakeBedrock) -> None:
    import boto3

    from blocks.bedrock import BedrockDistillationBackend
    from intent_router.report import evaluation_table

    block = cast(BedrockDistillationBackend, BedrockDistillationBackend.load("test"))
    block.settings = block.settings.model_copy(
        update={"bedrock_model_evaluation": True, "judge_model_id": "us.example.judge-v1:0"}
    )
    block.save("test", overwrite=True)
    aws.s3 = boto3.client("s3", region_name="us-east-1")

    summary = distill_router(**{**PARAMS, "seed": 14})

    requests = aws.calls_to("create_evaluation_job")
    assert len(requests) == 2  # candidate, teacher, base student, prior: two models per job
    assert all(r["jobName"].startswith("default-") for r in requests)
    table = {row["role"]: row for row in evaluation_table(summary.evaluations)}
    assert table["candidate"]["judge"] == 5.0  # its answers are the teacher's
    assert table["prior"]["judge"] < table["candidate"]["judge"]
    assert all(row["client_p50_ms"] is not None for row in table.values() if row["role"] != "prior")
    assert any(key.endswith("_output.jsonl") for key in s3_keys())
