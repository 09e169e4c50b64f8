"""`router-distill eval`: score the champion and the teacher on a golden set, without training.

The same scoring as the flow's evaluate-model task (intent_router.evaluation.evaluate_target);
on Bedrock the champion is called through its deployment.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from router_distill.output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    validation_message,
)


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


def _rows(goldens: list[Any]) -> list[dict[str, Any]]:
    rows = []
    for g in goldens:
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
    from intent_router.inputs import check_champion_taxonomy, golden_ref, resolve_golden
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
        check_champion_taxonomy(champion, taxonomy)
        if golden_ref(args.golden, taxonomy) is None:
            named = (
                "--golden none names none"
                if args.golden
                else (f"taxonomy {taxonomy.name!r} names none")
            )
            raise UserInputError(f"eval needs a golden set and {named}: pass --golden PATH")
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
            target = backend.target_for_deployment(  # called the way it was trained
                champion.deployment_id,
                "champion",
                f"champion {champion.model_id}",
                champion.prompt,
            )
        teacher = next(t for t in backend.baselines(taxonomy) if t.role == "teacher")
        results = [evaluate_target(backend, t, (), taxonomy, golden) for t in (target, teacher)]
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    goldens = [r.golden for r in results if r.golden is not None]
    if args.json:
        print(json.dumps([g.model_dump(mode="json") for g in goldens], indent=2))
        return EXIT_OK
    print(f"Golden set {golden.source} ({len(golden.items)} queries, version {golden.version})")
    print(format_table(_rows(goldens)))
    for g in goldens:
        if g.slices:
            shown = ", ".join(f"{tag} {s.strict_top1:.3f} (n={s.n})" for tag, s in g.slices.items())
            print(f"{g.model} by tag: {shown}")
    return EXIT_OK


def add_monitor_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    monitor = sub.add_parser(
        "monitor", help="check the champion on new traffic; emit router.drift when it drifts"
    )
    monitor.add_argument("--router", dest="router_name", help="router (default: taxonomy name)")
    monitor.add_argument("--taxonomy", help="built-in taxonomy or file (default: default)")
    monitor.add_argument("--traffic", help="traffic source (default: the built-in sample log)")
    monitor.add_argument("--sample-size", type=int, help="teacher-labelled queries (default 200)")
    monitor.add_argument("--budget-usd", type=float, help="stop if the estimate exceeds this")
    monitor.add_argument("--backend", help="'local' (default) or a saved backend block")
    monitor.add_argument("--storage-block", help="saved file-system block 'slug/name'")


MONITOR_FLAGS = (
    "router_name",
    "taxonomy",
    "traffic",
    "sample_size",
    "budget_usd",
    "backend",
    "storage_block",
)


def run_monitor(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from intent_router.errors import UserInputError
    from intent_router.params import MonitorParams

    values = {f: getattr(args, f) for f in MONITOR_FLAGS if getattr(args, f) is not None}
    try:
        params = MonitorParams.model_validate(values)
    except ValidationError as error:
        print(f"error: {validation_message(error)}", file=sys.stderr)
        return EXIT_USAGE
    from flows.monitor import monitor_router

    try:
        check = monitor_router(**params.model_dump())
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("monitor interrupted: teacher labels paid for so far are cached", file=sys.stderr)
        return EXIT_INTERRUPTED
    if check is None:
        print("no new traffic since the last check")
        return EXIT_OK
    print(
        f"router {check.router} ({check.champion_model_id}): {check.sample} of "
        f"{check.new_queries} new queries sampled; agreement {check.agreement:.3f} "
        f"(95% CI {check.agreement_ci95[0]:.3f}-{check.agreement_ci95[1]:.3f}); unseen tokens "
        f"{check.unseen_token_share:.3f}; top-signal mix shift {check.mix_shift:.3f}"
    )
    print("DRIFT: " + "; ".join(check.alerts) if check.drifted else "no drift")
    return EXIT_OK
