"""Unit tests for intent_router.backends.bedrock_validation against botocore's real models."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.model import StringShape

from intent_router.backends.bedrock_validation import (
    api_operation_name,
    request_violations,
    response_violations,
    shape_violations,
    validate_request,
)
from intent_router.errors import UserInputError

CREATE_JOB = "CreateModelCustomizationJob"
DEPLOYMENT_ARN = "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/a1b2c3d4e5f6"
CUSTOM_MODEL_ARN = (
    "arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.nova-micro-v1:0:128k/a1b2c3d4e5f6"
)


def _client(service: str) -> BaseClient:
    client: BaseClient = boto3.client(
        service,  # type: ignore[call-overload]
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    return client


@pytest.fixture(scope="module")
def bedrock() -> BaseClient:
    return _client("bedrock")


@pytest.fixture(scope="module")
def runtime() -> BaseClient:
    return _client("bedrock-runtime")


def job_request(**changes: Any) -> dict[str, Any]:
    """The bedrock.md §3.1 request; a change to `...` removes the key."""
    request: dict[str, Any] = {
        "jobName": "router-distill-r42",
        "customModelName": "router-micro-r42",
        "roleArn": "arn:aws:iam::123456789012:role/bedrock-distill",
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
    for key, value in changes.items():
        if value is ...:
            request.pop(key)
        else:
            request[key] = value
    return request


def converse_request(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "modelId": DEPLOYMENT_ARN,
        "system": [{"text": "Return JSON with visual, audio, transcription, metadata weights."}],
        "messages": [{"role": "user", "content": [{"text": "red car chase at night"}]}],
        "inferenceConfig": {"maxTokens": 200, "temperature": 0.3, "topP": 0.9},
    }
    request.update(changes)
    return request


def violations_for(client: BaseClient, operation: str, params: dict[str, Any]) -> list[str]:
    return request_violations(client.meta.service_model, operation, params)


def test_accepts_the_reference_distillation_request(bedrock: BaseClient) -> None:
    assert violations_for(bedrock, CREATE_JOB, job_request()) == []
    validate_request(bedrock, CREATE_JOB, job_request())


def test_accepts_converse_with_a_deployment_arn(runtime: BaseClient) -> None:
    assert violations_for(runtime, "Converse", converse_request()) == []
    validate_request(runtime, "Converse", converse_request())


@pytest.mark.parametrize("name", ["bad name!", "has_underscore", "-leading-dash"])
def test_rejects_job_names_outside_the_pattern(bedrock: BaseClient, name: str) -> None:
    found = violations_for(bedrock, CREATE_JOB, job_request(jobName=name))
    assert len(found) == 1
    assert found[0].startswith(f"jobName: {name!r} does not match pattern")


def test_rejects_a_job_name_over_max_length(bedrock: BaseClient) -> None:
    found = violations_for(bedrock, CREATE_JOB, job_request(jobName="a" * 80))
    assert found == ["jobName: length 80 exceeds max 63"]


@pytest.mark.parametrize("name", ["router.micro", "router__micro", "-router"])
def test_rejects_custom_model_names_outside_the_pattern(bedrock: BaseClient, name: str) -> None:
    found = violations_for(bedrock, CREATE_JOB, job_request(customModelName=name))
    assert [v.split(":")[0] for v in found] == ["customModelName"]


@pytest.mark.parametrize("token", ["run_42", "run.42", "-run42", "run42-"])
def test_rejects_client_request_tokens_outside_the_pattern(bedrock: BaseClient, token: str) -> None:
    found = violations_for(bedrock, CREATE_JOB, job_request(clientRequestToken=token))
    assert [v.split(":")[0] for v in found] == ["clientRequestToken"]


def test_rejects_an_unknown_customization_type(bedrock: BaseClient) -> None:
    found = violations_for(bedrock, CREATE_JOB, job_request(customizationType="DISTILL"))
    assert len(found) == 1
    assert found[0].startswith("customizationType: 'DISTILL' is not one of FINE_TUNING")
    assert "DISTILLATION" in found[0]


def test_rejects_temperature_over_max(runtime: BaseClient) -> None:
    config = {"maxTokens": 200, "temperature": 1.5}
    found = violations_for(runtime, "Converse", converse_request(inferenceConfig=config))
    assert found == ["inferenceConfig.temperature: 1.5 exceeds max 1"]


def test_reports_botocore_findings_too(bedrock: BaseClient, runtime: BaseClient) -> None:
    missing = violations_for(bedrock, CREATE_JOB, job_request(roleArn=...))
    assert missing == ['Missing required parameter in input: "roleArn"']
    unknown = violations_for(bedrock, CREATE_JOB, job_request(jobNmae="x"))
    assert len(unknown) == 1
    assert unknown[0].startswith('Unknown parameter in input: "jobNmae"')
    too_small = violations_for(
        runtime, "Converse", converse_request(inferenceConfig={"maxTokens": 0})
    )
    assert too_small == [
        "Invalid value for parameter inferenceConfig.maxTokens, value: 0, valid min value: 1"
    ]
    wrong_type = violations_for(bedrock, CREATE_JOB, job_request(hyperParameters={"epochCount": 2}))
    assert len(wrong_type) == 1
    assert "hyperParameters.epochCount" in wrong_type[0]


def test_walks_lists_and_nested_structures(bedrock: BaseClient) -> None:
    tags = [{"key": "run", "value": "r42"}, {"key": "bad!", "value": "x"}]
    found = violations_for(bedrock, CREATE_JOB, job_request(jobTags=tags))
    assert len(found) == 1
    assert found[0].startswith("jobTags[1].key: 'bad!' does not match pattern")
    teacher = {"teacherModelConfig": {"teacherModelIdentifier": "Nova Premier"}}
    found = violations_for(
        bedrock,
        CREATE_JOB,
        job_request(customizationConfig={"distillationConfig": teacher}),
    )
    assert len(found) == 1
    assert found[0].startswith(
        "customizationConfig.distillationConfig.teacherModelConfig.teacherModelIdentifier:"
    )


def test_reports_list_max(runtime: BaseClient) -> None:
    metadata = {f"k{n}": "v" for n in range(17)}
    found = violations_for(runtime, "Converse", converse_request(requestMetadata=metadata))
    assert found == ["requestMetadata: length 17 exceeds max 16"]


def test_checks_enums_inside_lists(runtime: BaseClient) -> None:
    messages = [{"role": "bot", "content": [{"text": "hi"}]}]
    found = violations_for(runtime, "Converse", converse_request(messages=messages))
    assert len(found) == 1
    assert found[0].startswith("messages[0].role: 'bot' is not one of user, assistant")


@pytest.mark.parametrize(
    "teacher",
    [
        "us.amazon.nova-premier-v1:0",
        "amazon.nova-premier-v1:0",
        "amazon.nova-pro-v1:0",
        "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-premier-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-premier-v1:0",
    ],
)
def test_accepts_teacher_identifier_forms(bedrock: BaseClient, teacher: str) -> None:
    config = {
        "distillationConfig": {
            "teacherModelConfig": {
                "teacherModelIdentifier": teacher,
                "maxResponseLengthForInference": 1000,
            }
        }
    }
    assert violations_for(bedrock, CREATE_JOB, job_request(customizationConfig=config)) == []


def test_converse_rejects_a_custom_model_arn_as_model_id(runtime: BaseClient) -> None:
    """On demand needs the deployment ARN; the model ARN with ':0:128k' fails the pattern."""
    found = violations_for(runtime, "Converse", converse_request(modelId=CUSTOM_MODEL_ARN))
    assert len(found) == 1
    assert found[0].startswith("modelId: ")
    assert "ConversationalModelId pattern" in found[0]


def test_validate_request_raises_one_line_user_input_error(bedrock: BaseClient) -> None:
    bad = job_request(jobName="bad name!", customizationType="DISTILL", roleArn=...)
    with pytest.raises(UserInputError) as caught:
        validate_request(bedrock, CREATE_JOB, bad)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("invalid bedrock CreateModelCustomizationJob request: ")
    for part in ("roleArn", "jobName: 'bad name!'", "customizationType: 'DISTILL'"):
        assert part in message


def test_validate_request_takes_method_names(bedrock: BaseClient) -> None:
    assert api_operation_name(bedrock, "create_model_customization_job") == CREATE_JOB
    validate_request(bedrock, "create_model_customization_job", job_request())
    with pytest.raises(UserInputError, match="jobName"):
        validate_request(bedrock, "create_model_customization_job", job_request(jobName="a b"))
    with pytest.raises(ValueError, match="no method"):
        api_operation_name(bedrock, "create_distillation_job")


def test_one_line_even_when_a_value_has_a_newline(bedrock: BaseClient) -> None:
    with pytest.raises(UserInputError) as caught:
        validate_request(bedrock, CREATE_JOB, job_request(jobName="two\nlines", roleArn=7))
    assert "\n" not in str(caught.value)


def test_uncompilable_patterns_are_skipped() -> None:
    shape = StringShape("VariableName", {"type": "string", "pattern": r"\p{L}+", "max": 3})
    assert shape_violations(shape, "anything") == ["input: length 8 exceeds max 3"]


def test_response_violations_ignore_metadata_and_catch_bad_status(bedrock: BaseClient) -> None:
    response: dict[str, Any] = {
        "customModelDeploymentArn": DEPLOYMENT_ARN,
        "modelDeploymentName": "router-r42",
        "modelArn": CUSTOM_MODEL_ARN,
        "createdAt": "2025-08-01T09:00:00Z",
        "status": "Active",
        "ResponseMetadata": {"HTTPStatusCode": 200},
    }
    service_model = bedrock.meta.service_model
    assert response_violations(service_model, "GetCustomModelDeployment", response) == []
    response["status"] = "InService"
    found = response_violations(service_model, "GetCustomModelDeployment", response)
    assert found == ["status: 'InService' is not one of Creating, Active, Failed"]
