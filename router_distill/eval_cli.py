"""`router-distill eval`: score the champion and the teacher on a golden set, without training.

The same scoring as the flow's evaluate-model task (intent_router.evaluation.evaluate_target);
on Bedrock the champion is called through its deployment.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_eval_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evaluate = sub.add_parser(
        "eval", help="score the champion and the teacher on a golden set (no training)"
    )
    evaluate.add_argument("--router", default="default", help="router name (default: default)")
    evaluate.add_argument(
        "--golden", help="golden set JSONL/CSV (default: the one the router's taxonomy names)"
    )
    evaluate.add_argument(
        "--taxonomy",
        help="built-in taxonomy or file (default: the champion's taxonomy, when built in)",
    )
    evaluate.add_argument(
        "--backend", default="local", help="'local' (default) or a saved backend block"
    )
    evaluate.add_argument("--storage-block", help="saved file-system block 'slug/name'")
    evaluate.add_argument("--json", action="store_true", help="print the results as JSON")


def _taxonomy(args: argparse.Namespace, champion_taxonomy: str) -> Any:
    from intent_router.errors import UserInputError
    from intent_router.taxonomy import builtin_taxonomy_names, resolve_taxonomy

    if args.taxonomy:
        return resolve_taxonomy(args.taxonomy)
    stem = champion_taxonomy.replace("-", "_")
    if stem in builtin_taxonomy_names():
        return resolve_taxonomy(stem)
    raise UserInputError(
        f"the champion's taxonomy {champion_taxonomy!r} is not built in: pass --taxonomy FILE"
    )


def _backend_and_store(args: argparse.Namespace) -> tuple[Any, Any]:
    if args.backend == "local" and not args.storage_block:
        from blocks.storage import local_store
        from intent_router.backends.local import LocalBackend

        store = local_store()
        return LocalBackend(store), store
    from tasks.runtime import Runtime

    runtime = Runtime(backend=args.backend, storage_block=args.storage_block)
    return runtime.backend_client(), runtime.store()


def _rows(results: list[Any]) -> list[dict[str, Any]]:
    rows = []
    for result in results:
        g = result.golden
        rows.append(
            {
                "model": g.model,
                "role": g.role,
                "n": g.n,
                "parse_rate": round(g.parse_rate, 4),
                "strict_top1": round(g.strict_top1, 4),
                "strict_ci95": f"{g.strict_ci95[0]:.3f}-{g.strict_ci95[1]:.3f}",
                "lenient_top1": round(g.lenient_top1, 4),
                "mae": None if g.mae is None else round(g.mae, 4),
                **{f"recall_{s}": round(v, 3) for s, v in g.recall_per_signal.items()},
            }
        )
    return rows


def run_eval(args: argparse.Namespace) -> int:
    from intent_router.errors import UserInputError
    from intent_router.evaluation import evaluate_target
    from intent_router.inputs import resolve_golden
    from intent_router.registry import ChampionRegistry, check_router_name
    from intent_router.report import format_table

    try:
        check_router_name(args.router)
        backend, store = _backend_and_store(args)
        champion = ChampionRegistry(store, args.router).current()
        if champion is None:
            print(f"error: no router has been promoted yet for '{args.router}'", file=sys.stderr)
            return EXIT_FAILED
        taxonomy = _taxonomy(args, champion.taxonomy)
        golden = resolve_golden(args.golden, taxonomy, required=True)
        assert golden is not None
        if backend.name == "local":  # in process: the model itself, deployed or not
            from intent_router.backends.base import ModelTarget

            target = ModelTarget(
                name=f"champion {champion.model_id}",
                role="champion",
                ref=f"model:{champion.model_id}",
                prompt="student",
                priced_as="local",
            )
        else:
            target = backend.target_for_deployment(
                champion.deployment_id, "champion", f"champion {champion.model_id}"
            )
        teacher = next(t for t in backend.baselines(taxonomy) if t.role == "teacher")
        results = [evaluate_target(backend, t, (), taxonomy, golden) for t in (target, teacher)]
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps([r.golden.model_dump(mode="json") for r in results], indent=2))
        return EXIT_OK
    print(f"Golden set {golden.source} ({len(golden.items)} queries, version {golden.version})")
    print(format_table(_rows(results)))
    for result in results:
        slices = result.golden.slices
        if slices:
            shown = ", ".join(f"{tag} {s.strict_top1:.3f} (n={s.n})" for tag, s in slices.items())
            print(f"{result.golden.model} by tag: {shown}")
    return EXIT_OK
