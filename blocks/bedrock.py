"""The Bedrock backend block: credentials and bucket blocks plus the rest of the setup.

Secrets live only in the AwsCredentials block (masked in the UI and logs); this block refers to
it. `build()` hands out boto3 clients with explicit retry and timeout settings, and a Prefect
global concurrency slot around every Converse call so parallel batches respect the quota.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from botocore.config import Config
from prefect.blocks.core import Block
from prefect.concurrency.sync import concurrency
from prefect_aws import AwsCredentials, S3Bucket
from pydantic import Field

from intent_router.backends.base import Backend
from intent_router.backends.bedrock import BedrockBackend, BedrockSettings
from intent_router.storage import ObjectStore

CONVERSE_LIMIT = "bedrock-converse"


class BedrockDistillationBackend(Block):
    """Amazon Bedrock: Nova Premier teacher, Nova Micro student, S3 data, Converse inference."""

    _block_type_name = "Router Distill Bedrock Backend"
    _description = "Bedrock model distillation, on-demand deployment and Converse evaluation."

    credentials: AwsCredentials = Field(description="AWS credentials block (holds the secrets).")
    bucket: S3Bucket = Field(description="S3 bucket block for datasets and job outputs.")
    region_name: str = Field(default="us-east-1", description="Bedrock Region.")
    role_arn: str = Field(
        description="Service role for the distillation job (trusts bedrock.amazonaws.com).",
        pattern=r"^arn:aws(-[a-z]+)?:iam::\d{12}:role/.+$",
    )
    teacher_model_id: str = Field(
        default="us.amazon.nova-premier-v1:0", description="Teacher model or inference profile id."
    )
    student_base_model_id: str = Field(
        default="amazon.nova-micro-v1:0:128k", description="Student base model (customization id)."
    )
    student_invoke_model_id: str = Field(
        default="amazon.nova-micro-v1:0", description="Un-distilled student for the baseline."
    )
    baseline_model_ids: dict[str, str] = Field(
        default_factory=dict,
        description="Extra baselines, name -> model id (e.g. a Claude Haiku id from the console).",
    )
    max_teacher_response_tokens: int = Field(
        default=1000, ge=1, le=4096, description="Teacher maxResponseLengthForInference."
    )
    label_max_tokens: int = Field(
        default=200, ge=50, le=2000, description="maxTokens for each labelling call."
    )
    label_temperature: float = Field(
        default=0.2, ge=0, le=1, description="Teacher temperature when labelling."
    )
    label_attempts: int = Field(
        default=3, ge=1, le=10, description="Tries per query for a valid teacher answer."
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Tags on jobs and models.")
    price_overrides: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="Model id -> (USD per 1K input tokens, USD per 1K output tokens).",
    )
    training_usd_per_1k_tokens: float | None = Field(
        default=None,
        ge=0,
        description="Distillation training price per 1K tokens.",
    )
    converse_concurrency: int = Field(
        default=8, ge=1, le=256, description="Concurrent Converse calls across all runs."
    )
    botocore_max_attempts: int = Field(
        default=3, ge=0, le=10, description="botocore retries (standard mode) per call."
    )
    read_timeout_seconds: int = Field(
        default=120, ge=5, le=900, description="botocore read timeout."
    )

    def settings(self) -> BedrockSettings:
        return BedrockSettings(
            region_name=self.region_name,
            role_arn=self.role_arn,
            teacher_model_id=self.teacher_model_id,
            student_base_model_id=self.student_base_model_id,
            student_invoke_model_id=self.student_invoke_model_id,
            baseline_model_ids=self.baseline_model_ids,
            max_teacher_response_tokens=self.max_teacher_response_tokens,
            label_max_tokens=self.label_max_tokens,
            label_temperature=self.label_temperature,
            label_attempts=self.label_attempts,
            tags=self.tags,
            price_overrides=self.price_overrides,
            training_usd_per_1k_tokens=self.training_usd_per_1k_tokens,
        )

    def boto_config(self) -> Config:
        """Explicit retries and timeouts, so Prefect retries and botocore retries do not
        multiply silently."""
        return Config(
            region_name=self.region_name,
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

    def build(self, store: ObjectStore) -> Backend:
        control, runtime = self.clients()

        def slot() -> AbstractContextManager[Any]:
            return concurrency(CONVERSE_LIMIT, occupy=1, strict=False)

        return BedrockBackend(
            self.settings(), control=control, runtime=runtime, store=store, call_slot=slot
        )
