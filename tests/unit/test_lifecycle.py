"""Lifecycle logic: attempts, tags, stable names, rejected-model clean-up, janitor verdicts,
and the Bedrock backend's lifecycle calls against the validated fake (moto for SSM)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from intent_router.backends.base import DistillationRequest
from intent_router.backends.bedrock import BedrockBackend, BedrockSettings
from intent_router.backends.bedrock_validation import request_violations
from intent_router.errors import DeploymentUpdateRefused, DistillationJobFailed
from intent_router.gate import GateDecision
from intent_router.lifecycle import (
    RejectedModel,
    RejectedModels,
    RouterHoldings,
    TaggedResource,
    attempt_request,
    classify,
    holdings,
    models_to_delete,
    resource_tags,
    stable_deployment_name,
)
from intent_router.outcome import plan_outcome, serve_from
from intent_router.planning import distillation_request
from intent_router.registry import ChampionRecord, LedgerEntry
from intent_router.storage import DirectoryStore
from intent_router.taxonomy import builtin_taxonomy
from tests.support.fake_bedrock import FakeBedrock, real_client

ROLE = "arn:aws:iam::123456789012:role/router-distill-bedrock"
TAXONOMY = builtin_taxonomy()
NAME = re.compile(r"([0-9a-zA-Z][_-]?){1,63}")


def request(router: str = "default", **changes: Any) -> DistillationRequest:
    values: dict[str, Any] = {
        "job_name": f"{router}-distill-0123456789ab",
        "model_name": f"{router}-student-0123456789ab",
        "token": "f" * 64,
        "training_path": "datasets/default/x/train.jsonl",
        "training_uri": "s3://bucket/runs/datasets/default/x/train.jsonl",
        "output_prefix": "jobs-output/default/0123456789ab",
        "dataset_sha256": "a" * 64,
        "signals": TAXONOMY.signal_names,
        "tags": resource_tags(router, "run-1", "a" * 64),
    }
    values.update(changes)
    return DistillationRequest(**values)


class S3Named(DirectoryStore):
    """A directory store whose URIs look like the bucket's (job requests need s3://)."""

    def uri(self, path: str) -> str:
        return f"s3://router-bucket/runs/{path}"


def backend(fake: FakeBedrock, tmp_path: Path, **settings: Any) -> BedrockBackend:
    return BedrockBackend(
        BedrockSettings(role_arn=ROLE, **settings),
        control=fake.control,
        runtime=fake.runtime,
        store=S3Named(tmp_path),
    )


def record(model: str, deployment: str = "dep-1", run: str = "run-1") -> ChampionRecord:
    return ChampionRecord(
        router="default",
        model_id=model,
        deployment_id=deployment,
        run_id=run,
        taxonomy="default",
        signals=TAXONOMY.signal_names,
        metrics={},
        promoted_at="2025-08-01T00:00:00+00:00",
    )


# -- attempts --------------------------------------------------------------------------------


def test_attempt_one_is_the_request_itself() -> None:
    assert attempt_request(request(), 1) == request()


def test_later_attempts_get_a_suffix_a_new_token_and_valid_names(tmp_path: Path) -> None:
    long_router = "r" + "-x" * 23 + "y"  # 48 characters, the longest router name
    base = distillation_request(
        router=long_router,
        dataset_sha256="a" * 64,
        training_path="datasets/x/train.jsonl",
        training_uri="s3://router-bucket/runs/datasets/x/train.jsonl",
        output_prefix="jobs-output/x",
        taxonomy=TAXONOMY,
        backend_name="bedrock",
        student_config={},
    )
    second, third = attempt_request(base, 2), attempt_request(base, 3)
    assert second.job_name.endswith("-a2") and third.model_name.endswith("-a3")
    assert len({base.token, second.token, third.token}) == 3
    assert attempt_request(base, 2).token == second.token  # deterministic
    assert second.output_prefix.endswith("/a2")
    job = backend(FakeBedrock(), tmp_path).job_request(second)
    assert (
        request_violations(
            real_client("bedrock").meta.service_model, "CreateModelCustomizationJob", job
        )
        == []
    )


def test_stable_deployment_name_fits_the_service_pattern() -> None:
    assert stable_deployment_name("default") == "default-serving"
    for router in ("a--b", "abc-", "r" + "-x" * 23 + "y"):
        name = stable_deployment_name(router)
        assert NAME.fullmatch(name) and len(name) <= 63, name


def test_a_failed_job_gets_attempt_two_and_a_retry_finds_it(tmp_path: Path) -> None:
    fake = FakeBedrock(job_polls_to_finish=0, fail_job_with="Validation failed: bad role")
    bedrock = backend(fake, tmp_path)
    first = bedrock.start_distillation(request(), TAXONOMY)
    assert first.attempt == 1 and fake.jobs[first.job_id].status == "Failed"

    fake.fail_job_with = None
    fake.job_polls_to_finish = 3
    second = bedrock.start_distillation(request(), TAXONOMY)
    retried = bedrock.start_distillation(request(), TAXONOMY)  # e.g. a task retry

    assert second.attempt == 2 and second.job_name == request().job_name + "-a2"
    assert [e.failure_message for e in second.earlier] == ["Validation failed: bad role"]
    assert retried.job_id == second.job_id
    assert len(fake.calls_to("create_model_customization_job")) == 2
    tags = {t["key"]: t["value"] for t in fake.tags[second.job_id]}
    assert tags == {
        "product": "router-distill",
        "router": "default",
        "run-id": "run-1",
        "dataset-sha256": "a" * 64,
    }


def test_stopped_job_and_completed_job_whose_model_is_gone_get_new_attempts(
    tmp_path: Path,
) -> None:
    fake = FakeBedrock(job_polls_to_finish=1, model_polls_to_active=0)
    bedrock = backend(fake, tmp_path)
    first = bedrock.start_distillation(request(), TAXONOMY)
    assert bedrock.stop_job(first.job_id) is True
    second = bedrock.start_distillation(request(), TAXONOMY)
    assert second.attempt == 2 and second.earlier[0].state == "Stopped"

    assert bedrock.job_status(second.job_id).state == "Completed"
    model = fake.jobs[second.job_id].output_model_arn
    assert model is not None
    bedrock.delete_model(model)
    third = bedrock.start_distillation(request(), TAXONOMY)
    assert third.attempt == 3 and "no longer exists" in (third.earlier[-1].failure_message or "")


def test_attempts_stop_at_the_limit_with_the_last_message(tmp_path: Path) -> None:
    fake = FakeBedrock(job_polls_to_finish=0, fail_job_with="quota exceeded")
    bedrock = backend(fake, tmp_path, max_job_attempts=2)
    bedrock.start_distillation(request(), TAXONOMY)
    bedrock.start_distillation(request(), TAXONOMY)
    with pytest.raises(DistillationJobFailed, match=r"2 attempts.*quota exceeded"):
        bedrock.start_distillation(request(), TAXONOMY)
    assert len(fake.jobs) == 2


def test_stop_of_an_ended_job_is_not_an_error(tmp_path: Path) -> None:
    fake = FakeBedrock(job_polls_to_finish=0)
    bedrock = backend(fake, tmp_path)
    job = bedrock.start_distillation(request(), TAXONOMY)
    assert bedrock.stop_job(job.job_id) is False
    assert fake.calls_to("stop_model_customization_job")  # the call was made, Conflict swallowed


def test_refused_update_is_a_typed_error(tmp_path: Path) -> None:
    fake = FakeBedrock(job_polls_to_finish=0, model_polls_to_active=0, deployment_polls_to_active=0)
    bedrock = backend(fake, tmp_path)
    model = fake.jobs[bedrock.start_distillation(request(), TAXONOMY).job_id].output_model_arn
    assert model is not None
    deployment = bedrock.deploy(model, "default-serving", "t" * 20)
    fake.refuse_update_with = "not supported for this model"
    with pytest.raises(DeploymentUpdateRefused, match="not supported"):
        bedrock.update_deployment(deployment, model)


def test_ssm_parameter_holds_the_serving_arn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        ssm = boto3.client("ssm", region_name="us-east-1")
        bedrock = BedrockBackend(
            BedrockSettings(role_arn=ROLE, ssm_parameter_name="/router-distill/{router}/arn"),
            control=FakeBedrock().control,
            runtime=None,
            store=DirectoryStore(tmp_path),
            ssm=ssm,
        )
        bedrock.publish_serving("news", "arn:one")
        bedrock.publish_serving("news", "arn:two")
        found = ssm.get_parameter(Name="/router-distill/news/arn")["Parameter"]["Value"]
    assert found == "arn:two"


def test_tagged_resources_lists_only_this_products(tmp_path: Path) -> None:
    fake = FakeBedrock(job_polls_to_finish=2, model_polls_to_active=0)
    bedrock = backend(fake, tmp_path)
    running = bedrock.start_distillation(request(), TAXONOMY)
    other = request(job_name="x-distill-1", model_name="x-student-1", token="e" * 64, tags={})
    bedrock.start_distillation(other, TAXONOMY)
    found = bedrock.tagged_resources()
    assert [(r.kind, r.arn, r.run_id) for r in found] == [("job", running.job_id, "run-1")]


# -- rejected models and the outcome ---------------------------------------------------------


def test_rejected_models_beyond_keep_are_deleted_oldest_first(tmp_path: Path) -> None:
    store = RejectedModels(DirectoryStore(tmp_path), "default")
    for model in ("m1", "m2", "m3", "m4"):
        store.add(model, "run")
    store.add("m1", "run")  # recorded once
    entries = store.entries()
    assert models_to_delete(entries, keep=2, protected={"m2"}) == ["m1"]
    assert models_to_delete(entries, keep=0, protected=set()) == ["m1", "m2", "m3", "m4"]
    store.mark_deleted(["m1"])
    assert models_to_delete(store.entries(), keep=2, protected=set()) == ["m2"]


def test_serve_from_keeps_the_stable_deployment_and_retires_the_candidates() -> None:
    decision = GateDecision(promote=True, checks=[], summary="better")
    champion = record("m-old", "stable-arn")
    ledger = [LedgerEntry(entry=1, action="promote", at="t", champion=champion)]
    plan = plan_outcome(
        champion=champion,
        candidate=record("m-new", "candidate-arn"),
        decision=decision,
        ledger=ledger,
    )
    assert [r.deployment_id for r in plan.retire] == ["stable-arn"]  # superseded, as before

    served = serve_from(plan, "stable-arn")

    assert served.new_champion is not None and served.new_champion.deployment_id == "stable-arn"
    assert [r.deployment_id for r in served.retire] == ["candidate-arn"]
    assert serve_from(plan, "candidate-arn").retire == plan.retire  # the fallback


# -- janitor verdicts ------------------------------------------------------------------------


def resource(kind: str, arn: str, run: str, model_arn: str | None = None) -> TaggedResource:
    return TaggedResource.model_validate(
        {
            "kind": kind,
            "arn": arn,
            "name": arn.rsplit("/", 1)[-1],
            "status": "Active",
            "tags": resource_tags("default", run),
            "model_arn": model_arn,
        }
    )


def test_janitor_keeps_what_routers_and_running_runs_hold() -> None:
    champion = record("m-champ", "arn/default-serving")
    ledger = [
        LedgerEntry(entry=1, action="promote", at="t", champion=record("m-old")),
        LedgerEntry(entry=2, action="promote", at="t", champion=champion),
    ]
    rejected = [RejectedModel(model_id="m-rej", run_id="r", at="t")]
    held = {"default": holdings("default", champion, ledger, rejected, keep_rejected=1)}
    resources = [
        resource("deployment", "arn/default-serving", "r-ended", "m-champ"),
        resource("model", "m-champ", "r-ended"),
        resource("model", "m-old", "r-ended"),
        resource("model", "m-rej", "r-ended"),
        resource("deployment", "arn/orphan-dep", "r-ended", "m-orphan"),
        resource("model", "m-orphan", "r-ended"),
        resource("model", "m-busy", "r-running"),
        resource("job", "job-x", "r-unknown"),
    ]
    runs: dict[str, Any] = {"r-ended": "ended", "r-running": "running", "r-unknown": "unknown"}
    verdicts = {v.resource.arn: v for v in classify(resources, held, runs)}
    assert {arn for arn, v in verdicts.items() if v.orphan} == {"arn/orphan-dep", "m-orphan"}
    assert verdicts["m-old"].reason == "in the ledger"
    assert "kept" in verdicts["m-rej"].reason
    assert "unknown" in verdicts["job-x"].reason
    unreadable = {"default": RouterHoldings(unreadable="ledger corrupt")}
    assert not any(v.orphan for v in classify(resources, unreadable, runs))
