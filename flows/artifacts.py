"""The run's artifacts in the Prefect UI, keyed per router so routers never overwrite each other."""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from intent_router.report import (
    RunSummary,
    artifact_key,
    cascade_table,
    evaluation_table,
    golden_slice_table,
    markdown_table,
)


def publish_run_artifacts(summary: RunSummary, dedupe_report: Any) -> None:
    """dataset-summary, evaluation and promotion-report tables, and links to the data and model."""
    router = summary.router
    create_table_artifact(
        key=artifact_key("dataset-summary", router),
        table=list(dedupe_report),
        description=f"Generated, deduped and kept queries per cell ({router})",
    )
    table = evaluation_table(summary.evaluations)
    create_table_artifact(
        key=artifact_key("evaluation", router),
        table=table,
        description=f"Candidate and baselines, router {router}: synthetic holdout, novel "
        "vocabulary and traffic slice (reference: teacher); golden set (human labels)",
    )
    if golden := golden_slice_table(summary.evaluations):
        create_table_artifact(
            key=artifact_key("golden", router),
            table=golden,
            description=f"Golden set of router {router}: recall per signal, strict top-1 per tag",
        )
    if summary.cascade is not None:
        create_table_artifact(
            key=artifact_key("cascade", router),
            table=cascade_table(summary.cascade),
            description=f"Router {router}: share answered by the student vs accuracy, latency "
            f"and cost; threshold {summary.cascade.threshold:.2f} chosen for holdout accuracy "
            f">= {summary.cascade.target_accuracy:.3f}",
        )
    checks = "\n".join(
        f"- {'PASS' if c['passed'] else 'FAIL'} {c['detail']}" for c in summary.gate["checks"]
    )
    create_markdown_artifact(
        key=artifact_key("promotion-report", router),
        markdown=f"# Router `{router}`: {summary.outcome}\n\n{summary.outcome_reason}\n\n"
        f"Model `{summary.model_id}` from job `{summary.job_id}`.\n\n"
        f"## Gate\n{checks}\n\n## Evaluation\n{markdown_table(table)}\n\n"
        f"Champion now: `{summary.champion_model_id or 'none'}`\n",
    )
    create_link_artifact(
        key=artifact_key("training-dataset", router),
        link=summary.dataset.train_uri,
        link_text="training JSONL",
    )
    if summary.model_uri:
        create_link_artifact(
            key=artifact_key("student-model", router),
            link=summary.model_uri,
            link_text="student artifact",
        )
