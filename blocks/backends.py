"""Backend blocks. The backend is chosen here, in one place, from a block; flows never branch.

Storage follows the backend here too: `resolve_storage_ref` picks the storage block a run uses
and `check_storage_fits_backend` refuses a paid backend on storage it cannot use.
"""

from __future__ import annotations

import logging
from typing import ClassVar, Protocol, runtime_checkable

from prefect.blocks.core import Block
from prefect_aws import S3Bucket
from pydantic import Field

from blocks.storage import describe_storage, load_block, load_storage_block
from intent_router.backends.base import Backend
from intent_router.backends.local import LocalBackend
from intent_router.errors import UserInputError
from intent_router.storage import ObjectStore

logger = logging.getLogger(__name__)

EMBEDDED = "local"


@runtime_checkable
class BackendBlock(Protocol):
    """What every backend block offers: whether it costs money, and the backend itself."""

    paid: ClassVar[bool]

    def build(self, store: ObjectStore) -> Backend: ...


class LocalDistillationBackend(Block):
    """Embedded default: the reference teacher and a hashed n-gram student, all on this machine."""

    _block_type_name = "Router Distill Local Backend"
    _description = "Local teacher, local student, local storage: runs offline on one machine."

    paid: ClassVar[bool] = False

    l2: float = Field(
        default=1e-6, gt=0, le=1, description="L2 penalty of the student's softmax layer."
    )
    max_iterations: int = Field(
        default=300, ge=10, le=5000, description="L-BFGS iterations when training the student."
    )

    def build(self, store: ObjectStore) -> Backend:
        return LocalBackend(store, l2=self.l2, max_iterations=self.max_iterations)


def load_backend_block(ref: str) -> BackendBlock:
    """The backend block named by `ref` ('local' or 'slug/name'); a one-line UserInputError
    when it is malformed, missing or not a backend block."""
    if ref == EMBEDDED:
        return LocalDistillationBackend()
    slug, _, name = ref.partition("/")
    if not slug or not name:
        raise UserInputError(
            f"backend {ref!r} is neither {EMBEDDED!r} nor a saved block reference 'slug/name'"
        )
    block: BackendBlock = load_block(ref, BackendBlock, "backend")
    return block


def load_backend(ref: str, store: ObjectStore) -> Backend:
    """Build the backend named by `ref`: 'local' (embedded default) or a saved block 'slug/name'."""
    return load_backend_block(ref).build(store)


def _bucket_ref(backend_ref: str, block: BackendBlock) -> str | None:
    """'s3-bucket/<name>' of the backend block's own bucket, or None when it has none."""
    bucket = getattr(block, "bucket", None)
    if not isinstance(bucket, S3Bucket):
        return None
    name = bucket._block_document_name
    if name is None or bucket._is_anonymous:
        raise UserInputError(
            f"the bucket of backend block {backend_ref!r} is not a named saved block; save it "
            "(e.g. `router-distill blocks create --backend aws`) or pass --storage-block"
        )
    return f"{S3Bucket.get_block_type_slug()}/{name}"


def resolve_storage_ref(backend_ref: str, storage_ref: str | None) -> str | None:
    """The storage block a run uses: `storage_ref` if given, else the backend block's bucket,
    else None (the LocalFileSystem default under ROUTER_DISTILL_HOME)."""
    if storage_ref is not None:
        return storage_ref
    if backend_ref == EMBEDDED:
        return None
    return _bucket_ref(backend_ref, load_backend_block(backend_ref))


def check_storage_fits_backend(backend_ref: str, storage_ref: str | None) -> None:
    """Refuse, before any paid call, a paid backend whose storage is not an S3 bucket (its
    jobs read and write S3 URIs). One-line UserInputError naming both."""
    block = load_backend_block(backend_ref)
    if not block.paid:
        return
    resolved = storage_ref if storage_ref is not None else _bucket_ref(backend_ref, block)
    storage = None if resolved is None else load_storage_block(resolved)
    if isinstance(storage, S3Bucket):
        return
    raise UserInputError(
        f"backend {backend_ref!r} is paid and needs S3 storage (an s3-bucket block), but the "
        f"storage is {describe_storage(resolved, storage)}: pass --storage-block s3-bucket/NAME "
        "or give the backend block a bucket"
    )
