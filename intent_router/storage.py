"""Object storage as the domain sees it: bytes at relative paths.

Flows hand in an adapter around a Prefect storage block (LocalFileSystem or S3Bucket); the
domain and its tests use DirectoryStore directly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol


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
