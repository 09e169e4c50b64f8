"""Resolve a run's real-query inputs: the golden set and the traffic source.

Both are checked before any paid call: a missing or malformed file is a one-line
UserInputError naming the file and the problem.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Protocol

from intent_router.errors import UserInputError
from intent_router.golden import GoldenSet, load_golden
from intent_router.registry import ChampionRecord
from intent_router.taxonomy import Taxonomy, builtin_taxonomy_names
from intent_router.traffic import TrafficSource, parse_traffic_source

NONE = "none"
DEFAULT_TRAFFIC = "default"


def golden_ref(golden: str | None, taxonomy: Taxonomy) -> str | None:
    """The golden set a run uses: the parameter, else the taxonomy's own; 'none' for none."""
    if golden is not None and golden.strip().lower() == NONE:
        return None
    return golden or taxonomy.golden


def resolve_golden(golden: str | None, taxonomy: Taxonomy, *, required: bool) -> GoldenSet | None:
    """Load and validate the router's golden set; refuse a run that requires one and has none."""
    ref = golden_ref(golden, taxonomy)
    if ref is None:
        if required:
            raise UserInputError(
                f"require_golden is set but taxonomy {taxonomy.name!r} names no golden set: add "
                "`golden: PATH` to the taxonomy file or pass --golden PATH"
            )
        return None
    return load_golden(ref, taxonomy.signal_names)


def check_champion_taxonomy(champion: ChampionRecord, taxonomy: Taxonomy) -> None:
    """Refuse to score a champion against a taxonomy whose signals it was not trained on: every
    answer would be unparseable, a score of 0 (and, for the monitor, a false drift alarm)."""
    if set(champion.signals) == set(taxonomy.signal_names):
        return
    raise UserInputError(
        f"champion {champion.model_id} of router {champion.router!r} was trained on taxonomy "
        f"{champion.taxonomy!r} (signals {', '.join(champion.signals)}), not on taxonomy "
        f"{taxonomy.name!r} (signals {', '.join(taxonomy.signal_names)}): pass --taxonomy with "
        "the champion's taxonomy"
    )


def builtin_traffic_path(taxonomy_name: str) -> Path | None:
    """The sample search log shipped for a built-in taxonomy, if any."""
    candidate = (
        resources.files("intent_router") / "data" / "traffic" / f"{taxonomy_name}-search-log.jsonl"
    )
    path = Path(str(candidate))
    return path if path.is_file() else None


class TrafficParams(Protocol):
    """The traffic fields of DistillParams and MonitorParams."""

    taxonomy: str
    traffic: str
    traffic_model_id: str | None
    traffic_request_metadata: dict[str, str]


def resolve_traffic(params: TrafficParams, taxonomy: Taxonomy) -> TrafficSource:
    """The run's traffic source; 'default' is the built-in taxonomy's sample log (none for a
    taxonomy file or an inline taxonomy)."""
    text = params.traffic.strip()
    if text.lower() == DEFAULT_TRAFFIC:
        builtin = (
            getattr(params, "taxonomy_definition", None) is None
            and params.taxonomy in builtin_taxonomy_names()
        )
        sample = builtin_traffic_path(taxonomy.name) if builtin else None
        if sample is None:
            return parse_traffic_source(NONE)
        text = str(sample)
    return parse_traffic_source(
        text, model_id=params.traffic_model_id, request_metadata=params.traffic_request_metadata
    )
