"""A tiny real call to Bedrock, only when explicitly enabled (never in CI by default):
ROUTER_DISTILL_AWS_SMOKE=1 plus AWS credentials in the environment."""

from __future__ import annotations

import os

import boto3
import pytest

ENABLED = os.environ.get("ROUTER_DISTILL_AWS_SMOKE") == "1" and bool(
    os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")
)


@pytest.mark.aws
@pytest.mark.skipif(not ENABLED, reason="set ROUTER_DISTILL_AWS_SMOKE=1 and AWS credentials")
def test_distillation_models_are_listed() -> None:
    bedrock = boto3.client("bedrock", region_name=os.environ.get("AWS_REGION", "us-east-1"))
    models = bedrock.list_foundation_models(byCustomizationType="DISTILLATION")["modelSummaries"]
    assert any("nova" in m["modelId"] for m in models)
