"""Traffic from S3 (moto): plain objects, the `since` filter, access errors, and Bedrock
model-invocation logs shaped like the records Bedrock delivers."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from intent_router.prompts import teacher_user_message
from intent_router.traffic import (
    TrafficSourceError,
    parse_traffic_source,
    read_invocation_logs,
    read_s3_traffic,
    read_traffic,
)

BUCKET = "traffic-bucket"
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
ACCOUNT = "123456789012"
DEPLOYMENT = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:custom-model-deployment/abc123def456"
LOG_PREFIX = f"AWSLogs/{ACCOUNT}/BedrockModelInvocationLogs/us-east-1/"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


class Aged:
    """The moto client, with the listed LastModified of some keys replaced."""

    def __init__(self, client: Any, modified: dict[str, datetime]) -> None:
        self.client = client
        self.modified = modified

    def get_object(self, **params: Any) -> Any:
        return self.client.get_object(**params)

    def get_paginator(self, name: str) -> Any:
        inner = self.client.get_paginator(name)
        modified = self.modified

        class Pages:
            def paginate(self, **params: Any) -> Iterator[dict[str, Any]]:
                for page in inner.paginate(**params):
                    for item in page.get("Contents", []):
                        item["LastModified"] = modified.get(item["Key"], item["LastModified"])
                    yield page

        return Pages()


def put_traffic(s3: Any) -> None:
    lines = [
        {"query": "cats on skateboards", "timestamp": "2026-01-05T12:00:00Z"},
        {"query": "goal highlights", "timestamp": 1767614400},
    ]
    body = "".join(json.dumps(line) + "\n" for line in lines).encode() + b"junk\n"
    s3.put_object(Bucket=BUCKET, Key="traffic/day1/part-0.jsonl.gz", Body=gzip.compress(body))
    s3.put_object(Bucket=BUCKET, Key="traffic/day2/plain.txt", Body=b"dogs surfing\n\xff\n\n")
    s3.put_object(Bucket=BUCKET, Key="traffic/day2/", Body=b"")  # a console "folder"
    s3.put_object(Bucket=BUCKET, Key="traffic/_SUCCESS", Body=b"")
    s3.put_object(Bucket=BUCKET, Key="elsewhere/other.txt", Body=b"not under the prefix\n")


def test_reads_every_format_under_the_prefix(s3: Any) -> None:
    put_traffic(s3)
    raw = read_s3_traffic(s3, BUCKET, "traffic/")
    assert [(x.query, x.source, x.line) for x in raw.queries] == [
        ("cats on skateboards", f"s3://{BUCKET}/traffic/day1/part-0.jsonl.gz", 1),
        ("goal highlights", f"s3://{BUCKET}/traffic/day1/part-0.jsonl.gz", 2),
        ("dogs surfing", f"s3://{BUCKET}/traffic/day2/plain.txt", 1),
    ]
    assert raw.queries[0].timestamp == T0
    report = raw.report
    assert (report.files, report.lines, report.non_utf8, report.unparseable, report.empty) == (
        2,
        6,
        1,
        1,
        1,
    )
    assert report.ignored_files == 1  # _SUCCESS; the folder marker is not an object to read
    source = parse_traffic_source(f"s3://{BUCKET}/traffic/")
    assert read_traffic(source, s3_client=s3).queries == raw.queries


def test_since_skips_objects_modified_before_it(s3: Any) -> None:
    put_traffic(s3)
    aged = Aged(
        s3,
        {
            "traffic/day1/part-0.jsonl.gz": T0,
            "traffic/day2/plain.txt": T0 + timedelta(days=1),
        },
    )
    raw = read_s3_traffic(aged, BUCKET, "traffic/", since=T0 + timedelta(hours=1))
    assert [x.query for x in raw.queries] == ["dogs surfing"]
    assert raw.report.older_objects == 1
    with pytest.raises(TrafficSourceError, match="yields no usable query"):
        read_s3_traffic(aged, BUCKET, "traffic/", since=T0 + timedelta(days=2))
    naive = read_s3_traffic(aged, BUCKET, "traffic/", since=datetime(2026, 1, 5, 11))
    assert len(naive.queries) == 3  # a naive `since` is UTC


def test_missing_bucket_and_empty_prefix_are_one_line_errors(s3: Any) -> None:
    with pytest.raises(TrafficSourceError) as caught:
        read_s3_traffic(s3, "no-such-bucket", "x/")
    assert str(caught.value).startswith("cannot read traffic s3://no-such-bucket/x/: NoSuchBucket")
    with pytest.raises(TrafficSourceError, match=r"s3://traffic-bucket/nothing/ yields no usable"):
        read_s3_traffic(s3, BUCKET, "nothing/")


def test_access_denied_on_listing_is_a_traffic_source_error() -> None:
    client = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "list_objects_v2",
            service_error_code="AccessDenied",
            service_message="Access Denied",
            http_status_code=403,
        )
        with pytest.raises(TrafficSourceError) as caught:
            read_s3_traffic(client, BUCKET, "traffic/")
    assert str(caught.value) == (
        f"cannot read traffic s3://{BUCKET}/traffic/: AccessDenied (Access Denied)"
    )


def test_access_denied_on_an_object_names_the_object(s3: Any) -> None:
    put_traffic(s3)

    class Denied(Aged):
        def get_object(self, **params: Any) -> Any:
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject"
            )

    with pytest.raises(TrafficSourceError) as caught:
        read_s3_traffic(Denied(s3, {}), BUCKET, "traffic/")
    assert str(caught.value) == (
        f"cannot read traffic s3://{BUCKET}/traffic/day1/part-0.jsonl.gz: "
        "AccessDenied (Access Denied)"
    )


def test_corrupt_gzip_object_names_the_object(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="traffic/bad.jsonl.gz", Body=b"not gzip")
    with pytest.raises(TrafficSourceError, match=r"s3://traffic-bucket/traffic/bad\.jsonl\.gz is"):
        read_s3_traffic(s3, BUCKET, "traffic/")


# -- invocation logs ---------------------------------------------------------------------------
def record(
    text_content: list[dict[str, Any]] | None = None,
    *,
    operation: str = "Converse",
    model_id: str = DEPLOYMENT,
    metadata: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    at: str = "2026-01-05T12:00:01Z",
) -> dict[str, Any]:
    """One record as Bedrock model-invocation logging writes it."""
    if body is None:
        body = {
            "messages": [{"role": "user", "content": text_content or []}],
            "system": [{"text": "Return JSON with visual, audio weights."}],
            "inferenceConfig": {"maxTokens": 300},
        }
    entry: dict[str, Any] = {
        "schemaType": "ModelInvocationLog",
        "schemaVersion": "1.0",
        "timestamp": at,
        "accountId": ACCOUNT,
        "identity": {"arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/search/app"},
        "region": "us-east-1",
        "requestId": "915a6a04-3f83-4c70-a277-7fbf7ea546b3",
        "operation": operation,
        "modelId": model_id,
        "input": {
            "inputContentType": "application/json",
            "inputBodyJson": body,
            "inputTokenCount": 35,
        },
        "output": {
            "outputContentType": "application/json",
            "outputBodyJson": {
                "output": {"message": {"role": "assistant", "content": [{"text": "{}"}]}},
                "stopReason": "end_turn",
                "metrics": {"latencyMs": 120},
                "usage": {"inputTokens": 35, "outputTokens": 40, "totalTokens": 75},
            },
            "outputTokenCount": 40,
        },
    }
    if metadata is not None:
        entry["requestMetadata"] = metadata
    return entry


PROD = {"app": "search", "env": "prod"}


def put_logs(s3: Any) -> None:
    hour1 = [
        record([{"text": "cats on skateboards"}], metadata=PROD),
        record(
            body={
                "messages": [
                    {"role": "user", "content": [{"text": "earlier turn"}]},
                    {"role": "assistant", "content": [{"text": "{}"}]},
                    {"role": "user", "content": [{"text": "final"}, {"text": "part"}]},
                ]
            },
            metadata=PROD,
            at="2026-01-05T12:00:02.500Z",
        ),
        record([{"text": "other app"}], metadata={"app": "other", "env": "prod"}),
        record([{"text": "no metadata"}]),
        record([{"text": "another model"}], model_id="amazon.nova-pro-v1:0", metadata=PROD),
        record([{"text": "streamed query"}], operation="ConverseStream", metadata=PROD),
        record([{"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}], metadata=PROD),
        record([{"text": teacher_user_message('quoted "teacher" query')}], metadata=PROD),
    ]
    hour2 = [
        record(
            operation="InvokeModel",
            body={
                "schemaVersion": "messages-v1",
                "system": [{"text": "route"}],
                "messages": [{"role": "user", "content": [{"text": "nova invoke query"}]}],
                "inferenceConfig": {"maxTokens": 300},
            },
            metadata=PROD,
        ),
        record(
            operation="InvokeModel",
            body={
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 100,
                "messages": [{"role": "user", "content": "anthropic string query"}],
            },
            metadata=PROD,
        ),
        record(
            operation="InvokeModel",
            body={
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 100,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "base64", "data": "x"}},
                            {"type": "text", "text": "anthropic parts query"},
                        ],
                    }
                ],
            },
            metadata=PROD,
        ),
        record(operation="InvokeModel", body={"inputText": "embed me"}, metadata=PROD),
        record(operation="ApplyGuardrail", body={"content": []}, metadata=PROD),
        {"schemaType": "SomethingElse"},
    ]
    for name, records, extra in (
        ("12/20260105T120000123Z_6c2a.json.gz", hour1, b""),
        ("13/20260105T130000456Z_9f1b.json.gz", hour2, b"{truncated\n"),
    ):
        body = "".join(json.dumps(r) + "\n" for r in records).encode() + extra
        s3.put_object(Bucket=BUCKET, Key=f"{LOG_PREFIX}2026/01/05/{name}", Body=gzip.compress(body))
    s3.put_object(
        Bucket=BUCKET,
        Key=f"AWSLogs/{ACCOUNT}/BedrockModelInvocationLogs/amazon-bedrock-logs-permission-check",
        Body=b"",
    )


def test_invocation_logs_without_filters_give_every_user_text(s3: Any) -> None:
    put_logs(s3)
    raw = read_invocation_logs(s3, BUCKET, "AWSLogs/")
    assert [x.query for x in raw.queries] == [
        "cats on skateboards",
        "final\npart",
        "other app",
        "no metadata",
        "another model",
        "streamed query",
        'quoted "teacher" query',
        "nova invoke query",
        "anthropic string query",
        "anthropic parts query",
    ]
    assert raw.queries[0].timestamp == T0 + timedelta(seconds=1)
    assert raw.queries[1].timestamp == T0 + timedelta(seconds=2.5)
    assert raw.queries[1].line == 2
    assert (
        raw.queries[0].source
        == f"s3://{BUCKET}/{LOG_PREFIX}2026/01/05/12/20260105T120000123Z_6c2a.json.gz"
    )
    report = raw.report
    assert report.skip_reasons == {
        "no_user_text": 2,  # the image-only message, the embedding body
        "not_invocation_log": 1,
        "operation": 1,
    }
    assert report.skipped_records == 4
    assert (report.files, report.lines, report.unparseable) == (2, 15, 1)
    assert report.ignored_files == 1  # the permission-check object


def test_invocation_logs_filtered_by_model_and_request_metadata(s3: Any) -> None:
    put_logs(s3)
    source = parse_traffic_source(
        f"bedrock-logs:s3://{BUCKET}/AWSLogs/",
        model_id="custom-model-deployment/abc123def456",
        request_metadata={"app": "search"},
    )
    raw = read_traffic(source, s3_client=s3)
    assert [x.query for x in raw.queries] == [
        "cats on skateboards",
        "final\npart",
        "streamed query",
        'quoted "teacher" query',
        "nova invoke query",
        "anthropic string query",
        "anthropic parts query",
    ]
    assert raw.report.skip_reasons == {
        "model": 1,
        "no_user_text": 2,
        "not_invocation_log": 1,
        "operation": 1,
        "request_metadata": 2,  # another app; no requestMetadata at all
    }
    exact = read_invocation_logs(s3, BUCKET, LOG_PREFIX, model_id=DEPLOYMENT)
    assert "another model" not in [x.query for x in exact.queries]
    with pytest.raises(TrafficSourceError) as caught:
        read_invocation_logs(s3, BUCKET, "AWSLogs/", model_id="amazon.titan-text-lite-v1")
    message = str(caught.value)
    assert message.startswith(f"traffic source bedrock-logs:s3://{BUCKET}/AWSLogs/ yields no")
    assert "skipped records" in message and "\n" not in message
