"""Text normalisation shared by the teacher, the student and dedupe."""

from __future__ import annotations

import re
import unicodedata

MAX_QUERY_CHARS = 2_000
_NON_WORD = re.compile(r"[^\w'\- ]+", re.UNICODE)
_SPACES = re.compile(r"\s+")
_QUOTED = re.compile(r"[\"“”]([^\"“”]{3,})[\"“”]|(?<!\w)['‘]([^'‘’]{3,}?)['’](?!\w)")


def normalise(text: str) -> str:
    """Lowercase, NFKC, punctuation (except ' and -) to spaces, single spaces."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.replace("’", "'")
    text = _NON_WORD.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def quoted_spans(text: str) -> list[str]:
    """Text inside straight or curly quotes (at least three characters)."""
    return [a or b for a, b in _QUOTED.findall(text)]


def check_query(query: object) -> str:
    """Return a cleaned query or raise ValueError naming the problem."""
    if not isinstance(query, str):
        raise ValueError(f"query must be text, got {type(query).__name__}")
    cleaned = query.strip()
    if not cleaned:
        raise ValueError("query is empty")
    if len(cleaned) > MAX_QUERY_CHARS:
        raise ValueError(f"query is {len(cleaned):,} characters; the limit is {MAX_QUERY_CHARS:,}")
    if not any(ch.isalnum() for ch in cleaned):
        raise ValueError("query has no letters or digits")
    return cleaned
