"""The file lock a run holds without a Prefect server: exclusive, and freed when its holder
dies, even by kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from intent_router.locks import LockTimeout, process_lock

HOLD = """
import sys
from pathlib import Path
from intent_router.locks import process_lock
with process_lock(Path(sys.argv[1]), 5):
    print("held", flush=True)
    sys.stdin.read()  # hold until killed (or stdin closes)
"""


def test_a_held_lock_times_out_and_a_killed_holder_frees_it(tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "router-default.lock"
    root = Path(__file__).resolve().parents[2]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock)],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockTimeout, match="still held by another run"), process_lock(lock, 0):
            pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        with process_lock(lock, 5):  # the kernel released the dead holder's lock
            pass
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        for stream in (holder.stdin, holder.stdout):
            if stream is not None:
                stream.close()


def test_the_lock_is_exclusive_within_a_process_too(tmp_path: Path) -> None:
    lock = tmp_path / "router.lock"
    with process_lock(lock, 1), pytest.raises(LockTimeout), process_lock(lock, 0):
        pass
    with process_lock(lock, 0):
        pass
