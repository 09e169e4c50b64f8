"""Taxonomies: the signals a router weighs and the metadata attributes queries talk about.

A taxonomy is data (a YAML/JSON file or an inline parameter), never code. Everything downstream
(prompts, query synthesis, the local teacher, the student, the metrics) follows it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from intent_router.errors import TaxonomyError
from intent_router.text import has_control_characters

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
BUILTIN_SIGNALS = ("visual", "audio", "transcription", "metadata")

# Limits. A generated query is at most a few signal phrases (vocabulary items are under 50
# characters, cues and values at most MAX_VALUE_CHARS) plus one attribute phrasing with at most
# MAX_PHRASING_SLOTS slots filled: under 1,300 characters, well below text.MAX_QUERY_CHARS
# (tests/unit/test_taxonomy.py writes queries from a taxonomy at every limit).
MAX_TAXONOMY_FILE_BYTES = 1_000_000
MAX_SIGNALS = 16
MAX_ATTRIBUTES = 64
MAX_VALUES_PER_ATTRIBUTE = 500
MAX_VALUE_CHARS = 80
MAX_CUES_PER_SIGNAL = 500
MAX_PHRASINGS_PER_ATTRIBUTE = 50
MAX_PHRASING_CHARS = 200
MAX_PHRASING_SLOTS = 4
MAX_GOLDEN_PATH_CHARS = 4096

VOCABULARY_SLOTS = frozenset(
    {
        *("object", "scene", "action", "action_bare", "time", "sound", "music", "speaker"),
        *("speech_verb", "line", "topic", "person", "title", "brand", "genre", "entities"),
        *("cue_visual", "cue_audio", "cue_transcription", "cue_metadata", "year", "n", "m"),
    }
)
"""Slots query synthesis fills from its vocabulary (intent_router/synthesis.py QueryWriter)."""

_SLOT = re.compile(r"\{([a-z][a-z0-9_]*)\}")

Phrase = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_VALUE_CHARS)]
Phrasing = Annotated[str, StringConstraints(max_length=MAX_PHRASING_CHARS)]


def _check_text(kind: str, items: tuple[str, ...]) -> None:
    for item in items:
        if has_control_characters(item):
            raise ValueError(f"{kind} {item!r} contains control characters")


def phrasing_slots(phrasing: str) -> list[str]:
    """The slot names of a phrasing; ValueError when its braces are not all `{name}` slots."""
    if "{" in _SLOT.sub("", phrasing) or "}" in _SLOT.sub("", phrasing):
        raise ValueError(
            f"phrasing {phrasing!r} has unbalanced braces or a malformed slot; "
            "slots look like {value} or {attribute_name}"
        )
    return _SLOT.findall(phrasing)


class Signal(BaseModel):
    """One search signal the router weighs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(pattern=NAME_PATTERN, description="Identifier, e.g. 'visual'.")]
    description: str = Field(
        min_length=3, max_length=400, description="What the signal covers; shown to the teacher."
    )
    cues: tuple[Phrase, ...] = Field(
        default=(),
        max_length=MAX_CUES_PER_SIGNAL,
        description="Extra lowercase cue phrases for this signal (added to the built-in lexicon).",
    )

    @field_validator("cues")
    @classmethod
    def _cues_printable(cls, cues: tuple[str, ...]) -> tuple[str, ...]:
        _check_text("cue", cues)
        if any(not c for c in cues):
            raise ValueError("cues must not contain empty strings")
        return cues


class Attribute(BaseModel):
    """A metadata attribute of the catalogue, its values and which signals it informs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[
        str, Field(pattern=NAME_PATTERN, description="Identifier, e.g. 'camera_angle'.")
    ]
    values: tuple[Phrase, ...] = Field(
        max_length=MAX_VALUES_PER_ATTRIBUTE,
        description="Values a query may mention, e.g. 'overhead shot'.",
    )
    informs: dict[str, float] = Field(
        description="Signal -> affinity (0-1]: how strongly a mention of this attribute points "
        "at each signal."
    )
    phrasings: tuple[Phrasing, ...] = Field(
        default=(),
        max_length=MAX_PHRASINGS_PER_ATTRIBUTE,
        description="Optional query templates with a {value} slot, e.g. 'clips shot from {value}'.",
    )

    @field_validator("values")
    @classmethod
    def _values_not_empty(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(v.strip() for v in values)
        if not cleaned:
            raise ValueError("values must not be empty")
        if any(not v for v in cleaned):
            raise ValueError("values must not contain empty strings")
        _check_text("value", cleaned)
        braced = [v for v in cleaned if "{" in v or "}" in v]
        if braced:
            raise ValueError(f"value {braced[0]!r} contains a brace; braces mark phrasing slots")
        lowered = [v.lower() for v in cleaned]
        if len(set(lowered)) != len(lowered):
            dupes = sorted(v for v, n in Counter(lowered).items() if n > 1)
            raise ValueError(f"duplicate values: {', '.join(dupes)}")
        return cleaned

    @field_validator("informs")
    @classmethod
    def _informs_valid(cls, informs: dict[str, float]) -> dict[str, float]:
        if not informs:
            raise ValueError("informs must name at least one signal")
        for signal, affinity in informs.items():
            if not 0 < affinity <= 1:
                raise ValueError(f"affinity for {signal!r} must be in (0, 1], got {affinity}")
        return informs

    @field_validator("phrasings")
    @classmethod
    def _phrasings_have_slot(cls, phrasings: tuple[str, ...]) -> tuple[str, ...]:
        _check_text("phrasing", phrasings)
        for phrasing in phrasings:
            slots = phrasing_slots(phrasing)
            if "value" not in slots:
                raise ValueError(f"phrasing {phrasing!r} has no {{value}} slot")
            if len(slots) > MAX_PHRASING_SLOTS:
                raise ValueError(
                    f"phrasing {phrasing!r} has {len(slots)} slots; the limit is "
                    f"{MAX_PHRASING_SLOTS}"
                )
        return phrasings


class Taxonomy(BaseModel):
    """Signals plus metadata attributes. Validated on construction."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,47}$")] = Field(
        description="Taxonomy name; also the default router name."
    )
    signals: tuple[Signal, ...] = Field(
        min_length=2, max_length=MAX_SIGNALS, description="Signals the router weighs."
    )
    attributes: tuple[Attribute, ...] = Field(
        min_length=1, max_length=MAX_ATTRIBUTES, description="Catalogue attributes."
    )
    golden: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_GOLDEN_PATH_CHARS,
        description="Path to the router's golden set (.jsonl or .csv, optionally .gz); relative "
        "paths are relative to the taxonomy file.",
    )

    @field_validator("golden")
    @classmethod
    def _golden_printable(cls, golden: str | None) -> str | None:
        if golden is not None and (has_control_characters(golden) or not golden.strip()):
            raise ValueError("golden must be a file path without control characters")
        return golden

    @model_validator(mode="after")
    def _cross_references(self) -> Taxonomy:
        names = [s.name for s in self.signals]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate signal names in {names}")
        if "reasoning" in names:
            raise ValueError("'reasoning' is reserved and cannot be a signal name")
        attr_names = [a.name for a in self.attributes]
        if len(set(attr_names)) != len(attr_names):
            raise ValueError(f"duplicate attribute names in {attr_names}")
        for attribute in self.attributes:
            unknown = sorted(set(attribute.informs) - set(names))
            if unknown:
                raise ValueError(
                    f"attribute {attribute.name!r} informs unknown signal(s) {unknown}; "
                    f"known signals: {names}"
                )
        known = VOCABULARY_SLOTS | set(attr_names) | {"value"}
        for attribute in self.attributes:
            for phrasing in attribute.phrasings:
                unknown = sorted(set(phrasing_slots(phrasing)) - known)
                if unknown:
                    raise ValueError(
                        f"attribute {attribute.name!r}: phrasing {phrasing!r} uses unknown "
                        f"slot(s) {', '.join(unknown)}; use {{value}}, another attribute's "
                        f"name or one of {', '.join(sorted(VOCABULARY_SLOTS))}"
                    )
        return self

    @property
    def signal_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.signals)

    def attribute(self, name: str) -> Attribute:
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute
        raise KeyError(name)

    @cached_property
    def fingerprint(self) -> str:
        """Stable short hash of the taxonomy's content (the golden set does not change training)."""
        blob = json.dumps(self.model_dump(mode="json", exclude={"golden"}), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _format_validation_error(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "taxonomy"
    message = re.sub(r"^Value error, ", "", first["msg"])
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"invalid taxonomy {source}: {location}: {message}{more}"


def taxonomy_from_mapping(data: Any, source: str = "(inline)") -> Taxonomy:
    """Build a taxonomy from parsed YAML/JSON, raising TaxonomyError with the field and reason."""
    if not isinstance(data, dict):
        raise TaxonomyError(f"invalid taxonomy {source}: expected a mapping at the top level")
    try:
        return Taxonomy.model_validate(data)
    except ValidationError as error:
        raise TaxonomyError(_format_validation_error(error, source)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a mapping with the same key twice (YAML keeps the last)."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_yaml(text: str) -> Any:
    """yaml.safe_load, except that a key given twice in a mapping is an error."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


def load_taxonomy(path: str | Path) -> Taxonomy:
    """Load a taxonomy from a .yaml/.yml/.json file."""
    file = Path(path)
    if file.is_dir():
        raise TaxonomyError(f"taxonomy {file} is a directory, not a taxonomy file")
    try:
        with file.open("rb") as handle:
            raw = handle.read(MAX_TAXONOMY_FILE_BYTES + 1)
    except OSError as error:
        raise TaxonomyError(f"cannot read taxonomy file {file}: {error.strerror}") from None
    if len(raw) > MAX_TAXONOMY_FILE_BYTES:
        raise TaxonomyError(
            f"taxonomy file {file} is larger than the limit of {MAX_TAXONOMY_FILE_BYTES:,} bytes"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TaxonomyError(
            f"taxonomy file {file} is not UTF-8 (bad byte at offset {error.start})"
        ) from None
    try:
        data = json.loads(text) if file.suffix == ".json" else load_yaml(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        first_line = str(error).splitlines()[0]
        raise TaxonomyError(f"taxonomy file {file} does not parse: {first_line}") from None
    return _resolve_golden(taxonomy_from_mapping(data, source=str(file)), file.parent)


def _resolve_golden(taxonomy: Taxonomy, folder: Path) -> Taxonomy:
    """The taxonomy with a relative `golden` path made absolute against its file's folder."""
    if taxonomy.golden is None or Path(taxonomy.golden).is_absolute():
        return taxonomy
    resolved = os.path.abspath(folder / taxonomy.golden)
    return taxonomy.model_copy(update={"golden": resolved})


def builtin_taxonomy_names() -> list[str]:
    folder = resources.files("intent_router") / "data" / "taxonomies"
    return sorted(p.name.rsplit(".", 1)[0] for p in folder.iterdir() if p.name.endswith(".yaml"))


def builtin_taxonomy(name: str = "default") -> Taxonomy:
    """One of the taxonomies shipped with the package."""
    folder = resources.files("intent_router") / "data" / "taxonomies"
    candidate = folder / f"{name}.yaml"
    if not candidate.is_file():
        raise TaxonomyError(
            f"no built-in taxonomy named {name!r}; available: {', '.join(builtin_taxonomy_names())}"
        )
    taxonomy = taxonomy_from_mapping(load_yaml(candidate.read_text("utf-8")), source=name)
    return _resolve_golden(taxonomy, Path(str(folder)))


def resolve_taxonomy(spec: str | dict[str, Any] | Taxonomy | None) -> Taxonomy:
    """A taxonomy from a built-in name, a file path, a mapping, or the default when None."""
    if spec is None:
        return builtin_taxonomy()
    if isinstance(spec, Taxonomy):
        return spec
    if isinstance(spec, dict):
        return taxonomy_from_mapping(spec)
    if spec.endswith((".yaml", ".yml", ".json")) or "/" in spec:
        return load_taxonomy(spec)
    return builtin_taxonomy(spec)
