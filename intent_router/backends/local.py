"""The embedded default backend: local teacher, local student, local storage.

The "distillation job" trains the hashed-n-gram student on the uploaded training JSONL (the
teacher's soft labels), stores the artifact, and records the job like a service would. A
"deployment" is a pointer to a stored artifact that `invoke` loads and serves.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import zipfile
from collections.abc import Callable, Sequence

import numpy as np

from intent_router.backends.base import (
    DeploymentState,
    DeploymentStatus,
    DistillationRequest,
    Invocation,
    JobState,
    JobStatus,
    JobSubmission,
    LabelResult,
    ModelTarget,
    SetupCheck,
    TeacherFingerprint,
    prompt_hash,
)
from intent_router.dataset import check_record, check_record_count, parse_jsonl
from intent_router.errors import (
    DatasetRuleError,
    DeploymentNotFound,
    ModelArtifactError,
    RouterOutputError,
    UserInputError,
)
from intent_router.lifecycle import TaggedResource
from intent_router.pricing import (
    LOCAL_LIMITS,
    LabellingPath,
    ModelPrice,
    estimate_tokens,
    price_for,
)
from intent_router.prompts import (
    extract_quoted_query,
    student_system_prompt,
    teacher_prompt,
    teacher_user_message,
)
from intent_router.schema import RoutingDecision, parse_routing_output
from intent_router.storage import ObjectStore
from intent_router.student import HashedNgramStudent, taxonomy_phrases
from intent_router.taxonomy import Taxonomy
from intent_router.teacher import ReferenceTeacher
from intent_router.training_modes import TrainingMode

logger = logging.getLogger(__name__)

TEACHER_PRICED_AS = "amazon.nova-premier-v1:0"
STUDENT_PRICED_AS = "amazon.nova-micro-v1:0"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


_TEACHERS: dict[str, ReferenceTeacher] = {}
_TEACHERS_LOCK = threading.Lock()


def teacher_for(taxonomy: Taxonomy) -> ReferenceTeacher:
    """One reference teacher per taxonomy content, built once per process."""
    with _TEACHERS_LOCK:
        teacher = _TEACHERS.get(taxonomy.fingerprint)
        if teacher is None:
            teacher = _TEACHERS[taxonomy.fingerprint] = ReferenceTeacher(taxonomy)
        return teacher


def student_decision(student: HashedNgramStudent, query: str) -> RoutingDecision:
    """The student's routing decision with a reasoning naming the content words behind it."""
    return student_decisions(student, [query])[0]


def student_decisions(student: HashedNgramStudent, queries: Sequence[str]) -> list[RoutingDecision]:
    """`student_decision` for many queries, the weights computed in one vectorised pass."""
    return [
        RoutingDecision.model_construct(weights=weights, reasoning=reasoning)
        for weights, reasoning in student_answers(student, queries)
    ]


def student_answers(
    student: HashedNgramStudent, queries: Sequence[str]
) -> list[tuple[dict[str, float], str]]:
    """(weights, reasoning) per query: `student_decisions` without building the models (the
    serving path answers thousands of queries a second)."""
    if not queries:
        return []
    weights, gave_prior = student.predict_weights_and_prior(queries)
    signals = student.signals
    out = []
    for query, row, prior in zip(queries, weights.tolist(), gave_prior, strict=True):
        decision = dict(zip(signals, row, strict=True))
        ordered = sorted(decision, key=decision.__getitem__, reverse=True)
        if prior:
            reasoning = (
                f"No cue it knows; the usual mix of its training data (mostly {ordered[0]})."
            )
        else:
            reasoning = _reasoning(student, query, decision, ordered)
        out.append((decision, reasoning))
    return out


def _reasoning(
    student: HashedNgramStudent, query: str, decision: dict[str, float], ordered: list[str]
) -> str:
    """'Mostly <signal> (<cues>); also <signal> (<cues>).' from the words behind the weights."""
    top_two = ordered[:2] if len(ordered) > 1 and decision[ordered[1]] >= 0.15 else ordered[:1]
    parts: list[str] = []
    named: set[str] = set()
    for signal, found in zip(top_two, student.explain_signals(query, top_two), strict=True):
        cues = [c for c in found if c not in named]  # each cue once
        named.update(cues)
        parts.append(f"{signal} ({', '.join(cues)})" if cues else signal)
    also = f"; also {parts[1]}" if len(parts) > 1 else ""
    return f"Mostly {parts[0]}{also}."


class LocalBackend:
    """Backend on this machine. Thread-safe for concurrent label/invoke calls."""

    name = "local"
    limits = LOCAL_LIMITS
    paid = False
    default_training_mode = TrainingMode.FINE_TUNE_LABELLED
    # distill-prompts: the local "job" has the local teacher answer the prompts, as Bedrock's
    # job has its teacher answer them. Invocation logs are a Bedrock feature.
    training_modes = frozenset({TrainingMode.FINE_TUNE_LABELLED, TrainingMode.DISTILL_PROMPTS})
    stable_deployments = False  # each champion keeps the deployment it was evaluated on
    keep_rejected_models: int | None = None  # local artifacts cost nothing; a re-run reuses them

    def __init__(self, store: ObjectStore, *, l2: float = 1e-6, max_iterations: int = 300) -> None:
        self.store = store
        self.l2 = l2
        self.max_iterations = max_iterations
        self._lock = threading.Lock()
        self._students: dict[str, HashedNgramStudent] = {}

    # -- teacher -----------------------------------------------------------------------------
    def label(self, queries: Sequence[str], taxonomy: Taxonomy) -> list[LabelResult]:
        teacher = teacher_for(taxonomy)
        return [LabelResult(query=q, text=teacher.label_json(q)) for q in queries]

    def teacher_fingerprint(self, taxonomy: Taxonomy) -> TeacherFingerprint:
        return TeacherFingerprint(
            backend=self.name,
            teacher_model_id="reference-teacher",
            prompt_sha256=prompt_hash(teacher_prompt(taxonomy)),
            label_settings="deterministic rules",
        )

    # -- distillation ------------------------------------------------------------------------
    def _job_path(self, job_id: str) -> str:
        return f"jobs/{job_id}.json"

    def start_distillation(self, request: DistillationRequest, taxonomy: Taxonomy) -> JobSubmission:
        job_id = f"local-job-{_short_hash(request.token)}"
        submission = JobSubmission(job_id=job_id, job_name=request.job_name)
        with self._lock:
            existing = self.store.read(self._job_path(job_id))
            if existing is not None:
                logger.info("distillation job %s already exists; reusing it", job_id)
                return submission
            status = self._train(job_id, request, taxonomy)
            self.store.write(self._job_path(job_id), status.model_dump_json(indent=2).encode())
        return submission

    def _train(self, job_id: str, request: DistillationRequest, taxonomy: Taxonomy) -> JobStatus:
        details = {
            "validationDetails": "InProgress",
            "dataProcessingDetails": "NotStarted",
            "trainingDetails": "NotStarted",
        }
        data = self.store.read(request.training_path)
        if data is None:
            return JobStatus(
                job_id=job_id,
                state=JobState.FAILED,
                details=details,
                failure_message=f"training data not found at {request.training_uri}",
            )
        try:
            records = parse_jsonl(data, request.training_uri)
            for index, record in enumerate(records):
                check_record(record, index)
            check_record_count(len(records), self.limits)
        except (DatasetRuleError, UserInputError) as error:
            return JobStatus(
                job_id=job_id,
                state=JobState.FAILED,
                details={**details, "validationDetails": "Failed"},
                failure_message=str(error),
            )
        details.update(validationDetails="Completed", dataProcessingDetails="InProgress")
        queries, labels = [], []
        teacher = teacher_for(taxonomy)
        for record in records:
            user = record["messages"][0]["content"][0]["text"]
            query = extract_quoted_query(user) or user
            if len(record["messages"]) > 1:
                answer = record["messages"][1]["content"][0]["text"]
            else:  # a prompt only: the job's teacher answers it (as Bedrock's does)
                answer = teacher.label_json(query)
            try:
                decision = parse_routing_output(answer, request.signals)
            except RouterOutputError as error:
                return JobStatus(
                    job_id=job_id,
                    state=JobState.FAILED,
                    details={**details, "dataProcessingDetails": "Failed"},
                    failure_message=f"assistant turn for {query!r} is not routing JSON: {error}",
                )
            queries.append(query)
            labels.append([decision.weights[s] for s in request.signals])
        details.update(dataProcessingDetails="Completed", trainingDetails="InProgress")
        student = HashedNgramStudent(signals=request.signals, phrases=taxonomy_phrases(taxonomy))
        started = time.perf_counter()
        report = student.fit(
            queries, np.asarray(labels), l2=self.l2, max_iterations=self.max_iterations
        )
        seconds = time.perf_counter() - started
        artifact = student.to_bytes()
        self.store.write(self._artifact_path(request.model_name), artifact)
        logger.info(
            "trained student %s in %.1f s (loss %.4f, %d iterations)",
            request.model_name,
            seconds,
            report.final_loss,
            report.epochs,
        )
        details.update(trainingDetails="Completed")
        return JobStatus(
            job_id=job_id,
            state=JobState.COMPLETED,
            model_id=f"local-model/{request.model_name}",
            details=details,
            metrics={
                "trainingLoss": report.final_loss,
                "iterations": float(report.epochs),
                "trainingSeconds": seconds,
                "records": float(len(records)),
                "artifactBytes": float(len(artifact)),
            },
        )

    def job_status(self, job_id: str) -> JobStatus:
        data = self.store.read(self._job_path(job_id))
        if data is None:
            raise KeyError(f"no distillation job {job_id}")
        return JobStatus.model_validate_json(data)

    @staticmethod
    def _artifact_path(model_name: str) -> str:
        return f"models/{model_name}/student.npz"

    def artifact_path(self, model_id: str) -> str:
        return self._artifact_path(model_id.removeprefix("local-model/"))

    # -- deployments -------------------------------------------------------------------------
    def _deployment_path(self, deployment_id: str) -> str:
        return f"deployments/{deployment_id}.json"

    def deploy(
        self, model_id: str, name: str, token: str, tags: dict[str, str] | None = None
    ) -> str:
        deployment_id = f"local-deployment-{_short_hash(token)}"
        path = self._deployment_path(deployment_id)
        with self._lock:
            if self.store.read(path) is not None:
                return deployment_id
            artifact = self.store.read(self.artifact_path(model_id))
            state, failure = DeploymentState.ACTIVE, None
            if artifact is None:
                state, failure = DeploymentState.FAILED, f"model artifact for {model_id} missing"
            status = DeploymentStatus(
                deployment_id=deployment_id,
                state=state,
                model_id=model_id,
                failure_message=failure,
                tags=tags or {},
            )
            self.store.write(path, status.model_dump_json(indent=2).encode())
        return deployment_id

    def deployment_status(self, deployment_id: str) -> DeploymentStatus:
        data = self.store.read(self._deployment_path(deployment_id))
        if data is None:
            raise DeploymentNotFound(deployment_id)
        return DeploymentStatus.model_validate_json(data)

    def delete_deployment(self, deployment_id: str) -> None:
        with self._lock:
            self.store.delete(self._deployment_path(deployment_id))
            self._students.pop(deployment_id, None)

    # -- inference ---------------------------------------------------------------------------
    def check_model(self, model_id: str) -> None:
        self._read_student(model_id)  # from storage, not the in-memory copy

    def load_student(self, model_id: str) -> HashedNgramStudent:
        with self._lock:
            if model_id not in self._students:
                self._students[model_id] = self._read_student(model_id)
            return self._students[model_id]

    def read_student(self, model_id: str) -> HashedNgramStudent:
        """The model from storage, not kept in this backend (a serving process swaps models
        and must not hold every one it ever loaded)."""
        return self._read_student(model_id)

    def _read_student(self, model_id: str) -> HashedNgramStudent:
        path = self.artifact_path(model_id)
        data = self.store.read(path)
        if data is None:
            raise ModelArtifactError(f"model artifact {path} of {model_id} is missing")
        try:
            return HashedNgramStudent.from_bytes(data)
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as error:
            problem = " ".join(str(error).split())[:160] or type(error).__name__
            raise ModelArtifactError(
                f"model artifact {path} of {model_id} is corrupt ({problem})"
            ) from None

    def _answer_fn(self, target: ModelTarget, taxonomy: Taxonomy) -> Callable[[str], str]:
        kind, _, value = target.ref.partition(":")
        if kind == "teacher":
            return teacher_for(taxonomy).label_json
        if kind == "untrained":
            student = HashedNgramStudent(signals=taxonomy.signal_names)
            return lambda query: student_decision(student, query).to_json()
        if kind == "deployment":
            status = self.deployment_status(value)
            if status.state != DeploymentState.ACTIVE:
                raise UserInputError(f"deployment {value} is {status.state}, not Active")
            student = self.load_student(status.model_id)
            return lambda query: student_decision(student, query).to_json()
        if kind == "model":
            student = self.load_student(value)
            return lambda query: student_decision(student, query).to_json()
        raise ValueError(f"unknown local model reference {target.ref!r}")

    def invoke(
        self,
        target: ModelTarget,
        queries: Sequence[str],
        taxonomy: Taxonomy,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[Invocation]:
        answer = self._answer_fn(target, taxonomy)
        quoted = target.prompt == "teacher"  # counted as the quoted message Bedrock would get
        prompt = teacher_prompt(taxonomy) if quoted else student_system_prompt(taxonomy)
        prompt_tokens = estimate_tokens(prompt)
        out = []
        for done, query in enumerate(queries, start=1):
            started = time.perf_counter()
            text = answer(query)
            elapsed = time.perf_counter() - started
            out.append(
                Invocation(
                    text=text,
                    latency_s=elapsed,
                    input_tokens=prompt_tokens
                    + estimate_tokens(teacher_user_message(query) if quoted else query),
                    output_tokens=estimate_tokens(text),
                )
            )
            if on_progress is not None and done % 200 == 0:
                on_progress(done)
        return out

    def baselines(self, taxonomy: Taxonomy) -> list[ModelTarget]:
        return [
            ModelTarget(
                name="teacher (reference router)",
                role="teacher",
                ref="teacher",
                prompt="teacher",
                priced_as=TEACHER_PRICED_AS,
            ),
            ModelTarget(
                name="untrained student",
                role="base-student",
                ref="untrained",
                prompt="student",
                priced_as=STUDENT_PRICED_AS,
            ),
        ]

    def price_for(self, model_id: str) -> ModelPrice:
        return price_for(model_id)

    def training_price_per_1k(self) -> float | None:
        return 0.0  # trains on this machine

    def storage_price_per_model_month(self) -> float | None:
        return 0.0  # a file in local storage

    def training_epochs(self) -> int:
        return 1  # the local trainer fits once (L-BFGS), it has no epochs

    def setup_checks(self) -> list[SetupCheck]:
        """Nothing to check: no service, no Region, storage checked by check_run_state."""
        return []

    def labelling_path(self, batch_size: int) -> LabellingPath:
        return "on-demand"

    def artifact_uri(self, model_id: str) -> str | None:
        return self.store.uri(self.artifact_path(model_id))

    def target_for_deployment(
        self, deployment_id: str, role: str, name: str, prompt: str = "student"
    ) -> ModelTarget:
        return ModelTarget(
            name=name,
            role=role,
            ref=f"deployment:{deployment_id}",
            prompt=prompt,
            priced_as=STUDENT_PRICED_AS,
        )

    # -- lifecycle: local jobs finish inside start_distillation and cost nothing -------------
    def stop_job(self, job_id: str) -> bool:
        return False

    def delete_model(self, model_id: str) -> None:
        logger.debug("local model %s kept (local artifacts cost nothing)", model_id)

    def update_deployment(
        self, deployment_id: str, model_id: str, tags: dict[str, str] | None = None
    ) -> None:
        """Point a local deployment at another model (the swap completes at once)."""
        current = self.deployment_status(deployment_id)
        swapped = current.model_copy(
            update={
                "model_id": model_id,
                "tags": {**current.tags, **(tags or {})},
                "update_status": "UpdateCompleted",
                "update_model_id": model_id,
            }
        )
        with self._lock:
            self.store.write(
                self._deployment_path(deployment_id), swapped.model_dump_json(indent=2).encode()
            )
            self._students.pop(deployment_id, None)

    def publish_serving(self, router: str, deployment_id: str) -> None:
        return None

    def tagged_resources(self) -> list[TaggedResource]:
        return []  # nothing paid: the janitor has nothing to clean
