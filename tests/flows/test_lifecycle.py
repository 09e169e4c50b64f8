"""Lifecycle on the validated fake: stop on timeout, the stable deployment, rejected-model
clean-up, the published ARN, the janitor, and two whole runs (attempt 2; two promotions)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.variables import Variable

from intent_router.backends.bedrock import BedrockBackend, BedrockSettings
from intent_router.errors import DeploymentFailed, WaitTimeout
from intent_router.journal import RunJournal
from intent_router.lifecycle import RejectedModels, resource_tags
from intent_router.registry import ChampionRegistry
from router_distill.cli import main
from tasks.distill import wait_for_job
from tasks.lifecycle import (
    Serving,
    clean_up_rejected_models,
    publish_serving,
    serve_on_stable_deployment,
)
from tasks.runtime import Runtime
from tests.flows.test_bedrock_flow import PARAMS, aws  # noqa: F401  (aws is a fixture)
from tests.support.fake_bedrock import FakeBedrock
from tests.unit.test_lifecycle import ROLE, TAXONOMY, S3Named, record, request

BACKEND_REF = PARAMS["backend"]


@pytest.fixture
def bedrock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BedrockBackend:
    """A Bedrock backend on a fresh fake, handed to every task through Runtime."""
    fake = FakeBedrock(job_polls_to_finish=0, model_polls_to_active=0)
    backend = BedrockBackend(
        BedrockSettings(role_arn=ROLE, keep_rejected_models=1),
        control=fake.control,
        runtime=fake.runtime,
        store=S3Named(tmp_path),
    )
    backend.fake = fake  # type: ignore[attr-defined]
    monkeypatch.setattr(Runtime, "backend_client", lambda self: backend)
    monkeypatch.setattr(Runtime, "store", lambda self: backend.store)
    return backend


def fake_of(backend: BedrockBackend) -> FakeBedrock:
    fake: FakeBedrock = backend.fake  # type: ignore[attr-defined]
    return fake


def model(backend: BedrockBackend, n: int) -> str:
    """An Active custom model from job n."""
    job = backend.start_distillation(
        request(
            job_name=f"default-distill-{n}", model_name=f"default-student-{n}", token=f"{n}" * 20
        ),
        TAXONOMY,
    )
    arn = backend.job_status(job.job_id).model_id
    assert arn is not None
    return arn


def test_wait_timeout_stops_the_job(bedrock: BedrockBackend) -> None:
    fake = fake_of(bedrock)
    fake.job_polls_to_finish = 50
    job = bedrock.start_distillation(request(), TAXONOMY).job_id

    @flow
    def waiting() -> Any:
        return wait_for_job(job, Runtime(), 0, 0, "default")

    with pytest.raises(WaitTimeout):
        waiting()
    assert fake.calls_to("stop_model_customization_job") == [{"jobIdentifier": job}]
    assert fake.jobs[job].status == "Stopping"


def test_promotions_swap_the_model_of_one_stable_deployment(bedrock: BedrockBackend) -> None:
    fake = fake_of(bedrock)
    first, second = model(bedrock, 1), model(bedrock, 2)
    candidate = bedrock.deploy(second, "default-candidate-2", "c" * 20)
    tags = resource_tags("default", "run-2", "b" * 64)

    @flow
    def serve(model_id: str) -> Serving:
        return serve_on_stable_deployment(
            "default", model_id, candidate, Runtime(), tags=tags, interval_s=0, timeout_s=60
        )

    created = serve(first)
    updated = serve(second)

    assert created.action == "created" and updated.action == "updated"
    assert updated.deployment_id == created.deployment_id
    assert fake.deployments[created.deployment_id].name == "default-serving"
    assert fake.deployments[created.deployment_id].model_arn == second
    assert len(fake.calls_to("update_custom_model_deployment")) == 1
    assert {"key": "run-id", "value": "run-2"} in fake.tags[created.deployment_id]

    fake.refuse_update_with = "Updating this deployment is not supported."
    refused = serve(first)
    assert refused.action == "fallback" and refused.deployment_id == candidate
    assert "not supported" in refused.note

    fake.refuse_update_with = None
    fake.fail_update_with = "the new model could not be loaded"
    with pytest.raises(DeploymentFailed, match="could not be loaded"):
        serve(first)


def test_rejected_models_beyond_the_kept_one_are_deleted(bedrock: BedrockBackend) -> None:
    fake = fake_of(bedrock)
    champion, old, new = model(bedrock, 1), model(bedrock, 2), model(bedrock, 3)
    ChampionRegistry(bedrock.store, "default").promote(record(champion))

    @flow
    def reject(model_id: str) -> list[str]:
        return clean_up_rejected_models("default", model_id, "run-x", Runtime())

    assert reject(champion) == []  # a ledger model is never deleted
    assert reject(old) == []  # keep_rejected_models=1 keeps the newest
    assert reject(new) == [old]
    assert old in fake.deleted_models and new in fake.models and champion in fake.models
    entries = RejectedModels(bedrock.store, "default").entries()
    assert [(e.model_id, e.deleted) for e in entries if e.model_id != champion] == [
        (old, True),
        (new, False),
    ]


def test_the_serving_arn_is_published_as_a_prefect_variable(bedrock: BedrockBackend) -> None:
    @flow
    def publish(arn: str) -> None:
        publish_serving("news", arn, Runtime())

    publish("arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/abcdef123456")
    assert Variable.get("router-news-deployment-arn") == (
        "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/abcdef123456"
    )


def test_janitor_lists_and_deletes_orphans_but_keeps_the_champions(
    aws: FakeBedrock,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    runtime = Runtime(backend=BACKEND_REF, storage_block=PARAMS["storage_block"])
    backend = runtime.backend_client()
    aws.job_polls_to_finish = 0
    aws.model_polls_to_active = 0
    aws.deployment_polls_to_active = 0

    def job(n: int, run: str) -> str:
        tags = resource_tags("default", run, "a" * 64)
        sub = backend.start_distillation(
            request(
                job_name=f"default-distill-{n}",
                model_name=f"default-student-{n}",
                token=f"{n}" * 20,
                tags=tags,
            ),
            TAXONOMY,
        )
        return sub.job_id

    ended = str(uuid.uuid4())  # a run the Prefect API does not know: over
    champion_model = aws.jobs[job(1, ended)].output_model_arn
    orphan_model = aws.jobs[job(2, ended)].output_model_arn
    assert champion_model and orphan_model
    tags = resource_tags("default", ended)
    stable = backend.deploy(champion_model, "default-serving", "s" * 20, tags)
    orphan = backend.deploy(orphan_model, "default-student-2", "o" * 20, tags)
    ChampionRegistry(runtime.store(), "default").promote(record(champion_model, stable))

    @flow
    def idle() -> None:
        return None

    with get_client(sync_client=True) as client:
        running = str(client.create_flow_run(idle).id)  # scheduled, not over
    aws.job_polls_to_finish = 5
    busy = job(3, running)

    assert main(["janitor", "--backend", BACKEND_REF, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    orphans = {r["arn"] for r in listed["resources"] if r["orphan"]}
    assert orphans == {orphan, orphan_model}
    assert listed["actions"] == []
    reasons = {r["arn"]: r["reason"] for r in listed["resources"]}
    assert "still running" in reasons[busy]
    assert reasons[stable] == "champion's deployment"

    assert main(["janitor", "--backend", BACKEND_REF, "--delete"]) == 0
    printed = capsys.readouterr().out
    assert (
        f"deployment {orphan}: deleted" in printed and f"model {orphan_model}: deleted" in printed
    )
    assert orphan not in aws.deployments and orphan_model in aws.deleted_models
    assert stable in aws.deployments and champion_model in aws.models
    assert aws.jobs[busy].status == "InProgress"


def test_rerun_after_a_failed_job_starts_attempt_two(aws: FakeBedrock) -> None:  # noqa: F811
    from flows.distill import distill_router
    from intent_router.errors import DistillationJobFailed

    aws.fail_job_with = "Validation failed: the role cannot read the bucket"
    with pytest.raises(DistillationJobFailed, match="cannot read the bucket"):
        distill_router(**{**PARAMS, "seed": 21})
    aws.fail_job_with = None

    summary = distill_router(**{**PARAMS, "seed": 21})

    assert summary.outcome == "promoted"
    names = sorted(job.name for job in aws.jobs.values())
    assert len(names) == 2 and names[1] == names[0] + "-a2"
    assert summary.job_id == next(j.arn for j in aws.jobs.values() if j.name.endswith("-a2"))
    store = Runtime(backend=BACKEND_REF, storage_block=PARAMS["storage_block"]).store()
    assert summary.flow_run_id is not None
    [entry] = RunJournal(store, summary.flow_run_id).jobs()
    assert entry.attempt == 2 and "cannot read the bucket" in str(entry.earlier[0].failure_message)


def test_two_promotions_keep_one_deployment_arn(aws: FakeBedrock) -> None:  # noqa: F811
    from flows.distill import distill_router

    first = distill_router(**{**PARAMS, "seed": 31})
    arn = Variable.get("router-default-deployment-arn")
    second = distill_router(**{**PARAMS, "seed": 32})

    assert first.outcome == second.outcome == "promoted"
    assert first.model_id != second.model_id
    assert first.deployment_id == second.deployment_id == arn
    assert Variable.get("router-default-deployment-arn") == arn
    assert list(aws.deployments) == [arn]  # the candidates' own deployments are gone
    assert aws.deployments[arn].name == "default-serving"
    assert aws.deployments[arn].model_arn == second.model_id
    assert [c["modelArn"] for c in aws.calls_to("update_custom_model_deployment")] == [
        second.model_id
    ]
    store = Runtime(backend=BACKEND_REF, storage_block=PARAMS["storage_block"]).store()
    ledger = ChampionRegistry(store, "default").ledger()
    assert [e.champion.deployment_id for e in ledger] == [arn, arn]
    assert "updated" in ledger[-1].note
    tags = {t["key"]: t["value"] for t in aws.tags[arn]}
    assert tags["run-id"] == second.flow_run_id and tags["router"] == "default"
