"""Storage follows the backend block; a paid backend is refused on storage it cannot use;
a bad `--backend` is a one-line error. moto for S3, the validated fake for Bedrock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from prefect.blocks.core import Block
from prefect.filesystems import LocalFileSystem
from prefect_aws import S3Bucket

from blocks.backends import (
    check_storage_fits_backend,
    load_backend,
    resolve_storage_ref,
)
from blocks.storage import storage_blocks
from intent_router.backends.base import Backend
from intent_router.errors import UserInputError
from intent_router.storage import DirectoryStore, ObjectStore
from tasks.runtime import Runtime
from tests.support.aws import bedrock_on_moto
from tests.support.aws import s3_keys as bucket_keys
from tests.support.fake_bedrock import FakeBedrock

BUCKET = "router-storage-bucket"
BACKEND = "router-distill-bedrock-backend/storage-test"


class PaidBucketlessBackend(Block):
    """A paid backend block without a bucket of its own (test only)."""

    _block_type_name = "Router Distill Test Paid Backend"
    paid: ClassVar[bool] = True

    def build(self, store: ObjectStore) -> Backend:
        raise AssertionError("a refused backend is never built")


@pytest.fixture
def aws(router_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBedrock]:
    """moto S3 with a bucket, a saved Bedrock backend block whose bucket is a saved block."""
    fake = FakeBedrock()
    with bedrock_on_moto(monkeypatch, fake, bucket=BUCKET, name="storage-test"):
        LocalFileSystem(basepath=str(router_home / "elsewhere")).save(
            "storage-test", overwrite=True
        )
        yield fake


def s3_keys() -> list[str]:
    return bucket_keys(BUCKET)


def test_the_backend_bucket_is_the_default_storage(aws: FakeBedrock) -> None:
    assert resolve_storage_ref(BACKEND, None) == "s3-bucket/storage-test"
    store, results = storage_blocks(resolve_storage_ref(BACKEND, None))
    assert isinstance(store, S3Bucket) and isinstance(results, S3Bucket)  # task results too
    assert store.bucket_name == BUCKET and results._block_document_name == "storage-test"

    runtime = Runtime(backend=BACKEND, storage_block=None)
    uri = runtime.store().write("routers/default/ledger.jsonl", b"{}\n")
    assert uri == f"s3://{BUCKET}/runs/routers/default/ledger.jsonl"
    assert s3_keys() == ["runs/routers/default/ledger.jsonl"]
    check_storage_fits_backend(BACKEND, None)  # fits: no error
    assert aws.calls == []  # resolving and checking call nothing paid


def test_an_explicit_storage_block_wins_and_local_stays_local(aws: FakeBedrock) -> None:
    assert resolve_storage_ref(BACKEND, "s3-bucket/other") == "s3-bucket/other"
    assert resolve_storage_ref("local", None) is None
    assert isinstance(Runtime().store(), DirectoryStore)
    check_storage_fits_backend("local", None)
    check_storage_fits_backend("local", "local-file-system/storage-test")


def test_a_paid_backend_on_local_storage_is_refused_before_any_call(aws: FakeBedrock) -> None:
    with pytest.raises(UserInputError) as refused:
        check_storage_fits_backend(BACKEND, "local-file-system/storage-test")
    message = str(refused.value)
    assert "\n" not in message
    assert repr(BACKEND) in message and "is paid" in message
    assert "'local-file-system/storage-test' (LocalFileSystem)" in message
    assert aws.calls == [] and s3_keys() == []


def test_a_paid_backend_without_bucket_or_storage_is_refused(aws: FakeBedrock) -> None:
    PaidBucketlessBackend().save("storage-test", overwrite=True)
    ref = "router-distill-test-paid-backend/storage-test"
    assert resolve_storage_ref(ref, None) is None
    with pytest.raises(UserInputError, match=r"needs S3 storage .* the local default") as refused:
        check_storage_fits_backend(ref, None)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("bedrock", r"^backend 'bedrock' is neither 'local' nor a saved block reference"),
        ("router-distill-bedrock-backend/missing", r"^backend block .*missing.* not found"),
        ("no-such-type/x", r"^backend block 'no-such-type/x' not found"),
        ("local-file-system/storage-test", r"\(LocalFileSystem\) is not a backend block$"),
    ],
)
def test_a_bad_backend_choice_is_a_one_line_error(
    router_home: Path, ref: str, expected: str
) -> None:
    LocalFileSystem(basepath=str(router_home)).save("storage-test", overwrite=True)
    for call in (
        lambda: load_backend(ref, DirectoryStore("unused")),
        lambda: resolve_storage_ref(ref, None),
        lambda: check_storage_fits_backend(ref, None),
    ):
        with pytest.raises(UserInputError, match=expected) as refused:
            call()
        assert "\n" not in str(refused.value)
