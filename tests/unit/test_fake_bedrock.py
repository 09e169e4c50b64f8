"""Tests of the Bedrock fake itself: state machine, idempotency, errors, shapes."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError, ParamValidationError

from intent_router.backends.bedrock_validation import response_violations, validate_request
from tests.support.fake_bedrock import FakeBedrock

ROLE = "arn:aws:iam::123456789012:role/bedrock-distill"
JOB_ARN = re.compile(
    r"arn:aws:bedrock:us-east-1:123456789012:model-customization-job/"
    r"amazon\.nova-micro-v1:0:128k/[a-z0-9]{12}"
)
MODEL_ARN = re.compile(
    r"arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon\.nova-micro-v1:0:128k/[a-z0-9]{12}"
)
DEPLOYMENT_ARN = re.compile(
    r"arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/[a-z0-9]{12}"
)
USER = [{"role": "user", "content": [{"text": "red car chase at night"}]}]
SYSTEM = [{"text": "Return JSON weights."}]


def job_request(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "jobName": "router-distill-r42",
        "customModelName": "router-micro-r42",
        "roleArn": ROLE,
        "clientRequestToken": "r42-0f3a9c",
        "baseModelIdentifier": "amazon.nova-micro-v1:0:128k",
        "customizationType": "DISTILLATION",
        "trainingDataConfig": {"s3Uri": "s3://router-bucket/runs/r42/train.jsonl"},
        "outputDataConfig": {"s3Uri": "s3://router-bucket/runs/r42/output/"},
        "customizationConfig": {
            "distillationConfig": {
                "teacherModelConfig": {
                    "teacherModelIdentifier": "us.amazon.nova-premier-v1:0",
                    "maxResponseLengthForInference": 1000,
                }
            }
        },
    }
    request.update(changes)
    return request


def error_of(caught: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def run_job(fake: FakeBedrock, **changes: Any) -> dict[str, Any]:
    """Create a job and poll it to a terminal state; the last description."""
    arn = fake.control.create_model_customization_job(**job_request(**changes))["jobArn"]
    for _ in range(fake.job_polls_to_finish):
        job = fake.control.get_model_customization_job(jobIdentifier=arn)
    return job


def active_model(fake: FakeBedrock) -> str:
    model_arn: str = run_job(fake)["outputModelArn"]
    while fake.control.get_custom_model(modelIdentifier=model_arn)["modelStatus"] != "Active":
        pass
    return model_arn


def deploy(fake: FakeBedrock, model_arn: str, token: str = "r42-deploy") -> str:
    created = fake.control.create_custom_model_deployment(
        modelDeploymentName="router-r42", modelArn=model_arn, clientRequestToken=token
    )
    arn: str = created["customModelDeploymentArn"]
    return arn


def active_deployment(fake: FakeBedrock) -> str:
    arn = deploy(fake, active_model(fake))
    for _ in range(fake.deployment_polls_to_active):
        fake.control.get_custom_model_deployment(customModelDeploymentIdentifier=arn)
    return arn


@pytest.fixture
def fake() -> FakeBedrock:
    return FakeBedrock(responder=lambda model, system, user: f"{model}|{system}|{user}")


def test_job_goes_in_progress_then_completed(fake: FakeBedrock) -> None:
    arn = fake.control.create_model_customization_job(**job_request())["jobArn"]
    assert JOB_ARN.fullmatch(arn)
    assert arn.endswith(hashlib.sha256(b"r42-0f3a9c").hexdigest()[:12])
    seen = []
    for _ in range(3):
        job = fake.control.get_model_customization_job(jobIdentifier=arn)
        details = {stage: value["status"] for stage, value in job["statusDetails"].items()}
        seen.append((job["status"], details, "outputModelArn" in job))
    assert seen == [
        (
            "InProgress",
            {
                "validationDetails": "Completed",
                "dataProcessingDetails": "InProgress",
                "trainingDetails": "NotStarted",
            },
            False,
        ),
        (
            "InProgress",
            {
                "validationDetails": "Completed",
                "dataProcessingDetails": "Completed",
                "trainingDetails": "InProgress",
            },
            False,
        ),
        (
            "Completed",
            {
                "validationDetails": "Completed",
                "dataProcessingDetails": "Completed",
                "trainingDetails": "Completed",
            },
            True,
        ),
    ]
    assert MODEL_ARN.fullmatch(job["outputModelArn"])
    assert job["endTime"] > job["creationTime"]
    by_name = fake.control.get_model_customization_job(jobIdentifier="router-distill-r42")
    assert by_name["jobArn"] == arn
    assert by_name["status"] == "Completed"


def test_failed_job_carries_the_message() -> None:
    fake = FakeBedrock(fail_job_with="Invalid record at line 7: missing schemaVersion")
    job = run_job(fake)
    assert job["status"] == "Failed"
    assert job["failureMessage"] == "Invalid record at line 7: missing schemaVersion"
    assert job["statusDetails"]["validationDetails"]["status"] == "Failed"
    assert "outputModelArn" not in job
    assert fake.models == {}


def test_same_token_returns_the_same_job(fake: FakeBedrock) -> None:
    first = fake.control.create_model_customization_job(**job_request())
    again = fake.control.create_model_customization_job(**job_request())
    assert again["jobArn"] == first["jobArn"]
    assert len(fake.jobs) == 1
    assert len(fake.calls_to("create_model_customization_job")) == 2


def test_same_name_with_another_token_is_rejected(fake: FakeBedrock) -> None:
    fake.control.create_model_customization_job(**job_request())
    with pytest.raises(ClientError) as caught:
        fake.control.create_model_customization_job(**job_request(clientRequestToken="r43-1"))
    assert error_of(caught) == ("ValidationException", 400)
    assert "already exists" in str(caught.value)
    assert isinstance(caught.value, fake.control.exceptions.ValidationException)
    assert len(fake.jobs) == 1


def test_invalid_request_raises_param_validation_error_and_creates_nothing(
    fake: FakeBedrock,
) -> None:
    with pytest.raises(ParamValidationError, match="jobName: 'bad name!'"):
        fake.control.create_model_customization_job(**job_request(jobName="bad name!"))
    with pytest.raises(ParamValidationError, match="customizationType"):
        fake.control.create_model_customization_job(**job_request(customizationType="DISTILL"))
    assert fake.jobs == {}
    assert len(fake.calls) == 2


def test_service_side_checks_on_the_job(fake: FakeBedrock) -> None:
    with pytest.raises(ClientError, match="does not support DISTILLATION"):
        fake.control.create_model_customization_job(
            **job_request(baseModelIdentifier="amazon.nova-micro-v1:0")
        )
    with pytest.raises(ClientError, match="teacher model"):
        fake.control.create_model_customization_job(
            **job_request(
                customizationConfig={
                    "distillationConfig": {
                        "teacherModelConfig": {"teacherModelIdentifier": "meta.llama3-70b-v1:0"}
                    }
                }
            )
        )


def test_stop_then_stopped_and_conflict(fake: FakeBedrock) -> None:
    arn = fake.control.create_model_customization_job(**job_request())["jobArn"]
    assert (
        fake.control.stop_model_customization_job(jobIdentifier=arn)["ResponseMetadata"][
            "HTTPStatusCode"
        ]
        == 200
    )
    assert fake.jobs[arn].status == "Stopping"
    job = fake.control.get_model_customization_job(jobIdentifier=arn)
    assert job["status"] == "Stopped"
    assert job["statusDetails"]["validationDetails"]["status"] == "Stopped"
    with pytest.raises(ClientError) as caught:
        fake.control.stop_model_customization_job(jobIdentifier=arn)
    # botocore models Bedrock's ConflictException as HTTP 400.
    assert error_of(caught) == ("ConflictException", 400)


def test_unknown_job_is_not_found(fake: FakeBedrock) -> None:
    with pytest.raises(ClientError) as caught:
        fake.control.get_model_customization_job(jobIdentifier="no-such-job")
    assert error_of(caught) == ("ResourceNotFoundException", 404)


def test_list_jobs_filters(fake: FakeBedrock) -> None:
    run_job(fake)
    fake.control.create_model_customization_job(
        **job_request(jobName="router-distill-r43", clientRequestToken="r43-1")
    )
    names = [
        s["jobName"]
        for s in fake.control.list_model_customization_jobs()["modelCustomizationJobSummaries"]
    ]
    assert names == ["router-distill-r43", "router-distill-r42"]
    done = fake.control.list_model_customization_jobs(statusEquals="Completed")
    assert [s["jobName"] for s in done["modelCustomizationJobSummaries"]] == ["router-distill-r42"]
    assert MODEL_ARN.fullmatch(done["modelCustomizationJobSummaries"][0]["customModelArn"])
    r43 = fake.control.list_model_customization_jobs(nameContains="r43")
    assert len(r43["modelCustomizationJobSummaries"]) == 1
    pages = fake.control.get_paginator("list_model_customization_jobs").paginate(
        PaginationConfig={"PageSize": 1}
    )
    assert [len(p["modelCustomizationJobSummaries"]) for p in pages] == [1, 1]


def test_custom_model_goes_creating_then_active() -> None:
    fake = FakeBedrock(model_polls_to_active=2)
    model_arn = run_job(fake)["outputModelArn"]
    statuses = [
        fake.control.get_custom_model(modelIdentifier=model_arn)["modelStatus"] for _ in range(3)
    ]
    assert statuses == ["Creating", "Active", "Active"]
    model = fake.control.get_custom_model(modelIdentifier="router-micro-r42")
    assert model["modelArn"] == model_arn
    assert model["jobArn"] == next(iter(fake.jobs))


def test_deployment_needs_an_active_model() -> None:
    fake = FakeBedrock(model_polls_to_active=2)
    model_arn = run_job(fake)["outputModelArn"]
    with pytest.raises(ClientError) as caught:
        deploy(fake, model_arn)
    assert error_of(caught) == ("ValidationException", 400)
    assert fake.deployments == {}


def test_deployment_goes_creating_then_active(fake: FakeBedrock) -> None:
    arn = deploy(fake, active_model(fake))
    assert DEPLOYMENT_ARN.fullmatch(arn)
    assert arn.endswith(hashlib.sha256(b"r42-deploy").hexdigest()[:12])
    assert deploy(fake, active_model(fake)) == arn  # same token: same deployment
    assert len(fake.deployments) == 1
    statuses = [
        fake.control.get_custom_model_deployment(customModelDeploymentIdentifier=arn)["status"]
        for _ in range(3)
    ]
    assert statuses == ["Creating", "Active", "Active"]
    listed = fake.control.list_custom_model_deployments(statusEquals="Active")
    assert [d["customModelDeploymentArn"] for d in listed["modelDeploymentSummaries"]] == [arn]


def test_deployment_failed_with_message() -> None:
    fake = FakeBedrock(fail_deployment_with="Insufficient capacity for on-demand deployment")
    arn = deploy(fake, active_model(fake))
    for _ in range(fake.deployment_polls_to_active):
        deployment = fake.control.get_custom_model_deployment(customModelDeploymentIdentifier=arn)
    assert deployment["status"] == "Failed"
    assert deployment["failureMessage"] == "Insufficient capacity for on-demand deployment"
    with pytest.raises(ClientError) as caught:
        fake.runtime.converse(modelId=arn, messages=USER)
    assert error_of(caught) == ("ValidationException", 400)


def test_converse_against_an_active_deployment(fake: FakeBedrock) -> None:
    arn = active_deployment(fake)
    params = {"modelId": arn, "messages": USER, "system": SYSTEM}
    validate_request(fake.runtime, "Converse", params)
    response = fake.runtime.converse(**params, inferenceConfig={"maxTokens": 200})
    answer = f"{arn}|Return JSON weights.|red car chase at night"
    assert response["output"]["message"] == {"role": "assistant", "content": [{"text": answer}]}
    assert response["stopReason"] == "end_turn"
    prompt = "Return JSON weights.red car chase at night"
    assert response["usage"] == {
        "inputTokens": math.ceil(len(prompt) / 4),
        "outputTokens": math.ceil(len(answer) / 4),
        "totalTokens": math.ceil(len(prompt) / 4) + math.ceil(len(answer) / 4),
    }
    assert isinstance(response["metrics"]["latencyMs"], int)


def test_converse_before_the_deployment_is_active(fake: FakeBedrock) -> None:
    arn = deploy(fake, active_model(fake))
    with pytest.raises(ClientError) as caught:
        fake.runtime.converse(modelId=arn, messages=USER)
    assert error_of(caught) == ("ValidationException", 400)


def test_converse_truncates_at_max_tokens(fake: FakeBedrock) -> None:
    response = fake.runtime.converse(
        modelId="amazon.nova-micro-v1:0", messages=USER, inferenceConfig={"maxTokens": 2}
    )
    assert response["stopReason"] == "max_tokens"
    assert response["usage"]["outputTokens"] == 2


@pytest.mark.parametrize("model_id", ["amazon.nova-micro-v1:0", "us.amazon.nova-premier-v1:0"])
def test_converse_against_foundation_models(fake: FakeBedrock, model_id: str) -> None:
    response = fake.runtime.converse(modelId=model_id, messages=USER, system=SYSTEM)
    assert response["output"]["message"]["content"][0]["text"].startswith(f"{model_id}|")


@pytest.mark.parametrize(
    ("model_id", "message"),
    [
        ("amazon.nova-premier-v1:0", "inference profile"),
        ("amazon.nova-micro-v1:0:128k", "on-demand throughput"),
        ("amazon.nova-nano-v9:0", "model identifier is invalid"),
    ],
)
def test_converse_rejects_models_not_invocable_on_demand(
    fake: FakeBedrock, model_id: str, message: str
) -> None:
    with pytest.raises(ClientError, match=message) as caught:
        fake.runtime.converse(modelId=model_id, messages=USER)
    assert error_of(caught) == ("ValidationException", 400)


def test_converse_against_a_deleted_deployment_fails(fake: FakeBedrock) -> None:
    arn = active_deployment(fake)
    fake.control.delete_custom_model_deployment(customModelDeploymentIdentifier=arn)
    assert arn not in fake.deployments
    assert fake.deleted_deployments[arn].deleted
    with pytest.raises(ClientError) as caught:
        fake.runtime.converse(modelId=arn, messages=USER)
    assert error_of(caught) == ("ValidationException", 400)
    with pytest.raises(ClientError) as caught:
        fake.control.get_custom_model_deployment(customModelDeploymentIdentifier=arn)
    assert error_of(caught) == ("ResourceNotFoundException", 404)


def test_converse_checks_the_conversation(fake: FakeBedrock) -> None:
    assistant_first = [{"role": "assistant", "content": [{"text": "hi"}]}, *USER]
    with pytest.raises(ClientError, match="start with a user message"):
        fake.runtime.converse(modelId="amazon.nova-micro-v1:0", messages=assistant_first)
    with pytest.raises(ParamValidationError, match="temperature"):
        fake.runtime.converse(
            modelId="amazon.nova-micro-v1:0", messages=USER, inferenceConfig={"temperature": 1.5}
        )


def test_throttle_injection(fake: FakeBedrock) -> None:
    fake.throttle("converse", times=2)
    for _ in range(2):
        with pytest.raises(ClientError) as caught:
            fake.runtime.converse(modelId="amazon.nova-micro-v1:0", messages=USER)
        assert error_of(caught) == ("ThrottlingException", 429)
        assert isinstance(caught.value, fake.runtime.exceptions.ThrottlingException)
    fake.runtime.converse(modelId="amazon.nova-micro-v1:0", messages=USER)
    assert [name for name, _ in fake.calls] == ["converse"] * 3


def test_injected_errors_use_modelled_status(fake: FakeBedrock) -> None:
    fake.inject_error("create_custom_model_deployment", "ServiceQuotaExceededException")
    fake.inject_error("converse", "ModelNotReadyException")
    model_arn = active_model(fake)
    with pytest.raises(ClientError) as caught:
        deploy(fake, model_arn)
    assert error_of(caught) == ("ServiceQuotaExceededException", 400)
    with pytest.raises(ClientError) as caught:
        fake.runtime.converse(modelId="amazon.nova-micro-v1:0", messages=USER)
    assert error_of(caught) == ("ModelNotReadyException", 429)
    with pytest.raises(ValueError, match="not a bedrock"):
        fake.throttle("create_distillation_job", 1)


def test_list_foundation_models_for_distillation(fake: FakeBedrock) -> None:
    models = fake.control.list_foundation_models(byCustomizationType="DISTILLATION")
    summaries = models["modelSummaries"]
    assert [m["modelId"] for m in summaries] == [
        "amazon.nova-micro-v1:0:128k",
        "amazon.nova-lite-v1:0:300k",
        "amazon.nova-pro-v1:0:300k",
    ]
    for summary in summaries:
        assert "DISTILLATION" in summary["customizationsSupported"]
        assert summary["inferenceTypesSupported"] == ["PROVISIONED"]
    on_demand = fake.control.list_foundation_models(byInferenceType="ON_DEMAND")
    assert "amazon.nova-micro-v1:0" in [m["modelId"] for m in on_demand["modelSummaries"]]


def test_unimplemented_methods_say_so(fake: FakeBedrock) -> None:
    with pytest.raises(NotImplementedError, match="list_evaluation_jobs"):
        fake.control.list_evaluation_jobs()
    with pytest.raises(AttributeError):
        fake.control.no_such_method()


def test_every_response_matches_its_output_shape(
    fake: FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the fake must never call the real client")

    monkeypatch.setattr(BaseClient, "_make_api_call", no_network)
    stopped = FakeBedrock()
    stop_arn = stopped.control.create_model_customization_job(**job_request())["jobArn"]
    deployment_arn = active_deployment(fake)
    model_arn = fake.deployments[deployment_arn].model_arn
    job_arn = next(iter(fake.jobs))
    deployment = {"customModelDeploymentIdentifier": deployment_arn}
    calls: list[tuple[Any, str, dict[str, Any]]] = [
        (stopped.control, "StopModelCustomizationJob", {"jobIdentifier": stop_arn}),
        (stopped.control, "GetModelCustomizationJob", {"jobIdentifier": stop_arn}),
        (fake.control, "GetModelCustomizationJob", {"jobIdentifier": job_arn}),
        (fake.control, "ListModelCustomizationJobs", {}),
        (fake.control, "GetCustomModel", {"modelIdentifier": model_arn}),
        (fake.control, "GetCustomModelDeployment", deployment),
        (fake.control, "ListCustomModelDeployments", {}),
        (fake.control, "ListFoundationModels", {}),
        (fake.runtime, "Converse", {"modelId": deployment_arn, "messages": USER, "system": SYSTEM}),
        (fake.control, "DeleteCustomModelDeployment", deployment),
    ]
    for client, operation, params in calls:
        response = getattr(client, method_name(client, operation))(**params)
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
        service_model = client.meta.service_model
        assert response_violations(service_model, operation, response) == [], operation


def method_name(client: Any, operation: str) -> str:
    mapping: dict[str, str] = client.meta.method_to_api_mapping
    return next(method for method, api in mapping.items() if api == operation)
