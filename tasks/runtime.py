"""What every task needs to reach storage and the backend, resolved once per process."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from blocks.backends import load_backend, resolve_storage_ref
from blocks.storage import load_storage_block, local_store, object_store
from intent_router.backends.base import Backend
from intent_router.errors import TRANSIENT_AWS_CODES, TransientBackendError
from intent_router.settings import home
from intent_router.storage import ObjectStore


class Runtime(BaseModel):
    """References (not objects) so tasks stay serialisable and cache keys stay stable."""

    model_config = ConfigDict(frozen=True)

    backend: str = "local"
    storage_block: str | None = None

    def store(self) -> ObjectStore:
        return _store(self.backend, self.storage_block, str(home()))

    def backend_client(self) -> Backend:
        return _backend(self.backend, self.storage_block, str(home()))


@lru_cache(maxsize=8)
def _store(backend: str, storage_block: str | None, root: str) -> ObjectStore:
    ref = resolve_storage_ref(backend, storage_block)  # storage follows the backend
    if ref is None:
        return local_store()
    return object_store(load_storage_block(ref))


@lru_cache(maxsize=8)
def _backend(backend: str, storage_block: str | None, root: str) -> Backend:
    return load_backend(backend, _store(backend, storage_block, root))


def is_transient(error: BaseException | None) -> bool:
    """Worth a retry: throttling, a model not ready, a 5xx. Validation errors are not."""
    if isinstance(error, TransientBackendError):
        return True
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code") in TRANSIENT_AWS_CODES
    return False


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry_condition_fn: retry only transient failures."""
    try:
        error = state.result(raise_on_failure=False)
    except Exception as raised:  # result retrieval itself failed
        error = raised
    return is_transient(error if isinstance(error, BaseException) else None)


@lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the synthesis and teacher code and data, so caches follow code changes."""
    digest = hashlib.sha256()
    package = resources.files("intent_router")
    for name in (
        "synthesis.py",
        "teacher.py",
        "text.py",
        "schema.py",
        "dedupe.py",
        "dataset.py",
        "data/cues.json",
        "data/vocabulary.json",
        "data/entities.json",
    ):
        item = package / name
        if item.is_file():
            digest.update(name.encode())
            digest.update(item.read_bytes())
    return digest.hexdigest()[:16]
