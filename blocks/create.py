"""Create and save the blocks a backend needs (idempotent: saving again overwrites)."""

from __future__ import annotations

import os
import re
from typing import Any

from prefect_aws import AwsCredentials, S3Bucket
from prefect_aws.assume_role_parameters import AssumeRoleParameters
from prefect_aws.client_parameters import AwsClientParameters

from blocks.backends import LocalDistillationBackend
from blocks.bedrock import CONVERSE_LIMIT, BedrockDistillationBackend
from blocks.storage import storage_blocks
from intent_router.backends.bedrock import BedrockSettings

DEFAULT_NAME = "router-distill"
AWS_BACKEND_REF = f"router-distill-bedrock-backend/{DEFAULT_NAME}"
AWS_STORAGE_REF = f"s3-bucket/{DEFAULT_NAME}"
ROLE_SESSION_NAME = "router-distill"
IAM_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
IGNORED_ENVIRONMENT = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
)
"""Read by boto3 where the flow runs; `blocks create` never copies them into a block."""


def create_local_blocks(name: str = DEFAULT_NAME) -> list[str]:
    store, results = storage_blocks(None)
    LocalDistillationBackend().save(name, overwrite=True)
    return [
        f"local-file-system/{store._block_document_name} -> {getattr(store, 'basepath', '')}",
        f"local-file-system/{results._block_document_name} -> {getattr(results, 'basepath', '')}",
        f"router-distill-local-backend/{name}",
    ]


def credential_source(profile: str | None, assume_role_arn: str | None) -> str:
    """Where boto3 will find credentials at run time, in words."""
    base = (
        f"profile {profile!r} from the shared AWS config/credentials files"
        if profile
        else "boto3's default chain (AWS_* environment variables, AWS_PROFILE and the shared "
        "config files, then the ECS task, EKS pod or EC2 instance role)"
    )
    where = f"at run time, on the machine that runs the flow, from {base}"
    if assume_role_arn:
        where += f", then assuming {assume_role_arn} (session name {ROLE_SESSION_NAME!r})"
    return where


def default_region() -> str:
    """AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def create_aws_blocks(
    *,
    role_arn: str,
    bucket: str,
    bucket_folder: str = "router-distill",
    region: str | None = None,
    profile: str | None = None,
    assume_role_arn: str | None = None,
    converse_concurrency: int = 8,
    name: str = DEFAULT_NAME,
    extra: dict[str, Any] | None = None,
) -> list[str]:
    """AwsCredentials, S3Bucket, the Bedrock backend block, and the global concurrency limit on
    Converse calls.

    The credentials block never holds keys or session tokens (they expire, and a database is no
    place for them): only a profile name, a role to assume and the Region.
    """
    region = region or default_region()
    # Validated before anything is saved: a bad role ARN or Region leaves no half-made blocks.
    settings = BedrockSettings(region_name=region, role_arn=role_arn, **(extra or {}))
    credentials = AwsCredentials(
        profile_name=profile,
        region_name=region,
        assume_role_arn=assume_role_arn,
        assume_role_kwargs=AssumeRoleParameters(
            RoleSessionName=ROLE_SESSION_NAME if assume_role_arn else None
        ),
        aws_client_parameters=AwsClientParameters(
            config={"retries": {"mode": "standard", "max_attempts": 3}}
        ),
    )
    credentials.save(name, overwrite=True)
    s3 = S3Bucket(bucket_name=bucket, credentials=credentials, bucket_folder=bucket_folder)
    s3.save(name, overwrite=True)
    backend = BedrockDistillationBackend(
        credentials=credentials,
        bucket=s3,
        settings=settings,
        converse_concurrency=converse_concurrency,
    )
    backend.save(name, overwrite=True)
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(CONVERSE_LIMIT, converse_concurrency)
    ignored = [variable for variable in IGNORED_ENVIRONMENT if os.environ.get(variable)]
    return [
        f"aws-credentials/{name} (region {region}; no keys saved: credentials "
        f"{credential_source(profile, assume_role_arn)})",
        f"s3-bucket/{name} -> s3://{bucket}/{bucket_folder} (the backend's default storage)",
        f"router-distill-bedrock-backend/{name} (role {role_arn})",
        f"global concurrency limit {CONVERSE_LIMIT} = {converse_concurrency}",
    ] + ([f"not saved from this shell: {', '.join(ignored)}"] if ignored else [])
