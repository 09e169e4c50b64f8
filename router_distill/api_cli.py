"""Command line: `router-distill api [--host H] [--port P] [--router NAME ...]`."""

from __future__ import annotations

import argparse
import logging
import sys

from router_distill.output import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    one_line,
    positive_number,
    whole_number,
)


def _error(message: str) -> None:
    print(f"error: {one_line(message)}", file=sys.stderr)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is outside 0-65535")
    return value


def _reload_interval(text: str) -> float:
    value = positive_number(text)
    if not 0.05 <= value <= 3600:  # ServingSettings.reload_interval_s
        raise argparse.ArgumentTypeError(f"{text!r} is outside 0.05-3,600 seconds")
    return value


def add_api_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `api` on the CLI's subparsers."""
    api = sub.add_parser(
        "api",
        help="serve the champions over HTTP (POST /v1/route); reloads after a promotion",
    )
    api.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    api.add_argument("--port", type=_port, default=8080, help="port (8080; 0: any free port)")
    api.add_argument(
        "--router",
        action="append",
        dest="routers",
        help="router to serve (repeatable; default: default); the first is the default",
    )
    api.add_argument(
        "--storage-block",
        help="saved file-system block 'slug/name' the runs store to (default: "
        "ROUTER_DISTILL_HOME); e.g. the S3 bucket of `blocks create --backend aws`",
    )
    api.add_argument(
        "--taxonomy",
        help="taxonomy file of routers whose taxonomy is not built in (a Bedrock champion's "
        "prompt, the cascade's teacher)",
    )
    api.add_argument(
        "--reload-interval",
        type=_reload_interval,
        default=5.0,
        help="seconds between checks of the champion pointer (default 5)",
    )
    api.add_argument(
        "--cascade",
        action="store_true",
        help="ask the teacher when the student is unsure or fails (default: the prior answers "
        "a failure)",
    )
    api.add_argument(
        "--teacher-model-id", help="Bedrock champion with --cascade: the teacher to ask"
    )
    api.add_argument(
        "--max-queries",
        type=whole_number(1, 100_000),
        default=1000,
        help="most queries in one request (default 1,000; more is a 413)",
    )
    api.add_argument(
        "--drain-seconds",
        type=positive_number,
        default=30.0,
        help="on SIGTERM/SIGINT, how long in-flight requests may finish (default 30)",
    )


def run_api(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from intent_router.errors import UserInputError
    from intent_router.registry import check_router_name
    from intent_router.serving import ServingSettings, load_router, open_store
    from intent_router.taxonomy import load_taxonomy
    from router_distill.api import serve

    names = list(dict.fromkeys(args.routers or ["default"]))
    routers = []
    try:
        for name in names:
            check_router_name(name)  # before any storage or Prefect API is touched
        settings = ServingSettings(
            reload_interval_s=args.reload_interval,
            cascade=args.cascade,
            teacher_model_id=args.teacher_model_id,
        )
        taxonomy = load_taxonomy(args.taxonomy) if args.taxonomy else None
        store = open_store(args.storage_block)
        for name in names:
            router = load_router(
                name,
                store=store,
                taxonomy=taxonomy,
                settings=settings,
                require_champion=False,
            )
            routers.append(router)
            status = router.status()
            if status["ready"]:
                print(f"router {name}: serving {status['model_id']}", file=sys.stderr)
            else:
                reason = status["reload_error"] or "no champion promoted yet"
                print(
                    f"router {name}: not ready ({one_line(reason)}); /readyz answers 503 "
                    "until a champion loads",
                    file=sys.stderr,
                )
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        serve(
            routers,
            args.host,
            args.port,
            drain_seconds=args.drain_seconds,
            max_queries=args.max_queries,
            announce=lambda line: print(line, flush=True),
        )
    except (UserInputError, ValidationError, ValueError) as error:
        for router in routers:
            router.close()
        _error(str(error))
        return EXIT_USAGE
    except OSError as error:
        _error(f"the service stopped: {error}")
        return EXIT_FAILED
    return EXIT_OK
