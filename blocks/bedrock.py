"""The Bedrock backend block: credentials and bucket blocks plus the rest of the setup.

The AwsCredentials block this refers to holds no keys: boto3's default chain (environment,
profile, instance or pod role) supplies them at run time, optionally through an assumed role.
The bucket is the runs' default storage (see `blocks.backends.resolve_storage_ref`). `build()`
hands out boto3 clients with explicit retry and timeout settings, and a Prefect global
concurrency slot around every Converse call so parallel batches respect the quota.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, ClassVar, cast

from botocore.config import Config
from prefect.blocks.core import Block
from prefect.concurrency.sync import concurrency
from prefect_aws import AwsCredentials, S3Bucket
from pydantic import Field

from intent_router.backends.base import Backend
from intent_router.backends.bedrock import BedrockBackend, BedrockSettings
from intent_router.backends.bedrock_preflight import bucket_region_of
from intent_router.storage import ObjectStore

CONVERSE_LIMIT = "bedrock-converse"


class BedrockDistillationBackend(Block):
    """Amazon Bedrock: Nova Premier teacher, Nova Micro student, S3 data, Converse inference."""

    _block_type_name = "Router Distill Bedrock Backend"
    _description = "Bedrock model distillation, on-demand deployment and Converse evaluation."

    paid: ClassVar[bool] = True

    credentials: AwsCredentials = Field(
        description="AWS credentials block (where boto3 gets credentials; keep keys out of it)."
    )
    bucket: S3Bucket = Field(
        description="S3 bucket block: datasets, job outputs, models, champion, ledger and task "
        "results, unless the run names another storage block."
    )
    settings: BedrockSettings = Field(
        description="Region, service role, teacher/student/baseline model ids, labelling "
        "settings, tags and prices."
    )
    converse_concurrency: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Concurrent Converse calls: the threads each labelling batch or evaluation "
        "uses, and the size of the global limit shared by all runs.",
    )
    botocore_max_attempts: int = Field(
        default=3, ge=0, le=10, description="botocore retries (standard mode) per call."
    )
    read_timeout_seconds: int = Field(
        default=120, ge=5, le=900, description="botocore read timeout."
    )

    def boto_config(self) -> Config:
        """Explicit retries and timeouts, so Prefect retries and botocore retries do not
        multiply silently."""
        return Config(
            region_name=self.settings.region_name,
            retries={"mode": "standard", "max_attempts": self.botocore_max_attempts},
            read_timeout=self.read_timeout_seconds,
            connect_timeout=10,
            max_pool_connections=max(10, self.converse_concurrency),
        )

    def clients(self) -> tuple[Any, Any]:
        session = self.credentials.get_boto3_session()
        config = self.boto_config()
        return (
            session.client("bedrock", config=config),
            session.client("bedrock-runtime", config=config),
        )

    def ssm_client(self) -> Any | None:
        """An SSM client, only when the settings publish the serving ARN to a parameter."""
        if self.settings.ssm_parameter_name is None:
            return None
        return self.credentials.get_boto3_session().client("ssm", config=self.boto_config())

    def build(self, store: ObjectStore) -> Backend:
        control, runtime = self.clients()

        def slot() -> AbstractContextManager[Any]:
            return concurrency(CONVERSE_LIMIT, occupy=1, strict=False)

        return BedrockBackend(
            self.settings,
            control=control,
            runtime=runtime,
            store=store,
            call_slot=slot,
            bucket_region=lambda: storage_bucket_region(store),
            ssm=self.ssm_client(),
            concurrency=self.converse_concurrency,  # per run; the global limit bounds all runs
            s3_client=self.credentials.get_s3_client,  # reads judge-job results, when used
        )


def storage_bucket_region(store: ObjectStore) -> tuple[str, str] | None:
    """(bucket, Region) of a store on an S3Bucket block (s3:GetBucketLocation through the
    block's own client); None for any other store."""
    block = getattr(store, "block", None)
    if not isinstance(block, S3Bucket):
        return None
    client: Any = cast(Any, block)._get_s3_client()
    location = client.get_bucket_location(Bucket=block.bucket_name).get("LocationConstraint")
    return block.bucket_name, bucket_region_of(location)
