"""moto S3 and the validated fake Bedrock behind saved blocks, for flow-level tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from prefect_aws import AwsCredentials, S3Bucket

from blocks.bedrock import BedrockDistillationBackend
from intent_router.backends.bedrock import BedrockSettings
from tests.support.fake_bedrock import FakeBedrock

ROLE = "arn:aws:iam::123456789012:role/router-distill-bedrock"


@contextmanager
def bedrock_on_moto(
    monkeypatch: pytest.MonkeyPatch, fake: FakeBedrock, *, bucket: str, name: str
) -> Iterator[S3Bucket]:
    """A moto bucket; AwsCredentials, S3Bucket (folder `runs`) and a Bedrock backend block
    saved as `name`; the backend block's clients are the fake's."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=bucket)
        # One shared client: creating a boto3 client per S3 call is slow under moto.
        monkeypatch.setattr(S3Bucket, "_get_s3_client", lambda self: s3)
        fake.s3 = s3  # batch jobs read their input from, and write their output to, moto S3
        credentials = AwsCredentials(region_name="us-east-1")
        credentials.save(name, overwrite=True)
        block = S3Bucket(bucket_name=bucket, credentials=credentials, bucket_folder="runs")
        block.save(name, overwrite=True)
        BedrockDistillationBackend(
            credentials=credentials, bucket=block, settings=BedrockSettings(role_arn=ROLE)
        ).save(name, overwrite=True)
        monkeypatch.setattr(
            BedrockDistillationBackend, "clients", lambda self: (fake.control, fake.runtime)
        )
        fake.read_object = lambda uri: read_s3_object(s3, uri)
        yield block


def read_s3_object(s3: Any, uri: str) -> bytes | None:
    """The object at an s3:// URI, or None when it does not exist."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return body


def s3_keys(bucket: str) -> list[str]:
    listing = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listing.get("Contents", [])]


class S3Store:
    """A minimal ObjectStore on a boto3 S3 client (moto in unit tests), under `folder`."""

    def __init__(self, client: Any, bucket: str, folder: str = "runs") -> None:
        self.client, self.bucket, self.folder = client, bucket, folder.strip("/")

    def _key(self, path: str) -> str:
        return f"{self.folder}/{path}" if self.folder else path

    def read(self, path: str) -> bytes | None:
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=self._key(path))[
                "Body"
            ].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return body

    def write(self, path: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=self._key(path), Body=data)
        return self.uri(path)

    def delete(self, path: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(path))

    def uri(self, path: str) -> str:
        return f"s3://{self.bucket}/{self._key(path)}"
