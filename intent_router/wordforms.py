"""Word forms for the local teacher: a light stemmer and a one-edit typo index.

The stemmer is not linguistics; it only has to send the forms people type (-s, -es, -ies, -ing,
-ed, doubled consonants, a dropped -e, 's) of one word to one key, so that a lexicon listing
"creaking" also knows "creaks" and "creaked", and "door creaking" also matches "doors creaking".

The typo index finds the lexicon words one edit (insertion, deletion, substitution or swap of
two neighbouring letters) away from an unknown word, SymSpell-style: every word and every word
with one letter deleted is a key, built once, so a look-up is a handful of dict reads.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from functools import lru_cache

_VOWELS = set("aeiou")
# Endings, each with the inflection class it marks (see suffix_class).
_CLASSES = ("base", "s", "ing", "ed")


def _undouble(word: str) -> str:
    """'tapp' -> 'tap', 'chirpp' -> 'chirp'; keeps ll, ss, zz, ff ('yell', 'buzz', 'kiss')."""
    if len(word) >= 3 and word[-1] == word[-2] and word[-1] not in _VOWELS | set("lszfy"):
        return word[:-1]
    return word


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A key shared by the inflected forms of a word (not a real word itself)."""
    if word.endswith("'s"):
        word = word[:-2]
    elif word.endswith("s'"):
        word = word[:-1]
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 3 and (word.endswith(("ches", "shes", "xes", "zzes", "sses"))):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is", "'")):
        word = word[:-1]
    if len(word) > 5 and word.endswith("ing"):
        word = _undouble(word[:-3])
    elif len(word) > 4 and word.endswith("ied"):
        word = word[:-3] + "y"
    elif len(word) > 4 and word.endswith("ed") and not word.endswith("eed"):
        word = _undouble(word[:-2])
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    if len(word) > 2 and word.endswith("y"):
        word = word[:-1] + "i"
    return word


def suffix_class(word: str) -> str:
    """Which inflection a word looks like: 'ing', 'ed', 's' or 'base'."""
    if len(word) > 5 and word.endswith("ing"):
        return "ing"
    if len(word) > 4 and word.endswith("ed") and not word.endswith("eed"):
        return "ed"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return "s"
    return "base"


# When an unknown word shares a stem with several lexicon words, the one closest in form wins:
# "crows" -> "crow" (the bird) before "crowing" (the sound); "hooted" -> "hooting".
_PREFERENCE = {
    "ing": ("ing", "ed", "s", "base"),
    "ed": ("ed", "ing", "base", "s"),
    "s": ("s", "base", "ing", "ed"),
    "base": ("base", "s", "ing", "ed"),
}


def closest_form(word: str, forms: Iterable[str]) -> str | None:
    """The form (of one stem) that best stands in for `word`; ties go alphabetically.

    A plain or plural word never stands for a verb form: "crows" is not "crowing", "low" is
    not "lowing". A verb form may stand for any form ("hooted" -> "hooting", "jangling" ->
    "jangle")."""
    kind = suffix_class(word)
    order = _PREFERENCE[kind]
    allowed = order if kind in ("ing", "ed") else ("s", "base")
    ranked = sorted(
        (f for f in forms if suffix_class(f) in allowed),
        key=lambda f: (order.index(suffix_class(f)), len(f), f),
    )
    return ranked[0] if ranked else None


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


_VOWEL_LIKE = set("aeiouy")
_SOUND_ALIKE = {frozenset("cs"), frozenset("ck"), frozenset("sz"), frozenset("iy")}
TYPO_SAFE_PREFIX = 2
MIN_TYPO_WORD = 6


def edit_distance_at_most_one(a: str, b: str) -> bool:
    """Optimal string alignment distance <= 1 (a swap of two neighbours counts as one edit)."""
    return a == b or typo_edit(a, b) is not None


def typo_edit(a: str, b: str) -> tuple[str, int] | None:
    """The one edit turning `a` into `b` as (kind, position), or None if there is not one."""
    la, lb = len(a), len(b)
    if a == b or abs(la - lb) > 1:
        return None
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return ("substitute", diff[0])
        if (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        ):
            return ("swap", diff[0])
        return None
    short, long_ = (a, b) if la < lb else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    if short[i:] != long_[i + 1 :]:
        return None
    # The position of a doubled letter is ambiguous ('foootage'): take the last one.
    while i + 1 < len(long_) and long_[i + 1] == long_[i]:
        i += 1
    return ("insert" if la < lb else "delete", i)


def looks_like_typo(typed: str, word: str) -> bool:
    """Whether `typed` reads as a slip for `word`, not as another real word: the first two
    letters are right, and a changed letter is a vowel for a vowel or a sound-alike ('speach',
    'exersise'); dropped, doubled and swapped letters anywhere after that ('thundr',
    'guitarr', 'interveiw'). 'marble' is not 'warble', 'growing' is not 'glowing'."""
    edit = typo_edit(typed, word)
    if edit is None or min(len(typed), len(word)) < MIN_TYPO_WORD:
        return False
    kind, position = edit
    if position < TYPO_SAFE_PREFIX:
        return False
    longer = word if kind == "insert" else typed
    if kind in ("insert", "delete") and position >= len(longer) - 1:
        # A letter missing or added at the very end makes other words ('budge' -> 'budget',
        # 'thrown' -> 'throw'); only a doubled letter there is a slip ('guitarr', 'waterfal').
        return longer[-1] == longer[-2]
    if kind == "substitute":
        x, y = typed[position], word[position]
        return (x in _VOWEL_LIKE and y in _VOWEL_LIKE) or frozenset((x, y)) in _SOUND_ALIKE
    return True


class TypoIndex:
    """Lexicon words reachable from a misspelling by one edit."""

    def __init__(self, words: Iterable[str], min_length: int = 4) -> None:
        index: dict[str, set[str]] = defaultdict(set)
        for word in words:
            if len(word) < min_length or not word.isalpha():
                continue
            index[word].add(word)
            for deleted in _deletes(word):
                index[deleted].add(word)
        self._index = {k: tuple(sorted(v)) for k, v in index.items()}

    def candidates(self, word: str) -> list[str]:
        """Words within one edit, best first: same first letter, same length, then longer."""
        found: set[str] = set(self._index.get(word, ()))
        for deleted in _deletes(word):
            found.update(self._index.get(deleted, ()))
        close = [w for w in found if w != word and looks_like_typo(word, w)]
        return sorted(close, key=lambda w: (w[0] != word[0], len(w) != len(word), -len(w), w))
