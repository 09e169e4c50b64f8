"""Create and save the blocks a backend needs (idempotent: saving again overwrites)."""

from __future__ import annotations

import os
from typing import Any

from prefect_aws import AwsCredentials, S3Bucket
from prefect_aws.client_parameters import AwsClientParameters

from blocks.backends import LocalDistillationBackend
from blocks.bedrock import CONVERSE_LIMIT, BedrockDistillationBackend
from blocks.storage import storage_blocks
from intent_router.backends.bedrock import BedrockSettings

DEFAULT_NAME = "router-distill"
AWS_BACKEND_REF = f"router-distill-bedrock-backend/{DEFAULT_NAME}"
AWS_STORAGE_REF = f"s3-bucket/{DEFAULT_NAME}"


def create_local_blocks(name: str = DEFAULT_NAME) -> list[str]:
    store, results = storage_blocks(None)
    LocalDistillationBackend().save(name, overwrite=True)
    return [
        f"local-file-system/{store._block_document_name} -> {getattr(store, 'basepath', '')}",
        f"local-file-system/{results._block_document_name} -> {getattr(results, 'basepath', '')}",
        f"router-distill-local-backend/{name}",
    ]


def create_aws_blocks(
    *,
    role_arn: str,
    bucket: str,
    bucket_folder: str = "router-distill",
    region: str | None = None,
    profile: str | None = None,
    converse_concurrency: int = 8,
    name: str = DEFAULT_NAME,
    extra: dict[str, Any] | None = None,
) -> list[str]:
    """AwsCredentials (from the standard AWS environment variables or a profile), S3Bucket,
    the Bedrock backend block, and the global concurrency limit on Converse calls."""
    region = (
        region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or ("us-east-1")
    )
    credentials = AwsCredentials(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=os.environ.get("AWS_SESSION_TOKEN"),
        profile_name=profile or os.environ.get("AWS_PROFILE"),
        region_name=region,
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
        settings=BedrockSettings(region_name=region, role_arn=role_arn, **(extra or {})),
        converse_concurrency=converse_concurrency,
    )
    backend.save(name, overwrite=True)
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(CONVERSE_LIMIT, converse_concurrency)
    source = (
        "profile " + (profile or os.environ.get("AWS_PROFILE", ""))
        if (profile or os.environ.get("AWS_PROFILE"))
        else "environment variables"
    )
    return [
        f"aws-credentials/{name} (region {region}, credentials from {source}; secrets masked)",
        f"s3-bucket/{name} -> s3://{bucket}/{bucket_folder}",
        f"router-distill-bedrock-backend/{name} (role {role_arn})",
        f"global concurrency limit {CONVERSE_LIMIT} = {converse_concurrency}",
    ]
