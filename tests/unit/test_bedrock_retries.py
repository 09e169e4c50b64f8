"""botocore's own retries, exercised through the real retry handler with a before-send hook
(the Stubber bypasses retries), using the client configuration the Bedrock block builds."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from intent_router.backends.bedrock import BedrockSettings
from intent_router.backends.bedrock_validation import request_violations


class RawBody(bytes):
    def stream(self, **_: Any) -> Iterator[bytes]:
        return iter([bytes(self)])


def client_with_config() -> Any:
    from blocks.bedrock import BedrockDistillationBackend

    config = BedrockDistillationBackend.boto_config(
        BedrockDistillationBackend.model_construct(
            settings=BedrockSettings(role_arn="arn:aws:iam::123456789012:role/r"),
            botocore_max_attempts=3,
            read_timeout_seconds=30,
            converse_concurrency=4,
        )
    )
    return boto3.client("bedrock", aws_access_key_id="x", aws_secret_access_key="x", config=config)


REQUEST = {
    "modelDeploymentName": "default-student-abc123def456",
    "modelArn": "arn:aws:bedrock:us-east-1:123456789012:custom-model/"
    "amazon.nova-micro-v1:0:128k/abc123def456",
    "clientRequestToken": "a" * 64,
}


def install(client: Any, replies: list[tuple[int, dict[str, str], bytes]]) -> list[int]:
    seen: list[int] = []

    def reply(request: Any, **_: Any) -> AWSResponse:
        status, headers, body = replies[min(len(seen), len(replies) - 1)]
        seen.append(status)
        return AWSResponse(request.url, status, headers, RawBody(body))

    client.meta.events.register("before-send.bedrock.CreateCustomModelDeployment", reply)
    return seen


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setattr(time, "sleep", lambda _s: None)
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


def test_request_is_valid_against_the_service_model() -> None:
    client = client_with_config()
    assert (
        request_violations(client.meta.service_model, "CreateCustomModelDeployment", REQUEST) == []
    )


def test_throttling_is_retried_by_botocore_then_succeeds() -> None:
    client = client_with_config()
    arn = "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/abc123def456"
    seen = install(
        client,
        [
            (429, {"x-amzn-ErrorType": "ThrottlingException"}, b"{}"),
            (200, {}, b'{"customModelDeploymentArn": "' + arn.encode() + b'"}'),
        ],
    )
    response = client.create_custom_model_deployment(**REQUEST)
    assert response["customModelDeploymentArn"] == arn
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert seen == [429, 200]


def test_retries_stop_at_the_configured_attempts() -> None:
    client = client_with_config()
    seen = install(client, [(429, {"x-amzn-ErrorType": "ThrottlingException"}, b"{}")])
    with pytest.raises(ClientError) as raised:
        client.create_custom_model_deployment(**REQUEST)
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    assert len(seen) == 4  # max_attempts=3 retries + the first attempt


def test_validation_errors_are_not_retried() -> None:
    client = client_with_config()
    seen = install(
        client, [(400, {"x-amzn-ErrorType": "ValidationException"}, b'{"message": "bad"}')]
    )
    with pytest.raises(ClientError):
        client.create_custom_model_deployment(**REQUEST)
    assert seen == [400]
