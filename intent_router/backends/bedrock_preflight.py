"""Preflight of a Bedrock setup: checks that fail in one line before any paid call.

Pure functions over facts: the settings (offline checks: Region, inference-profile prefixes,
role ARNs) and what the service says (live checks: the foundation-model catalog, the bucket's
Region). `BedrockBackend.setup_checks` gathers the live facts; `router-distill run --dry-run`
runs the offline checks only and names the live ones.

The tables below are the one place these facts live, each with its source.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from intent_router.backends.base import SetupCheck

if TYPE_CHECKING:
    from intent_router.backends.bedrock import BedrockSettings

ON_DEMAND_DEPLOYMENT_REGIONS: tuple[str, ...] = ("us-east-1", "us-west-2")
"""Regions offering on-demand deployment of custom models
(https://docs.aws.amazon.com/bedrock/latest/userguide/deploy-custom-model-on-demand.html;
earlier versions of the page listed only us-east-1)."""
ON_DEMAND_DEPLOYMENT_SOURCE = (
    "docs.aws.amazon.com/bedrock/latest/userguide/deploy-custom-model-on-demand.html"
)

PROFILE_PREFIX_REGIONS: dict[str, tuple[str, ...]] = {
    # Longest first: "us-gov." must win over "us.".
    "us-gov.": ("us-gov-",),
    "global.": ("",),  # any commercial Region (unverified)
    "apac.": ("ap-",),
    "us.": ("us-",),  # us-* except us-gov-* (handled in profile_fits_region)
    "eu.": ("eu-",),
    "jp.": ("ap-northeast-",),  # Tokyo, Osaka (unverified)
    "au.": ("ap-southeast-",),  # Sydney, Melbourne (unverified)
    "ca.": ("ca-",),  # unverified
}
"""Cross-Region inference profile prefix -> the Region name prefixes it can be called from.
Source: the profile ids listed at
https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-support.html
(us., eu., apac., us-gov. as there; jp., au., ca., global. unverified)."""

LIVE_CHECKS: tuple[tuple[str, str], ...] = (
    ("student base model", "ListFoundationModels(byCustomizationType=DISTILLATION)"),
    ("teacher model", "ListFoundationModels"),
    ("bucket region", "s3:GetBucketLocation"),
)
"""Checks that need the live service (run at the start of a real run, not in a dry run)."""

_ROLE_ARN = re.compile(r"arn:(aws(?:-[a-z]+)*):iam::\d{12}:role/.+")


def partition_of(region: str) -> str:
    """The AWS partition of a Region: aws, aws-us-gov or aws-cn."""
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws"


def split_model_id(model_id: str) -> tuple[str | None, str]:
    """(cross-Region profile prefix or None, base model id) of a model id or ARN.

    `us.amazon.nova-premier-v1:0` -> ("us.", "amazon.nova-premier-v1:0");
    `arn:...:inference-profile/eu.amazon.nova-pro-v1:0` -> ("eu.", "amazon.nova-pro-v1:0");
    `arn:...:foundation-model/amazon.nova-pro-v1:0` -> (None, "amazon.nova-pro-v1:0").
    """
    tail = model_id
    if model_id.startswith("arn:"):
        resource = model_id.split(":", 5)[-1]
        tail = resource.partition("/")[2] or resource
    for prefix in PROFILE_PREFIX_REGIONS:
        if tail.startswith(prefix):
            return prefix, tail[len(prefix) :]
    return None, tail


def profile_fits_region(prefix: str, region: str) -> bool:
    if prefix == "us." and region.startswith("us-gov-"):
        return False
    if prefix == "global.":
        return partition_of(region) == "aws"
    return any(region.startswith(start) for start in PROFILE_PREFIX_REGIONS[prefix])


def profile_for_region(region: str) -> str | None:
    """The geographic profile prefix that fits a Region (us-east-1 -> "us."), if any."""
    for prefix in ("us-gov.", "us.", "eu.", "apac.", "ca."):
        if profile_fits_region(prefix, region):
            return prefix
    return None


# -- offline checks ----------------------------------------------------------------------------


def check_deployment_region(region: str) -> SetupCheck:
    name = "deployment region"
    if region in ON_DEMAND_DEPLOYMENT_REGIONS:
        return SetupCheck(name=name, passed=True, detail=f"{region} offers on-demand deployment")
    return SetupCheck(
        name=name,
        passed=False,
        detail=f"region_name {region!r} does not offer on-demand custom-model deployment "
        f"(only {', '.join(ON_DEMAND_DEPLOYMENT_REGIONS)}, per {ON_DEMAND_DEPLOYMENT_SOURCE}): "
        "set region_name to one of them",
    )


def check_profile_prefix(role: str, model_id: str, region: str) -> SetupCheck:
    name = f"{role} profile"
    prefix, base = split_model_id(model_id)
    if prefix is None:
        return SetupCheck(name=name, passed=True, detail=f"{model_id} is not a profile")
    if profile_fits_region(prefix, region):
        return SetupCheck(name=name, passed=True, detail=f"{prefix} profile fits {region}")
    fitting = profile_for_region(region)
    fix = f"use {fitting}{base}" if fitting else f"use {base} or a profile of {region}"
    return SetupCheck(
        name=name,
        passed=False,
        detail=f"{role} {model_id!r} is a {prefix} cross-Region profile, which cannot be "
        f"called from {region}: {fix}, or set region_name to a Region the profile covers",
    )


def check_role_arn(field: str, role_arn: str, region: str) -> SetupCheck:
    name = field.replace("_", " ")
    match = _ROLE_ARN.fullmatch(role_arn)
    if match is None:
        return SetupCheck(
            name=name,
            passed=False,
            detail=f"{field} {role_arn[:200]!r} is not an IAM role ARN "
            "(arn:aws:iam::<12-digit account>:role/<name>)",
        )
    partition = partition_of(region)
    if match.group(1) != partition:
        return SetupCheck(
            name=name,
            passed=False,
            detail=f"{field} {role_arn!r} is in partition {match.group(1)}, but {region} is in "
            f"{partition}: use a role ARN starting arn:{partition}:iam::",
        )
    return SetupCheck(name=name, passed=True, detail="IAM role ARN in the Region's partition")


def offline_checks(settings: BedrockSettings) -> list[SetupCheck]:
    """Every check the settings alone can answer."""
    region = settings.region_name
    checks = [check_deployment_region(region)]
    models = {
        "teacher": settings.teacher_model_id,
        "base student": settings.student_invoke_model_id,
        **{f"baseline {name}": model for name, model in settings.baseline_model_ids.items()},
    }
    checks += [check_profile_prefix(role, model, region) for role, model in models.items()]
    checks.append(check_role_arn("role_arn", settings.role_arn, region))
    if settings.batch_role_arn is not None:
        checks.append(check_role_arn("batch_role_arn", settings.batch_role_arn, region))
    return checks


# -- live checks -------------------------------------------------------------------------------


def check_student_base_model(
    model_id: str, distillable: Iterable[Mapping[str, Any]], region: str
) -> SetupCheck:
    """`distillable`: ListFoundationModels(byCustomizationType="DISTILLATION") summaries."""
    name = "student base model"
    ids = sorted({str(s["modelId"]) for s in distillable})
    base = split_model_id(model_id)[1]
    if base in ids:
        return SetupCheck(name=name, passed=True, detail=f"{base} can be distilled in {region}")
    return SetupCheck(
        name=name,
        passed=False,
        detail=f"student_base_model_id {model_id!r} is not available for distillation in "
        f"{region} (available: {', '.join(ids) or 'none'}): pick one of them, request model "
        "access in the Bedrock console, or change region_name",
    )


def check_teacher_model(
    model_id: str, catalog: Iterable[Mapping[str, Any]], region: str
) -> SetupCheck:
    """`catalog`: ListFoundationModels summaries. A model whose inference types lack ON_DEMAND is
    reachable only through an inference profile (the service lists it as INFERENCE_PROFILE),
    which batch inference needs as modelId too."""
    name = "teacher model"
    prefix, base = split_model_id(model_id)
    found = {str(s["modelId"]): s for s in catalog}
    summary = found.get(base)
    if summary is None:
        return SetupCheck(
            name=name,
            passed=False,
            detail=f"teacher_model_id {model_id!r}: {base} is not offered in {region}: "
            "request model access in the Bedrock console or change region_name",
        )
    on_demand = "ON_DEMAND" in (summary.get("inferenceTypesSupported") or [])
    if prefix is None and not on_demand and not model_id.startswith("arn:"):
        fitting = profile_for_region(region) or "<geo>."
        return SetupCheck(
            name=name,
            passed=False,
            detail=f"teacher_model_id {model_id!r} is reachable only through an inference "
            f"profile (Converse and batch labelling): set it to {fitting}{base}",
        )
    return SetupCheck(name=name, passed=True, detail=f"{base} is offered in {region}")


def bucket_region_of(location_constraint: str | None) -> str:
    """GetBucketLocation's LocationConstraint as a Region: None or "" is us-east-1, the legacy
    "EU" is eu-west-1 (S3 API reference, GetBucketLocation)."""
    if not location_constraint:
        return "us-east-1"
    return "eu-west-1" if location_constraint == "EU" else location_constraint


def check_bucket_region(bucket: str, bucket_region: str | None, region: str) -> SetupCheck:
    name = "bucket region"
    if bucket_region is None:
        return SetupCheck(name=name, passed=None, detail="storage is not an S3 bucket")
    if bucket_region == region:
        return SetupCheck(name=name, passed=True, detail=f"bucket {bucket} is in {region}")
    return SetupCheck(
        name=name,
        passed=False,
        detail=f"bucket {bucket!r} is in {bucket_region}, but Bedrock jobs run in {region} and "
        f"read their S3 data there: use a bucket in {region} or set region_name to "
        f"{bucket_region}",
    )


def failed(checks: Sequence[SetupCheck]) -> list[SetupCheck]:
    return [check for check in checks if check.passed is False]
