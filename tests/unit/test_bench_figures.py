"""The bench's figure table: values read from a run report, targets, before and after."""

from __future__ import annotations

from typing import Any

from router_distill.bench import (
    _derive,
    bench_labelling,
    comparison_table,
    labelling_table,
    quality,
)


def report(candidate_golden: float) -> dict[str, Any]:
    def row(role: str, acc: float, golden: float) -> dict[str, Any]:
        overall = {
            "role": role,
            "n": 900,
            "top_signal_accuracy": acc,
            "mean_mae": 0.03,
            "mean_rubric": 4.6,
        }
        return {
            "overall": overall,
            "slices": {"novel-vocabulary": {"top_signal_accuracy": 0.91}},
            "golden": {"strict_top1": golden, "n": 497},
        }

    return {
        "evaluations": [row("candidate", 0.975, candidate_golden), row("teacher", 1.0, 0.96)],
        "cascade": {
            "threshold": 0.8,
            "target_accuracy": 0.98,
            "calibration_error": 0.02,
            "chosen": {
                "local_share": 0.8,
                "accuracy": 0.985,
                "golden_accuracy": 0.95,
                "mean_latency_ms": 100.0,
                "cost_per_1k_usd": 0.4,
            },
        },
    }


def results(candidate_golden: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "quality": quality(report(candidate_golden)),
        "pipeline": {
            "main_job_cold_s": [60.0, 70.0],
            "trivial_flow_s": [40.0, 50.0],
            "flow_work_s_median": 20.0,
        },
        "student": {"single_query_p50_ms": 0.04, "artifact_bytes": 2_500_000},
        "probe": {"student_correct": 7},
    }
    _derive(out)
    return out


def test_quality_reads_the_candidate_teacher_and_cascade_figures() -> None:
    figures = quality(report(0.9))
    assert figures["candidate"]["golden_strict_top1"] == 0.9
    assert figures["teacher"]["holdout_agreement"] == 1.0
    assert figures["cascade"]["golden_strict_top1"] == 0.95
    assert quality(None) == {} and quality({"error": "x"}) == {}


def test_the_table_marks_each_target_met_or_not_and_shows_the_previous_figures() -> None:
    table = comparison_table(results(0.93), results(0.78))
    lines = {line.split("  ")[0]: line for line in table.splitlines()}
    golden = lines["golden: student strict top-1"]
    assert "0.78" in golden and "0.93" in golden and golden.rstrip().endswith("yes")
    assert lines["flow's own work, s (main - trivial)"].rstrip().endswith("no")  # 20 > 15
    assert lines["student p50 ms per query"].rstrip().endswith("yes")  # lower is better
    assert lines["probe taxonomy: student probes right (of 8)"].rstrip().endswith("yes")  # 7 == 7
    assert "65.0" in lines["main job cold, s (median)"]


def test_the_table_without_a_previous_bench_has_no_before_column() -> None:
    header = comparison_table(results(0.93), None).splitlines()[0]
    assert "before" not in header and "after" in header


def test_labelling_figure_extrapolates_sequential_and_compares_with_the_bound() -> None:
    figures = bench_labelling(queries=60, sleep_ms=5, concurrencies=[4], sequential_sample=6)
    assert figures["sequential"]["queries"] == 6 and figures["sequential"]["max_in_flight"] == 1
    assert "extrapolated" in figures["sequential"]["note"]
    c4 = figures["c4"]
    assert c4["max_in_flight"] == 4 and c4["queries"] == 60
    assert c4["bound_s"] == round(1.2 * 60 * 0.005 / 4, 1)
    table = labelling_table(figures)
    assert "sequential (C=1)" in table and "C=4" in table
