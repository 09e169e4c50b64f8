"""How the student learns: three training modes, and what each one means for the pipeline.

- `distill-prompts`: the training file holds prompts only, plus a few curated teacher answers as
  examples; the customization job's teacher (Bedrock: Nova Premier) answers the prompts inside
  the job, with the full teacher prompt. The pipeline labels only what it evaluates on.
  (bedrock/latest/userguide/model-distillation.html: distillation "requires only prompts";
  nova/latest/userguide/custom-distill-prepare.html: prompts only plus about 10 labelled pairs.)
- `distill-invocation-logs`: the job reads the production router's model-invocation logs
  (bedrock/latest/userguide/distillation-data-prep-option-2.html); no training file.
- `fine-tune-labelled`: the pipeline's own validated teacher labels train the student in a
  FINE_TUNING job; the teacher is paid once, by the pipeline.

Pure: no Prefect, no AWS.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from enum import StrEnum
from typing import Literal

from intent_router.errors import UserInputError
from intent_router.pricing import estimate_tokens
from intent_router.taxonomy import Taxonomy


class TrainingMode(StrEnum):
    DISTILL_PROMPTS = "distill-prompts"
    DISTILL_INVOCATION_LOGS = "distill-invocation-logs"
    FINE_TUNE_LABELLED = "fine-tune-labelled"

    @property
    def labels_training(self) -> bool:
        """Does the pipeline pay the teacher for every training query?"""
        return self is TrainingMode.FINE_TUNE_LABELLED

    @property
    def teacher_in_job(self) -> bool:
        """Does the customization job invoke the teacher itself?"""
        return self is not TrainingMode.FINE_TUNE_LABELLED

    @property
    def training_file(self) -> bool:
        """Does the job read a training file the pipeline builds (not invocation logs)?"""
        return self is not TrainingMode.DISTILL_INVOCATION_LOGS

    @property
    def student_prompt(self) -> Literal["student", "teacher"]:
        """The prompt the trained student is called with: the one in its training records.

        In distill-prompts the records carry the full teacher prompt and the quoted query,
        because the job's teacher answers exactly what the record holds."""
        return "teacher" if self is TrainingMode.DISTILL_PROMPTS else "student"


TrainingModeRef = Literal[
    "auto", "distill-prompts", "distill-invocation-logs", "fine-tune-labelled"
]
MODES: tuple[str, ...] = tuple(m.value for m in TrainingMode)


def resolve_training_mode(requested: str, backend_default: TrainingMode) -> TrainingMode:
    """'auto' means the backend's default (Bedrock: distill-prompts; local: fine-tune-labelled)."""
    if requested == "auto":
        return backend_default
    try:
        return TrainingMode(requested)
    except ValueError:
        raise UserInputError(
            f"unknown training mode {requested!r}; choose one of auto, {', '.join(MODES)}"
        ) from None


def teacher_response_tokens(taxonomy: Taxonomy, reasoning_chars: int = 400) -> int:
    """maxResponseLengthForInference sized to the routing JSON: every signal with a weight and
    a long one-sentence reasoning, with 50% headroom, rounded up to a multiple of 50."""
    widest = json.dumps(
        {**{s: 0.125 for s in taxonomy.signal_names}, "reasoning": "x" * reasoning_chars}
    )
    return int(math.ceil(estimate_tokens(widest) * 1.5 / 50) * 50)


def choose_examples(dominants: Sequence[str], count: int) -> list[int]:
    """Indexes of `count` training queries to label as curated examples: round-robin over the
    dominant signals, in order, so the few examples cover every signal."""
    by_signal: dict[str, list[int]] = {}
    for index, dominant in enumerate(dominants):
        by_signal.setdefault(dominant, []).append(index)
    queues = [list(reversed(v)) for _, v in sorted(by_signal.items())]
    chosen: list[int] = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop())
    return sorted(chosen)


def check_training_mode(
    requested: str, backend_name: str, default: TrainingMode, available: frozenset[TrainingMode]
) -> TrainingMode:
    """The run's mode, or a one-line error when this backend cannot run it."""
    mode = resolve_training_mode(requested, default)
    if mode not in available:
        choices = ", ".join(sorted(m.value for m in available))
        raise UserInputError(
            f"training mode {mode.value!r} is not available on the {backend_name} backend "
            f"(available: {choices})"
        )
    return mode


def invocation_logs_source(
    mode: TrainingMode, invocation_logs: str | None, traffic_kind: str, traffic_location: str
) -> str | None:
    """Where a distill-invocation-logs job reads: the parameter, else the run's traffic when it
    is Bedrock invocation logs on S3. Other modes read none."""
    if mode is not TrainingMode.DISTILL_INVOCATION_LOGS:
        return None
    if invocation_logs:
        return invocation_logs.rstrip("/") + "/"
    if traffic_kind == "invocation-logs" and traffic_location.startswith("s3://"):
        return traffic_location.rstrip("/") + "/"
    raise UserInputError(
        "training mode 'distill-invocation-logs' needs the router's invocation logs: set "
        "invocation_logs to their s3:// prefix, or traffic to 'bedrock-logs:s3://...'"
    )
