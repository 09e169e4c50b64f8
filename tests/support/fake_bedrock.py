"""An in-memory fake of the `bedrock` and `bedrock-runtime` boto3 clients.

What makes it worth trusting:

* Every request is checked against the REAL botocore service model, including the enums,
  patterns and `max` that botocore itself skips (`request_violations`); violations raise
  `botocore.exceptions.ParamValidationError`, as a real client does before sending.
* Every response is checked against the operation's output shape; a fake that drifts
  from the model fails loudly (AssertionError) instead of teaching the code wrong shapes.
* Errors are the real client's modelled exception classes (`client.exceptions.X`, all
  `ClientError` subclasses) with `Error.Code` and the modelled `HTTPStatusCode`.
* `meta` and `exceptions` are the real clients', so `client.meta.service_model`,
  `client.meta.method_to_api_mapping` and `except client.exceptions.ThrottlingException`
  work. No request is ever sent: the real clients are used only for their models.

Time advances by polls, not wall time: every `get_*` call on a resource that is still in
progress moves it one step. Timestamps come from a fake clock (one minute per call).

Usage::

    fake = FakeBedrock(responder=lambda model, system, user: '{"visual": 1.0}')
    arn = fake.control.create_model_customization_job(**request)["jobArn"]
    fake.control.get_model_customization_job(jobIdentifier=arn)["status"]  # "InProgress"
    monkeypatch.setattr(boto3, "client", fake.client)  # hand the fakes to code under test
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import boto3
import botocore.session
from botocore.client import BaseClient
from botocore.exceptions import ParamValidationError
from botocore.paginate import Paginator, PaginatorModel
from botocore.utils import parse_to_aware_datetime

from intent_router.backends.bedrock_validation import request_violations, response_violations
from intent_router.errors import RouterOutputError
from intent_router.metrics import rubric_score
from intent_router.prompts import extract_quoted_query
from intent_router.schema import parse_routing_output

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"

Responder = Callable[[str, str, str], str]
"""responder(model_id, system_text, user_text) -> answer text; user_text is the query itself
when the call quotes it (prompts.teacher_user_message)."""

# Used only when an operation does not model the error (the model wins otherwise: note
# that botocore models Bedrock's ConflictException as HTTP 400, not 409).
DEFAULT_HTTP_STATUS = {
    "AccessDeniedException": 403,
    "ConflictException": 400,
    "InternalServerException": 500,
    "ModelErrorException": 424,
    "ModelNotReadyException": 429,
    "ModelTimeoutException": 408,
    "ResourceNotFoundException": 404,
    "ServiceQuotaExceededException": 400,
    "ServiceUnavailableException": 503,
    "ThrottlingException": 429,
    "TooManyTagsException": 400,
    "ValidationException": 400,
}

INVALID_MODEL_ID = "The provided model identifier is invalid."
BATCH_MIN_RECORDS = 100  # the per-model quota "minimum records per batch job" (about 100)
PROFILE_PREFIXES = ("us.", "us-gov.", "eu.", "apac.", "jp.", "au.", "ca.", "global.")


@dataclass(frozen=True)
class FoundationModel:
    model_id: str
    name: str
    input_modalities: tuple[str, ...] = ("TEXT",)
    customizations: tuple[str, ...] = ()
    inference_types: tuple[str, ...] = ("ON_DEMAND",)
    profile_only: bool = False
    """Converse needs a cross-Region inference profile id (e.g. `us.` + model id)."""


# Customization variants (":128k", ":300k") are what jobs take as baseModelIdentifier; they
# are not invocable on demand. Nova Premier is teacher-only and reachable only through an
# inference profile; the real service lists it as "INFERENCE_PROFILE", a value outside the
# modelled InferenceType enum, so here it lists none.
NOVA_MODELS: tuple[FoundationModel, ...] = (
    FoundationModel("amazon.nova-micro-v1:0", "Nova Micro"),
    FoundationModel(
        "amazon.nova-micro-v1:0:128k",
        "Nova Micro",
        customizations=("FINE_TUNING", "DISTILLATION"),
        inference_types=("PROVISIONED",),
    ),
    FoundationModel("amazon.nova-lite-v1:0", "Nova Lite", ("TEXT", "IMAGE")),
    FoundationModel(
        "amazon.nova-lite-v1:0:300k",
        "Nova Lite",
        ("TEXT", "IMAGE"),
        customizations=("FINE_TUNING", "DISTILLATION"),
        inference_types=("PROVISIONED",),
    ),
    FoundationModel("amazon.nova-pro-v1:0", "Nova Pro", ("TEXT", "IMAGE")),
    FoundationModel(
        "amazon.nova-pro-v1:0:300k",
        "Nova Pro",
        ("TEXT", "IMAGE"),
        customizations=("FINE_TUNING", "DISTILLATION"),
        inference_types=("PROVISIONED",),
    ),
    FoundationModel(
        "amazon.nova-premier-v1:0",
        "Nova Premier",
        ("TEXT", "IMAGE"),
        inference_types=(),
        profile_only=True,
    ),
)
TEACHER_MODEL_IDS = frozenset({"amazon.nova-premier-v1:0", "amazon.nova-pro-v1:0"})

JOB_STAGES = ("validationDetails", "dataProcessingDetails", "trainingDetails")
START = datetime(2025, 8, 1, 9, 0, tzinfo=UTC)


def default_responder(model_id: str, system_text: str, user_text: str) -> str:
    """A valid routing answer whatever the question."""
    return json.dumps(
        {
            "visual": 0.4,
            "audio": 0.2,
            "transcription": 0.2,
            "metadata": 0.2,
            "reasoning": "fake answer",
        }
    )


def suffix_for(token: str, salt: str = "") -> str:
    """The 12 lowercase alphanumerics ending an ARN: sha256 of the token, as hex."""
    return hashlib.sha256(f"{salt}{token}".encode()).hexdigest()[:12]


def token_count(text: str) -> int:
    return math.ceil(len(text) / 4)


@lru_cache(maxsize=4)
def real_client(service: str, region: str = REGION) -> BaseClient:
    """A real boto3 client, used only for its `meta` and `exceptions`; never called."""
    session = boto3.session.Session(
        aws_access_key_id="x", aws_secret_access_key="x", region_name=region
    )
    client: BaseClient = session.client(service)  # type: ignore[call-overload]
    return client


@lru_cache(maxsize=4)
def _paginator_model(service: str) -> PaginatorModel:
    return botocore.session.get_session().get_paginator_model(service)


class FakeBedrockError(Exception):
    """Raised by a handler; the dispatcher turns it into the real modelled ClientError."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class FakeJob:
    arn: str
    name: str
    token: str
    request: dict[str, Any]
    base_model_id: str
    created: datetime
    fail_with: str | None
    status: str = "InProgress"
    stages: dict[str, str] = field(
        default_factory=lambda: {
            "validationDetails": "InProgress",
            "dataProcessingDetails": "NotStarted",
            "trainingDetails": "NotStarted",
        }
    )
    polls: int = 0
    modified: datetime | None = None
    end_time: datetime | None = None
    failure_message: str | None = None
    output_model_arn: str | None = None


@dataclass
class TeacherUsage:
    """What a distillation job's teacher answered inside the job."""

    prompts: int = 0
    examples: int = 0  # records that came with an answer: used as given
    input_tokens: int = 0
    output_tokens: int = 0
    truncated: int = 0  # answers cut at maxResponseLengthForInference


@dataclass
class FakeCustomModel:
    arn: str
    name: str
    job: FakeJob
    created: datetime
    status: str = "Creating"
    polls: int = 0


@dataclass
class FakeDeployment:
    arn: str
    name: str
    model_arn: str
    token: str
    created: datetime
    fail_with: str | None
    description: str | None = None
    tags: list[dict[str, str]] = field(default_factory=list)
    status: str = "Creating"
    polls: int = 0
    updated: datetime | None = None
    failure_message: str | None = None
    deleted: bool = False
    update_model_arn: str | None = None  # lifecycle: the model an update swaps in
    update_status: str | None = None  # Updating | UpdateCompleted | UpdateFailed
    update_polls: int = 0


@dataclass
class FakeBatchJob:
    """A batch-inference job (CreateModelInvocationJob)."""

    arn: str
    name: str
    token: str
    request: dict[str, Any]
    submitted: datetime
    fail_with: str | None
    error_records: int
    status: str = "Submitted"
    polls: int = 0
    modified: datetime | None = None
    end_time: datetime | None = None
    message: str | None = None
    total: int | None = None
    processed: int = 0
    succeeded: int = 0
    errors: int = 0


@dataclass
class FakeEvaluationJob:
    arn: str
    name: str
    token: str
    request: dict[str, Any]
    created: datetime
    fail_with: list[str] | None
    status: str = "InProgress"
    polls: int = 0
    modified: datetime | None = None
    failure_messages: list[str] = field(default_factory=list)
    result_keys: list[str] = field(default_factory=list)


Judge = Callable[[str, str, str], float]
"""judge(prompt, referenceResponse, response) -> score on the rating scale."""


def rubric_judge(prompt: str, reference: str, response: str) -> float:
    """A judge that applies the seed's 1-5 rubric to the weights (reasoning not judged)."""
    try:
        expected = json.loads(reference)
        signals = [k for k, v in expected.items() if isinstance(v, int | float)]
        reference_weights = parse_routing_output(reference, signals).weights
    except (ValueError, RouterOutputError, AttributeError):
        return 1.0
    try:
        predicted = parse_routing_output(response, signals).weights
    except RouterOutputError:
        return float(rubric_score(reference_weights, None, signals))
    return float(rubric_score(reference_weights, predicted, signals))


class _FakeClient:
    """What both fakes share: the real `meta`/`exceptions`, dispatch and paginators."""

    service = ""

    def __init__(self, fake: FakeBedrock) -> None:
        real = real_client(self.service, fake.region)
        self.meta = real.meta
        self.exceptions: Any = real.exceptions  # typed Any: attributes are per service
        self._fake = fake

    def _call(
        self,
        method: str,
        params: dict[str, Any],
        handler: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        return self._fake._dispatch(self, method, params, handler)

    def can_paginate(self, operation_name: str) -> bool:
        api = self.meta.method_to_api_mapping.get(operation_name, operation_name)
        try:
            _paginator_model(self.service).get_paginator(api)
        except ValueError:
            return False
        return hasattr(type(self), operation_name)

    def get_paginator(self, operation_name: str) -> Paginator[Any]:
        """botocore's own Paginator driving this fake's list method."""
        if not self.can_paginate(operation_name):
            raise ValueError(f"FakeBedrock cannot paginate {operation_name}")
        api = self.meta.method_to_api_mapping[operation_name]
        config = _paginator_model(self.service).get_paginator(api)
        model = self.meta.service_model.operation_model(api)
        return Paginator(getattr(self, operation_name), config, model)

    def __getattr__(self, name: str) -> Any:
        meta = self.__dict__.get("meta")
        if meta is not None and name in meta.method_to_api_mapping:
            raise NotImplementedError(f"FakeBedrock does not implement {self.service}.{name}")
        raise AttributeError(name)


class FakeBedrockControl(_FakeClient):
    """The `bedrock` client: customization jobs, custom models, deployments, catalog."""

    service = "bedrock"

    def create_model_customization_job(self, **params: Any) -> dict[str, Any]:
        return self._call("create_model_customization_job", params, self._fake._create_job)

    def get_model_customization_job(self, **params: Any) -> dict[str, Any]:
        return self._call("get_model_customization_job", params, self._fake._get_job)

    def list_model_customization_jobs(self, **params: Any) -> dict[str, Any]:
        return self._call("list_model_customization_jobs", params, self._fake._list_jobs)

    def stop_model_customization_job(self, **params: Any) -> dict[str, Any]:
        return self._call("stop_model_customization_job", params, self._fake._stop_job)

    def get_custom_model(self, **params: Any) -> dict[str, Any]:
        return self._call("get_custom_model", params, self._fake._get_model)

    def create_custom_model_deployment(self, **params: Any) -> dict[str, Any]:
        return self._call("create_custom_model_deployment", params, self._fake._create_deployment)

    def get_custom_model_deployment(self, **params: Any) -> dict[str, Any]:
        return self._call("get_custom_model_deployment", params, self._fake._get_deployment)

    def delete_custom_model_deployment(self, **params: Any) -> dict[str, Any]:
        return self._call("delete_custom_model_deployment", params, self._fake._delete_deployment)

    def list_custom_model_deployments(self, **params: Any) -> dict[str, Any]:
        return self._call("list_custom_model_deployments", params, self._fake._list_deployments)

    def list_foundation_models(self, **params: Any) -> dict[str, Any]:
        return self._call("list_foundation_models", params, self._fake._list_foundation_models)

    # batch inference
    def create_model_invocation_job(self, **params: Any) -> dict[str, Any]:
        return self._call("create_model_invocation_job", params, self._fake._create_batch_job)

    def get_model_invocation_job(self, **params: Any) -> dict[str, Any]:
        return self._call("get_model_invocation_job", params, self._fake._get_batch_job)

    def stop_model_invocation_job(self, **params: Any) -> dict[str, Any]:
        return self._call("stop_model_invocation_job", params, self._fake._stop_batch_job)

    def list_model_invocation_jobs(self, **params: Any) -> dict[str, Any]:
        return self._call("list_model_invocation_jobs", params, self._fake._list_batch_jobs)

    # -- lifecycle ---------------------------------------------------------------------

    def update_custom_model_deployment(self, **params: Any) -> dict[str, Any]:
        return self._call("update_custom_model_deployment", params, self._fake._update_deployment)

    def delete_custom_model(self, **params: Any) -> dict[str, Any]:
        return self._call("delete_custom_model", params, self._fake._delete_model)

    def list_custom_models(self, **params: Any) -> dict[str, Any]:
        return self._call("list_custom_models", params, self._fake._list_models)

    def list_tags_for_resource(self, **params: Any) -> dict[str, Any]:
        return self._call("list_tags_for_resource", params, self._fake._list_tags)

    def tag_resource(self, **params: Any) -> dict[str, Any]:
        return self._call("tag_resource", params, self._fake._tag_resource)

    # evaluation jobs
    def create_evaluation_job(self, **params: Any) -> dict[str, Any]:
        return self._call("create_evaluation_job", params, self._fake._create_evaluation_job)

    def get_evaluation_job(self, **params: Any) -> dict[str, Any]:
        return self._call("get_evaluation_job", params, self._fake._get_evaluation_job)


class FakeBedrockRuntime(_FakeClient):
    """The `bedrock-runtime` client: Converse only."""

    service = "bedrock-runtime"

    def converse(self, **params: Any) -> dict[str, Any]:
        return self._call("converse", params, self._fake._converse)


class FakeBedrock:
    """State shared by `.control` (bedrock) and `.runtime` (bedrock-runtime).

    Knobs: `job_polls_to_finish` get calls until a job is Completed (or Failed when
    `fail_job_with` is set at creation), `model_polls_to_active` get_custom_model calls
    until the model is Active, `deployment_polls_to_active` get calls until a deployment
    is Active (or Failed with `fail_deployment_with`). 0 means done at once.
    Lifecycle: `deployment_polls_to_update` get calls until an update is UpdateCompleted (or
    UpdateFailed with `fail_update_with`); `refuse_update_with` makes UpdateCustomModelDeployment
    raise ValidationException with that message (a service that does not allow the update).
    Inspect `calls`, `jobs`, `models`, `deployments` (live), `deleted_deployments`,
    `deleted_models` and `tags` (ARN -> [{key, value}]).


    Concurrency: `sleep_ms` makes every Converse call take that long in wall time;
    `max_in_flight` is the most calls answered at once. Dispatch is thread-safe.
    Evaluation jobs: `evaluation_polls_to_finish` get calls until Completed (or Failed with
    the `fail_evaluation_with` messages); `judge` scores each answer; `s3` (a moto client) is
    where the dataset is read and the results are written.
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        job_polls_to_finish: int = 3,
        deployment_polls_to_active: int = 2,
        model_polls_to_active: int = 1,
        fail_job_with: str | None = None,
        fail_deployment_with: str | None = None,
        batch_polls_to_finish: int = 3,
        fail_batch_with: str | None = None,
        batch_error_records: int = 0,
        s3: Any = None,
        deployment_polls_to_update: int = 2,
        fail_update_with: str | None = None,
        refuse_update_with: str | None = None,
        latency_ms: int = 300,
        sleep_ms: float = 0.0,
        evaluation_polls_to_finish: int = 2,
        fail_evaluation_with: list[str] | None = None,
        judge: Judge = rubric_judge,
        region: str = REGION,
        account_id: str = ACCOUNT_ID,
    ) -> None:
        self.responder: Responder = responder or default_responder
        self.job_polls_to_finish = job_polls_to_finish
        self.deployment_polls_to_active = deployment_polls_to_active
        self.model_polls_to_active = model_polls_to_active
        self.fail_job_with = fail_job_with
        self.fail_deployment_with = fail_deployment_with
        self.batch_polls_to_finish = batch_polls_to_finish
        self.fail_batch_with = fail_batch_with
        self.batch_error_records = batch_error_records
        self.s3 = s3  # a boto3 S3 client (moto): batch jobs read their input and write output
        self.deployment_polls_to_update = deployment_polls_to_update
        self.fail_update_with = fail_update_with
        self.refuse_update_with = refuse_update_with
        self.latency_ms = latency_ms
        self.region = region
        self.account_id = account_id
        self.foundation_models: dict[str, FoundationModel] = {m.model_id: m for m in NOVA_MODELS}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.jobs: dict[str, FakeJob] = {}
        self.models: dict[str, FakeCustomModel] = {}
        self.deployments: dict[str, FakeDeployment] = {}
        self.deleted_deployments: dict[str, FakeDeployment] = {}
        self.teacher_in_job: dict[str, TeacherUsage] = {}
        self.read_object: Callable[[str], bytes | None] | None = None
        """Reads an s3:// URI (tests wire it to moto), so a job can read its training file."""
        self.batch_jobs: dict[str, FakeBatchJob] = {}
        self._batch_tokens: dict[str, str] = {}
        self.deleted_models: dict[str, FakeCustomModel] = {}
        self.tags: dict[str, list[dict[str, str]]] = {}
        self._job_tokens: dict[str, str] = {}
        self._deployment_tokens: dict[str, str] = {}
        self._injected: dict[str, list[tuple[str, str]]] = {}
        self._now = START
        # evaluation jobs and concurrency
        self.sleep_ms = sleep_ms  # every Converse call really takes this long (wall time)
        self.evaluation_polls_to_finish = evaluation_polls_to_finish
        self.fail_evaluation_with = fail_evaluation_with
        self.judge = judge
        # batch and evaluation jobs read their input and write their output through `s3`
        self.evaluation_jobs: dict[str, FakeEvaluationJob] = {}
        self._evaluation_tokens: dict[str, str] = {}
        self.in_flight = 0  # Converse calls being answered right now
        self.max_in_flight = 0  # the most seen at once
        self._lock = threading.RLock()
        self.control = FakeBedrockControl(self)
        self.runtime = FakeBedrockRuntime(self)

    # -- helpers for tests -------------------------------------------------------------

    def client(self, service_name: str, *args: Any, **kwargs: Any) -> _FakeClient:
        """Drop-in for `boto3.client` / `session.client` (other arguments ignored)."""
        if service_name == "bedrock":
            return self.control
        if service_name == "bedrock-runtime":
            return self.runtime
        raise ValueError(f"FakeBedrock has no {service_name} client")

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        """The parameters of every call to one boto3 method, in order."""
        return [params for name, params in self.calls if name == method]

    def throttle(self, operation: str, times: int = 1) -> None:
        """The next `times` calls of `operation` (a boto3 method name) raise Throttling."""
        self.inject_error(operation, "ThrottlingException", times, "Rate exceeded")

    def inject_error(
        self, operation: str, code: str, times: int = 1, message: str | None = None
    ) -> None:
        """The next `times` calls of `operation` raise `code` (after request validation)."""
        known = {*self.control.meta.method_to_api_mapping, *self.runtime.meta.method_to_api_mapping}
        if operation not in known:
            raise ValueError(f"{operation!r} is not a bedrock or bedrock-runtime method")
        queue = self._injected.setdefault(operation, [])
        queue.extend([(code, message or f"injected {code}")] * times)

    # -- dispatch ----------------------------------------------------------------------

    def _dispatch(
        self,
        client: _FakeClient,
        method: str,
        params: dict[str, Any],
        handler: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        service_model = client.meta.service_model
        operation = client.meta.method_to_api_mapping[method]
        violations = request_violations(service_model, operation, params)
        # Converse is stateless here (the responder is pure): answered outside the lock, so
        # concurrent calls really overlap; everything else is serialised.
        exclusive = self._lock if method != "converse" else threading.Lock()
        with exclusive:
            with self._lock:
                self.calls.append((method, copy.deepcopy(params)))
                self._now += timedelta(minutes=1)
                metadata = self._metadata(200)
                if violations:
                    raise ParamValidationError(report="\n".join(violations))
                request = copy.deepcopy(params)
                operation_model = service_model.operation_model(operation)
                for member in operation_model.idempotent_members:  # botocore: uuid4
                    request.setdefault(member, self._auto_token())
                queue = self._injected.get(method)
                injected = queue.pop(0) if queue else None
            try:
                if injected is not None:
                    raise FakeBedrockError(*injected)
                response = copy.deepcopy(handler(request))  # callers cannot mutate fake state
            except FakeBedrockError as error:
                with self._lock:
                    failure = self._client_error(client, operation, error.code, error.message)
                raise failure from None
        problems = response_violations(service_model, operation, response)
        if problems:
            raise AssertionError(f"FakeBedrock built an invalid {operation} response: {problems}")
        response["ResponseMetadata"] = metadata
        return response

    def _client_error(
        self, client: _FakeClient, operation: str, code: str, message: str
    ) -> Exception:
        modelled = {
            shape.name: shape.metadata["error"]["httpStatusCode"]
            for shape in client.meta.service_model.operation_model(operation).error_shapes
        }
        status = modelled.get(code, DEFAULT_HTTP_STATUS.get(code, 400))
        error_class: type[Exception] = client.exceptions.from_code(code)
        response = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": self._metadata(status, code),
            "message": message,
        }
        error: Exception = error_class(response, operation)
        return error

    def _auto_token(self) -> str:
        digest = hashlib.sha256(f"auto-token-{len(self.calls)}".encode()).hexdigest()
        return str(uuid.UUID(digest[:32]))

    def _metadata(self, status: int, error_code: str | None = None) -> dict[str, Any]:
        digest = hashlib.sha256(f"request-{len(self.calls)}".encode()).hexdigest()
        request_id = str(uuid.UUID(digest[:32]))
        headers = {"x-amzn-requestid": request_id, "content-type": "application/json"}
        if error_code:
            headers["x-amzn-errortype"] = error_code
        return {
            "RequestId": request_id,
            "HTTPStatusCode": status,
            "HTTPHeaders": headers,
            "RetryAttempts": 0,
        }

    # -- ARNs and lookups --------------------------------------------------------------

    def _arn(self, resource: str) -> str:
        return f"arn:aws:bedrock:{self.region}:{self.account_id}:{resource}"

    def _foundation_arn(self, model_id: str) -> str:
        return f"arn:aws:bedrock:{self.region}::foundation-model/{model_id}"

    @staticmethod
    def _strip_foundation_arn(identifier: str) -> str:
        marker = ":foundation-model/"
        return identifier.split(marker, 1)[1] if marker in identifier else identifier

    def _find_job(self, identifier: str) -> FakeJob:
        job = self.jobs.get(identifier) or next(
            (job for job in self.jobs.values() if job.name == identifier), None
        )
        if job is None:
            raise FakeBedrockError(
                "ResourceNotFoundException", f"Could not find model customization job {identifier}"
            )
        return job

    def _find_model(self, identifier: str) -> FakeCustomModel:
        model = self.models.get(identifier) or next(
            (model for model in self.models.values() if model.name == identifier), None
        )
        if model is None:
            raise FakeBedrockError(
                "ResourceNotFoundException", f"Could not find custom model {identifier}"
            )
        return model

    def _find_deployment(self, identifier: str) -> FakeDeployment:
        deployment = self.deployments.get(identifier) or next(
            (d for d in self.deployments.values() if d.name == identifier), None
        )
        if deployment is None:
            raise FakeBedrockError(
                "ResourceNotFoundException",
                f"Could not find custom model deployment {identifier}",
            )
        return deployment

    # -- customization jobs ------------------------------------------------------------

    def _create_job(self, request: dict[str, Any]) -> dict[str, Any]:
        token = request["clientRequestToken"]
        if token in self._job_tokens:  # "Bedrock ignores the request, but does not return an error"
            return {"jobArn": self._job_tokens[token]}
        name = request["jobName"]
        if any(job.name == name for job in self.jobs.values()):
            raise FakeBedrockError("ValidationException", f"Job name {name} already exists.")
        customization = request.get("customizationType", "FINE_TUNING")
        base_id = self._strip_foundation_arn(request["baseModelIdentifier"])
        base = self.foundation_models.get(base_id)
        if base is None:
            raise FakeBedrockError(
                "ValidationException", f"The base model {base_id} is not a valid base model."
            )
        if customization not in base.customizations:
            raise FakeBedrockError(
                "ValidationException",
                f"The base model {base_id} does not support {customization} customization.",
            )
        if customization == "DISTILLATION":
            self._check_teacher(request)
        elif "customizationConfig" in request:
            raise FakeBedrockError(
                "ValidationException",
                f"customizationConfig is not valid for a {customization} job.",
            )
        if customization == "FINE_TUNING":
            self._check_fine_tuning(request.get("hyperParameters", {}))
        training = request["trainingDataConfig"]
        if "s3Uri" not in training and "invocationLogsConfig" not in training:
            raise FakeBedrockError(
                "ValidationException", "trainingDataConfig needs an s3Uri or invocationLogsConfig."
            )
        arn = self._arn(f"model-customization-job/{base_id}/{suffix_for(token)}")
        job = FakeJob(
            arn=arn,
            name=name,
            token=token,
            request=request,
            base_model_id=base_id,
            created=self._now,
            modified=self._now,
            fail_with=self.fail_job_with,
        )
        self.jobs[arn] = job
        self.tags[arn] = list(request.get("jobTags", []))
        self._job_tokens[token] = arn
        if self.job_polls_to_finish <= 0:
            self._finish_job(job)
        return {"jobArn": arn}

    @staticmethod
    def _check_fine_tuning(hyper: Mapping[str, str]) -> None:
        """Nova's hyper-parameters and ranges (bedrock/latest/userguide/cm-hp-nova-mm.html)."""
        ranges = {
            "epochCount": (1, 5),
            "learningRate": (1e-6, 1e-4),
            "learningRateWarmupSteps": (0, 100),
        }
        for key, value in hyper.items():
            if key not in ranges:
                raise FakeBedrockError("ValidationException", f"Unknown hyperparameter {key}.")
            low, high = ranges[key]
            try:
                number = float(value)
            except ValueError:
                raise FakeBedrockError(
                    "ValidationException", f"Hyperparameter {key}={value!r} is not a number."
                ) from None
            if not low <= number <= high:
                raise FakeBedrockError(
                    "ValidationException",
                    f"Hyperparameter {key}={value} is outside [{low}, {high}].",
                )

    def _check_teacher(self, request: dict[str, Any]) -> None:
        config = request.get("customizationConfig", {}).get("distillationConfig")
        if config is None:
            raise FakeBedrockError(
                "ValidationException",
                "A DISTILLATION job needs customizationConfig.distillationConfig.",
            )
        teacher = config["teacherModelConfig"]["teacherModelIdentifier"]
        teacher_id = self._strip_foundation_arn(teacher).rsplit("inference-profile/", 1)[-1]
        for prefix in PROFILE_PREFIXES:
            if teacher_id.startswith(prefix):
                teacher_id = teacher_id[len(prefix) :]
                break
        if teacher_id not in TEACHER_MODEL_IDS:
            raise FakeBedrockError(
                "ValidationException", f"The teacher model {teacher} is not supported."
            )

    def _advance_job(self, job: FakeJob) -> None:
        if job.status == "Stopping":
            job.status = "Stopped"
            job.stages = {
                stage: "Stopped" if status in ("InProgress", "Stopping") else status
                for stage, status in job.stages.items()
            }
            job.modified = job.end_time = self._now
            return
        if job.status != "InProgress":
            return
        job.polls += 1
        job.modified = self._now
        if job.polls >= self.job_polls_to_finish:
            self._finish_job(job)
            return
        current = min(len(JOB_STAGES) - 1, job.polls * len(JOB_STAGES) // self.job_polls_to_finish)
        for index, stage in enumerate(JOB_STAGES):
            if index < current:
                job.stages[stage] = "Completed"
            elif index == current:
                job.stages[stage] = "InProgress"
            else:
                job.stages[stage] = "NotStarted"

    def _finish_job(self, job: FakeJob) -> None:
        job.modified = job.end_time = self._now
        if job.fail_with is not None:
            job.status = "Failed"
            job.failure_message = job.fail_with
            job.stages = {
                "validationDetails": "Failed",
                "dataProcessingDetails": "NotStarted",
                "trainingDetails": "NotStarted",
            }
            return
        job.status = "Completed"
        job.stages = dict.fromkeys(JOB_STAGES, "Completed")
        self._bill_teacher_in_job(job)
        model_arn = self._arn(f"custom-model/{job.base_model_id}/{suffix_for(job.token, 'model:')}")
        job.output_model_arn = model_arn
        model = FakeCustomModel(
            arn=model_arn, name=job.request["customModelName"], job=job, created=self._now
        )
        if self.model_polls_to_active <= 0:
            model.status = "Active"
        self.models[model_arn] = model
        self.tags[model_arn] = list(job.request.get("customModelTags", []))

    # -- teacher inference inside a distillation job ------------------------------------------

    def _bill_teacher_in_job(self, job: FakeJob) -> None:
        """A DISTILLATION job invokes its teacher for every training prompt without an answer
        (the service generates the responses; given ones are examples). Counted per job in
        `teacher_in_job` so tests can see what the job's teacher is billed."""
        request = job.request
        if request.get("customizationType") != "DISTILLATION":
            return
        uri = request["trainingDataConfig"].get("s3Uri")
        data = self.read_object(uri) if uri and self.read_object else None
        if data is None:
            return
        config = request["customizationConfig"]["distillationConfig"]["teacherModelConfig"]
        cap = config.get("maxResponseLengthForInference", 1000)
        teacher = config["teacherModelIdentifier"]
        usage = TeacherUsage()
        for line in data.decode().splitlines():
            record = json.loads(line)
            messages = record["messages"]
            if len(messages) > 1:
                usage.examples += 1
                continue
            system = "\n".join(b["text"] for b in record.get("system", []))
            user = _text_of(messages[0])
            quoted = extract_quoted_query(user)
            answer = self.responder(teacher, system, user if quoted is None else quoted)
            usage.prompts += 1
            usage.input_tokens += token_count(system + user)
            usage.output_tokens += min(cap, token_count(answer))
            usage.truncated += token_count(answer) > cap
        self.teacher_in_job[job.arn] = usage

    def _status_details(self, job: FakeJob) -> dict[str, Any]:
        modified = job.modified or job.created
        return {
            stage: {"status": status, "creationTime": job.created, "lastModifiedTime": modified}
            for stage, status in job.stages.items()
        }

    def _get_job(self, request: dict[str, Any]) -> dict[str, Any]:
        job = self._find_job(request["jobIdentifier"])
        self._advance_job(job)
        asked = job.request
        out: dict[str, Any] = {
            "jobArn": job.arn,
            "jobName": job.name,
            "outputModelName": asked["customModelName"],
            "clientRequestToken": job.token,
            "roleArn": asked["roleArn"],
            "status": job.status,
            "statusDetails": self._status_details(job),
            "creationTime": job.created,
            "lastModifiedTime": job.modified or job.created,
            "baseModelArn": self._foundation_arn(job.base_model_id),
            "trainingDataConfig": asked["trainingDataConfig"],
            "validationDataConfig": asked.get("validationDataConfig", {"validators": []}),
            "outputDataConfig": asked["outputDataConfig"],
            "customizationType": asked.get("customizationType", "FINE_TUNING"),
        }
        for key in ("hyperParameters", "vpcConfig", "customizationConfig"):
            if key in asked:
                out[key] = asked[key]
        if job.end_time is not None:
            out["endTime"] = job.end_time
        if job.failure_message is not None:
            out["failureMessage"] = job.failure_message
        if job.output_model_arn is not None:
            out["outputModelArn"] = job.output_model_arn
            out["trainingMetrics"] = {"trainingLoss": 0.125}
        return out

    def _list_jobs(self, request: dict[str, Any]) -> dict[str, Any]:
        jobs = [
            job
            for job in self.jobs.values()
            if request.get("nameContains", "") in job.name
            and request.get("statusEquals", job.status) == job.status
            and _created_between(job.created, request, "creationTimeAfter", "creationTimeBefore")
        ]
        jobs.sort(key=lambda job: job.created, reverse=request.get("sortOrder") != "Ascending")
        page, next_token = _page(jobs, request)
        summaries = []
        for job in page:
            summary: dict[str, Any] = {
                "jobArn": job.arn,
                "baseModelArn": self._foundation_arn(job.base_model_id),
                "jobName": job.name,
                "status": job.status,
                "statusDetails": self._status_details(job),
                "lastModifiedTime": job.modified or job.created,
                "creationTime": job.created,
                "customModelName": job.request["customModelName"],
                "customizationType": job.request.get("customizationType", "FINE_TUNING"),
            }
            if job.end_time is not None:
                summary["endTime"] = job.end_time
            if job.output_model_arn is not None:
                summary["customModelArn"] = job.output_model_arn
            summaries.append(summary)
        out: dict[str, Any] = {"modelCustomizationJobSummaries": summaries}
        if next_token:
            out["nextToken"] = next_token
        return out

    def _stop_job(self, request: dict[str, Any]) -> dict[str, Any]:
        job = self._find_job(request["jobIdentifier"])
        if job.status != "InProgress":
            raise FakeBedrockError(
                "ConflictException", f"Job {job.name} is {job.status} and cannot be stopped."
            )
        job.status = "Stopping"
        job.stages = {
            stage: "Stopping" if status == "InProgress" else status
            for stage, status in job.stages.items()
        }
        job.modified = self._now
        return {}

    # -- custom models -----------------------------------------------------------------

    def _get_model(self, request: dict[str, Any]) -> dict[str, Any]:
        model = self._find_model(request["modelIdentifier"])
        if model.status == "Creating":
            model.polls += 1
            if model.polls >= self.model_polls_to_active:
                model.status = "Active"
        asked = model.job.request
        out: dict[str, Any] = {
            "modelArn": model.arn,
            "modelName": model.name,
            "jobName": model.job.name,
            "jobArn": model.job.arn,
            "baseModelArn": self._foundation_arn(model.job.base_model_id),
            "customizationType": asked.get("customizationType", "FINE_TUNING"),
            "trainingDataConfig": asked["trainingDataConfig"],
            "outputDataConfig": asked["outputDataConfig"],
            "trainingMetrics": {"trainingLoss": 0.125},
            "creationTime": model.created,
            "modelStatus": model.status,
        }
        for key in ("hyperParameters", "validationDataConfig", "customizationConfig"):
            if key in asked:
                out[key] = asked[key]
        return out

    # -- deployments -------------------------------------------------------------------

    def _create_deployment(self, request: dict[str, Any]) -> dict[str, Any]:
        token = request["clientRequestToken"]
        if token in self._deployment_tokens:
            return {"customModelDeploymentArn": self._deployment_tokens[token]}
        model_arn = request["modelArn"]
        model = self.models.get(model_arn)
        if model is None:
            raise FakeBedrockError(
                "ResourceNotFoundException", f"Could not find custom model {model_arn}"
            )
        if model.status != "Active":
            raise FakeBedrockError(
                "ValidationException",
                f"The custom model {model_arn} is {model.status}; it must be Active to deploy.",
            )
        name = request["modelDeploymentName"]
        if any(d.name == name for d in self.deployments.values()):
            raise FakeBedrockError(
                "ValidationException", f"A deployment named {name} already exists."
            )
        arn = self._arn(f"custom-model-deployment/{suffix_for(token)}")
        deployment = FakeDeployment(
            arn=arn,
            name=name,
            model_arn=model_arn,
            token=token,
            created=self._now,
            updated=self._now,
            fail_with=self.fail_deployment_with,
            description=request.get("description"),
            tags=request.get("tags", []),
        )
        self.deployments[arn] = deployment
        self.tags[arn] = list(request.get("tags", []))
        self._deployment_tokens[token] = arn
        if self.deployment_polls_to_active <= 0:
            self._finish_deployment(deployment)
        return {"customModelDeploymentArn": arn}

    def _finish_deployment(self, deployment: FakeDeployment) -> None:
        deployment.updated = self._now
        if deployment.fail_with is not None:
            deployment.status = "Failed"
            deployment.failure_message = deployment.fail_with
        else:
            deployment.status = "Active"

    def _get_deployment(self, request: dict[str, Any]) -> dict[str, Any]:
        deployment = self._find_deployment(request["customModelDeploymentIdentifier"])
        if deployment.status == "Creating":
            deployment.polls += 1
            deployment.updated = self._now
            if deployment.polls >= self.deployment_polls_to_active:
                self._finish_deployment(deployment)
        self._advance_update(deployment)
        out: dict[str, Any] = {
            "customModelDeploymentArn": deployment.arn,
            "modelDeploymentName": deployment.name,
            "modelArn": deployment.model_arn,
            "createdAt": deployment.created,
            "status": deployment.status,
            "lastUpdatedAt": deployment.updated or deployment.created,
        }
        if deployment.description is not None:
            out["description"] = deployment.description
        if deployment.failure_message is not None:
            out["failureMessage"] = deployment.failure_message
        if deployment.update_model_arn is not None and deployment.update_status is not None:
            out["updateDetails"] = {
                "modelArn": deployment.update_model_arn,
                "updateStatus": deployment.update_status,
            }
        return out

    def _delete_deployment(self, request: dict[str, Any]) -> dict[str, Any]:
        deployment = self._find_deployment(request["customModelDeploymentIdentifier"])
        deployment.deleted = True
        del self.deployments[deployment.arn]
        self.tags.pop(deployment.arn, None)
        self.deleted_deployments[deployment.arn] = deployment
        return {}

    def _list_deployments(self, request: dict[str, Any]) -> dict[str, Any]:
        found = [
            d
            for d in self.deployments.values()
            if request.get("nameContains", "") in d.name
            and request.get("statusEquals", d.status) == d.status
            and request.get("modelArnEquals", d.model_arn) == d.model_arn
            and _created_between(d.created, request, "createdAfter", "createdBefore")
        ]
        found.sort(key=lambda d: d.created, reverse=request.get("sortOrder") != "Ascending")
        page, next_token = _page(found, request)
        summaries = []
        for d in page:
            summary: dict[str, Any] = {
                "customModelDeploymentArn": d.arn,
                "customModelDeploymentName": d.name,
                "modelArn": d.model_arn,
                "createdAt": d.created,
                "status": d.status,
                "lastUpdatedAt": d.updated or d.created,
            }
            if d.failure_message is not None:
                summary["failureMessage"] = d.failure_message
            summaries.append(summary)
        out: dict[str, Any] = {"modelDeploymentSummaries": summaries}
        if next_token:
            out["nextToken"] = next_token
        return out

    # -- lifecycle: deployment updates, model deletion, model listing, tags -------------

    def _update_deployment(self, request: dict[str, Any]) -> dict[str, Any]:
        deployment = self._find_deployment(request["customModelDeploymentIdentifier"])
        if self.refuse_update_with is not None:
            raise FakeBedrockError("ValidationException", self.refuse_update_with)
        if deployment.status != "Active":
            raise FakeBedrockError(
                "ValidationException",
                f"The deployment {deployment.arn} is {deployment.status}; only an Active "
                "deployment can be updated.",
            )
        if deployment.update_status == "Updating":
            raise FakeBedrockError(
                "ValidationException", f"The deployment {deployment.arn} is already updating."
            )
        model_arn = request["modelArn"]
        model = self.models.get(model_arn)
        if model is None:
            raise FakeBedrockError(
                "ResourceNotFoundException", f"Could not find custom model {model_arn}"
            )
        if model.status != "Active":
            raise FakeBedrockError(
                "ValidationException",
                f"The custom model {model_arn} is {model.status}; it must be Active to deploy.",
            )
        deployment.update_model_arn = model_arn
        deployment.update_status = "Updating"
        deployment.update_polls = 0
        deployment.updated = self._now
        if self.deployment_polls_to_update <= 0:
            self._finish_update(deployment)
        return {"customModelDeploymentArn": deployment.arn}

    def _advance_update(self, deployment: FakeDeployment) -> None:
        """An update keeps the deployment Active and serving the old model until it ends."""
        if deployment.update_status != "Updating":
            return
        deployment.update_polls += 1
        deployment.updated = self._now
        if deployment.update_polls >= self.deployment_polls_to_update:
            self._finish_update(deployment)

    def _finish_update(self, deployment: FakeDeployment) -> None:
        deployment.updated = self._now
        if self.fail_update_with is not None:
            deployment.update_status = "UpdateFailed"
            deployment.failure_message = self.fail_update_with
            return
        assert deployment.update_model_arn is not None
        deployment.model_arn = deployment.update_model_arn
        deployment.update_status = "UpdateCompleted"

    def _delete_model(self, request: dict[str, Any]) -> dict[str, Any]:
        model = self._find_model(request["modelIdentifier"])
        users = [
            d.arn
            for d in self.deployments.values()
            if model.arn
            in (d.model_arn, d.update_model_arn if d.update_status == "Updating" else None)
        ]
        if users:
            raise FakeBedrockError(
                "ConflictException",
                f"The custom model {model.arn} is used by deployment {users[0]}; delete the "
                "deployment first.",
            )
        del self.models[model.arn]
        self.deleted_models[model.arn] = model
        self.tags.pop(model.arn, None)
        return {}

    def _list_models(self, request: dict[str, Any]) -> dict[str, Any]:
        found = [
            m
            for m in self.models.values()
            if request.get("nameContains", "") in m.name
            and request.get("modelStatus", m.status) == m.status
            and _created_between(m.created, request, "creationTimeAfter", "creationTimeBefore")
        ]
        found.sort(key=lambda m: m.created, reverse=request.get("sortOrder") != "Ascending")
        page, next_token = _page(found, request)
        summaries = [
            {
                "modelArn": m.arn,
                "modelName": m.name,
                "creationTime": m.created,
                "baseModelArn": self._foundation_arn(m.job.base_model_id),
                "baseModelName": m.job.base_model_id.split(":", 1)[0],
                "customizationType": m.job.request.get("customizationType", "FINE_TUNING"),
                "ownerAccountId": self.account_id,
                "modelStatus": m.status,
            }
            for m in page
        ]
        out: dict[str, Any] = {"modelSummaries": summaries}
        if next_token:
            out["nextToken"] = next_token
        return out

    def _tagged(self, arn: str) -> list[dict[str, str]]:
        if arn not in self.tags:
            raise FakeBedrockError("ResourceNotFoundException", f"Could not find resource {arn}")
        return self.tags[arn]

    def _list_tags(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"tags": self._tagged(request["resourceARN"])}

    def _tag_resource(self, request: dict[str, Any]) -> dict[str, Any]:
        merged = {t["key"]: t["value"] for t in self._tagged(request["resourceARN"])}
        merged.update({t["key"]: t["value"] for t in request["tags"]})
        if len(merged) > 200:
            raise FakeBedrockError("TooManyTagsException", "A resource takes at most 200 tags.")
        self.tags[request["resourceARN"]] = [{"key": k, "value": v} for k, v in merged.items()]
        return {}

    # -- catalog -----------------------------------------------------------------------

    def _list_foundation_models(self, request: dict[str, Any]) -> dict[str, Any]:
        provider = request.get("byProvider")
        customization = request.get("byCustomizationType")
        modality = request.get("byOutputModality")
        inference = request.get("byInferenceType")
        summaries = [
            {
                "modelArn": self._foundation_arn(model.model_id),
                "modelId": model.model_id,
                "modelName": model.name,
                "providerName": "Amazon",
                "inputModalities": list(model.input_modalities),
                "outputModalities": ["TEXT"],
                "responseStreamingSupported": True,
                "customizationsSupported": list(model.customizations),
                "inferenceTypesSupported": list(model.inference_types),
                "modelLifecycle": {"status": "ACTIVE"},
            }
            for model in self.foundation_models.values()
            if (provider is None or provider.lower() == "amazon")
            and (customization is None or customization in model.customizations)
            and (modality is None or modality == "TEXT")
            and (inference is None or inference in model.inference_types)
        ]
        return {"modelSummaries": summaries}

    # -- batch inference -------------------------------------------------------------
    # Submitted -> Validating (input read from S3: it must exist, parse, and hold at least
    # BATCH_MIN_RECORDS records) -> InProgress -> Completed, or PartiallyCompleted when some
    # records fail (`batch_error_records`: the first N), or Failed (`fail_batch_with`), one step
    # per get call over `batch_polls_to_finish` calls. The output is written, like the real
    # service (layout unverified), to `<output s3Uri><job id>/<input file name>.out`: one line
    # per record with recordId, modelInput and modelOutput (a Converse response) or error.

    def _s3_location(self, uri: str) -> tuple[str, str]:
        if self.s3 is None:
            raise AssertionError("FakeBedrock needs s3= (a boto3 S3 client) for batch jobs")
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return bucket, key

    def _check_batch_model(self, model_id: str) -> None:
        # A custom-model-deployment ARN never gets here: the ModelId pattern of the service
        # model rejects it (request validation). A profile-only model needs its profile.
        self._check_invocable(model_id)

    def _create_batch_job(self, request: dict[str, Any]) -> dict[str, Any]:
        token = request["clientRequestToken"]
        if token in self._batch_tokens:
            return {"jobArn": self._batch_tokens[token]}
        name = request["jobName"]
        if any(job.name == name for job in self.batch_jobs.values()):
            raise FakeBedrockError("ConflictException", f"A job named {name} already exists.")
        self._check_batch_model(request["modelId"])
        self._s3_location(request["inputDataConfig"]["s3InputDataConfig"]["s3Uri"])
        arn = self._arn(f"model-invocation-job/{suffix_for(token, 'batch:')}")
        job = FakeBatchJob(
            arn=arn,
            name=name,
            token=token,
            request=request,
            submitted=self._now,
            modified=self._now,
            fail_with=self.fail_batch_with,
            error_records=self.batch_error_records,
        )
        self.batch_jobs[arn] = job
        self._batch_tokens[token] = arn
        return {"jobArn": arn}

    def _find_batch_job(self, identifier: str) -> FakeBatchJob:
        job = self.batch_jobs.get(identifier) or next(
            (j for j in self.batch_jobs.values() if j.arn.endswith("/" + identifier)), None
        )
        if job is None:
            raise FakeBedrockError(
                "ResourceNotFoundException", f"Could not find model invocation job {identifier}"
            )
        return job

    def _batch_input(self, job: FakeBatchJob) -> list[dict[str, Any]] | str:
        """The input records, or why the job fails validation."""
        uri = job.request["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
        bucket, key = self._s3_location(uri)
        try:
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        except Exception as error:  # moto's NoSuchKey / NoSuchBucket
            return f"Unable to read the input {uri}: {error}"
        records = []
        for number, line in enumerate(body.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                return f"Line {number} of {uri} is not valid JSON."
            if not isinstance(record, dict) or "modelInput" not in record:
                return f"Line {number} of {uri} has no modelInput."
            records.append(record)
        if len(records) < BATCH_MIN_RECORDS:
            return (
                f"The input has {len(records)} records, fewer than the minimum of "
                f"{BATCH_MIN_RECORDS} records per batch inference job."
            )
        return records

    def _advance_batch_job(self, job: FakeBatchJob) -> None:
        job.modified = self._now
        if job.status == "Stopping":
            job.status, job.end_time = "Stopped", self._now
            return
        if job.status not in ("Submitted", "Validating", "InProgress"):
            return
        job.polls += 1
        if job.status == "Submitted":
            job.status = "Validating"
            records = self._batch_input(job)
            if isinstance(records, str):
                job.status, job.message, job.end_time = "Failed", records, self._now
                return
            job.total = len(records)
        if job.polls >= self.batch_polls_to_finish:
            self._finish_batch_job(job)
        elif job.polls > 1:
            job.status = "InProgress"

    def _finish_batch_job(self, job: FakeBatchJob) -> None:
        job.end_time = self._now
        if job.fail_with is not None:
            job.status, job.message = "Failed", job.fail_with
            return
        records = self._batch_input(job)
        assert not isinstance(records, str), records
        model_id = job.request["modelId"]
        lines = []
        for index, record in enumerate(records):
            out: dict[str, Any] = {"recordId": record.get("recordId"), **record}
            if index < job.error_records:
                out["error"] = {"errorCode": 500, "errorMessage": "Internal server error"}
            else:
                try:
                    body = {**record["modelInput"], "modelId": model_id}
                    out["modelOutput"] = self._converse(body)
                except FakeBedrockError as error:
                    out["error"] = {"errorCode": 400, "errorMessage": error.message}
            job.errors += "error" in out
            lines.append(json.dumps(out))
        job.processed = len(records)
        job.succeeded = job.processed - job.errors
        job.status = "PartiallyCompleted" if job.errors else "Completed"
        input_uri = job.request["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
        output_uri = job.request["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]
        bucket, prefix = self._s3_location(output_uri.rstrip("/") + "/")
        key = f"{prefix}{job.arn.rsplit('/', 1)[-1]}/{input_uri.rsplit('/', 1)[-1]}.out"
        self.s3.put_object(Bucket=bucket, Key=key, Body="\n".join(lines).encode() + b"\n")

    def _describe_batch_job(self, job: FakeBatchJob) -> dict[str, Any]:
        asked = job.request
        out: dict[str, Any] = {
            "jobArn": job.arn,
            "jobName": job.name,
            "modelId": asked["modelId"],
            "clientRequestToken": job.token,
            "roleArn": asked["roleArn"],
            "status": job.status,
            "submitTime": job.submitted,
            "lastModifiedTime": job.modified or job.submitted,
            "inputDataConfig": asked["inputDataConfig"],
            "outputDataConfig": asked["outputDataConfig"],
            "timeoutDurationInHours": asked.get("timeoutDurationInHours", 24),
            "jobExpirationTime": job.submitted
            + timedelta(hours=asked.get("timeoutDurationInHours", 24)),
            "modelInvocationType": asked.get("modelInvocationType", "InvokeModel"),
            "processedRecordCount": job.processed,
            "successRecordCount": job.succeeded,
            "errorRecordCount": job.errors,
        }
        if job.total is not None:
            out["totalRecordCount"] = job.total
        if job.message is not None:
            out["message"] = job.message
        if job.end_time is not None:
            out["endTime"] = job.end_time
        return out

    def _get_batch_job(self, request: dict[str, Any]) -> dict[str, Any]:
        job = self._find_batch_job(request["jobIdentifier"])
        self._advance_batch_job(job)
        return self._describe_batch_job(job)

    def _stop_batch_job(self, request: dict[str, Any]) -> dict[str, Any]:
        job = self._find_batch_job(request["jobIdentifier"])
        if job.status not in ("Submitted", "Validating", "Scheduled", "InProgress"):
            raise FakeBedrockError(
                "ConflictException", f"Job {job.name} is {job.status} and cannot be stopped."
            )
        job.status, job.modified = "Stopping", self._now
        return {}

    def _list_batch_jobs(self, request: dict[str, Any]) -> dict[str, Any]:
        jobs = [
            job
            for job in self.batch_jobs.values()
            if request.get("nameContains", "") in job.name
            and request.get("statusEquals", job.status) == job.status
            and _created_between(job.submitted, request, "submitTimeAfter", "submitTimeBefore")
        ]
        jobs.sort(key=lambda job: job.submitted, reverse=request.get("sortOrder") != "Ascending")
        page, next_token = _page(jobs, request)
        summaries = [self._describe_batch_job(job) for job in page]
        out: dict[str, Any] = {"invocationJobSummaries": summaries}
        if next_token:
            out["nextToken"] = next_token
        return out

    # -- runtime -----------------------------------------------------------------------

    def _converse(self, request: dict[str, Any]) -> dict[str, Any]:
        model_id = request["modelId"]
        messages = request.get("messages", [])
        if not messages or messages[0]["role"] != "user":
            raise FakeBedrockError(
                "ValidationException", "A conversation must start with a user message."
            )
        for previous, message in itertools.pairwise(messages):
            if message["role"] == previous["role"] or message["role"] == "system":
                raise FakeBedrockError(
                    "ValidationException",
                    "A conversation must alternate between user and assistant roles.",
                )
        self._check_invocable(model_id)
        system_text = "\n".join(
            block["text"] for block in request.get("system", []) if "text" in block
        )
        user_turns = [m for m in messages if m["role"] == "user"]
        user_text = _text_of(user_turns[-1])
        prompt_text = system_text + "".join(_text_of(m) for m in messages)
        # A teacher-prompted call quotes the query (prompts.teacher_user_message): like the real
        # model, the responder answers the query, not the wrapper around it.
        quoted = extract_quoted_query(user_text)
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.sleep_ms > 0:
                time.sleep(self.sleep_ms / 1000)  # the simulated model time
            answer = self.responder(model_id, system_text, user_text if quoted is None else quoted)
        finally:
            with self._lock:
                self.in_flight -= 1
        stop_reason = "end_turn"
        config = request.get("inferenceConfig", {})
        cuts = [answer.find(s) for s in config.get("stopSequences", []) if s and s in answer]
        if cuts:
            answer, stop_reason = answer[: min(cuts)], "stop_sequence"
        max_tokens = config.get("maxTokens")
        if max_tokens is not None and token_count(answer) > max_tokens:
            answer, stop_reason = answer[: max_tokens * 4], "max_tokens"
        input_tokens, output_tokens = token_count(prompt_text), token_count(answer)
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": answer}]}},
            "stopReason": stop_reason,
            "usage": {
                "inputTokens": input_tokens,
                "outputTokens": output_tokens,
                "totalTokens": input_tokens + output_tokens,
            },
            "metrics": {"latencyMs": self.latency_ms},
        }

    def _check_invocable(self, model_id: str) -> None:
        via_profile = False
        base_id = model_id
        if model_id.startswith("arn:"):
            resource = model_id.split(":", 5)[-1]
            kind, _, rest = resource.partition("/")
            if kind == "custom-model-deployment":
                deployment = self.deployments.get(model_id)
                if deployment is None:
                    raise FakeBedrockError("ValidationException", INVALID_MODEL_ID)
                if deployment.status != "Active":
                    raise FakeBedrockError(
                        "ValidationException",
                        f"The custom model deployment {model_id} is {deployment.status}, "
                        "not Active.",
                    )
                return
            if kind in ("inference-profile", "application-inference-profile"):
                base_id, via_profile = rest, True
            elif kind == "foundation-model":
                base_id = rest
            else:
                raise FakeBedrockError(
                    "ValidationException",
                    f"{kind} ARNs cannot be invoked on demand; deploy the model and use the "
                    "deployment ARN.",
                )
        for prefix in PROFILE_PREFIXES:
            if base_id.startswith(prefix):
                base_id, via_profile = base_id[len(prefix) :], True
                break
        model = self.foundation_models.get(base_id)
        if model is None:
            raise FakeBedrockError("ValidationException", INVALID_MODEL_ID)
        on_demand = "ON_DEMAND" in model.inference_types
        if via_profile and not (on_demand or model.profile_only):
            raise FakeBedrockError("ValidationException", INVALID_MODEL_ID)
        if not via_profile and not on_demand:
            hint = (
                " Retry your request with the ID or ARN of an inference profile that contains"
                " this model."
                if model.profile_only
                else ""
            )
            raise FakeBedrockError(
                "ValidationException",
                f"Invocation of model ID {base_id} with on-demand throughput isn't supported."
                + hint,
            )

    # -- evaluation jobs (LLM-as-a-judge on precomputed answers) -----------------------
    # Modelled on the user guide, UNVERIFIED against the service: the dataset checks
    # (<= 1,000 prompts, every record answering for every precomputed source), the output
    # layout <output>/<jobName>/<job-uuid>/models/<source>/taskTypes/<task>/datasets/
    # <dataset>/<file-uuid>_output.jsonl and its records {"automatedEvaluationResult":
    # {"scores": [{"metricName", "result", "evaluatorDetails"}]}, "inputRecord",
    # "modelResponses"}; the result is the raw rating-scale value.

    MAX_EVALUATION_PROMPTS = 1000

    def _create_evaluation_job(self, request: dict[str, Any]) -> dict[str, Any]:
        token = request["clientRequestToken"]
        if token in self._evaluation_tokens:
            return {"jobArn": self._evaluation_tokens[token]}
        name = request["jobName"]
        if any(job.name == name for job in self.evaluation_jobs.values()):
            raise FakeBedrockError(
                "ConflictException", f"An evaluation job named {name} already exists."
            )
        automated = request["evaluationConfig"].get("automated")
        if automated is None:
            raise FakeBedrockError("ValidationException", "FakeBedrock judges automated jobs only.")
        custom = automated.get("customMetricConfig", {})
        custom_names = {
            m["customMetricDefinition"]["name"]
            for m in custom.get("customMetrics", [])
            if "customMetricDefinition" in m
        }
        for config in automated["datasetMetricConfigs"]:
            for metric in config["metricNames"]:
                if metric.startswith("Builtin."):
                    if "evaluatorModelConfig" not in automated:
                        raise FakeBedrockError(
                            "ValidationException", "Built-in metrics need an evaluatorModelConfig."
                        )
                elif metric not in custom_names:
                    raise FakeBedrockError(
                        "ValidationException", f"Metric {metric} is neither built in nor defined."
                    )
        sources = [
            m["precomputedInferenceSource"]["inferenceSourceIdentifier"]
            for m in request["inferenceConfig"].get("models", [])
            if "precomputedInferenceSource" in m
        ]
        for config in automated["datasetMetricConfigs"]:
            uri = config["dataset"].get("datasetLocation", {}).get("s3Uri")
            if uri is None:
                raise FakeBedrockError("ValidationException", "The dataset needs an s3Uri.")
            self._check_evaluation_dataset(uri, sources)
        arn = self._arn(f"evaluation-job/{suffix_for(token, 'evaluation:')}")
        job = FakeEvaluationJob(
            arn=arn,
            name=name,
            token=token,
            request=request,
            created=self._now,
            modified=self._now,
            fail_with=self.fail_evaluation_with,
        )
        self.evaluation_jobs[arn] = job
        self._evaluation_tokens[token] = arn
        if self.evaluation_polls_to_finish <= 0:
            self._finish_evaluation(job)
        return {"jobArn": arn}

    def _s3_read(self, uri: str) -> bytes:
        if self.s3 is None:
            raise AssertionError("FakeBedrock.s3 must be a (moto) S3 client for evaluation jobs")
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        try:
            body: bytes = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as error:  # NoSuchKey / NoSuchBucket from moto
            raise FakeBedrockError(
                "ValidationException", f"Cannot read the dataset {uri}: {error}"
            ) from None
        return body

    def _check_evaluation_dataset(self, uri: str, sources: list[str]) -> None:
        records = [json.loads(line) for line in self._s3_read(uri).splitlines() if line.strip()]
        if not records or len(records) > self.MAX_EVALUATION_PROMPTS:
            raise FakeBedrockError(
                "ValidationException",
                f"The dataset has {len(records)} prompts; a job takes 1 to 1000.",
            )
        for number, record in enumerate(records, start=1):
            if not isinstance(record.get("prompt"), str) or not record["prompt"]:
                raise FakeBedrockError("ValidationException", f"Record {number} has no prompt.")
            answered = [r.get("modelIdentifier") for r in record.get("modelResponses", [])]
            if sorted(answered) != sorted(sources):
                raise FakeBedrockError(
                    "ValidationException",
                    f"Record {number} answers for {answered}, the job names {sources}.",
                )

    def _find_evaluation_job(self, identifier: str) -> FakeEvaluationJob:
        job = self.evaluation_jobs.get(identifier)
        if job is None:
            raise FakeBedrockError(
                "ResourceNotFoundException", f"Could not find evaluation job {identifier}"
            )
        return job

    def _finish_evaluation(self, job: FakeEvaluationJob) -> None:
        job.modified = self._now
        if job.fail_with is not None:
            job.status = "Failed"
            job.failure_messages = list(job.fail_with)
            return
        job.status = "Completed"
        automated = job.request["evaluationConfig"]["automated"]
        judge = automated["customMetricConfig"]["evaluatorModelConfig"]["bedrockEvaluatorModels"]
        output = job.request["outputDataConfig"]["s3Uri"].rstrip("/")
        job_uuid = suffix_for(job.token, "uuid:")
        for config in automated["datasetMetricConfigs"]:
            records = [
                json.loads(line)
                for line in self._s3_read(config["dataset"]["datasetLocation"]["s3Uri"])
                .decode()
                .splitlines()
                if line.strip()
            ]
            sources = {r["modelIdentifier"] for record in records for r in record["modelResponses"]}
            for source in sorted(sources):
                lines = []
                for record in records:
                    response = next(
                        r for r in record["modelResponses"] if r["modelIdentifier"] == source
                    )
                    scores = [
                        {
                            "metricName": metric,
                            "result": self.judge(
                                record["prompt"],
                                record.get("referenceResponse", ""),
                                response["response"],
                            ),
                            "evaluatorDetails": [
                                {
                                    "modelIdentifier": judge[0]["modelIdentifier"],
                                    "explanation": "fake judge: the seed rubric on the weights",
                                }
                            ],
                        }
                        for metric in config["metricNames"]
                    ]
                    lines.append(
                        json.dumps(
                            {
                                "automatedEvaluationResult": {"scores": scores},
                                "inputRecord": {
                                    k: v for k, v in record.items() if k != "modelResponses"
                                },
                                "modelResponses": [response],
                            }
                        )
                    )
                uri = (
                    f"{output}/{job.name}/{job_uuid}/models/{source}/taskTypes/"
                    f"{config['taskType']}/datasets/{config['dataset']['name']}/"
                    f"{suffix_for(source, job_uuid)}_output.jsonl"
                )
                bucket, _, key = uri.removeprefix("s3://").partition("/")
                assert self.s3 is not None
                self.s3.put_object(Bucket=bucket, Key=key, Body="\n".join(lines).encode())
                job.result_keys.append(key)

    def _get_evaluation_job(self, request: dict[str, Any]) -> dict[str, Any]:
        job = self._find_evaluation_job(request["jobIdentifier"])
        if job.status == "InProgress":
            job.polls += 1
            job.modified = self._now
            if job.polls >= self.evaluation_polls_to_finish:
                self._finish_evaluation(job)
        asked = job.request
        out: dict[str, Any] = {
            "jobName": job.name,
            "status": job.status,
            "jobArn": job.arn,
            "roleArn": asked["roleArn"],
            "jobType": "Automated",
            "applicationType": asked.get("applicationType", "ModelEvaluation"),
            "evaluationConfig": asked["evaluationConfig"],
            "inferenceConfig": asked["inferenceConfig"],
            "outputDataConfig": asked["outputDataConfig"],
            "creationTime": job.created,
            "lastModifiedTime": job.modified or job.created,
        }
        if "jobDescription" in asked:
            out["jobDescription"] = asked["jobDescription"]
        if job.failure_messages:
            out["failureMessages"] = job.failure_messages
        return out


def _text_of(message: Mapping[str, Any]) -> str:
    return "\n".join(block["text"] for block in message.get("content", []) if "text" in block)


def _created_between(
    created: datetime, request: Mapping[str, Any], after: str, before: str
) -> bool:
    if after in request and created <= parse_to_aware_datetime(request[after]):
        return False
    return not (before in request and created >= parse_to_aware_datetime(request[before]))


def _page(items: list[Any], request: Mapping[str, Any]) -> tuple[list[Any], str | None]:
    start = 0
    if "nextToken" in request:
        token = request["nextToken"]
        if not token.isdigit() or int(token) > len(items):
            raise FakeBedrockError("ValidationException", f"Invalid nextToken {token}")
        start = int(token)
    size = request.get("maxResults", 100)
    end = start + size
    return items[start:end], str(end) if end < len(items) else None
