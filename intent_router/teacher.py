"""The local reference teacher: a deterministic, taxonomy-aware router.

It follows the production teacher prompt's guidelines (visual: appearance, objects, actions,
scenes, camera; audio: sounds, music, noise; transcription: spoken words, dialogue, narration,
quotes; metadata: names, titles, genres, dates, ratings, rights and other catalogue facts). Cues
come from a lexicon shipped as data, the taxonomy's own attributes and cue phrases, and a few
patterns (quotes, season/episode, years). Its reasoning names the cues it used.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

from intent_router.schema import RoutingDecision
from intent_router.taxonomy import Taxonomy
from intent_router.text import normalise, quoted_spans

ATTRIBUTE_STRENGTH = 2.5
EVIDENCE_SCALE = 0.5  # logits per unit of cue evidence
NEGATION_FACTOR = 0.3
SPEECH_SCOPE_FACTOR = 0.3
_STOPWORDS = {
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
}
_NEGATORS = {"without", "no", "not", "minus", "zero"}
_NEGATION_SKIP = {"any", "the", "a", "an", "background", "loud", "much"}
_CLAUSE_WORDS = {"while", "whereas", "then", "but", "with", "and", "as", "featuring", "plus"}
_CLAUSE_PUNCTUATION = (",", ";", ":", ".", "!", "?", "(", ")")
_NOT_NAMES = {"I", "I'll", "I'm", "I've", "I'd", "OK", "TV"}
SOUND_SOURCE_FACTOR = 0.4
SPOKEN_CONTENT_BOOST = 1.5
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
}
_RAW_WORD = re.compile(r"[\w']+")
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


@dataclass(frozen=True)
class CueHit:
    phrase: str
    signal: str
    strength: float


@cache
def _builtin_lexicon() -> dict[str, dict[str, float]]:
    raw = (resources.files("intent_router") / "data" / "cues.json").read_text("utf-8")
    data: dict[str, dict[str, float]] = json.loads(raw)
    return data


@cache
def _builtin_entities() -> tuple[str, ...]:
    raw = (resources.files("intent_router") / "data" / "vocabulary.json").read_text("utf-8")
    vocab: dict[str, list[str]] = json.loads(raw)
    extra = resources.files("intent_router") / "data" / "entities.json"
    names: list[str] = json.loads(extra.read_text("utf-8"))["names"] if extra.is_file() else []
    return tuple(
        vocab.get("person_names", [])
        + vocab.get("titles", [])
        + vocab.get("brands_and_teams", [])
        + names
    )


class ReferenceTeacher:
    """Deterministic teacher for a taxonomy. `route` is pure: same query, same answer."""

    def __init__(self, taxonomy: Taxonomy, round_step: float = 0.05) -> None:
        self.taxonomy = taxonomy
        self.signals = taxonomy.signal_names
        self.round_step = round_step
        lexicon: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
        case_sensitive: dict[str, dict[str, float]] = defaultdict(dict)

        def add(phrase: str, signal: str, strength: float, exact_case: bool = False) -> None:
            if exact_case:
                current = case_sensitive[phrase]
                current[signal] = max(current.get(signal, 0.0), strength)
                return
            key = tuple(normalise(phrase).split(" "))
            if key == ("",):
                return
            current = lexicon[key]
            current[signal] = max(current.get(signal, 0.0), strength)

        for signal, phrases in _builtin_lexicon().items():
            if signal in self.signals:
                for phrase, strength in phrases.items():
                    add(phrase, signal, float(strength))
        common_words = {k[0] for k in lexicon if len(k) == 1} | _STOPWORDS

        def looks_common(name: str) -> bool:
            words = normalise(name).split(" ")
            return len(words) == 1 or all(w in common_words for w in words)

        if "metadata" in self.signals:
            for entity in _builtin_entities():
                add(entity, "metadata", 3.0, exact_case=looks_common(entity))
        for spec in taxonomy.signals:
            for phrase in spec.cues:
                add(phrase, spec.name, 2.0)
        for attribute in taxonomy.attributes:
            for value in attribute.values:
                proper = value[:1].isupper() and looks_common(value)
                for signal, affinity in attribute.informs.items():
                    add(value, signal, ATTRIBUTE_STRENGTH * affinity, exact_case=proper)
        self._lexicon = dict(lexicon)
        self._case_sensitive = dict(case_sensitive)
        lengths: dict[str, set[int]] = defaultdict(set)
        for key in self._lexicon:
            lengths[key[0]].add(len(key))
        # Phrase lengths worth trying at a word, longest first (most words start no phrase).
        self._lengths = {w: tuple(sorted(n, reverse=True)) for w, n in lengths.items()}
        # Case-sensitive names, found by their first word (a dict look-up per query word) and
        # then confirmed with a small pattern each: one alternation of every name was the
        # slowest part of a query.
        self._names_by_first: dict[str, list[tuple[str, re.Pattern[str]]]] = defaultdict(list)
        for name in sorted(self._case_sensitive, key=lambda n: (-len(n), n)):
            first = _RAW_WORD.findall(name)
            if first:
                pattern = re.compile(r"(?<![\w'])" + re.escape(name) + r"(?![\w'])")
                self._names_by_first[first[0]].append((name, pattern))
        self._names_by_first = dict(self._names_by_first)
        self._log_alpha = [math.log(0.6 if s == "visual" else 0.4) for s in self.signals]

    # -- evidence --------------------------------------------------------------------------
    def evidence(self, query: str) -> tuple[np.ndarray, list[CueHit]]:
        """Evidence per signal (an array in taxonomy order) and the cues behind it."""
        totals, hits = self._evidence(query)
        return np.array(totals), hits

    def _evidence(self, query: str) -> tuple[list[float], list[CueHit]]:
        """Evidence per signal and the cues behind it.

        Lexicon phrases match longest-first. Their weight is reduced when negated ("without
        music"), when they sit inside spoken content (after a speech cue or in quotes), when they
        are part of a capitalised name or title ("Rain Man"), and when a visual noun is only the
        source of a sound ("dog barking", "sound of a train").
        """
        raw_words = query.split()
        words: list[str] = []
        owner: list[int] = []  # raw word index of each normalised word
        clause: list[int] = []  # clause number of each normalised word
        current_clause = 0
        for position, raw in enumerate(raw_words):
            tokens = [t for t in normalise(raw).split(" ") if t]
            if raw.startswith(_CLAUSE_PUNCTUATION) or (tokens and tokens[0] in _CLAUSE_WORDS):
                current_clause += 1
            for token in tokens:
                words.append(token)
                owner.append(position)
                clause.append(current_clause)
            if raw.endswith(_CLAUSE_PUNCTUATION):
                current_clause += 1
        index = {s: i for i, s in enumerate(self.signals)}
        hits: list[CueHit] = []
        evidence = [0.0] * len(self.signals)

        quoted_words = {w for span in quoted_spans(query) for w in normalise(span).split(" ")}
        runs = _capitalised_runs(raw_words)
        in_title = {p for start, end in runs for p in range(start, end)}

        matches: list[tuple[int, int, dict[str, float]]] = []
        i = 0
        while i < len(words):
            for n in self._lengths.get(words[i], ()):
                if i + n > len(words):
                    continue
                contributions = self._lexicon.get(tuple(words[i : i + n]))
                if contributions is not None:
                    matches.append((i, n, contributions))
                    i += n
                    break
            else:
                i += 1

        speech_openers = [
            i + n - 1
            for i, n, c in matches
            if c.get("transcription", 0) >= 2.5 and not self._negated(words, i)
        ]
        listen_openers = [
            i + n - 1 for i, n, c in matches if " ".join(words[i : i + n]) in _LISTEN_OPENERS
        ]

        def in_scope(position: int, openers: list[int]) -> bool:
            return any(o < position and clause[o] == clause[position] for o in openers)

        sound_at = [
            i
            for i, n, c in matches
            if c.get("audio", 0) >= 2.5 and c.get("visual", 0) < 2 and n == 1
        ]

        for i, n, contributions in matches:
            phrase = " ".join(words[i : i + n])
            negated = self._negated(words, i)
            spoken = words[i] in quoted_words or in_scope(i, speech_openers)
            titled = owner[i] in in_title and len(runs) > 0
            sound_source = in_scope(i, listen_openers) or any(
                0 < s - i <= 2 or (s < i and clause[s] == clause[i]) for s in sound_at
            )
            for signal, strength in contributions.items():
                factor = NEGATION_FACTOR if negated else 1.0
                if spoken and signal != "transcription":
                    factor *= SPEECH_SCOPE_FACTOR
                if titled and signal != "metadata":
                    factor *= SPEECH_SCOPE_FACTOR
                if sound_source and signal == "visual":
                    factor *= SOUND_SOURCE_FACTOR
                evidence[index[signal]] += strength * factor
                hits.append(CueHit(phrase, signal, strength * factor))

        for found in self._find_names(query):
            name = found.group(0)
            followed_by_number = query[found.end() :].lstrip()[:1].isdigit()
            if found.start() == 0 and " " not in name and not followed_by_number:
                continue  # a lone common word that opens the query is just capitalised
            for signal, strength in self._case_sensitive[name].items():
                evidence[index[signal]] += strength
                hits.append(CueHit(name, signal, strength))
        if "transcription" in index:
            t = index["transcription"]
            for span in quoted_spans(query):
                evidence[t] += 3.5
                hits.append(CueHit(f'"{span}"', "transcription", 3.5))
            for opener in speech_openers:
                if opener + 1 < len(words) and clause[opener + 1] == clause[opener]:
                    evidence[t] += SPOKEN_CONTENT_BOOST
                    hits.append(CueHit("spoken content", "transcription", SPOKEN_CONTENT_BOOST))
        if "metadata" in index:
            m = index["metadata"]
            for pattern, label in _METADATA_PATTERNS:
                for found in pattern.finditer(query):
                    evidence[m] += 3.0
                    hits.append(CueHit(f"{label} '{found.group(0)}'", "metadata", 3.0))
            known = {h.phrase.lower() for h in hits if h.signal == "metadata"}
            for start, end in runs:
                run = " ".join(raw_words[start:end]).strip(".,;:!?\"'()")
                if run.lower() not in known:
                    strength = 2.5 if end - start > 1 else 1.2
                    evidence[m] += strength
                    hits.append(CueHit(f"name '{run}'", "metadata", strength))
        return evidence, hits

    def _find_names(self, query: str) -> list[re.Match[str]]:
        """Case-sensitive names in the query, left to right, longest first, not overlapping."""
        found: list[re.Match[str]] = []
        for word in dict.fromkeys(_RAW_WORD.findall(query)):
            for _, pattern in self._names_by_first.get(word, ()):
                found.extend(pattern.finditer(query))
        found.sort(key=lambda m: (m.start(), -len(m.group(0))))
        chosen: list[re.Match[str]] = []
        end = -1
        for match in found:
            if match.start() >= end:
                chosen.append(match)
                end = match.end()
        return chosen

    @staticmethod
    def _negated(words: list[str], i: int) -> bool:
        window = [w for w in words[max(0, i - 4) : i] if w not in _NEGATION_SKIP]
        return any(w in _NEGATORS for w in window[-2:])

    # -- decision --------------------------------------------------------------------------
    def route(self, query: str) -> RoutingDecision:
        evidence, hits = self._evidence(query)
        logits = [EVIDENCE_SCALE * e + a for e, a in zip(evidence, self._log_alpha, strict=True)]
        top = max(logits)
        exps = [math.exp(x - top) for x in logits]
        total = sum(exps)
        rounded = _round_row([x / total for x in exps], self.round_step)
        decision_weights = {s: round(w, 4) for s, w in zip(self.signals, rounded, strict=True)}
        return RoutingDecision(
            weights=decision_weights, reasoning=_reasoning(decision_weights, hits)
        )

    def label_json(self, query: str) -> str:
        """The teacher's answer as model text (the assistant turn of a training record)."""
        return self.route(query).to_json()


def _round_row(probabilities: list[float], step: float) -> list[float]:
    """One row of student.round_to_grid in plain Python (the same largest-remainder rule)."""
    units = round(1 / step)
    scaled = [p * units for p in probabilities]
    floored = [math.floor(x) for x in scaled]
    missing = units - sum(floored)
    order = sorted(range(len(scaled)), key=lambda k: -(scaled[k] - floored[k]))
    for k in order[:missing]:
        floored[k] += 1
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


def _reasoning(weights: dict[str, float], hits: list[CueHit]) -> str:
    by_signal: dict[str, list[str]] = defaultdict(list)
    for hit in sorted(hits, key=lambda h: -h.strength):
        if hit.phrase not in by_signal[hit.signal]:
            by_signal[hit.signal].append(hit.phrase)
    ordered = sorted(weights, key=lambda s: -weights[s])
    top = ordered[0]
    if not hits:
        return f"No specific cues; default emphasis on {top}."
    parts = []
    for signal in ordered:
        cues = by_signal.get(signal)
        if cues and weights[signal] >= 0.15:
            parts.append(f"{signal} ({', '.join(cues[:3])})")
    lead = parts[0] if parts else top
    rest = f"; also {', '.join(parts[1:])}" if len(parts) > 1 else ""
    return f"Mostly {lead}{rest}."
