"""Batch labelling (CreateModelInvocationJob) against the validated fake and moto S3."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ParamValidationError
from moto import mock_aws

from intent_router.backends.bedrock import BedrockBackend, BedrockSettings
from intent_router.backends.bedrock_batch import BATCH_DIR, plan_batch_job
from intent_router.errors import BatchLabellingFailed, WaitTimeout
from intent_router.pricing import BATCH_DISCOUNT, BATCH_MIN_RECORDS, labelling_path, price_for
from intent_router.prompts import teacher_prompt
from intent_router.schema import parse_routing_output
from intent_router.taxonomy import builtin_taxonomy
from intent_router.teacher import ReferenceTeacher
from tests.support.aws import S3Store
from tests.support.fake_bedrock import FakeBedrock

ROLE = "arn:aws:iam::123456789012:role/router-distill-bedrock"
BATCH_ROLE = "arn:aws:iam::123456789012:role/router-distill-batch"
BUCKET = "router-batch-bucket"
TAXONOMY = builtin_taxonomy()
TEACHER = ReferenceTeacher(TAXONOMY)
QUERIES = [
    f"{thing} at {place}"
    for thing in ("fireworks", "a dog barking", "a news anchor", "a jazz trio")
    for place in [f"dawn in town {n}" for n in range(30)]
]  # 120


def teacher_answers(model_id: str, system: str, user: str) -> str:
    return TEACHER.label_json(user)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def fake(s3: Any) -> FakeBedrock:
    return FakeBedrock(responder=teacher_answers, s3=s3)


def backend(fake: FakeBedrock, **settings: Any) -> BedrockBackend:
    config = {"role_arn": ROLE, "batch_labelling_threshold": 100, **settings}
    return BedrockBackend(
        BedrockSettings(**config),
        control=fake.control,
        runtime=fake.runtime,
        store=S3Store(fake.s3, BUCKET),
        sleep=lambda seconds: None,
    )


def assert_teacher_labels(results: list[Any], queries: list[str]) -> None:
    assert [r.query for r in results] == queries
    for result, query in zip(results, queries, strict=True):
        assert result.text is not None, result
        decision = parse_routing_output(result.text, TAXONOMY.signal_names)
        expected = parse_routing_output(TEACHER.label_json(query), TAXONOMY.signal_names)
        assert decision.weights == expected.weights


def test_labelling_path_needs_the_threshold_and_the_service_minimum() -> None:
    assert labelling_path(5000, None) == "on-demand"
    assert labelling_path(5000, 0) == "on-demand"
    assert labelling_path(999, 1000) == "on-demand"
    assert labelling_path(1000, 1000) == "batch"
    assert labelling_path(BATCH_MIN_RECORDS - 1, 10) == "on-demand"
    assert labelling_path(BATCH_MIN_RECORDS, 10) == "batch"


def test_batch_at_the_threshold_is_one_job_with_no_converse_call(fake: FakeBedrock) -> None:
    bedrock = backend(fake, batch_role_arn=BATCH_ROLE, batch_job_timeout_hours=48)

    results = bedrock.label(QUERIES, TAXONOMY)

    assert_teacher_labels(results, QUERIES)
    assert all(r.attempts == 1 for r in results)
    assert fake.calls_to("converse") == []
    [create] = fake.calls_to("create_model_invocation_job")
    assert create["modelId"] == "us.amazon.nova-premier-v1:0"
    assert create["modelInvocationType"] == "Converse"
    assert create["roleArn"] == BATCH_ROLE
    assert create["timeoutDurationInHours"] == 48
    input_uri = create["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
    assert input_uri.startswith(f"s3://{BUCKET}/runs/{BATCH_DIR}/")
    key = input_uri.removeprefix(f"s3://{BUCKET}/")
    lines = fake.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()
    assert len(lines) == len(QUERIES)
    first = json.loads(lines[0])
    assert first["modelInput"]["system"][0]["text"] == teacher_prompt(TAXONOMY)
    assert json.dumps(QUERIES[0]) in first["modelInput"]["messages"][0]["content"][0]["text"]
    assert first["modelInput"]["inferenceConfig"] == {"maxTokens": 200, "temperature": 0.2}
    assert [job.status for job in fake.batch_jobs.values()] == ["Completed"]


def test_below_the_threshold_labels_through_converse(fake: FakeBedrock) -> None:
    results = backend(fake, batch_labelling_threshold=1000).label(QUERIES, TAXONOMY)
    assert_teacher_labels(results, QUERIES)
    assert len(fake.calls_to("converse")) == len(QUERIES)
    assert fake.calls_to("create_model_invocation_job") == []


def test_partially_completed_job_retries_failed_records_on_demand(fake: FakeBedrock) -> None:
    fake.batch_error_records = 7

    results = backend(fake).label(QUERIES, TAXONOMY)

    assert_teacher_labels(results, QUERIES)
    assert [job.status for job in fake.batch_jobs.values()] == ["PartiallyCompleted"]
    retried = [c["messages"][0]["content"][0]["text"] for c in fake.calls_to("converse")]
    assert len(retried) == 7
    assert all(json.dumps(q) in text for q, text in zip(QUERIES[:7], retried, strict=True))
    assert [r.attempts for r in results[:8]] == [2] * 7 + [1]


def test_invalid_batch_answers_are_retried_on_demand(fake: FakeBedrock) -> None:
    bad = {QUERIES[3], QUERIES[50]}
    seen: set[str] = set()

    def once_invalid(model_id: str, system: str, user: str) -> str:
        if user in bad and user not in seen:
            seen.add(user)
            return "I think it is mostly visual."
        return TEACHER.label_json(user)

    fake.responder = once_invalid
    results = backend(fake).label(QUERIES, TAXONOMY)
    assert_teacher_labels(results, QUERIES)
    assert len(fake.calls_to("converse")) == 2
    assert results[3].attempts == 2 and results[50].attempts == 2


def test_failed_job_is_a_clear_error_with_the_services_message(fake: FakeBedrock) -> None:
    fake.fail_batch_with = "Access denied: the role cannot read s3://router-batch-bucket"
    with pytest.raises(BatchLabellingFailed, match="ended Failed: Access denied: the role"):
        backend(fake).label(QUERIES, TAXONOMY)
    assert fake.calls_to("converse") == []


def test_a_retried_call_reattaches_to_the_same_job(fake: FakeBedrock) -> None:
    bedrock = backend(fake)
    fake.inject_error("get_model_invocation_job", "AccessDeniedException", message="lost")
    with pytest.raises(ClientError, match="lost"):
        bedrock.label(QUERIES, TAXONOMY)

    results = bedrock.label(QUERIES, TAXONOMY)

    assert_teacher_labels(results, QUERIES)
    assert len(fake.calls_to("create_model_invocation_job")) == 1
    assert len(fake.batch_jobs) == 1
    assert fake.calls_to("converse") == []


def test_after_a_failed_job_the_next_call_starts_attempt_two(fake: FakeBedrock) -> None:
    bedrock = backend(fake)
    fake.fail_batch_with = "Internal failure"
    with pytest.raises(BatchLabellingFailed):
        bedrock.label(QUERIES, TAXONOMY)
    fake.fail_batch_with = None

    results = bedrock.label(QUERIES, TAXONOMY)

    assert_teacher_labels(results, QUERIES)
    first, second = fake.calls_to("create_model_invocation_job")
    assert second["jobName"] == first["jobName"] + "-2"
    assert second["clientRequestToken"] != first["clientRequestToken"]


def test_wait_past_the_timeout_stops_the_job(fake: FakeBedrock) -> None:
    fake.batch_polls_to_finish = 10**6
    bedrock = backend(fake, batch_poll_interval_seconds=3600, batch_job_timeout_hours=24)
    with pytest.raises(WaitTimeout, match="batch_job_timeout_hours=24"):
        bedrock.label(QUERIES, TAXONOMY)
    assert len(fake.calls_to("get_model_invocation_job")) == 25
    assert len(fake.calls_to("stop_model_invocation_job")) == 1
    assert [job.status for job in fake.batch_jobs.values()] == ["Stopping"]


def test_the_job_follows_the_batch_content() -> None:
    settings = BedrockSettings(role_arn=ROLE)
    prompt = teacher_prompt(TAXONOMY)
    job = plan_batch_job(QUERIES, prompt, settings)
    assert plan_batch_job(QUERIES, prompt, settings) == job
    assert plan_batch_job(QUERIES[::-1], prompt, settings).key != job.key
    other_teacher = BedrockSettings(role_arn=ROLE, teacher_model_id="us.amazon.nova-pro-v1:0")
    assert plan_batch_job(QUERIES, prompt, other_teacher).key != job.key


# -- the fake's own rules ------------------------------------------------------------------------


def batch_request(fake: FakeBedrock, records: int, **changes: Any) -> dict[str, Any]:
    lines = [
        json.dumps(
            {
                "recordId": f"R{n:010d}",
                "modelInput": {"messages": [{"role": "user", "content": [{"text": f"q {n}"}]}]},
            }
        )
        for n in range(records)
    ]
    fake.s3.put_object(Bucket=BUCKET, Key="in/input.jsonl", Body="\n".join(lines).encode())
    request = {
        "jobName": "router-label-test",
        "roleArn": ROLE,
        "clientRequestToken": "token1",
        "modelId": "us.amazon.nova-premier-v1:0",
        "inputDataConfig": {"s3InputDataConfig": {"s3Uri": f"s3://{BUCKET}/in/input.jsonl"}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": f"s3://{BUCKET}/out/"}},
        "modelInvocationType": "Converse",
    }
    return {**request, **changes}


def test_fake_rejects_models_batch_inference_cannot_use(fake: FakeBedrock) -> None:
    deployment = "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/abcdef123456"
    with pytest.raises(ParamValidationError, match="ModelId pattern"):
        fake.control.create_model_invocation_job(**batch_request(fake, 100, modelId=deployment))
    with pytest.raises(ClientError, match="inference profile") as caught:
        fake.control.create_model_invocation_job(
            **batch_request(fake, 100, modelId="amazon.nova-premier-v1:0")
        )
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert fake.batch_jobs == {}


def test_fake_fails_a_job_with_fewer_than_the_minimum_records(fake: FakeBedrock) -> None:
    arn = fake.control.create_model_invocation_job(**batch_request(fake, 99))["jobArn"]
    job = fake.control.get_model_invocation_job(jobIdentifier=arn)
    assert job["status"] == "Failed"
    assert "fewer than the minimum of 100" in job["message"]


def test_fake_job_runs_submitted_to_completed_and_writes_the_output(fake: FakeBedrock) -> None:
    request = batch_request(fake, 100)
    arn = fake.control.create_model_invocation_job(**request)["jobArn"]
    assert fake.control.create_model_invocation_job(**request)["jobArn"] == arn  # same token
    states = [fake.control.get_model_invocation_job(jobIdentifier=arn)["status"] for _ in range(3)]
    assert states == ["Validating", "InProgress", "Completed"]
    key = f"out/{arn.rsplit('/', 1)[-1]}/input.jsonl.out"
    lines = fake.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()
    first = json.loads(lines[0])
    assert len(lines) == 100 and first["recordId"] == "R0000000000"
    assert first["modelOutput"]["usage"]["outputTokens"] > 0
    with pytest.raises(ClientError, match="cannot be stopped"):
        fake.control.stop_model_invocation_job(jobIdentifier=arn)


def test_estimate_prices_batched_labelling_at_the_discount() -> None:
    from intent_router.params import DistillParams
    from intent_router.preflight import estimate_cost

    params = DistillParams(train_count=200, holdout_count=40, batches=2)

    def estimate(path: Any) -> Any:
        return estimate_cost(
            params,
            TAXONOMY,
            teacher_model_id="us.amazon.nova-premier-v1:0",
            evaluated_models={},
            labelling_path_of=path,
        )

    on_demand = estimate(None).lines[0]
    lines = estimate(lambda n: "batch" if n >= 100 else "on-demand").lines
    batched = next(line for line in lines if "batch inference" in line.item)
    assert lines[0].calls + batched.calls == on_demand.calls and batched.calls > 0
    assert lines[0].input_tokens + batched.input_tokens == on_demand.input_tokens
    price = price_for("us.amazon.nova-premier-v1:0")
    full = price.cost(batched.input_tokens, batched.output_tokens)
    assert batched.usd == pytest.approx(full * (1 - BATCH_DISCOUNT))
    assert lines[0].usd == pytest.approx(price.cost(lines[0].input_tokens, lines[0].output_tokens))
