"""The promotion gate: absolute floors plus no regression against the current champion."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from intent_router.metrics import EPS, ModelEvaluation


class GateConfig(BaseModel):
    """Thresholds a candidate must clear to be promoted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_parse_rate: float = Field(0.99, ge=0, le=1, description="Floor on the parse rate.")
    min_top_signal_accuracy: float = Field(
        0.90, ge=0, le=1, description="Floor on top-signal agreement with the teacher."
    )
    min_mean_rubric: float = Field(4.0, ge=1, le=5, description="Floor on the mean 1-5 rubric.")
    max_accuracy_regression: float = Field(
        0.01,
        ge=0,
        le=1,
        description="How much lower than the champion's top-signal accuracy is tolerated.",
    )
    max_rubric_regression: float = Field(
        0.05, ge=0, le=4, description="How much lower than the champion's mean rubric is tolerated."
    )


class GateCheck(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    passed: bool
    detail: str


class GateDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    promote: bool
    checks: tuple[GateCheck, ...]

    @property
    def summary(self) -> str:
        failed = [c.detail for c in self.checks if not c.passed]
        return "PROMOTE: all checks passed" if self.promote else "REJECT: " + "; ".join(failed)


def decide(
    candidate: ModelEvaluation, champion: ModelEvaluation | None, config: GateConfig
) -> GateDecision:
    """Promote only if every floor holds and the candidate is not worse than the champion."""
    checks = [
        GateCheck(
            name="parse_rate",
            passed=candidate.parse_rate >= config.min_parse_rate,
            detail=f"parse rate {candidate.parse_rate:.3f} (floor {config.min_parse_rate:.3f})",
        ),
        GateCheck(
            name="top_signal_accuracy",
            passed=candidate.top_signal_accuracy >= config.min_top_signal_accuracy,
            detail=f"top-signal accuracy {candidate.top_signal_accuracy:.3f} "
            f"(floor {config.min_top_signal_accuracy:.3f})",
        ),
        GateCheck(
            name="mean_rubric",
            passed=candidate.mean_rubric >= config.min_mean_rubric,
            detail=f"mean rubric {candidate.mean_rubric:.2f} (floor {config.min_mean_rubric:.2f})",
        ),
    ]
    if champion is not None:
        # EPS: a candidate exactly at the allowed drop passes despite float rounding.
        accuracy_floor = champion.top_signal_accuracy - config.max_accuracy_regression - EPS
        rubric_floor = champion.mean_rubric - config.max_rubric_regression - EPS
        checks += [
            GateCheck(
                name="no_accuracy_regression",
                passed=candidate.top_signal_accuracy >= accuracy_floor,
                detail=f"accuracy {candidate.top_signal_accuracy:.3f} vs champion "
                f"{champion.top_signal_accuracy:.3f} (tolerance {config.max_accuracy_regression})",
            ),
            GateCheck(
                name="no_rubric_regression",
                passed=candidate.mean_rubric >= rubric_floor,
                detail=f"rubric {candidate.mean_rubric:.2f} vs champion "
                f"{champion.mean_rubric:.2f} (tolerance {config.max_rubric_regression})",
            ),
        ]
    return GateDecision(promote=all(c.passed for c in checks), checks=tuple(checks))
