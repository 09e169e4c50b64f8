"""Command line: `router-distill golden check PATH [--taxonomy T]`."""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from router_distill.output import EXIT_OK, EXIT_USAGE


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def add_golden_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `golden check` on the CLI's subparsers."""
    golden = sub.add_parser("golden", help="work with golden sets (human-labelled queries)")
    golden_sub = golden.add_subparsers(dest="golden_command", required=True)
    check = golden_sub.add_parser("check", help="validate a golden set and summarise it")
    check.add_argument("path", help="golden set file: .jsonl or .csv, optionally .gz")
    check.add_argument(
        "--taxonomy",
        default="default",
        help="built-in taxonomy name or a YAML/JSON file whose signals label it (default: default)",
    )


def golden_check(args: argparse.Namespace) -> int:
    """Validate the golden set; print a one-line summary (exit 0) or every problem (exit 2)."""
    from intent_router.errors import UserInputError
    from intent_router.golden import GoldenSetError, load_golden
    from intent_router.taxonomy import resolve_taxonomy
    from intent_router.text import escape_controls

    try:
        taxonomy = resolve_taxonomy(args.taxonomy)
        golden = load_golden(args.path, taxonomy.signal_names)
    except GoldenSetError as error:
        if len(error.problems) == 1:
            _error(escape_controls(str(error)))
        else:
            for problem in error.problems:
                _error(escape_controls(f"{error.source}: {problem}"))
            _error(escape_controls(f"golden set {error.source}: {len(error.problems)} problems"))
        return EXIT_USAGE
    except UserInputError as error:
        _error(escape_controls(str(error)))
        return EXIT_USAGE
    tops = Counter(item.top for item in golden.items)
    tags = Counter(tag for item in golden.items for tag in item.tags)
    top_text = ", ".join(f"{s} {tops[s]}" for s in taxonomy.signal_names)
    tag_text = ", ".join(f"{t} {n}" for t, n in sorted(tags.items(), key=lambda x: (-x[1], x[0])))
    print(
        escape_controls(
            f"golden set {golden.source}: {len(golden.items)} queries, version {golden.version}; "
            f"top signals: {top_text}; tags: {tag_text or 'none'}"
        )
    )
    return EXIT_OK
