"""Storage blocks: where datasets, models, the champion ledger and task caches live.

The embedded default is two LocalFileSystem blocks under ROUTER_DISTILL_HOME, saved under fixed
names so Prefect can persist task results (result storage must be a saved block). Any saved
WritableFileSystem (an S3Bucket in AWS) can replace them by name.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, cast

from prefect.blocks.core import Block
from prefect.filesystems import LocalFileSystem, WritableFileSystem
from prefect.utilities.asyncutils import run_coro_as_sync
from prefect_aws import S3Bucket

from intent_router.errors import UserInputError
from intent_router.settings import home
from intent_router.storage import DirectoryStore, ObjectStore

logger = logging.getLogger(__name__)

LOCAL_STORE_BLOCK = "router-distill-store"
LOCAL_RESULTS_BLOCK = "router-distill-results"


def _sync(result: Any) -> Any:
    """Blocks' file methods are async-dispatched; resolve a coroutine when we got one."""
    return run_coro_as_sync(result) if inspect.iscoroutine(result) else result


class BlockStore:
    """ObjectStore over any Prefect WritableFileSystem block."""

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


def load_storage_block(ref: str) -> WritableFileSystem:
    """The saved file-system block 'slug/name'; a one-line UserInputError otherwise."""
    try:
        block = Block.load(ref)
    except ValueError as error:
        raise UserInputError(f"storage block {ref!r} not found: {error}") from None
    if not isinstance(block, WritableFileSystem):
        raise UserInputError(f"block {ref!r} is a {type(block).__name__}, not a file system")
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
