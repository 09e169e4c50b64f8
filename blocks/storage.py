"""Storage blocks: where datasets, models, the champion ledger and task caches live.

The embedded default is two LocalFileSystem blocks under ROUTER_DISTILL_HOME, saved under fixed
names so Prefect can persist task results (result storage must be a saved block). Any saved
WritableFileSystem (an S3Bucket in AWS) can replace them by name.
"""

from __future__ import annotations

import inspect
import logging
from contextlib import AbstractContextManager, nullcontext
from typing import Any, cast

from botocore.exceptions import ClientError
from prefect.blocks.core import Block
from prefect.filesystems import LocalFileSystem, WritableFileSystem
from prefect.utilities.asyncutils import run_coro_as_sync
from prefect_aws import S3Bucket

from intent_router.errors import UserInputError
from intent_router.settings import home
from intent_router.storage import DirectoryStore, ObjectStore, Versioned

logger = logging.getLogger(__name__)

LOCAL_STORE_BLOCK = "router-distill-store"
LOCAL_RESULTS_BLOCK = "router-distill-results"

_LOST_RACE_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"})
"""S3 answers to a conditional put that lost: 412, 409 (a concurrent conditional write), 404."""


def _sync(result: Any) -> Any:
    """Blocks' file methods are async-dispatched; resolve a coroutine when we got one."""
    return run_coro_as_sync(result) if inspect.iscoroutine(result) else result


class BlockStore:
    """ObjectStore over any Prefect WritableFileSystem block.

    Conditional writes (ConditionalStore) need an S3Bucket block: `write_if` is a put with
    `IfMatch=<etag>` (replace) or `IfNoneMatch="*"` (create), which S3 checks atomically."""

    def __init__(self, block: WritableFileSystem, uri_prefix: str) -> None:
        self.block = block
        self.uri_prefix = uri_prefix.rstrip("/")

    def read(self, path: str) -> bytes | None:
        try:
            data = cast(bytes, _sync(self.block.read_path(path)))
        except (FileNotFoundError, ValueError, OSError):
            return None
        except Exception as error:  # S3 NoSuchKey arrives as a ClientError
            if "NoSuchKey" in str(error) or "404" in str(error):
                return None
            raise
        return data

    def write(self, path: str, data: bytes) -> str:
        _sync(self.block.write_path(path, data))
        return self.uri(path)

    def delete(self, path: str) -> None:
        """Delete an object. S3Bucket blocks only: the WritableFileSystem interface has no
        delete, and writing an empty object instead would leave a corrupt record behind."""
        if not isinstance(self.block, S3Bucket):
            raise NotImplementedError(
                f"deleting objects from a {type(self.block).__name__} block is not supported"
            )
        key = self.block._resolve_path(path)
        client = self.block.credentials.get_s3_client()
        client.delete_object(Bucket=self.block.bucket_name, Key=key)

    def uri(self, path: str) -> str:
        return f"{self.uri_prefix}/{path}"

    # -- ConditionalStore ----------------------------------------------------------------------
    def supports_conditional_writes(self) -> bool:
        return isinstance(self.block, S3Bucket)

    def _s3(self) -> tuple[S3Bucket, Any]:
        if not isinstance(self.block, S3Bucket):
            raise NotImplementedError(
                f"conditional writes to a {type(self.block).__name__} block are not supported; "
                "keep the champion registry in an S3Bucket or LocalFileSystem block"
            )
        return self.block, cast(Any, self.block)._get_s3_client()

    def read_versioned(self, path: str) -> Versioned | None:
        block, client = self._s3()
        try:
            response = client.get_object(Bucket=block.bucket_name, Key=block._resolve_path(path))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return Versioned(cast(bytes, response["Body"].read()), cast(str, response["ETag"]))

    def write_if(self, path: str, data: bytes, version: str | None) -> bool:
        block, client = self._s3()
        condition = {"IfNoneMatch": "*"} if version is None else {"IfMatch": version}
        try:
            client.put_object(
                Bucket=block.bucket_name, Key=block._resolve_path(path), Body=data, **condition
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _LOST_RACE_CODES:
                return False
            raise
        return True

    def locked(self, path: str) -> AbstractContextManager[None]:
        """No lock: S3's conditional puts serialise writers."""
        return nullcontext()


def _save_local(name: str, folder: str) -> LocalFileSystem:
    basepath = str(home() / folder)
    try:
        existing = cast(LocalFileSystem, LocalFileSystem.load(name))
        if existing.basepath == basepath:
            return existing
    except ValueError:
        pass
    block = LocalFileSystem(basepath=basepath)
    block.save(name, overwrite=True)
    logger.info("saved block local-file-system/%s -> %s", name, basepath)
    return block


def load_block(ref: str, kind: Any, what: str) -> Any:
    """The saved block 'slug/name' if it is a `kind`; a one-line UserInputError naming the
    block and the problem otherwise."""
    try:
        block = Block.load(ref)
    except ValueError as error:
        raise UserInputError(f"{what} block {ref!r} not found: {error}") from None
    if not isinstance(block, kind):
        raise UserInputError(f"block {ref!r} ({type(block).__name__}) is not a {what} block")
    return block


def load_storage_block(ref: str) -> WritableFileSystem:
    """The saved file-system block 'slug/name'; a one-line UserInputError otherwise."""
    block: WritableFileSystem = load_block(ref, WritableFileSystem, "storage")
    return block


def describe_storage(ref: str | None, block: WritableFileSystem | None) -> str:
    """Where a run stores, for messages: the block and its type, or the local default."""
    if ref is None:
        return f"the local default (LocalFileSystem under {home()})"
    kind = type(block).__name__ if block is not None else "unknown"
    return f"{ref!r} ({kind})"


def storage_blocks(store_ref: str | None) -> tuple[WritableFileSystem, WritableFileSystem]:
    """(artifact storage, task-result storage) for a run.

    None means the embedded default under ROUTER_DISTILL_HOME; otherwise a saved block as
    'slug/name' whose results go to the same block. Pass the ref from
    `blocks.backends.resolve_storage_ref`, so storage follows the backend.
    """
    if store_ref is None:
        return _save_local(LOCAL_STORE_BLOCK, "store"), _save_local(LOCAL_RESULTS_BLOCK, "results")
    block = load_storage_block(store_ref)
    return block, block


def object_store(block: WritableFileSystem) -> ObjectStore:
    """The domain's view of a storage block."""
    if isinstance(block, LocalFileSystem):
        return DirectoryStore(block.basepath or ".")
    bucket = getattr(block, "bucket_name", None)
    folder = getattr(block, "bucket_folder", "") or ""
    prefix = f"s3://{bucket}/{folder}".rstrip("/") if bucket else type(block).__name__
    return BlockStore(block, prefix)


def local_store() -> DirectoryStore:
    """The embedded default's artifact store, without touching the Prefect API."""
    return DirectoryStore(home() / "store")


def s3_client(storage_ref: str | None) -> Any:
    """An S3 client for reading traffic: the storage block's credentials when it is an S3Bucket,
    else boto3's default credential chain."""
    if storage_ref is not None:
        block = load_storage_block(storage_ref)
        if isinstance(block, S3Bucket):
            return block.credentials.get_s3_client()
    import boto3

    return boto3.client("s3")
