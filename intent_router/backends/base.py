"""The backend interface. Flows and tasks talk only to this; Bedrock and local implement it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from intent_router.errors import UserInputError
from intent_router.pricing import BackendLimits, LabellingPath, ModelPrice
from intent_router.taxonomy import Taxonomy
from intent_router.training_modes import TrainingMode

if TYPE_CHECKING:
    from intent_router.lifecycle import TaggedResource


class JobState(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"

    @property
    def terminal(self) -> bool:
        return self in {JobState.COMPLETED, JobState.FAILED, JobState.STOPPED}


class DeploymentState(StrEnum):
    CREATING = "Creating"
    ACTIVE = "Active"
    FAILED = "Failed"

    @property
    def terminal(self) -> bool:
        return self in {DeploymentState.ACTIVE, DeploymentState.FAILED}


class JobStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    state: JobState
    model_id: str | None = None
    failure_message: str | None = None
    details: dict[str, str] = Field(
        default_factory=dict,
        description="Sub-task states, e.g. validation/dataProcessing/training.",
    )
    metrics: dict[str, float] = Field(default_factory=dict)


class DeploymentStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    deployment_id: str
    state: DeploymentState
    model_id: str
    failure_message: str | None = None
    tags: dict[str, str] = Field(default_factory=dict, description="e.g. router and run id.")
    update_status: str | None = Field(
        default=None,
        description="Of the last model swap: Updating, UpdateCompleted or UpdateFailed.",
    )
    update_model_id: str | None = Field(default=None, description="The model being swapped in.")


class DistillationRequest(BaseModel):
    """Everything a backend needs to start one distillation job."""

    model_config = ConfigDict(frozen=True)

    job_name: str = Field(description="Deterministic name derived from run inputs.")
    model_name: str = Field(description="Name of the custom model the job produces.")
    token: str = Field(description="Idempotency token: same token, same job.")
    training_path: str = Field(description="Storage path of the training JSONL.")
    training_uri: str = Field(description="URI of the training JSONL (s3:// or file://).")
    output_prefix: str = Field(description="Storage prefix for job outputs.")
    dataset_sha256: str
    signals: tuple[str, ...]
    tags: dict[str, str] = Field(default_factory=dict)
    mode: TrainingMode = Field(
        default=TrainingMode.FINE_TUNE_LABELLED, description="How the student learns."
    )
    response_tokens: int = Field(
        default=1000, ge=1, description="Token budget of the job's teacher per prompt."
    )
    invocation_logs_uri: str | None = Field(
        default=None, description="distill-invocation-logs: s3:// prefix of the logs."
    )
    use_prompt_response: bool = Field(
        default=False, description="distill-invocation-logs: train on the logged responses."
    )
    request_metadata: dict[str, str] = Field(
        default_factory=dict,
        description="distill-invocation-logs: only logged requests with these metadata pairs.",
    )


class JobSubmission(BaseModel):
    """The job a submission started or found, and the earlier attempts that ended badly."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    job_name: str
    attempt: int = 1
    earlier: tuple[JobStatus, ...] = Field(
        default=(), description="Earlier attempts that ended Failed or Stopped, oldest first."
    )


class ModelTarget(BaseModel):
    """A model that can be invoked for evaluation or routing."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Display name in reports.")
    role: str = Field(description="candidate, champion, teacher, base-student, prior, ...")
    ref: str = Field(description="Backend-specific reference (deployment id, model id, ...).")
    prompt: str = Field(description="'student' (short system prompt) or 'teacher' (full prompt).")
    priced_as: str = Field(description="Model id in the price table.")


class Invocation(BaseModel):
    model_config = ConfigDict(frozen=True)

    text: str
    latency_s: float  # the service's figure when it reports one (Converse metrics.latencyMs)
    input_tokens: int
    output_tokens: int
    client_latency_s: float | None = Field(
        default=None,
        description="Measured by the caller, end to end (retries and backoff included, waiting "
        "for a concurrency slot excluded); None where not measured (e.g. the prior).",
    )
    error: str | None = Field(
        default=None, description="Why there is no answer: the call failed for this query."
    )


class LabelResult(BaseModel):
    """The teacher's answer for one query, or why there is none."""

    model_config = ConfigDict(frozen=True)

    query: str
    text: str | None
    attempts: int = 1
    error: str | None = None


class TeacherFingerprint(BaseModel):
    """Everything about the teacher that shapes a label: part of every labelling cache key."""

    model_config = ConfigDict(frozen=True)

    backend: str = Field(description="Backend kind, e.g. local or bedrock.")
    teacher_model_id: str = Field(description="The teacher model (or the local rule teacher).")
    prompt_sha256: str = Field(description="Hash of the full teacher prompt for the taxonomy.")
    label_settings: str = Field(description="Labelling settings (tokens, temperature, tries).")


class SetupCheck(BaseModel):
    """One preflight check of a backend's service setup (Region, models, storage, roles)."""

    model_config = ConfigDict(frozen=True)

    name: str
    passed: bool | None = Field(description="None: not checked (needs the live service).")
    detail: str = Field(description="What was found; for a failure, the value and the fix.")


def raise_for_failed(checks: Sequence[SetupCheck]) -> None:
    """One-line UserInputError naming every failed check (value and fix), if any failed."""
    failures = [f"{check.name}: {check.detail}" for check in checks if check.passed is False]
    if failures:
        raise UserInputError("; ".join(failures))


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()[:16]


class JudgeTarget(BaseModel):
    """One evaluated model's precomputed answers, for an LLM-as-a-judge job."""

    model_config = ConfigDict(frozen=True)

    identifier: str = Field(description="Short id naming the model inside the job (its role).")
    name: str = Field(description="Display name in reports.")
    responses: tuple[str, ...] = Field(description="Raw answers, in the order of the prompts.")


class JudgeJobStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    state: str  # InProgress | Completed | Failed | Stopping | Stopped | Deleting
    failure_messages: tuple[str, ...] = ()

    @property
    def terminal(self) -> bool:
        return self.state in {"Completed", "Failed", "Stopped"}


class JudgeScore(BaseModel):
    """The judge's mean 1-5 rubric score for one model."""

    model_config = ConfigDict(frozen=True)

    identifier: str
    mean_score: float
    n: int = Field(description="Answers the judge scored.")


@runtime_checkable
class JudgingBackend(Protocol):
    """Optional: a backend that can have a judge model score precomputed answers in a job."""

    def judging_enabled(self) -> bool:
        """True when the run should start judge jobs (a setting)."""

    def start_judging(
        self,
        name: str,
        prompts: Sequence[str],
        references: Sequence[str],
        targets: Sequence[JudgeTarget],
        signals: Sequence[str],
    ) -> list[str]:
        """Start the judge jobs for these answers (idempotent by `name`); return their ids."""

    def judging_status(self, job_id: str) -> JudgeJobStatus: ...

    def judge_scores(self, job_id: str) -> list[JudgeScore]:
        """The mean judge score per model of a Completed job."""


class Backend(Protocol):
    """Operations that differ between production and the embedded default."""

    name: str
    limits: BackendLimits
    paid: bool  # calls cost money: the flow estimates cost and checks the budget first
    default_training_mode: TrainingMode  # what training_mode 'auto' means here
    training_modes: frozenset[TrainingMode]  # the modes this backend can run

    def label(self, queries: Sequence[str], taxonomy: Taxonomy) -> list[LabelResult]:
        """Have the teacher route each query (raw model text, validated by the caller)."""

    def teacher_fingerprint(self, taxonomy: Taxonomy) -> TeacherFingerprint:
        """What makes this teacher's labels differ from another's (for cache keys)."""

    def start_distillation(self, request: DistillationRequest, taxonomy: Taxonomy) -> JobSubmission:
        """Start (or find, by name and token) the distillation job. A job that ended Failed or
        Stopped gets a new attempt (new name and token) instead of being reused."""

    def job_status(self, job_id: str) -> JobStatus: ...

    def check_model(self, model_id: str) -> None:
        """Raise ModelArtifactError if the trained model is gone or unreadable."""

    def deploy(
        self, model_id: str, name: str, token: str, tags: dict[str, str] | None = None
    ) -> str:
        """Create (or find, by token) an on-demand deployment; return its id."""

    def deployment_status(self, deployment_id: str) -> DeploymentStatus:
        """Raises DeploymentNotFound if it does not exist (never created, or deleted)."""

    def delete_deployment(self, deployment_id: str) -> None: ...

    def invoke(
        self,
        target: ModelTarget,
        queries: Sequence[str],
        taxonomy: Taxonomy,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[Invocation]:
        """Route each query with the target model; one call per query, timed."""

    def baselines(self, taxonomy: Taxonomy) -> list[ModelTarget]:
        """The baseline models this backend can evaluate (teacher, base student, ...)."""

    def target_for_deployment(
        self, deployment_id: str, role: str, name: str, prompt: str = "student"
    ) -> ModelTarget:
        """A target that invokes a deployed custom model with the prompt it was trained on."""

    # -- lifecycle -------------------------------------------------------------------------
    stable_deployments: bool  # promotion swaps the model of one deployment per router

    @property
    def keep_rejected_models(self) -> int | None:
        """Rejected candidates' models kept per router; None: never deleted."""

    def stop_job(self, job_id: str) -> bool:
        """Stop a running job; False if it had already ended (or is gone)."""

    def delete_model(self, model_id: str) -> None:
        """Delete a trained model (one already gone is fine)."""

    def update_deployment(
        self, deployment_id: str, model_id: str, tags: dict[str, str] | None = None
    ) -> None:
        """Start swapping the deployment's model; DeploymentUpdateRefused if the service
        does not allow it."""

    def publish_serving(self, router: str, deployment_id: str) -> None:
        """Publish where the router's champion serves (e.g. an SSM parameter), if configured."""

    def tagged_resources(self) -> list[TaggedResource]:
        """Jobs still running, models and deployments tagged by this product (janitor)."""

    def artifact_uri(self, model_id: str) -> str | None:
        """Where the trained model lives (a URI or ARN), for reports and links."""

    def price_for(self, model_id: str) -> ModelPrice:
        """The per-token price used for a model (the price table plus any overrides)."""

    def training_price_per_1k(self) -> float | None:
        """Customization training price per 1K tokens, when known."""

    def storage_price_per_model_month(self) -> float | None:
        """Monthly storage price of one trained model, when known."""

    def training_epochs(self) -> int:
        """Epochs a training job runs (or, where the service chooses, is assumed to run)."""

    def setup_checks(self) -> list[SetupCheck]:
        """Check the service setup before any paid call; every check, passed or not."""

    def labelling_path(self, batch_size: int) -> LabellingPath:
        """How a label() call of `batch_size` queries is sent (and priced)."""
