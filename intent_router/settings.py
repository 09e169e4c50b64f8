"""Where the product keeps its files: ROUTER_DISTILL_HOME (default ./.router-distill)."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "ROUTER_DISTILL_HOME"
DEFAULT_HOME = ".router-distill"


def home() -> Path:
    """The storage root; created on first use."""
    root = Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root
