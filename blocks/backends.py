"""Backend blocks. The backend is chosen here, in one place, from a block; flows never branch."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field

from intent_router.backends.base import Backend
from intent_router.backends.local import LocalBackend
from intent_router.errors import UserInputError
from intent_router.storage import ObjectStore

EMBEDDED = "local"


class LocalDistillationBackend(Block):
    """Embedded default: the reference teacher and a hashed n-gram student, all on this machine."""

    _block_type_name = "Router Distill Local Backend"
    _description = "Local teacher, local student, local storage: runs offline on one machine."

    l2: float = Field(
        default=1e-6, gt=0, le=1, description="L2 penalty of the student's softmax layer."
    )
    max_iterations: int = Field(
        default=400, ge=10, le=5000, description="L-BFGS iterations when training the student."
    )

    def build(self, store: ObjectStore) -> Backend:
        return LocalBackend(store, l2=self.l2, max_iterations=self.max_iterations)


def load_backend(ref: str, store: ObjectStore) -> Backend:
    """Build the backend named by `ref`: 'local' (embedded default) or a saved block 'slug/name'."""
    if ref == EMBEDDED:
        return LocalDistillationBackend().build(store)
    try:
        block = Block.load(ref)
    except ValueError as error:
        raise UserInputError(f"backend block {ref!r} not found: {error}") from None
    build = getattr(block, "build", None)
    if build is None:
        raise UserInputError(f"block {ref!r} ({type(block).__name__}) is not a backend block")
    backend: Backend = build(store)
    return backend
