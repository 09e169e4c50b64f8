"""Text normalisation shared by the teacher, the student and dedupe."""

from __future__ import annotations

import re
import unicodedata

MAX_QUERY_CHARS = 2_000
_NON_WORD = re.compile(r"[^\w'\- ]+", re.UNICODE)
_SPACES = re.compile(r"\s+")
# C0/C1 controls (NUL, ESC of ANSI sequences, DEL, ...), line/paragraph separators and the bidi
# embedding/override/isolate characters that can make a printed query lie about its content.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_QUOTED = re.compile(r"[\"“”]([^\"“”]{3,})[\"“”]|(?<!\w)['‘]([^'‘’]{3,}?)['’](?!\w)")


# Function words that never explain a routing decision on their own.
STOPWORDS = frozenset(
    (  # noqa: SIM905 - one readable block
        "a an the of in on at to and or for with from by as into onto over under about is are "
        "was were be been being it its this that these those there here who whom whose which "
        "what when where why how i me my we us our you your he him his she her they them their "
        "some any all no not just very so too can could will would should do does did has have "
        "had up out off than then also only like one get got if but while every each after "
        "before might may must there's i'm it's that's don't can't isn't i've i'd let's "
        "looking doing use using want need find anyone someone something thing things"
    ).split()
)


def is_content_word(word: str) -> bool:
    """A normalised word that can carry meaning: not a stop word, not a lone digit or symbol."""
    return len(word) > 1 and word not in STOPWORDS and not word.isdigit()


def normalise(text: str) -> str:
    """Lowercase, NFKC, punctuation (except ' and -) to spaces, single spaces."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.replace("’", "'")
    text = _NON_WORD.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


# ASCII fast path of `normalise(...).split(" ")`: lowercase, every character that is not a
# letter, digit, '_', "'" or '-' becomes a space.
_ASCII_WORD_TABLE = str.maketrans(
    {chr(c): (chr(c).lower() if chr(c).isalnum() or chr(c) in "_'-" else " ") for c in range(128)}
)


def words_of(text: str) -> list[str]:
    """The normalised words of a text: `normalise(text).split(" ")`, faster for ASCII."""
    if text.isascii():
        words = text.translate(_ASCII_WORD_TABLE).split()
        return words or [""]
    return normalise(text).split(" ")


def quoted_spans(text: str) -> list[str]:
    """Text inside straight or curly quotes (at least three characters)."""
    return [a or b for a, b in _QUOTED.findall(text)]


def has_control_characters(text: str) -> bool:
    """True when text holds a control character (tab excluded) or a lone surrogate."""
    return bool(_CONTROL.search(text) or _SURROGATE.search(text))


def strip_controls(text: str) -> str:
    """Text with every control character (tab included) and lone surrogate made a space."""
    return _SURROGATE.sub(" ", _CONTROL.sub(" ", text.replace("\t", " ")))


def escape_controls(text: str) -> str:
    """Text safe to print on a terminal: control characters as \\xNN / \\uNNNN escapes."""
    return _SURROGATE.sub(
        lambda m: f"\\u{ord(m.group()):04x}",
        _CONTROL.sub(lambda m: repr(m.group())[1:-1], text.replace("\t", "\\t")),
    )


def check_query(query: object) -> str:
    """Return a cleaned query (tabs become spaces) or raise ValueError naming the problem."""
    if not isinstance(query, str):
        raise ValueError(f"query must be text, got {type(query).__name__}")
    if _SURROGATE.search(query):
        raise ValueError("query is not valid UTF-8")
    cleaned = query.strip()
    control = _CONTROL.search(cleaned)
    if control:
        raise ValueError(
            f"query contains control characters (U+{ord(control.group()):04X} at position "
            f"{control.start() + 1})"
        )
    cleaned = cleaned.replace("\t", " ")
    if not cleaned:
        raise ValueError("query is empty")
    if len(cleaned) > MAX_QUERY_CHARS:
        raise ValueError(f"query is {len(cleaned):,} characters; the limit is {MAX_QUERY_CHARS:,}")
    if not any(ch.isalnum() for ch in cleaned):
        raise ValueError("query has no letters or digits")
    return cleaned
