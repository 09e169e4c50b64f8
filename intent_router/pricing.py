"""Prices and Bedrock limits: the one table cost estimates and preflight checks read.

Sources (checked 2026-11; confirm against https://aws.amazon.com/bedrock/pricing/ before relying
on them): on-demand per-1K-token prices for Nova models as quoted by secondary sources of the
Bedrock pricing page; Nova distillation data limits from
https://docs.aws.amazon.com/nova/latest/userguide/custom-distill-prepare.html and the
aws-samples dataset validator (MIN_NUM_PROMPTS = 100, MAX_SIZE = 1 GB).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ModelPrice(BaseModel):
    """On-demand price of a model in USD per 1,000 tokens."""

    model_config = ConfigDict(frozen=True)

    model_id: str
    input_per_1k: float = Field(ge=0)
    output_per_1k: float = Field(ge=0)
    source: str

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        return input_tokens / 1000 * self.input_per_1k + output_tokens / 1000 * self.output_per_1k


_PRICING_SOURCE = "aws.amazon.com/bedrock/pricing (secondary sources, 2026-11)"

PRICES: dict[str, ModelPrice] = {
    p.model_id: p
    for p in [
        ModelPrice(
            model_id="amazon.nova-micro-v1:0",
            input_per_1k=0.000035,
            output_per_1k=0.00014,
            source=_PRICING_SOURCE,
        ),
        ModelPrice(
            model_id="amazon.nova-lite-v1:0",
            input_per_1k=0.00006,
            output_per_1k=0.00024,
            source=_PRICING_SOURCE,
        ),
        ModelPrice(
            model_id="amazon.nova-pro-v1:0",
            input_per_1k=0.0008,
            output_per_1k=0.0032,
            source=_PRICING_SOURCE,
        ),
        ModelPrice(
            model_id="amazon.nova-premier-v1:0",
            input_per_1k=0.0025,
            output_per_1k=0.0125,
            source=_PRICING_SOURCE,
        ),
        ModelPrice(
            model_id="anthropic.claude-3-5-haiku",
            input_per_1k=0.0008,
            output_per_1k=0.004,
            source=_PRICING_SOURCE,
        ),
        ModelPrice(
            # Claude Haiku 4.5 (the AWS sample's router): $1 / $5 per million tokens, Anthropic's
            # model page (platform.claude.com/docs/en/models/haiku-4-5/overview); Bedrock id
            # anthropic.claude-haiku-4-5-20251001-v1:0 (confirm in the Bedrock console).
            model_id="anthropic.claude-haiku-4-5",
            input_per_1k=0.001,
            output_per_1k=0.005,
            source="platform.claude.com Claude Haiku 4.5 model page (2026-12)",
        ),
        ModelPrice(
            model_id="local",
            input_per_1k=0.0,
            output_per_1k=0.0,
            source="runs on this machine; no per-token price",
        ),
    ]
}


def price_for(model_id: str) -> ModelPrice:
    """Price of a model id, matching cross-Region profiles and context suffixes to the base id."""
    candidate = model_id
    for prefix in ("us.", "eu.", "apac.", "global."):
        candidate = candidate.removeprefix(prefix)
    for known, price in PRICES.items():
        if candidate == known or candidate.startswith(known + ":") or candidate.startswith(known):
            return price
    raise KeyError(f"no price for model {model_id!r}; known: {sorted(PRICES)}")


class CustomizableModel(BaseModel):
    """A base model Bedrock customizes, and in which role."""

    model_config = ConfigDict(frozen=True)

    model_id: str
    roles: tuple[str, ...]  # "student", "teacher", "fine-tune"
    regions: tuple[str, ...]
    source: str


_NOVA_ROLES = "docs.aws.amazon.com/nova/latest/userguide/customization.html"
_FINE_TUNING = "docs.aws.amazon.com/bedrock/latest/userguide/custom-model-fine-tuning.html"
CUSTOMIZABLE_MODELS: dict[str, CustomizableModel] = {
    m.model_id: m
    for m in [
        CustomizableModel(
            model_id="amazon.nova-micro-v1:0:128k",
            roles=("student", "fine-tune"),
            regions=("us-east-1",),
            source=f"{_NOVA_ROLES}; {_FINE_TUNING}",
        ),
        CustomizableModel(
            model_id="amazon.nova-lite-v1:0:300k",
            roles=("student", "fine-tune"),
            regions=("us-east-1",),
            source=f"{_NOVA_ROLES}; {_FINE_TUNING}",
        ),
        CustomizableModel(
            model_id="amazon.nova-pro-v1:0:300k",
            roles=("student", "teacher", "fine-tune"),
            regions=("us-east-1",),
            source=f"{_NOVA_ROLES}; {_FINE_TUNING}",
        ),
        CustomizableModel(
            model_id="amazon.nova-premier-v1:0:1000k",
            roles=("teacher",),
            regions=("us-east-1",),
            source=_NOVA_ROLES,
        ),
        CustomizableModel(
            # Nova 2: fine-tuning listed (us-east-1); distillation roles and the on-demand
            # price are not in the docs we hold, so it is unpriced until price_overrides say.
            model_id="amazon.nova-2-lite-v1:0:256k",
            roles=("fine-tune",),
            regions=("us-east-1",),
            source=_FINE_TUNING,
        ),
    ]
}
"""Regions listed are the single-Region fine-tuning support of the fine-tuning page; distillation
Regions are not listed there (check the user guide)."""


class BackendLimits(BaseModel):
    """Dataset limits a backend accepts for a distillation job."""

    model_config = ConfigDict(frozen=True)

    name: str
    min_records: int
    max_records: int
    max_bytes: int
    source: str


BEDROCK_NOVA_LIMITS = BackendLimits(
    name="bedrock-nova",
    min_records=100,
    max_records=15_000,
    max_bytes=1024**3,
    source="docs.aws.amazon.com/nova/latest/userguide/custom-distill-prepare.html",
)

LOCAL_LIMITS = BackendLimits(
    name="local",
    min_records=100,
    max_records=200_000,
    max_bytes=1024**3,
    source="local student trainer; same 100-record floor as Bedrock so results transfer",
)

RESERVED_KEYWORDS: tuple[str, ...] = (
    "User:",
    "Bot:",
    "Assistant:",
    "System:",
    "<image>",
    "<video>",
    "[EOS]",
)
"""Strings that fail Nova customization data (Nova user guide, fine-tune-prepare-data)."""


def estimate_tokens(text: str) -> int:
    """Token estimate used for local cost figures: ~4 characters per token, at least 1."""
    return max(1, math.ceil(len(text) / 4))


# -- batch inference -------------------------------------------------------------------------
LabellingPath = Literal["on-demand", "batch"]

BATCH_DISCOUNT = 0.5
"""Share of the on-demand token price that batch inference saves: about 50% (secondary sources
quoting https://aws.amazon.com/bedrock/pricing/; unverified, confirm there)."""

BATCH_MIN_RECORDS = 100
"""Fewest records a CreateModelInvocationJob accepts. A per-model service quota ("minimum
number of records per batch inference job"); about 100 by secondary sources (the apache/airflow
example_bedrock_batch_inference); unverified: check `aws service-quotas list-service-quotas
--service-code bedrock` in the account."""


def labelling_path(batch_size: int, threshold: int | None) -> LabellingPath:
    """How one labelling call of `batch_size` queries is sent: batch inference at or above the
    threshold (None or 0: never) and the service's minimum records per job, else on demand."""
    if not threshold or batch_size < max(threshold, BATCH_MIN_RECORDS):
        return "on-demand"
    return "batch"
