"""The pipeline's parameters: one pydantic model, rendered as a form in the Prefect UI."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from intent_router.drift import DriftThresholds
from intent_router.gate import GateConfig
from intent_router.registry import ROUTER_NAME_PATTERN
from intent_router.taxonomy import Taxonomy, builtin_taxonomy_names
from intent_router.training_modes import TrainingModeRef


def check_taxonomy_ref(value: str) -> str:
    """A built-in taxonomy name or an existing YAML/JSON file (a flow-parameter validator)."""
    value = value.strip()
    if not value:
        raise ValueError("taxonomy must name a built-in taxonomy or a file")
    looks_like_path = value.endswith((".yaml", ".yml", ".json")) or "/" in value
    builtin = value in builtin_taxonomy_names()
    if (looks_like_path or not builtin) and Path(value).is_dir():
        raise ValueError(f"taxonomy {value!r} is a directory, not a taxonomy file")
    if looks_like_path:
        if not Path(value).exists():
            raise ValueError(f"taxonomy file {value!r} does not exist")
        if not Path(value).is_file():
            raise ValueError(f"taxonomy {value!r} is not a regular file")
    elif not builtin:
        raise ValueError(
            f"no built-in taxonomy named {value!r}; available: "
            f"{', '.join(builtin_taxonomy_names())} (or give a .yaml/.json path)"
        )
    return value


# A validator in the type (not a model validator), so the flow's own parameter validation runs
# it too: the flow takes each field as a top-level parameter.
TaxonomyRef = Annotated[str, AfterValidator(check_taxonomy_ref)]


def check_s3_prefix(value: str | None) -> str | None:
    pattern = r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?"
    if value is not None and not re.fullmatch(pattern, value):
        raise ValueError(f"must be an s3://bucket/prefix URI, got {value!r}")
    return value


# Where real queries come from: shared by the distill and monitor flows' parameters.
TrafficRef = Annotated[
    str,
    Field(
        min_length=1,
        max_length=1024,
        description="Real queries: 'default' (the built-in taxonomy's sample search log, if it "
        "ships one), 'none', a file or folder (JSONL, CSV, text; .gz allowed), "
        "s3://bucket/prefix, or bedrock-logs:s3://bucket/prefix (model-invocation logs).",
    ),
]
InvocationLogModel = Annotated[
    str | None,
    Field(
        max_length=2048,
        description="Invocation logs: keep only requests to this model id (or ARN suffix).",
    ),
]
InvocationLogMetadata = Annotated[
    dict[str, str],
    Field(description="Invocation logs: keep only requests whose requestMetadata has these pairs."),
]


class DistillParams(BaseModel):
    """Distill the teacher into a student router and promote it if it routes well enough."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    taxonomy: TaxonomyRef = Field(
        default="default",
        description="Built-in taxonomy (default, news_archives, sports_broadcasting) or a path "
        "to a YAML/JSON taxonomy file on the machine that runs the flow.",
    )
    taxonomy_definition: Taxonomy | None = Field(
        default=None,
        description="Inline taxonomy; overrides `taxonomy` when given.",
    )
    router_name: str | None = Field(
        default=None,
        pattern=ROUTER_NAME_PATTERN,
        description="Champion and ledger are kept per router name (default: the taxonomy name).",
    )
    train_count: int = Field(
        strict=True,  # true/false or 300.0 are type errors, not 1 or 300
        default=10_000,
        ge=1,
        le=200_000,
        description="Training examples after dedupe. Bedrock Nova accepts 100 to 15,000.",
    )
    holdout_count: int = Field(
        strict=True,
        default=1_000,
        ge=20,
        le=20_000,
        description="Teacher-labelled holdout queries to generate (before dedupe); the gate "
        "is decided on these.",
    )
    novel_vocabulary_count: int = Field(
        strict=True,
        default=300,
        ge=0,
        le=20_000,
        description="Extra evaluation queries built only from vocabulary held out of training "
        "(reported, not gated).",
    )
    oversample: float = Field(
        default=1.15,
        ge=1.0,
        le=3.0,
        description="Generate this many times train_count so dedupe drops can be absorbed.",
    )
    batches: int = Field(
        strict=True,
        default=24,
        ge=1,
        le=64,
        description="Generation batches (parallel, cached tasks). Keep this coarse.",
    )
    seed: int = Field(
        default=7,
        ge=0,
        strict=True,
        description="Seed for synthesising training queries (see seed_policy).",
    )
    seed_policy: Literal["fixed", "scheduled-date"] = Field(
        default="fixed",
        description="'fixed' uses `seed`; 'scheduled-date' derives the training seed from the "
        "run's scheduled date (YYYYMMDD), so a weekly run trains on fresh synthetic queries.",
    )
    holdout_seed: int = Field(
        default=7,
        ge=0,
        strict=True,
        description="Seed of the synthetic holdout. Keep it fixed so runs compare like for like.",
    )
    golden: str | None = Field(
        default=None,
        description="Golden set (JSONL or CSV of human-labelled queries) on the machine that runs "
        "the flow; default: the one the taxonomy names (`golden:`), if any; 'none' for none.",
    )
    require_golden: bool = Field(
        default=False,
        description="Refuse to run, before any paid step, when the router has no golden set.",
    )
    traffic: TrafficRef = "default"
    traffic_model_id: InvocationLogModel = None
    traffic_request_metadata: InvocationLogMetadata = Field(default_factory=dict)
    traffic_share: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="At most this share of train_count comes from traffic; synthetic queries "
        "fill the rest.",
    )
    traffic_holdout_share: float = Field(
        default=0.1,
        ge=0,
        le=0.5,
        description="The newest share of traffic (by timestamp) is held out as the `traffic` "
        "evaluation slice.",
    )
    mask_pii: bool = Field(
        default=True,
        description="Mask e-mail addresses and phone numbers in traffic before any use.",
    )
    cascade_target_accuracy: float = Field(
        default=0.98,
        ge=0.5,
        le=1.0,
        description="The cascade answers with the student when its calibrated confidence "
        "clears a threshold, chosen as the lowest whose holdout accuracy (against the teacher) "
        "reaches this; the teacher answers the rest.",
    )
    cascade_fallback: str = Field(
        default="teacher",
        pattern=r"^[a-z0-9][a-z0-9_.:-]{0,80}$",
        description="Who answers when the student is unsure: the role of an evaluated model, "
        "'teacher' or (on Bedrock) 'baseline-<name>' of a configured baseline model.",
    )
    training_mode: TrainingModeRef = Field(
        default="auto",
        description="How the student learns: 'distill-prompts' (prompts only; the job's teacher "
        "answers them), 'distill-invocation-logs' (the job reads the router's invocation logs), "
        "'fine-tune-labelled' (the pipeline's teacher labels train it); 'auto' is the backend's "
        "default (Bedrock: distill-prompts, local: fine-tune-labelled).",
    )
    prompt_examples: int = Field(
        default=10,
        ge=0,
        le=100,
        strict=True,
        description="distill-prompts: training prompts the pipeline's teacher labels as curated "
        "examples (validated answers), spread over the signals.",
    )
    invocation_logs: Annotated[str | None, AfterValidator(check_s3_prefix)] = Field(
        default=None,
        description="distill-invocation-logs: s3:// prefix of the router's model-invocation "
        "logs (default: the traffic source when it is 'bedrock-logs:s3://...').",
    )
    invocation_logs_use_responses: bool = Field(
        default=False,
        description="distill-invocation-logs: train on the logged responses as they are "
        "(usePromptResponse) instead of having the job's teacher answer the logged prompts.",
    )
    allow_unpriced: bool = Field(
        default=False,
        description="Let a budgeted run start although some cost lines have no price "
        "(training, storage or a model the price table lacks).",
    )
    near_duplicate_threshold: float = Field(
        default=0.85,
        gt=0.5,
        le=1.0,
        description="Character 4-gram Jaccard similarity at which two queries are near-duplicates.",
    )
    backend: str = Field(
        default="local",
        description="'local' for the embedded default, or a saved backend block 'slug/name'.",
    )
    storage_block: str | None = Field(
        default=None,
        description="Saved file-system block 'slug/name' for artifacts and caches "
        "(default: LocalFileSystem under ROUTER_DISTILL_HOME).",
    )
    budget_usd: float | None = Field(
        default=None,
        ge=0,
        description="Stop before the first paid call if the estimated cost exceeds this.",
    )
    gate: GateConfig = Field(default_factory=GateConfig, description="Promotion thresholds.")
    poll_interval_seconds: float = Field(
        default=30.0, ge=0.0, le=3600, description="How often to poll a distillation job."
    )
    job_timeout_minutes: float = Field(
        default=24 * 60, gt=0, le=7 * 24 * 60, description="Give up waiting for a job after this."
    )
    cache_max_age_days: float = Field(
        default=30,
        gt=0,
        le=3650,
        description="Reuse cached teacher labels and dedupe results for at most this many days; "
        "older ones are made again (on Bedrock: paid again).",
    )
    triggered_by: str = Field(
        default="manual", max_length=200, description="Who or what started the run (ledger)."
    )
    require_approval: bool = Field(
        default=False,
        description="Stop before the distillation job is submitted (the first paid step) "
        "until someone approves the run in the Prefect UI; a deployment's run is suspended and "
        "holds no process while it waits.",
    )
    approval_timeout_seconds: int = Field(
        strict=True,
        default=3600,
        ge=1,
        le=7 * 24 * 3600,
        description="End the run if nobody approves it within this many seconds (Cancelled; "
        "a suspended deployment run is failed by the server).",
    )
    task_runner: Literal["threads", "dask"] = Field(
        default="threads",
        description="Where the batch fan-out runs: Prefect's thread pool, or a Dask cluster "
        "(needs the 'dask' extra; see ROUTER_DISTILL_DASK_ADDRESS).",
    )

    def flow_parameters(self) -> dict[str, Any]:
        """The flow's keyword arguments: one top-level parameter per field."""
        return {name: getattr(self, name) for name in type(self).model_fields}


class MonitorParams(BaseModel):
    """Check a router's champion against the teacher on fresh traffic and report drift."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    taxonomy: TaxonomyRef = Field(
        default="default", description="Built-in taxonomy or a YAML/JSON taxonomy file."
    )
    router_name: str | None = Field(
        default=None,
        pattern=ROUTER_NAME_PATTERN,
        description="Router to monitor (default: the taxonomy name).",
    )
    traffic: TrafficRef = "default"
    traffic_model_id: InvocationLogModel = None
    traffic_request_metadata: InvocationLogMetadata = Field(default_factory=dict)
    sample_size: int = Field(
        strict=True,
        default=200,
        ge=10,
        le=5_000,
        description="At most this many new queries are labelled by the teacher per check.",
    )
    seed: int = Field(default=7, ge=0, strict=True, description="Seed of the sample.")
    mask_pii: bool = Field(default=True, description="Mask e-mails and phone numbers first.")
    thresholds: DriftThresholds = Field(
        default_factory=DriftThresholds, description="When a check counts as drift."
    )
    backend: str = Field(
        default="local", description="'local' or a saved backend block 'slug/name'."
    )
    storage_block: str | None = Field(
        default=None, description="Saved file-system block 'slug/name' (default: local)."
    )
    budget_usd: float | None = Field(
        default=None,
        ge=0,
        description="Stop before the teacher labels the sample if its estimated cost exceeds this.",
    )
