"""Query synthesis: plan cells and batches, and write queries for a cell from templates.

A cell is one slice of the query space: dominant signal x taxonomy attribute x difficulty.
A batch is a list of cells, each with a count and a seed. The same inputs give the same batch,
byte for byte. Slot vocabulary is split into a training half and a held-out half (by a stable
hash) so the student can be tested on wordings it never saw.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from intent_router.errors import TaxonomyError, UserInputError
from intent_router.taxonomy import BUILTIN_SIGNALS, Attribute, Taxonomy

BALANCED = "balanced"
Difficulty = Literal["easy", "hard", "edge"]
VocabularyHalf = Literal["train", "heldout"]
DIFFICULTIES: tuple[Difficulty, ...] = ("easy", "hard", "edge")
AWS_SAMPLE_MIX = {
    "visual": 0.25,
    "audio": 0.20,
    "transcription": 0.20,
    "metadata": 0.15,
    BALANCED: 0.20,
}
DEFAULT_DIFFICULTY_MIX: dict[str, float] = {"easy": 0.5, "hard": 0.35, "edge": 0.15}
HELDOUT_MODULUS = 5  # one vocabulary item in five is held out of training
_SLOT = re.compile(r"\{([^{}]*)\}")


class Cell(BaseModel):
    model_config = ConfigDict(frozen=True)

    dominant: str
    attribute: str
    difficulty: Difficulty

    @property
    def key(self) -> str:
        return f"{self.dominant}/{self.attribute}/{self.difficulty}"


class CellQuota(BaseModel):
    model_config = ConfigDict(frozen=True)

    cell: Cell
    count: int = Field(ge=0)
    seed: int


class BatchSpec(BaseModel):
    """A unit of generation work: cells with counts and seeds."""

    model_config = ConfigDict(frozen=True)

    split: Literal["train", "holdout"]
    index: int
    vocabulary: VocabularyHalf
    quotas: tuple[CellQuota, ...]

    @property
    def key(self) -> str:
        return f"{self.split}-{self.vocabulary}-{self.index:03d}"

    @property
    def size(self) -> int:
        return sum(q.count for q in self.quotas)


def stable_seed(*parts: object) -> int:
    digest = hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).digest()
    return int.from_bytes(digest[:4], "big")


def default_mix(taxonomy: Taxonomy) -> dict[str, float]:
    """The AWS sample's mix for the four standard signals; an even split otherwise."""
    if set(taxonomy.signal_names) == set(BUILTIN_SIGNALS):
        return dict(AWS_SAMPLE_MIX)
    share = 0.8 / len(taxonomy.signals)
    return {**{s: share for s in taxonomy.signal_names}, BALANCED: 0.2}


def allocate(total: int, shares: Mapping[str, float]) -> dict[str, int]:
    """Split an integer total by shares with the largest-remainder method (exact sum)."""
    weight_sum = sum(shares.values())
    if weight_sum <= 0:
        raise UserInputError("mix shares must sum to a positive number")
    raw = {k: total * v / weight_sum for k, v in shares.items()}
    counts = {k: int(v) for k, v in raw.items()}
    leftover = total - sum(counts.values())
    for key in sorted(raw, key=lambda k: (-(raw[k] - counts[k]), k))[:leftover]:
        counts[key] += 1
    return counts


def plan_cells(
    taxonomy: Taxonomy,
    total: int,
    seed: int,
    namespace: str,
    mix: Mapping[str, float] | None = None,
    difficulty_mix: Mapping[str, float] | None = None,
) -> list[CellQuota]:
    """Every cell of the taxonomy with its share of `total` queries and its own seed."""
    mix = dict(mix or default_mix(taxonomy))
    unknown = sorted(set(mix) - set(taxonomy.signal_names) - {BALANCED})
    if unknown:
        raise UserInputError(f"signal mix names unknown signal(s) {unknown}")
    difficulty_mix = dict(difficulty_mix or DEFAULT_DIFFICULTY_MIX)
    shares: dict[str, float] = {}
    cells: dict[str, Cell] = {}
    per_attribute = 1 / len(taxonomy.attributes)
    for dominant, share in mix.items():
        for attribute in taxonomy.attributes:
            for difficulty in DIFFICULTIES:
                cell = Cell(dominant=dominant, attribute=attribute.name, difficulty=difficulty)
                cells[cell.key] = cell
                shares[cell.key] = share * per_attribute * difficulty_mix.get(difficulty, 0.0)
    counts = allocate(total, shares)
    return [
        CellQuota(cell=cells[key], count=counts[key], seed=stable_seed(seed, namespace, key))
        for key in sorted(cells)
        if counts[key] > 0
    ]


def plan_batches(
    quotas: Sequence[CellQuota],
    n_batches: int,
    split: Literal["train", "holdout"],
    vocabulary: VocabularyHalf,
) -> list[BatchSpec]:
    """Pack cells into at most n_batches batches of similar size (deterministic)."""
    n_batches = max(1, min(n_batches, len(quotas)))
    bins: list[list[CellQuota]] = [[] for _ in range(n_batches)]
    sizes = [0] * n_batches
    for quota in sorted(quotas, key=lambda q: (-q.count, q.cell.key)):
        target = min(range(n_batches), key=lambda b: (sizes[b], b))
        bins[target].append(quota)
        sizes[target] += quota.count
    return [
        BatchSpec(
            split=split,
            index=i,
            vocabulary=vocabulary,
            quotas=tuple(sorted(b, key=lambda q: q.cell.key)),
        )
        for i, b in enumerate(bins)
        if b
    ]


# -- vocabulary ------------------------------------------------------------------------------
@cache
def _vocabulary() -> dict[str, tuple[str, ...]]:
    raw = (resources.files("intent_router") / "data" / "vocabulary.json").read_text("utf-8")
    return {k: tuple(v) for k, v in json.loads(raw).items()}


def is_heldout(item: str) -> bool:
    return zlib.crc32(item.lower().encode()) % HELDOUT_MODULUS == 0


@cache
def _lexicon_vocabulary() -> dict[str, tuple[str, ...]]:
    """Cue words of the four standard signals as extra slot vocabulary, plus known names.

    Only phrases that point clearly at one signal (strength >= 2, no rival of equal strength)
    are used, so generated queries cover the wide vocabulary real users type.
    """
    package = resources.files("intent_router") / "data"
    cues: dict[str, dict[str, int]] = json.loads((package / "cues.json").read_text("utf-8"))
    best: dict[str, tuple[str, int, int]] = {}
    for signal, phrases in cues.items():
        for phrase, strength in phrases.items():
            top, top_strength, rival = best.get(phrase, ("", 0, 0))
            if strength > top_strength:
                best[phrase] = (signal, strength, top_strength)
            else:
                best[phrase] = (top, top_strength, max(rival, strength))
    out: dict[str, list[str]] = {f"cue_{s}": [] for s in cues}
    for phrase, (signal, strength, rival) in sorted(best.items()):
        if strength >= 2 and rival < strength:
            out[f"cue_{signal}"].append(phrase)
    entities = package / "entities.json"
    if entities.is_file():
        out["entities"] = list(json.loads(entities.read_text("utf-8"))["names"])
    return {k: tuple(v) for k, v in out.items()}


@cache
def vocabulary_half(half: VocabularyHalf) -> dict[str, tuple[str, ...]]:
    """The slot vocabulary restricted to one half (items never appear in both)."""
    wanted = half == "heldout"
    merged = {**_vocabulary(), **_lexicon_vocabulary()}
    return {k: tuple(i for i in v if is_heldout(i) == wanted) for k, v in merged.items()}


# -- templates -------------------------------------------------------------------------------
EASY_TEMPLATES: dict[str, tuple[str, ...]] = {
    "visual": (
        "{object} in {scene}",
        "{action} {time}",
        "{scene} {time}",
        "footage of {action}",
        "a shot of {object}",
        "{action} in {scene}",
        "{object} {time}",
        "{object} and {object}",
        "show me {action}",
        "clips of {scene}",
        "{action}",
        "{scene} seen from above",
    ),
    "audio": (
        "sound of {sound}",
        "{sound}",
        "{music} playing",
        "{sound} in the background",
        "clips with {music}",
        "audio of {sound}",
        "{sound} and {sound}",
        "you can hear {sound}",
        "{music}",
        "background music like {music}",
        "loud {sound}",
        "recording of {sound}",
    ),
    "transcription": (
        "{speaker} {speech_verb} {line}",
        "when {speaker} {speech_verb} that {line}",
        'the part where {speaker} {speech_verb} "{line}"',
        "{speaker} talking about {topic}",
        "interview where {speaker} discusses {topic}",
        'someone saying "{line}"',
        "narration about {topic}",
        '"{line}"',
        'the line "{line}"',
        "{speaker} explaining {topic}",
        "speech about {topic}",
        "who said {line}",
    ),
    "metadata": (
        "{title} season {n} episode {m}",
        "{person} {genre}",
        "{genre} from {year}",
        "{title} {year}",
        "{brand} {genre}",
        "episodes of {title}",
        "{person} in {title}",
        "{title}",
        "{person}",
        "{genre} starring {person}",
        "{title} directed by {person}",
        "{brand} highlights from {year}",
        "{entities}",
        "{entities} {cue_metadata}",
        "{entities} {year}",
    ),
}
BALANCED_TEMPLATES: tuple[str, ...] = (
    "{person} {speech_verb} {line} in {scene}",
    "{action} with {music}",
    "{title} scene with {sound}",
    "{speaker} talking over {sound}",
    "{object} in {scene} with {music} from {year}",
    "{speaker} {speech_verb} {line} as {sound}",
    "{person} {action_bare} while {music} plays",
    "{scene} with {sound}, {title}",
)
NEGATIONS: dict[str, tuple[str, ...]] = {
    "visual": ("without music", "with no talking", "no narration", "without any sound"),
    "audio": ("without talking", "no people visible", "no narration", "without speech"),
    "transcription": ("without background music", "no music", "ignore the visuals"),
    "metadata": ("without music", "no narration", "not the trailer"),
    BALANCED: ("without subtitles", "no music"),
}
LONG_TAILS = (
    "I think it was posted a while ago and I need it for a project",
    "ideally the longer version if there is one, not the short cut",
    "something I saw once and cannot find again no matter what I search",
    "for a compilation we are putting together next week",
)


class QueryWriter:
    """Writes queries for cells of a taxonomy from templates and one vocabulary half."""

    def __init__(self, taxonomy: Taxonomy, vocabulary: VocabularyHalf) -> None:
        self.taxonomy = taxonomy
        self.vocab = vocabulary_half(vocabulary)
        for signal in taxonomy.signals:
            if signal.name in BUILTIN_SIGNALS:
                continue
            informing = [a for a in taxonomy.attributes if signal.name in a.informs]
            if not signal.cues and not informing:
                raise TaxonomyError(
                    f"signal {signal.name!r} has no cues and no attribute informs it; "
                    "queries cannot be written for it"
                )
        # Phrasings may use the vocabulary slots or another attribute's name as a slot
        # ("{value} against {team}" picks a value of the attribute 'team'); vocabulary slots
        # win when an attribute has the same name. Anything else would be written out
        # literally, so it is rejected here.
        self._attribute_values = {a.name: a.values for a in taxonomy.attributes}
        vocabulary_slots = sorted(self._slots(random.Random(0)))
        known = {*vocabulary_slots, *self._attribute_values, "value"}
        for attribute in taxonomy.attributes:
            for phrasing in attribute.phrasings:
                unknown = sorted(set(_SLOT.findall(phrasing)) - known)
                if unknown:
                    raise TaxonomyError(
                        f"attribute {attribute.name!r}: phrasing {phrasing!r} uses unknown "
                        f"slot(s) {', '.join(unknown)}; use {{value}}, another attribute's "
                        f"name or one of {', '.join(vocabulary_slots)}"
                    )

    def _pick(self, rng: random.Random, category: str) -> str:
        items = self.vocab.get(category) or ()
        if not items:
            raise TaxonomyError(f"vocabulary category {category!r} is empty")
        return rng.choice(items)

    def _slots(self, rng: random.Random) -> dict[str, Callable[[], str]]:
        return {
            "object": lambda: self._pick(rng, "objects"),
            "scene": lambda: self._pick(rng, "scenes"),
            "action": lambda: self._pick(rng, "actions"),
            "action_bare": lambda: self._pick(rng, "actions").split(" ", 2)[-1],
            "time": lambda: self._pick(rng, "times_of_day"),
            "sound": lambda: self._pick(rng, "sounds"),
            "music": lambda: self._pick(rng, "music"),
            "speaker": lambda: self._pick(rng, "speakers"),
            "speech_verb": lambda: self._pick(rng, "speech_verbs"),
            "line": lambda: self._pick(rng, "spoken_lines"),
            "topic": lambda: self._pick(rng, "topics"),
            "person": lambda: self._pick(rng, "person_names"),
            "title": lambda: self._pick(rng, "titles"),
            "brand": lambda: self._pick(rng, "brands_and_teams"),
            "genre": lambda: self._pick(rng, "genres"),
            "entities": lambda: self._pick(rng, "entities"),
            "cue_visual": lambda: self._pick(rng, "cue_visual"),
            "cue_audio": lambda: self._pick(rng, "cue_audio"),
            "cue_transcription": lambda: self._pick(rng, "cue_transcription"),
            "cue_metadata": lambda: self._pick(rng, "cue_metadata"),
            "year": lambda: str(rng.randint(1955, 2025)),
            "n": lambda: str(rng.randint(1, 9)),
            "m": lambda: str(rng.randint(1, 22)),
        }

    def _fill(self, template: str, rng: random.Random) -> str:
        slots = self._slots(rng)
        out = template
        while "{" in out:
            start = out.index("{")
            end = out.index("}", start)
            name = out[start + 1 : end]
            if name in slots:
                value = slots[name]()
            elif name in self._attribute_values:
                value = rng.choice(self._attribute_values[name])
            else:
                value = name
            out = out[:start] + value + out[end + 1 :]
        return out

    def _signal_query(self, signal: str, rng: random.Random) -> str:
        if signal in EASY_TEMPLATES:
            return self._fill(rng.choice(EASY_TEMPLATES[signal]), rng)
        spec = next(s for s in self.taxonomy.signals if s.name == signal)
        informing = [a for a in self.taxonomy.attributes if signal in a.informs]
        cue = rng.choice(spec.cues) if spec.cues else ""
        value = rng.choice(rng.choice(informing).values) if informing else ""
        shapes = [s for s in ((cue, value), (value, cue), (cue,), (value,)) if all(s)]
        return " ".join(rng.choice(shapes))

    def _attribute_phrase(self, attribute: Attribute, rng: random.Random) -> str:
        value = rng.choice(attribute.values)
        if attribute.phrasings and rng.random() < 0.5:
            return self._fill(rng.choice(attribute.phrasings).replace("{value}", value), rng)
        return value

    def write(self, cell: Cell, rng: random.Random) -> str:
        """One query for a cell."""
        signals = list(self.taxonomy.signal_names)
        attribute = self.taxonomy.attribute(cell.attribute)
        if cell.dominant == BALANCED:
            if set(BUILTIN_SIGNALS) <= set(signals) and rng.random() < 0.6:
                core = self._fill(rng.choice(BALANCED_TEMPLATES), rng)
            else:
                a, b = rng.sample(signals, 2)
                core = f"{self._signal_query(a, rng)} with {self._signal_query(b, rng)}"
        else:
            core = self._signal_query(cell.dominant, rng)
        if rng.random() < 0.6:
            phrase = self._attribute_phrase(attribute, rng)
            core = f"{phrase} {core}" if rng.random() < 0.4 else f"{core}, {phrase}"
        if cell.difficulty == "hard":
            roll = rng.random()
            if roll < 0.4:
                core = f"{core} {rng.choice(NEGATIONS.get(cell.dominant, NEGATIONS[BALANCED]))}"
            elif roll < 0.8:
                other = rng.choice([s for s in signals if s != cell.dominant] or signals)
                core = f"{core} {rng.choice(['while', 'with', 'and'])} " + self._signal_query(
                    other, rng
                )
            else:
                names = [
                    n
                    for n in self.vocab.get("person_names", ()) + self.vocab.get("titles", ())
                    if " " not in n
                ]
                if names:
                    core = (
                        f"{core} {rng.choice(['featuring', 'from', 'like in'])} {rng.choice(names)}"
                    )
        elif cell.difficulty == "edge":
            if rng.random() < 0.5:
                words = core.replace(",", "").split()
                keep = rng.randint(1, min(3, len(words)))
                core = " ".join(words[-keep:])
            else:
                extra = self._signal_query(
                    cell.dominant if cell.dominant in signals else rng.choice(signals), rng
                )
                core = f"{core}, {extra}, {rng.choice(LONG_TAILS)}"
        core = " ".join(core.split())
        if rng.random() < 0.3:
            core = core[:1].upper() + core[1:]
        return core

    def write_cell(self, quota: CellQuota, exclude: set[str] | None = None) -> list[str]:
        """`quota.count` distinct queries for a cell (fewer only if the cell runs out)."""
        rng = random.Random(quota.seed)
        seen = set(exclude or ())
        out: list[str] = []
        attempts = 0
        while len(out) < quota.count and attempts < quota.count * 30:
            attempts += 1
            query = self.write(quota.cell, rng)
            key = query.lower()
            if key not in seen:
                seen.add(key)
                out.append(query)
        return out
