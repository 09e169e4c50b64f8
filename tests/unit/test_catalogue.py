"""Shape checks for the curated catalogue of names (intent_router/data/catalogue.json)."""

import json
from pathlib import Path

import pytest

CATALOGUE = Path(__file__).resolve().parents[2] / "intent_router" / "data" / "catalogue.json"
KINDS = {
    "films",
    "tv_shows",
    "songs_and_albums",
    "musicians_and_bands",
    "actors_and_directors",
    "athletes",
    "public_figures",
    "creators_and_channels",
    "franchises",
    "sports_teams",
    "leagues_and_tournaments",
    "events",
    "brands_and_products",
}


@pytest.fixture(scope="module")
def catalogue() -> dict:
    return json.loads(CATALOGUE.read_text(encoding="utf-8"))


def test_file_parses_with_expected_shape(catalogue: dict) -> None:
    assert catalogue["version"] == 1
    assert set(catalogue["kinds"]) == KINDS
    assert isinstance(catalogue["common_word_names"], list)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_kind_is_non_empty_list_of_strings(catalogue: dict, kind: str) -> None:
    names = catalogue["kinds"][kind]
    assert names, kind
    assert all(isinstance(name, str) and name for name in names), kind


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_no_duplicates_within_kind_case_insensitive(catalogue: dict, kind: str) -> None:
    lowered = [name.casefold() for name in catalogue["kinds"][kind]]
    dupes = sorted({name for name in lowered if lowered.count(name) > 1})
    assert not dupes, (kind, dupes)


def test_no_leading_or_trailing_spaces(catalogue: dict) -> None:
    bad = [
        (kind, name)
        for kind, names in catalogue["kinds"].items()
        for name in names
        if name != name.strip()
    ]
    bad += [("common_word_names", n) for n in catalogue["common_word_names"] if n != n.strip()]
    assert not bad


def test_total_size(catalogue: dict) -> None:
    assert sum(len(names) for names in catalogue["kinds"].values()) >= 3000


def test_common_word_names_are_names_in_the_file(catalogue: dict) -> None:
    every = {name for names in catalogue["kinds"].values() for name in names}
    common = catalogue["common_word_names"]
    assert len(common) == len(set(common))
    assert set(common) <= every
    for example in (
        "Up",
        "Cars",
        "Friends",
        "Heat",
        "Big",
        "Her",
        "Yes",
        "Muse",
        "Prince",
        "The Office",
    ):
        assert example in common, example


def test_no_name_is_only_a_stop_word(catalogue: dict) -> None:
    stop = {
        "a",
        "an",
        "the",
        "of",
        "and",
        "or",
        "in",
        "on",
        "at",
        "to",
        "for",
        "by",
        "with",
        "is",
        "it",
    }
    bad = [n for names in catalogue["kinds"].values() for n in names if n.casefold() in stop]
    assert not bad
