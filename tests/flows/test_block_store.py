"""BlockStore over a prefect-aws S3Bucket block, against moto."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from prefect.filesystems import LocalFileSystem
from prefect_aws import AwsCredentials, S3Bucket

from blocks.storage import BlockStore
from intent_router.errors import UserInputError
from intent_router.registry import ChampionRecord, ChampionRegistry
from tests.support.records import assert_compare_and_swap, champion_record


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


def _record(model_id: str) -> ChampionRecord:
    return champion_record(model_id, metrics={"top_signal_accuracy": 0.95})


@pytest.fixture
def atomic_moto_puts(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto checks If-Match / If-None-Match and then stores, unlocked; S3 does both atomically."""
    from moto.s3.responses import S3Response

    lock = threading.Lock()
    original = S3Response.put_object

    def put_object(self: Any) -> Any:
        with lock:
            return original(self)

    monkeypatch.setattr(S3Response, "put_object", put_object)


def test_s3_conditional_writes_create_once_and_replace_only_an_unchanged_object(
    bucket: S3Bucket,
) -> None:
    assert_compare_and_swap(BlockStore(bucket, "s3://store-test/f"), "k.json")


def test_threads_racing_on_an_s3_ledger_get_unique_contiguous_entries(
    bucket: S3Bucket, atomic_moto_puts: None
) -> None:
    store = BlockStore(bucket, "s3://store-test/f")
    registry = ChampionRegistry(store, "default")
    registry.promote(_record("seed"))
    workers, per_worker = 4, 8
    start = threading.Barrier(workers)

    def work(worker: int) -> int:
        start.wait()
        for i in range(per_worker):
            ChampionRegistry(store, "default").promote(_record(f"w{worker}-m{i}"))
        return per_worker

    with ThreadPoolExecutor(workers) as pool:
        done = sum(pool.map(work, range(workers)))

    entries = registry.ledger()
    assert [e.entry for e in entries] == list(range(1, done + 2))
    for before, after in itertools.pairwise(entries):
        assert after.previous_model_id == before.champion.model_id
    assert registry.current() == entries[-1].champion
    registry.check()


def test_a_non_s3_block_cannot_change_the_registry(tmp_path: Path) -> None:
    store = BlockStore(LocalFileSystem(basepath=str(tmp_path)), "local")
    registry = ChampionRegistry(store, "default")

    assert not store.supports_conditional_writes()
    with pytest.raises(UserInputError, match="storage LocalFileSystem cannot write"):
        registry.check()
    with pytest.raises(NotImplementedError, match="conditional writes to a LocalFileSystem"):
        store.write_if("k", b"x", None)
