"""The fake's lifecycle operations: deployment updates, model deletion and listing, tags, stop."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError, ParamValidationError

from intent_router.backends.bedrock_validation import response_violations
from tests.support.fake_bedrock import FakeBedrock
from tests.unit.test_fake_bedrock import (
    active_deployment,
    error_of,
    job_request,
    method_name,
    run_job,
)


def second_model(fake: FakeBedrock) -> str:
    """Another Active model (a second job, other name and token)."""
    arn: str = run_job(
        fake,
        jobName="router-distill-r43",
        customModelName="router-micro-r43",
        clientRequestToken="r43-1b2c",
    )["outputModelArn"]
    while fake.control.get_custom_model(modelIdentifier=arn)["modelStatus"] != "Active":
        pass
    return arn


def describe(fake: FakeBedrock, arn: str) -> dict[str, Any]:
    found: dict[str, Any] = fake.control.get_custom_model_deployment(
        customModelDeploymentIdentifier=arn
    )
    return found


@pytest.fixture
def fake() -> FakeBedrock:
    return FakeBedrock()


def test_update_swaps_the_model_over_polls_and_stays_active(fake: FakeBedrock) -> None:
    deployment = active_deployment(fake)
    old = fake.deployments[deployment].model_arn
    new = second_model(fake)

    out = fake.control.update_custom_model_deployment(
        customModelDeploymentIdentifier=deployment, modelArn=new
    )

    assert out["customModelDeploymentArn"] == deployment
    first = describe(fake, deployment)
    assert first["status"] == "Active" and first["modelArn"] == old
    assert first["updateDetails"] == {"modelArn": new, "updateStatus": "Updating"}
    second = describe(fake, deployment)
    assert second["updateDetails"]["updateStatus"] == "UpdateCompleted"
    assert second["modelArn"] == new and second["status"] == "Active"


def test_update_failed_keeps_the_old_model_and_says_why() -> None:
    fake = FakeBedrock(fail_update_with="capacity for the new model unavailable")
    deployment = active_deployment(fake)
    old = fake.deployments[deployment].model_arn
    fake.control.update_custom_model_deployment(
        customModelDeploymentIdentifier=deployment, modelArn=second_model(fake)
    )
    describe(fake, deployment)
    final = describe(fake, deployment)
    assert final["updateDetails"]["updateStatus"] == "UpdateFailed"
    assert final["modelArn"] == old and "capacity" in final["failureMessage"]


def test_update_refused_is_a_validation_error() -> None:
    fake = FakeBedrock(refuse_update_with="Updating this deployment is not supported.")
    deployment = active_deployment(fake)
    with pytest.raises(ClientError) as caught:
        fake.control.update_custom_model_deployment(
            customModelDeploymentIdentifier=deployment, modelArn=second_model(fake)
        )
    assert error_of(caught) == ("ValidationException", 400)


def test_update_while_updating_or_with_a_bad_arn_is_rejected(fake: FakeBedrock) -> None:
    deployment = active_deployment(fake)
    new = second_model(fake)
    fake.control.update_custom_model_deployment(
        customModelDeploymentIdentifier=deployment, modelArn=new
    )
    with pytest.raises(ClientError) as caught:
        fake.control.update_custom_model_deployment(
            customModelDeploymentIdentifier=deployment, modelArn=new
        )
    assert error_of(caught)[0] == "ValidationException"
    with pytest.raises(ParamValidationError):
        fake.control.update_custom_model_deployment(
            customModelDeploymentIdentifier=deployment, modelArn="not-an-arn"
        )


def test_model_in_use_cannot_be_deleted_until_its_deployment_is(fake: FakeBedrock) -> None:
    deployment = active_deployment(fake)
    model = fake.deployments[deployment].model_arn
    with pytest.raises(ClientError) as caught:
        fake.control.delete_custom_model(modelIdentifier=model)
    assert error_of(caught) == ("ConflictException", 400)

    fake.control.delete_custom_model_deployment(customModelDeploymentIdentifier=deployment)
    fake.control.delete_custom_model(modelIdentifier=model)

    assert model in fake.deleted_models and model not in fake.models
    with pytest.raises(ClientError) as gone:
        fake.control.get_custom_model(modelIdentifier=model)
    assert error_of(gone)[0] == "ResourceNotFoundException"


def test_list_custom_models_pages_with_botocores_paginator(fake: FakeBedrock) -> None:
    first = run_job(fake)["outputModelArn"]
    second = second_model(fake)
    pages = fake.control.get_paginator("list_custom_models").paginate(
        PaginationConfig={"PageSize": 1}
    )
    listed = [m["modelArn"] for page in pages for m in page["modelSummaries"]]
    assert sorted(listed) == sorted([first, second])
    only = fake.control.list_custom_models(nameContains="r43")["modelSummaries"]
    assert [m["modelArn"] for m in only] == [second]


def test_tags_from_creation_and_tag_resource_overwrites(fake: FakeBedrock) -> None:
    tags = [{"key": "router", "value": "default"}, {"key": "run-id", "value": "run-1"}]
    job = run_job(fake, jobTags=tags, customModelTags=tags)
    listed = fake.control.list_tags_for_resource(resourceARN=job["jobArn"])["tags"]
    assert listed == tags
    model_tags = fake.control.list_tags_for_resource(resourceARN=job["outputModelArn"])["tags"]
    assert model_tags == tags

    fake.control.tag_resource(resourceARN=job["jobArn"], tags=[{"key": "run-id", "value": "run-2"}])
    after = fake.control.list_tags_for_resource(resourceARN=job["jobArn"])["tags"]
    assert {t["key"]: t["value"] for t in after} == {"router": "default", "run-id": "run-2"}
    with pytest.raises(ClientError) as caught:
        fake.control.list_tags_for_resource(
            resourceARN="arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/"
            "000000000000"
        )
    assert error_of(caught)[0] == "ResourceNotFoundException"


def test_stop_goes_stopping_then_stopped(fake: FakeBedrock) -> None:
    arn = fake.control.create_model_customization_job(**job_request())["jobArn"]
    fake.control.stop_model_customization_job(jobIdentifier=arn)
    assert fake.jobs[arn].status == "Stopping"
    assert fake.control.get_model_customization_job(jobIdentifier=arn)["status"] == "Stopped"


def test_lifecycle_responses_match_their_output_shapes(
    fake: FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the fake must never call the real client")

    monkeypatch.setattr(BaseClient, "_make_api_call", no_network)
    deployment = active_deployment(fake)
    spare = second_model(fake)
    fake.control.update_custom_model_deployment(
        customModelDeploymentIdentifier=deployment, modelArn=spare
    )
    old = next(m for m in fake.models if m != spare)
    tags = [{"key": "router", "value": "default"}]
    calls: list[tuple[str, dict[str, Any]]] = [
        ("GetCustomModelDeployment", {"customModelDeploymentIdentifier": deployment}),
        ("GetCustomModelDeployment", {"customModelDeploymentIdentifier": deployment}),
        ("ListCustomModels", {}),
        ("TagResource", {"resourceARN": deployment, "tags": tags}),
        ("ListTagsForResource", {"resourceARN": deployment}),
        ("DeleteCustomModel", {"modelIdentifier": old}),
    ]
    for operation, params in calls:
        response = getattr(fake.control, method_name(fake.control, operation))(**params)
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
        service_model = fake.control.meta.service_model
        assert response_violations(service_model, operation, response) == [], operation
