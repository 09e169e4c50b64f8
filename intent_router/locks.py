"""An exclusive lock between processes on one machine that dies with its holder.

`flock` on a file: the kernel releases it when the holding process exits, however it exits
(kill -9 included), so a crashed run can never leave the lock taken.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from intent_router.errors import RouterDistillError

POLL_S = 0.2


class LockTimeout(RouterDistillError):
    """Another process held the lock for longer than the caller would wait."""


@contextmanager
def process_lock(path: Path, timeout_s: float) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if missing); LockTimeout after `timeout_s`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"{path} is still held by another run after {timeout_s:.0f} s"
                    ) from None
                time.sleep(POLL_S)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
