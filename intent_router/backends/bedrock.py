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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

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
    JudgeJobStatus,
    JudgeScore,
    JudgeTarget,
    LabelResult,
    ModelTarget,
    TeacherFingerprint,
    prompt_hash,
)
from intent_router.backends.bedrock_validation import validate_request
from intent_router.errors import (
    MODEL_QUERY_AWS_CODES,
    TRANSIENT_AWS_CODES,
    BackendServiceError,
    DeploymentNotFound,
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
from intent_router.pricing import BEDROCK_NOVA_LIMITS, ModelPrice, price_for
from intent_router.prompts import student_system_prompt, teacher_prompt, teacher_user_message
from intent_router.schema import parse_routing_output
from intent_router.storage import ObjectStore
from intent_router.taxonomy import Taxonomy

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
    max_teacher_response_tokens: int = Field(
        default=1000,
        ge=1,
        le=4096,
        description="maxResponseLengthForInference of the distillation job's teacher.",
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
    training_usd_per_1k_tokens: float | None = Field(
        default=None,
        ge=0,
        description="Distillation training price per 1K tokens (not in the price table; set it "
        "from the Bedrock pricing page to include training in the budget check).",
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

    @field_validator("role_arn", mode="before")
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


class _Abandoned(Exception):
    """A call skipped because another one failed fatally (never raised to callers)."""


@dataclass(frozen=True)
class Reply:
    """A Converse response and the client-side time it took (retries included)."""

    response: dict[str, Any]
    client_latency_s: float


class BedrockBackend:
    """Backend on Amazon Bedrock. Thread-safe as long as the boto3 clients are."""

    name = "bedrock"
    limits = BEDROCK_NOVA_LIMITS
    paid = True

    def __init__(
        self,
        settings: BedrockSettings,
        *,
        control: Any,
        runtime: Any,
        store: ObjectStore,
        call_slot: Callable[[], AbstractContextManager[Any]] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        concurrency: int = 8,
        s3_client: Callable[[], Any] | None = None,
    ) -> None:
        if concurrency < 1:
            raise UserInputError(f"Converse concurrency must be at least 1, got {concurrency}")
        self.settings = settings
        self.control = control
        self.runtime = runtime
        self.store = store
        self.call_slot = call_slot or nullcontext
        self.sleep = sleep
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
            with self.call_slot():
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
            for item in items:
                results.append(work(item))
                advance()
            return results
        workers = min(self.concurrency, len(items))
        failed = threading.Event()

        def guarded(item: str) -> T:
            if failed.is_set():  # a fatal error elsewhere: do not pay for more calls
                raise _Abandoned()
            try:
                return work(item)
            except BaseException:
                failed.set()
                raise

        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="converse")
        try:
            # each call runs in a copy of this context (Prefect's run context, loggers)
            futures = [pool.submit(contextvars.copy_context().run, guarded, item) for item in items]
            for future in as_completed(futures):
                if future.exception() is not None and isinstance(future.exception(), _Abandoned):
                    continue  # the real error is raised from its own future
                future.result()
                advance()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return [future.result() for future in futures]

    @staticmethod
    def _text(response: dict[str, Any]) -> str:
        parts = response.get("output", {}).get("message", {}).get("content", [])
        return "".join(p.get("text", "") for p in parts if isinstance(p, dict))

    # -- teacher -----------------------------------------------------------------------------
    def label(self, queries: Sequence[str], taxonomy: Taxonomy) -> list[LabelResult]:
        """Converse with the teacher, up to `concurrency` queries at once (each call holds one
        slot of the global Converse limit); retry invalid answers a bounded number of times.
        A query the model keeps failing on is dropped and counted, never fatal to the batch."""
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

    # -- distillation ------------------------------------------------------------------------
    def job_request(self, request: DistillationRequest) -> dict[str, Any]:
        """The complete CreateModelCustomizationJob request for a distillation."""
        tags = [{"key": k, "value": v} for k, v in {**self.settings.tags, **request.tags}.items()]
        return {
            "jobName": request.job_name,
            "customModelName": request.model_name,
            "roleArn": self.settings.role_arn,
            "clientRequestToken": request.token,
            "baseModelIdentifier": self.settings.student_base_model_id,
            "customizationType": "DISTILLATION",
            "trainingDataConfig": {"s3Uri": request.training_uri},
            "outputDataConfig": {"s3Uri": self.store.uri(request.output_prefix) + "/"},
            "customizationConfig": {
                "distillationConfig": {
                    "teacherModelConfig": {
                        "teacherModelIdentifier": self.settings.teacher_model_id,
                        "maxResponseLengthForInference": self.settings.max_teacher_response_tokens,
                    }
                }
            },
            "jobTags": tags,
            "customModelTags": tags,
        }

    def start_distillation(self, request: DistillationRequest, taxonomy: Taxonomy) -> str:
        """Reuse the job with this name if it exists; otherwise create it (idempotent token)."""
        try:
            existing = self._call(
                self.control, "get_model_customization_job", jobIdentifier=request.job_name
            )
            logger.info("reusing distillation job %s", existing["jobArn"])
            return str(existing["jobArn"])
        except ClientError as error:
            if _code(error) != "ResourceNotFoundException":
                raise
        response = self._call(
            self.control, "create_model_customization_job", **self.job_request(request)
        )
        return str(response["jobArn"])

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
        return DeploymentStatus(
            deployment_id=deployment_id,
            state=DeploymentState(found["status"]),
            model_id=found["modelArn"],
            failure_message=found.get("failureMessage"),
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

    def target_for_deployment(self, deployment_id: str, role: str, name: str) -> ModelTarget:
        return ModelTarget(
            name=name,
            role=role,
            ref=deployment_id,
            prompt="student",
            priced_as=self.settings.student_invoke_model_id,
        )

    def artifact_uri(self, model_id: str) -> str | None:
        return model_id

    def training_price_per_1k(self) -> float | None:
        return self.settings.training_usd_per_1k_tokens

    def price_for(self, model_id: str) -> ModelPrice:
        if model_id in self.settings.price_overrides:
            inp, out = self.settings.price_overrides[model_id]
            return ModelPrice(
                model_id=model_id, input_per_1k=inp, output_per_1k=out, source="price override"
            )
        return price_for(model_id)
