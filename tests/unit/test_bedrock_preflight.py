"""Setup checks of a Bedrock run: each fails on a bad value with the value and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from intent_router.backends.base import raise_for_failed
from intent_router.backends.bedrock import BedrockBackend, BedrockSettings
from intent_router.backends.bedrock_preflight import (
    bucket_region_of,
    check_bucket_region,
    check_deployment_region,
    check_profile_prefix,
    check_role_arn,
    check_student_base_model,
    check_teacher_model,
    offline_checks,
    split_model_id,
)
from intent_router.errors import UserInputError
from intent_router.storage import DirectoryStore
from tests.support.fake_bedrock import FakeBedrock

ROLE = "arn:aws:iam::123456789012:role/router-distill-bedrock"
PREMIER = "amazon.nova-premier-v1:0"


def catalog(fake: FakeBedrock, **filters: Any) -> list[dict[str, Any]]:
    summaries: list[dict[str, Any]] = fake.control.list_foundation_models(**filters)[
        "modelSummaries"
    ]
    return summaries


def test_deployment_region() -> None:
    assert check_deployment_region("us-west-2").passed is True
    bad = check_deployment_region("eu-west-1")
    assert bad.passed is False
    assert "'eu-west-1' does not offer on-demand custom-model deployment" in bad.detail
    assert "us-east-1, us-west-2" in bad.detail and "deploy-custom-model-on-demand" in bad.detail


@pytest.mark.parametrize(
    ("model_id", "region"),
    [
        (f"us.{PREMIER}", "us-east-1"),
        (f"eu.{PREMIER}", "eu-central-1"),
        (f"global.{PREMIER}", "ap-south-1"),
        (f"arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.{PREMIER}", "us-west-2"),
        ("amazon.nova-micro-v1:0", "eu-west-1"),
    ],
)
def test_profile_prefix_that_fits(model_id: str, region: str) -> None:
    assert check_profile_prefix("teacher", model_id, region).passed is True


def test_profile_prefix_of_another_geography_names_the_fitting_profile() -> None:
    bad = check_profile_prefix("teacher", f"us.{PREMIER}", "eu-west-1")
    assert bad.passed is False
    assert f"teacher 'us.{PREMIER}' is a us. cross-Region profile" in bad.detail
    assert f"use eu.{PREMIER}" in bad.detail
    assert check_profile_prefix("teacher", f"us.{PREMIER}", "us-gov-west-1").passed is False
    assert check_profile_prefix("teacher", f"apac.{PREMIER}", "us-east-1").passed is False


def test_split_model_id() -> None:
    assert split_model_id(f"us-gov.{PREMIER}") == ("us-gov.", PREMIER)
    assert split_model_id(f"arn:aws:bedrock:us-east-1::foundation-model/{PREMIER}") == (
        None,
        PREMIER,
    )


def test_role_arn_shape_and_partition() -> None:
    assert check_role_arn("role_arn", ROLE, "us-east-1").passed is True
    malformed = check_role_arn("role_arn", "router-distill-bedrock", "us-east-1")
    assert malformed.passed is False and "is not an IAM role ARN" in malformed.detail
    gov = check_role_arn("batch_role_arn", ROLE, "us-gov-west-1")
    assert gov.passed is False
    assert "partition aws, but us-gov-west-1 is in aws-us-gov" in gov.detail
    assert "arn:aws-us-gov:iam::" in gov.detail


def test_student_base_model_must_be_distillable_in_the_region() -> None:
    fake = FakeBedrock()
    distillable = catalog(fake, byCustomizationType="DISTILLATION")
    ok = check_student_base_model("amazon.nova-micro-v1:0:128k", distillable, "us-east-1")
    assert ok.passed is True
    bad = check_student_base_model("amazon.nova-micro-v1:0", distillable, "us-east-1")
    assert bad.passed is False
    assert "'amazon.nova-micro-v1:0' is not available for distillation in us-east-1" in bad.detail
    assert "amazon.nova-micro-v1:0:128k" in bad.detail  # what is available


def test_teacher_must_be_offered_and_profile_only_models_need_the_profile() -> None:
    models = catalog(FakeBedrock())
    assert check_teacher_model(f"us.{PREMIER}", models, "us-east-1").passed is True
    assert check_teacher_model("amazon.nova-pro-v1:0", models, "us-east-1").passed is True
    bare = check_teacher_model(PREMIER, models, "us-east-1")
    assert bare.passed is False
    assert "reachable only through an inference profile" in bare.detail
    assert f"set it to us.{PREMIER}" in bare.detail
    missing = check_teacher_model("us.amazon.nova-mega-v9:0", models, "us-east-1")
    assert missing.passed is False and "is not offered in us-east-1" in missing.detail


def test_bucket_region() -> None:
    assert bucket_region_of(None) == "us-east-1" and bucket_region_of("EU") == "eu-west-1"
    assert check_bucket_region("b", "us-east-1", "us-east-1").passed is True
    assert check_bucket_region("b", None, "us-east-1").passed is None
    bad = check_bucket_region("router-eu", "eu-west-1", "us-east-1")
    assert bad.passed is False
    assert "bucket 'router-eu' is in eu-west-1, but Bedrock jobs run in us-east-1" in bad.detail


def test_offline_checks_pass_for_the_defaults() -> None:
    checks = offline_checks(BedrockSettings(role_arn=ROLE))
    assert checks and all(check.passed for check in checks)


def backend(fake: FakeBedrock, bucket_region: str, **settings: Any) -> BedrockBackend:
    return BedrockBackend(
        BedrockSettings(role_arn=ROLE, **settings),
        control=fake.control,
        runtime=fake.runtime,
        store=DirectoryStore("/nonexistent-store"),
        bucket_region=lambda: ("router-bucket", bucket_region),
    )


def test_backend_setup_checks_gather_the_live_facts() -> None:
    fake = FakeBedrock()
    checks = backend(fake, "us-east-1").setup_checks()
    assert {c.name for c in checks} >= {"student base model", "teacher model", "bucket region"}
    raise_for_failed(checks)  # all pass
    assert [c["byCustomizationType"] for c in fake.calls_to("list_foundation_models")[:1]] == [
        "DISTILLATION"
    ]
    assert fake.calls_to("converse") == []


def test_backend_setup_checks_fail_in_one_line_naming_each_problem() -> None:
    fake = FakeBedrock()
    checks = backend(fake, "eu-west-1", teacher_model_id=PREMIER).setup_checks()
    with pytest.raises(UserInputError) as caught:
        raise_for_failed(checks)
    message = str(caught.value)
    assert "\n" not in message
    assert "teacher model: teacher_model_id 'amazon.nova-premier-v1:0'" in message
    assert "bucket region: bucket 'router-bucket' is in eu-west-1" in message


def test_backend_setup_checks_report_a_denied_catalog_call() -> None:
    fake = FakeBedrock()
    fake.inject_error("list_foundation_models", "AccessDeniedException", message="not allowed")
    checks = backend(fake, "us-east-1").setup_checks()
    denied = [c for c in checks if c.name == "model access"]
    assert denied and denied[0].passed is False
    assert "bedrock:ListFoundationModels" in denied[0].detail
