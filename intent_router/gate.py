"""The promotion gate: absolute floors (synthetic holdout and golden set) plus no regression
against the current champion and, on the golden set, against the best ledger entry."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from intent_router.metrics import EPS, ModelEvaluation


class GateConfig(BaseModel):
    """Thresholds a candidate must clear to be promoted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_parse_rate: float = Field(0.99, ge=0, le=1, description="Floor on the parse rate.")
    min_top_signal_accuracy: float = Field(
        0.85,
        ge=0,
        le=1,
        description="Floor on top-signal agreement with the teacher on the synthetic holdout "
        "(realistic mixed-intent queries, many with near-tied teacher weights; the golden floor "
        "judges real queries).",
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
    min_golden_top1: float = Field(
        0.85,
        ge=0,
        le=1,
        description="Floor on strict top-1 accuracy on the router's golden set (human labels).",
    )
    max_golden_regression: float = Field(
        0.02,
        ge=0,
        le=1,
        description="How much lower than the champion's, or the best ledger entry's, golden "
        "strict top-1 is tolerated.",
    )


class GoldenEvidence(BaseModel):
    """Strict top-1 on the golden set: the candidate's, the champion's, the best promotion's."""

    model_config = ConfigDict(frozen=True)

    version: str = Field(description="Golden set version (content hash) these figures are on.")
    n: int
    candidate: float
    champion: float | None = None
    best: float | None = Field(
        default=None, description="Best ledger promotion scored on the same golden version."
    )
    best_model: str | None = None


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
    candidate: ModelEvaluation,
    champion: ModelEvaluation | None,
    config: GateConfig,
    *,
    golden: GoldenEvidence | None = None,
    rolled_back: bool = False,
) -> GateDecision:
    """Promote only if every floor holds and the candidate is not worse than the champion.

    `golden` None: the router has no golden set, which the report says (a passing note).
    `rolled_back`: an operator rolled back from this model; the gate refuses it.
    """
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
    checks += _golden_checks(golden, config)
    if rolled_back:
        checks.append(
            GateCheck(
                name="not_rolled_back",
                passed=False,
                detail="an operator rolled back from this model",
            )
        )
    return GateDecision(promote=all(c.passed for c in checks), checks=tuple(checks))


def _golden_checks(golden: GoldenEvidence | None, config: GateConfig) -> list[GateCheck]:
    if golden is None:
        return [
            GateCheck(
                name="golden_set",
                passed=True,
                detail="no golden set for this router: judged on synthetic queries only",
            )
        ]
    checks = [
        GateCheck(
            name="golden_top1",
            passed=golden.candidate >= config.min_golden_top1 - EPS,
            detail=f"golden strict top-1 {golden.candidate:.3f} on {golden.n} queries "
            f"(floor {config.min_golden_top1:.3f})",
        )
    ]
    tolerance = config.max_golden_regression
    if golden.champion is not None:
        checks.append(
            GateCheck(
                name="no_golden_regression",
                passed=golden.candidate >= golden.champion - tolerance - EPS,
                detail=f"golden top-1 {golden.candidate:.3f} vs champion {golden.champion:.3f} "
                f"(tolerance {tolerance})",
            )
        )
    if golden.best is not None:
        checks.append(
            GateCheck(
                name="no_golden_regression_vs_best",
                passed=golden.candidate >= golden.best - tolerance - EPS,
                detail=f"golden top-1 {golden.candidate:.3f} vs best promotion "
                f"{golden.best:.3f} ({golden.best_model}, tolerance {tolerance})",
            )
        )
    return checks
