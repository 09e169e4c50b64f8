"""Command line: `router-distill run | route | bench`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# Prefect's ephemeral API can take over 20 s to start on a fresh machine (its default timeout).
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", help="run the whole distillation pipeline (default: offline)")
    run.add_argument(
        "--taxonomy",
        default="default",
        help="built-in taxonomy name or a YAML/JSON file (default: default)",
    )
    run.add_argument("--router", dest="router_name", help="router name (default: taxonomy name)")
    run.add_argument("--train-count", type=int, default=10_000, help="training examples")
    run.add_argument("--holdout-count", type=int, default=1_000, help="holdout queries")
    run.add_argument("--batches", type=int, default=24, help="generation batches")
    run.add_argument("--seed", type=int, default=7, help="synthesis seed")
    run.add_argument(
        "--backend", default="local", help="'local' or a saved backend block 'slug/name'"
    )
    run.add_argument("--storage-block", help="saved file-system block 'slug/name'")
    run.add_argument("--triggered-by", default="cli", help="recorded in the promotion ledger")
    run.add_argument(
        "--params-json", type=Path, help="JSON file with flow parameters (flags override it)"
    )
    run.add_argument("--report-json", type=Path, help="also write the summary as JSON here")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="router-distill",
        description="Distill a video-search intent router and route queries with the champion.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    route = sub.add_parser("route", help="route queries with the current champion")
    route.add_argument("queries", nargs="+", help="queries; '-' reads one query per line")
    route.add_argument("--router", default="default", help="router name (default: default)")
    route.add_argument("--json", action="store_true", help="one JSON object per query")
    bench = sub.add_parser("bench", help="measure the pipeline and the student; print figures")
    bench.add_argument("--train-count", type=int, default=10_000)
    bench.add_argument(
        "--skip-pipeline", action="store_true", help="only the student and teacher micro-benchmarks"
    )
    bench.add_argument("--report-json", type=Path)
    return parser


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from intent_router.errors import UserInputError
    from intent_router.params import DistillParams

    overrides: dict[str, Any] = {}
    if args.params_json:
        try:
            overrides = json.loads(args.params_json.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            _error(f"cannot read parameters from {args.params_json}: {error}")
            return EXIT_USAGE
    for field in (
        "taxonomy",
        "router_name",
        "train_count",
        "holdout_count",
        "batches",
        "seed",
        "backend",
        "storage_block",
        "triggered_by",
    ):
        overrides[field] = (
            getattr(args, field) if getattr(args, field) is not None else (overrides.get(field))
        )
    overrides = {k: v for k, v in overrides.items() if v is not None}
    try:
        params = DistillParams.model_validate(overrides)
        from intent_router.taxonomy import resolve_taxonomy

        if params.taxonomy_definition is None:
            resolve_taxonomy(params.taxonomy)  # fail fast, before Prefect starts
    except ValidationError as error:
        first = error.errors()[0]
        _error(f"invalid parameter {'.'.join(map(str, first['loc']))}: {first['msg']}")
        return EXIT_USAGE
    except UserInputError as error:
        _error(str(error))
        return EXIT_USAGE

    from flows.distill import distill_router
    from intent_router.report import render_text

    try:
        summary = distill_router(params)
    except UserInputError as error:
        _error(str(error))
        _write_failure(args.report_json, error)
        return EXIT_USAGE
    except Exception as error:  # the flow failed: say why, exit non-zero
        print(f"run failed: {type(error).__name__}: {error}", file=sys.stderr)
        _write_failure(args.report_json, error)
        return EXIT_FAILED
    print(render_text(summary))
    if args.report_json:
        args.report_json.write_text(summary.model_dump_json(indent=2), "utf-8")
        print(f"report written to {args.report_json}")
    return EXIT_OK


def _write_failure(path: Path | None, error: BaseException) -> None:
    if path:
        path.write_text(
            json.dumps(
                {"outcome": "failed", "error": str(error), "error_type": type(error).__name__},
                indent=2,
            ),
            "utf-8",
        )


def _read_queries(items: list[str]) -> list[str]:
    queries: list[str] = []
    for item in items:
        if item == "-":
            data = sys.stdin.buffer.read()
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"standard input is not UTF-8 (bad byte at offset {error.start})"
                ) from None
            queries += [line for line in text.splitlines() if line.strip()]
        else:
            queries.append(item)
    return queries


def _route(args: argparse.Namespace) -> int:
    from intent_router.backends.local import LocalBackend, student_decision
    from intent_router.registry import ChampionRegistry
    from intent_router.settings import home
    from intent_router.storage import DirectoryStore
    from intent_router.text import check_query

    try:
        queries = _read_queries(args.queries)
    except ValueError as error:
        _error(str(error))
        return EXIT_USAGE
    store = DirectoryStore(home() / "store")
    champion = ChampionRegistry(store, args.router).current()
    if champion is None:
        _error(
            f"no router has been promoted yet for '{args.router}'; run `router-distill run` first"
        )
        return EXIT_FAILED
    student = LocalBackend(store).load_student(champion.model_id)
    status = EXIT_OK
    for number, raw in enumerate(queries, start=1):
        try:
            query = check_query(raw)
        except ValueError as error:
            status = EXIT_USAGE
            shown = raw if len(raw) <= 60 else raw[:57] + "..."
            if args.json:
                print(json.dumps({"query": shown, "error": str(error)}, ensure_ascii=False))
            else:
                _error(f"query {number}: {error}")
            continue
        decision = student_decision(student, query)
        if args.json:
            print(
                json.dumps(
                    {"query": query, "weights": decision.weights, "reasoning": decision.reasoning},
                    ensure_ascii=False,
                )
            )
        else:
            weights = "  ".join(f"{k} {v:.2f}" for k, v in decision.weights.items())
            print(f"{query}\n  {weights}\n  {decision.reasoning}")
    return status


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "route":
        return _route(args)
    from router_distill.bench import run_bench

    return run_bench(args)
