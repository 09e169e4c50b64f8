"""What every command shares: exit codes and one-line error messages."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


def one_line(text: str) -> str:
    """Text safe to print as one terminal line: control characters escaped."""
    from intent_router.text import escape_controls

    return escape_controls(text.replace("\r\n", "\n"))


def validation_message(error: Any) -> str:
    """One line naming the first invalid parameter (of a pydantic ValidationError)."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "parameters"
    if first["type"] == "extra_forbidden":
        message = f"unknown parameter {where!r} (not a field of the run's parameters)"
    else:
        reason = str(first["msg"]).removeprefix("Value error, ")
        message = f"invalid parameter {where}: {reason}"
    more = error.error_count() - 1
    return one_line(message + (f" (+{more} more)" if more else ""))


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high` (no upper bound: None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            shown = f"{low:,}-{high:,}" if high is not None else f"at least {low:,}"
            raise argparse.ArgumentTypeError(f"{value} is outside {shown}")
        return value

    return parse


def positive_number(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value
