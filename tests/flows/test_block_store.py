"""BlockStore over a prefect-aws S3Bucket block, against moto."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from prefect_aws import AwsCredentials, S3Bucket

from blocks.storage import BlockStore


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Bucket]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="store-test")
        credentials = AwsCredentials(region_name="us-east-1")
        yield S3Bucket(bucket_name="store-test", credentials=credentials, bucket_folder="f")


def test_s3_block_store_round_trip_missing_and_delete(bucket: S3Bucket) -> None:
    store = BlockStore(bucket, "s3://store-test/f")
    assert store.read("routers/x/champion.json") is None
    assert (
        store.write("routers/x/champion.json", b"{}") == "s3://store-test/f/routers/x/champion.json"
    )
    assert store.read("routers/x/champion.json") == b"{}"
    keys = [
        o["Key"]
        for o in boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket="store-test")[
            "Contents"
        ]
    ]
    assert keys == ["f/routers/x/champion.json"]
    store.delete("routers/x/champion.json")
    assert store.read("routers/x/champion.json") is None
