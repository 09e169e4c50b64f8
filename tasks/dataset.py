"""Merge + dedupe + split, then build, validate and store the training and holdout datasets."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.context import TaskRunContext
from prefect.logging import get_run_logger
from pydantic import BaseModel, ConfigDict

from intent_router.dataset import LabelledQuery, content_hash, render_jsonl, training_record
from intent_router.evaluation import TRAFFIC
from intent_router.pricing import BackendLimits
from intent_router.prompts import student_system_prompt, teacher_prompt, teacher_user_message
from intent_router.report import DatasetSummary
from intent_router.taxonomy import Taxonomy
from intent_router.training_modes import TrainingMode
from tasks.generate import BatchOutput
from tasks.runtime import Runtime


class SplitOutput(BaseModel):
    model_config = ConfigDict(frozen=True)

    train: tuple[LabelledQuery, ...]
    holdout: tuple[LabelledQuery, ...]
    dedupe_report: tuple[dict[str, int | str], ...]
    requested_train: int
    trimmed_surplus: int


class DatasetRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    uri: str
    sha256: str
    records: int
    bytes: int


if TYPE_CHECKING:
    import pandas as pd


def _frame(outputs: list[BatchOutput], traffic: Sequence[LabelledQuery] = ()) -> pd.DataFrame:
    """Traffic rows first: a synthetic query that duplicates a real one is the one dropped."""
    import pandas as pd

    rows = [r.model_dump() for r in traffic]
    rows += [r.model_dump() for o in outputs for r in o.records]
    columns = list(LabelledQuery.model_fields)
    return pd.DataFrame(rows, columns=columns)


def merge_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Key on the code, this module's source, every labelled record and the settings.

    Cheaper than hashing the pydantic inputs generically (12,000 records), same information.
    """
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(parameters["code_version"].encode())
    for output in [*parameters["train_outputs"], *parameters["holdout_outputs"]]:
        digest.update(output.key.encode())
        for record in output.records:
            digest.update(f"{record.query}\0{record.teacher_output}\0{record.cell}\0".encode())
    for name in ("traffic_train", "traffic_holdout"):
        digest.update(name.encode())
        for record in parameters.get(name, ()):
            digest.update(f"{record.query}\0{record.teacher_output}\0".encode())
    settings = [parameters[k] for k in ("train_count", "cell_targets", "threshold")]
    settings.append(sorted(parameters.get("exclude", ())))
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return f"merge-and-dedupe-{digest.hexdigest()}"


@task(name="merge-and-dedupe", cache_key_fn=merge_cache_key)
def merge_and_dedupe(
    code_version: str,
    train_outputs: list[BatchOutput],
    holdout_outputs: list[BatchOutput],
    train_count: int,
    cell_targets: dict[str, int],
    threshold: float,
    traffic_train: tuple[LabelledQuery, ...] = (),
    traffic_holdout: tuple[LabelledQuery, ...] = (),
    exclude: tuple[str, ...] = (),
) -> SplitOutput:
    """Merge traffic and batches, drop exact and near duplicates, keep the holdouts free of
    training twins and every set free of golden-set twins (`exclude`).

    Traffic is kept whole (it was capped before labelling); the synthetic surplus is trimmed
    so that traffic plus synthetic make train_count. Cached on its inputs.
    """
    import pandas as pd

    from intent_router.dedupe import dedupe_and_split  # pandas + datasketch: only when needed

    logger = get_run_logger()
    result = dedupe_and_split(
        _frame(train_outputs, traffic_train),
        _frame(holdout_outputs, traffic_holdout),
        threshold=threshold,
        exclude=exclude,
    )
    is_traffic = result.train["vocabulary"] == TRAFFIC
    real, train = result.train[is_traffic], result.train[~is_traffic]
    synthetic_count = max(0, train_count - len(real))
    # Trim the oversampled surplus proportionally across cells, in generation order.
    rank = train.groupby("cell").cumcount()
    target = train["cell"].map(cell_targets).fillna(1).clip(lower=1)
    train = train.assign(_order=rank / target).sort_values(["_order"], kind="stable")
    surplus = max(0, len(train) - synthetic_count)
    train = pd.concat([real, train.head(synthetic_count).drop(columns=["_order"])]).sort_index()
    report = result.report.to_dict(orient="records")
    logger.info(
        "dedupe kept %d train (+%d surplus trimmed) and %d holdout queries",
        len(train),
        surplus,
        len(result.holdout),
    )
    columns = list(LabelledQuery.model_fields)
    return SplitOutput(
        train=tuple(LabelledQuery.model_validate(r) for r in train[columns].to_dict("records")),
        holdout=tuple(
            LabelledQuery.model_validate(r) for r in result.holdout[columns].to_dict("records")
        ),
        dedupe_report=tuple({str(k): v for k, v in row.items()} for row in report),
        requested_train=train_count,
        trimmed_surplus=surplus,
    )


@task(name="build-datasets")
def build_datasets(
    split: SplitOutput,
    taxonomy: Taxonomy,
    router: str,
    limits: BackendLimits,
    runtime: Runtime,
    mode: TrainingMode = TrainingMode.FINE_TUNE_LABELLED,
    examples: dict[str, str] | None = None,
) -> tuple[DatasetRef | None, DatasetRef]:
    """Render bedrock-conversation-2024 JSONL, check Bedrock's rules, store the datasets.

    fine-tune-labelled: short student prompt, query, teacher answer. distill-prompts: the full
    teacher prompt and the quoted query (what the job's teacher answers), with an answer only
    for the curated `examples`. distill-invocation-logs: no training file (None).
    """
    logger = get_run_logger()
    holdout_bytes = "".join(
        json.dumps(
            {"query": r.query, "reference": r.weights, "cell": r.cell, "vocabulary": r.vocabulary},
            ensure_ascii=False,
        )
        + "\n"
        for r in split.holdout
    ).encode()
    store = runtime.store()
    outputs: list[tuple[str, bytes, int]] = []
    if mode is TrainingMode.FINE_TUNE_LABELLED:
        system = student_system_prompt(taxonomy)
        records = [training_record(r.query, r.teacher_output, system) for r in split.train]
    elif mode is TrainingMode.DISTILL_PROMPTS:
        system = teacher_prompt(taxonomy)
        answers = examples or {}
        records = [
            training_record(teacher_user_message(r.query), answers.get(r.query), system)
            for r in split.train
        ]
    else:
        records = []
    if records:
        train_bytes = render_jsonl(records, limits)
        folder = f"datasets/{router}/{content_hash(train_bytes)[:16]}"
        outputs.append(("train", train_bytes, len(records)))
    else:
        folder = f"datasets/{router}/holdout-{content_hash(holdout_bytes)[:16]}"
    outputs.append(("holdout", holdout_bytes, len(split.holdout)))
    refs: dict[str, DatasetRef] = {}
    for name, data, count in outputs:
        sha = content_hash(data)
        path = f"{folder}/{name}.jsonl"
        uri = store.write(path, data)
        refs[name] = DatasetRef(path=path, uri=uri, sha256=sha, records=count, bytes=len(data))
        logger.info("stored %s dataset: %d records, %d bytes at %s", name, count, len(data), uri)
    return refs.get("train"), refs["holdout"]


def summarise_dataset(
    *,
    train_outputs: list[BatchOutput],
    holdout_outputs: list[BatchOutput],
    teacher_calls: int,
    cached_batches: int,
    split: SplitOutput,
    train_ref: DatasetRef,
    holdout_ref: DatasetRef,
) -> DatasetSummary:
    """The dataset part of the run summary: generated, dropped per layer, kept, stored."""
    report = split.dedupe_report
    outputs = train_outputs + holdout_outputs

    def dropped(column: str) -> dict[str, int]:
        return {
            s: sum(int(r[column]) for r in report if r["split"] == s) for s in ("train", "holdout")
        }

    return DatasetSummary(
        requested_train=split.requested_train,
        generated_train=sum(len(o.records) for o in train_outputs),
        generated_holdout=sum(len(o.records) for o in holdout_outputs),
        teacher_calls=teacher_calls,
        cached_batches=cached_batches,
        teacher_invalid_dropped=sum(o.dropped_invalid for o in outputs),
        exact_dropped=dropped("exact_dropped"),
        near_dropped=dropped("near_dropped"),
        holdout_dropped_near_train=sum(int(r["near_train_dropped"]) for r in report),
        golden_twins_dropped=sum(int(r.get("excluded_dropped", 0)) for r in report),
        surplus_trimmed=split.trimmed_surplus,
        train_records=train_ref.records,
        holdout_records=holdout_ref.records,
        holdout_novel_vocabulary=sum(1 for r in split.holdout if r.vocabulary == "heldout"),
        train_uri=train_ref.uri,
        holdout_uri=holdout_ref.uri,
        train_sha256=train_ref.sha256,
        train_bytes=train_ref.bytes,
        per_cell=list(report),
    )
