"""The run summary: what the CLI prints, what --report-json writes, what the artifacts show."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from intent_router.cascade import CascadePoint, CascadePolicy
from intent_router.golden import GoldenEvaluation
from intent_router.metrics import ModelEvaluation


class DatasetSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    requested_train: int
    generated_train: int
    generated_holdout: int
    teacher_calls: int = Field(description="Teacher calls made by this run (not by the cache).")
    cached_batches: int = Field(default=0, description="Batches reused from the label cache.")
    teacher_invalid_dropped: int
    exact_dropped: dict[str, int]
    near_dropped: dict[str, int]
    holdout_dropped_near_train: int
    golden_twins_dropped: int = Field(
        default=0, description="Training or holdout queries dropped as twins of a golden query."
    )
    surplus_trimmed: int
    train_records: int
    holdout_records: int
    holdout_novel_vocabulary: int
    train_uri: str
    holdout_uri: str
    train_sha256: str
    train_bytes: int
    per_cell: list[dict[str, Any]] = Field(default_factory=list)


class TrafficSummary(BaseModel):
    """What the run took from real traffic and what it cost."""

    model_config = ConfigDict(frozen=True)

    source: str
    read: int = Field(description="Queries read (after unreadable lines were skipped).")
    skipped_lines: int = Field(description="Non-UTF-8, unparseable and empty lines skipped.")
    kept: int = Field(description="Queries left after cleaning and dedupe.")
    cleaning: dict[str, int] = Field(default_factory=dict)
    new_since_last_run: int
    last_run_watermark: str | None = None
    teacher_calls: int = Field(description="Traffic queries the teacher labelled this run.")
    cached_labels: int
    invalid_labels: int
    train: int = Field(description="Traffic queries in the training set (after dedupe).")
    holdout: int = Field(description="Newest traffic queries held out (the traffic slice).")


class EvaluationRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    overall: ModelEvaluation
    slices: dict[str, ModelEvaluation] = Field(default_factory=dict)
    golden: GoldenEvaluation | None = None
    judge_score: float | None = Field(
        default=None, description="Mean 1-5 score of the Bedrock Model Evaluation judge."
    )


class RunSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    router: str
    taxonomy: str
    backend: str
    flow_run_id: str | None
    dataset: DatasetSummary
    training_mode: str = Field(
        default="fine-tune-labelled", description="How the student learned (training_mode)."
    )
    traffic: TrafficSummary | None = None
    golden: dict[str, Any] | None = Field(
        default=None, description="The golden set used: source, version, queries."
    )
    seed: int | None = Field(default=None, description="Synthetic training seed of this run.")
    job_id: str
    model_id: str
    model_uri: str | None
    deployment_id: str | None
    evaluations: list[EvaluationRow]
    gate: dict[str, Any]
    outcome: str  # promoted | rejected | unchanged | blocked
    outcome_reason: str = ""
    champion_model_id: str | None
    seconds: dict[str, float] = Field(default_factory=dict)
    cascade: CascadePolicy | None = Field(
        default=None, description="The candidate's confidence calibration and cascade curve."
    )

    @property
    def teacher_calls(self) -> int:
        """Every teacher call this run made: synthetic batches plus new traffic queries."""
        return self.dataset.teacher_calls + (self.traffic.teacher_calls if self.traffic else 0)


def artifact_key(kind: str, router: str) -> str:
    """Artifact keys are per router, e.g. evaluation-default, ledger-news-archives."""
    return f"{kind}-{router}"


def _ci(interval: tuple[float, float]) -> str:
    return f"{interval[0]:.3f}-{interval[1]:.3f}"


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def evaluation_table(rows: list[EvaluationRow]) -> list[dict[str, Any]]:
    """One flat row per model, in the order evaluated: synthetic holdout, novel vocabulary and
    traffic slice (agreement with the teacher), golden set (human labels), then cost."""
    table = []
    for row in rows:
        e = row.overall
        novel = row.slices.get("novel-vocabulary")
        traffic = row.slices.get("traffic")
        golden = row.golden
        table.append(
            {
                "model": e.model,
                "role": e.role,
                "n": e.n,
                "parse_rate": round(e.parse_rate, 4),
                "synthetic_acc": round(e.top_signal_accuracy, 4),
                "acc_ci95": _ci(e.accuracy_ci95),
                "novel_vocab_acc": round(novel.top_signal_accuracy, 4) if novel else None,
                "traffic_acc": round(traffic.top_signal_accuracy, 4) if traffic else None,
                "traffic_ci95": _ci(traffic.accuracy_ci95) if traffic else None,
                "golden_strict": round(golden.strict_top1, 4) if golden else None,
                "golden_ci95": _ci(golden.strict_ci95) if golden else None,
                "golden_lenient": round(golden.lenient_top1, 4) if golden else None,
                "mean_mae": round(e.mean_mae, 4),
                "rubric": round(e.mean_rubric, 3),
                "p50_ms": round(e.latency_p50_ms, 4),
                "p95_ms": round(e.latency_p95_ms, 4),
                "client_p50_ms": _ms(e.client_latency_p50_ms),
                "client_p95_ms": _ms(e.client_latency_p95_ms),
                "judge": round(row.judge_score, 3) if row.judge_score is not None else None,
                "usd_per_1k": round(e.cost_per_1k_queries_usd, 6),
            }
        )
    for column in OPTIONAL_COLUMNS:  # e.g. no judge job ran, or nothing measured client-side
        if table and all(line[column] is None for line in table):
            for line in table:
                del line[column]
    return table


OPTIONAL_COLUMNS = ("client_p50_ms", "client_p95_ms", "judge")


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table (monospace)."""
    if not rows:
        return "(empty)"
    headers = list(rows[0])
    cells = [[("" if r[h] is None else str(r[h])) for h in headers] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    body = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])


def markdown_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(empty)"
    headers = list(rows[0])
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += [
        "| " + " | ".join("" if r[h] is None else str(r[h]) for h in headers) + " |" for r in rows
    ]
    return "\n".join(out)


def render_text(summary: RunSummary) -> str:
    """The human summary printed at the end of `router-distill run`."""
    d = summary.dataset
    traffic_holdout = summary.traffic.holdout if summary.traffic else 0
    exact = sum(d.exact_dropped.values())
    near = sum(d.near_dropped.values())
    lines = [
        f"Router '{summary.router}' (taxonomy {summary.taxonomy}, backend {summary.backend}, "
        f"training {summary.training_mode})",
        "",
        "Dataset",
        f"  generated     {d.generated_train:,} train candidates, {d.generated_holdout:,} holdout "
        f"candidates ({d.teacher_calls:,} teacher calls this run, {d.cached_batches} batches "
        f"from the label cache, {d.teacher_invalid_dropped} invalid answers dropped)",
        f"  dedupe        exact: {exact:,} dropped ({_split(d.exact_dropped)}); near-duplicate: "
        f"{near:,} dropped ({_split(d.near_dropped)}); holdout near a training query: "
        f"{d.holdout_dropped_near_train:,}",
        f"  kept          {d.train_records:,} training records (requested {d.requested_train:,}; "
        f"{d.surplus_trimmed:,} surplus trimmed), "
        f"{d.holdout_records - d.holdout_novel_vocabulary - traffic_holdout:,} holdout queries "
        f"+ {d.holdout_novel_vocabulary:,} novel-vocabulary evaluation queries",
        f"  training data {d.train_uri} ({d.train_bytes:,} bytes)",
        *_traffic_lines(summary.traffic),
        _golden_line(summary),
        "",
        f"Distillation job {summary.job_id} -> model {summary.model_id}",
        f"Deployment       {summary.deployment_id or '-'}",
        "",
        "Evaluation (synthetic, novel-vocabulary and traffic: agreement with the teacher; "
        "golden: human labels)",
        _indent(format_table(evaluation_table(summary.evaluations))),
        *_golden_slices(summary.evaluations),
        *_cascade_lines(summary.cascade),
        "",
        "Top-signal confusion of the candidate (rows: teacher, columns: candidate)",
        _indent(_confusion(summary)),
        "",
        f"Gate: {summary.gate.get('summary', '')}",
        f"Outcome: {summary.outcome.upper()}{_because(summary)}; "
        f"champion is {summary.champion_model_id or 'none'}",
    ]
    if summary.seconds:
        lines.append(
            "Timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in summary.seconds.items())
        )
    return "\n".join(lines)


def golden_slice_table(rows: list[EvaluationRow]) -> list[dict[str, Any]]:
    """Per model: golden strict top-1 per tag and recall per expected top signal."""
    table = []
    for row in rows:
        golden = row.golden
        if golden is None:
            continue
        table.append(
            {
                "model": golden.model,
                **{f"recall_{k}": round(v, 3) for k, v in golden.recall_per_signal.items()},
                **{
                    f"{tag} (n={s.n})": round(s.strict_top1, 3)
                    for tag, s in sorted(golden.slices.items())
                },
            }
        )
    return table


def _golden_slices(rows: list[EvaluationRow]) -> list[str]:
    table = golden_slice_table(rows)
    if not table:
        return []
    return [
        "",
        "Golden set by signal (recall) and by tag (strict top-1)",
        _indent(format_table(table)),
    ]


CURVE_SHARES = (1.0, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.0)


def cascade_table(policy: CascadePolicy) -> list[dict[str, Any]]:
    """The cascade curve at a few shares answered locally, plus the chosen point."""
    picked: list[CascadePoint] = []
    for share in CURVE_SHARES:  # the highest threshold that still answers >= share locally
        reaching = [p for p in policy.curve if p.local_share >= share]
        if reaching:
            point = max(reaching, key=lambda p: p.threshold)
            if point not in picked:
                picked.append(point)
    if policy.chosen not in picked:
        picked.append(policy.chosen)
    rows = []
    for point in sorted(picked, key=lambda p: -p.local_share):
        rows.append(
            {
                "threshold": point.threshold,
                "local_share": point.local_share,
                "holdout_acc": point.accuracy,
                "golden_strict": "-" if point.golden_accuracy is None else point.golden_accuracy,
                "mean_ms": point.mean_latency_ms,
                "usd_per_1k": point.cost_per_1k_usd,
                "chosen": "<-" if point == policy.chosen else "",
            }
        )
    return rows


def _cascade_lines(policy: CascadePolicy | None) -> list[str]:
    if policy is None:
        return []
    return [
        "",
        f"Cascade (student, else {policy.fallback}): threshold {policy.threshold:.2f} for "
        f"holdout accuracy >= {policy.target_accuracy:.3f}; confidence calibration error "
        f"{policy.calibration_error:.3f} (cross-fitted on {policy.calibration.n:,} answers)",
        _indent(format_table(cascade_table(policy))),
    ]


def _traffic_lines(traffic: TrafficSummary | None) -> list[str]:
    if traffic is None:
        return ["  traffic       none"]
    cleaning = ", ".join(f"{k} {v:,}" for k, v in traffic.cleaning.items() if v and k != "read")
    return [
        f"  traffic       {traffic.source}: {traffic.read:,} queries read "
        f"({traffic.skipped_lines:,} unreadable lines skipped), {traffic.kept:,} after cleaning "
        f"({cleaning}); {traffic.new_since_last_run:,} new since the last run",
        f"                {traffic.teacher_calls:,} teacher calls this run, "
        f"{traffic.cached_labels:,} labels from the cache, {traffic.invalid_labels} invalid; "
        f"{traffic.train:,} in training, {traffic.holdout:,} newest held out (traffic slice)",
    ]


def _golden_line(summary: RunSummary) -> str:
    golden = summary.golden
    if not golden:
        return "  golden set    none: the gate judges on synthetic queries only"
    return (
        f"  golden set    {golden['source']} ({golden['queries']:,} queries, version "
        f"{golden['version']})"
    )


def _because(summary: RunSummary) -> str:
    """Why the outcome, when the gate line above does not already say it (unchanged, blocked)."""
    reason = summary.outcome_reason
    return f" ({reason})" if reason and reason != summary.gate.get("summary") else ""


def _split(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items())


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _confusion(summary: RunSummary) -> str:
    candidate = next(
        (r.overall for r in summary.evaluations if r.overall.role == "candidate"), None
    )
    if candidate is None:
        return "(no candidate)"
    rows = [{"teacher": k, **v} for k, v in candidate.confusion.items()]
    return format_table(rows)
