"""Object storage as the domain sees it: bytes at relative paths.

Flows hand in an adapter around a Prefect storage block (LocalFileSystem or S3Bucket); the
domain and its tests use DirectoryStore directly.

Stores that hold shared state (the champion registry) also implement ConditionalStore: a
versioned read and a compare-and-swap write (`write_if`), plus an optional advisory lock
(`locked`). DirectoryStore does both with `fcntl.flock`; the S3 adapter uses conditional puts
(`IfMatch` / `IfNoneMatch="*"`) and needs no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

from intent_router.errors import CorruptStateError, UserInputError


class ObjectStore(Protocol):
    def read(self, path: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""

    def write(self, path: str, data: bytes) -> str:
        """Write atomically; return the object's URI."""

    def delete(self, path: str) -> None: ...

    def uri(self, path: str) -> str: ...


class Versioned(NamedTuple):
    """An object's bytes and an opaque version token (an S3 ETag, a content hash)."""

    data: bytes
    version: str


@runtime_checkable
class ConditionalStore(ObjectStore, Protocol):
    """An ObjectStore that can replace an object only if nobody changed it meanwhile."""

    def read_versioned(self, path: str) -> Versioned | None:
        """The object and its version, or None when it does not exist."""

    def write_if(self, path: str, data: bytes, version: str | None) -> bool:
        """Write only if the object is still at `version` (None: only if it does not exist).

        True when written; False when another writer got there first."""

    def locked(self, path: str) -> AbstractContextManager[None]:
        """Exclusive advisory lock named by `path` (a no-op where conditional writes suffice)."""

    def supports_conditional_writes(self) -> bool:
        """False when `write_if` cannot be made atomic on this store."""


def content_version(data: bytes) -> str:
    """Version token of a store without native versions: the content's SHA-256."""
    return hashlib.sha256(data).hexdigest()


class DirectoryStore:
    """An ObjectStore on a local directory; writes go through a temp file and a rename."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def _path(self, path: str) -> Path:
        target = (self.root / path).resolve()
        if self.root not in target.parents and target != self.root:
            raise ValueError(f"path {path!r} escapes the storage root")
        return target

    def _not_a_folder(self, path: str, target: Path) -> CorruptStateError:
        """One-line error naming the first ancestor of `target` that is a file, not a folder."""
        for folder in reversed(target.parents):
            if folder != self.root and self.root not in folder.parents:
                continue
            if folder.exists() and not folder.is_dir():
                shown = folder.relative_to(self.root).as_posix() if folder != self.root else folder
                return CorruptStateError(
                    f"{shown} is a file, not a folder (needed for {path}); move it away"
                )
        if target.is_dir():
            return CorruptStateError(f"{path} is a folder, not a file; move it away")
        return CorruptStateError(f"{path} cannot be used: a path component is not a folder")

    def read(self, path: str) -> bytes | None:
        target = self._path(path)
        try:
            return target.read_bytes()
        except FileNotFoundError:
            return None
        except (NotADirectoryError, IsADirectoryError):
            raise self._not_a_folder(path, target) from None

    def _replace(self, path: str, target: Path, data: bytes, durable: bool) -> None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise self._not_a_folder(path, target) from None
        temp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(temp, "wb") as handle:
                handle.write(data)
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            temp.replace(target)
        except IsADirectoryError:
            temp.unlink(missing_ok=True)
            raise self._not_a_folder(path, target) from None
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def write(self, path: str, data: bytes) -> str:
        target = self._path(path)
        self._replace(path, target, data, durable=False)
        return target.as_uri()

    def delete(self, path: str) -> None:
        self._path(path).unlink(missing_ok=True)

    def uri(self, path: str) -> str:
        return self._path(path).as_uri()

    # -- ConditionalStore ----------------------------------------------------------------------
    def read_versioned(self, path: str) -> Versioned | None:
        data = self.read(path)
        return None if data is None else Versioned(data, content_version(data))

    def write_if(self, path: str, data: bytes, version: str | None) -> bool:
        target = self._path(path)
        lock = target.with_name(f".{target.name}.lock").relative_to(self.root).as_posix()
        with self.locked(lock):
            current = self.read_versioned(path)
            if (current.version if current else None) != version:
                return False
            self._replace(path, target, data, durable=True)
        return True

    @contextmanager
    def _flock(self, path: str) -> Iterator[None]:
        target = self._path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            raise self._not_a_folder(path, target) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def locked(self, path: str) -> AbstractContextManager[None]:
        """Exclusive `flock` on the file at `path` (created if missing), across processes."""
        return self._flock(path)

    def supports_conditional_writes(self) -> bool:
        return True


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
