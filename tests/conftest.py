"""Test isolation: Prefect state and product storage never touch the user's home."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before anything imports prefect: a private Prefect home for the whole session.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="router-distill-tests-"))
os.environ["PREFECT_HOME"] = str(_SESSION_DIR / "prefect-home")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ["ROUTER_DISTILL_HOME"] = str(_SESSION_DIR / "default-home")

DATA = Path(__file__).parent / "data"


@pytest.fixture
def router_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ROUTER_DISTILL_HOME for one test."""
    home = tmp_path / "home"
    monkeypatch.setenv("ROUTER_DISTILL_HOME", str(home))
    yield home
