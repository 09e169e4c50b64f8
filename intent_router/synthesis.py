"""Query synthesis: plan cells and batches, and write realistic queries for a cell.

A cell is one slice of the query space: dominant signal x taxonomy attribute x difficulty.
A batch is a list of cells, each with a count and a seed. The same inputs give the same batch,
byte for byte.

Queries are composed by a small grammar per signal from a curated phrasebook
(intent_router/data/phrasebook.json) organised by grammatical role: settings whose subjects can
all do their actions in their places, sound sources with what they sound like, speakers with
their speech acts, topics and spoken formats, and catalogue names, genres and formats. A
taxonomy value goes into a phrasing that fits it (its own phrasings, or a generic one chosen by
what the attribute informs and the shape of the value). Every phrasebook item is in one of two
vocabulary halves (a stable hash, see is_heldout); the held-out half never appears in training
batches, so the student can be tested on wordings it never saw.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import re
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from typing import Any, Literal, TypeVar

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
FOCUS_SHARE = 0.35  # share of compositions drawn from a taxonomy's focus (0.85 after a value)
_SLOT = re.compile(r"\{([^{}]*)\}")
T = TypeVar("T")


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
def is_heldout(item: str) -> bool:
    return zlib.crc32(item.lower().encode()) % HELDOUT_MODULUS == 0


def _in_half(item: str, half: VocabularyHalf) -> bool:
    return is_heldout(item) == (half == "heldout")


@cache
def _phrasebook_data() -> dict[str, Any]:
    raw = (resources.files("intent_router") / "data" / "phrasebook.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(raw)
    return data


@cache
def _lexicon_vocabulary() -> dict[str, tuple[str, ...]]:
    """Cue words of the four standard signals, plus the names the teacher knows.

    Only phrases that point clearly at one signal (strength >= 2, no rival of equal strength)
    are kept. They fill the cue slots of taxonomy phrasings and the one-to-three word queries
    of edge cells ("panning shot", "reverb", "box office"), where a bare cue is a real search.
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


Place = tuple[str, str, str]  # (preposition, noun phrase, 'in' doors / 'out' doors / 'dry')
Act = tuple[str, str, str]  # (third person, -ing, past)


@dataclass(frozen=True)
class Setting:
    """Subjects that can all do all the actions, and the places and things that go with them."""

    name: str
    subjects: tuple[str, ...]
    plural: tuple[str, ...]
    actions: tuple[str, ...]
    places: tuple[Place, ...]
    things: tuple[str, ...]
    kind: str  # of its first place set: 'in', 'out' or 'dry'
    domain: str | None
    placed: frozenset[str] = frozenset()  # actions that already say where ('walking on stage')


@dataclass(frozen=True)
class SoundGroup:
    items: tuple[str, ...]
    places: tuple[Place, ...]


@dataclass(frozen=True)
class Domain:
    """Speakers, what they talk about, where, and the spoken formats of one walk of life."""

    name: str
    speakers: tuple[str, ...]
    topics: tuple[str, ...]
    places: tuple[str, ...]
    formats: dict[str, tuple[str, ...]]  # complement preposition ("on", "about", "") -> formats


@dataclass(frozen=True)
class Phrasebook:
    """One vocabulary half of the phrasebook (intent_router/data/phrasebook.json), by role."""

    settings: tuple[Setting, ...]
    actors: tuple[Setting, ...]  # settings with subjects and actions
    talkers: tuple[Setting, ...]  # actor settings whose subjects can speak
    places: tuple[Place, ...]
    scenery: tuple[Place, ...]  # places whose noun phrase is a scene on its own
    times_outdoor: tuple[str, ...]
    times_weather: tuple[str, ...]
    times_any: tuple[str, ...]
    camera_before: tuple[str, ...]
    camera_after: tuple[str, ...]
    styles: tuple[str, ...]
    appearance: tuple[str, ...]
    appearance_subjects: frozenset[str]
    things: tuple[str, ...]
    landmarks: tuple[str, ...]
    sound_groups: tuple[SoundGroup, ...]
    sound_events: tuple[str, ...]
    framed_events: tuple[str, ...]  # seen as well as heard: only inside 'sound of ...'
    sound_nouns: tuple[str, ...]
    calm_events: tuple[str, ...]  # sounds one might listen to for an hour
    calm_nouns: tuple[str, ...]
    ambiences: tuple[str, ...]
    music: tuple[str, ...]
    music_places: tuple[str, ...]
    instruments: tuple[str, ...]
    qualities: tuple[str, ...]
    audio_before: tuple[str, ...]  # 'sound of', 'recording of' (grammar, not split)
    audio_after: tuple[str, ...]  # 'sound effect', 'sounds'
    audio_calm: tuple[str, ...]  # 'for sleeping', '10 hours'
    domains: tuple[Domain, ...]
    speakers: tuple[str, ...]
    acts: dict[str, tuple[Act, ...]]  # complement kind -> speech acts
    faults: tuple[str, ...]
    relations: tuple[str, ...]
    formats_for: tuple[str, ...]
    listeners: tuple[str, ...]
    content_nouns: tuple[str, ...]  # 'speech', 'interview' (grammar, not split)
    lines: tuple[str, ...]
    topics: tuple[str, ...]
    films: tuple[str, ...]
    series: tuple[str, ...]
    people: dict[str, tuple[str, ...]]  # role -> names
    franchises: tuple[str, ...]
    genres: tuple[str, ...]
    languages: tuple[str, ...]
    audiences: tuple[str, ...]
    ratings: tuple[str, ...]
    metadata_formats: dict[str, tuple[str, ...]]
    channels: tuple[str, ...]
    sources: tuple[str, ...]  # archives, agencies and stock libraries
    sport_events: tuple[str, ...]
    shows_and_festivals: tuple[str, ...]
    teams: tuple[str, ...]
    leagues: tuple[str, ...]
    brands: tuple[str, ...]
    decades: tuple[str, ...]
    catalogue: tuple[str, ...]
    songs: tuple[tuple[str, str], ...]  # (artist, song)
    wordlike_titles: tuple[str, ...]
    wordlike_musicians: tuple[str, ...]
    cues: dict[str, tuple[str, ...]]  # signal -> clear cue phrases of the teacher's lexicon
    entities: tuple[str, ...]

    def role(self, name: str) -> tuple[str, ...]:
        """The people of one role ('musicians', 'presenters'), or everyone if none is left."""
        return self.people.get(name) or self.person_names

    @cached_property
    def person_names(self) -> tuple[str, ...]:
        return tuple(n for names in self.people.values() for n in names)

    @cached_property
    def titles(self) -> tuple[str, ...]:
        return self.films + self.series

    @cached_property
    def all_topics(self) -> tuple[str, ...]:
        return self.topics + tuple(t for d in self.domains for t in d.topics)


def _keep(items: Sequence[Any], half: VocabularyHalf) -> tuple[Any, ...]:
    """Items of one half; an inflected item (a list of forms) is decided by its first form."""
    out = []
    for item in items:
        key = item if isinstance(item, str) else item[0]
        if _in_half(key, half):
            out.append(item if isinstance(item, str) else tuple(item))
    return tuple(out)


@cache
def phrasebook(half: VocabularyHalf) -> Phrasebook:
    """The phrasebook restricted to one vocabulary half. Grammar words (prepositions, "sound
    of", "sound effect") are not vocabulary; every item that carries words is split by
    is_heldout: a place by its noun phrase, a speech act by its first form."""
    data = _phrasebook_data()
    visual, audio = data["visual"], data["audio"]
    speech, catalogue = data["transcription"], data["metadata"]
    kinds = {name: "in" for name in visual["indoor"]} | {name: "dry" for name in visual["dry"]}
    placesets: dict[str, tuple[Place, ...]] = {
        name: tuple(
            (prep, np, kinds.get(name, "out"))
            for prep, nps in by_prep.items()
            for np in _keep(nps, half)
        )
        for name, by_prep in visual["places"].items()
    }
    every_place = {
        f"{prep} {np}"
        for by_prep in visual["places"].values()
        for prep, nps in by_prep.items()
        for np in nps
    }

    def placed(actions: Sequence[str]) -> frozenset[str]:
        return frozenset(
            a for a in actions if _has_place(a) or any(p in f" {a} " for p in every_place)
        )

    settings = []
    for name, spec in visual["settings"].items():
        sets = spec.get("placesets", [])
        settings.append(
            Setting(
                name=name,
                subjects=_keep(spec.get("subjects", []), half),
                plural=_keep(spec.get("subjects_plural", []), half),
                actions=_keep(spec.get("actions", []), half),
                places=tuple(p for s in sets for p in placesets[s]),
                things=_keep(spec.get("things", []), half),
                kind=kinds.get(sets[0], "out") if sets else "out",
                domain=(spec.get("speaks") or [None])[0],
                placed=placed(spec.get("actions", [])),
            )
        )
    actors = tuple(s for s in settings if (s.subjects or s.plural) and s.actions)
    sound_groups = tuple(
        SoundGroup(
            items=_keep(group["items"], half),
            places=tuple(p for s in group.get("placesets", []) for p in placesets[s]),
        )
        for group in audio["events"].values()
    )
    domains = tuple(
        Domain(
            name=name,
            speakers=_keep(spec["speakers"], half),
            topics=_keep(spec["topics"], half),
            places=_keep(spec["places"], half),
            formats={
                ("" if prep == "none" else prep): _keep(items, half)
                for prep, items in spec["formats"].items()
            },
        )
        for name, spec in speech["domains"].items()
    )
    lexicon = _lexicon_vocabulary()
    cues = {
        signal: tuple(
            c
            for c in _keep(lexicon.get(f"cue_{signal}", ()), half)
            if len(c.split()) <= 3 and c.isascii()
        )
        for signal in BUILTIN_SIGNALS
    }
    people = {role: _keep(names, half) for role, names in catalogue["people"].items()}
    book = Phrasebook(
        settings=tuple(settings),
        actors=actors,
        talkers=tuple(s for s in actors if s.domain and any(d.name == s.domain for d in domains)),
        places=tuple(p for ps in placesets.values() for p in ps),
        scenery=tuple(
            p for ps in placesets.values() for p in ps if p[1] not in set(visual["not_scenery"])
        ),
        times_outdoor=_keep(visual["times"]["outdoor"], half),
        times_weather=_keep(visual["times"]["weather"], half),
        times_any=_keep(visual["times"]["any"], half),
        camera_before=_keep(visual["camera"]["before"], half),
        camera_after=_keep(visual["camera"]["after"], half),
        styles=_keep(visual["styles"], half),
        appearance=_keep(visual["appearance"], half),
        appearance_subjects=frozenset(visual["appearance_subjects"]),
        things=_keep(visual["things"], half),
        landmarks=_keep(visual["landmarks"], half),
        sound_groups=tuple(g for g in sound_groups if g.items),
        sound_events=tuple(i for g in sound_groups for i in g.items),
        framed_events=_keep(audio["framed_events"], half),
        sound_nouns=_keep(audio["nouns"], half),
        calm_events=tuple(
            i for name in audio["calm_groups"] for i in _keep(audio["events"][name]["items"], half)
        ),
        calm_nouns=_keep(audio["calm_nouns"], half),
        ambiences=_keep(audio["ambiences"], half),
        music=_keep(audio["music"], half),
        music_places=_keep(audio["music_places"], half),
        instruments=_keep(audio["instruments"], half),
        qualities=_keep(audio["qualities"], half),
        audio_before=tuple(audio["formats"]["before"]),
        audio_after=tuple(audio["formats"]["after"]),
        audio_calm=tuple(audio["formats"]["calm"]),
        domains=tuple(d for d in domains if d.speakers),
        speakers=tuple(s for d in domains for s in d.speakers),
        acts={kind: _keep(items, half) for kind, items in speech["acts"].items()},
        faults=_keep(speech["faults"], half),
        relations=_keep(speech["relations"], half),
        formats_for=_keep(speech["formats_for"], half),
        listeners=_keep(speech["listeners"], half),
        content_nouns=tuple(speech["content_nouns"]),
        lines=_keep(speech["lines"], half),
        topics=_keep(speech["topics"], half),
        films=_keep(catalogue["titles"]["films"], half),
        series=_keep(catalogue["titles"]["series"], half),
        people={role: names for role, names in people.items() if names},
        franchises=_keep(catalogue["franchises"], half),
        genres=_keep(catalogue["genres"], half),
        languages=_keep(catalogue["languages"], half),
        audiences=_keep(catalogue["audiences"], half),
        ratings=_keep(catalogue["ratings"], half),
        metadata_formats={k: _keep(v, half) for k, v in catalogue["formats"].items()},
        channels=_keep(catalogue["channels"], half),
        sources=_keep(catalogue["sources"], half),
        sport_events=_keep(catalogue["events"]["sport"], half),
        shows_and_festivals=_keep(catalogue["events"]["awards"], half),
        teams=_keep(catalogue["teams"], half),
        leagues=_keep(catalogue["leagues"], half),
        brands=_keep(catalogue["brands"], half),
        decades=_keep(catalogue["decades"], half),
        catalogue=_keep(catalogue["catalogue"], half),
        songs=tuple((artist, song) for artist, song in catalogue["songs"] if _in_half(song, half)),
        wordlike_titles=_keep(catalogue["wordlike"]["titles"], half),
        wordlike_musicians=_keep(catalogue["wordlike"]["musicians"], half),
        cues=cues,
        entities=_keep(lexicon.get("entities", ()), half),
    )
    return book


@cache
def vocabulary_half(half: VocabularyHalf) -> dict[str, tuple[str, ...]]:
    """The slot vocabulary of one half by category (items never appear in both halves).

    A flat view of the phrasebook: every item here is in the half that is_heldout gives it.
    """
    book = phrasebook(half)
    settings = book.settings
    return {
        "subjects": tuple(dict.fromkeys(s for st in settings for s in st.subjects + st.plural)),
        "actions": tuple(dict.fromkeys(a for st in settings for a in st.actions)),
        "scenes": tuple(dict.fromkeys(np for _, np, _ in book.places)),
        "objects": tuple(
            dict.fromkeys(book.things + tuple(t for st in settings for t in st.things))
        ),
        "landmarks": book.landmarks,
        "times_of_day": book.times_outdoor + book.times_weather + book.times_any,
        "camera": book.camera_before + book.camera_after,
        "styles": book.styles,
        "appearance": book.appearance,
        "sounds": tuple(dict.fromkeys(book.sound_events + book.framed_events + book.sound_nouns)),
        "ambiences": book.ambiences,
        "music": book.music,
        "instruments": book.instruments,
        "speakers": tuple(dict.fromkeys(book.speakers)),
        "speech_verbs": tuple(dict.fromkeys(a[0] for acts in book.acts.values() for a in acts)),
        "spoken_formats": tuple(
            dict.fromkeys(f for d in book.domains for fs in d.formats.values() for f in fs)
        ),
        "spoken_lines": book.lines,
        "topics": tuple(dict.fromkeys(book.all_topics)),
        "person_names": book.person_names,
        "titles": book.titles,
        "songs": tuple(song for _, song in book.songs),
        "franchises": book.franchises,
        "genres": book.genres,
        "languages": book.languages,
        "channels": book.channels + book.sources,
        "events": book.sport_events + book.shows_and_festivals,
        "brands_and_teams": tuple(dict.fromkeys(book.brands + book.teams + book.leagues)),
        "catalogue": book.catalogue + book.audiences + book.ratings + book.decades,
        "entities": book.entities,
        **{f"cue_{signal}": cues for signal, cues in book.cues.items()},
    }


# -- grammar ---------------------------------------------------------------------------------
def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Words a query must never end with (a phrase left waiting for what follows it).
CONNECTORS = _wordset(
    "with of by and or while called named titled about on in at from for to the a an as "
    "where when that like featuring than plus during after before over into via"
)
_PREPOSITIONS = _wordset(
    "from in on at with without during after before for under over by near inside outside "
    "through across along around live"
)
_CONTENT_NOUNS = _wordset(
    "clips clip footage scenes scene episode episodes highlights coverage reports report "
    "bulletins bulletin appearances games game match matches broadcast segment material "
    "archive videos video interviews moments shots shot view feed stream montage "
    "compilation photographs imagery b-roll"
)
_OF_NOUNS = _wordset(
    "clips clip footage video videos shots shot b-roll photographs imagery view montage compilation"
)
_QUALITY_NOUNS = _wordset("atmosphere mood tone feel vibe vibes look style energy voice")
_PARTICIPLES = _wordset("sounding looking feeling reporting speaking talking")
_ARTICLE = re.compile(r"(?:^(A|An)|\b(a|an)) (?=([\"']?)(\w+))")
_LEADING_ARTICLE = re.compile(r"^(a|an|the) ", re.I)
_AN_EXCEPTIONS = ("uni", "use", "usu", "eu", "one", "once", "ure", "ubi")
_AN_SILENT_H = ("hour", "honest", "honour", "honor", "heir")

NEGATIONS: dict[str, tuple[str, ...]] = {
    "visual": (
        "without music",
        "with no talking",
        "no narration",
        "without any sound",
        "no voiceover",
        "with the sound muted",
        "no commentary",
        "without the audio",
    ),
    "audio": (
        "without talking",
        "with no music",
        "no voices",
        "no people talking",
        "without narration",
        "no background music",
        "only the sound and no commentary",
        "without any speech",
    ),
    "transcription": (
        "without background music",
        "no music",
        "just the speech",
        "without the intro music",
        "no sound effects",
        "ignore the visuals",
        "audio only with no music",
    ),
    "metadata": (
        "not the trailer",
        "not the remake",
        "without subtitles",
        "not the cover version",
        "no spoilers",
        "not the dubbed version",
        "not the live version",
    ),
    BALANCED: ("without subtitles", "no music", "no narration"),
}
LONG_OPENERS = (
    "i'm looking for",
    "can you find",
    "trying to find",
    "help me find",
    "looking for",
    "i need",
    "does anyone have",
    "please find",
    "i want",
    "searching for",
)
LONG_TAILS = (
    "I think it was posted a while ago and I need it for a project",
    "ideally the longer version if there is one, not the short cut",
    "something I saw once and cannot find again no matter what I search",
    "for a compilation we are putting together next week",
    "it's for a school presentation",
    "my mum keeps asking me to find it again",
    "I saw it years ago and it's been driving me crazy",
    "we want to use it in a wedding slideshow",
    "it might have been on facebook or youtube",
    "I only remember bits of it",
    "need it for an edit I'm working on",
    "if that helps at all",
    "thanks in advance",
    "any version is fine",
)
_VISUAL_LEADS = (
    "footage of",
    "video of",
    "a video of",
    "clip of",
    "clips of",
    "show me",
    "find",
    "looking for",
    "videos of",
    "shots of",
)
_AUDIO_MUSIC_FORMS = (
    "{music}",
    "{music} playing {music_place}",
    "{music} in the background",
    "background music like {music}",
    "{music} for studying",
    "clips with {music}",
    "videos set to {music}",
    "soft {bare_music}",
)
# spoken formats that read well as someone's: "the ceo's keynote on ..."
_OWNED = (
    "keynote",
    "speech",
    "sermon",
    "lecture",
    "talk",
    "podcast",
    "press conference",
    "monologue",
    "eulogy",
    "toast",
    "rant",
    "interview",
    "pep talk",
    "address",
    "briefing",
)
_NAME_SUFFIXES = ("videos", "clips", "compilation", "tribute", "documentary", "best moments")
_BAND_PARTS = ("drum intro", "guitar riff", "bass line", "guitar solo")
_LONG_HEADS = ("a video", "the clip", "that video", "a clip", "the one")
_SPEECH_LEADS = ("", "", "", "clip of ", "video of ", "the clip of ", "find ", "a video of ")
_PART_WHERE = (
    "the part where",
    "the moment",
    "the bit where",
    "the scene where",
    "when",
    "the clip where",
    "that video where",
    "the moment when",
)
_CUSTOM_FORMS = (
    "{cue}",
    "clips with {cue}",
    "footage with {cue}",
    "videos showing {cue}",
    "{cue} clips",
    "the part with {cue}",
    "{cue} only",
    "shots with {cue}",
)


# 'its'/'itself' needs one subject, 'each other'/'their' several (group 1: singular)
_NUMBER = re.compile(
    r" (its|itself) | (?:their|each other|together|in sync|in formation|side by side) "
)
_PLACE_WORDS = re.compile(
    r" (?:in|on|at|into|onto|over|through|across|along|under|by|off|out of|around|from|"
    r"inside|outside|past|towards|near|down|up) (?:the|a|an|its|their|tall|deep|thick|open) "
)


def _has_place(action: str) -> bool:
    """'jumping into a lake' already says where; it takes no second place phrase."""
    return _PLACE_WORDS.search(f" {action} ") is not None


# What a negation takes away, and words that show the query wants exactly that
_NEGATED = {
    "music": re.compile(
        r"\b(music|song|songs|band|playing|solo|beats?|jazz|choir|orchestra|melody|tune|riff|"
        r"soundtrack|piano|guitar|drums?|singing|sings?|lullaby|aria|hymn|anthem|score)\b"
    ),
    "speech": re.compile(
        r"\b(says?|saying|said|narrat\w*|talk\w*|interview\w*|speech|speaks?|speaking|"
        r"commentat\w*|explain\w*|voices?|voiceover|lecture|sermon|podcast|asks?|tells?|"
        r"telling|shouts?|shouting|yells?|announc\w*|debat\w*|discuss\w*|quote|"
        r"play-by-play|the call)\b|\""
    ),
    "sound": re.compile(r"\b(sounds?|hear|noise|audio|asmr|ambience|recording)\b"),
    "subtitles": re.compile(r"\b(subtitles?|captions?|captioned|subtitled)\b"),
}
_NEGATES = {
    "music": ("music", "intro music"),
    "speech": ("talking", "narration", "voices", "speech", "commentary", "voiceover"),
    "sound": ("sound", "audio", "sound effects"),
    "subtitles": ("subtitles",),
}


def _contradicts(negation: str, query: str) -> bool:
    """'... with jazz playing no music' takes away what the query asks for."""
    lowered = query.lower()
    for kind, words in _NEGATES.items():
        if any(w in negation for w in words) and _NEGATED[kind].search(lowered):
            return True
    return False


def _playing(music: str) -> str:
    """'jazz piano playing'; 'a choir singing' stays as it is."""
    return music if music.endswith("ing") else f"{music} playing"


def _bare(phrase: str) -> str:
    """The phrase without its leading article ("a kettle whistling" -> "kettle whistling")."""
    return _LEADING_ARTICLE.sub("", phrase, count=1)


def _an(word: str) -> bool:
    lower = word.lower()
    if lower.startswith(_AN_SILENT_H):
        return True
    return lower[:1] in "aeiou" and not lower.startswith(_AN_EXCEPTIONS)


def fix_articles(text: str) -> str:
    """'a' before a consonant sound, 'an' before a vowel sound (for filled taxonomy phrasings)."""

    def repl(match: re.Match[str]) -> str:
        article = match.group(1) or match.group(2)
        word = match.group(4)
        if word.isupper() and len(word) > 1:  # an acronym: leave it as written
            return match.group(0)
        want = "an" if _an(word) else "a"
        return (want.capitalize() if article[0].isupper() else want) + " "

    return _ARTICLE.sub(repl, text)


def _ends_open(text: str) -> bool:
    words = text.rstrip(" ,").split()
    return bool(words) and words[-1].lower() in CONNECTORS


@dataclass(frozen=True)
class Phrasing:
    """A taxonomy phrasing and how it combines with the rest of a query.

    frame: 'open' (ends with a connector and needs what follows: "the {value} episode where"),
    'head' (names clips or footage and can take "where ..." or "with ..."), 'head_of' (a head
    ending in a footage noun, which can also take "of ..."), 'modifier' (a prepositional
    phrase after a query: "from a {value}"), 'quality' ("a {value} mood" -> "with a ... mood"),
    'participle' ("sounding {value}", only after someone speaking), or 'standalone' (a whole
    query piece of its own: "{value} of {scene}").
    """

    template: str
    frame: str
    connector: str = ""
    leans: str | None = None  # the signal its own words point at ("{value} dateline": metadata)


@cache
def _cue_signals() -> dict[str, tuple[str, float]]:
    """Each cue phrase of the built-in lexicon with the signal it points at most."""
    raw = (resources.files("intent_router") / "data" / "cues.json").read_text("utf-8")
    best: dict[str, tuple[str, float]] = {}
    for signal, phrases in json.loads(raw).items():
        for phrase, strength in phrases.items():
            if strength > best.get(phrase, ("", 0.0))[1]:
                best[phrase] = (signal, float(strength))
    return best


def phrasing_lean(
    template: str, extra: Mapping[str, tuple[str, float]] | None = None
) -> str | None:
    """The signal the phrasing's own words point at (by the cue lexicon and a taxonomy's own
    cues), or None."""
    words = re.findall(r"[a-z][a-z'-]*", _SLOT.sub(" ", template).lower())
    cues = _cue_signals()
    totals: dict[str, float] = {}
    for n in (3, 2, 1):
        for i in range(len(words) - n + 1):
            phrase = " ".join(words[i : i + n])
            hit = (extra or {}).get(phrase) or cues.get(phrase)
            if hit:
                totals[hit[0]] = totals.get(hit[0], 0.0) + hit[1]
    if not totals:
        return None
    signal = max(totals, key=lambda s: (totals[s], s))
    return signal if totals[signal] >= 2 else None


def classify_phrasing(template: str) -> Phrasing:
    return dataclasses.replace(_classify(template), leans=phrasing_lean(template))


def _classify(template: str) -> Phrasing:
    words = _SLOT.sub("X", template).replace(",", " ").split()
    lowered = [w.lower() for w in words]
    last, first = lowered[-1], lowered[0]
    if last in CONNECTORS:
        return Phrasing(template, "open", last)
    if first in _PARTICIPLES:
        return Phrasing(template, "participle")
    if first in _PREPOSITIONS and template.count("{") == 1:
        return Phrasing(template, "modifier")
    if last in _QUALITY_NOUNS and len(words) <= 3:
        return Phrasing(template, "quality")
    if last in _OF_NOUNS:
        return Phrasing(template, "head_of")
    if last in _CONTENT_NOUNS or (template.endswith("}") and set(lowered) & _CONTENT_NOUNS):
        return Phrasing(template, "head")
    return Phrasing(template, "standalone")


def _top_signal(attribute: Attribute) -> str:
    """The signal an attribute informs most (ties broken by name)."""
    return max(attribute.informs, key=lambda s: (attribute.informs[s], s))


def generic_phrasings(attribute: Attribute, value: str) -> tuple[Phrasing, ...]:
    """Fitting phrasings for a value of an attribute that brings none, by what the attribute
    informs and by the shape of the value."""
    signal = _top_signal(attribute)
    words = value.split()
    first = words[0].lower()
    postmodifier = first in _PREPOSITIONS or (
        first.endswith("ed") and len(words) > 1
    )  # "from 1998", "released in 2004", "licensed until 2027"
    name = value[:1].isupper()
    if signal == "metadata":
        if postmodifier:
            templates = ["clips {value}", "footage {value}", "{value}"]
        elif name:
            templates = [
                "{value}",
                "{value} clips",
                "scenes from {value}",
                "the {value} scene where",
            ]
        else:
            templates = ["{value}", "{value} clips", "{value} footage"]
    elif signal == "visual":
        if words[-1].lower() in _OF_NOUNS | {"angle", "lapse", "time-lapse", "cam", "camera"}:
            templates = ["{value} of {scene}", "{value} of {object}", "{value}"]
        else:
            templates = ["{value} footage of {scene}", "{value} shot of {object}", "{value}"]
    elif signal == "audio":
        if words[-1].lower().endswith("ing") or len(words) > 1:
            templates = ["{value}", "the sound of {value}", "audio of {value}"]
        else:
            templates = ["{value} music", "{value} sounds", "a {value} soundtrack"]
    elif signal == "transcription":
        if len(words) >= 3:
            templates = ['someone saying "{value}"', "the line {value}", "when they say {value}"]
        else:
            templates = ["{value} interview", "a {value} speech", "{value} talking about {topic}"]
    else:
        templates = ["{value}", "{value} clips", "videos with {value}"]
    return tuple(classify_phrasing(t) for t in templates)


@dataclass
class _AttributePlan:
    attribute: Attribute
    signal: str  # the signal it informs most
    phrasings: tuple[Phrasing, ...]  # its own phrasings (empty: generic ones per value)
    values: re.Pattern[str] | None  # any of its values, for the stray-value check


def _value_pattern(values: Sequence[str]) -> re.Pattern[str] | None:
    if not values:
        return None
    parts = []
    for value in sorted(values, key=len, reverse=True):
        escaped = re.escape(value)
        parts.append(escaped if value[:1].isupper() else f"(?i:{escaped})")
    return re.compile(r"(?<![\w'-])(?:" + "|".join(parts) + r")(?![\w'-])")


_FOCUS_STOP = _wordset(
    "with from that this their there where when what about into over under after"
)


def _words(text: str) -> set[str]:
    """Lowercase content words (capitalised names such as 'Tiger Woods' say nothing about
    the scenes a taxonomy is about)."""
    return {
        w
        for w in re.findall(r"(?<![\w'-])[a-z][a-z'-]{3,}", _SLOT.sub(" ", text))
        if w not in _FOCUS_STOP
    }


def _focus(
    taxonomy_words: set[str], items: Sequence[tuple[Any, set[str]]], floor: float
) -> tuple[Any, ...]:
    """The items (settings, speech domains, sound groups) a taxonomy is about: scored by the
    rarity-weighted words they share with the taxonomy's values, phrasings and cues; empty for
    a general taxonomy that points nowhere in particular."""
    df = Counter(w for _, words in items for w in words)
    n = len(items)
    scored = [
        (sum(math.log(n / df[w]) for w in sorted(taxonomy_words & words)), i)
        for i, (_, words) in enumerate(items)
    ]
    top = max((s for s, _ in scored), default=0.0)
    if top < floor:
        return ()
    return tuple(items[i][0] for s, i in sorted(scored, reverse=True) if s >= 0.4 * top)


_FOCUS_CACHE: dict[tuple[str, str], tuple[tuple[Any, ...], ...]] = {}


def _taxonomy_focus(taxonomy: Taxonomy, half: VocabularyHalf) -> tuple[tuple[Any, ...], ...]:
    key = (taxonomy.fingerprint, half)
    if key not in _FOCUS_CACHE:
        book = phrasebook(half)
        words: set[str] = set()
        for attribute in taxonomy.attributes:
            for text in (*attribute.values, *attribute.phrasings):
                words |= _words(text)
        for signal in taxonomy.signals:
            for cue in signal.cues:
                words |= _words(cue)
        settings = [
            (
                s,
                _words(
                    " ".join(
                        (*s.subjects, *s.plural, *s.actions, *s.things, *(p[1] for p in s.places))
                    )
                ),
            )
            for s in book.actors
        ]
        domains = [
            (
                d,
                _words(
                    " ".join(
                        (
                            *d.speakers,
                            *d.topics,
                            *d.places,
                            *(f for fs in d.formats.values() for f in fs),
                        )
                    )
                ),
            )
            for d in book.domains
        ]
        # Sound groups share too few words with a taxonomy to tell; they get no focus.
        _FOCUS_CACHE[key] = (_focus(words, settings, 12.0), _focus(words, domains, 25.0), ())
    return _FOCUS_CACHE[key]


class QueryWriter:
    """Writes search-box queries for cells of a taxonomy from a grammar and one vocabulary half.

    Each dominant signal has its own compositions (who or what, doing what, where, with camera,
    sound, speech and catalogue modifiers); an attribute value goes into one of the attribute's
    phrasings (or a generic one that fits it) and is joined to the rest by the grammar of that
    phrasing, never glued on.
    """

    def __init__(self, taxonomy: Taxonomy, vocabulary: VocabularyHalf) -> None:
        self.taxonomy = taxonomy
        self.half = vocabulary
        self.book = phrasebook(vocabulary)
        self.vocab = vocabulary_half(vocabulary)
        self.signals = taxonomy.signal_names
        self._builtin = set(BUILTIN_SIGNALS) <= set(self.signals)
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
        taxonomy_cues = {
            cue.lower(): (signal.name, 2.0) for signal in taxonomy.signals for cue in signal.cues
        }
        self._plans = {
            a.name: _AttributePlan(
                attribute=a,
                signal=_top_signal(a),
                phrasings=tuple(
                    dataclasses.replace(classify_phrasing(p), leans=phrasing_lean(p, taxonomy_cues))
                    for p in a.phrasings
                ),
                values=_value_pattern(a.values),
            )
            for a in taxonomy.attributes
        }
        self._custom = {
            s.name: (s.cues, [a for a in taxonomy.attributes if s.name in a.informs])
            for s in taxonomy.signals
            if s.name not in BUILTIN_SIGNALS
        }
        self._short = {signal: self._short_items(signal) for signal in BUILTIN_SIGNALS}
        focus = _taxonomy_focus(taxonomy, vocabulary)
        self._focus_settings: tuple[Setting, ...] = focus[0]
        self._focus_domains: tuple[Domain, ...] = focus[1]
        self._focus_sounds: tuple[SoundGroup, ...] = focus[2]
        self._focused = False  # inside a continuation of an attribute phrase
        self._sounds_cache: dict[str, tuple[str, ...]] = {}
        # sound nouns without an article are sounds ('static', 'applause'), not sources
        self._mass_sounds = (
            tuple(n for n in self.book.sound_nouns if not _LEADING_ARTICLE.match(n))
            or self.book.sound_nouns
        )
        self._catalogue_cues = tuple(
            c for c in self.book.cues["metadata"] if not _ends_open(c) and not c[:1].isupper()
        )

    # -- slots -------------------------------------------------------------------------------
    def _slots(self, rng: random.Random) -> dict[str, Callable[[], str]]:
        """Fillers for the vocabulary slots taxonomy phrasings may use."""
        book = self.book
        return {
            "object": lambda: _pick(rng, book.things),
            "scene": lambda: _pick(rng, book.places)[1],
            "action": lambda: self._subject_action(rng, place=False, time=False),
            "action_bare": lambda: _pick(rng, _pick(rng, book.actors).actions),
            "time": lambda: self._time(rng, "out"),
            "sound": lambda: self._sound_thing(rng),
            "music": lambda: _pick(rng, book.music),
            "speaker": lambda: _pick(rng, book.speakers),
            "speech_verb": lambda: _pick(rng, book.acts["line"])[0],
            "line": lambda: _pick(rng, book.lines),
            "topic": lambda: _pick(rng, book.all_topics),
            "person": lambda: _pick(rng, book.person_names),
            "title": lambda: _pick(rng, book.titles),
            "brand": lambda: _pick(rng, book.brands + book.teams),
            "genre": lambda: _pick(rng, book.genres),
            "entities": lambda: _pick(rng, book.entities),
            "cue_visual": lambda: _pick(rng, book.cues["visual"]),
            "cue_audio": lambda: _pick(rng, book.cues["audio"]),
            "cue_transcription": lambda: _pick(rng, book.cues["transcription"]),
            "cue_metadata": lambda: _pick(rng, book.cues["metadata"]),
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

    # -- visual ------------------------------------------------------------------------------
    def _time(self, rng: random.Random, kind: str) -> str:
        """A time that fits the place: no weather indoors, in the desert or under water."""
        book = self.book
        roll = rng.random()
        if kind == "light":
            return _pick(rng, book.times_outdoor)
        if kind == "in" or roll < 0.25:
            return _pick(rng, book.times_any)
        if kind == "dry" or roll < 0.65:
            return _pick(rng, book.times_outdoor)
        return _pick(rng, book.times_weather)

    def _subject_action(
        self,
        rng: random.Random,
        *,
        finite: bool = False,
        place: bool = True,
        time: bool = True,
        setting: Setting | None = None,
        keyword: bool = False,
    ) -> str:
        """'a dog chasing a tennis ball on a beach at sunset' (finite: 'a dog is chasing ...')."""
        if setting is None:
            focus = self._focus_settings
            share = 0.85 if self._focused else FOCUS_SHARE
            setting = _pick(rng, focus if focus and rng.random() < share else self.book.actors)
        action = _pick(rng, setting.actions)
        plural = bool(setting.plural) and (not setting.subjects or rng.random() < 0.3)
        if setting.plural and setting.subjects and _NUMBER.search(f" {action} "):
            plural = _NUMBER.search(f" {action} ").group(1) is None  # type: ignore[union-attr]
        subject = _pick(rng, setting.plural if plural else setting.subjects)
        if subject in self.book.appearance_subjects and rng.random() < 0.4:
            subject = f"{subject} {_pick(rng, self.book.appearance)}"
        if finite:
            text = f"{subject} {'are' if plural else 'is'} {action}"
        else:
            if keyword and rng.random() < 0.3:
                subject = _bare(subject)
            text = f"{subject} {action}"
        kind = setting.kind
        if place and setting.places and rng.random() < 0.6 and action not in setting.placed:
            prep, np, kind = _pick(rng, setting.places)
            if np.rsplit(" ", 1)[-1] not in action:  # not "crossing a river on a river"
                text = f"{text} {prep} {np}"
        if time and rng.random() < 0.22:
            text = f"{text} {self._time(rng, kind)}"
        return text

    def _visual_np(self, rng: random.Random, *, place: bool = True, keyword: bool = False) -> str:
        """A visual noun phrase: someone doing something, a thing, a place or a landmark."""
        book = self.book
        roll = rng.random()
        if roll < 0.6:
            return self._subject_action(rng, place=place, keyword=keyword)
        if roll < 0.75:
            setting = _pick(rng, book.settings)
            things = setting.things if setting.things and rng.random() < 0.5 else book.things
            text = _pick(rng, things)
            return f"{text} {self._time(rng, setting.kind)}" if rng.random() < 0.3 else text
        if roll < 0.9 and place:
            _, np, kind = _pick(rng, book.scenery)
            return f"{np} {self._time(rng, kind)}" if rng.random() < 0.55 else np
        text = _pick(rng, book.landmarks)
        return f"{text} {self._time(rng, 'light')}" if rng.random() < 0.4 else text

    def _visual(self, rng: random.Random) -> str:
        book = self.book
        core = self._visual_np(rng, keyword=True)
        roll = rng.random()
        if roll < 0.3:
            return f"{_pick(rng, book.camera_before)} {core}"
        if roll < 0.5:
            return f"{core} {_pick(rng, book.camera_after)}"
        if roll < 0.65:
            return f"{_pick(rng, _VISUAL_LEADS)} {core}"
        if roll < 0.7:
            return f"{_pick(rng, book.styles)} footage of {core}"
        return core

    # -- audio -------------------------------------------------------------------------------
    def _sound_event(self, rng: random.Random, *, place: bool = True) -> str:
        focus = self._focus_sounds
        share = 0.7 if self._focused else FOCUS_SHARE
        group = _pick(rng, focus if focus and rng.random() < share else self.book.sound_groups)
        text = _pick(rng, group.items)
        if rng.random() < 0.4:
            text = _bare(text)
        kind = "out"
        if place and group.places and rng.random() < 0.15 and not _has_place(text):
            prep, np, kind = _pick(rng, group.places)
            text = f"{text} {prep} {np}"
        if place and rng.random() < 0.1:
            text = f"{text} {self._time(rng, kind)}"
        return text

    def _sounds_for(self, setting: Setting) -> tuple[str, ...]:
        """Sound events heard where the setting's subjects are (shared places)."""
        key = setting.name
        if key not in self._sounds_cache:
            places = {p[1] for p in setting.places}
            self._sounds_cache[key] = tuple(
                item
                for group in self.book.sound_groups
                if places & {p[1] for p in group.places}
                for item in group.items
            )
        return self._sounds_cache[key]

    def _sound_thing(self, rng: random.Random, framed: bool = False) -> str:
        """A sound event or a sound noun; framed: it follows 'sound of', so events that are
        seen as well as heard ('a plane taking off') may come too."""
        roll = rng.random()
        if framed and roll < 0.25:
            text = _pick(rng, self.book.framed_events)
            return _bare(text) if rng.random() < 0.4 else text
        if roll < 0.6:
            return self._sound_event(rng, place=False)
        return _pick(rng, self.book.sound_nouns)

    def _music(self, rng: random.Random) -> str:
        book = self.book
        roll = rng.random()
        if roll < 0.7:
            form = _pick(rng, _AUDIO_MUSIC_FORMS)
            music = _pick(rng, book.music)
            return form.format(
                music=music, bare_music=_bare(music), music_place=_pick(rng, book.music_places)
            )
        instrument = _pick(rng, book.instruments)
        forms: tuple[str, ...] = (
            f"someone playing {instrument}",
            f"{_bare(instrument)} solo",
            f"{_bare(instrument)} music",
            f"the sound of {instrument}",
            f"{instrument} playing softly",
        )
        return _pick(rng, forms)

    def _audio(self, rng: random.Random) -> str:
        book = self.book
        roll = rng.random()
        if roll < 0.3:
            return self._sound_event(rng)
        if roll < 0.5:
            return f"{_pick(rng, book.audio_before)} {self._sound_thing(rng, framed=True)}"
        if roll < 0.56:
            return f"{_bare(self._sound_thing(rng, framed=True))} {_pick(rng, book.audio_after)}"
        if roll < 0.63:
            calm = _pick(rng, book.calm_events + book.calm_nouns)
            return f"{_bare(calm)} {_pick(rng, book.audio_calm)}"
        if roll < 0.7:
            return f"{_pick(rng, book.qualities)} {_pick(rng, self._mass_sounds)}"
        if roll < 0.88:
            return self._music(rng)
        ambience = _pick(rng, book.ambiences)
        forms: tuple[str, ...] = (
            f"{_bare(ambience)} ambience",
            f"ambient sound of {ambience}",
            f"background noise in {ambience}",
            f"{_bare(ambience)} background noise",
            f"the sound of {ambience}",
            f"{_bare(ambience)} sounds",
        )
        return _pick(rng, forms)

    # -- transcription -----------------------------------------------------------------------
    def _speech(
        self,
        rng: random.Random,
        *,
        form: int = 0,
        speaker: str | None = None,
        domain: Domain | None = None,
        kinds: str = "line topic topic person fault bare",
        place: bool = True,
    ) -> str:
        """'<speaker> <speech act> <complement>'; form 0 'says', 1 'saying', 2 'said'.
        speaker '' leaves the speaker out ('explaining photosynthesis')."""
        book = self.book
        if domain is None:
            focus = self._focus_domains
            share = 0.85 if self._focused else FOCUS_SHARE
            domain = _pick(rng, focus if focus and rng.random() < share else book.domains)
        if speaker is None:
            speaker = _pick(rng, domain.speakers)
        kind = _pick(rng, kinds.split())
        if kind == "fault" and not book.faults:
            kind = "topic"
        acts = book.acts.get(kind) or book.acts["topic"]
        act = _pick(rng, acts)
        verb = act[form]
        if kind == "line":
            line = _pick(rng, book.lines)
            complement = f'"{line}"' if rng.random() < 0.6 else line
        elif kind == "topic":
            topics = domain.topics if domain.topics and rng.random() < 0.7 else book.topics
            complement = _pick(rng, topics)
        elif kind == "person":
            others = [s for s in domain.speakers if s != speaker] or list(book.speakers)
            complement = _pick(rng, others)
        elif kind == "fault":
            complement = _pick(rng, book.faults)
        else:
            complement = ""
        text = " ".join(p for p in (speaker, verb, complement) if p)
        if place and domain.places and kind != "line" and rng.random() < 0.12:
            text = f"{text} {_pick(rng, domain.places)}"
        return text

    def _spoken_format(self, rng: random.Random) -> str:
        book = self.book
        domain = _pick(rng, book.domains)
        if rng.random() < 0.12 and book.formats_for and book.relations:
            return f"{_pick(rng, book.formats_for)} for {_pick(rng, book.relations)}"
        options = [(prep, items) for prep, items in domain.formats.items() if items]
        if not options:
            return self._speech(rng, form=1)
        prep, items = _pick(rng, options)
        fmt = _pick(rng, items)
        if rng.random() < 0.15 and fmt.startswith(("a ", "an ")) and fmt.endswith(_OWNED):
            fmt = f"{_pick(rng, domain.speakers)}'s {_bare(fmt)}"
        elif rng.random() < 0.3:
            fmt = _bare(fmt)
        if prep:
            topics = domain.topics if domain.topics and rng.random() < 0.7 else book.topics
            return f"{fmt} {prep} {_pick(rng, topics)}"
        return fmt

    def _quote(self, rng: random.Random) -> str:
        book = self.book
        line = _pick(rng, book.lines)
        forms: tuple[str, ...] = (
            f'"{line}"',
            f'the line "{line}"',
            f'who said "{line}"',
            f"{line} quote",
            f'someone saying "{line}"',
            f'the scene where someone says "{line}"',
            f"{line} speech",
            f"the clip where they say {line}",
            f"what movie says {line}",
            f'"{line}" clip',
            f"lyrics {line}",
            f"{line} lyrics",
        )
        return _pick(rng, forms)

    def _transcription(self, rng: random.Random) -> str:
        book = self.book
        roll = rng.random()
        if roll < 0.3:
            form = 0 if rng.random() < 0.4 else 1
            lead = _pick(rng, _SPEECH_LEADS) if form == 1 else ""
            return lead + self._speech(rng, form=form)
        if roll < 0.5:
            return self._spoken_format(rng)
        if roll < 0.62:
            return f"{_pick(rng, _PART_WHERE)} {self._speech(rng, kinds='line line topic bare')}"
        if roll < 0.77:
            return self._quote(rng)
        domain = _pick(rng, book.domains)
        speaker = _pick(rng, domain.speakers)
        topic = _pick(rng, domain.topics or book.topics)
        noun = _pick(rng, book.content_nouns)
        forms: tuple[str, ...] = (
            f"interview with {speaker} about {topic}",
            f"{_bare(speaker)} interview about {topic}",
            f"{speaker} being interviewed about {topic}",
            f"{topic} explained",
            f"{topic} explained by {speaker}",
            f"{noun} about {topic}",
            f"{speaker} {noun} about {topic}",
            f"a {noun} on {topic}" if not _an(noun) else f"an {noun} on {topic}",
            f'{speaker} telling {_pick(rng, book.listeners)} "{_pick(rng, book.lines)}"',
        )
        return _pick(rng, forms)

    # -- metadata ----------------------------------------------------------------------------
    def _year(self, rng: random.Random, since: int = 1960) -> str:
        if rng.random() < 0.9 or since > 1960:
            return str(rng.randint(since, 2025))
        return str(rng.randint(1920, 1959))

    def _when(self, rng: random.Random) -> str:
        book = self.book
        roll = rng.random()
        if roll < 0.4:
            return self._year(rng)
        if roll < 0.7:
            return f"from {_pick(rng, book.decades)}"
        if roll < 0.85:
            return f"from {self._year(rng)}"
        return _pick(rng, ("released in ", "uploaded in ", "aired in ")) + self._year(rng)

    def _name(self, rng: random.Random) -> str:
        """A title, a person, a franchise or another name people search by."""
        book = self.book
        roll = rng.random()
        if roll < 0.35:
            return _pick(rng, book.titles)
        if roll < 0.65:
            return _pick(rng, book.person_names)
        if roll < 0.75:
            return _pick(rng, book.franchises)
        return _pick(rng, book.entities or book.titles)

    def _metadata(self, rng: random.Random) -> str:
        book = self.book
        fmts = book.metadata_formats
        if rng.random() < 0.2:  # a name on its own is the most common catalogue search
            name = self._name(rng)
            roll = rng.random()
            if roll < 0.6:
                return name
            if roll < 0.7:
                return f"{name} {_pick(rng, _NAME_SUFFIXES)}"
            if roll < 0.85 and self._catalogue_cues:  # "Queen discography", "Marvel box office"
                return f"{name} {_pick(rng, self._catalogue_cues)}"
            return f"{name} {_pick(rng, (self._year(rng), _pick(rng, book.catalogue)))}"
        roll = rng.random()
        if roll < 0.14:
            return f"{_pick(rng, book.films)} {_pick(rng, fmts['film'])}"
        if roll < 0.26:
            series = _pick(rng, book.series)
            n, m = rng.randint(1, 9), rng.randint(1, 22)
            forms: tuple[str, ...] = (
                f"{series} {_pick(rng, fmts['series'])}",
                f"{series} season {n} episode {m}",
                f"{series} s{n:02d}e{m:02d}",
                f"{series} season {n}",
                f"{series} episode {m}",
            )
            return _pick(rng, forms)
        if roll < 0.3 and book.songs:
            artist, song = _pick(rng, book.songs)
            forms = (
                f"{artist} {song}",
                f"{song} {artist}",
                f"{song} by {artist}",
                f"{artist} {song} {_pick(rng, fmts['music'])}",
                f"{song} {_pick(rng, fmts['music'])}",
                f"{artist} - {song}",
            )
            return _pick(rng, forms)
        if roll < 0.36:
            name = _pick(rng, book.role("musicians"))
            text = f"{name} {_pick(rng, fmts['music'])}"
            return f"{text} {self._year(rng)}" if rng.random() < 0.3 else text
        if roll < 0.46:
            role = _pick(rng, [r for r in book.people if r != "musicians"] or list(book.people))
            name = _pick(rng, book.people[role])
            if role == "directors" and rng.random() < 0.5:
                return _pick(rng, (f"films by {name}", f"movies directed by {name}"))
            if role == "athletes":
                return f"{name} {_pick(rng, fmts['sport'])}"
            return f"{name} {_pick(rng, fmts['people'])}"
        if roll < 0.6:
            genre = _pick(rng, book.genres)
            extras = (
                f"in {_pick(rng, book.languages)}",
                f"with {_pick(rng, book.languages)} subtitles",
                f"dubbed in {_pick(rng, book.languages)}",
                f"from {_pick(rng, book.decades)}",
                _pick(rng, book.audiences),
                _pick(rng, book.ratings),
                f"on {_pick(rng, book.channels)}",
                _pick(rng, book.catalogue),
                self._year(rng),
            )
            extra = _pick(rng, extras)
            if rng.random() < 0.25:
                return f"{_pick(rng, book.channels)} {genre}"
            if rng.random() < 0.15:
                return f"{_bare(_pick(rng, book.decades))} {genre}"
            return f"{genre} {extra}"
        if roll < 0.72:
            year = self._year(rng)
            event = _pick(rng, book.sport_events)
            forms = (
                f"{event} highlights {year}",
                f"the {year} {event}",
                f"{_pick(rng, book.leagues)} highlights {year}",
                f"{_pick(rng, book.teams)} vs {_pick(rng, book.teams)} {_pick(rng, fmts['sport'])}",
                f"{_pick(rng, book.teams)} {_pick(rng, fmts['sport'])} {year}",
                f"{event} {year} {_pick(rng, fmts['sport'])}",
            )
            return _pick(rng, forms)
        if roll < 0.79:
            show = _pick(rng, book.shows_and_festivals)
            return _pick(
                rng,
                (
                    f"{show} {self._year(rng, 1975)}",
                    f"{show} {self._year(rng, 1975)} red carpet",
                    f"{_pick(rng, book.role('musicians'))} at the {show}",
                    f"best of {show} {self._year(rng, 1975)}",
                ),
            )
        if roll < 0.85:
            franchise = _pick(rng, book.franchises)
            return _pick(
                rng,
                (
                    f"{franchise} movies in order",
                    f"every {franchise} movie",
                    f"{franchise} {_pick(rng, fmts['film'])}",
                    f"{franchise} {_pick(rng, book.catalogue)}",
                ),
            )
        if roll < 0.9:
            brand = _pick(rng, book.brands)
            return _pick(
                rng,
                (
                    f"{brand} commercial {self._year(rng)}",
                    f"{brand} ad from {_pick(rng, book.decades)}",
                    f"old {brand} adverts",
                    f"{brand} super bowl ad",
                ),
            )
        if roll < 0.95:
            title = _pick(rng, book.titles)
            return _pick(
                rng,
                (
                    title,
                    title,
                    f"{title} {_pick(rng, book.catalogue)}",
                    f"{title} {self._year(rng)}",
                ),
            )
        if book.entities and rng.random() < 0.5:
            return f"{_pick(rng, book.entities)} {_pick(rng, _NAME_SUFFIXES)}"
        return f"{_pick(rng, book.channels)} {_pick(rng, book.genres)} {self._when(rng)}"

    # -- pieces by signal --------------------------------------------------------------------
    def _core(self, signal: str, rng: random.Random) -> str:
        if signal == "visual":
            return self._visual(rng)
        if signal == "audio":
            return self._audio(rng)
        if signal == "transcription":
            return self._transcription(rng)
        if signal == "metadata":
            return self._metadata(rng)
        return self._custom_core(signal, rng)

    def _custom_core(self, signal: str, rng: random.Random) -> str:
        cues, informing = self._custom[signal]
        if cues and (not informing or rng.random() < 0.7):
            return _pick(rng, _CUSTOM_FORMS).format(cue=_pick(rng, cues))
        phrase, _ = self._attribute_phrase(self._plans[_pick(rng, informing).name], rng)
        return phrase.text

    def _clause(self, signal: str, rng: random.Random) -> str:
        """A finite clause for 'where ...' / 'when ...'."""
        if signal == "visual" or (signal == "metadata" and rng.random() < 0.5):
            return self._subject_action(rng, finite=True, time=False)
        if signal == "audio":
            roll = rng.random()
            if roll < 0.5:
                return f"you can hear {self._sound_thing(rng)}"
            if roll < 0.75:
                return f"you can hear {_pick(rng, self.book.music)}"
            return f"there's {_pick(rng, self.book.sound_nouns)} in the background"
        if signal in BUILTIN_SIGNALS:
            return self._speech(rng, kinds="line line topic bare person")
        cues, _ = self._custom[signal]
        return f"{_pick(rng, cues)} appears on screen" if cues else self._speech(rng)

    def _np(self, signal: str, rng: random.Random) -> str:
        """A noun phrase for '... of', 'and ...'."""
        if signal == "visual":
            return self._visual_np(rng, place=True)
        if signal == "audio":
            return self._sound_thing(rng)
        if signal == "transcription":
            return self._speech(rng, form=1)
        if signal == "metadata":
            return _pick(rng, self.book.titles + self.book.person_names)
        cues, _ = self._custom[signal]
        return _pick(rng, cues) if cues else self._speech(rng, form=1)

    def _with(self, signal: str, rng: random.Random) -> str:
        """What follows 'with': 'with waves crashing', 'with the narrator explaining ...'."""
        book = self.book
        if signal == "visual":
            return self._subject_action(rng, place=False)
        if signal == "audio":
            roll = rng.random()
            if roll < 0.45:
                return self._sound_event(rng, place=False)
            if roll < 0.75:
                return _playing(_pick(rng, book.music))
            return f"{_pick(rng, book.sound_nouns)} in the background"
        if signal == "transcription":
            if rng.random() < 0.3:
                return f"narration about {_pick(rng, book.all_topics)}"
            return self._speech(rng, form=1, place=False)
        if signal == "metadata":
            if rng.random() < 0.5:
                return _pick(rng, book.person_names)
            return f"{_pick(rng, book.languages)} subtitles"
        cues, _ = self._custom[signal]
        return _pick(rng, cues) if cues else self._speech(rng, form=1)

    def _continuation(self, connector: str, signal: str, rng: random.Random) -> str:
        book = self.book
        if connector in ("where", "when", "while", "as", "that"):
            return self._clause(signal, rng)
        if connector == "with":
            return self._with(signal, rng)
        if connector in ("about", "on"):
            return _pick(rng, book.all_topics)
        if connector in ("by", "featuring"):
            return _pick(rng, book.person_names)
        if connector in ("called", "named", "titled", "like"):
            return _pick(rng, book.titles)
        if connector in ("from", "in", "during", "after", "before"):
            return _pick(rng, (self._year(rng), _pick(rng, book.decades), _pick(rng, book.titles)))
        if connector == "for":
            return (
                _pick(rng, book.audiences)[4:] if rng.random() < 0.5 else _pick(rng, book.relations)
            )
        return self._np(signal, rng)

    # -- attributes --------------------------------------------------------------------------
    def _attribute_phrase(
        self,
        plan: _AttributePlan,
        rng: random.Random,
        frames: Sequence[str] | None = None,
        prefer: str | None = None,
    ) -> tuple[_Filled, Phrasing]:
        """A value in one of its attribute's phrasings (of the given frames; mostly one whose
        own words do not point away from `prefer`)."""
        value = rng.choice(plan.attribute.values)
        options = plan.phrasings or generic_phrasings(plan.attribute, value)
        if frames is not None:
            options = tuple(p for p in options if p.frame in frames)
            if not options:
                raise _NoFit
        if prefer is not None and rng.random() < 0.8:
            fitting = tuple(p for p in options if p.leans in (prefer, None))
            options = fitting or options
        phrasing = rng.choice(options)
        template = phrasing.template
        if value[:4].lower() == "the ":  # "the {value} episode" + "The Office"
            template = re.sub(r"\b[Tt]he \{value\}", "{value}", template)
        text = self._fill(template.replace("{value}", value), rng)
        return _Filled(fix_articles(text) if plan.phrasings else text, value), phrasing

    def _join(
        self,
        plan: _AttributePlan,
        signal: str,
        rng: random.Random,
        *,
        mixed: bool,
        frames: Sequence[str] | None = None,
        lead: bool = False,
    ) -> tuple[str, str]:
        """An attribute phrase joined to a piece of `signal` by the phrase's own grammar
        (what follows the phrase comes from the taxonomy's focus where it has one)."""
        self._focused = True
        try:
            return self._join_body(plan, signal, rng, mixed=mixed, frames=frames, lead=lead)
        finally:
            self._focused = False

    def _join_body(
        self,
        plan: _AttributePlan,
        signal: str,
        rng: random.Random,
        *,
        mixed: bool,
        frames: Sequence[str] | None = None,
        lead: bool = False,
    ) -> tuple[str, str]:
        """An attribute phrase joined to a piece of `signal` by the phrase's own grammar.

        mixed: the attribute's signal differs from `signal`; then only frames that keep
        `signal` in the lead are used unless the cell mixes signals on purpose.
        Returns (query, the attribute phrase as written)."""
        filled, phrasing = self._attribute_phrase(
            plan, rng, frames, prefer=None if mixed else signal
        )
        text, frame = filled.text, phrasing.frame
        lead_only = lead
        if lead and frame == "head_of":
            return f"{text} of {self._visual_np(rng)}", text
        if frame == "open":
            return f"{text} {self._continuation(phrasing.connector, signal, rng)}", text
        if frame in ("head", "head_of"):
            if not mixed and (signal == "metadata" or rng.random() < 0.5):
                if signal == "metadata" and rng.random() < 0.35:  # "Friends clips in 4k"
                    return f"{text} {_pick(rng, self.book.catalogue)}", text
                return text, text
            roll = rng.random()
            if frame == "head_of" and signal == "visual" and roll < 0.5:
                return f"{text} of {self._visual_np(rng)}", text
            if roll < 0.75:
                return f"{text} where {self._clause(signal, rng)}", text
            return f"{text} with {self._with(signal, rng)}", text
        if frame == "modifier":
            return f"{self._core(signal, rng)} {text}", text
        if frame == "quality":
            joiner = "in" if text.split()[-1].lower() in ("tone", "voice") else "with"
            if not text.lower().startswith(("a ", "an ", "the ")):
                text = f"an {text}" if _an(text) else f"a {text}"
            if joiner == "in" and signal == "audio":  # music can have a tone too
                return f"{_pick(rng, self.book.music)} with {text}", text
            if joiner == "in":  # a tone of voice belongs to someone speaking
                if signal == "visual" and lead_only:
                    raise _NoFit
                core = self._speech(rng, form=1, kinds="topic topic line fault")
                if signal == "visual" and rng.random() < 0.5:
                    return f"{core} {joiner} {text} with {self._with(signal, rng)}", text
            else:
                core = self._core(signal, rng) if signal != "metadata" else self._visual(rng)
            return f"{core} {joiner} {text}", text
        if frame == "participle":
            if signal != "transcription" and mixed:
                raise _NoFit
            return f"{self._speech(rng, form=1, kinds='topic topic line')} {text}", text
        # standalone
        if not mixed:
            if rng.random() < 0.25:
                return f"{text} {self._modifier(signal, rng)}", text
            return text, text
        if signal == "metadata":
            return f"{text} {self._when(rng)}", text
        return f"{text} with {self._with(signal, rng)}", text

    def _modifier(self, signal: str, rng: random.Random) -> str:
        book = self.book
        if signal == "visual":
            return _pick(rng, book.camera_after)
        if signal == "audio":
            return _pick(rng, book.audio_after)
        if signal == "metadata":
            return _pick(rng, (self._when(rng), _pick(rng, book.catalogue)))
        if signal == "transcription":
            return _pick(rng, ("in full", "with subtitles", "on camera", "word for word", "live"))
        cues, _ = self._custom[signal]
        return f"with {_pick(rng, cues)}" if cues else "clips"

    # -- cells -------------------------------------------------------------------------------
    def _other_signal(self, exclude: set[str], rng: random.Random) -> str:
        options = [s for s in self.signals if s not in exclude] or list(self.signals)
        return _pick(rng, options)

    def _balanced_core(self, rng: random.Random) -> str:
        """Two coherent pieces of two signals."""
        if not self._builtin:
            a, b = rng.sample(list(self.signals), 2)
            return f"{self._core(a, rng)} with {self._with(b, rng)}"
        roll = rng.random()
        if roll < 0.22:
            return self._visual_and_audio(rng)
        if roll < 0.42 and self.book.talkers:
            return self._visual_and_speech(rng)
        if roll < 0.6:
            return self._speech_and_audio(rng)
        if roll < 0.75:
            return self._speech_and_catalogue(rng)
        if roll < 0.88:
            return self._visual_and_catalogue(rng)
        return self._audio_and_catalogue(rng)

    def _visual_and_audio(self, rng: random.Random) -> str:
        book = self.book
        setting = _pick(rng, book.actors)
        visual = self._subject_action(rng, time=False, setting=setting)
        fitting = self._sounds_for(setting)
        return _one(
            rng,
            lambda: (
                f"{visual} with {_bare(_pick(rng, fitting))}"
                if fitting
                else f"{visual} set to {_pick(rng, book.music)}"
            ),
            lambda: f"{visual} with {_playing(_pick(rng, book.music))}",
            lambda: f"{visual} set to {_pick(rng, book.music)}",
            lambda: f"{visual} to the sound of {self._sound_thing(rng)}",
            lambda: f"{visual} and you can hear {self._sound_thing(rng)}",
            lambda: (
                f"{_pick(rng, book.camera_before)} {self._visual_np(rng)} "
                f"with {_pick(rng, book.music)}"
            ),
        )

    def _visual_and_speech(self, rng: random.Random) -> str:
        book = self.book
        setting = _pick(rng, book.talkers)
        if rng.random() < 0.6:  # someone doing something while they talk about it
            domain = next((d for d in book.domains if d.name == setting.domain), None)
            visual = self._subject_action(rng, setting=setting, time=False)
            speech = self._speech(
                rng, form=1, speaker="", domain=domain, kinds="topic topic line", place=False
            )
            return f"{visual} while {speech}"
        return _one(
            rng,
            lambda: f"{self._visual_np(rng)} with {_pick(rng, book.speakers)} narrating",
            lambda: f"{self._visual_np(rng)} with narration about {_pick(rng, book.all_topics)}",
        )

    def _speech_and_audio(self, rng: random.Random) -> str:
        book = self.book
        return _one(
            rng,
            lambda: f"{self._speech(rng, form=1, place=False)} over {_pick(rng, book.music)}",
            lambda: (
                f"{self._speech(rng, form=1, place=False)} with "
                f"{_pick(rng, book.sound_nouns)} in the background"
            ),
            lambda: f"{self._spoken_format(rng)} with {_pick(rng, book.music)} in the background",
            lambda: (
                f"{self._speech(rng, form=1, place=False)} with "
                f"{self._sound_event(rng, place=False)}"
            ),
        )

    def _speech_and_catalogue(self, rng: random.Random) -> str:
        book = self.book
        person = _pick(rng, book.role("public_figures"))
        topic = _pick(rng, book.all_topics)
        return _one(
            rng,
            lambda: f"{person} speech {self._year(rng)}",
            lambda: f"{person} interview about {topic}",
            lambda: (
                f"the {_pick(rng, book.titles)} scene where "
                f"{self._speech(rng, kinds='line line topic')}"
            ),
            lambda: (
                f"{_pick(rng, book.role('presenters'))} interview with "
                f"{_pick(rng, book.person_names)}"
            ),
            lambda: f"{person} talking about {topic} on {_pick(rng, book.channels)}",
        )

    def _visual_and_catalogue(self, rng: random.Random) -> str:
        book = self.book
        return _one(
            rng,
            lambda: f"{self._visual_np(rng)} footage {self._when(rng)}",
            lambda: (
                f"the {_pick(rng, book.titles)} scene where "
                f"{self._subject_action(rng, finite=True, time=False)}"
            ),
            lambda: (
                f"{_pick(rng, book.camera_before)} {_pick(rng, book.landmarks)} {self._year(rng)}"
            ),
            lambda: f"{_pick(rng, book.sources + book.channels)} footage of {self._visual_np(rng)}",
        )

    def _audio_and_catalogue(self, rng: random.Random) -> str:
        book = self.book
        return _one(
            rng,
            lambda: f"{_pick(rng, book.titles)} soundtrack",
            lambda: f"the {_pick(rng, book.titles)} theme music",
            lambda: (
                f"{_bare(self._sound_event(rng, place=False))} sound effect from "
                f"{_pick(rng, book.franchises)}"
            ),
            lambda: f"{_pick(rng, book.music)} from {_pick(rng, book.decades)}",
            lambda: (
                f"{_pick(rng, book.role('musicians'))} live at "
                f"{_pick(rng, book.shows_and_festivals)} {self._year(rng, 1975)}"
            ),
        )

    def _compose(self, cell: Cell, rng: random.Random) -> tuple[str, str | None]:
        """(query, the attribute phrase in it or None)."""
        plan = self._plans[cell.attribute]
        dominant = cell.dominant
        balanced = dominant == BALANCED
        fits = not balanced and plan.attribute.informs.get(dominant, 0.0) >= 0.5
        if balanced:
            if rng.random() < 0.65:
                other = self._other_signal({plan.signal}, rng)
                try:
                    return self._join(plan, other, rng, mixed=True)
                except _NoFit:
                    pass
            return self._balanced_core(rng), None
        chance = 0.7 if fits else 0.5
        if cell.difficulty == "hard":
            chance = 0.65
        if rng.random() < chance:
            if fits and cell.difficulty == "easy" and rng.random() < 0.2:
                value = rng.choice(plan.attribute.values)
                need = {"metadata": 1, "visual": 2, "audio": 2}.get(plan.signal, 3)
                if len(value.split()) >= need:
                    return value, value  # "Jaws", "aerial view": a value on its own
            try:
                mixed = not fits
                if mixed and cell.difficulty == "easy":
                    return self._join_leading(plan, dominant, rng)
                return self._join(plan, dominant, rng, mixed=mixed)
            except _NoFit:
                pass
        return self._core(dominant, rng), None

    def _join_leading(
        self, plan: _AttributePlan, dominant: str, rng: random.Random
    ) -> tuple[str, str]:
        """An attribute of another signal in an easy cell: only in a phrasing that leaves the
        dominant piece in the lead (a modifier after it, a tone or mood, footage of it)."""
        frames = ["modifier"]
        if dominant != "metadata":
            frames.append("quality")
        if dominant == "transcription":
            frames.append("participle")
        if dominant == "visual":
            frames.append("head_of")
        return self._join(plan, dominant, rng, mixed=True, frames=frames, lead=True)

    def _hard(self, cell: Cell, query: str, phrase: str | None, rng: random.Random) -> str:
        """Negation, a second signal in a supporting role, or a name that looks like a word.
        A query that already carries the attribute phrase is only negated or kept."""
        dominant = cell.dominant
        roll = rng.random()
        if roll < (0.6 if phrase else 0.4):
            options = [
                n
                for n in NEGATIONS.get(dominant, NEGATIONS[BALANCED])
                if not _contradicts(n, query)
            ]
            if not options:
                return query
            negation = _pick(rng, options)
            return f"{query} {negation}" if rng.random() < 0.7 else f"{query} but {negation}"
        if phrase:
            return query
        if roll < 0.75:
            if dominant == BALANCED:
                return query  # already two signals
            if dominant not in BUILTIN_SIGNALS:
                other = self._other_signal({dominant}, rng)
                return f"{query} with {self._with(other, rng)}"
            return self._mixed(dominant, rng)
        return self._wordlike(dominant, rng) or query

    def _mixed(self, dominant: str, rng: random.Random) -> str:
        """The dominant signal with a second signal in a supporting role."""
        book = self.book
        if dominant == "visual":
            setting = _pick(rng, book.actors)
            fitting = self._sounds_for(setting)
            return _one(
                rng,
                lambda: f"{self._visual(rng)} with {_pick(rng, book.music)} in the background",
                lambda: f"{self._visual(rng)} while someone narrates",
                lambda: (
                    f"{self._subject_action(rng, time=False, setting=setting)} with "
                    f"{_bare(_pick(rng, fitting))}"
                    if fitting
                    else f"{self._visual(rng)} with the sound muted"
                ),
            )
        if dominant == "audio":
            group = _pick(rng, book.sound_groups)
            return _one(
                rng,
                lambda: (
                    f"{_pick(rng, group.items)} "
                    + (" ".join(_pick(rng, group.places)[:2]) if group.places else "outdoors")
                ),
                lambda: self._sound_event(rng),
                lambda: f"{_playing(_pick(rng, book.music))} while someone talks",
                lambda: (
                    f"{_pick(rng, book.camera_before)} {self._visual_np(rng)} "
                    f"with only {_pick(rng, self._mass_sounds)}"
                ),
            )
        if dominant == "transcription":
            domain = _pick(rng, book.domains)
            speech = self._speech(rng, form=1, domain=domain, place=False)
            place = f" {_pick(rng, domain.places)}" if domain.places else ""
            return _one(
                rng,
                lambda: f"{speech}{place}",
                lambda: f"{speech} with {_pick(rng, book.music)} in the background",
                lambda: f"{self._spoken_format(rng)} {_pick(rng, book.camera_after)}",
            )
        fmts = book.metadata_formats
        return _one(
            rng,
            lambda: (
                f"{_pick(rng, book.films)} {_pick(rng, fmts['film'])} with "
                f"{_pick(rng, book.languages)} subtitles"
            ),
            lambda: (
                f"the {_pick(rng, book.series)} episode where "
                f"{self._subject_action(rng, finite=True, time=False)}"
            ),
            lambda: (
                f"{_pick(rng, book.role('musicians'))} {_pick(rng, fmts['music'])} "
                f"{self._year(rng)}"
            ),
        )

    def _wordlike(self, dominant: str, rng: random.Random) -> str | None:
        """A name that looks like an ordinary word."""
        book = self.book
        if not (book.wordlike_titles and book.wordlike_musicians):
            return None
        title = _pick(rng, book.wordlike_titles)
        band = _pick(rng, book.wordlike_musicians)
        if dominant == "visual":
            return f"the {title} scene where {self._subject_action(rng, finite=True, time=False)}"
        if dominant == "audio":
            return _pick(
                rng,
                (
                    f"the {_bare(self._sound_thing(rng))} sound from {title}",
                    f"{band} {_pick(rng, _BAND_PARTS)}",
                    f"the music from {title}",
                ),
            )
        if dominant == "transcription":
            return f"the part in {title} where {self._speech(rng, kinds='line line topic')}"
        if dominant == "metadata":
            fmts = book.metadata_formats
            return _pick(
                rng,
                (
                    f"{title} {_pick(rng, fmts['film'])}",
                    f"{band} {_pick(rng, fmts['music'])}",
                    f"{band} {_pick(rng, fmts['music'])} {self._year(rng)}",
                    f"{title} {self._year(rng)}",
                ),
            )
        return None

    def _short_items(self, signal: str) -> tuple[str, ...]:
        """One-to-three word queries that are still a real search for a signal."""
        book = self.book
        pools: dict[str, Sequence[str]] = {
            "visual": (
                *book.things,
                *book.landmarks,
                *(np for _, np, _ in book.places),
                *(t for s in book.settings for t in s.things),
            ),
            "audio": (*book.sound_events, *book.sound_nouns, *book.music),
            "transcription": (
                *(f for d in book.domains for fs in d.formats.values() for f in fs),
                *book.speakers,
                *book.formats_for,
            ),
            "metadata": (
                *book.titles,
                *book.person_names,
                *book.franchises,
                *book.genres,
                *book.channels,
            ),
        }
        out = [_bare(i) for i in pools.get(signal, ()) if len(_bare(i).split()) <= 3]
        if signal == "transcription":
            out += [f'"{line}"' for line in book.lines if len(line.split()) <= 3]
        return tuple(dict.fromkeys(out))

    def _edge(self, cell: Cell, rng: random.Random) -> tuple[str, str | None]:
        plan = self._plans[cell.attribute]
        dominant = cell.dominant
        signal = dominant if dominant != BALANCED else _pick(rng, list(self.signals))
        if rng.random() < 0.55:  # very short
            if rng.random() < 0.35 and (dominant == BALANCED or dominant in plan.attribute.informs):
                value = rng.choice(plan.attribute.values)
                return value, value
            if signal in self._short:
                pool = self._short[signal]
                cues = self.book.cues.get(signal, ())
                cues = tuple(c for c in cues if " " in c)  # a lone cue word is often no query
                if cues and rng.random() < 0.3:
                    return _pick(rng, cues), None
                return _pick(rng, pool), None
            cues, _ = self._custom[signal]
            return (_pick(rng, cues), None) if cues else self._compose(cell, rng)
        # long and rambling
        opener = _pick(rng, LONG_OPENERS)
        main_signal = signal if signal in BUILTIN_SIGNALS else None
        if main_signal is None:
            main = self._custom_core(signal, rng)
        elif rng.random() < 0.5:
            main = f"{_pick(rng, _LONG_HEADS)} where {self._clause(main_signal, rng)}"
        else:
            main = (
                self._np(main_signal, rng)
                if main_signal != "transcription"
                else self._transcription(rng)
            )
        details = [self._detail(signal, rng)]
        phrase = None
        if rng.random() < 0.6:
            try:
                filled, _ = self._attribute_phrase(
                    plan, rng, frames=("head", "head_of", "standalone", "modifier")
                )
                phrase = filled.text
                details.append(
                    _pick(rng, ("I think it was ", "it might be ", "maybe ", "possibly ")) + phrase
                )
            except _NoFit:
                pass
        rng.shuffle(details)
        return f"{opener} {main}, {', '.join(details)}, {_pick(rng, LONG_TAILS)}", phrase

    def _detail(self, signal: str, rng: random.Random) -> str:
        book = self.book
        if signal == "visual":
            return _pick(
                rng,
                (
                    f"it was shot {_pick(rng, book.camera_after)}",
                    f"it was {self._time(rng, 'in')}",
                    f"it was {_pick(rng, book.styles)} if I remember right",
                ),
            )
        if signal == "audio":
            return _pick(
                rng,
                (
                    f"it goes on for {rng.randint(2, 40)} minutes",
                    f"there's {_pick(rng, book.music)} in the background",
                    f"the sound was really {_pick(rng, book.qualities)}",
                ),
            )
        if signal == "transcription":
            return _pick(
                rng,
                (
                    f'someone says "{_pick(rng, book.lines)}"',
                    f"they talk about {_pick(rng, book.all_topics)}",
                    f"{_pick(rng, book.speakers)} explains it",
                ),
            )
        if signal == "metadata":
            return _pick(
                rng,
                (
                    f"I think it came out in {self._year(rng)}",
                    f"it was on {_pick(rng, book.channels)}",
                    f"it might be {_pick(rng, book.titles)}",
                    f"maybe {self._when(rng)}",
                ),
            )
        cues, _ = self._custom[signal]
        return f"with {_pick(rng, cues)}" if cues else "I think"

    def _stray(self, cell: Cell, query: str, phrase: str | None) -> bool:
        """True when a value of the cell's attribute shows up outside the attribute phrase."""
        pattern = self._plans[cell.attribute].values
        if pattern is None:
            return False
        rest = query.replace(phrase, " ", 1) if phrase else query
        return pattern.search(rest) is not None

    def write(self, cell: Cell, rng: random.Random) -> str:
        """One query for a cell."""
        for _ in range(6):
            if cell.difficulty == "edge":
                query, phrase = self._edge(cell, rng)
            else:
                query, phrase = self._compose(cell, rng)
                if cell.difficulty == "hard":
                    query = self._hard(cell, query, phrase, rng)
                    if phrase and phrase not in query:
                        phrase = None
            if not self._stray(cell, query, phrase) and not _ends_open(query):
                break
        query = " ".join(query.split())
        roll = rng.random()
        if roll < 0.2:
            capital = query[:1].upper() + query[1:]
            if not self._stray(cell, capital, phrase):  # not "House music" in a title cell
                query = capital
        elif roll < 0.3 and not _QUOTED.search(query):
            query = query.lower()
        return query

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


@dataclass(frozen=True)
class _Filled:
    text: str
    value: str


class _NoFit(Exception):
    """No phrasing of the attribute fits here; the caller writes the query without it."""


_QUOTED = re.compile(r'"[^"]*"')


def _one(rng: random.Random, *makers: Callable[[], str]) -> str:
    """One of several ways of writing something, only that one composed."""
    return _pick(rng, makers)()


def _pick(rng: random.Random, items: Sequence[T]) -> T:
    if not items:
        raise TaxonomyError("a phrasebook role is empty for this vocabulary half")
    return items[int(rng.random() * len(items))]
