"""Object storage as the domain sees it: bytes at relative paths.

Flows hand in an adapter around a Prefect storage block (LocalFileSystem or S3Bucket); the
domain and its tests use DirectoryStore directly.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Protocol

from intent_router.errors import UserInputError


class ObjectStore(Protocol):
    def read(self, path: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""

    def write(self, path: str, data: bytes) -> str:
        """Write atomically; return the object's URI."""

    def delete(self, path: str) -> None: ...

    def uri(self, path: str) -> str: ...


class DirectoryStore:
    """An ObjectStore on a local directory; writes go through a temp file and a rename."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def _path(self, path: str) -> Path:
        target = (self.root / path).resolve()
        if self.root not in target.parents and target != self.root:
            raise ValueError(f"path {path!r} escapes the storage root")
        return target

    def read(self, path: str) -> bytes | None:
        try:
            return self._path(path).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, path: str, data: bytes) -> str:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        temp.write_bytes(data)
        temp.replace(target)
        return target.as_uri()

    def delete(self, path: str) -> None:
        self._path(path).unlink(missing_ok=True)

    def uri(self, path: str) -> str:
        return self._path(path).as_uri()


def check_writable(store: ObjectStore) -> None:
    """Write and delete a small probe object; UserInputError naming the root when that fails."""
    probe = f".probe/{uuid.uuid4().hex}"
    try:
        store.write(probe, b"router-distill write probe\n")
        with contextlib.suppress(NotImplementedError):  # such a store keeps the tiny probe
            store.delete(probe)
    except Exception as error:  # OSError locally; botocore's ClientError on S3
        reason = (
            f"{error.strerror} ({error.filename})"
            if isinstance(error, OSError) and error.strerror
            else f"{type(error).__name__}: {error}"
        )
        raise UserInputError(f"storage root {store.uri('')} is not writable: {reason}") from None
