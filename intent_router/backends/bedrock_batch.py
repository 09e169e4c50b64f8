"""Teacher labelling through Bedrock batch inference (CreateModelInvocationJob).

About half the on-demand price for large labelling calls (pricing.BATCH_DISCOUNT). One job per
label() call: the records go to storage as JSONL, the job runs on the teacher's inference
profile, the wait polls GetModelInvocationJob, and the answers come back from the job's output
JSONL. Every answer is validated; records that failed in the job or gave invalid answers are
retried through on-demand Converse (`BedrockBackend._label_one`), so the call still completes.

Idempotent: the job's name and clientRequestToken derive from the records (model, prompt,
settings, queries), so a retried task finds the job it started (ListModelInvocationJobs by
name) instead of paying twice. A job that ended Failed/Stopped/Expired keeps its name; the
next call starts attempt 2 (`<name>-2`, a new token).

Unverified against the live service (stated in bedrock.md as secondary sources or not at all):
the record format for modelInvocationType=Converse (modelInput = a Converse request body
without modelId), the output location (`<output prefix>/<job id>/<input file name>.out`), and
the output line format (`recordId`, `modelInput`, then `modelOutput` = a Converse response or
`error` = {errorCode, errorMessage}); recordId as 11 alphanumerics.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from intent_router.backends.base import LabelResult
from intent_router.errors import (
    BatchLabellingFailed,
    RouterOutputError,
    TransientBackendError,
    WaitTimeout,
)
from intent_router.prompts import teacher_prompt, teacher_user_message
from intent_router.schema import parse_routing_output
from intent_router.taxonomy import Taxonomy

if TYPE_CHECKING:
    from intent_router.backends.bedrock import BedrockBackend, BedrockSettings

logger = logging.getLogger(__name__)

BATCH_DIR = "batch-labelling"
INPUT_NAME = "input.jsonl"
DONE_STATES = frozenset({"Completed", "PartiallyCompleted"})
FAILED_STATES = frozenset({"Failed", "Stopped", "Expired"})
MAX_ATTEMPTS = 20  # job attempts per batch (a new one only after a Failed/Stopped/Expired one)


@dataclass(frozen=True)
class BatchJob:
    """A labelling batch as a batch-inference job: where its records go, what it is called."""

    key: str
    records: bytes
    record_ids: tuple[str, ...]

    @property
    def base_name(self) -> str:
        return f"router-label-{self.key}"

    def name(self, attempt: int) -> str:
        return self.base_name if attempt == 1 else f"{self.base_name}-{attempt}"

    def token(self, attempt: int) -> str:
        return f"rl{self.key}a{attempt}"

    @property
    def input_path(self) -> str:
        return f"{BATCH_DIR}/{self.key}/{INPUT_NAME}"

    @property
    def output_path(self) -> str:
        return f"{BATCH_DIR}/{self.key}/output"


@dataclass(frozen=True)
class BatchAnswer:
    text: str | None
    error: str | None = None


def record_id(index: int) -> str:
    return f"R{index:010d}"


def model_input(settings: BedrockSettings, prompt: str, query: str) -> dict[str, Any]:
    """The Converse request body of one record (the job names the model, not the record)."""
    inference: dict[str, Any] = {
        "maxTokens": settings.label_max_tokens,
        "temperature": settings.label_temperature,
    }
    return {
        "system": [{"text": prompt}],
        "messages": [{"role": "user", "content": [{"text": teacher_user_message(query)}]}],
        "inferenceConfig": inference,
    }


def plan_batch_job(queries: Sequence[str], prompt: str, settings: BedrockSettings) -> BatchJob:
    """The job for these queries: the same queries, prompt and settings give the same job."""
    ids = tuple(record_id(index) for index in range(len(queries)))
    lines = [
        json.dumps(
            {"recordId": rid, "modelInput": model_input(settings, prompt, query)},
            ensure_ascii=False,
            sort_keys=True,
        )
        for rid, query in zip(ids, queries, strict=True)
    ]
    records = ("\n".join(lines) + "\n").encode()
    digest = hashlib.sha256(settings.teacher_model_id.encode() + b"\n" + records).hexdigest()
    return BatchJob(key=digest[:24], records=records, record_ids=ids)


def invocation_job_request(
    job: BatchJob, attempt: int, settings: BedrockSettings, input_uri: str, output_uri: str
) -> dict[str, Any]:
    """The complete CreateModelInvocationJob request of one attempt."""
    request: dict[str, Any] = {
        "jobName": job.name(attempt),
        "roleArn": settings.batch_role_arn or settings.role_arn,
        "clientRequestToken": job.token(attempt),
        "modelId": settings.teacher_model_id,
        "inputDataConfig": {"s3InputDataConfig": {"s3Uri": input_uri, "s3InputFormat": "JSONL"}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": output_uri.rstrip("/") + "/"}},
        "timeoutDurationInHours": settings.batch_job_timeout_hours,
        "modelInvocationType": "Converse",
    }
    if settings.tags:
        request["tags"] = [{"key": k, "value": v} for k, v in settings.tags.items()]
    return request


def attempt_of(job: BatchJob, name: str) -> int | None:
    """The attempt number of a job name of this batch, or None for another batch's job."""
    if name == job.base_name:
        return 1
    match = re.fullmatch(re.escape(job.base_name) + r"-(\d+)", name)
    return int(match.group(1)) if match else None


def job_id_of(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def output_paths(job: BatchJob, arn: str) -> tuple[str, ...]:
    """Where the job's output JSONL may be (unverified layout): under a folder named after the
    job id first, then directly under the output prefix."""
    name = f"{INPUT_NAME}.out"
    return (f"{job.output_path}/{job_id_of(arn)}/{name}", f"{job.output_path}/{name}")


def _text_of_converse(output: Any) -> str | None:
    if not isinstance(output, dict):
        return None
    parts = output.get("output", {}).get("message", {}).get("content", [])
    if not isinstance(parts, list):
        return None
    return "".join(p.get("text", "") for p in parts if isinstance(p, dict))


def parse_batch_output(data: bytes, record_ids: Sequence[str]) -> dict[str, BatchAnswer]:
    """recordId -> the answer text or the record's error; unknown ids and bad lines skipped."""
    wanted = set(record_ids)
    answers: dict[str, BatchAnswer] = {}
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            logger.warning("batch output line %d is not JSON; its record is retried", number)
            continue
        rid = record.get("recordId") if isinstance(record, dict) else None
        if rid not in wanted:
            continue
        error = record.get("error")
        if error:
            message = (
                error.get("errorMessage") or json.dumps(error)
                if isinstance(error, dict)
                else str(error)
            )
            answers[rid] = BatchAnswer(text=None, error=f"batch record error: {message}")
            continue
        text = _text_of_converse(record.get("modelOutput"))
        answers[rid] = BatchAnswer(text=text, error=None if text else "empty batch answer")
    return answers


def valid_answer(answer: BatchAnswer | None, taxonomy: Taxonomy) -> str | None:
    """Why the batch answer cannot be used, or None when it is valid routing JSON."""
    if answer is None:
        return "no batch answer"
    if answer.text is None:
        return answer.error or "no batch answer"
    try:
        parse_routing_output(answer.text, taxonomy.signal_names)
    except RouterOutputError as invalid:
        return str(invalid)
    return None


# -- side effects (through the backend's validated calls) --------------------------------------


def _find_or_create(backend: BedrockBackend, job: BatchJob) -> str:
    """The ARN of this batch's live or finished job, or of a new attempt after a failed one."""
    found = backend._call(
        backend.control, "list_model_invocation_jobs", nameContains=job.base_name, maxResults=100
    )
    attempts = {
        n: summary
        for summary in found.get("invocationJobSummaries", [])
        if (n := attempt_of(job, str(summary["jobName"]))) is not None
    }
    attempt = 1
    if attempts:
        latest = max(attempts)
        summary = attempts[latest]
        if summary.get("status") not in FAILED_STATES:
            logger.info("reattaching to batch labelling job %s", summary["jobArn"])
            return str(summary["jobArn"])
        attempt = latest + 1
        if attempt > MAX_ATTEMPTS:
            raise BatchLabellingFailed(
                str(summary["jobArn"]), str(summary.get("status")), summary.get("message")
            )
        logger.info(
            "batch labelling job %s ended %s; starting attempt %d",
            summary["jobArn"],
            summary.get("status"),
            attempt,
        )
    backend.store.write(job.input_path, job.records)
    request = invocation_job_request(
        job,
        attempt,
        backend.settings,
        backend.store.uri(job.input_path),
        backend.store.uri(job.output_path),
    )
    response = backend._call(backend.control, "create_model_invocation_job", **request)
    arn = str(response["jobArn"])
    logger.info(
        "started batch labelling job %s (%d records, model %s)",
        arn,
        len(job.record_ids),
        backend.settings.teacher_model_id,
    )
    return arn


def _stop(backend: BedrockBackend, arn: str) -> None:
    try:
        backend._call(backend.control, "stop_model_invocation_job", jobIdentifier=arn)
    except (ClientError, TransientBackendError) as error:
        logger.warning("could not stop batch labelling job %s: %s", arn, error)


def wait_for_batch_job(backend: BedrockBackend, arn: str) -> dict[str, Any]:
    """Poll until the job is Completed or PartiallyCompleted; BatchLabellingFailed when it
    ended otherwise; after batch_job_timeout_hours, stop it and raise WaitTimeout."""
    settings = backend.settings
    interval = settings.batch_poll_interval_seconds
    timeout_s = settings.batch_job_timeout_hours * 3600
    max_polls = math.ceil(timeout_s / interval) + 1
    started = time.monotonic()
    last = ""
    for poll in range(max_polls):
        try:
            job: dict[str, Any] = backend._call(
                backend.control, "get_model_invocation_job", jobIdentifier=arn
            )
        except TransientBackendError as error:
            logger.warning("batch labelling job %s: status call failed (%s)", arn, error)
        else:
            status = str(job.get("status"))
            progress = (
                f"{job.get('processedRecordCount', 0)}/{job.get('totalRecordCount', '?')} records"
            )
            if status != last or poll % 10 == 0:
                logger.info("batch labelling job %s: %s, %s", arn, status, progress)
                last = status
            if status in DONE_STATES:
                return job
            if status in FAILED_STATES:
                raise BatchLabellingFailed(arn, status, job.get("message"))
        if time.monotonic() - started >= timeout_s:
            break
        backend.sleep(interval)
    _stop(backend, arn)
    raise WaitTimeout(
        f"batch labelling job {arn} did not finish within batch_job_timeout_hours="
        f"{settings.batch_job_timeout_hours}; it was stopped"
    )


def read_answers(backend: BedrockBackend, job: BatchJob, arn: str) -> dict[str, BatchAnswer]:
    for path in output_paths(job, arn):
        data = backend.store.read(path)
        if data is not None:
            return parse_batch_output(data, job.record_ids)
    paths = " or ".join(output_paths(job, arn))
    logger.warning("batch labelling job %s: no output at %s", arn, paths)
    return {}


def label_in_batch(
    backend: BedrockBackend, queries: Sequence[str], taxonomy: Taxonomy
) -> list[LabelResult]:
    """Label `queries` with one batch job; results in input order, each validated; records the
    job could not answer validly are retried on demand (label_attempts tries each)."""
    prompt = teacher_prompt(taxonomy)
    job = plan_batch_job(queries, prompt, backend.settings)
    arn = _find_or_create(backend, job)
    described = wait_for_batch_job(backend, arn)
    answers = read_answers(backend, job, arn)
    results: list[LabelResult] = []
    retry: list[int] = []
    for index, (rid, query) in enumerate(zip(job.record_ids, queries, strict=True)):
        answer = answers.get(rid)
        problem = valid_answer(answer, taxonomy)
        if problem is None and answer is not None:
            results.append(LabelResult(query=query, text=answer.text, attempts=1))
        else:
            retry.append(index)
            results.append(LabelResult(query=query, text=None, error=problem))
    if retry:
        logger.info(
            "batch labelling job %s (%s): %d of %d records retried on demand",
            arn,
            described.get("status"),
            len(retry),
            len(queries),
        )
        with backend.call_slot():
            for index in retry:
                again = backend._label_one(queries[index], prompt, taxonomy)
                results[index] = again.model_copy(update={"attempts": again.attempts + 1})
    return results


def batch_labelling_request_example(
    settings: BedrockSettings, queries: Sequence[str], prompt: str, input_uri_of: Any
) -> dict[str, Any]:
    """The CreateModelInvocationJob request a label() call of `queries` sends (dry-run plan)."""
    job = plan_batch_job(queries, prompt, settings)
    return invocation_job_request(
        job, 1, settings, input_uri_of(job.input_path), input_uri_of(job.output_path)
    )
