"""The production backend: Amazon Bedrock distillation, on-demand deployment and Converse.

Plain boto3: the clients are handed in (built from the prefect-aws credentials block in
blocks/, or a validated fake in tests). Every request is checked against botocore's service
model, including the enums, patterns and maxima botocore itself does not check, before it is
sent. Long operations are submit + status calls; waiting happens in the task layer.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar, cast

import boto3
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from intent_router.backends.base import (
    DeploymentState,
    DeploymentStatus,
    DistillationRequest,
    Invocation,
    JobState,
    JobStatus,
    JobSubmission,
    JudgeJobStatus,
    JudgeScore,
    JudgeTarget,
    LabelResult,
    ModelTarget,
    SetupCheck,
    TeacherFingerprint,
    prompt_hash,
)
from intent_router.backends.bedrock_batch import label_in_batch
from intent_router.backends.bedrock_preflight import (
    check_bucket_region,
    check_student_base_model,
    check_teacher_model,
    offline_checks,
)
from intent_router.backends.bedrock_validation import validate_request
from intent_router.errors import (
    MODEL_QUERY_AWS_CODES,
    TRANSIENT_AWS_CODES,
    BackendServiceError,
    DeploymentNotFound,
    DeploymentUpdateRefused,
    DistillationJobFailed,
    ModelArtifactError,
    ModelQueryError,
    RouterOutputError,
    TransientBackendError,
    UserInputError,
)
from intent_router.judge import (
    JUDGE_DATASET,
    JUDGE_METRIC,
    JUDGE_TASK_TYPE,
    judge_dataset_jsonl,
    judge_job_name,
    judge_output_scores,
    judge_pairs,
    rating_scale,
    rubric_instructions,
)
from intent_router.lifecycle import (
    DEFAULT_KEEP_REJECTED,
    PRODUCT,
    PRODUCT_TAG,
    TaggedResource,
    attempt_request,
    ssm_parameter_for,
)
from intent_router.pricing import (
    BEDROCK_NOVA_LIMITS,
    LabellingPath,
    ModelPrice,
    labelling_path,
    price_for,
)
from intent_router.prompts import student_system_prompt, teacher_prompt, teacher_user_message
from intent_router.schema import parse_routing_output
from intent_router.storage import ObjectStore
from intent_router.taxonomy import Taxonomy
from intent_router.training_modes import TrainingMode

logger = logging.getLogger(__name__)

THROTTLE_RETRIES = 5  # per call, on top of botocore's own (standard mode, 3 retries)
THROTTLE_BASE_DELAY_S = 0.5  # backoff: 0.5, 1, 2, 4, 8 s
MODEL_ERROR_DELAY_S = 0.5  # pause before retrying a query the model failed on
PROGRESS_EVERY = 100  # queries between progress callbacks

T = TypeVar("T")


@cache
def bedrock_regions() -> tuple[str, ...]:
    """Regions with a Bedrock endpoint in every partition, from botocore's data (offline)."""
    session = boto3.session.Session()
    return tuple(
        sorted(
            region
            for partition in session.get_available_partitions()
            for region in session.get_available_regions("bedrock", partition)
        )
    )


class BedrockSettings(BaseModel):
    """Everything about a Bedrock distillation setup except credentials and storage."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    region_name: str = Field(
        default="us-east-1",
        description="Bedrock Region (us-east-1 or "
        "us-west-2 for on-demand custom-model deployment).",
    )
    role_arn: str = Field(
        description="Service role Bedrock assumes for the distillation job.",
        pattern=r"^arn:aws(-[a-z]+)?:iam::\d{12}:role/.+$",
    )
    teacher_model_id: str = Field(
        default="us.amazon.nova-premier-v1:0",
        description="Teacher: labels queries and guides distillation.",
    )
    student_base_model_id: str = Field(
        default="amazon.nova-micro-v1:0:128k", description="baseModelIdentifier of the student."
    )
    student_invoke_model_id: str = Field(
        default="amazon.nova-micro-v1:0",
        description="The un-distilled student as a Converse baseline (with the teacher prompt).",
    )
    baseline_model_ids: dict[str, str] = Field(
        default_factory=dict,
        description="Extra baselines, display name -> model id (e.g. a Claude Haiku id); "
        "invoked with the full teacher prompt.",
    )
    max_teacher_response_tokens: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="maxResponseLengthForInference of the distillation job's teacher (default: "
        "sized to the routing JSON of the taxonomy).",
    )
    label_max_tokens: int = Field(
        default=200, ge=50, le=2000, description="maxTokens for each teacher labelling call."
    )
    label_temperature: float = Field(
        default=0.2, ge=0, le=1, description="Teacher temperature when labelling (low)."
    )
    label_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Tries per query when the teacher's answer is not "
        "valid routing JSON; then the query is dropped and counted.",
    )
    inference_max_tokens: int = Field(
        default=300, ge=50, le=2000, description="maxTokens when evaluating models."
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Tags for jobs and models.")
    price_overrides: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="Model id -> (USD per 1K input tokens, USD per 1K output tokens).",
    )
    # training
    training_usd_per_1k_tokens: float | None = Field(
        default=None,
        ge=0,
        description="Customization training price per 1K training tokens (not in the price "
        "table; set it from the Bedrock pricing page, or budgeted runs need allow_unpriced).",
    )
    storage_usd_per_model_month: float | None = Field(
        default=None,
        ge=0,
        description="Monthly storage price of one custom model (Bedrock pricing page; unset: "
        "unpriced).",
    )
    epochs: int = Field(
        default=2,
        ge=1,
        le=5,
        description="Training epochs: the FINE_TUNING job's epochCount, and the epochs the "
        "estimate assumes for a distillation job (the service chooses them there).",
    )
    learning_rate: float = Field(
        default=1e-5, ge=1e-6, le=1e-4, description="FINE_TUNING learningRate (Nova: 1e-6 to 1e-4)."
    )
    learning_rate_warmup_steps: int = Field(
        default=10, ge=0, le=100, description="FINE_TUNING learningRateWarmupSteps (Nova: 0-100)."
    )
    # batch labelling
    batch_labelling_threshold: int | None = Field(
        default=1000,
        ge=0,
        description="Queries per labelling call at or above which the teacher labels through "
        "a batch-inference job (CreateModelInvocationJob, about half the price, takes hours) "
        "instead of on-demand Converse; never below the service's minimum records per job. "
        "None or 0: always on demand.",
    )
    batch_job_timeout_hours: int = Field(
        default=24,
        ge=24,
        le=168,
        description="timeoutDurationInHours of a batch labelling job; the wait for it stops "
        "(and stops the job) after as long.",
    )
    batch_role_arn: str | None = Field(
        default=None,
        description="Service role of batch labelling jobs (trusted by bedrock.amazonaws.com "
        "for model-invocation-job); default: role_arn.",
    )
    batch_poll_interval_seconds: float = Field(
        default=60, ge=1, le=3600, description="Seconds between batch job status calls."
    )
    # lifecycle
    keep_rejected_models: int = Field(
        default=DEFAULT_KEEP_REJECTED,
        ge=0,
        le=100,
        description="Custom models of rejected candidates kept per router (the newest); older "
        "ones are deleted after the run (storage is billed while a model exists).",
    )
    max_job_attempts: int = Field(
        default=5,
        ge=1,
        le=20,
        description="Attempts per dataset: a Failed or Stopped job gets a new attempt "
        "(name suffix -a2, -a3, ...) on the next run, up to this many.",
    )
    ssm_parameter_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=1011,
        pattern=r"^[a-zA-Z0-9_.\-/{}]+$",
        description="Also publish the stable deployment ARN to this SSM parameter on promotion; "
        "'{router}' is replaced by the router name, e.g. /router-distill/{router}/deployment-arn.",
    )
    # evaluation
    model_error_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries per query after ModelErrorException or ModelTimeoutException "
        "(botocore does not retry them); then that query counts as unanswered.",
    )
    bedrock_model_evaluation: bool = Field(
        default=False,
        description="Also run Bedrock Model Evaluation (LLM-as-a-judge) jobs on the evaluated "
        "models' precomputed answers, scored with the seed's 1-5 rubric as a custom metric.",
    )
    judge_model_id: str | None = Field(
        default=None,
        description="Evaluator model of the judge jobs, e.g. a Claude Sonnet model or inference "
        "profile id enabled in your account (look it up in the Bedrock console; no default). "
        "Required when bedrock_model_evaluation is on.",
    )
    judge_role_arn: str | None = Field(
        default=None,
        description="Service role for judge jobs (trusting bedrock.amazonaws.com for "
        "evaluation-job/*); default: role_arn.",
    )
    judge_max_prompts: int = Field(
        default=1000,
        ge=1,
        le=1000,
        description="Evaluation queries per judge job (the service takes at most 1,000).",
    )

    @field_validator("role_arn", "batch_role_arn", mode="before")
    @classmethod
    def _role_arn_shape(cls, role_arn: object) -> object:
        if isinstance(role_arn, str) and not re.fullmatch(
            r"arn:aws(-[a-z]+)?:iam::\d{12}:role/.+", role_arn
        ):
            raise ValueError(
                f"{role_arn[:200]!r} is not an IAM role ARN "
                "(arn:aws:iam::<12-digit account>:role/<name>)"
            )
        return role_arn

    @field_validator("region_name")
    @classmethod
    def _known_region(cls, region: str) -> str:
        regions = bedrock_regions()
        if region not in regions:
            raise ValueError(
                f"{region!r} is not a Region with Amazon Bedrock; known: {', '.join(regions)}"
            )
        return region


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def _transient(error: ClientError) -> TransientBackendError:
    return TransientBackendError(f"{_code(error)}: {_message(error)}")


def _service_error(operation: str, error: ClientError) -> BackendServiceError:
    return BackendServiceError(operation, _code(error) or "ClientError", _message(error))


@dataclass(frozen=True)
class Reply:
    """A Converse response and the client-side time it took (retries included)."""

    response: dict[str, Any]
    client_latency_s: float


def metadata_filters(pairs: dict[str, str]) -> dict[str, Any]:
    """requestMetadataFilters for invocation logs: `equals` takes one pair (the service model's
    RequestMetadataMap has max 1), so several pairs become `andAll` (at most 16)."""
    if len(pairs) > 16:
        raise UserInputError(f"at most 16 request metadata filters, got {len(pairs)}")
    equals = [{"equals": {k: v}} for k, v in sorted(pairs.items())]
    return equals[0] if len(equals) == 1 else {"andAll": equals}


class BedrockBackend:
    """Backend on Amazon Bedrock. Thread-safe as long as the boto3 clients are."""

    name = "bedrock"
    limits = BEDROCK_NOVA_LIMITS
    paid = True
    default_training_mode = TrainingMode.DISTILL_PROMPTS
    training_modes = frozenset(TrainingMode)
    stable_deployments = True

    def __init__(
        self,
        settings: BedrockSettings,
        *,
        control: Any,
        runtime: Any,
        store: ObjectStore,
        call_slot: Callable[[], AbstractContextManager[Any]] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        bucket_region: Callable[[], tuple[str, str] | None] | None = None,
        ssm: Any | None = None,
        concurrency: int = 8,
        s3_client: Callable[[], Any] | None = None,
    ) -> None:
        if concurrency < 1:
            raise UserInputError(f"Converse concurrency must be at least 1, got {concurrency}")
        self.settings = settings
        self.control = control
        self.runtime = runtime
        self.ssm = ssm  # only needed with settings.ssm_parameter_name
        self.store = store
        self.call_slot = call_slot or nullcontext
        self._held = threading.local()  # does this thread hold a slot (see _holding_slot)
        self.sleep = sleep
        # preflight: (bucket, its Region) of the run's storage; None when it is not S3
        self.bucket_region = bucket_region
        self.concurrency = concurrency
        self.s3_client = s3_client  # makes the S3 client that reads judge-job results

    # -- plumbing ----------------------------------------------------------------------------
    def _call(self, client: Any, method: str, **params: Any) -> Any:
        api_name = client.meta.method_to_api_mapping[method]
        validate_request(client, api_name, params)
        try:
            return getattr(client, method)(**params)
        except ClientError as error:
            if _code(error) in TRANSIENT_AWS_CODES:
                raise _transient(error) from error
            raise

    @staticmethod
    def converse_request(
        model_id: str, system: str, query: str, max_tokens: int, temperature: float | None = None
    ) -> dict[str, Any]:
        """A complete Converse request: system prompt, one user turn, maxTokens always set."""
        inference: dict[str, Any] = {"maxTokens": max_tokens}
        if temperature is not None:
            inference["temperature"] = temperature
        return {
            "modelId": model_id,
            "system": [{"text": system}],
            "messages": [{"role": "user", "content": [{"text": query}]}],
            "inferenceConfig": inference,
        }

    def _converse(
        self,
        model_id: str,
        system: str,
        query: str,
        max_tokens: int,
        temperature: float | None = None,
    ) -> Reply:
        """One Converse answer, per query, each attempt holding one concurrency slot.

        Throttling backs off here (THROTTLE_RETRIES), so a storm does not fail (and re-pay) a
        whole batch. ModelError / ModelTimeout are retried `model_error_retries` times, then
        raise ModelQueryError for the caller to count. Anything else the service refuses
        (access, not found, quota, validation) raises BackendServiceError with its message.
        The reply's client latency runs from the first attempt to the answer, retries and
        backoff included, slot waits excluded."""
        params = self.converse_request(model_id, system, query, max_tokens, temperature)
        throttled = model_failures = 0
        started = time.perf_counter()
        queued = 0.0
        while True:
            asked = time.perf_counter()
            failure: ClientError | None = None
            with self._slot():
                queued += time.perf_counter() - asked
                try:
                    response: dict[str, Any] = self._call(self.runtime, "converse", **params)
                    return Reply(response, time.perf_counter() - started - queued)
                except TransientBackendError:
                    pass
                except ClientError as error:
                    if _code(error) not in MODEL_QUERY_AWS_CODES:
                        raise _service_error("Converse", error) from error
                    failure = error
            if failure is None:
                if throttled == THROTTLE_RETRIES:
                    raise TransientBackendError(
                        f"Converse on {model_id} still throttled after {throttled} retries"
                    )
                self.sleep(min(30.0, THROTTLE_BASE_DELAY_S * 2**throttled))
                throttled += 1
                continue
            if model_failures == self.settings.model_error_retries:
                raise ModelQueryError(_code(failure), _message(failure), model_failures + 1)
            model_failures += 1
            self.sleep(MODEL_ERROR_DELAY_S)

    def _map(
        self,
        work: Callable[[str], T],
        items: Sequence[str],
        on_progress: Callable[[int], None] | None = None,
    ) -> list[T]:
        """`work` on every item, up to `concurrency` at once on threads (boto3 clients are
        thread-safe); results in input order. The first error cancels what has not started
        and is raised."""
        done = 0

        def advance() -> None:
            nonlocal done
            done += 1
            if on_progress is not None and done % PROGRESS_EVERY == 0:
                on_progress(done)

        if self.concurrency == 1 or len(items) <= 1:
            results = []
            with self._holding_slot():
                for item in items:
                    results.append(work(item))
                    advance()
            return results
        workers = min(self.concurrency, len(items))
        lock = threading.Lock()
        pending = iter(range(len(items)))
        out: list[T | None] = [None] * len(items)
        errors: list[BaseException] = []

        def worker() -> None:
            # One slot per worker, held while it works through its share of the calls: the
            # global limit still bounds the calls in flight, at two API calls per worker
            # instead of two per Converse call.
            with self._holding_slot():
                while True:
                    with lock:
                        index = None if errors else next(pending, None)
                    if index is None:  # done, or a fatal error elsewhere: pay for no more
                        return
                    try:
                        out[index] = work(items[index])
                    except BaseException as error:
                        with lock:
                            errors.append(error)
                        return
                    with lock:
                        advance()

        threads = [
            threading.Thread(
                target=contextvars.copy_context().run,  # Prefect's run context, loggers
                args=(worker,),
                name=f"converse-{n}",
                daemon=True,
            )
            for n in range(workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return cast(list[T], out)

    @contextmanager
    def _holding_slot(self) -> Iterator[None]:
        """Hold one slot of the Converse limit for this thread's calls (`_slot` then skips)."""
        if getattr(self._held, "slot", False):
            yield
            return
        with self.call_slot():
            self._held.slot = True
            try:
                yield
            finally:
                self._held.slot = False

    def _slot(self) -> AbstractContextManager[Any]:
        """The slot for one call: none when this thread already holds one."""
        return nullcontext() if getattr(self._held, "slot", False) else self.call_slot()

    @staticmethod
    def _text(response: dict[str, Any]) -> str:
        parts = response.get("output", {}).get("message", {}).get("content", [])
        return "".join(p.get("text", "") for p in parts if isinstance(p, dict))

    # -- teacher -----------------------------------------------------------------------------
    def labelling_path(self, batch_size: int) -> LabellingPath:
        return labelling_path(batch_size, self.settings.batch_labelling_threshold)

    def label(self, queries: Sequence[str], taxonomy: Taxonomy) -> list[LabelResult]:
        """Converse with the teacher, up to `concurrency` queries at once (each call holds one
        slot of the global Converse limit); retry invalid answers a bounded number of times.
        A query the model keeps failing on is dropped and counted, never fatal to the batch.
        At or above batch_labelling_threshold: one batch-inference job (bedrock_batch.py)."""
        if self.labelling_path(len(queries)) == "batch":
            return label_in_batch(self, queries, taxonomy)
        prompt = teacher_prompt(taxonomy)
        return self._map(lambda query: self._label_one(query, prompt, taxonomy), queries)

    def _label_one(self, query: str, prompt: str, taxonomy: Taxonomy) -> LabelResult:
        error = "no answer"
        for attempt in range(1, self.settings.label_attempts + 1):
            try:
                reply = self._converse(
                    self.settings.teacher_model_id,
                    prompt,
                    teacher_user_message(query),  # the query is data, never instructions
                    self.settings.label_max_tokens,
                    self.settings.label_temperature,
                )
            except ModelQueryError as failed:
                logger.warning("teacher failed on %r: %s", query[:80], failed)
                return LabelResult(query=query, text=None, attempts=attempt, error=str(failed))
            response = reply.response
            text = self._text(response)
            try:
                parse_routing_output(text, taxonomy.signal_names)
            except RouterOutputError as invalid:
                error = f"{invalid} (stopReason {response.get('stopReason')})"
                continue
            return LabelResult(query=query, text=text, attempts=attempt)
        return LabelResult(
            query=query, text=None, attempts=self.settings.label_attempts, error=error
        )

    def teacher_fingerprint(self, taxonomy: Taxonomy) -> TeacherFingerprint:
        s = self.settings
        return TeacherFingerprint(
            backend=self.name,
            teacher_model_id=s.teacher_model_id,
            prompt_sha256=prompt_hash(teacher_prompt(taxonomy)),
            label_settings=f"maxTokens={s.label_max_tokens} temperature={s.label_temperature} "
            f"attempts={s.label_attempts}",
        )

    # -- preflight ---------------------------------------------------------------------------
    def setup_checks(self) -> list[SetupCheck]:
        """The offline checks, then the live ones: the student base model and the teacher in
        the Region's catalog (ListFoundationModels), the bucket's Region (GetBucketLocation)."""
        s = self.settings
        checks = offline_checks(s)
        try:
            distillable = self._call(
                self.control, "list_foundation_models", byCustomizationType="DISTILLATION"
            )["modelSummaries"]
            catalog = self._call(self.control, "list_foundation_models")["modelSummaries"]
        except (ClientError, TransientBackendError) as error:
            checks.append(
                SetupCheck(
                    name="model access",
                    passed=False,
                    detail=f"cannot list foundation models in {s.region_name} "
                    f"({error}): allow bedrock:ListFoundationModels or check the Region",
                )
            )
        else:
            checks.append(
                check_student_base_model(s.student_base_model_id, distillable, s.region_name)
            )
            checks.append(check_teacher_model(s.teacher_model_id, catalog, s.region_name))
        try:
            located = self.bucket_region() if self.bucket_region is not None else None
        except ClientError as error:
            checks.append(
                SetupCheck(
                    name="bucket region",
                    passed=False,
                    detail=f"cannot read the bucket's Region ({error}): allow "
                    "s3:GetBucketLocation on the bucket",
                )
            )
        else:
            bucket, region = located if located is not None else ("", None)
            checks.append(check_bucket_region(bucket, region, s.region_name))
        return checks

    # -- distillation ------------------------------------------------------------------------
    def job_request(self, request: DistillationRequest) -> dict[str, Any]:
        """The complete CreateModelCustomizationJob request for the request's training mode."""
        tags = [{"key": k, "value": v} for k, v in {**self.settings.tags, **request.tags}.items()]
        params: dict[str, Any] = {
            "jobName": request.job_name,
            "customModelName": request.model_name,
            "roleArn": self.settings.role_arn,
            "clientRequestToken": request.token,
            "baseModelIdentifier": self.settings.student_base_model_id,
            "outputDataConfig": {"s3Uri": self.store.uri(request.output_prefix) + "/"},
            "jobTags": tags,
            "customModelTags": tags,
        }
        if request.mode is TrainingMode.FINE_TUNE_LABELLED:
            s = self.settings
            return {
                **params,
                "customizationType": "FINE_TUNING",
                "trainingDataConfig": {"s3Uri": request.training_uri},
                "hyperParameters": {
                    "epochCount": str(s.epochs),
                    "learningRate": f"{s.learning_rate:g}",
                    "learningRateWarmupSteps": str(s.learning_rate_warmup_steps),
                },
            }
        teacher = {
            "teacherModelIdentifier": self.settings.teacher_model_id,
            "maxResponseLengthForInference": self.settings.max_teacher_response_tokens
            or request.response_tokens,
        }
        if request.mode is TrainingMode.DISTILL_INVOCATION_LOGS:
            if not request.invocation_logs_uri:
                raise UserInputError("distill-invocation-logs needs the invocation logs' s3:// URI")
            logs: dict[str, Any] = {
                "usePromptResponse": request.use_prompt_response,
                "invocationLogSource": {"s3Uri": request.invocation_logs_uri},
            }
            if request.request_metadata:
                logs["requestMetadataFilters"] = metadata_filters(request.request_metadata)
            data: dict[str, Any] = {"invocationLogsConfig": logs}
        else:
            data = {"s3Uri": request.training_uri}
        return {
            **params,
            "customizationType": "DISTILLATION",
            "trainingDataConfig": data,
            "customizationConfig": {"distillationConfig": {"teacherModelConfig": teacher}},
        }

    def start_distillation(self, request: DistillationRequest, taxonomy: Taxonomy) -> JobSubmission:
        """Reuse the job of the first attempt that is InProgress or Completed (with its model
        still there); an attempt that ended Failed or Stopped (or whose model is gone) moves
        on to the next (`attempt_request`); the first name not found is created."""
        earlier: list[JobStatus] = []
        for attempt in range(1, self.settings.max_job_attempts + 1):
            current = attempt_request(request, attempt)
            job = self._find_job(current.job_name)
            if job is None:
                response = self._call(
                    self.control, "create_model_customization_job", **self.job_request(current)
                )
                return JobSubmission(
                    job_id=str(response["jobArn"]),
                    job_name=current.job_name,
                    attempt=attempt,
                    earlier=tuple(earlier),
                )
            ended = self._ended(job)
            if ended is None:
                logger.info("reusing distillation job %s (attempt %d)", job["jobArn"], attempt)
                self._tag(str(job["jobArn"]), current.tags)
                return JobSubmission(
                    job_id=str(job["jobArn"]),
                    job_name=current.job_name,
                    attempt=attempt,
                    earlier=tuple(earlier),
                )
            earlier.append(ended)
            logger.warning(
                "distillation job %s (attempt %d) ended %s: %s; trying attempt %d",
                current.job_name,
                attempt,
                ended.state,
                ended.failure_message or "no failure message",
                attempt + 1,
            )
        last = earlier[-1]
        raise DistillationJobFailed(
            last.job_id,
            last.state,
            f"{len(earlier)} attempts ended badly (max_job_attempts="
            f"{self.settings.max_job_attempts}); last: {last.failure_message}",
        )

    def _find_job(self, name: str) -> dict[str, Any] | None:
        try:
            job: dict[str, Any] = self._call(
                self.control, "get_model_customization_job", jobIdentifier=name
            )
        except ClientError as error:
            if _code(error) != "ResourceNotFoundException":
                raise
            return None
        return job

    def _ended(self, job: dict[str, Any]) -> JobStatus | None:
        """None if the job can be reused; else how it ended (a new attempt is needed)."""
        state = JobState(job["status"])
        failure = job.get("failureMessage")
        if state == JobState.IN_PROGRESS:
            return None
        if state == JobState.COMPLETED:
            model_arn = job.get("outputModelArn")
            try:
                if model_arn:
                    self.check_model(model_arn)
                return None
            except ModelArtifactError as gone:
                state, failure = JobState.FAILED, str(gone)
        elif state == JobState.STOPPING:  # ends Stopped
            state = JobState.STOPPED
        return JobStatus(
            job_id=str(job["jobArn"]), state=state, failure_message=failure or state.value
        )

    def job_status(self, job_id: str) -> JobStatus:
        """The job's state; Completed only once its custom model is Active."""
        job = self._call(self.control, "get_model_customization_job", jobIdentifier=job_id)
        details = {k: str(v.get("status")) for k, v in (job.get("statusDetails") or {}).items()}
        metrics = {}
        loss = (job.get("trainingMetrics") or {}).get("trainingLoss")
        if loss is not None:
            metrics["trainingLoss"] = float(loss)
        state = JobState(job["status"])
        model_arn = job.get("outputModelArn")
        if state == JobState.COMPLETED and model_arn:
            model = self._call(self.control, "get_custom_model", modelIdentifier=model_arn)
            details["customModel"] = str(model.get("modelStatus"))
            if model.get("modelStatus") == "Failed":
                return JobStatus(
                    job_id=job_id,
                    state=JobState.FAILED,
                    model_id=model_arn,
                    failure_message=model.get("failureMessage"),
                    details=details,
                )
            if model.get("modelStatus") != "Active":
                state = JobState.IN_PROGRESS
        return JobStatus(
            job_id=job_id,
            state=state,
            model_id=model_arn,
            failure_message=job.get("failureMessage"),
            details=details,
            metrics=metrics,
        )

    def check_model(self, model_id: str) -> None:
        try:
            model = self._call(self.control, "get_custom_model", modelIdentifier=model_id)
        except ClientError as error:
            if _code(error) == "ResourceNotFoundException":
                raise ModelArtifactError(f"custom model {model_id} no longer exists") from None
            raise
        if model.get("modelStatus") == "Failed":
            raise ModelArtifactError(f"custom model {model_id} is Failed")

    # -- deployments -------------------------------------------------------------------------
    def deployment_request(
        self, model_id: str, name: str, token: str, tags: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """The complete CreateCustomModelDeployment request (on demand)."""
        params: dict[str, Any] = {
            "modelDeploymentName": name,
            "modelArn": model_id,
            "clientRequestToken": token,
            "description": f"router-distill candidate {name}",
        }
        all_tags = {**self.settings.tags, **(tags or {})}
        if all_tags:
            params["tags"] = [{"key": k, "value": v} for k, v in all_tags.items()]
        return params

    def deploy(
        self, model_id: str, name: str, token: str, tags: dict[str, str] | None = None
    ) -> str:
        self._tag(model_id, tags or {})  # the model belongs to the run that deploys it now
        response = self._call(
            self.control,
            "create_custom_model_deployment",
            **self.deployment_request(model_id, name, token, tags),
        )
        return str(response["customModelDeploymentArn"])

    def deployment_status(self, deployment_id: str) -> DeploymentStatus:
        try:
            found = self._call(
                self.control,
                "get_custom_model_deployment",
                customModelDeploymentIdentifier=deployment_id,
            )
        except ClientError as error:
            if _code(error) == "ResourceNotFoundException":
                raise DeploymentNotFound(deployment_id) from None
            raise
        update = found.get("updateDetails") or {}
        return DeploymentStatus(
            deployment_id=found.get("customModelDeploymentArn", deployment_id),
            state=DeploymentState(found["status"]),
            model_id=found["modelArn"],
            failure_message=found.get("failureMessage"),
            update_status=update.get("updateStatus"),
            update_model_id=update.get("modelArn"),
        )

    def delete_deployment(self, deployment_id: str) -> None:
        try:
            self._call(
                self.control,
                "delete_custom_model_deployment",
                customModelDeploymentIdentifier=deployment_id,
            )
        except ClientError as error:
            if _code(error) != "ResourceNotFoundException":
                raise
            logger.info("deployment %s was already gone", deployment_id)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def keep_rejected_models(self) -> int | None:
        return self.settings.keep_rejected_models

    def _tag(self, arn: str, tags: dict[str, str]) -> None:
        """Set (overwrite) tags on a resource, e.g. the run id of the run that reuses it."""
        if tags:
            self._call(
                self.control,
                "tag_resource",
                resourceARN=arn,
                tags=[{"key": k, "value": v} for k, v in tags.items()],
            )

    def stop_job(self, job_id: str) -> bool:
        try:
            self._call(self.control, "stop_model_customization_job", jobIdentifier=job_id)
        except ClientError as error:
            if _code(error) not in ("ConflictException", "ResourceNotFoundException"):
                raise
            logger.info("job %s was not stopped (%s): it had ended", job_id, _code(error))
            return False
        logger.warning("stopped distillation job %s", job_id)
        return True

    def delete_model(self, model_id: str) -> None:
        try:
            self._call(self.control, "delete_custom_model", modelIdentifier=model_id)
        except ClientError as error:
            if _code(error) != "ResourceNotFoundException":
                raise
            logger.info("custom model %s was already gone", model_id)

    def update_deployment(
        self, deployment_id: str, model_id: str, tags: dict[str, str] | None = None
    ) -> None:
        try:
            self._call(
                self.control,
                "update_custom_model_deployment",
                customModelDeploymentIdentifier=deployment_id,
                modelArn=model_id,
            )
        except ClientError as error:
            if _code(error) != "ValidationException":
                raise
            message = str(error.response.get("Error", {}).get("Message", ""))
            raise DeploymentUpdateRefused(deployment_id, message) from None
        self._tag(deployment_id, tags or {})

    def publish_serving(self, router: str, deployment_id: str) -> None:
        template = self.settings.ssm_parameter_name
        if template is None:
            return
        if self.ssm is None:
            raise ValueError("ssm_parameter_name is set but the backend has no SSM client")
        name = ssm_parameter_for(template, router)
        self.ssm.put_parameter(Name=name, Value=deployment_id, Type="String", Overwrite=True)
        logger.info("SSM parameter %s = %s", name, deployment_id)

    def _pages(self, method: str, key: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a List* call, following nextToken (through `_call`)."""
        items: list[dict[str, Any]] = []
        while True:
            page = self._call(self.control, method, **params)
            items += page.get(key, [])
            token = page.get("nextToken")
            if not token:
                return items
            params = {**params, "nextToken": token}

    def _tags_of(self, arn: str) -> dict[str, str] | None:
        try:
            found = self._call(self.control, "list_tags_for_resource", resourceARN=arn)
        except ClientError as error:
            if _code(error) != "ResourceNotFoundException":
                raise
            return None  # deleted meanwhile
        return {t["key"]: t["value"] for t in found.get("tags", [])}

    def tagged_resources(self) -> list[TaggedResource]:
        """Running jobs, custom models and deployments with this product's tag."""
        listed: list[tuple[str, str, str, str, str | None]] = []
        for job in self._pages(
            "list_model_customization_jobs",
            "modelCustomizationJobSummaries",
            statusEquals="InProgress",
        ):
            listed.append(("job", job["jobArn"], job["jobName"], job["status"], None))
        for model in self._pages("list_custom_models", "modelSummaries"):
            status = str(model.get("modelStatus", "Active"))
            listed.append(("model", model["modelArn"], model["modelName"], status, None))
        for d in self._pages("list_custom_model_deployments", "modelDeploymentSummaries"):
            listed.append(
                (
                    "deployment",
                    d["customModelDeploymentArn"],
                    d["customModelDeploymentName"],
                    d["status"],
                    d["modelArn"],
                )
            )
        out = []
        for kind, arn, name, status, model_arn in listed:
            tags = self._tags_of(arn)
            if tags is not None and tags.get(PRODUCT_TAG) == PRODUCT:
                out.append(
                    TaggedResource.model_validate(
                        {
                            "kind": kind,
                            "arn": arn,
                            "name": name,
                            "status": status,
                            "tags": tags,
                            "model_arn": model_arn,
                        }
                    )
                )
        return out

    # -- inference ---------------------------------------------------------------------------
    def invoke(
        self,
        target: ModelTarget,
        queries: Sequence[str],
        taxonomy: Taxonomy,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[Invocation]:
        """Converse once per query, up to `concurrency` at once; results in query order.

        Latency: the service's metrics.latencyMs and the client's end-to-end time; tokens from
        usage. Teacher-prompted targets get the query quoted (`teacher_user_message`); the
        student gets it bare, as in its training records. A query the model keeps failing on
        (ModelError / ModelTimeout after retries) counts as an unparseable answer; any other
        refusal (access, not found, quota, validation) raises BackendServiceError.
        """
        quoted = target.prompt == "teacher"
        prompt = teacher_prompt(taxonomy) if quoted else student_system_prompt(taxonomy)

        def one(query: str) -> Invocation:
            message = teacher_user_message(query) if quoted else query
            started = time.perf_counter()
            try:
                reply = self._converse(
                    target.ref, prompt, message, self.settings.inference_max_tokens
                )
            except ModelQueryError as failed:
                logger.warning("%s failed on %r: %s", target.name, query[:80], failed)
                return Invocation(
                    text="",
                    latency_s=0.0,
                    input_tokens=0,
                    output_tokens=0,
                    client_latency_s=time.perf_counter() - started,
                    error=str(failed),
                )
            response = reply.response
            usage = response.get("usage", {})
            return Invocation(
                text=self._text(response),
                latency_s=float(response.get("metrics", {}).get("latencyMs", 0)) / 1000,
                input_tokens=int(usage.get("inputTokens", 0)),
                output_tokens=int(usage.get("outputTokens", 0)),
                client_latency_s=reply.client_latency_s,
            )

        return self._map(one, queries, on_progress)

    # -- judge (Bedrock Model Evaluation, LLM-as-a-judge on precomputed answers) -------------
    def judging_enabled(self) -> bool:
        return self.settings.bedrock_model_evaluation

    def judge_job_request(
        self,
        job_name: str,
        dataset_uri: str,
        output_uri: str,
        targets: Sequence[JudgeTarget],
        signals: Sequence[str],
    ) -> dict[str, Any]:
        """The complete CreateEvaluationJob request for one or two models' answers."""
        s = self.settings
        if not s.judge_model_id:
            raise UserInputError(
                "bedrock_model_evaluation is on but judge_model_id is not set: name the "
                "evaluator model (e.g. a Claude Sonnet model or inference profile id) in the "
                "Bedrock backend settings"
            )
        judge = [{"modelIdentifier": s.judge_model_id}]
        tags = [{"key": k, "value": v} for k, v in s.tags.items()]
        request: dict[str, Any] = {
            "jobName": job_name,
            "jobDescription": "router-distill: seed rubric on precomputed router answers",
            "clientRequestToken": hashlib.sha256(f"{job_name}|{dataset_uri}".encode()).hexdigest(),
            "roleArn": s.judge_role_arn or s.role_arn,
            "applicationType": "ModelEvaluation",
            "evaluationConfig": {
                "automated": {
                    "datasetMetricConfigs": [
                        {
                            "taskType": JUDGE_TASK_TYPE,
                            "dataset": {
                                "name": JUDGE_DATASET,
                                "datasetLocation": {"s3Uri": dataset_uri},
                            },
                            "metricNames": [JUDGE_METRIC],
                        }
                    ],
                    "customMetricConfig": {
                        "customMetrics": [
                            {
                                "customMetricDefinition": {
                                    "name": JUDGE_METRIC,
                                    "instructions": rubric_instructions(signals),
                                    "ratingScale": rating_scale(),
                                }
                            }
                        ],
                        "evaluatorModelConfig": {"bedrockEvaluatorModels": judge},
                    },
                }
            },
            "inferenceConfig": {
                "models": [
                    {"precomputedInferenceSource": {"inferenceSourceIdentifier": t.identifier}}
                    for t in targets
                ]
            },
            "outputDataConfig": {"s3Uri": output_uri},
        }
        if tags:
            request["jobTags"] = tags
        return request

    def start_judging(
        self,
        name: str,
        prompts: Sequence[str],
        references: Sequence[str],
        targets: Sequence[JudgeTarget],
        signals: Sequence[str],
    ) -> list[str]:
        """Write one dataset per pair of targets and start a judge job on it (at most
        `judge_max_prompts` queries each); the same name and data give the same jobs."""
        n = min(len(prompts), self.settings.judge_max_prompts)
        if n < len(prompts):
            logger.info("judging the first %d of %d evaluation queries", n, len(prompts))
        job_ids = []
        for index, pair in enumerate(judge_pairs(targets)):
            job_name = judge_job_name(name, index)
            data = judge_dataset_jsonl(prompts[:n], references[:n], pair)
            dataset_uri = self.store.write(f"judge/{job_name}/dataset.jsonl", data)
            output_uri = self.store.uri(f"judge/{job_name}/output") + "/"
            request = self.judge_job_request(job_name, dataset_uri, output_uri, pair, signals)
            try:
                response = self._call(self.control, "create_evaluation_job", **request)
            except ClientError as error:
                raise _service_error("CreateEvaluationJob", error) from error
            logger.info("judge job %s on %s", response["jobArn"], ", ".join(t.name for t in pair))
            job_ids.append(str(response["jobArn"]))
        return job_ids

    def judging_status(self, job_id: str) -> JudgeJobStatus:
        try:
            job = self._call(self.control, "get_evaluation_job", jobIdentifier=job_id)
        except ClientError as error:
            raise _service_error("GetEvaluationJob", error) from error
        return JudgeJobStatus(
            job_id=job_id,
            state=str(job["status"]),
            failure_messages=tuple(str(m) for m in job.get("failureMessages") or ()),
        )

    def judge_scores(self, job_id: str) -> list[JudgeScore]:
        """Mean judge score per model, read from the job's output prefix on S3."""
        if self.s3_client is None:
            raise UserInputError("reading judge results needs an S3 client for the bucket")
        s3 = self.s3_client()
        job = self._call(self.control, "get_evaluation_job", jobIdentifier=job_id)
        bucket, _, prefix = job["outputDataConfig"]["s3Uri"].removeprefix("s3://").partition("/")
        prefix = f"{prefix.rstrip('/')}/{job['jobName']}/".lstrip("/")
        files = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if item["Key"].endswith("_output.jsonl"):
                    body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                    files.append((str(item["Key"]), bytes(body)))
        if not files:
            raise BackendServiceError(
                "GetEvaluationJob", "NoResults", f"no *_output.jsonl under s3://{bucket}/{prefix}"
            )
        return judge_output_scores(files, JUDGE_METRIC)

    def baselines(self, taxonomy: Taxonomy) -> list[ModelTarget]:
        s = self.settings
        targets = [
            ModelTarget(
                name=f"teacher {s.teacher_model_id}",
                role="teacher",
                ref=s.teacher_model_id,
                prompt="teacher",
                priced_as=s.teacher_model_id,
            ),
            ModelTarget(
                name=f"base student {s.student_invoke_model_id}",
                role="base-student",
                ref=s.student_invoke_model_id,
                prompt="teacher",
                priced_as=s.student_invoke_model_id,
            ),
        ]
        targets += [
            ModelTarget(
                name=name,
                role=f"baseline-{name}",
                ref=model_id,
                prompt="teacher",
                priced_as=model_id,
            )
            for name, model_id in s.baseline_model_ids.items()
        ]
        return targets

    def target_for_deployment(
        self, deployment_id: str, role: str, name: str, prompt: str = "student"
    ) -> ModelTarget:
        return ModelTarget(
            name=name,
            role=role,
            ref=deployment_id,
            prompt=prompt,
            priced_as=self.settings.student_invoke_model_id,
        )

    def artifact_uri(self, model_id: str) -> str | None:
        return model_id

    def training_price_per_1k(self) -> float | None:
        return self.settings.training_usd_per_1k_tokens

    def storage_price_per_model_month(self) -> float | None:
        return self.settings.storage_usd_per_model_month

    def training_epochs(self) -> int:
        return self.settings.epochs

    def price_for(self, model_id: str) -> ModelPrice:
        if model_id in self.settings.price_overrides:
            inp, out = self.settings.price_overrides[model_id]
            return ModelPrice(
                model_id=model_id, input_per_1k=inp, output_per_1k=out, source="price override"
            )
        return price_for(model_id)
