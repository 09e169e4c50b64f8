"""The local reference teacher: a deterministic, taxonomy-aware router.

It follows the production teacher prompt's guidelines (visual: appearance, objects, actions,
scenes, camera; audio: sounds, music, noise; transcription: spoken words, dialogue, narration,
quotes; metadata: names, titles, genres, dates, ratings, rights and other catalogue facts).

Cues come from data: a lexicon (intent_router/data/cues.json), word lists for the language rules
(data/language.json: sound verbs, speech verbs, spoken formats, languages, ...), names
(data/entities.json, data/vocabulary.json, data/catalogue.json when present) and the taxonomy's
own cue phrases and attribute values, which are the strongest cues. Words are matched through
their inflections (-s, -ing, -ed, ...) and, for unknown words of five letters or more, one typo
away. Rules then read the query the way a person would:

- negation removes what is excluded ("no music"); an excluded catalogue fact is still one
  ("not in english");
- after a speech cue ("where she says ...") and inside quotes the words are spoken content;
- a first- or second-person line typed without quotes is an utterance ("you shall not pass");
- a sound verb makes its noun a sound source ("an owl hooting"), as does "the sound of";
- a voice described by how it sounds is audio ("a raspy voice");
- a language is a catalogue fact of a video ("documentaries in spanish") but the speech of a
  person ("someone ordering coffee in italian");
- a query that is a known title or name is a catalogue look-up ("Up", "the office").

Evidence for one signal grows with each further cue but less and less (the strongest counts in
full, the next half, ...), so a long scene description does not drown the one word that says
what is being searched for. The reasoning names the content cues it used.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import NamedTuple

import numpy as np

from intent_router.schema import RoutingDecision
from intent_router.taxonomy import Taxonomy
from intent_router.text import normalise
from intent_router.wordforms import TypoIndex, closest_form, stem

ATTRIBUTE_STRENGTH = 3.0  # a taxonomy value, times its affinity
WHOLE_QUERY_STRENGTH = 4.0  # the whole query is a known title, name or taxonomy value
NAME_STRENGTH = 3.0
QUIET_TITLE_STRENGTH = 2.0  # a lower-case title of everyday words next to a name
OPENING_NAME_STRENGTH = 2.5  # a capitalised common word that is a name, opening the query
EVIDENCE_SCALE = 0.5  # logits per unit of cue evidence
DECAY = 0.5  # the k-th strongest cue of a signal counts DECAY**k
NEGATION_FACTOR = 0.0  # an excluded sound, sight or speech is not what is searched for
NEGATED_METADATA_FACTOR = 1.0  # "not in english", "no watermark": still a catalogue filter
SPEECH_SCOPE_FACTOR = 0.3
SOUND_SOURCE_FACTOR = 0.35
EMPHASIS_FACTOR = 1.5
SPOKEN_CONTENT_BOOST = 1.5
QUOTE_STRENGTH = 3.5
UTTERANCE_STRENGTH = 3.0
VOICE_QUALITY_STRENGTH = 3.0
CREATOR_STRENGTH = 2.5
LIVE_SHOW_STRENGTH = 2.5
SOUND_VERB_STRENGTH = 3.0
SPEECH_VERB_STRENGTH = 3.0
WEAK_SPEECH_VERB_STRENGTH = 2.0
SPOKEN_FORMAT_STRENGTH = 3.0
PLURAL_FORMAT_STRENGTH = 2.0
LANGUAGE_STRENGTH = 2.5
SPEAKER_STRENGTH = 1.0
MIN_TYPO_LENGTH = 6
_STOPWORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "of",
        "in",
        "on",
        "at",
        "to",
        "and",
        "or",
        "for",
        "with",
        "from",
        "by",
        "her",
        "us",
        "up",
        "it",
        "is",
        "will",
        "be",
        "we",
        "you",
        "me",
        "my",
        "our",
        "this",
        "that",
        "these",
        "those",
        "there",
        "their",
        "his",
        "its",
        "are",
        "was",
        "were",
        "been",
        "being",
        "has",
        "have",
        "had",
        "do",
        "does",
        "did",
        "so",
        "as",
        "if",
        "than",
        "then",
        "some",
        "any",
        "all",
        "just",
        "very",
        "really",
    ]
)
_CLAUSE_WORDS = {"while", "whereas", "then", "but", "with", "and", "as", "featuring", "plus"}
_CLAUSE_PUNCTUATION = (",", ";", ":", ".", "!", "?", "(", ")")
_NOT_NAMES = {"I", "I'll", "I'm", "I've", "I'd", "OK", "TV"}
_CONNECTORS = {"of", "the", "and", "a", "in", "on", "to", "for", "&"}
_LISTEN_OPENERS = {
    "sound of",
    "sounds of",
    "noise of",
    "noises of",
    "hear",
    "hearing",
    "can hear",
    "you can hear",
    "listen to",
    "listening to",
    "audio of",
    "recording of",
    "sound effect of",
    "sound effects of",
    "ambience of",
    "ambient sound of",
    "ambient sounds of",
    "soundscape of",
}
_CAMEL = re.compile(r"[a-z][A-Z]|\d")
_WEAK_PRONOUNS = frozenset(
    ["me", "my", "our", "ours", "us", "myself", "ourselves", "yourself", "yours"]
)
_NOT_PERFORMERS = frozenset(
    [
        "who",
        "that",
        "which",
        "to",
        "they",
        "people",
        "animals",
        "fish",
        "birds",
        "creatures",
        "families",
        "can",
        "will",
        "would",
        "and",
        "or",
        "where",
        "still",
    ]
)
_SOUND_HEADS = frozenset(
    [
        "sound",
        "sounds",
        "noise",
        "noises",
        "ambience",
        "ambiance",
        "ambient",
        "soundscape",
        "soundscapes",
        "sfx",
        "audio",
        "asmr",
        "effect",
        "effects",
    ]
)
_RAW_WORD = re.compile(r"[\w']+")
_WORDLIKE = re.compile(r"[\w']")
_DURATION = r"(?:seconds?|secs?|minutes?|mins?|hours?|hrs?)"
_METADATA_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"\b(?:season|series|episode|ep|part|chapter|vol|volume)\s?\d+\b", re.I),
        "episode number",
    ),
    (re.compile(r"\bs\d{1,2}\s?e\d{1,3}\b", re.I), "episode code"),
    (re.compile(r"\b(?:1[89]|20)\d{2}s?\b"), "year"),
    (re.compile(r"\b\d+\s?" + _DURATION + r"\s+long\b", re.I), "duration"),
    (
        re.compile(
            r"\b(?:under|over|longer than|shorter than|less than|more than|at least)\s+"
            r"(?:an?|one|\d+)\s*" + _DURATION + r"\b",
            re.I,
        ),
        "duration",
    ),
    (re.compile(r"\brated\s+(?:g|pg|pg-13|r|nc-17|tv-ma|tv-14)\b", re.I), "rating"),
)
_PATTERN_HINT = re.compile(r"\d|rated|hour|hr|min|sec", re.I)  # what every pattern needs
# Quoted text: straight or curly double quotes, or single quotes that may hold apostrophes
# inside words ('you can't handle the truth').
_QUOTED = re.compile(
    r"[\"“”]([^\"“”]{3,})[\"“”]|(?<![\w'])['‘]((?:[^'‘’]|(?<=\w)['’](?=\w)){3,}?)['’](?![\w'])"
)


class CueHit(NamedTuple):
    phrase: str
    signal: str
    strength: float


class _Name(NamedTuple):
    name: str
    start: int
    end: int


class _Match(NamedTuple):
    start: int
    length: int
    contributions: dict[str, float]
    phrase: str
    key: tuple[str, ...]

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclass(frozen=True)
class _Query:
    """A query split into normalised words, with where each word came from."""

    raw_words: list[str]
    words: list[str]
    owner: list[int]  # raw word index of each word
    clause: list[int]  # clause number of each word (punctuation and "with", "but", ...)
    sentence: list[int]  # like clause, but only punctuation separates
    capital: list[bool]  # the raw word starts with a capital
    first_token: dict[int, int]  # raw word index -> index of its first word
    has_capital: bool


@lru_cache(maxsize=65536)
def _piece(raw: str) -> tuple[tuple[str, ...], bool, bool, bool, bool]:
    """One whitespace-separated piece of a query: its words, whether it starts a sentence,
    starts a clause, ends one, and starts with a capital."""
    tokens = _tokens(raw)
    starts_sentence = raw.startswith(_CLAUSE_PUNCTUATION)
    starts_clause = starts_sentence or bool(tokens and tokens[0] in _CLAUSE_WORDS)
    capital = raw.lstrip("\"'“‘(")[:1].isupper()
    return tokens, starts_sentence, starts_clause, raw.endswith(_CLAUSE_PUNCTUATION), capital


def _parse(query: str) -> _Query:
    raw_words = query.split()
    words: list[str] = []
    owner: list[int] = []
    clause: list[int] = []
    sentence: list[int] = []
    capital: list[bool] = []
    first_token: dict[int, int] = {}
    current_clause = current_sentence = 0
    for position, raw in enumerate(raw_words):
        tokens, starts_sentence, starts_clause, ends, is_capital = _piece(raw)
        current_sentence += starts_sentence
        current_clause += starts_clause
        if tokens:
            first_token[position] = len(words)
            n = len(tokens)
            words.extend(tokens)
            owner.extend([position] * n)
            clause.extend([current_clause] * n)
            sentence.extend([current_sentence] * n)
            capital.extend([is_capital] * n)
        if ends:
            current_clause += 1
            current_sentence += 1
    has_capital = query != query.lower()
    return _Query(raw_words, words, owner, clause, sentence, capital, first_token, has_capital)


def _after(positions: list[int], groups: list[int]) -> list[bool]:
    """For each word: is there a position before it in the same group?"""
    flags = [False] * len(groups)
    if not positions:
        return flags
    marks = set(positions)
    active_group = None
    for k, group in enumerate(groups):
        if active_group is not None and group == active_group:
            flags[k] = True
        elif active_group is not None:
            active_group = None
        if k in marks:
            active_group = group
    return flags


def _before(positions: list[int], groups: list[int]) -> list[bool]:
    """For each word: is there a position after it in the same group?"""
    return _after([len(groups) - 1 - p for p in positions], groups[::-1])[::-1]


def _read_json(name: str) -> object:
    path = resources.files("intent_router") / "data" / name
    return json.loads(path.read_text("utf-8")) if path.is_file() else None


@cache
def _builtin_lexicon() -> dict[str, dict[str, float]]:
    data = _read_json("cues.json")
    assert isinstance(data, dict)
    return data


@cache
def _language() -> dict[str, list[str]]:
    data = _read_json("language.json")
    assert isinstance(data, dict)
    return {k: v for k, v in data.items() if isinstance(v, list)}


@cache
def _builtin_entities() -> tuple[str, ...]:
    vocab = _read_json("vocabulary.json")
    assert isinstance(vocab, dict)
    extra = _read_json("entities.json")
    names: list[str] = extra["names"] if isinstance(extra, dict) else []
    return tuple(
        vocab.get("person_names", [])
        + vocab.get("titles", [])
        + vocab.get("brands_and_teams", [])
        + names
    )


@cache
def _catalogue() -> tuple[tuple[str, ...], frozenset[str]]:
    """Names from data/catalogue.json ({"kinds": {kind: [names]}, "common_word_names": [...]})
    when that file is present, and the names made of everyday words ('Up', 'The Office'),
    which count only when written with their capitals or when they are the whole query."""
    data = _read_json("catalogue.json")
    if not isinstance(data, dict):
        return (), frozenset()
    kinds = data.get("kinds", {})
    names: list[str] = []
    for kind in sorted(kinds) if isinstance(kinds, dict) else ():
        values = kinds[kind]
        if isinstance(values, list):
            names.extend(v for v in values if isinstance(v, str) and v.strip())
    common = data.get("common_word_names", [])
    return tuple(names), frozenset(c for c in common if isinstance(c, str))


def inflections(verb: str) -> dict[str, str]:
    """The -s, -ing and -ed forms of a verb (of the first word of a phrasal verb)."""
    head, _, rest = verb.partition(" ")
    tail = f" {rest}" if rest else ""
    irregular = _IRREGULAR.get(head, ())
    if head.endswith(("s", "x", "z", "ch", "sh")):
        third = head + "es"
    elif head.endswith("y") and head[-2:-1] not in "aeiou":
        third = head[:-1] + "ies"
    else:
        third = head + "s"
    if head.endswith("ie"):
        ing = head[:-2] + "ying"
    elif head.endswith("e") and not head.endswith(("ee", "ye", "oe")):
        ing = head[:-1] + "ing"
    elif _doubles(head):
        ing = head + head[-1] + "ing"
    else:
        ing = head + "ing"
    if head.endswith("e"):
        past = head + "d"
    elif head.endswith("y") and head[-2:-1] not in "aeiou":
        past = head[:-1] + "ied"
    elif _doubles(head):
        past = head + head[-1] + "ed"
    else:
        past = head + "ed"
    forms = {"s": third + tail, "ing": ing + tail, "ed": past + tail}
    for n, form in enumerate(irregular):
        forms[f"irregular{n}"] = form + tail
    return forms


_IRREGULAR = {
    "say": ("said",),
    "tell": ("told",),
    "speak": ("spoke", "spoken"),
    "sing": ("sang", "sung"),
    "ring": ("rang", "rung"),
    "teach": ("taught",),
    "sell": ("sold",),
    "swear": ("swore", "sworn"),
    "weep": ("wept",),
    "read aloud": ("read aloud",),
}


def _doubles(word: str) -> bool:
    """Short consonant-vowel-consonant verbs double the last letter: tap -> tapping."""
    vowels = "aeiou"
    if len(word) < 3 or word[-1] in vowels + "wxy" or word[-2] not in vowels:
        return False
    if word[-3] in vowels:
        return False
    return (
        sum(
            1 for i, ch in enumerate(word) if ch in vowels and (i == 0 or word[i - 1] not in vowels)
        )
        == 1
    )


def _tuple(phrase: str) -> tuple[str, ...]:
    return tuple(normalise(phrase).split(" "))


@dataclass(frozen=True)
class _WordLists:
    """The language rules' word lists (data/language.json), as phrase tuples and word sets."""

    negators: frozenset[tuple[str, ...]]
    negator_first: frozenset[str]
    negation_skip: frozenset[str]
    negation_enders: frozenset[str]
    emphasis: frozenset[tuple[str, ...]]
    emphasis_first: frozenset[str]
    pronouns: frozenset[str]
    strong_pronouns: frozenset[str]  # pronouns that make a line ("you", "i'm"), not "my"
    frames: frozenset[tuple[str, ...]]
    starters: frozenset[tuple[str, ...]]
    speakers: frozenset[tuple[str, ...]]
    people: frozenset[tuple[str, ...]]
    media: frozenset[str]
    voice_qualities: frozenset[tuple[str, ...]]
    voice_nouns: frozenset[str]
    language_before: frozenset[str]
    language_after: frozenset[tuple[str, ...]]


def _word_lists(language: dict[str, list[str]]) -> _WordLists:
    def listed(name: str) -> frozenset[tuple[str, ...]]:
        return frozenset(_tuple(p) for p in language.get(name, []))

    def words(name: str) -> frozenset[str]:
        return frozenset(w for p in listed(name) for w in p)

    negators, emphasis, speakers = listed("negators"), listed("emphasis"), listed("speakers")
    pronouns = words("utterance_pronouns")
    after = listed("language_frames_after")
    return _WordLists(
        negators=negators,
        negator_first=frozenset(p[0] for p in negators),
        negation_skip=words("negation_skip"),
        negation_enders=words("negation_enders"),
        emphasis=emphasis,
        emphasis_first=frozenset(p[0] for p in emphasis),
        pronouns=pronouns,
        strong_pronouns=pronouns - _WEAK_PRONOUNS,
        frames=listed("request_frames"),
        starters=listed("utterance_starters"),
        speakers=speakers,
        people=listed("people") | speakers,
        media=words("media_nouns"),
        voice_qualities=listed("voice_qualities"),
        voice_nouns=words("voice_nouns"),
        language_before=frozenset(p[-1] for p in listed("language_frames_before"))
        | {"speaking", "speaks", "spoken"},
        language_after=after | {p[:1] for p in after},
    )


@dataclass(frozen=True)
class _Base:
    """Everything that does not depend on a taxonomy (only on which signals it has): built
    once per signal set and shared by every teacher."""

    lexicon: dict[tuple[str, ...], dict[str, float]]
    case_sensitive: dict[str, dict[str, float]]
    whole: dict[str, dict[str, float]]  # normalised whole query -> signal strengths
    common_words: frozenset[str]
    known_words: frozenset[str]  # words a typo fix must leave alone
    known_stems: frozenset[str]
    everyday: frozenset[str]  # common words and lexicon words that are not names
    typos: TypoIndex
    name_keys: frozenset[tuple[str, ...]]
    quiet_titles: dict[tuple[str, ...], str]
    quiet_lengths: dict[str, tuple[int, ...]]
    weak_speech_forms: frozenset[tuple[str, ...]]
    plural_formats: frozenset[tuple[str, ...]]
    languages: frozenset[tuple[str, ...]]
    words: _WordLists
    lengths: dict[str, tuple[int, ...]]
    by_stem: dict[tuple[str, ...], tuple[str, ...]]
    stem_forms: dict[str, tuple[str, ...]]
    stem_lengths: dict[str, tuple[int, ...]]
    vocabulary: frozenset[str]
    names_by_start: dict[tuple[str, ...], list[tuple[str, int]]]
    joined_names: dict[str, str]  # one-word names written apart: "mrbeast" <- "mr beast"

    def looks_common(self, name: str) -> bool:
        return _looks_common(name, self.common_words)


def _looks_common(name: str, common_words: frozenset[str]) -> bool:
    """A one-word name, or a name made only of everyday words ('Up', 'The Office'), counts
    only when it is written with its capitals or is the whole query."""
    words = normalise(name).split(" ")
    return len(words) == 1 or all(w in common_words for w in words)


def _phrase_order(key: tuple[str, ...]) -> tuple[int, tuple[str, ...]]:
    return (len(key), key)


def _merge_lengths(
    lengths: dict[str, tuple[int, ...]], more: Iterable[tuple[str, int]]
) -> dict[str, tuple[int, ...]]:
    """Phrase lengths worth trying at a first word, longest first, with more added."""
    merged = dict(lengths)
    for first, n in more:
        if n not in merged.get(first, ()):
            merged[first] = tuple(sorted({*merged.get(first, ()), n}, reverse=True))
    return merged


def _names_by_start(
    case_sensitive: dict[str, dict[str, float]],
) -> dict[tuple[str, ...], list[tuple[str, int]]]:
    """Case-sensitive names by their first two words (a dict look-up per query word), longest
    first, each with where its first word starts; confirmed against the query text."""
    by_start: dict[tuple[str, ...], list[tuple[str, int]]] = defaultdict(list)
    for name in sorted(case_sensitive, key=lambda n: (-len(n), n)):
        first = _RAW_WORD.search(name)
        if first:
            by_start[tuple(_RAW_WORD.findall(name)[:2])].append((name, first.start()))
    return dict(by_start)


@cache
def _base(signals: frozenset[str]) -> _Base:
    language = _language()
    # 1. Word lists for the language rules: defaults that the curated lexicon overrides.
    generated: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)

    def suggest(phrase: str, signal: str, strength: float) -> None:
        key = _tuple(phrase)
        if key != ("",) and signal in signals:
            generated[key][signal] = max(generated[key].get(signal, 0.0), strength)

    seen_first = set(language.get("sound_verbs_seen_first", []))
    for verb in language.get("sound_verbs", []):
        for kind, form in inflections(verb).items():
            if kind != "s" or verb not in seen_first:
                suggest(form, "audio", SOUND_VERB_STRENGTH)
        if verb not in seen_first:
            suggest(verb, "audio", SOUND_VERB_STRENGTH - 0.5)
    weak = set(language.get("speech_verbs_weak", []))
    weak_forms: set[tuple[str, ...]] = set()
    for verb in language.get("speech_verbs", []):
        strength = WEAK_SPEECH_VERB_STRENGTH if verb in weak else SPEECH_VERB_STRENGTH
        for form in inflections(verb).values():
            suggest(form, "transcription", strength)
            if verb in weak:
                weak_forms.add(_tuple(form))
        if verb not in weak:
            suggest(verb, "transcription", strength)
    plural_formats: set[tuple[str, ...]] = set()
    for phrase in language.get("spoken_formats", []):
        suggest(phrase, "transcription", SPOKEN_FORMAT_STRENGTH)
        plural = inflections(phrase)["s"] if " " not in phrase else phrase + "s"
        if not plural.endswith(("ss", "ws")):
            suggest(plural, "transcription", PLURAL_FORMAT_STRENGTH)
            plural_formats.add(_tuple(plural))
    for speaker in language.get("speakers", []):
        suggest(speaker, "transcription", SPEAKER_STRENGTH)
    for name in language.get("languages", []):
        suggest(name, "metadata", LANGUAGE_STRENGTH)
    lexicon: dict[tuple[str, ...], dict[str, float]] = {k: dict(v) for k, v in generated.items()}

    # 2. The curated lexicon: authoritative for every phrase it lists.
    curated: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
    for signal, phrases in _builtin_lexicon().items():
        for phrase, value in phrases.items():
            key = _tuple(phrase)
            if key != ("",):
                curated[key][signal] = max(curated[key].get(signal, 0.0), float(value))
    for key, contributions in curated.items():
        kept = {s: v for s, v in contributions.items() if s in signals}
        if kept:
            lexicon[key] = kept
        else:
            lexicon.pop(key, None)
    # A hyphenated phrase also matches written apart or together ("call-in", "call in").
    for key in [k for k in lexicon if any("-" in w for w in k)]:
        apart = tuple(p for w in key for p in w.split("-") if p)
        joined = tuple(w.replace("-", "") for w in key)
        for variant in (apart, joined):
            if variant and variant not in lexicon:
                lexicon[variant] = dict(lexicon[key])
    # Typos are fixed towards words of the lexicon and word lists only, never towards a name
    # ('turning' is not 'turing').
    typo_targets = {w for key in lexicon for w in key}
    listed_common = set(language.get("common_words", [])) | _STOPWORDS
    common_words = frozenset({k[0] for k in lexicon if len(k) == 1} | listed_common)
    known_words = listed_common | typo_targets

    # 3. Names: case-sensitive when made of everyday words (or one word), else any case.
    case_sensitive: dict[str, dict[str, float]] = defaultdict(dict)
    whole: dict[str, dict[str, float]] = defaultdict(dict)
    quiet_titles: dict[tuple[str, ...], str] = {}
    joined_names: dict[str, str] = {}
    catalogue, common_names = _catalogue()
    names = list(_builtin_entities()) + list(catalogue)
    if "metadata" in signals:
        for entity in names:
            # "MrBeast", "PewDiePie", "Deadmau5": not a word, so a name in any case ("boAt" and
            # "GoT" stay case-sensitive: in lower case they are words).
            camel = bool(_CAMEL.search(entity)) and entity.lower() not in known_words
            common = (entity in common_names or _looks_common(entity, common_words)) and not camel
            key = _tuple(entity)
            if common:
                current = case_sensitive[entity]
                current["metadata"] = max(current.get("metadata", 0.0), NAME_STRENGTH)
            elif key != ("",):
                current = lexicon.setdefault(key, {})
                lexicon[key] = {
                    **current,
                    "metadata": max(current.get("metadata", 0.0), NAME_STRENGTH),
                }
            if not common or len(key) > 1:  # "skyline" alone is a skyline, not the film
                norm = " ".join(key)
                whole[norm]["metadata"] = max(
                    whole[norm].get("metadata", 0.0), WHOLE_QUERY_STRENGTH
                )
            if common and len(key) > 1 and key not in lexicon:
                quiet_titles.setdefault(key, entity)
            if len(key) == 1 and not common:  # "mr beast" finds "MrBeast"
                joined_names.setdefault(key[0], entity)
            known_words.update(key)
    name_keys = frozenset(_tuple(n) for n in names)
    everyday = frozenset(
        (typo_targets | listed_common)
        - {w for key in name_keys for w in key if (w,) not in curated}
    )
    quiet: dict[str, set[int]] = defaultdict(set)
    for key in quiet_titles:
        quiet[key[0]].add(len(key))

    # 4. Look-up indexes.
    lengths: dict[str, set[int]] = defaultdict(set)
    by_stem_all: dict[tuple[str, ...], list[tuple[str, ...]]] = defaultdict(list)
    stem_forms: dict[str, list[str]] = defaultdict(list)
    for key in lexicon:
        lengths[key[0]].add(len(key))
        stems = tuple(stem(w) for w in key)
        by_stem_all[stems].append(key)
        if len(key) == 1:
            stem_forms[stems[0]].append(key[0])
    by_stem = {s: min(keys, key=_phrase_order) for s, keys in by_stem_all.items()}
    stem_lengths: dict[str, set[int]] = defaultdict(set)
    for stems in by_stem:
        if len(stems) > 1:
            stem_lengths[stems[0]].add(len(stems))
    plural_heads = {k[0] for k in plural_formats if len(k) == 1}
    plural_formats |= {k for k in lexicon if len(k) > 1 and k[-1] in plural_heads}
    return _Base(
        lexicon=lexicon,
        case_sensitive=dict(case_sensitive),
        whole=dict(whole),
        common_words=common_words,
        known_words=frozenset(known_words),
        known_stems=frozenset(stem(w) for w in known_words),
        everyday=everyday,
        typos=TypoIndex(typo_targets, min_length=MIN_TYPO_LENGTH),
        name_keys=name_keys,
        quiet_titles=quiet_titles,
        quiet_lengths={w: tuple(sorted(n, reverse=True)) for w, n in quiet.items()},
        weak_speech_forms=frozenset(weak_forms),
        plural_formats=frozenset(plural_formats),
        languages=frozenset(_tuple(x) for x in language.get("languages", [])),
        words=_word_lists(language),
        lengths={w: tuple(sorted(n, reverse=True)) for w, n in lengths.items()},
        by_stem=by_stem,
        stem_forms={k: tuple(v) for k, v in stem_forms.items()},
        stem_lengths={w: tuple(sorted(n, reverse=True)) for w, n in stem_lengths.items()},
        vocabulary=frozenset(w for key in lexicon for w in key),
        names_by_start=_names_by_start(case_sensitive),
        joined_names=joined_names,
    )


class ReferenceTeacher:
    """Deterministic teacher for a taxonomy. `route` is pure: same query, same answer."""

    def __init__(self, taxonomy: Taxonomy, round_step: float = 0.05) -> None:
        self.taxonomy = taxonomy
        self.signals = taxonomy.signal_names
        self.round_step = round_step
        signals = set(self.signals)
        base = _base(frozenset(signals))
        # The shared base (word lists, curated lexicon, names) is copied; the taxonomy's cue
        # phrases and attribute values are added on top, copy-on-write.
        lexicon = dict(base.lexicon)
        case_sensitive = dict(base.case_sensitive)
        whole = dict(base.whole)
        known_words = set(base.known_words)

        def add(phrase: str, signal: str, strength: float, exact_case: bool = False) -> None:
            if signal not in signals or strength <= 0:
                return
            if exact_case:
                current = case_sensitive.get(phrase, {})
                case_sensitive[phrase] = {**current, signal: max(current.get(signal, 0), strength)}
                return
            key = _tuple(phrase)
            if key != ("",):
                current = lexicon.get(key, {})
                lexicon[key] = {**current, signal: max(current.get(signal, 0.0), strength)}

        for spec in taxonomy.signals:
            for phrase in spec.cues:
                add(phrase, spec.name, 2.0)
        for attribute in taxonomy.attributes:
            for value in attribute.values:
                proper = value[:1].isupper() and base.looks_common(value)
                key = normalise(value)
                for signal, affinity in attribute.informs.items():
                    add(value, signal, ATTRIBUTE_STRENGTH * affinity, exact_case=proper)
                    if signal in signals and key:
                        current = whole.get(key, {})
                        strength = max(current.get(signal, 0.0), WHOLE_QUERY_STRENGTH * affinity)
                        whole[key] = {**current, signal: strength}
                known_words.update(key.split(" "))
        self._lexicon = lexicon
        self._case_sensitive = case_sensitive
        self._whole = whole
        self._known_words = known_words
        self._known_stems = base.known_stems | {stem(w) for w in known_words - base.known_words}
        self._typos = base.typos
        self._everyday = base.everyday
        self._name_keys = base.name_keys
        self._quiet_titles = base.quiet_titles
        self._quiet_lengths = base.quiet_lengths
        self._weak_speech_forms = base.weak_speech_forms
        self._languages = base.languages
        self._words = base.words
        self._joined_names = base.joined_names

        # Look-up indexes over the whole lexicon: the base's, plus the taxonomy's phrases.
        extra = [k for k in lexicon if k not in base.lexicon]
        self._lengths = _merge_lengths(base.lengths, ((k[0], len(k)) for k in extra))
        self._by_stem = dict(base.by_stem)
        self._stem_forms = dict(base.stem_forms)
        for new_key in extra:
            stems = tuple(stem(w) for w in new_key)
            known = self._by_stem.get(stems)
            self._by_stem[stems] = (
                new_key if known is None else min(known, new_key, key=_phrase_order)
            )
            if len(new_key) == 1:
                self._stem_forms[stems[0]] = (*self._stem_forms.get(stems[0], ()), new_key[0])
        self._stem_lengths = _merge_lengths(
            base.stem_lengths, ((k[0], len(k)) for k in self._by_stem if len(k) > 1)
        )
        self._vocabulary = base.vocabulary | {w for key in extra for w in key}
        plural_heads = {k[0] for k in base.plural_formats if len(k) == 1}
        self._plural_formats = base.plural_formats | {
            k for k in extra if len(k) > 1 and k[-1] in plural_heads
        }
        self._names_by_start = base.names_by_start
        if len(case_sensitive) != len(base.case_sensitive):
            self._names_by_start = _names_by_start(case_sensitive)
        self._log_alpha = [math.log(0.6 if s == "visual" else 0.4) for s in self.signals]
        self._spelling_cache: dict[str, str] = {}
        self._form_cache: dict[str, str | None] = {}
        self._lengths_cache: dict[str, tuple[int, ...]] = {}

    # -- words -----------------------------------------------------------------------------
    def _spelling(self, word: str) -> str:
        """The word as the lexicon spells it when it is one slip away from a lexicon word and
        is not itself a word we know ('thunderstrom' -> 'thunderstorm', 'speach' -> 'speech')."""
        cached = self._spelling_cache.get(word)
        if cached is not None:
            return cached
        fixed = word
        if (
            len(word) >= MIN_TYPO_LENGTH
            and word.isalpha()
            and word not in self._vocabulary
            and word not in self._known_words
            and stem(word) not in self._known_stems
        ):
            candidates = self._typos.candidates(word)
            if candidates:
                fixed = candidates[0]
            elif word.endswith("s") and (candidates := self._typos.candidates(word[:-1])):
                fixed = candidates[0] + "s"
        if len(self._spelling_cache) > 200_000:
            self._spelling_cache.clear()
        self._spelling_cache[word] = fixed
        return fixed

    def _other_form(self, word: str) -> str | None:
        """The lexicon word that is another form of an unknown word ('creaks' -> 'creaking')."""
        cached = self._form_cache.get(word, "")
        if cached != "":
            return cached
        forms = self._stem_forms.get(stem(word))
        found = closest_form(word, forms) if forms else None
        if len(self._form_cache) > 200_000:
            self._form_cache.clear()
        self._form_cache[word] = found
        return found

    def _lengths_at(self, word: str, word_stem: str) -> tuple[int, ...]:
        """Phrase lengths to try at a word (exact phrases and phrases by stem), longest first."""
        cached = self._lengths_cache.get(word)
        if cached is None:
            merged = set(self._lengths.get(word, ())) | set(self._stem_lengths.get(word_stem, ()))
            cached = tuple(sorted(merged, reverse=True))
            if len(self._lengths_cache) > 200_000:
                self._lengths_cache.clear()
            self._lengths_cache[word] = cached
        return cached

    def _match(self, words: list[str]) -> list[_Match]:
        """Lexicon phrases, longest first: exact words, then word stems, then a single word
        through its other forms."""
        matches: list[_Match] = []
        stems = [stem(w) for w in words]
        i = 0
        count = len(words)
        while i < count:
            found: _Match | None = None
            for n in self._lengths_at(words[i], stems[i]):
                if i + n > count:
                    continue
                key = tuple(words[i : i + n])
                contributions = self._lexicon.get(key)
                if contributions is None and n > 1:
                    stem_key = self._by_stem.get(tuple(stems[i : i + n]))
                    contributions = self._lexicon.get(stem_key) if stem_key else None
                if contributions is not None:
                    found = _Match(i, n, contributions, " ".join(key), key)
                    break
            if found is None and i + 1 < count:
                joined = words[i] + words[i + 1]
                if joined in self._joined_names and (joined,) in self._lexicon:
                    key = (words[i], words[i + 1])
                    found = _Match(i, 2, self._lexicon[(joined,)], " ".join(key), key)
            if found is None and (words[i],) not in self._lexicon:
                other = self._other_form(words[i])
                if other is not None:
                    found = _Match(i, 1, self._lexicon[(other,)], words[i], (words[i],))
            if found is None:
                i += 1
                continue
            matches.append(found)
            i += found.length
        return matches

    # -- evidence --------------------------------------------------------------------------
    def evidence(self, query: str) -> tuple[np.ndarray, list[CueHit]]:
        """Evidence per signal (an array in taxonomy order) and the cues behind it."""
        totals, hits = self._evidence(query)
        return np.array(totals), hits

    def _evidence(self, query: str) -> tuple[list[float], list[CueHit]]:
        q = _parse(query)
        words, clause, capital, owner = q.words, q.clause, q.capital, q.owner
        index = {s: i for i, s in enumerate(self.signals)}
        parts: list[list[float]] = [[] for _ in self.signals]
        hits: list[CueHit] = []

        def credit(phrase: str, signal: str, strength: float) -> None:
            if signal in index and strength > 0:
                parts[index[signal]].append(strength)
                hits.append(CueHit(phrase, signal, strength))

        spans = _quoted_spans(query)
        quoted_words = {w for span in spans for w in normalise(span).split(" ")}
        runs = _capitalised_runs(q.raw_words)
        in_title = {p for start, end in runs for p in range(start, end)}
        # Slips of the keyboard are fixed first (never in a capitalised word: it may be a name).
        words = [w if capital[k] else self._spelling(w) for k, w in enumerate(words)]
        matches = self._match(words)
        negated = self._negation(words, clause)
        inside = {p for m in matches if m.length > 1 for p in range(m.start, m.end)}
        emphasised = self._emphasis_flags(words, clause, inside)
        matches = self._speakers_talking(words, matches)

        def audible(m: _Match) -> bool:
            audio = m.contributions.get("audio", 0)
            return audio >= 2.5 and audio > m.contributions.get("visual", 0)

        speech_openers = [
            m.end - 1
            for m in matches
            if m.contributions.get("transcription", 0) >= 2.5
            and not negated[m.start]
            and m.key not in self._plural_formats
            and m.key[-1] != "with"  # "interview with" names a speaker
        ]
        # "sound of a train", "ambient track of the market": what follows is a sound source.
        listen_openers = [
            m.end - 1
            for m in matches
            if m.phrase in _LISTEN_OPENERS or (audible(m) and words[m.end : m.end + 1] == ["of"])
        ]
        sound_at = [m.start for m in matches if audible(m) and not negated[m.start]]
        # "seagulls and harbour ambience", "coffee shop chatter background noise": a sound
        # noun at the end of a phrase makes everything before it in the sentence its source.
        sound_heads = [
            m.end - 1
            for m in matches
            if m.contributions.get("audio", 0) >= 2.5
            and m.key[-1] in _SOUND_HEADS
            and not negated[m.start]
        ]
        spoken_scope = _after(speech_openers, clause)
        listen_scope = _after(listen_openers, clause)
        after_sound = _after(sound_at, clause)
        before_head = _before(sound_heads, q.sentence)
        near_sound = {s - d for s in sound_at for d in (1, 2)}
        voice_quality = self._voice_quality_positions(words)
        spoken_language, idle_language = self._language_roles(words, clause, matches)
        names_found = self._find_names(query) if q.has_capital else []
        named = bool(names_found or runs) or any(m.key in self._name_keys for m in matches)
        metadata_spans = {
            p
            for m in matches
            if m.contributions.get("metadata", 0) >= NAME_STRENGTH
            for p in range(m.start, m.end)
        }
        quiet_titles = [
            (start, end)
            for start, end in (self._quiet_title_spans(words, capital) if named else [])
            if not metadata_spans & set(range(start, end))  # already a catalogue phrase
        ]
        titled_tokens = {k for start, end in quiet_titles for k in range(start, end)}

        last = len(words) - 1
        for m in matches:
            i = m.start
            contributions = m.contributions
            if named and m.end - 1 == last and i > 0:
                # "Paris Hilton interview", "billie eilish songs": a name's interviews or songs
                # in the catalogue, not words or a sound to find in one
                contributions = self._shelved(m, contributions)
            if i in voice_quality:
                contributions = {"audio": VOICE_QUALITY_STRENGTH}
            if i in spoken_language and "metadata" in contributions:
                contributions = {"transcription": max(contributions["metadata"], LANGUAGE_STRENGTH)}
            elif i in idle_language:
                continue
            elif m.key in self._languages:
                contributions = {
                    "metadata": max(contributions.get("metadata", 0), LANGUAGE_STRENGTH)
                }
            negative = negated[i]
            spoken = words[i] in quoted_words or spoken_scope[i]
            titled = (owner[i] in in_title and len(runs) > 0) or i in titled_tokens
            sound_source = listen_scope[i] or i in near_sound or after_sound[i] or before_head[i]
            for signal, strength in contributions.items():
                factor = 1.0
                if negative:
                    factor = NEGATED_METADATA_FACTOR if signal == "metadata" else NEGATION_FACTOR
                if spoken and signal != "transcription":
                    factor *= SPEECH_SCOPE_FACTOR
                if titled and signal != "metadata":
                    factor *= SPEECH_SCOPE_FACTOR
                if sound_source and signal == "visual":
                    factor *= SOUND_SOURCE_FACTOR
                if emphasised[i] and not negative:
                    factor *= EMPHASIS_FACTOR
                credit(m.phrase, signal, strength * factor)

        for start, end in quiet_titles:  # "Prince purple rain": an artist and a song title
            credit(f"title '{' '.join(words[start:end])}'", "metadata", QUIET_TITLE_STRENGTH)
        # Names written with their capitals (common words only count as names that way). A
        # name inside spoken content is part of what is said ("reading Goldilocks aloud").
        for found in names_found:
            name = found.name
            at = q.first_token.get(len(query[: found.start].split()), 0)
            if at in metadata_spans and " " not in name:
                continue  # "Monaco" inside "Monaco Grand Prix": counted once
            rest = query[found.end :].strip(" .,;:!?\"'()")
            whole_name = not rest and found.start == 0
            opening = found.start == 0 and " " not in name and not rest[:1].isdigit()
            for signal, value in self._case_sensitive[name].items():
                if whole_name:
                    value = WHOLE_QUERY_STRENGTH
                elif opening:  # may just be the capital a query starts with ("Pink sky")
                    value = min(value, OPENING_NAME_STRENGTH)
                if spoken_scope[at] and signal != "transcription":
                    value *= SPEECH_SCOPE_FACTOR
                credit(name, signal, value)
        # The whole query is a known title, name or taxonomy value ("the office", "Up").
        whole_query = " ".join(q.words)
        bare = whole_query[4:] if whole_query.startswith("the ") else whole_query
        for key in dict.fromkeys((whole_query, bare)):
            for signal, value in self._whole.get(key, {}).items():
                credit(f"title '{key}'", signal, value)
            if key in self._whole:
                break
        if "transcription" in index:
            for span in spans:
                credit(f'"{span}"', "transcription", QUOTE_STRENGTH)
            for opener in speech_openers:
                content = sum(
                    1
                    for j in range(opener + 1, len(words))
                    if clause[j] == clause[opener] and words[j] not in _STOPWORDS
                )
                if content:
                    boost = SPOKEN_CONTENT_BOOST * min(1 + 0.25 * (content - 1), 1.75)
                    credit("spoken content", "transcription", boost)
            if not spans:
                titled_words = {k for k in range(len(words)) if owner[k] in in_title}
                line = self._utterance(words, titled_words)
                if line:
                    credit(f"line '{line}'", "transcription", UTTERANCE_STRENGTH)
        if "metadata" in index:
            self._catalogue_evidence(q, words, matches, named, runs, spoken_scope, hits, credit)
            metadata = parts[index["metadata"]]
            patterns = _METADATA_PATTERNS if _PATTERN_HINT.search(query) else ()
            for pattern, label in patterns:
                for pattern_match in pattern.finditer(query):
                    text = pattern_match.group(0)
                    earlier = max(
                        (
                            h.strength
                            for h in hits
                            if h.signal == "metadata" and h.phrase == text.lower()
                        ),
                        default=None,
                    )
                    if earlier is not None:  # the lexicon has it: do not count it twice
                        self._raise(metadata, earlier, 3.0)
                    else:
                        credit(f"{label} '{text}'", "metadata", 3.0)
        totals = []
        for values in parts:
            values.sort(reverse=True)
            totals.append(sum(v * DECAY**k for k, v in enumerate(values)))
        return totals, hits

    def _shelved(self, m: _Match, contributions: dict[str, float]) -> dict[str, float]:
        """A spoken format or a media noun after a name, ending the query: weaker."""
        if contributions.get("transcription", 0) >= 2.5:
            return {**contributions, "transcription": contributions["transcription"] - 0.5}
        if contributions.get("audio", 0) >= 2.5 and m.key[-1] in self._words.media:
            return {**contributions, "audio": contributions["audio"] - 0.5}
        return contributions

    def _catalogue_evidence(
        self,
        q: _Query,
        words: list[str],
        matches: list[_Match],
        named: bool,
        runs: list[tuple[int, int]],
        spoken_scope: list[bool],
        hits: list[CueHit],
        credit: Callable[[str, str, float], None],
    ) -> None:
        """Catalogue frames ('videos by mkbhd') and capitalised runs that look like names."""
        for phrase, strength in self._catalogue_frames(words, matches, named):
            credit(phrase, "metadata", strength)
        known = {h.phrase.lower() for h in hits if h.signal == "metadata"}
        for start, end in runs:
            run = " ".join(q.raw_words[start:end]).strip(".,;:!?\"'()")
            if run.lower() not in known:
                strength = 2.5 if end - start > 1 else 1.2
                if spoken_scope[q.first_token.get(start, 0)]:
                    strength *= SPEECH_SCOPE_FACTOR
                credit(f"name '{run}'", "metadata", strength)

    @staticmethod
    def _raise(values: list[float], old: float, new: float) -> None:
        """Replace one contribution `old` by `new` when that is larger."""
        if new > old and old in values:
            values[values.index(old)] = new

    # -- rules -----------------------------------------------------------------------------
    def _negation(self, words: list[str], clause: list[int]) -> list[bool]:
        """Which words a negator reaches: up to three content words after it, through 'or' and
        filler ('doesnt have that generic epic music'), until a contrast ('just', 'but')."""
        flags = [False] * len(words)
        i = 0
        count = len(words)
        while i < count:
            width = 0
            if words[i] not in self._words.negator_first:
                i += 1
                continue
            for n in (3, 2, 1):
                if i + n <= count and tuple(words[i : i + n]) in self._words.negators:
                    width = n
                    break
            if not width or (words[i] == "not" and words[i + 1 : i + 2] == ["to"]):
                i += max(width, 1)
                continue
            budget = 3
            j = i + width
            while j < count and budget > 0:
                word = words[j]
                if word in self._words.negation_enders or (clause[j] != clause[i] and budget < 3):
                    break
                if tuple(words[j : j + 1]) in self._words.negators:
                    break
                flags[j] = True
                if word not in self._words.negation_skip:
                    budget -= 1
                j += 1
            i = j
        return flags

    def _speakers_talking(self, words: list[str], matches: list[_Match]) -> list[_Match]:
        """A verb that is speech only sometimes ('pitching', 'teaching', 'praying') is speech
        when a speaker or a person does it: 'realtor pitching the house'."""
        out: list[_Match] = []
        ends = {m.start + m.length - 1: m for m in matches}
        for m in matches:
            phrase = tuple(words[m.start : m.start + m.length])
            if phrase in self._weak_speech_forms and m.start > 0:
                before = ends.get(m.start - 1)
                who = tuple(words[before.start : m.start]) if before else (words[m.start - 1],)
                if who in self._words.speakers or (words[m.start - 1],) in self._words.speakers:
                    m = _Match(
                        m.start, m.length, {"transcription": SPEECH_VERB_STRENGTH}, m.phrase, m.key
                    )
            out.append(m)
        return out

    def _emphasis_flags(self, words: list[str], clause: list[int], inside: set[int]) -> list[bool]:
        """Words right after 'just' or 'only' ('just the flames', 'only animal sounds'); not
        an 'only' that is part of a phrase ('editorial use only')."""
        flags = [False] * len(words)
        for i in range(len(words)):
            if words[i] not in self._words.emphasis_first or i in inside:
                continue
            for n in (2, 1):
                if i + n <= len(words) and tuple(words[i : i + n]) in self._words.emphasis:
                    for j in range(i + n, min(len(words), i + n + 3)):
                        if clause[j] == clause[i]:
                            flags[j] = True
                    break
        return flags

    def _voice_quality_positions(self, words: list[str]) -> set[int]:
        """Voice nouns described by how they sound ('raspy voice', 'deep voice')."""
        found: set[int] = set()
        for i, word in enumerate(words):
            if word not in self._words.voice_nouns:
                continue
            for n in (3, 2, 1):
                for start in range(max(0, i - 2 - n + 1), i):
                    if tuple(words[start : start + n]) in self._words.voice_qualities:
                        found.add(i)
        return found

    def _language_roles(
        self, words: list[str], clause: list[int], matches: list[_Match]
    ) -> tuple[set[int], set[int]]:
        """Where a language name is a person's speech ('someone ordering coffee in italian')
        and where it is no language at all ('a hawaiian shirt', 'french fries'). Elsewhere it
        is a catalogue fact: 'documentaries in spanish', 'english subtitles', 'korean dramas',
        'not in english'."""
        spoken: set[int] = set()
        idle: set[int] = set()
        count = len(words)
        for m in matches:
            if tuple(words[m.start : m.start + m.length]) not in self._languages:
                continue
            before = words[m.start - 1] if m.start else ""
            end = m.start + m.length
            after = tuple(words[end : end + 2])
            framed = (
                before in self._words.language_before
                or (after[:1] and after[:1] in self._words.language_after)
                or after in self._words.language_after
                or any(w in self._words.media for w in words[end : end + 3])
                or any(w in self._words.media for w in words[max(0, m.start - 2) : m.start])
                or count == m.length
            )
            if before == "with" and not (
                after[:1] in self._words.language_after or after in self._words.language_after
            ):
                framed = False
            if not framed:
                idle.add(m.start)
                continue
            if before not in {"in", "speaking", "speaks", "spoken"}:
                continue
            for j in range(m.start - 1, -1, -1):
                if clause[j] != clause[m.start] and words[j] not in _CLAUSE_WORDS:
                    break
                if words[j] in self._words.media:
                    break
                if (words[j],) in self._words.people or tuple(
                    words[max(0, j - 1) : j + 1]
                ) in self._words.people:
                    spoken.add(m.start)
                    break
        return spoken, idle

    def _utterance(self, words: list[str], titled: set[int]) -> str:
        """An unquoted first- or second-person line ('i'm gonna make him an offer he can't
        refuse'), unless the pronoun is the searcher's own ('i need', 'you can hear')."""
        if not any(w in self._words.strong_pronouns for w in words):
            return ""
        covered = [False] * len(words)
        for i in range(len(words)):
            for n in (4, 3, 2, 1):
                if i + n <= len(words) and tuple(words[i : i + n]) in self._words.frames:
                    for j in range(i, i + n):
                        covered[j] = True
                    break
        starter = next(
            (
                i
                for i in range(len(words))
                for n in (4, 3, 2)
                if tuple(words[i : i + n]) in self._words.starters
            ),
            None,
        )
        for i, word in enumerate(words):
            if i in titled:  # "singing You'll Never Walk Alone" names a song
                continue
            if word in self._words.strong_pronouns and (not covered[i] or starter is not None):
                start = starter if starter is not None else max(0, i - 1)
                content = [w for w in words[start:] if w not in _STOPWORDS]
                return " ".join(words[start : start + 6]) if content else ""
        return ""

    def _catalogue_frames(
        self, words: list[str], matches: list[_Match], named: bool
    ) -> list[tuple[str, float]]:
        """Catalogue facts said with a frame: 'videos by mkbhd', 'songs by adele' (a creator),
        'sting live in berlin', 'Yes roundabout live' (a live show)."""
        found: list[tuple[str, float]] = []
        names = {
            m.start
            for m in matches
            if tuple(words[m.start : m.start + m.length]) in self._name_keys
        }
        if named and len(words) > 1 and words[-1] == "live":
            found.append(("live performance", LIVE_SHOW_STRENGTH - 0.5))
        for i, word in enumerate(words[:-1]):
            if word == "by" and i > 0 and words[i - 1] in self._words.media:
                name = words[i + 1]
                if (i + 1) in names or name not in self._everyday:
                    found.append((f"creator '{name}'", CREATOR_STRENGTH))
            if (
                word == "live"
                and i > 0
                and words[i + 1] in {"in", "at", "from"}
                and i + 2 < len(words)
                and words[i - 1] not in self._words.pronouns | _NOT_PERFORMERS
            ):
                found.append((f"live show '{' '.join(words[i - 1 : i + 3])}'", LIVE_SHOW_STRENGTH))
        return found

    def _quiet_title_spans(self, words: list[str], capital: list[bool]) -> list[tuple[int, int]]:
        """Lower-case titles made of everyday words ('purple rain'), token spans; not a line
        with 'i' or 'you' in it ('i have a dream' is said, not only titled)."""
        spans: list[tuple[int, int]] = []
        i = 0
        while i < len(words):
            for n in self._quiet_lengths.get(words[i], ()):
                key = tuple(words[i : i + n])
                if (
                    key in self._quiet_titles
                    and not any(capital[i : i + n])
                    and not any(w in self._words.strong_pronouns for w in key)
                ):
                    spans.append((i, i + n))
                    i += n - 1
                    break
            i += 1
        return spans

    def _find_names(self, query: str) -> list[_Name]:
        """Case-sensitive names in the query, left to right, longest first, not overlapping,
        each standing alone (not part of a longer word)."""
        tokens = list(_RAW_WORD.finditer(query))
        chosen: list[_Name] = []
        end = -1
        for i, token in enumerate(tokens):
            if token.start() < end:
                continue
            heads: list[tuple[str, ...]] = [(token.group(0),)]
            if i + 1 < len(tokens):
                heads.insert(0, (token.group(0), tokens[i + 1].group(0)))
            for head in heads:
                found = self._name_at(query, token.start(), self._names_by_start.get(head, ()))
                if found is not None:
                    chosen.append(found)
                    end = found.end
                    break
        return chosen

    @staticmethod
    def _name_at(query: str, at: int, candidates: Iterable[tuple[str, int]]) -> _Name | None:
        for name, offset in candidates:
            start = at - offset
            stop = start + len(name)
            if (
                start >= 0
                and query.startswith(name, start)
                and not (start > 0 and _WORDLIKE.match(query, start - 1))
                and not (stop < len(query) and _WORDLIKE.match(query, stop))
            ):
                return _Name(name, start, stop)
        return None

    # -- decision --------------------------------------------------------------------------
    def route(self, query: str) -> RoutingDecision:
        evidence, hits = self._evidence(query)
        logits = [EVIDENCE_SCALE * e + a for e, a in zip(evidence, self._log_alpha, strict=True)]
        top = max(logits)
        exps = [math.exp(x - top) for x in logits]
        total = sum(exps)
        probabilities = [x / total for x in exps]
        rounded = _round_row(probabilities, self.round_step)
        decision_weights = {s: round(w, 4) for s, w in zip(self.signals, rounded, strict=True)}
        return RoutingDecision(
            weights=decision_weights, reasoning=_reasoning(decision_weights, hits)
        )

    def label_json(self, query: str) -> str:
        """The teacher's answer as model text (the assistant turn of a training record)."""
        return self.route(query).to_json()


@lru_cache(maxsize=65536)
def _tokens(raw: str) -> tuple[str, ...]:
    """The normalised words of one whitespace-separated piece of a query."""
    return tuple(t for t in normalise(raw).split(" ") if t)


def _quoted_spans(text: str) -> list[str]:
    return [a or b for a, b in _QUOTED.findall(text)]


def _round_row(probabilities: list[float], step: float) -> list[float]:
    """One row of student.round_to_grid in plain Python (the same largest-remainder rule),
    except that the most likely signal keeps a strict lead: rounding must not turn the
    teacher's first choice into a tie that the taxonomy order then breaks the other way."""
    units = round(1 / step)
    scaled = [p * units for p in probabilities]
    floored = [math.floor(x) for x in scaled]
    missing = units - sum(floored)
    order = sorted(range(len(scaled)), key=lambda k: -(scaled[k] - floored[k]))
    for k in order[:missing]:
        floored[k] += 1
    best = max(range(len(probabilities)), key=lambda k: (probabilities[k], -k))
    rivals = [k for k in range(len(floored)) if k != best and floored[k] >= floored[best]]
    if rivals and probabilities[best] > max(probabilities[k] for k in rivals):
        for k in rivals:
            floored[k] -= 1
            floored[best] += 1
    return [f / units for f in floored]


def _capitalised_runs(raw_words: list[str]) -> list[tuple[int, int]]:
    """Spans of raw words that look like a name or title: capitalised words (small connectors
    such as 'of' allowed inside), either after the first word or at least two words long.
    Ignored when the query is written in Title Case throughout."""
    bare = [w.strip(".,;:!?\"'()") for w in raw_words]
    capital = [b[:1].isupper() and b not in _NOT_NAMES for b in bare]
    if len(bare) > 3 and sum(capital) >= 0.8 * len(bare):
        return []
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(bare):
        if not capital[i]:
            i += 1
            continue
        j = i + 1
        while j < len(bare):
            if capital[j]:
                j += 1
            elif bare[j].lower() in _CONNECTORS and j + 1 < len(bare) and capital[j + 1]:
                j += 2
            else:
                break
        if i > 0 or j - i > 1:
            spans.append((i, j))
        i = j
    return spans


def _reasoning(weights: dict[str, float], hits: Iterable[CueHit]) -> str:
    by_signal: dict[str, list[str]] = defaultdict(list)
    hits = list(hits)
    for hit in sorted(hits, key=lambda h: -h.strength):
        if hit.strength > 0 and hit.phrase not in by_signal[hit.signal]:
            by_signal[hit.signal].append(hit.phrase)
    ordered = sorted(weights, key=lambda s: -weights[s])
    top = ordered[0]
    if not any(h.strength > 0 for h in hits):
        return f"No specific cues; default emphasis on {top}."
    parts = []
    for signal in ordered:
        cues = by_signal.get(signal)
        if cues and weights[signal] >= 0.15:
            parts.append(f"{signal} ({', '.join(cues[:3])})")
    lead = parts[0] if parts else top
    rest = f"; also {', '.join(parts[1:])}" if len(parts) > 1 else ""
    return f"Mostly {lead}{rest}."
