"""`router-distill bench`: the numbers the README quotes, measured on this machine.

Runs the default pipeline twice in a fresh storage root and Prefect home (cold, then cached),
sampling the peak memory of the whole process tree, then measures the promoted student:
single-query latency, batched throughput on one core, artifact size, and agreement with the
teacher on the hand-written query set.
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

REALISTIC = Path(__file__).resolve().parent.parent / "tests" / "data" / "realistic_queries.csv"


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


def bench_pipeline(train_count: int, workdir: Path) -> dict[str, Any]:
    """cold: empty storage and Prefect home (a first run on a new machine); cached: the
    identical run again; cold_warm_prefect: empty storage, Prefect home already migrated."""
    prefect_home = str(workdir / "prefect-home")
    command = [
        sys.executable,
        "-m",
        "router_distill",
        "run",
        "--train-count",
        str(train_count),
        "--report-json",
    ]
    runs = {}
    for name, home in (("cold", "home"), ("cached", "home"), ("cold_warm_prefect", "home2")):
        env = {
            **os.environ,
            "ROUTER_DISTILL_HOME": str(workdir / home),
            "PREFECT_HOME": prefect_home,
        }
        report = workdir / f"{name}.json"
        runs[name] = timed_run([*command, str(report)], env)
        runs[name]["report"] = json.loads(report.read_text()) if report.exists() else None
    return runs


def bench_student(home: Path) -> dict[str, Any]:
    import numpy as np

    from intent_router.backends.local import LocalBackend, student_decision
    from intent_router.metrics import agrees
    from intent_router.registry import ChampionRegistry
    from intent_router.storage import DirectoryStore
    from intent_router.taxonomy import builtin_taxonomy
    from intent_router.teacher import ReferenceTeacher

    store = DirectoryStore(home / "store")
    champion = ChampionRegistry(store, "default").current()
    if champion is None:
        return {"error": "no champion was promoted"}
    backend = LocalBackend(store)
    student = backend.load_student(champion.model_id)
    artifact = store.read(backend.artifact_path(champion.model_id)) or b""
    rows = list(csv.DictReader(REALISTIC.open(encoding="utf-8")))
    queries = [r["query"] for r in rows]
    signals = student.signals
    teacher = ReferenceTeacher(builtin_taxonomy())

    single = []
    for _ in range(3):
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

    def accuracy(predict: Any) -> float:
        hits = 0
        for row in rows:
            weights = predict(row["query"])
            hits += max(weights, key=lambda s: weights[s]) == row["expected_top"]
        return round(hits / len(rows), 4)

    student_weights = student.predict_weights(queries)
    teacher_weights = [teacher.route(q).weights for q in queries]
    agreement = np.mean(
        [
            agrees(t, dict(zip(signals, s, strict=True)), signals)
            for t, s in zip(teacher_weights, student_weights, strict=True)
        ]
    )
    return {
        "model_id": champion.model_id,
        "artifact_bytes": len(artifact),
        "single_query_p50_ms": round(statistics.median(single) * 1000, 4),
        "single_query_p95_ms": round(float(np.percentile(single, 95)) * 1000, 4),
        "decision_with_reasoning_p50_ms": round(statistics.median(decision) * 1000, 4),
        "batched_queries_per_s_median": round(statistics.median(throughput)),
        "handwritten_queries": len(rows),
        "handwritten_teacher_accuracy": accuracy(lambda q: teacher.route(q).weights),
        "handwritten_student_accuracy": accuracy(
            lambda q: dict(zip(signals, student.predict_weights([q])[0], strict=True))
        ),
        "handwritten_student_teacher_agreement": round(float(agreement), 4),
    }


def _candidate(report: dict[str, Any] | None) -> dict[str, Any]:
    if not report or "evaluations" not in report:
        return {}
    row = next(r for r in report["evaluations"] if r["overall"]["role"] == "candidate")
    e, novel = row["overall"], row["slices"].get("novel-vocabulary", {})
    return {
        "holdout_n": e["n"],
        "top_signal_agreement": round(e["top_signal_accuracy"], 4),
        "mean_mae": round(e["mean_mae"], 4),
        "mean_rubric": round(e["mean_rubric"], 3),
        "novel_vocabulary_n": novel.get("n"),
        "novel_vocabulary_agreement": round(novel.get("top_signal_accuracy", 0), 4),
    }


def run_bench(args: argparse.Namespace) -> int:
    results: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="router-distill-bench-") as folder:
        workdir = Path(folder)
        if not args.skip_pipeline:
            runs = bench_pipeline(args.train_count, workdir)
            results["pipeline"] = {
                k: {x: v[x] for x in ("seconds", "exit_code", "peak_rss_mb")}
                for k, v in runs.items()
            }
            cached = runs["cached"]["seconds"]
            for name in ("cold", "cold_warm_prefect"):
                speedup = round(runs[name]["seconds"] / cached, 2) if cached else None
                results["pipeline"][f"speedup_cached_vs_{name}"] = speedup
            results["student_vs_teacher"] = _candidate(runs["cold"]["report"])
            if runs["cold"]["exit_code"] != 0:
                print("\n".join(runs["cold"]["tail"]), file=sys.stderr)
        home = workdir / "home"
        if args.skip_pipeline:
            home = Path(os.environ.get("ROUTER_DISTILL_HOME", ".router-distill"))
        results["student"] = bench_student(home)
    print(json.dumps(results, indent=2))
    if args.report_json:
        args.report_json.write_text(json.dumps(results, indent=2), "utf-8")
    failed = results.get("pipeline", {}).get("cold", {}).get("exit_code", 0)
    return 1 if failed else 0
