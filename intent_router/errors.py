"""Domain exceptions. Every user-facing error names the problem in one line."""

from __future__ import annotations

TRANSIENT_AWS_CODES = frozenset(
    {
        "ThrottlingException",
        "ModelNotReadyException",
        "ServiceUnavailableException",
        "InternalServerException",
        "TooManyRequestsException",
        "RequestTimeout",
    }
)
"""AWS error codes worth retrying (throttling, a model not ready, a 5xx, a timeout)."""

MODEL_QUERY_AWS_CODES = frozenset({"ModelErrorException", "ModelTimeoutException"})
"""Converse errors about one query (the model failed or timed out on it; botocore does not retry
them): retried a bounded number of times, then that query counts as unanswered."""


class RouterDistillError(Exception):
    """Base class for errors this product raises on purpose."""


class UserInputError(RouterDistillError):
    """Bad input from the user (taxonomy, parameters, query, file). CLI exit code 2."""


class CorruptStateError(UserInputError):
    """Stored state (champion pointer, ledger, model artifact, storage folder) is unreadable."""


class ModelArtifactError(CorruptStateError):
    """A model's stored artifact is missing or cannot be loaded; names the artifact."""


class ConcurrentUpdateError(RouterDistillError):
    """A conditional write kept losing to other writers after the bounded retries."""


class TaxonomyError(UserInputError):
    """A taxonomy is malformed: unknown signal, empty values, attribute pointing nowhere."""


class RouterOutputError(RouterDistillError):
    """Model text is not valid routing JSON."""


class DatasetRuleError(UserInputError):
    """The training dataset breaks one of Bedrock's data rules."""


class BackendLimitError(UserInputError):
    """A requested size is outside what the chosen backend accepts."""


class DistillationJobFailed(RouterDistillError):
    """A distillation job ended Failed or Stopped; carries the service's failure message."""

    def __init__(self, job_id: str, status: str, failure_message: str | None) -> None:
        self.job_id = job_id
        self.status = status
        self.failure_message = failure_message or "no failure message"
        super().__init__(f"distillation job {job_id} ended {status}: {self.failure_message}")


class DeploymentFailed(RouterDistillError):
    """A model deployment ended Failed; carries the service's failure message."""

    def __init__(self, deployment_id: str, failure_message: str | None) -> None:
        self.deployment_id = deployment_id
        self.failure_message = failure_message or "no failure message"
        super().__init__(f"deployment {deployment_id} failed: {self.failure_message}")


class DeploymentUpdateRefused(RouterDistillError):
    """The service would not swap the deployment's model (ValidationException)."""

    def __init__(self, deployment_id: str, message: str) -> None:
        self.deployment_id = deployment_id
        super().__init__(f"deployment {deployment_id} cannot be updated: {message}")


class DeploymentNotFound(RouterDistillError):
    """The deployment does not exist (never created, or deleted)."""

    def __init__(self, deployment_id: str) -> None:
        self.deployment_id = deployment_id
        super().__init__(f"no deployment {deployment_id}")


class WaitTimeout(RouterDistillError):
    """A wait for an external job or deployment passed its deadline."""


class TransientBackendError(RouterDistillError):
    """A failure worth retrying (throttling, a model not ready, a 5xx)."""


class BatchLabellingFailed(RouterDistillError):
    """A batch-inference labelling job ended Failed, Stopped or Expired; carries the service's
    message."""

    def __init__(self, job_id: str, status: str, message: str | None) -> None:
        self.job_id = job_id
        self.status = status
        self.message = message or "no message"
        super().__init__(f"batch labelling job {job_id} ended {status}: {self.message}")


class BackendServiceError(RouterDistillError):
    """The service refused a call for a reason no retry fixes (access, not found, quota,
    validation): carries its error code and message, so the task fails with them."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        self.operation = operation
        self.code = code
        self.message = message or "no message"
        super().__init__(f"{operation} failed with {code}: {self.message}")


class ModelQueryError(RouterDistillError):
    """The model failed on one query (ModelError / ModelTimeout) after the bounded retries."""

    def __init__(self, code: str, message: str, attempts: int) -> None:
        self.code = code
        self.message = message
        self.attempts = attempts
        super().__init__(f"{code} after {attempts} attempts: {message}")


class JudgeJobFailed(RouterDistillError):
    """A Bedrock Model Evaluation (judge) job ended Failed or Stopped; carries the service's
    failure messages."""

    def __init__(self, job_id: str, status: str, failure_messages: list[str]) -> None:
        self.job_id = job_id
        self.status = status
        self.failure_messages = failure_messages or ["no failure message"]
        super().__init__(
            f"evaluation job {job_id} ended {status}: {'; '.join(self.failure_messages)}"
        )
