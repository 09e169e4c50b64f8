"""Evaluation and labelling on the Bedrock backend against the validated fake: which errors
fail a task and which count against one query, concurrent Converse calls (bounded, in order),
client-side latency, and Bedrock Model Evaluation (judge) jobs."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from intent_router.backends.base import Invocation, JudgeTarget, ModelTarget
from intent_router.backends.bedrock import BedrockBackend, BedrockSettings
from intent_router.backends.bedrock_validation import request_violations
from intent_router.dataset import LabelledQuery
from intent_router.errors import (
    BackendServiceError,
    JudgeJobFailed,
    ModelQueryError,
    TransientBackendError,
    UserInputError,
)
from intent_router.evaluation import EvaluationResult, evaluate_target, with_judge_scores
from intent_router.judge import judge_job_name, rubric_instructions
from intent_router.report import EvaluationRow, evaluation_table
from intent_router.storage import DirectoryStore
from intent_router.taxonomy import builtin_taxonomy
from intent_router.teacher import ReferenceTeacher
from tasks.evaluate import judge_results
from tests.support.fake_bedrock import FakeBedrock, FakeBedrockError

ROLE = "arn:aws:iam::123456789012:role/router-distill-bedrock"
JUDGE = "us.example.judge-model-v1:0"  # a placeholder id: the setting has no default
TAXONOMY = builtin_taxonomy()
TEACHER = ReferenceTeacher(TAXONOMY)
QUERIES = [f"drone shot of beach number {n} at sunset" for n in range(12)]
BASE = "amazon.nova-micro-v1:0"


def teacher_answers(model: str, system: str, user: str) -> str:
    return TEACHER.label_json(user)


def backend_for(
    fake: FakeBedrock, store: Any, concurrency: int = 1, **settings: Any
) -> BedrockBackend:
    return BedrockBackend(
        BedrockSettings(role_arn=ROLE, **settings),
        control=fake.control,
        runtime=fake.runtime,
        store=store,
        sleep=lambda _s: None,
        concurrency=concurrency,
        s3_client=lambda: fake.s3,
    )


def target(ref: str = BASE, role: str = "base-student") -> ModelTarget:
    return ModelTarget(name=role, role=role, ref=ref, prompt="teacher", priced_as=BASE)


# -- which errors fail the task, which count against one query ------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ValidationException",
        "ServiceQuotaExceededException",
    ],
)
def test_infrastructure_errors_fail_evaluation_with_the_service_message(
    code: str, tmp_path: Path
) -> None:
    fake = FakeBedrock(responder=teacher_answers)
    message = f"{code}: User arn:aws:iam::123456789012:user/ci is not allowed (test)"
    fake.inject_error("converse", code, times=1, message=message)
    backend = backend_for(fake, DirectoryStore(tmp_path))
    holdout = [labelled(q) for q in QUERIES[:3]]
    with pytest.raises(BackendServiceError) as raised:
        evaluate_target(backend, target(), holdout, TAXONOMY)
    assert raised.value.code == code
    assert message in str(raised.value)
    assert not isinstance(raised.value, TransientBackendError)  # Prefect does not retry it
    assert len(fake.calls_to("converse")) == 1  # not retried, not scored as empty answers


def test_access_denied_while_labelling_fails_the_batch(tmp_path: Path) -> None:
    fake = FakeBedrock(responder=teacher_answers)
    fake.inject_error("converse", "AccessDeniedException", message="no access to the teacher")
    with pytest.raises(BackendServiceError, match="no access to the teacher"):
        backend_for(fake, DirectoryStore(tmp_path), concurrency=4).label(QUERIES, TAXONOMY)


def failing_on(broken: str, code: str) -> Any:
    def responder(model: str, system: str, user: str) -> str:
        if user == broken:
            raise FakeBedrockError(code, f"the model could not answer {user!r}")
        return TEACHER.label_json(user)

    return responder


@pytest.mark.parametrize("code", ["ModelErrorException", "ModelTimeoutException"])
def test_a_query_the_model_keeps_failing_on_is_dropped_and_the_rest_labelled(
    code: str, tmp_path: Path
) -> None:
    broken = QUERIES[5]
    fake = FakeBedrock(responder=failing_on(broken, code))
    backend = backend_for(fake, DirectoryStore(tmp_path), concurrency=4, model_error_retries=2)

    labels = backend.label(QUERIES, TAXONOMY)

    assert [r.query for r in labels] == QUERIES
    failed = [r for r in labels if r.text is None]
    assert [r.query for r in failed] == [broken]
    assert failed[0].error is not None and code in failed[0].error
    assert all(r.text == TEACHER.label_json(r.query) for r in labels if r.query != broken)
    asked = [
        c for c in fake.calls_to("converse") if broken in c["messages"][0]["content"][0]["text"]
    ]
    assert len(asked) == 3  # the first try and model_error_retries=2


def test_model_timeout_then_success_is_retried_and_labelled(tmp_path: Path) -> None:
    fake = FakeBedrock(responder=teacher_answers)
    fake.inject_error("converse", "ModelTimeoutException", times=1)
    labels = backend_for(fake, DirectoryStore(tmp_path)).label(QUERIES[:1], TAXONOMY)
    assert labels[0].text == TEACHER.label_json(QUERIES[0])
    assert len(fake.calls_to("converse")) == 2


def test_model_errors_without_retries_raise_for_the_caller_to_count(tmp_path: Path) -> None:
    fake = FakeBedrock(responder=teacher_answers)
    fake.inject_error("converse", "ModelErrorException", times=1, message="bad output")
    backend = backend_for(fake, DirectoryStore(tmp_path), model_error_retries=0)
    with pytest.raises(ModelQueryError, match="bad output"):
        backend._converse(BASE, "system", "query", 50)


def test_failed_query_counts_as_unparsed_in_evaluation(tmp_path: Path) -> None:
    broken = QUERIES[2]
    fake = FakeBedrock(responder=failing_on(broken, "ModelErrorException"))
    backend = backend_for(fake, DirectoryStore(tmp_path), concurrency=3, model_error_retries=1)
    holdout = [labelled(q) for q in QUERIES]

    result = evaluate_target(backend, target(), holdout, TAXONOMY)

    assert result.failed_calls == 1
    assert result.overall is not None
    assert result.overall.n == len(QUERIES)
    assert result.overall.parse_rate == pytest.approx((len(QUERIES) - 1) / len(QUERIES))
    assert result.answers[2] is None and all(
        a is not None for i, a in enumerate(result.answers) if i != 2
    )


# -- concurrency ------------------------------------------------------------------------------


def echo_query(model: str, system: str, user: str) -> str:
    decision = json.loads(TEACHER.label_json(user))
    decision["reasoning"] = user
    return json.dumps(decision)


def test_labelling_runs_exactly_the_concurrency_limit_and_keeps_order(tmp_path: Path) -> None:
    fake = FakeBedrock(responder=echo_query, sleep_ms=20)
    queries = [f"slow motion waterfall take {n}" for n in range(200)]
    backend = backend_for(fake, DirectoryStore(tmp_path), concurrency=8)

    labels = backend.label(queries, TAXONOMY)

    assert fake.max_in_flight == 8
    assert [r.query for r in labels] == queries
    assert [json.loads(r.text or "{}")["reasoning"] for r in labels] == queries
    assert fake.in_flight == 0


def test_every_call_runs_inside_a_global_slot(tmp_path: Path) -> None:
    """The call slot (Prefect's global limit in production) bounds calls across batches."""
    fake = FakeBedrock(responder=echo_query, sleep_ms=10)
    slots = threading.BoundedSemaphore(3)
    held: list[int] = []

    @contextmanager
    def slot() -> Iterator[None]:
        with slots:
            held.append(1)
            yield

    backend = BedrockBackend(
        BedrockSettings(role_arn=ROLE),
        control=fake.control,
        runtime=fake.runtime,
        store=DirectoryStore(tmp_path),
        call_slot=slot,
        concurrency=8,
    )
    progress: list[int] = []
    calls = backend.invoke(
        target(), [f"q{n} crowd cheering" for n in range(250)], TAXONOMY, progress.append
    )

    assert fake.max_in_flight == 3
    assert len(held) == 8  # one slot per worker (8 threads), held for its share of the calls
    assert progress == [100, 200]
    assert len(calls) == 250


# -- latency ----------------------------------------------------------------------------------


def test_invocations_carry_client_and_service_latency(tmp_path: Path) -> None:
    fake = FakeBedrock(responder=teacher_answers, sleep_ms=15, latency_ms=300)
    backend = backend_for(fake, DirectoryStore(tmp_path), concurrency=2)
    holdout = [labelled(q) for q in QUERIES[:6]]

    result = evaluate_target(backend, target(), holdout, TAXONOMY)

    o = result.overall
    assert o is not None
    assert o.latency_p50_ms == pytest.approx(300.0)  # the service's metrics.latencyMs
    assert o.client_latency_p50_ms is not None and o.client_latency_p95_ms is not None
    assert 15.0 <= o.client_latency_p50_ms <= o.client_latency_p95_ms
    row = evaluation_table([EvaluationRow(overall=o)])[0]
    assert row["client_p50_ms"] == round(o.client_latency_p50_ms, 4)
    assert "judge" not in row  # no judge ran: no empty column


def test_old_records_without_client_latency_still_load() -> None:
    call = Invocation.model_validate(
        {"text": "x", "latency_s": 0.1, "input_tokens": 1, "output_tokens": 1}
    )
    assert call.client_latency_s is None and call.error is None


# -- Bedrock Model Evaluation (judge) ---------------------------------------------------------


def labelled(query: str) -> LabelledQuery:
    text = TEACHER.label_json(query)
    weights = {k: v for k, v in json.loads(text).items() if k != "reasoning"}
    return LabelledQuery(
        query=query,
        cell="visual/x/easy",
        difficulty="easy",
        dominant="visual",
        vocabulary="train",
        teacher_output=text,
        weights=weights,
    )


class S3Store:
    """An ObjectStore on a moto bucket, as the S3Bucket block adapter is in production."""

    def __init__(self, client: Any, bucket: str, folder: str) -> None:
        self.client, self.bucket, self.folder = client, bucket, folder

    def read(self, path: str) -> bytes | None:
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=f"{self.folder}/{path}")[
                "Body"
            ].read()
        except self.client.exceptions.NoSuchKey:
            return None
        return body

    def write(self, path: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=f"{self.folder}/{path}", Body=data)
        return self.uri(path)

    def delete(self, path: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=f"{self.folder}/{path}")

    def uri(self, path: str) -> str:
        return f"s3://{self.bucket}/{self.folder}/{path}"


@pytest.fixture
def judged(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeBedrock, BedrockBackend]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="router-judge")
        fake = FakeBedrock(responder=teacher_answers, s3=s3)
        backend = backend_for(
            fake,
            S3Store(s3, "router-judge", "runs"),
            bedrock_model_evaluation=True,
            judge_model_id=JUDGE,
        )
        yield fake, backend


def results_for(holdout: list[LabelledQuery]) -> list[EvaluationResult]:
    """A perfect candidate (the teacher's own answers), a flat baseline and the prior."""
    flat = json.dumps(
        {"visual": 0.25, "audio": 0.25, "transcription": 0.25, "metadata": 0.25, "reasoning": "?"}
    )
    out = []
    for role, responses in [
        ("candidate", [h.teacher_output for h in holdout]),
        ("baseline-claude haiku", [flat] * len(holdout)),
        ("prior", ["not json"] * len(holdout)),
    ]:
        out.append(
            EvaluationResult(
                target=ModelTarget(name=role, role=role, ref="x", prompt="student", priced_as=BASE),
                overall=None,
                slices={},
                responses=tuple(responses),
            )
        )
    return out


def test_judge_jobs_validate_and_scores_land_in_the_table(
    judged: tuple[FakeBedrock, BedrockBackend],
) -> None:
    fake, backend = judged
    holdout = [
        labelled(q)
        for q in ["red sports car drifting", "interview about inflation", "thunder and heavy rain"]
    ]

    results = judge_results(
        backend,
        results_for(holdout),
        tuple(holdout),
        TAXONOMY,
        "default-0f3a9c21",
        interval_s=0,
        timeout_s=60,
        logger=logging.getLogger("test"),
    )

    requests = fake.calls_to("create_evaluation_job")
    assert len(requests) == 2  # three models, at most two per job
    model = fake.control.meta.service_model
    for request in requests:
        assert request_violations(model, "CreateEvaluationJob", request) == []
        custom = request["evaluationConfig"]["automated"]["customMetricConfig"]
        metric = custom["customMetrics"][0]["customMetricDefinition"]
        assert [item["value"]["floatValue"] for item in metric["ratingScale"]] == [5, 4, 3, 2, 1]
        assert (
            "{{prediction}}" in metric["instructions"]
            and "{{ground_truth}}" in metric["instructions"]
        )
        assert custom["evaluatorModelConfig"]["bedrockEvaluatorModels"] == [
            {"modelIdentifier": JUDGE}
        ]
    assert [
        m["precomputedInferenceSource"]["inferenceSourceIdentifier"]
        for r in requests
        for m in r["inferenceConfig"]["models"]
    ] == [
        "candidate",
        "baseline-claude-haiku",
        "prior",
    ]
    scores = {r.target.role: r.judge_score for r in results}
    assert scores["candidate"] == 5.0
    assert scores["prior"] == 1.0
    assert 1.0 < (scores["baseline-claude haiku"] or 0) < 5.0
    assert all(r.responses == () for r in results)  # raw answers dropped once judged
    assert all(r.judge_n == 3 for r in results)


def test_judge_job_failed_raises_the_service_messages(
    judged: tuple[FakeBedrock, BedrockBackend],
) -> None:
    fake, backend = judged
    fake.fail_evaluation_with = [
        "The evaluator model is not enabled in this account",
        "Role cannot read s3://router-judge",
    ]
    holdout = [labelled("waves crashing on rocks")]
    with pytest.raises(JudgeJobFailed, match=r"evaluator model is not enabled.*; Role cannot read"):
        judge_results(
            backend,
            results_for(holdout)[:1],
            tuple(holdout),
            TAXONOMY,
            "default-run",
            interval_s=0,
            timeout_s=60,
            logger=logging.getLogger("test"),
        )


def test_judge_refuses_to_start_without_a_judge_model(tmp_path: Path) -> None:
    fake = FakeBedrock()
    backend = backend_for(fake, DirectoryStore(tmp_path), bedrock_model_evaluation=True)
    with pytest.raises(UserInputError, match="judge_model_id is not set"):
        backend.judge_job_request(
            "x-judge-0", "s3://b/d.jsonl", "s3://b/out/", [], TAXONOMY.signal_names
        )
    assert fake.calls_to("create_evaluation_job") == []


def test_judge_job_names_and_instructions_fit_the_service() -> None:
    name = judge_job_name("My_Router.News-" + "x" * 80, 3)
    assert len(name) <= 63 and name.endswith("-judge-3")
    assert re.fullmatch(r"[a-z0-9](-*[a-z0-9]){0,62}", name)
    assert len(rubric_instructions(TAXONOMY.signal_names)) <= 5000


def test_judge_scores_fold_into_results_by_role() -> None:
    from intent_router.backends.base import JudgeScore

    results = results_for([labelled("a cat meowing")])
    folded = with_judge_scores(results, [JudgeScore(identifier="candidate", mean_score=4.5, n=1)])
    assert [r.judge_score for r in folded] == [4.5, None, None]
    assert JudgeTarget(identifier="a", name="a", responses=()).responses == ()
