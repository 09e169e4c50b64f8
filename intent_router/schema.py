"""The router's output contract and a defensive parser for model text."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from intent_router.errors import RouterOutputError

SUM_TOLERANCE = 0.01
MAX_OUTPUT_CHARS = 20_000  # a routing answer is a few hundred characters
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


class RoutingDecision(BaseModel):
    """Signal weights (each 0-1, summing to 1.0) and a short reasoning."""

    model_config = ConfigDict(frozen=True)

    weights: dict[str, float] = Field(description="One weight per signal, in taxonomy order.")
    reasoning: str = Field(description="Why these weights, in a sentence.")

    @property
    def top_signal(self) -> str:
        return max(self.weights, key=lambda signal: self.weights[signal])

    def to_json(self) -> str:
        """The wire format: a flat object with one key per signal plus 'reasoning'."""
        payload: dict[str, Any] = {k: round(v, 4) for k, v in self.weights.items()}
        payload["reasoning"] = self.reasoning
        return json.dumps(payload, ensure_ascii=False)


def _reject_constant(name: str) -> float:
    raise RouterOutputError(f"weight is {name}, not a number")


def _candidate_objects(text: str) -> list[dict[str, Any]]:
    """Every top-level JSON object found in the text, in order: fenced blocks first, then all."""
    sources = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder(parse_constant=_reject_constant)
    found: list[dict[str, Any]] = []
    for source in sources:
        index = source.find("{")
        while index != -1:
            try:
                obj, end = decoder.raw_decode(source, index)
            except ValueError:  # JSONDecodeError, or an integer too long to convert
                index = source.find("{", index + 1)
                continue
            if isinstance(obj, dict):
                found.append(obj)
            index = source.find("{", end)
    return found


def decision_from_mapping(
    obj: Mapping[str, Any], signals: Sequence[str], tolerance: float = SUM_TOLERANCE
) -> RoutingDecision:
    """Validate a parsed object against the contract; raise RouterOutputError naming the fault."""
    unexpected = sorted(set(obj) - set(signals) - {"reasoning"})
    if unexpected:
        raise RouterOutputError(
            f"unexpected key(s) {unexpected}; allowed: {[*signals, 'reasoning']}"
        )
    missing = [s for s in signals if s not in obj]
    if missing:
        raise RouterOutputError(f"missing weight(s) for {missing}")
    weights: dict[str, float] = {}
    for signal in signals:
        value = obj[signal]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RouterOutputError(f"weight {signal!r} is {type(value).__name__}, not a number")
        if math.isnan(value) or math.isinf(value):
            raise RouterOutputError(f"weight {signal!r} is {value}, not a finite number")
        if not 0.0 <= value <= 1.0:
            raise RouterOutputError(f"weight {signal!r} = {value} is outside [0, 1]")
        weights[signal] = float(value)
    total = sum(weights.values())
    if abs(total - 1.0) > tolerance:
        raise RouterOutputError(f"weights sum to {total:.4f}, not 1.0 (tolerance {tolerance})")
    reasoning = obj.get("reasoning")
    if not isinstance(reasoning, str) or not reasoning.strip():
        raise RouterOutputError("missing or empty 'reasoning'")
    return RoutingDecision(weights=weights, reasoning=reasoning.strip())


def parse_routing_output(
    text: str, signals: Sequence[str], tolerance: float = SUM_TOLERANCE
) -> RoutingDecision:
    """Parse model text into a decision, tolerating prose, code fences and trailing text.

    Raises RouterOutputError (never anything else) when the text holds no valid decision.
    """
    if not isinstance(text, str) or not text.strip():
        raise RouterOutputError("empty model output")
    if len(text) > MAX_OUTPUT_CHARS:
        raise RouterOutputError(
            f"model output is {len(text):,} characters; a routing answer is at most "
            f"{MAX_OUTPUT_CHARS:,}"
        )
    try:
        candidates = _candidate_objects(text)
    except RecursionError:
        raise RouterOutputError("model output nests too deeply to parse") from None
    if not candidates:
        raise RouterOutputError("no JSON object in model output")
    relevant = [c for c in candidates if any(s in c for s in signals)]
    if not relevant:
        raise RouterOutputError(f"no JSON object with any of the keys {list(signals)}")
    return decision_from_mapping(relevant[0], signals, tolerance)
