"""`router-distill bench`: the numbers the README quotes, measured on this machine.

Runs the default pipeline cold (fresh storage root and Prefect home) alternating with a trivial
Prefect flow started the same way, so the flow's own work is the difference measured side by
side; then the identical run again (cached), and a 2,000-example run with a taxonomy from a
domain nothing ships (its probe queries). Then it measures the run's student: single-query
latency and batched throughput on one core, artifact size, accuracy on the hand-written set.
`--api` instead load-tests `router-distill api` on a copy of the promoted champion (see
router_distill/api_bench.py). `--labelling-only` instead measures Bedrock teacher labelling at
concurrency C against a fake Converse that sleeps 800 ms (10,000 queries at C=8 and 32;
sequential from a sample).
Quality figures (holdout, novel vocabulary, traffic, golden set, cascade) come from the cold
run's report. `--compare OLD.json` prints the previous bench's figures alongside.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
REALISTIC = DATA / "realistic_queries.csv"
PROBE_TAXONOMY = DATA / "probe" / "game_streams.yaml"  # a domain no built-in taxonomy covers
PROBE_QUERIES = DATA / "probe" / "probes.csv"


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory_gb = round(pages / 1024**3, 1)
    except (ValueError, OSError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "python": platform.python_version(),
        "os": platform.platform(),
    }


def _tree_rss_bytes(root: int) -> int:
    """Resident memory of a process and all its descendants (Linux /proc)."""
    total, stack, seen = 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{pid}/task").iterdir():
                children = (task / "children").read_text().split()
                stack += [int(c) for c in children]
        except OSError:
            continue
    return total


def timed_run(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run a command; return wall seconds, exit code and peak tree RSS (sampled every 0.1 s)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss_bytes(process.pid))
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    stop.set()
    sampler.join()
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "exit_code": process.returncode,
        "peak_rss_mb": round(peak / 1024**2, 1),
        "tail": output.splitlines()[-3:],
    }


TRIVIAL_FLOW = (
    "from prefect import flow\n"
    "@flow(name='bench-trivial')\n"
    "def trivial() -> int:\n"
    "    return 1\n"
    "trivial()\n"
)


def _run_command(train_count: int, report: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "router_distill",
        "run",
        "--train-count",
        str(train_count),
        "--report-json",
        str(report),
        *extra,
    ]


def bench_pipeline(train_count: int, workdir: Path, repeats: int) -> dict[str, Any]:
    """The main job against a trivial Prefect flow, each in a fresh Prefect home and storage
    root, alternating; then the identical main job again (cached). Flow work = main - trivial."""
    pairs = []
    reports = []
    for i in range(repeats):
        trivial_env = {**os.environ, "PREFECT_HOME": str(workdir / f"trivial-prefect-{i}")}
        trivial = timed_run([sys.executable, "-c", TRIVIAL_FLOW], trivial_env)
        env = {
            **os.environ,
            "ROUTER_DISTILL_HOME": str(workdir / f"home-{i}"),
            "PREFECT_HOME": str(workdir / f"prefect-{i}"),
        }
        report = workdir / f"cold-{i}.json"
        main = timed_run(_run_command(train_count, report), env)
        main["report"] = json.loads(report.read_text()) if report.exists() else None
        pairs.append((trivial, main))
        reports.append(main["report"])
    cached_env = {
        **os.environ,
        "ROUTER_DISTILL_HOME": str(workdir / "home-0"),
        "PREFECT_HOME": str(workdir / "prefect-0"),
    }
    cached = timed_run(_run_command(train_count, workdir / "cached.json"), cached_env)
    trivial_s = [t["seconds"] for t, _ in pairs]
    main_s = [m["seconds"] for _, m in pairs]
    stages = [r.get("seconds", {}) for r in reports if r]
    return {
        "repeats": repeats,
        "trivial_flow_s": trivial_s,
        "main_job_cold_s": main_s,
        "main_job_exit_codes": [m["exit_code"] for _, m in pairs],
        "main_job_outcomes": [(r or {}).get("outcome") for r in reports],
        "flow_work_s_median": round(
            statistics.median(m - t for t, m in zip(trivial_s, main_s, strict=True)), 2
        ),
        "main_over_trivial_ratio_median": round(
            statistics.median(m / t for t, m in zip(trivial_s, main_s, strict=True) if t), 2
        ),
        "main_job_cached_s": cached["seconds"],
        "peak_rss_mb_max": max(m["peak_rss_mb"] for _, m in pairs),
        "stage_seconds_median": {
            k: round(statistics.median(s[k] for s in stages if k in s), 2)
            for k in (stages[0] if stages else {})
        },
        "_report": reports[0],
        "_home": str(workdir / "home-0"),
        "_tail": pairs[0][1]["tail"],
    }


def _one_core() -> Any:
    """Pin this process to one CPU while measuring throughput (Linux); returns a restorer."""
    if not hasattr(os, "sched_getaffinity"):
        return lambda: None
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    return lambda: os.sched_setaffinity(0, before)


def bench_student(home: Path, model_id: str) -> dict[str, Any]:
    import numpy as np

    from intent_router.backends.local import LocalBackend, student_decision
    from intent_router.storage import DirectoryStore
    from intent_router.taxonomy import builtin_taxonomy
    from intent_router.teacher import ReferenceTeacher

    store = DirectoryStore(home / "store")
    backend = LocalBackend(store)
    student = backend.load_student(model_id)
    artifact = store.read(backend.artifact_path(model_id)) or b""
    rows = list(csv.DictReader(REALISTIC.open(encoding="utf-8")))
    queries = [r["query"] for r in rows]
    signals = student.signals
    teacher = ReferenceTeacher(builtin_taxonomy())

    restore = _one_core()
    try:
        student.predict_weights(queries)  # warm the feature cache as a serving process would
        single = []
        for _ in range(5):
            for query in queries:
                t0 = time.perf_counter()
                student.predict_weights([query])
                single.append(time.perf_counter() - t0)
        decision = []
        for query in queries:
            t0 = time.perf_counter()
            student_decision(student, query)
            decision.append(time.perf_counter() - t0)
        batch = (queries * (20_000 // len(queries) + 1))[:20_000]
        throughput = []
        for _ in range(3):
            t0 = time.perf_counter()
            student.predict_weights(batch)
            throughput.append(len(batch) / (time.perf_counter() - t0))
        teacher_times = []
        for query in queries:
            t0 = time.perf_counter()
            teacher.route(query)
            teacher_times.append(time.perf_counter() - t0)
    finally:
        restore()

    def accuracy(predict: Any) -> float:
        hits = 0
        for row in rows:
            weights = predict(row["query"])
            hits += max(weights, key=lambda s: weights[s]) == row["expected_top"]
        return round(hits / len(rows), 4)

    return {
        "model_id": model_id,
        "artifact_bytes": len(artifact),
        "single_query_p50_ms": round(statistics.median(single) * 1000, 4),
        "single_query_p95_ms": round(float(np.percentile(single, 95)) * 1000, 4),
        "decision_with_reasoning_p50_ms": round(statistics.median(decision) * 1000, 4),
        "batched_queries_per_s_one_core": round(statistics.median(throughput)),
        "teacher_route_p50_ms": round(statistics.median(teacher_times) * 1000, 4),
        "handwritten_queries": len(rows),
        "handwritten_teacher_accuracy": accuracy(lambda q: teacher.route(q).weights),
        "handwritten_student_accuracy": accuracy(
            lambda q: dict(zip(signals, student.predict_weights([q])[0], strict=True))
        ),
    }


def quality(report: dict[str, Any] | None) -> dict[str, Any]:
    """The candidate's and the teacher's figures from a run report, and the cascade's."""
    if not report or "evaluations" not in report:
        return {}
    by_role = {r["overall"]["role"]: r for r in report["evaluations"]}
    out: dict[str, Any] = {}
    for role in ("candidate", "teacher"):
        row = by_role.get(role)
        if row is None:
            continue
        e, slices, golden = row["overall"], row["slices"], row.get("golden")
        out[role] = {
            "holdout_n": e["n"],
            "holdout_agreement": round(e["top_signal_accuracy"], 4),
            "holdout_mean_mae": round(e["mean_mae"], 4),
            "holdout_mean_rubric": round(e["mean_rubric"], 3),
            "novel_vocabulary_agreement": round(
                slices.get("novel-vocabulary", {}).get("top_signal_accuracy", 0), 4
            ),
            "traffic_agreement": round(slices.get("traffic", {}).get("top_signal_accuracy", 0), 4),
            "golden_strict_top1": round(golden["strict_top1"], 4) if golden else None,
            "golden_n": golden["n"] if golden else None,
        }
    cascade = report.get("cascade")
    if cascade:
        chosen = cascade["chosen"]
        out["cascade"] = {
            "threshold": cascade["threshold"],
            "target_holdout_accuracy": cascade["target_accuracy"],
            "local_share": chosen["local_share"],
            "holdout_accuracy": chosen["accuracy"],
            "golden_strict_top1": chosen["golden_accuracy"],
            "mean_latency_ms": chosen["mean_latency_ms"],
            "usd_per_1k": chosen["cost_per_1k_usd"],
            "calibration_error": cascade["calibration_error"],
        }
    return out


def bench_probe(workdir: Path, prefect_home: Path) -> dict[str, Any]:
    """Train with a taxonomy from a domain nothing ships (2,000 examples) and route its probes."""
    home = workdir / "probe-home"
    env = {**os.environ, "ROUTER_DISTILL_HOME": str(home), "PREFECT_HOME": str(prefect_home)}
    report_path = workdir / "probe.json"
    run = timed_run(_run_command(2000, report_path, "--taxonomy", str(PROBE_TAXONOMY)), env)
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    if not report or "model_id" not in report:
        return {"error": "the probe run did not train a model", "tail": run["tail"]}
    from intent_router.backends.local import LocalBackend
    from intent_router.storage import DirectoryStore
    from intent_router.taxonomy import load_taxonomy
    from intent_router.teacher import ReferenceTeacher

    student = LocalBackend(DirectoryStore(home / "store")).load_student(report["model_id"])
    teacher = ReferenceTeacher(load_taxonomy(PROBE_TAXONOMY))
    rows = list(csv.DictReader(PROBE_QUERIES.open(encoding="utf-8")))
    student_tops = [
        student.signals[int(student.predict_proba([r["query"]])[0].argmax())] for r in rows
    ]
    teacher_tops = []
    for r in rows:
        weights = teacher.route(r["query"]).weights
        teacher_tops.append(max(weights, key=lambda s: weights[s]))
    return {
        "taxonomy": PROBE_TAXONOMY.name,
        "probes": len(rows),
        "student_correct": sum(
            t == r["expected_top"] for t, r in zip(student_tops, rows, strict=True)
        ),
        "teacher_correct": sum(
            t == r["expected_top"] for t, r in zip(teacher_tops, rows, strict=True)
        ),
        "student_misses": [
            f"{r['query']} -> {t} (expected {r['expected_top']})"
            for t, r in zip(student_tops, rows, strict=True)
            if t != r["expected_top"]
        ],
        "run_seconds": run["seconds"],
    }


# (figure, path in the results, target, higher is better)
TARGETS: tuple[tuple[str, tuple[str, ...], float | None, bool], ...] = (
    ("golden: student strict top-1", ("quality", "candidate", "golden_strict_top1"), 0.92, True),
    ("golden: cascade strict top-1", ("quality", "cascade", "golden_strict_top1"), None, True),
    ("golden: teacher strict top-1", ("quality", "teacher", "golden_strict_top1"), 0.95, True),
    ("cascade: share answered by the student", ("quality", "cascade", "local_share"), None, True),
    ("holdout agreement", ("quality", "candidate", "holdout_agreement"), 0.97, True),
    ("holdout mean MAE", ("quality", "candidate", "holdout_mean_mae"), 0.03, False),
    ("holdout mean rubric", ("quality", "candidate", "holdout_mean_rubric"), 4.5, True),
    (
        "novel-vocabulary agreement",
        ("quality", "candidate", "novel_vocabulary_agreement"),
        0.90,
        True,
    ),
    ("traffic-slice agreement", ("quality", "candidate", "traffic_agreement"), None, True),
    ("hand-written set: student", ("student", "handwritten_student_accuracy"), None, True),
    ("hand-written set: teacher", ("student", "handwritten_teacher_accuracy"), None, True),
    ("probe taxonomy: student probes right (of 8)", ("probe", "student_correct"), 7, True),
    ("flow's own work, s (main - trivial)", ("pipeline", "flow_work_s_median"), 15, False),
    ("main job cold, s (median)", ("pipeline", "_main_median"), None, False),
    ("trivial Prefect flow, s (median)", ("pipeline", "_trivial_median"), None, False),
    ("student p50 ms per query", ("student", "single_query_p50_ms"), 0.05, False),
    (
        "student batched queries/s, one core",
        ("student", "batched_queries_per_s_one_core"),
        50_000,
        True,
    ),
    ("artifact MB", ("student", "_artifact_mb"), 10, False),
)


def bench_labelling(
    queries: int, sleep_ms: float, concurrencies: list[int], sequential_sample: int
) -> dict[str, Any]:
    """Teacher labelling on the Bedrock backend against the validated fake whose Converse
    sleeps `sleep_ms` (a simulated teacher): wall time per concurrency, against the bound
    1.2 x (queries x sleep / C). Sequential is measured on a sample and extrapolated."""
    try:
        from tests.support.fake_bedrock import FakeBedrock  # ships with the repository
    except ImportError:
        return {"error": "needs the repository checkout (tests/support/fake_bedrock.py)"}
    from intent_router.backends.bedrock import BedrockBackend, BedrockSettings
    from intent_router.storage import DirectoryStore
    from intent_router.taxonomy import builtin_taxonomy

    taxonomy = builtin_taxonomy()
    settings = BedrockSettings(role_arn="arn:aws:iam::123456789012:role/bench")

    def label(count: int, concurrency: int) -> dict[str, Any]:
        fake = FakeBedrock(sleep_ms=sleep_ms)
        with tempfile.TemporaryDirectory(prefix="router-distill-bench-label-") as folder:
            backend = BedrockBackend(
                settings,
                control=fake.control,
                runtime=fake.runtime,
                store=DirectoryStore(folder),
                concurrency=concurrency,
            )
            texts = [f"labelling bench query {n}: a drone shot of a beach" for n in range(count)]
            started = time.perf_counter()
            results = backend.label(texts, taxonomy)
            wall = time.perf_counter() - started
        if [r.query for r in results] != texts or any(r.text is None for r in results):
            raise RuntimeError("labelling bench: results out of order or missing")
        return {"queries": count, "wall_s": round(wall, 2), "max_in_flight": fake.max_in_flight}

    out: dict[str, Any] = {"queries": queries, "teacher_sleep_ms": sleep_ms}
    sample = label(sequential_sample, 1)
    per_query = sample["wall_s"] / sequential_sample
    out["sequential"] = {
        **sample,
        "extrapolated_wall_s": round(per_query * queries, 1),
        "note": f"measured on {sequential_sample} queries, extrapolated to {queries:,}",
    }
    for concurrency in concurrencies:
        measured = label(queries, concurrency)
        bound = 1.2 * queries * sleep_ms / 1000 / concurrency
        out[f"c{concurrency}"] = {
            **measured,
            "bound_s": round(bound, 1),
            "ratio_to_bound": round(measured["wall_s"] / bound, 3),
            "speedup_vs_sequential": round(per_query * queries / measured["wall_s"], 1),
        }
    return out


def labelling_table(figures: dict[str, Any]) -> str:
    rows = []
    sequential = figures["sequential"]
    rows.append(
        {
            "labelling": "sequential (C=1)",
            "queries": f"{sequential['queries']:,} (extrapolated to {figures['queries']:,})",
            "wall_s": sequential["extrapolated_wall_s"],
            "bound_s": "",
            "wall/bound": "",
            "max_in_flight": sequential["max_in_flight"],
        }
    )
    for key, value in figures.items():
        if key.startswith("c") and isinstance(value, dict):
            rows.append(
                {
                    "labelling": f"C={key[1:]}",
                    "queries": f"{value['queries']:,}",
                    "wall_s": value["wall_s"],
                    "bound_s": value["bound_s"],
                    "wall/bound": value["ratio_to_bound"],
                    "max_in_flight": value["max_in_flight"],
                }
            )
    from intent_router.report import format_table

    return format_table(rows)


def run_labelling_bench(args: argparse.Namespace) -> int:
    """`router-distill bench --labelling-only`: the labelling-concurrency figure alone."""
    figures = bench_labelling(
        args.labelling_queries,
        args.labelling_sleep_ms,
        args.labelling_concurrency or [8, 32],
        args.labelling_sequential_sample,
    )
    results = {"machine": machine(), "labelling": figures}
    print(json.dumps(results, indent=2))
    if "error" in figures:
        return 1
    print()
    print(
        f"Teacher labelling, fake Converse sleeping {figures['teacher_sleep_ms']:g} ms "
        f"(bound: 1.2 x queries x sleep / C; sequential measured on a sample, extrapolated)"
    )
    print(labelling_table(figures))
    if args.report_json:
        args.report_json.write_text(json.dumps(results, indent=2), "utf-8")
    return 0


def _get(results: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _derive(results: dict[str, Any]) -> None:
    pipeline = results.get("pipeline")
    if pipeline:
        pipeline["_main_median"] = round(statistics.median(pipeline["main_job_cold_s"]), 2)
        pipeline["_trivial_median"] = round(statistics.median(pipeline["trivial_flow_s"]), 2)
    student = results.get("student")
    if student and "artifact_bytes" in student:
        student["_artifact_mb"] = round(student["artifact_bytes"] / 1e6, 2)


Targets = tuple[tuple[str, tuple[str, ...], float | None, bool], ...]


def comparison_table(
    after: dict[str, Any], before: dict[str, Any] | None, targets: Targets | None = None
) -> str:
    """Every figure the issue sets a number for (`targets`, default the pipeline's), with the
    previous champion's alongside."""
    from intent_router.report import format_table

    rows = []
    for name, path, target, higher in TARGETS if targets is None else targets:
        now = _get(after, path)
        row = {"figure": name}
        if before is not None:
            row["before"] = "-" if _get(before, path) is None else _get(before, path)
        row["after"] = "-" if now is None else now
        if target is None:
            row["target"], row["met"] = "", ""
        else:
            row["target"] = (">= " if higher else "<= ") + str(target)
            row["met"] = (
                ""
                if now is None
                else ("yes" if (now >= target) == higher or now == target else "no")
            )
        rows.append(row)
    return format_table(rows)


def run_bench(args: argparse.Namespace) -> int:
    if getattr(args, "api", False) and getattr(args, "labelling_only", False):
        print("error: choose one of --api and --labelling-only", file=sys.stderr)
        return 2
    if getattr(args, "labelling_only", False):
        return run_labelling_bench(args)
    results: dict[str, Any] = {"machine": machine()}
    before = None
    if args.compare is not None:
        try:
            before = json.loads(args.compare.read_text("utf-8"))
        except (OSError, ValueError) as error:
            print(f"error: cannot read --compare {args.compare}: {error}", file=sys.stderr)
            return 2
        if not isinstance(before, dict) or "machine" not in before:
            print(
                f"error: --compare {args.compare} is not a bench report (no 'machine')",
                file=sys.stderr,
            )
            return 2
    if args.report_json is not None and not args.report_json.parent.is_dir():
        print(
            f"error: --report-json {args.report_json}: folder {args.report_json.parent} "
            "does not exist",
            file=sys.stderr,
        )
        return 2
    if getattr(args, "api", False):
        from router_distill.api_bench import run_api_bench

        return run_api_bench(args, before)
    with tempfile.TemporaryDirectory(prefix="router-distill-bench-") as folder:
        workdir = Path(folder)
        pipeline = bench_pipeline(args.train_count, workdir, args.repeats)
        report, home = pipeline.pop("_report"), Path(pipeline.pop("_home"))
        tail = pipeline.pop("_tail")
        results["pipeline"] = pipeline
        results["quality"] = quality(report)
        if report and report.get("model_id"):
            results["student"] = bench_student(home, report["model_id"])
        else:
            print("\n".join(tail), file=sys.stderr)
            results["student"] = {"error": "the cold run did not train a model"}
        if not args.skip_probe:
            results["probe"] = bench_probe(workdir, workdir / "prefect-0")
    _derive(results)
    print(json.dumps(results, indent=2))
    print()
    print(comparison_table(results, before))
    if args.report_json:
        args.report_json.write_text(json.dumps(results, indent=2), "utf-8")
    return 0 if "model_id" in results["student"] else 1
