"""Command line: `router-distill run | route | api | bench` and the registry commands."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from router_distill.api_bench import add_api_bench_arguments
from router_distill.api_cli import add_api_parser, run_api
from router_distill.eval_cli import add_eval_parser, add_monitor_parser, run_eval, run_monitor
from router_distill.golden_cli import add_golden_parser, golden_check
from router_distill.janitor_cli import add_janitor_parser, run_janitor
from router_distill.output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    one_line,
    validation_message,
)

# Prefect's ephemeral API can take over 20 s to start on a fresh machine (its default timeout).
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def _finite_float(text: str) -> float:
    """argparse type: a finite number (float() alone accepts 'nan' and 'inf')."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # Flags default to None: only flags given explicitly override --params-json, and the
    # defaults themselves come from DistillParams (run_params).
    run = sub.add_parser("run", help="run the whole distillation pipeline (default: offline)")
    run.add_argument(
        "--taxonomy", help="built-in taxonomy name or a YAML/JSON file (default: default)"
    )
    run.add_argument("--router", dest="router_name", help="router name (default: taxonomy name)")
    run.add_argument("--train-count", type=int, help="training examples (default: 10000)")
    run.add_argument("--holdout-count", type=int, help="holdout queries (default: 1000)")
    run.add_argument("--batches", type=int, help="generation batches (default: 24)")
    run.add_argument("--seed", type=int, help="synthesis seed (default: 7)")
    run.add_argument(
        "--backend", help="'local' (default), 'aws' or a saved backend block 'slug/name'"
    )
    run.add_argument("--storage-block", help="saved file-system block 'slug/name'")
    run.add_argument(
        "--traffic",
        help="real queries to learn from: 'default' (the built-in sample log), 'none', a file "
        "or folder, s3://bucket/prefix, or bedrock-logs:s3://bucket/prefix",
    )
    run.add_argument(
        "--golden", help="golden set JSONL/CSV (default: the taxonomy's; 'none' for none)"
    )
    run.add_argument(
        "--require-golden",
        action="store_const",
        const=True,
        help="refuse to run when the router has no golden set",
    )
    run.add_argument(
        "--seed-policy",
        choices=["fixed", "scheduled-date"],
        help="training seed: --seed (fixed, default) or the run's scheduled date",
    )
    run.add_argument("--triggered-by", help="recorded in the promotion ledger (default: cli)")
    run.add_argument(
        "--params-json", type=Path, help="JSON file with flow parameters (flags override it)"
    )
    run.add_argument("--report-json", type=Path, help="also write the summary as JSON here")
    run.add_argument(
        "--budget-usd",
        type=_finite_float,
        help="stop before the first paid call if the estimate exceeds this",
    )
    run.add_argument(
        "--training-mode",
        choices=["auto", "distill-prompts", "distill-invocation-logs", "fine-tune-labelled"],
        help="how the student learns (default auto: Bedrock distill-prompts, local "
        "fine-tune-labelled)",
    )
    run.add_argument(
        "--invocation-logs",
        help="distill-invocation-logs: s3:// prefix of the router's model-invocation logs",
    )
    run.add_argument(
        "--allow-unpriced",
        action="store_const",
        const=True,
        help="let a budgeted run start although some cost lines have no price",
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
    run.add_argument(
        "--batch-labelling-threshold",
        type=int,
        default=None,
        help="dry run: queries per labelling batch at or above which batch inference is used "
        "(default: the Bedrock settings' default; 0: never)",
    )


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
    route.add_argument(
        "--cascade",
        action="store_true",
        help="ask the teacher when the student's confidence is below the champion's cascade "
        "threshold (chosen on the holdout when it was trained)",
    )
    route.add_argument(
        "--taxonomy",
        help="taxonomy file of the router, when it is not a built-in taxonomy (for --cascade, "
        "and for a Bedrock champion's prompt)",
    )
    route.add_argument(
        "--storage-block",
        help="saved file-system block 'slug/name' the runs store to (default: "
        "ROUTER_DISTILL_HOME); e.g. the S3 bucket of `blocks create --backend aws`",
    )
    route.add_argument(
        "--teacher-model-id",
        help="Bedrock champion with --cascade: the teacher model or inference profile to ask",
    )
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
        help="serve the deployments of prefect.yaml (schedules included) from this process; "
        "refuses while they are deployed on a work pool, and leaves schedules active on exit",
    )
    serve.add_argument(
        "--cron", help="replace the retraining schedule, e.g. '0 4 * * 0' (default: prefect.yaml)"
    )
    serve.add_argument("--only", action="append", help="serve only this deployment (repeatable)")
    serve.add_argument(
        "--limit", type=int, default=2, help="flow runs executing at once (default: 2)"
    )
    serve.add_argument("--file", type=Path, help="prefect.yaml to read (default: the project's)")
    add_eval_parser(sub)
    add_monitor_parser(sub)
    add_golden_parser(sub)
    add_janitor_parser(sub)
    add_api_parser(sub)
    bench = sub.add_parser("bench", help="measure the pipeline and the student; print figures")
    bench.add_argument("--train-count", type=int, default=10_000)
    bench.add_argument(
        "--repeats", type=int, default=2, help="cold main-job / trivial-flow pairs (median)"
    )
    bench.add_argument(
        "--skip-probe", action="store_true", help="skip the probe-taxonomy run (2,000 examples)"
    )
    bench.add_argument(
        "--compare", type=Path, help="a previous bench's --report-json, printed alongside"
    )
    bench.add_argument("--report-json", type=Path)
    bench.add_argument(
        "--labelling-only",
        action="store_true",
        help="only the labelling-concurrency figure (Bedrock backend, fake teacher that sleeps)",
    )
    bench.add_argument("--labelling-queries", type=int, default=10_000)
    bench.add_argument("--labelling-sleep-ms", type=float, default=800.0)
    bench.add_argument(
        "--labelling-concurrency",
        type=int,
        action="append",
        help="concurrency to measure (repeatable; default 8 and 32)",
    )
    bench.add_argument(
        "--labelling-sequential-sample",
        type=int,
        default=50,
        help="queries labelled sequentially, extrapolated to --labelling-queries",
    )
    add_api_bench_arguments(bench)
    return parser


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


RUN_FLAGS = (
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
    "traffic",
    "golden",
    "require_golden",
    "seed_policy",
    "training_mode",
    "invocation_logs",
    "allow_unpriced",
)
"""`run` flags that are DistillParams fields (same name); given explicitly, they win."""


def _non_finite(value: Any, where: str = "") -> str | None:
    """The location of the first NaN or infinity in parsed JSON, if any."""
    if isinstance(value, float) and not math.isfinite(value):
        return where or "parameters"
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        found = _non_finite(item, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


def _read_params_file(path: Path) -> dict[str, Any]:
    """The parameters of a --params-json file; UserInputError naming what is wrong."""
    from intent_router.errors import UserInputError

    if path.is_dir():
        raise UserInputError(f"--params-json {path} is a directory, not a JSON file")
    try:
        data = json.loads(path.read_text("utf-8"))
    except OSError as error:
        raise UserInputError(
            f"cannot read parameters from {path}: {error.strerror or error}"
        ) from None
    except UnicodeDecodeError as error:
        raise UserInputError(
            f"--params-json {path} is not UTF-8 (bad byte at offset {error.start})"
        ) from None
    except json.JSONDecodeError as error:
        raise UserInputError(f"--params-json {path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        kind = "null" if data is None else type(data).__name__
        raise UserInputError(
            f"--params-json {path} must hold a JSON object of parameters, not {kind}"
        )
    bad = _non_finite(data)
    if bad:
        raise UserInputError(f"invalid parameter {bad}: not a finite number (NaN or Infinity)")
    return data


def run_params(args: argparse.Namespace) -> Any:
    """The run's DistillParams: the --params-json file, then the flags given explicitly.

    Raises UserInputError with a one-line message; starts nothing.
    """
    from pydantic import ValidationError

    from intent_router.errors import UserInputError
    from intent_router.params import DistillParams

    values = _read_params_file(args.params_json) if args.params_json else {}
    for field in RUN_FLAGS:
        if getattr(args, field, None) is not None:
            values[field] = getattr(args, field)
    values.setdefault("triggered_by", "cli")
    if values.get("backend") == "aws":  # the blocks saved by `blocks create --backend aws`
        from blocks.create import AWS_BACKEND_REF, AWS_STORAGE_REF

        values["backend"] = AWS_BACKEND_REF
        values["storage_block"] = values.get("storage_block") or AWS_STORAGE_REF
    try:
        return DistillParams.model_validate(values)
    except ValidationError as error:
        raise UserInputError(validation_message(error)) from None


def _check_local_storage(router: str, *, traffic: bool) -> None:
    """The embedded default's storage under ROUTER_DISTILL_HOME must be writable, and the
    router's champion pointer, ledger, champion model and (with traffic) traffic watermark
    readable (the flow checks the same at its start; here it costs no Prefect start and prints
    no traceback)."""
    from intent_router.backends.local import LocalBackend
    from intent_router.errors import UserInputError
    from intent_router.preflight import check_run_state
    from intent_router.settings import home
    from intent_router.storage import DirectoryStore, check_writable

    try:
        root = home()
    except OSError as error:
        raise UserInputError(
            f"cannot create ROUTER_DISTILL_HOME {error.filename}: {error.strerror}"
        ) from None
    check_writable(DirectoryStore(root / "results"))
    store = DirectoryStore(root / "store")
    check_run_state(store, router, LocalBackend(store).check_model)
    if traffic:
        from intent_router.traffic import TRAIN_CONSUMER, read_watermark

        read_watermark(store, router, TRAIN_CONSUMER)  # CorruptStateError naming the file


def _check_real_queries(params: Any, taxonomy: Any) -> bool:
    """The golden set and a local traffic source are read and checked before Prefect starts;
    True when the run reads traffic."""
    from intent_router.inputs import resolve_golden, resolve_traffic

    resolve_golden(params.golden, taxonomy, required=params.require_golden)
    source = resolve_traffic(params, taxonomy)
    if source.kind == "file":  # junk, a corrupt .gz, nothing usable: one line, no Prefect
        from intent_router.traffic import read_local_traffic

        read_local_traffic(source.location)
    return source.kind != "none"


def _run(args: argparse.Namespace) -> int:
    from intent_router.backends.local import LocalBackend
    from intent_router.errors import UserInputError
    from intent_router.taxonomy import resolve_taxonomy

    try:
        params = run_params(args)
        taxonomy = params.taxonomy_definition or resolve_taxonomy(params.taxonomy)  # fail fast
        traffic = _check_real_queries(params, taxonomy)
        if params.backend == "local":  # Bedrock's baselines are known once its block loads
            from intent_router.evaluation import check_cascade_fallback
            from intent_router.settings import home
            from intent_router.storage import DirectoryStore

            baselines = LocalBackend(DirectoryStore(home() / "store")).baselines(taxonomy)
            check_cascade_fallback(params.cascade_fallback, baselines)
        if not args.dry_run and params.backend == "local":
            from intent_router.dataset import check_record_count
            from intent_router.pricing import LOCAL_LIMITS

            check_record_count(params.train_count, LOCAL_LIMITS)
        if not args.dry_run and params.storage_block is None and params.backend == "local":
            router = params.router_name or taxonomy.name
            _check_local_storage(router, traffic=traffic)  # before Prefect starts
    except UserInputError as error:
        _error(one_line(str(error)))
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
        summary = distill_router(**params.flow_parameters())
    except UserInputError as error:
        _error(str(error))
        _write_failure(args.report_json, error)
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C: labels and batches paid so far are already cached
        print(
            "run interrupted: the teacher labels paid for so far are cached; run again to "
            "resume without paying for them twice",
            file=sys.stderr,
        )
        _write_failure(args.report_json, KeyboardInterrupt("interrupted"), outcome="interrupted")
        return EXIT_INTERRUPTED
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


def _bedrock_settings(role_arn: str, region: str, **more: Any) -> Any:
    """BedrockSettings from the flags; a one-line UserInputError naming the bad flag."""
    from pydantic import ValidationError

    from intent_router.backends.bedrock import BedrockSettings
    from intent_router.errors import UserInputError

    try:
        return BedrockSettings(role_arn=role_arn, region_name=region, **more)
    except ValidationError as error:
        first = error.errors()[0]
        flag = {
            "role_arn": "--role-arn",
            "region_name": "--region",
            "batch_labelling_threshold": "--batch-labelling-threshold",
        }.get(str(first["loc"][0]) if first["loc"] else "", "Bedrock settings")
        reason = str(first["msg"]).removeprefix("Value error, ")
        raise UserInputError(one_line(f"invalid {flag}: {reason}")) from None


def _dry_run(args: argparse.Namespace, params: Any) -> int:
    """Print what a run would send and cost; call nothing (no AWS, no Prefect API)."""

    from intent_router.backends.base import raise_for_failed
    from intent_router.backends.bedrock_plan import compare_modes, plan_estimate, request_plan
    from intent_router.backends.bedrock_preflight import LIVE_CHECKS, offline_checks
    from intent_router.dataset import check_record_count
    from intent_router.errors import UserInputError
    from intent_router.preflight import check_budget, format_estimate
    from intent_router.pricing import BEDROCK_NOVA_LIMITS
    from intent_router.report import format_table
    from intent_router.taxonomy import resolve_taxonomy
    from intent_router.training_modes import TrainingMode, resolve_training_mode

    taxonomy = params.taxonomy_definition or resolve_taxonomy(params.taxonomy)
    mode = resolve_training_mode(params.training_mode, TrainingMode.DISTILL_PROMPTS)
    placeholder = "arn:aws:iam::123456789012:role/router-distill-bedrock"
    role = args.role_arn or os.environ.get("ROUTER_DISTILL_ROLE_ARN") or placeholder
    bucket = args.bucket or os.environ.get("ROUTER_DISTILL_BUCKET") or "your-router-bucket"
    region = args.region or os.environ.get("AWS_REGION") or "us-east-1"
    threshold = args.batch_labelling_threshold
    more = {} if threshold is None else {"batch_labelling_threshold": threshold}
    settings = _bedrock_settings(role, region, **more)
    check_record_count(params.train_count, BEDROCK_NOVA_LIMITS)
    plan = request_plan(params, taxonomy, settings, bucket, mode=mode)
    print(
        f"Dry run: Bedrock request plan for router '{params.router_name or taxonomy.name}' "
        f"({params.train_count:,} training examples, training mode {mode.value}). "
        "Nothing is called."
    )
    if role == placeholder or bucket == "your-router-bucket":
        print(
            "  (role and/or bucket are placeholders: pass --role-arn/--bucket or set "
            "ROUTER_DISTILL_ROLE_ARN/ROUTER_DISTILL_BUCKET)"
        )
    checks = offline_checks(settings)
    print(f"\nSetup checks in {settings.region_name} (offline)")
    for check in checks:
        print(f"  [{'ok' if check.passed else 'FAILED'}] {check.name}: {check.detail}")
    print(
        "  Checked at the start of a real run (need the live service): "
        + "; ".join(f"{name} ({call})" for name, call in LIVE_CHECKS)
    )
    try:
        raise_for_failed(checks)
    except UserInputError as error:
        _error(str(error))
        return EXIT_USAGE
    invalid = 0
    for item in plan:
        status = "valid" if not item.violations else "INVALID: " + "; ".join(item.violations)
        invalid += bool(item.violations)
        print(f"\n{item.service} {item.operation} x {item.count}\n  {item.purpose} [{status}]")
        print("  example: " + json.dumps(item.example, ensure_ascii=False)[:4000])
    estimates = {m: plan_estimate(params, taxonomy, settings, m) for m in TrainingMode}
    estimate = estimates[mode]
    print(f"\nCost estimate for {mode.value} (USD, prices from intent_router/pricing.py)")
    print(format_table(format_estimate(estimate)))
    print(
        f"Total this run (priced lines): ${estimate.known_usd:,.2f}"
        + (f"; not priced: {', '.join(estimate.unpriced)}" if estimate.unpriced else "")
    )
    print("\nThe same run in each training mode (USD)")
    print(format_table(compare_modes(estimates)))
    try:
        check_budget(estimate, params.budget_usd, params.allow_unpriced)
    except UserInputError as error:
        _error(str(error))
        return EXIT_USAGE
    return EXIT_FAILED if invalid else EXIT_OK


def _blocks(args: argparse.Namespace) -> int:
    from blocks.create import IAM_ROLE_ARN, create_aws_blocks, create_local_blocks, default_region
    from intent_router.errors import UserInputError

    if args.backend == "local":
        saved = create_local_blocks()
    else:
        missing = [f for f in ("role_arn", "bucket") if not getattr(args, f)]
        if missing:
            _error(
                "--backend aws needs " + " and ".join(f"--{m.replace('_', '-')}" for m in missing)
            )
            return EXIT_USAGE
        try:  # before anything is saved
            _bedrock_settings(args.role_arn, args.region or default_region())
        except UserInputError as error:
            _error(str(error))
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


def _decode(raw: bytes) -> str:
    """UTF-8 text, or ValueError naming the first bad byte and where it is."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = raw[error.start]
        raise ValueError(f"is not UTF-8 (bad byte 0x{bad:02x} at byte {error.start + 1})") from None


def _read_queries(items: list[str]) -> tuple[list[str], list[str]]:
    """Queries from arguments and stdin ('-'), plus one error per argument or line not UTF-8."""
    queries: list[str] = []
    errors: list[str] = []
    for position, item in enumerate(items, start=1):
        if item != "-":
            try:  # undecodable argument bytes arrive as lone surrogates (surrogateescape)
                queries.append(_decode(item.encode("utf-8", "surrogateescape")))
            except ValueError as error:
                errors.append(f"argument {position} {error}")
            except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
                errors.append(f"argument {position} is not UTF-8")
            continue
        if sys.stdin is None:  # started with standard input closed (`<&-`)
            errors.append(f"argument {position} is '-' but standard input is closed")
            continue
        data = sys.stdin.buffer.read().removeprefix(b"\xef\xbb\xbf")  # drop a byte order mark
        for number, raw in enumerate(data.split(b"\n"), start=1):
            try:
                line = _decode(raw.removesuffix(b"\r"))
            except ValueError as error:
                errors.append(f"standard input line {number} {error}")
                continue
            if line.strip():
                queries.append(line)
    return queries, errors


def _stdout_failed(error: OSError) -> int:
    """Stop answering when stdout cannot be written: quietly when the reader left (a broken
    pipe), else one line. Stdout then points at /dev/null, so the flush at exit cannot fail
    again with a traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    if not isinstance(error, BrokenPipeError):
        _error(f"cannot write the answers to standard output: {error.strerror or error}")
    return EXIT_FAILED


def _route(args: argparse.Namespace) -> int:
    from intent_router.errors import UserInputError
    from intent_router.registry import check_router_name
    from intent_router.serving import NoChampionError, ServingSettings, load_router
    from intent_router.taxonomy import load_taxonomy
    from intent_router.text import check_query

    queries, unreadable = _read_queries(args.queries)
    for message in unreadable:
        _error(message)
    if unreadable and not queries:
        return EXIT_USAGE
    try:
        check_router_name(args.router)  # before any storage or Prefect API is touched
        settings = ServingSettings(cascade=args.cascade, teacher_model_id=args.teacher_model_id)
        router = load_router(
            args.router,
            args.storage_block,
            taxonomy=load_taxonomy(args.taxonomy) if args.taxonomy else None,
            settings=settings,
            watch=False,
        )
    except NoChampionError as error:
        _error(str(error))
        return EXIT_FAILED
    except (ValueError, UserInputError) as error:  # incl. CorruptStateError, ModelArtifactError
        _error(str(error))
        return EXIT_USAGE
    status = EXIT_USAGE if unreadable else EXIT_OK
    try:
        for number, raw in enumerate(queries, start=1):
            try:
                query = check_query(raw)
                decision = router.route(query)
            except ValueError as error:
                status = EXIT_USAGE
                shown = one_line(raw if len(raw) <= 60 else raw[:57] + "...")
                if args.json:
                    print(json.dumps({"query": shown, "error": str(error)}, ensure_ascii=False))
                else:
                    _error(f"query {number}: {error}")
                continue
            if args.json:
                print(json.dumps({"query": query, **decision.as_dict()}, ensure_ascii=False))
                continue
            weights = "  ".join(f"{k} {v:.2f}" for k, v in decision.weights.items())
            sure = (
                ""
                if decision.confidence is None
                else f"  (confidence {decision.confidence:.2f}, {decision.answered_by})"
            )
            if decision.fallback:
                sure = f"  (fallback: {decision.answered_by}, {decision.fallback_reason})"
            print(f"{query}\n  {weights}{sure}\n  {decision.reasoning}")
        sys.stdout.flush()  # a write error surfaces here, not in the flush at exit
    except OSError as error:  # stdout is gone: `route - | head`, or a full disk
        return _stdout_failed(error)
    return status


def _registry(args: argparse.Namespace) -> Any:
    """The router's registry; UserInputError for a bad router name or storage root."""
    from intent_router.registry import ChampionRegistry, check_router_name

    check_router_name(args.router)  # before any storage or Prefect API is touched
    if args.storage_block:  # loading a block needs the Prefect API
        from tasks.runtime import Runtime

        return ChampionRegistry(Runtime(storage_block=args.storage_block).store(), args.router)
    from blocks.storage import local_store

    return ChampionRegistry(local_store(), args.router)


def _champion(args: argparse.Namespace) -> int:
    from intent_router.errors import UserInputError

    try:
        current = _registry(args).current()
    except UserInputError as error:  # incl. CorruptStateError
        _error(str(error))
        return EXIT_USAGE
    if current is None:
        _error(f"no router has been promoted yet for '{args.router}'")
        return EXIT_FAILED
    print(current.model_dump_json(indent=2))
    return EXIT_OK


def _history(args: argparse.Namespace) -> int:
    from intent_router.errors import UserInputError
    from intent_router.report import format_table

    try:
        entries = _registry(args).ledger()
    except UserInputError as error:  # incl. CorruptStateError
        _error(str(error))
        return EXIT_USAGE
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
    from intent_router.errors import ConcurrentUpdateError, UserInputError

    try:
        registry = _registry(args)
        entry = registry.rollback(args.to_entry)
    except UserInputError as error:  # incl. CorruptStateError
        _error(str(error))
        return EXIT_USAGE
    except ConcurrentUpdateError as error:
        _error(str(error))
        return EXIT_FAILED
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
    if args.command == "eval":
        return run_eval(args)
    if args.command == "monitor":
        return run_monitor(args)
    if args.command == "golden":
        return golden_check(args)
    if args.command == "janitor":
        return run_janitor(args)
    if args.command == "api":
        return run_api(args)
    from router_distill.bench import run_bench

    return run_bench(args)
