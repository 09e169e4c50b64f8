"""Where the product keeps its files: ROUTER_DISTILL_HOME (default ./.router-distill)."""

from __future__ import annotations

import os
from pathlib import Path

from intent_router.errors import UserInputError

HOME_ENV = "ROUTER_DISTILL_HOME"
DEFAULT_HOME = ".router-distill"


def home() -> Path:
    """The storage root; created on first use."""
    root = Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser().resolve()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UserInputError(f"{HOME_ENV} {root} is a file, not a folder") from None
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise UserInputError(f"{HOME_ENV} {root} cannot be created: {reason}") from None
    if not root.is_dir():
        raise UserInputError(f"{HOME_ENV} {root} is not a folder")
    return root
