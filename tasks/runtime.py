"""What every task needs to reach storage and the backend, resolved once per process."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from blocks.backends import load_backend, resolve_storage_ref
from blocks.storage import load_storage_block, local_store, object_store
from intent_router.backends.base import Backend
from intent_router.errors import TRANSIENT_AWS_CODES, TransientBackendError
from intent_router.params import DistillParams
from intent_router.settings import home
from intent_router.storage import ObjectStore


class Runtime(BaseModel):
    """References (not objects) so tasks stay serialisable and cache keys stay stable."""

    model_config = ConfigDict(frozen=True)

    backend: str = "local"
    storage_block: str | None = None

    @classmethod
    def for_params(cls, params: DistillParams) -> Runtime:
        """The run's backend and storage references; storage follows the backend (its bucket)
        when the run names none."""
        storage = resolve_storage_ref(params.backend, params.storage_block)
        return cls(backend=params.backend, storage_block=storage)

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


# Modules whose code decides what the teacher is asked and what a label or a split looks like.
LABEL_CODE_ROOTS = (
    "intent_router.synthesis",
    "intent_router.teacher",
    "intent_router.dedupe",
    "intent_router.dataset",
    "intent_router.backends.local",
    "intent_router.backends.bedrock",
)


def _imported_modules(path: Path, package: str) -> set[str]:
    """The modules of `package` that the file at `path` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(n for n in names if n == package or n.startswith(package + "."))
    return found


def label_code_files() -> list[Path]:
    """Every file that shapes labels: the roots, what they import from the package (followed
    transitively), and the package's data files (lexicons, vocabulary, taxonomies)."""
    pending, seen, files = list(LABEL_CODE_ROOTS), set(), set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        origin = Path(spec.origin)
        files.add(origin)
        pending.extend(_imported_modules(origin, "intent_router"))
    data = Path(str(resources.files("intent_router") / "data"))
    files.update(p for p in data.rglob("*") if p.is_file())
    return sorted(files)


@lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of every file that shapes labels, so caches follow code and data changes."""
    root = Path(str(resources.files("intent_router"))).parent
    digest = hashlib.sha256()
    for path in label_code_files():
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
