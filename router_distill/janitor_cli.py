"""Command line: `router-distill janitor [--router R] [--delete] [--json]`.

Lists the Bedrock resources this product tagged (running customization jobs, custom models,
deployments) that no run and no router holds any more; with --delete, stops those jobs, then
deletes those deployments, then those models. Held: the champion's model and deployment, the
stable deployment, every model in the ledger (rollback), the rejected models kept on purpose,
a model a kept deployment serves, and everything of a run that is still running.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Iterable
from typing import Any

from router_distill.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE, one_line


def _error(message: str) -> None:
    print(f"error: {one_line(message)}", file=sys.stderr)


def add_janitor_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `janitor` on the CLI's subparsers."""
    janitor = sub.add_parser(
        "janitor",
        help="list (with --delete: remove) paid resources left by runs that no longer hold them",
    )
    janitor.add_argument(
        "--backend",
        default="aws",
        help="'aws' (the blocks of `blocks create --backend aws`, default), 'local' or a saved "
        "backend block 'slug/name'",
    )
    janitor.add_argument(
        "--storage-block", help="storage of the runs (default: the backend block's bucket)"
    )
    janitor.add_argument("--router", help="only resources tagged with this router")
    janitor.add_argument(
        "--delete", action="store_true", help="stop the orphaned jobs, delete the rest"
    )
    janitor.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run_states(run_ids: Iterable[str]) -> tuple[dict[str, Any], str | None]:
    """running / ended / unknown per run id, from the Prefect API; and why, if unreachable.

    A run id that is not a UUID or that the API does not know is ended."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    ids = sorted(set(run_ids))
    states: dict[str, Any] = {}
    try:
        with get_client(sync_client=True) as client:
            for run_id in ids:
                try:
                    flow_run = client.read_flow_run(uuid.UUID(run_id))
                except (ValueError, ObjectNotFound):
                    states[run_id] = "ended"
                    continue
                final = flow_run.state is None or flow_run.state.is_final()
                states[run_id] = "ended" if final else "running"
    except Exception as error:  # unreachable API: nothing of an unknown run is removed
        return {run_id: "unknown" for run_id in ids}, f"{type(error).__name__}: {error}"
    return states, None


def _holdings(routers: Iterable[str], store: Any, keep_rejected: int) -> dict[str, Any]:
    from intent_router.errors import UserInputError
    from intent_router.lifecycle import RejectedModels, RouterHoldings, holdings
    from intent_router.registry import ChampionRegistry

    held: dict[str, Any] = {}
    for router in routers:
        try:
            registry = ChampionRegistry(store, router)
            held[router] = holdings(
                router,
                registry.current(),
                registry.ledger(),
                RejectedModels(store, router).entries(),
                keep_rejected,
            )
        except UserInputError as error:  # incl. a corrupt ledger: keep all of that router
            held[router] = RouterHoldings(unreadable=str(error))
    return held


def _remove(backend: Any, verdicts: list[Any]) -> tuple[list[dict[str, Any]], int]:
    """Stop jobs, then delete deployments, then models; every failure reported, the rest
    goes on. The results and the number of failures."""
    order = {"job": 0, "deployment": 1, "model": 2}
    results, failures = [], 0
    for verdict in sorted((v for v in verdicts if v.orphan), key=lambda v: order[v.resource.kind]):
        r = verdict.resource
        try:
            if r.kind == "job":
                done = "stopped" if backend.stop_job(r.arn) else "already ended"
            elif r.kind == "deployment":
                backend.delete_deployment(r.arn)
                done = "deleted"
            else:
                backend.delete_model(r.arn)
                done = "deleted"
        except Exception as error:
            failures += 1
            results.append({"kind": r.kind, "arn": r.arn, "result": f"failed: {error}"})
            continue
        results.append({"kind": r.kind, "arn": r.arn, "result": done})
    return results, failures


def run_janitor(args: argparse.Namespace) -> int:
    from blocks.backends import resolve_storage_ref
    from intent_router.errors import UserInputError
    from intent_router.lifecycle import classify
    from intent_router.report import format_table
    from tasks.runtime import Runtime

    backend_ref, storage_ref = args.backend, args.storage_block
    if backend_ref == "aws":
        from blocks.create import AWS_BACKEND_REF, AWS_STORAGE_REF

        backend_ref, storage_ref = AWS_BACKEND_REF, storage_ref or AWS_STORAGE_REF
    try:
        runtime = Runtime(
            backend=backend_ref, storage_block=resolve_storage_ref(backend_ref, storage_ref)
        )
        backend = runtime.backend_client()
        if not backend.paid:
            print(f"backend {args.backend!r} creates nothing paid: nothing to clean")
            return EXIT_OK
        resources = [
            r for r in backend.tagged_resources() if args.router is None or r.router == args.router
        ]
        held = _holdings(
            {r.router for r in resources if r.router},
            runtime.store(),
            backend.keep_rejected_models or 0,
        )
    except UserInputError as error:
        _error(str(error))
        return EXIT_USAGE
    runs, unreachable = run_states(r.run_id for r in resources if r.run_id)
    if unreachable:
        print(
            f"warning: Prefect API unreachable ({one_line(unreachable)}); resources of every "
            "run are kept",
            file=sys.stderr,
        )
    verdicts = classify(resources, held, runs)
    results, failures = _remove(backend, verdicts) if args.delete else ([], 0)
    rows = [
        {
            "kind": v.resource.kind,
            "name": v.resource.name,
            "status": v.resource.status,
            "router": v.resource.router or "",
            "run": v.resource.run_id or "",
            "orphan": v.orphan,
            "reason": v.reason,
            "arn": v.resource.arn,
        }
        for v in verdicts
    ]
    if args.json:
        print(json.dumps({"resources": rows, "actions": results}, indent=2))
    else:
        orphans = sum(v.orphan for v in verdicts)
        print(format_table(rows) if rows else "no resources tagged by router-distill")
        print(f"{orphans} orphaned of {len(rows)} tagged resources")
        for result in results:
            print(one_line(f"{result['kind']} {result['arn']}: {result['result']}"))
        if orphans and not args.delete:
            print("run again with --delete to remove the orphaned ones")
    return EXIT_FAILED if failures else EXIT_OK
