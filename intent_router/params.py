"""The pipeline's parameters: one pydantic model, rendered as a form in the Prefect UI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from intent_router.gate import GateConfig
from intent_router.registry import ROUTER_NAME_PATTERN
from intent_router.taxonomy import Taxonomy, builtin_taxonomy_names


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
    seed: int = Field(default=7, ge=0, strict=True, description="Seed for query synthesis.")
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
