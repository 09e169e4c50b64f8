"""LLM-as-a-judge on precomputed answers (Bedrock Model Evaluation): the pure parts.

The dataset, the custom metric carrying the seed's 1-5 rubric, job names, and reading the
job's output. No I/O here; the Bedrock backend writes, submits, polls and reads.

Documented (bedrock.md §3.5 and its evaluation section): bring-your-own-inference records are
JSONL with `prompt`, `referenceResponse` and `modelResponses [{response, modelIdentifier}]`; at
most 1,000 prompts and one or two models per job; custom metric instructions at most 5,000
characters. The judge's template variables (`{{prompt}}`, `{{prediction}}`,
`{{ground_truth}}`) follow the custom-metric prompt guide. The OUTPUT format is modelled on the
user guide's "how results are saved in Amazon S3" page
(`<output>/<job-name>/<job-uuid>/models/<model-id>/taskTypes/<task>/datasets/<dataset>/
<file-uuid>_output.jsonl`, each line `{"automatedEvaluationResult": {"scores": [{"metricName",
"result"}]}, "inputRecord", "modelResponses"}`); unverified against a real judge job, in
particular whether a custom metric's `result` is the raw rating-scale value (assumed) or
normalised.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence

from intent_router.backends.base import JudgeScore, JudgeTarget

logger = logging.getLogger(__name__)

JUDGE_METRIC = "OverallQuality"  # the seed's custom metric name
JUDGE_DATASET = "router-holdout"
JUDGE_TASK_TYPE = "Custom"  # from the modelled enum; unverified which task type judges expect
MODELS_PER_JOB = 2  # the service's maximum (inferenceConfig.models: 1-2)
MAX_INSTRUCTIONS = 5000
MAX_JOB_NAME = 63

# The seed's 1-5 rubric (bedrock.md §7): weight accuracy against the reference and reasoning.
RUBRIC: tuple[tuple[int, str], ...] = (
    (5, "every weight within 0.05 of the reference; reasoning specific and consistent"),
    (4, "every weight within 0.10; reasoning clear, mostly consistent"),
    (3, "dominant signal correct, mean error < 0.15; reasoning generic"),
    (2, "dominant signal wrong or mean error > 0.15; reasoning vague or inconsistent"),
    (1, "unparseable JSON, missing keys or error > 0.30; no useful reasoning"),
)


def rubric_instructions(signals: Sequence[str]) -> str:
    """The judge's prompt for the custom metric (<= 5,000 characters)."""
    keys = ", ".join(signals)
    scale = "\n".join(f"{score}: {criterion}" for score, criterion in RUBRIC)
    text = (
        "You are grading a video-search query router. Given a search query, the router must "
        f"answer only with a JSON object holding one weight per signal ({keys}), each between "
        "0 and 1 and summing to 1.0, plus a short `reasoning`. Compare the router's answer "
        "with the reference answer: how close each weight is to the reference weight, whether "
        "the highest-weighted (dominant) signal matches, and whether the reasoning is specific "
        "and consistent with the weights. Grade on this scale:\n"
        f"{scale}\n\n"
        "Query: {{prompt}}\n"
        "Router answer: {{prediction}}\n"
        "Reference answer: {{ground_truth}}"
    )
    if len(text) > MAX_INSTRUCTIONS:
        raise ValueError(f"judge instructions are {len(text)} characters (max {MAX_INSTRUCTIONS})")
    return text


def rating_scale() -> list[dict[str, object]]:
    """The custom metric's rating scale: one entry per rubric score, a float value each."""
    return [
        {"definition": criterion[:100], "value": {"floatValue": float(score)}}
        for score, criterion in RUBRIC
    ]


def judge_job_name(prefix: str, index: int) -> str:
    """A valid evaluation jobName (`[a-z0-9](-*[a-z0-9]){0,62}`): lower case, digits and
    hyphens, at most 63 characters, ending with the job's index."""
    suffix = f"-judge-{index}"
    stem = re.sub(r"[^a-z0-9]+", "-", prefix.lower()).strip("-") or "router"
    stem = stem[: MAX_JOB_NAME - len(suffix)].rstrip("-")
    return stem + suffix


def source_identifier(role: str) -> str:
    """A model's inferenceSourceIdentifier (`[a-zA-Z0-9]([a-zA-Z0-9._-]){0,255}`)."""
    cleaned = re.sub(r"[^a-zA-Z0-9._-]+", "-", role).strip("-._")
    return (cleaned or "model")[:256]


def judge_pairs(targets: Sequence[JudgeTarget]) -> list[tuple[JudgeTarget, ...]]:
    """Targets grouped two per job (the service's maximum), in order."""
    return [tuple(targets[i : i + MODELS_PER_JOB]) for i in range(0, len(targets), MODELS_PER_JOB)]


def judge_dataset_jsonl(
    prompts: Sequence[str], references: Sequence[str], targets: Sequence[JudgeTarget]
) -> bytes:
    """Bring-your-own-inference records: the query, the teacher's answer as the reference,
    and every target's precomputed answer under its identifier."""
    if not prompts:
        raise ValueError("a judge job needs at least one prompt")
    if len(references) != len(prompts) or any(len(t.responses) < len(prompts) for t in targets):
        raise ValueError("prompts, references and responses differ in length")
    lines = []
    for index, (prompt, reference) in enumerate(zip(prompts, references, strict=True)):
        record = {
            "prompt": prompt,
            "referenceResponse": reference,
            "modelResponses": [
                # an empty answer (the call failed) is still judged: it scores 1
                {"response": t.responses[index] or "(no answer)", "modelIdentifier": t.identifier}
                for t in targets
            ],
        }
        lines.append(json.dumps(record, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode()


def judge_output_scores(files: Iterable[tuple[str, bytes]], metric: str) -> list[JudgeScore]:
    """Mean score of `metric` per model from the job's `*_output.jsonl` files (key, bytes).

    The model comes from the `models/<id>/` part of the key, else from the record's single
    model response. Lines without a numeric score for the metric are skipped (counted in the
    log), so a partly failed judge does not crash the run."""
    scores: dict[str, list[float]] = {}
    skipped = 0
    for key, data in files:
        from_key = _model_in_key(key)
        for line in data.decode("utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                model = from_key or _single_model(record)
                value = _metric_value(record, metric)
            except (ValueError, TypeError, KeyError):
                skipped += 1
                continue
            if model is None or value is None:
                skipped += 1
                continue
            scores.setdefault(model, []).append(value)
    if skipped:
        logger.warning("judge output: %d lines without a %s score skipped", skipped, metric)
    return [
        JudgeScore(identifier=model, mean_score=round(sum(v) / len(v), 4), n=len(v))
        for model, v in scores.items()
    ]


def _model_in_key(key: str) -> str | None:
    parts = key.split("/")
    if "models" in parts:
        index = parts.index("models")
        if index + 1 < len(parts):
            return parts[index + 1]
    return None


def _single_model(record: dict[str, object]) -> str | None:
    responses = record.get("modelResponses")
    if isinstance(responses, list) and len(responses) == 1 and isinstance(responses[0], dict):
        identifier = responses[0].get("modelIdentifier")
        return str(identifier) if identifier else None
    return None


def _metric_value(record: dict[str, object], metric: str) -> float | None:
    result = record["automatedEvaluationResult"]
    if not isinstance(result, dict):
        return None
    for score in result.get("scores", []):
        if isinstance(score, dict) and score.get("metricName") == metric:
            value = score.get("result")
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
    return None
