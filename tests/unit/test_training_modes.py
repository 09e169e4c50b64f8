"""Training modes: what each asks of Bedrock, what the pipeline labels and what the run costs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from intent_router.backends.bedrock import BedrockSettings, metadata_filters
from intent_router.backends.bedrock_plan import plan_estimate, request_plan
from intent_router.backends.local import LocalBackend
from intent_router.dataset import training_record
from intent_router.errors import UserInputError
from intent_router.params import DistillParams
from intent_router.planning import distillation_request
from intent_router.preflight import CostEstimate, CostLine, check_budget
from intent_router.prompts import teacher_prompt, teacher_user_message
from intent_router.storage import DirectoryStore
from intent_router.taxonomy import builtin_taxonomy
from intent_router.training_modes import (
    TrainingMode,
    check_training_mode,
    choose_examples,
    invocation_logs_source,
    teacher_response_tokens,
)
from tests.support.fake_bedrock import FakeBedrock

TAXONOMY = builtin_taxonomy()
SETTINGS = BedrockSettings(role_arn="arn:aws:iam::123456789012:role/router-distill")
SMALL = DistillParams(train_count=200, holdout_count=50, novel_vocabulary_count=0, batches=2)


@pytest.mark.parametrize("mode", list(TrainingMode))
def test_every_mode_has_a_complete_valid_request_plan(mode: TrainingMode) -> None:
    plan = request_plan(SMALL, TAXONOMY, SETTINGS, "router-bucket", mode=mode)
    assert [p.violations for p in plan if p.violations] == []
    job = next(p.example for p in plan if p.operation == "CreateModelCustomizationJob")
    if mode is TrainingMode.FINE_TUNE_LABELLED:
        assert job["customizationType"] == "FINE_TUNING" and "customizationConfig" not in job
        assert job["hyperParameters"]["epochCount"] == "2"
    else:
        teacher = job["customizationConfig"]["distillationConfig"]["teacherModelConfig"]
        assert teacher["maxResponseLengthForInference"] == teacher_response_tokens(TAXONOMY)
    assert ("invocationLogsConfig" in job["trainingDataConfig"]) == (
        mode is TrainingMode.DISTILL_INVOCATION_LOGS
    )


@pytest.mark.parametrize("mode", list(TrainingMode))
def test_the_fake_accepts_each_modes_job(mode: TrainingMode) -> None:
    plan = request_plan(SMALL, TAXONOMY, SETTINGS, "router-bucket", mode=mode)
    job = next(p.example for p in plan if p.operation == "CreateModelCustomizationJob")
    assert FakeBedrock().control.create_model_customization_job(**job)["jobArn"]


def test_the_fake_rejects_what_a_fine_tuning_job_cannot_take() -> None:
    plan = request_plan(SMALL, TAXONOMY, SETTINGS, "bkt", mode=TrainingMode.FINE_TUNE_LABELLED)
    job = next(p.example for p in plan if p.operation == "CreateModelCustomizationJob")
    fake = FakeBedrock()
    with pytest.raises(fake.control.exceptions.ValidationException, match="outside"):
        fake.control.create_model_customization_job(
            **{**job, "hyperParameters": {"epochCount": "9"}}
        )
    distill = next(
        p.example
        for p in request_plan(SMALL, TAXONOMY, SETTINGS, "bkt", mode=TrainingMode.DISTILL_PROMPTS)
        if p.operation == "CreateModelCustomizationJob"
    )
    with pytest.raises(fake.control.exceptions.ValidationException, match="customizationConfig"):
        fake.control.create_model_customization_job(
            **{**job, "customizationConfig": distill["customizationConfig"]}
        )


def test_metadata_filters_fit_the_service_model() -> None:
    assert metadata_filters({"app": "search"}) == {"equals": {"app": "search"}}
    assert metadata_filters({"b": "2", "a": "1"}) == {
        "andAll": [{"equals": {"a": "1"}}, {"equals": {"b": "2"}}]
    }
    with pytest.raises(UserInputError, match="at most 16"):
        metadata_filters({str(i): "x" for i in range(17)})


def test_a_backend_refuses_a_mode_it_cannot_run() -> None:
    local = LocalBackend.training_modes
    with pytest.raises(UserInputError, match="not available on the local backend"):
        check_training_mode(
            "distill-invocation-logs", "local", TrainingMode.FINE_TUNE_LABELLED, local
        )
    assert (
        check_training_mode("auto", "local", TrainingMode.FINE_TUNE_LABELLED, local)
        is TrainingMode.FINE_TUNE_LABELLED
    )
    with pytest.raises(UserInputError, match="unknown training mode 'distil'"):
        check_training_mode("distil", "local", TrainingMode.FINE_TUNE_LABELLED, local)


def test_invocation_logs_come_from_the_parameter_or_the_traffic() -> None:
    logs = TrainingMode.DISTILL_INVOCATION_LOGS
    assert invocation_logs_source(logs, "s3://b/logs", "none", "") == "s3://b/logs/"
    assert invocation_logs_source(logs, None, "invocation-logs", "s3://b/AWSLogs") == (
        "s3://b/AWSLogs/"
    )
    assert invocation_logs_source(TrainingMode.DISTILL_PROMPTS, "s3://b/x", "none", "") is None
    with pytest.raises(UserInputError, match="needs the router's invocation logs"):
        invocation_logs_source(logs, None, "file", "/tmp/log.jsonl")


def test_invocation_logs_parameter_must_be_an_s3_prefix() -> None:
    with pytest.raises(ValueError, match="invocation_logs"):
        DistillParams(invocation_logs="/var/log/bedrock")


def test_examples_cover_every_signal_in_order() -> None:
    dominants = ["visual"] * 10 + ["audio"] * 3 + ["metadata"] + ["transcription"] * 5
    chosen = choose_examples(dominants, 6)
    assert len(chosen) == 6 and chosen == sorted(chosen)
    assert {dominants[i] for i in chosen} == {"visual", "audio", "metadata", "transcription"}
    assert choose_examples(dominants, 100) == list(range(len(dominants)))
    assert choose_examples(dominants, 0) == []


def test_the_jobs_teacher_gets_room_for_the_routing_json() -> None:
    tokens = teacher_response_tokens(TAXONOMY)
    assert tokens % 50 == 0 and 100 <= tokens <= 4096
    widest = json.dumps({**{s: 0.125 for s in TAXONOMY.signal_names}, "reasoning": "x" * 400})
    assert tokens * 4 >= len(widest)


def test_mode_changes_the_job_identity_but_labelled_jobs_keep_their_names() -> None:
    def request(**mode: TrainingMode) -> str:  # no mode: the default, as before modes existed
        return distillation_request(
            router="default",
            dataset_sha256="ab" * 32,
            training_path="t",
            training_uri="s3://b/t",
            output_prefix="o",
            taxonomy=TAXONOMY,
            backend_name="bedrock",
            student_config={},
            **mode,
        ).token

    tokens = {request(mode=m) for m in TrainingMode}
    assert len(tokens) == 3
    assert request() == request(mode=TrainingMode.FINE_TUNE_LABELLED)


# -- cost ----------------------------------------------------------------------------------------


def estimates() -> dict[TrainingMode, CostEstimate]:
    return {m: plan_estimate(SMALL, TAXONOMY, SETTINGS, m) for m in TrainingMode}


def test_only_fine_tuning_pays_the_pipeline_for_training_labels() -> None:
    by_mode = estimates()
    labelling = {
        m: next(line for line in e.lines if line.item.startswith("pipeline labelling"))
        for m, e in by_mode.items()
    }
    prompts, logs, labelled = (
        by_mode[TrainingMode.DISTILL_PROMPTS],
        by_mode[TrainingMode.DISTILL_INVOCATION_LOGS],
        by_mode[TrainingMode.FINE_TUNE_LABELLED],
    )
    assert prompts.pipeline_training_labels == logs.pipeline_training_labels == 0
    assert labelled.pipeline_training_labels == SMALL.train_count
    assert (
        labelling[TrainingMode.DISTILL_PROMPTS].calls
        < labelling[TrainingMode.FINE_TUNE_LABELLED].calls
    )
    # The job's teacher is billed in the distillation modes only, once per training prompt.
    in_job = [line for line in prompts.lines if line.item.startswith("teacher inference")]
    assert len(in_job) == 1 and in_job[0].calls == SMALL.train_count and in_job[0].usd
    assert not [line for line in labelled.lines if line.item.startswith("teacher inference")]
    examples = [line for line in prompts.lines if line.item.startswith("curated examples")]
    assert examples[0].calls == SMALL.prompt_examples


def test_logged_responses_need_no_teacher_inside_the_job() -> None:
    params = SMALL.model_copy(update={"invocation_logs_use_responses": True})
    estimate = plan_estimate(params, TAXONOMY, SETTINGS, TrainingMode.DISTILL_INVOCATION_LOGS)
    line = next(line for line in estimate.lines if line.item.startswith("teacher inference"))
    assert line.calls == 0 and line.usd == 0


def test_every_paid_thing_has_a_line_and_prices_can_be_set() -> None:
    estimate = plan_estimate(SMALL, TAXONOMY, SETTINGS, TrainingMode.DISTILL_PROMPTS)
    items = [line.item for line in estimate.lines]
    for prefix in (
        "pipeline labelling",
        "curated examples",
        "teacher inference inside the job",
        "student training",
        "custom model storage",
        "evaluation: candidate",
        "drift monitor",
    ):
        assert any(item.startswith(prefix) for item in items), prefix
    assert estimate.unpriced == [i for i in items if i.startswith(("student", "custom"))]
    priced = SETTINGS.model_copy(
        update={"training_usd_per_1k_tokens": 0.001, "storage_usd_per_model_month": 1.95}
    )
    full = plan_estimate(SMALL, TAXONOMY, priced, TrainingMode.DISTILL_PROMPTS)
    assert full.unpriced == [] and full.known_usd > estimate.known_usd
    assert full.recurring_usd["per month"] == pytest.approx(1.95)


def test_unpriced_lines_block_a_budget_unless_allowed() -> None:
    estimate = CostEstimate(
        lines=(
            CostLine(item="labels", model_id="m", calls=1, input_tokens=1, output_tokens=1, usd=1),
            CostLine(
                item="training", model_id="t", calls=1, input_tokens=1, output_tokens=0, usd=None
            ),
        ),
        generated_queries=1,
        training_tokens=1,
    )
    check_budget(estimate, None)  # no budget: nothing to check
    with pytest.raises(UserInputError, match="no price for training"):
        check_budget(estimate, 100.0)
    check_budget(estimate, 100.0, allow_unpriced=True)
    with pytest.raises(UserInputError, match="exceeds the budget"):
        check_budget(estimate, 0.5, allow_unpriced=True)


# -- the local backend runs distill-prompts like the service ------------------------------------


def test_the_local_job_has_its_teacher_answer_prompt_only_records(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    backend = LocalBackend(store, max_iterations=20)
    queries = [
        f"{animal} {sound}"
        for animal in ("dog", "owl", "cat", "crow", "frog")
        for sound in (
            "barking",
            "hooting",
            "purring",
            "cawing",
            "croaking",
            "in the rain",
            "on a fence",
            "at night",
            "close up",
            "slow motion",
            "interview",
            "saying hello",
            "Nature 2019",
            "by the BBC",
            "sound effect",
            "with subtitles",
            "underwater",
            "in snow",
            "jumping",
            "eating",
        )
    ]
    system = teacher_prompt(TAXONOMY)
    records = [training_record(teacher_user_message(q), None, system) for q in queries]
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    store.write("datasets/t/train.jsonl", data)
    request = distillation_request(
        router="t",
        dataset_sha256="cd" * 32,
        training_path="datasets/t/train.jsonl",
        training_uri=store.uri("datasets/t/train.jsonl"),
        output_prefix="jobs-output/t",
        taxonomy=TAXONOMY,
        backend_name="local",
        student_config={},
        mode=TrainingMode.DISTILL_PROMPTS,
    )
    status = backend.job_status(backend.start_distillation(request, TAXONOMY).job_id)
    assert status.state == "Completed", status.failure_message
    assert status.metrics["records"] == len(queries)


def test_the_monitor_reads_the_queries_of_a_prompts_only_training_file(router_home: Path) -> None:
    from intent_router.drift import vocabulary
    from intent_router.registry import ChampionRecord
    from tasks.monitor import profile_training_data
    from tasks.runtime import Runtime

    runtime = Runtime()
    system = teacher_prompt(TAXONOMY)
    records = [
        training_record(teacher_user_message("otters sliding down a snowbank"), None, system),
        training_record(
            teacher_user_message("waves crashing"),
            '{"visual": 0.5, "audio": 0.3, "transcription": 0.1, "metadata": 0.1, '
            '"reasoning": "sound"}',
            system,
        ),
    ]
    runtime.store().write(
        "datasets/m/train.jsonl", "".join(json.dumps(r) + "\n" for r in records).encode()
    )
    champion = ChampionRecord(
        router="m",
        model_id="local-model/m",
        deployment_id="d",
        run_id="r",
        taxonomy="default",
        signals=TAXONOMY.signal_names,
        metrics={},
        promoted_at="2026-12-01T00:00:00+00:00",
        training_data="datasets/m/train.jsonl",
        training_mode="distill-prompts",
        prompt="teacher",
    )
    profile = profile_training_data.fn(champion, TAXONOMY, runtime)
    assert profile is not None and profile.queries == 2
    # The query's words, not the teacher message's wrapper around it.
    assert profile.tokens == frozenset(
        vocabulary(["otters sliding down a snowbank", "waves crashing"])
    )
