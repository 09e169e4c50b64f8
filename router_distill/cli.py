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
    run.add_argument(
        "--budget-usd",
        type=float,
        help="stop before the first paid call if the estimate exceeds this",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print the request plan and cost estimate; call nothing",
    )
    run.add_argument(
        "--task-runner",
        choices=["threads", "dask"],
        help="run the batch fan-out on threads (default) or Dask (needs the 'dask' extra)",
    )
    run.add_argument("--role-arn", help="dry run: service role ARN (default: placeholder)")
    run.add_argument("--bucket", help="dry run: S3 bucket (default: placeholder)")
    run.add_argument("--region", default=None, help="dry run: Bedrock Region")


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
    champion = sub.add_parser("champion", help="show the current champion and its metrics")
    history = sub.add_parser("history", help="show the promotion ledger")
    rollback = sub.add_parser("rollback", help="re-point the champion to an earlier promotion")
    for registry_command in (champion, history, rollback):
        registry_command.add_argument(
            "--router", default="default", help="router name (default: default)"
        )
        registry_command.add_argument(
            "--storage-block",
            help="saved file-system block 'slug/name' the runs store to (default: "
            "ROUTER_DISTILL_HOME); e.g. the S3 bucket of `blocks create --backend aws`",
        )
    rollback.add_argument(
        "--to",
        type=int,
        dest="to_entry",
        help="ledger entry to return to (default: the promotion before)",
    )
    blocks = sub.add_parser("blocks", help="create and save the Prefect blocks a backend needs")
    blocks_sub = blocks.add_subparsers(dest="blocks_command", required=True)
    create = blocks_sub.add_parser("create", help="create/update the blocks (idempotent)")
    create.add_argument("--backend", choices=["local", "aws"], default="local")
    create.add_argument(
        "--role-arn", help="aws: service role Bedrock assumes for the distillation job"
    )
    create.add_argument("--bucket", help="aws: S3 bucket for datasets and job outputs")
    create.add_argument("--bucket-folder", default="router-distill", help="aws: key prefix")
    create.add_argument("--region", help="aws: Region (default: AWS_REGION or us-east-1)")
    create.add_argument(
        "--profile",
        help="aws: named profile the runs use (saved as the name only; default: boto3's "
        "default chain where the flow runs). Keys and session tokens are never saved",
    )
    create.add_argument(
        "--assume-role-arn",
        help="aws: IAM role the runs assume (with the profile's or the default chain's "
        "credentials) for Bedrock and S3 calls",
    )
    create.add_argument(
        "--converse-concurrency",
        type=int,
        default=8,
        help="aws: concurrent Converse calls across runs (global limit)",
    )
    serve = sub.add_parser(
        "serve",
        help="serve the deployments of prefect.yaml (schedules included) from this process",
    )
    serve.add_argument(
        "--cron", help="replace the retraining schedule, e.g. '0 4 * * 0' (default: prefect.yaml)"
    )
    serve.add_argument("--only", action="append", help="serve only this deployment (repeatable)")
    serve.add_argument(
        "--limit", type=int, default=2, help="flow runs executing at once (default: 2)"
    )
    serve.add_argument("--file", type=Path, help="prefect.yaml to read (default: the project's)")
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
    if args.backend == "aws":  # the blocks saved by `router-distill blocks create --backend aws`
        from blocks.create import AWS_BACKEND_REF, AWS_STORAGE_REF

        args.backend = AWS_BACKEND_REF
        args.storage_block = args.storage_block or AWS_STORAGE_REF
    for field in (
        "budget_usd",
        "taxonomy",
        "router_name",
        "train_count",
        "holdout_count",
        "batches",
        "seed",
        "backend",
        "storage_block",
        "triggered_by",
        "task_runner",
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

    if args.dry_run:
        try:
            return _dry_run(args, params)
        except UserInputError as error:
            _error(str(error))
            return EXIT_USAGE

    from prefect.exceptions import CancelledRun

    from flows.distill import distill_router
    from intent_router.report import render_text

    try:
        summary = distill_router(params)
    except UserInputError as error:
        _error(str(error))
        _write_failure(args.report_json, error)
        return EXIT_USAGE
    except CancelledRun as error:  # e.g. the approval was declined or timed out
        print(f"run cancelled: {error}", file=sys.stderr)
        _write_failure(args.report_json, error, outcome="cancelled")
        return EXIT_FAILED
    except Exception as error:  # the flow failed: say why, exit non-zero
        print(f"run failed: {type(error).__name__}: {error}", file=sys.stderr)
        _write_failure(args.report_json, error)
        return EXIT_FAILED
    print(render_text(summary))
    if args.report_json:
        args.report_json.write_text(summary.model_dump_json(indent=2), "utf-8")
        print(f"report written to {args.report_json}")
    return EXIT_OK


def _dry_run(args: argparse.Namespace, params: Any) -> int:
    """Print what a run would send and cost; call nothing (no AWS, no Prefect API)."""
    from intent_router.backends.bedrock import BedrockSettings
    from intent_router.backends.bedrock_plan import request_plan
    from intent_router.dataset import check_record_count
    from intent_router.errors import UserInputError
    from intent_router.preflight import check_budget, estimate_cost, format_estimate
    from intent_router.pricing import BEDROCK_NOVA_LIMITS
    from intent_router.report import format_table
    from intent_router.taxonomy import resolve_taxonomy

    taxonomy = params.taxonomy_definition or resolve_taxonomy(params.taxonomy)
    placeholder = "arn:aws:iam::123456789012:role/router-distill-bedrock"
    role = args.role_arn or os.environ.get("ROUTER_DISTILL_ROLE_ARN") or placeholder
    bucket = args.bucket or os.environ.get("ROUTER_DISTILL_BUCKET") or "your-router-bucket"
    region = args.region or os.environ.get("AWS_REGION") or "us-east-1"
    settings = BedrockSettings(role_arn=role, region_name=region)
    check_record_count(params.train_count, BEDROCK_NOVA_LIMITS)
    plan = request_plan(params, taxonomy, settings, bucket)
    print(
        f"Dry run: Bedrock request plan for router '{params.router_name or taxonomy.name}' "
        f"({params.train_count:,} training examples). Nothing is called."
    )
    if role == placeholder or bucket == "your-router-bucket":
        print(
            "  (role and/or bucket are placeholders: pass --role-arn/--bucket or set "
            "ROUTER_DISTILL_ROLE_ARN/ROUTER_DISTILL_BUCKET)"
        )
    invalid = 0
    for item in plan:
        status = "valid" if not item.violations else "INVALID: " + "; ".join(item.violations)
        invalid += bool(item.violations)
        print(f"\n{item.service} {item.operation} x {item.count}\n  {item.purpose} [{status}]")
        print("  example: " + json.dumps(item.example, ensure_ascii=False)[:4000])
    estimate = estimate_cost(
        params,
        taxonomy,
        teacher_model_id=settings.teacher_model_id,
        evaluated_models={
            "candidate": settings.student_invoke_model_id,
            "teacher": settings.teacher_model_id,
            "base student": settings.student_invoke_model_id,
        },
    )
    print("\nCost estimate (USD, on-demand prices from intent_router/pricing.py)")
    print(format_table(format_estimate(estimate)))
    print(
        f"Total (priced items): ${estimate.known_usd:,.2f}"
        + (f"; not priced: {', '.join(estimate.unpriced)}" if estimate.unpriced else "")
    )
    try:
        check_budget(estimate, params.budget_usd)
    except UserInputError as error:
        _error(str(error))
        return EXIT_USAGE
    return EXIT_FAILED if invalid else EXIT_OK


def _blocks(args: argparse.Namespace) -> int:
    from blocks.create import IAM_ROLE_ARN, create_aws_blocks, create_local_blocks

    if args.backend == "local":
        saved = create_local_blocks()
    else:
        missing = [f for f in ("role_arn", "bucket") if not getattr(args, f)]
        if missing:
            _error(
                "--backend aws needs " + " and ".join(f"--{m.replace('_', '-')}" for m in missing)
            )
            return EXIT_USAGE
        if args.assume_role_arn and not IAM_ROLE_ARN.fullmatch(args.assume_role_arn):
            _error(
                f"--assume-role-arn {args.assume_role_arn!r} is not an IAM role ARN "
                "(arn:aws:iam::<account-id>:role/<name>)"
            )
            return EXIT_USAGE
        saved = create_aws_blocks(
            role_arn=args.role_arn,
            bucket=args.bucket,
            bucket_folder=args.bucket_folder,
            region=args.region,
            profile=args.profile,
            assume_role_arn=args.assume_role_arn,
            converse_concurrency=args.converse_concurrency,
        )
    print("saved:")
    for line in saved:
        print(f"  {line}")
    return EXIT_OK


def _write_failure(path: Path | None, error: BaseException, outcome: str = "failed") -> None:
    if path:
        path.write_text(
            json.dumps(
                {"outcome": outcome, "error": str(error), "error_type": type(error).__name__},
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


def _registry(args: argparse.Namespace) -> Any:
    from intent_router.registry import ChampionRegistry

    if args.storage_block:  # loading a block needs the Prefect API
        from tasks.runtime import Runtime

        return ChampionRegistry(Runtime(storage_block=args.storage_block).store(), args.router)
    from blocks.storage import local_store

    return ChampionRegistry(local_store(), args.router)


def _champion(args: argparse.Namespace) -> int:
    current = _registry(args).current()
    if current is None:
        _error(f"no router has been promoted yet for '{args.router}'")
        return EXIT_FAILED
    print(current.model_dump_json(indent=2))
    return EXIT_OK


def _history(args: argparse.Namespace) -> int:
    from intent_router.report import format_table

    entries = _registry(args).ledger()
    if not entries:
        print(f"no promotions yet for '{args.router}'")
        return EXIT_OK
    rows = [
        {
            "entry": e.entry,
            "action": e.action,
            "at": e.at,
            "model": e.champion.model_id,
            "run": e.champion.run_id,
            "by": e.champion.triggered_by,
            "accuracy": round(float(e.champion.metrics.get("top_signal_accuracy", 0)), 4),
            "rubric": round(float(e.champion.metrics.get("mean_rubric", 0)), 3),
            "previous": e.previous_model_id or "-",
        }
        for e in entries
    ]
    print(format_table(rows))
    return EXIT_OK


def _rollback(args: argparse.Namespace) -> int:
    from intent_router.errors import UserInputError

    registry = _registry(args)
    try:
        entry = registry.rollback(args.to_entry)
    except UserInputError as error:
        _error(str(error))
        return EXIT_USAGE
    print(
        f"champion of '{args.router}' is now {entry.champion.model_id} "
        f"(ledger entry {entry.entry}, was {entry.previous_model_id}); if its deployment was "
        "deleted, the next run redeploys it first"
    )
    _publish_ledger_if_server(args.router, registry)
    return EXIT_OK


def _publish_ledger_if_server(router: str, registry: Any) -> None:
    """With a Prefect server configured, refresh the ledger-<router> artifact in the UI too."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return  # no server: an ephemeral one would start only to be thrown away
    from tasks.promote import publish_ledger

    try:
        publish_ledger(router, registry.ledger())
    except Exception as error:  # the rollback itself is done and recorded
        print(f"warning: could not update the ledger artifact: {error}", file=sys.stderr)
        return
    print(f"ledger artifact ledger-{router} updated")


def _serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from deployments.serve import serve_deployments
    from deployments.specs import PREFECT_YAML
    from intent_router.errors import UserInputError

    try:
        serve_deployments(
            args.file or PREFECT_YAML, cron=args.cron, only=args.only, limit=args.limit
        )
    except (UserInputError, ValidationError, ValueError) as error:
        _error(str(error))
        return EXIT_USAGE
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "route":
        return _route(args)
    if args.command == "blocks":
        return _blocks(args)
    if args.command == "champion":
        return _champion(args)
    if args.command == "history":
        return _history(args)
    if args.command == "rollback":
        return _rollback(args)
    if args.command == "serve":
        return _serve(args)
    from router_distill.bench import run_bench

    return run_bench(args)
