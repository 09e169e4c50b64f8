"""The local teacher's knowledge of everyday video-search language, one mechanism at a time.

Each test pairs the behaviour with a control query that must not change, so a rule that simply
pushed everything towards one signal would fail.
"""

from __future__ import annotations

import copy
import re
from importlib import resources
from typing import Any

import pytest
import yaml

from intent_router.metrics import top_signal
from intent_router.taxonomy import Taxonomy, builtin_taxonomy, taxonomy_from_mapping
from intent_router.teacher import ReferenceTeacher, inflections
from intent_router.wordforms import TypoIndex, closest_form, looks_like_typo, stem

SIGNALS = ("visual", "audio", "transcription", "metadata")
STOPWORDS = {"the", "a", "an", "of", "in", "on", "at", "to", "and", "or", "for", "with", "by"}


@pytest.fixture(scope="module")
def teacher() -> ReferenceTeacher:
    return ReferenceTeacher(builtin_taxonomy())


def top(teacher: ReferenceTeacher, query: str) -> str:
    return top_signal(teacher.route(query).weights, teacher.signals)


def assert_tops(teacher: ReferenceTeacher, cases: list[tuple[str, str]]) -> None:
    wrong = [(q, expected, top(teacher, q)) for q, expected in cases if top(teacher, q) != expected]
    assert wrong == []


# -- word forms ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "forms",
    [
        ("creak", "creaks", "creaking", "creaked"),
        ("jangle", "jangles", "jangling", "jangled"),
        ("tap", "taps", "tapping", "tapped"),
        ("cry", "cries", "crying", "cried"),
        ("buzz", "buzzes", "buzzing", "buzzed"),
        ("whistle", "whistles", "whistling", "whistled"),
        ("door", "doors", "door's"),
    ],
)
def test_inflected_forms_share_a_stem(forms: tuple[str, ...]) -> None:
    assert len({stem(f) for f in forms}) == 1


def test_inflections_of_a_verb() -> None:
    assert inflections("hoot") == {"s": "hoots", "ing": "hooting", "ed": "hooted"}
    assert inflections("tap")["ing"] == "tapping"
    assert inflections("jangle")["ing"] == "jangling"
    assert inflections("cry")["s"] == "cries"
    assert inflections("say")["irregular0"] == "said"
    assert inflections("yell at")["ing"] == "yelling at"


def test_a_plain_word_never_stands_for_a_verb_form() -> None:
    # "crows" are birds (crow), not the sound of crowing; "hooted" may stand for "hooting".
    assert closest_form("crows", ["crowing", "crow"]) == "crow"
    assert closest_form("crows", ["crowing"]) is None
    assert closest_form("hooted", ["hooting", "hoot"]) == "hooting"


@pytest.mark.parametrize(
    "query",
    [
        "doors creaking in an old house",
        "a door creaks open",
        "the gate creaked in the wind",
        "keys jangling",
        "a kettle whistles on the stove",
        "the faucet dripped all night",
    ],
)
def test_sound_verbs_count_in_every_inflection(teacher: ReferenceTeacher, query: str) -> None:
    assert top(teacher, query) == "audio"


def test_a_noun_that_only_looks_like_a_sound_verb_stays_visual(teacher: ReferenceTeacher) -> None:
    assert top(teacher, "crows sitting on a fence") == "visual"
    assert top(teacher, "drone flying low over a lake") == "visual"


# -- typos -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("thunderstrom sounds for sleeping", "audio"),
        ("speach about climate change", "transcription"),
        ("interveiw with a holocaust survivor", "transcription"),
        ("ambulence siren", "audio"),
        ("distorted electric guitarr solo", "audio"),
    ],
)
def test_typos_of_lexicon_words_are_understood(
    teacher: ReferenceTeacher, query: str, expected: str
) -> None:
    assert top(teacher, query) == expected


def test_a_typo_fix_is_named_in_the_reasoning(teacher: ReferenceTeacher) -> None:
    assert "thunderstorm" in teacher.route("thunderstrom sounds for sleeping").reasoning


def test_real_words_and_names_are_not_corrected(teacher: ReferenceTeacher) -> None:
    # one edit from 'warble', 'leather', 'glowing', 'blender', 'turing' - but real words
    for word in ("marble", "weather", "growing", "bender", "turning", "spilling", "budget"):
        assert teacher._spelling(word) == word
    _, hits = teacher.evidence("Speach Johnson walking his dog")  # a capitalised name
    assert all(hit.phrase != "speech" for hit in hits)


def test_typo_rules() -> None:
    assert looks_like_typo("speach", "speech")  # vowel for vowel
    assert looks_like_typo("thunderstrom", "thunderstorm")  # two letters swapped
    assert looks_like_typo("guitarr", "guitar")  # a doubled letter at the end
    assert not looks_like_typo("marble", "warble")  # the first letters must be right
    assert not looks_like_typo("budget", "budge")  # a letter dropped at the end
    assert not looks_like_typo("spilling", "spieling")  # a consonant for a vowel
    index = TypoIndex(["thunderstorm", "interview", "whistling"])
    assert index.candidates("interveiw") == ["interview"]
    assert index.candidates("whisling") == ["whistling"]
    assert index.candidates("zzzzzzzz") == []


# -- sound sources ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "control"),
    [
        ("an owl hooting in the forest at night", "an owl sitting in the forest at night"),
        ("rooster crowing at dawn on a farm", "rooster standing at dawn on a farm"),
        ("children laughing on a playground", "children running on a playground"),
        ("seagulls and harbour ambience", "seagulls and harbour"),
        ("sound of a train passing a station", "a train passing a station"),
    ],
)
def test_a_sound_makes_its_noun_a_sound_source(
    teacher: ReferenceTeacher, query: str, control: str
) -> None:
    assert top(teacher, query) == "audio"
    assert top(teacher, control) == "visual"


def test_a_voice_described_by_how_it_sounds_is_audio(teacher: ReferenceTeacher) -> None:
    assert top(teacher, "raspy voice singing the blues") == "audio"
    assert top(teacher, "scary whispering voice") == "audio"
    assert top(teacher, "a voice saying we will rebuild") == "transcription"


# -- speech ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "pastor preaching about forgiveness",
        "nutritionist debunking myths about carbs",
        "hockey coach yelling at the players",
        "a radio phone-in about housing prices",
        "keynote on the future of batteries",
        "an earnings call about the third quarter",
        "town hall q&a with the mayor",
        "eulogy for a firefighter",
        "toast at the rehearsal dinner",
        "professor defines entropy as disorder",
        "how does he explain the plot twist",
        "lawyer testifies about the contract",
    ],
)
def test_speech_acts_and_spoken_formats(teacher: ReferenceTeacher, query: str) -> None:
    assert top(teacher, query) == "transcription"


def test_a_weak_speech_verb_is_speech_only_when_a_speaker_does_it(
    teacher: ReferenceTeacher,
) -> None:
    assert top(teacher, "realtor pitching the house as a fixer upper") == "transcription"
    assert top(teacher, "pitcher pitching a fastball in slow motion") == "visual"


def test_after_a_speech_cue_the_words_are_spoken_content(teacher: ReferenceTeacher) -> None:
    assert top(teacher, "cooking demo where she says salt the pasta water like the sea") == (
        "transcription"
    )
    assert top(teacher, "cooking demo with pasta water and the sea") == "visual"


def test_a_plural_spoken_format_is_a_catalogue_shelf(teacher: ReferenceTeacher) -> None:
    assert top(teacher, "sermons in portuguese") == "metadata"
    assert top(teacher, "lectures longer than 2 hours") == "metadata"
    assert top(teacher, "a lecture on quantum mechanics") == "transcription"


@pytest.mark.parametrize(
    "query",
    [
        "may the force be with you",
        "i'm gonna make him an offer he can't refuse",
        "you shall not pass",
        "you can't handle the truth",
        "i love you three thousand",
        "we're gonna need a bigger boat",
    ],
)
def test_an_unquoted_first_or_second_person_line_is_an_utterance(
    teacher: ReferenceTeacher, query: str
) -> None:
    assert top(teacher, query) == "transcription"
    assert "line '" in teacher.route(query).reasoning


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("i need drone footage of a beach at sunset", "visual"),
        ("where you can hear rain on the roof", "audio"),
        ("show me cats jumping into boxes", "visual"),
        ("i remember a clip with church bells ringing", "audio"),
        ("my kid wants the christmas special of bluey", "metadata"),
    ],
)
def test_the_searchers_own_words_are_not_an_utterance(
    teacher: ReferenceTeacher, query: str, expected: str
) -> None:
    assert top(teacher, query) == expected
    assert "line '" not in teacher.route(query).reasoning


def test_quotes_with_apostrophes_inside_are_quotes(teacher: ReferenceTeacher) -> None:
    assert (
        '"you can\'t handle the truth"' in teacher.route("'you can't handle the truth'").reasoning
    )


# -- catalogue facts -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "documentaries in spanish",
        "french films with english subtitles",
        "clips not in english",
        "anime dubbed in english",
        "bbc news in arabic",
        "korean dramas with english subs",
    ],
)
def test_languages_of_a_video_are_catalogue_facts(teacher: ReferenceTeacher, query: str) -> None:
    assert top(teacher, query) == "metadata"


def test_a_language_a_person_speaks_is_speech_and_a_shirt_has_no_language(
    teacher: ReferenceTeacher,
) -> None:
    assert top(teacher, "somebody ordering coffee in italian") == "transcription"
    _, hits = teacher.evidence("guy in a hawaiian shirt at a barbecue")
    assert not any(h.phrase == "hawaiian" for h in hits)


@pytest.mark.parametrize(
    "query",
    [
        "nba finals 2016 highlights",
        "world cup 2014 final",
        "official video by coldplay",
        "unboxing videos by mkbhd",
        "sting live in berlin",
        "cartoons for kids under 5",
        "movies that arent rated r",
        "nat geo wild",
        "who directed the movie with the blue aliens",
        "harry potter behind the scenes",
    ],
)
def test_catalogue_facts(teacher: ReferenceTeacher, query: str) -> None:
    assert top(teacher, query) == "metadata"


@pytest.mark.parametrize("query", ["Up", "Cars", "Friends", "Jaws", "the office", "heat"])
def test_a_query_that_is_a_known_title_is_a_catalogue_look_up(
    teacher: ReferenceTeacher, query: str
) -> None:
    assert top(teacher, query) == "metadata"


@pytest.mark.parametrize(
    "query",
    ["cars driving in the rain", "up close shot of a bee", "friends hugging at an airport"],
)
def test_a_title_word_inside_a_description_is_just_a_word(
    teacher: ReferenceTeacher, query: str
) -> None:
    assert top(teacher, query) == "visual"


def test_taxonomy_values_are_the_strongest_cues() -> None:
    text = (resources.files("intent_router") / "data" / "taxonomies" / "default.yaml").read_text(
        "utf-8"
    )
    data: dict[str, Any] = copy.deepcopy(yaml.safe_load(text))
    data["name"] = "with-a-new-title"
    for attribute in data["attributes"]:
        if attribute["name"] == "title":
            attribute["values"].append("Paper Lanterns Of Maple Street")
            attribute["values"].append("Smoke")
    taxonomy: Taxonomy = taxonomy_from_mapping(data)
    teacher = ReferenceTeacher(taxonomy)

    assert top(teacher, "Smoke") == "metadata"
    assert top(teacher, "paper lanterns of maple street") == "metadata"
    assert top(teacher, "smoke rising from a chimney") == "visual"
    assert top(ReferenceTeacher(builtin_taxonomy()), "paper lanterns of maple street") != "metadata"


# -- negation --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("piano music without vocals", "audio"),
        ("interview with no background noise", "transcription"),
        ("rain on a window at night, no thunder", "visual"),
        ("cat videos with no music added", "visual"),
        ("drone video of a vineyard that doesnt have that epic music on it", "visual"),
        ("ambient forest sounds without any birds chirping or insects", "audio"),
        ("stand up comedy without the laugh track", "transcription"),
        ("kids cartoon with no violence", "metadata"),
    ],
)
def test_negation_removes_what_is_excluded(
    teacher: ReferenceTeacher, query: str, expected: str
) -> None:
    assert top(teacher, query) == expected


def test_negation_still_lowers_the_negated_signal(teacher: ReferenceTeacher) -> None:
    with_music = teacher.route("city skyline at night with music").weights["audio"]
    without = teacher.route("city skyline at night without music").weights["audio"]
    assert without < with_music


def test_an_excluded_catalogue_fact_is_still_a_catalogue_filter(teacher: ReferenceTeacher) -> None:
    _, hits = teacher.evidence("clips not in english")
    assert any(h.signal == "metadata" and h.phrase == "english" and h.strength > 0 for h in hits)


# -- explanations and speed ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "an owl hooting in the forest at night",
        "thunderstrom sounds for sleeping",
        "may the force be with you",
        "documentaries in spanish",
        "Up",
    ],
)
def test_reasoning_names_content_cues(teacher: ReferenceTeacher, query: str) -> None:
    reasoning = teacher.route(query).reasoning
    cues = re.findall(r"\(([^)]*)\)", reasoning)
    assert cues
    for group in cues:
        for cue in group.split(", "):
            assert cue.lower() not in STOPWORDS, reasoning


def test_the_teacher_is_deterministic_across_instances() -> None:
    queries = ["doors creaking", "speach about hope", "you shall not pass", "Up", "no music"]
    first = ReferenceTeacher(builtin_taxonomy())
    second = ReferenceTeacher(builtin_taxonomy())
    assert [first.label_json(q) for q in queries] == [second.label_json(q) for q in queries]
    assert [first.label_json(q) for q in queries] == [first.label_json(q) for q in queries]


def test_hyphenated_phrases_match_written_apart_or_together(teacher: ReferenceTeacher) -> None:
    for query in ("radio call-in about potholes", "radio call in about potholes"):
        assert top(teacher, query) == "transcription", query
    _, hits = teacher.evidence("royalty free stock clips")
    assert any(h.phrase == "royalty free" and h.signal == "metadata" for h in hits)


def test_a_one_word_channel_name_is_found_in_any_case_and_written_apart(
    teacher: ReferenceTeacher,
) -> None:
    assert top(teacher, "mrbeast videos") == "metadata"
    assert top(teacher, "mr beast videos") == "metadata"
    # a camel-case name that is a word in lower case stays case-sensitive
    _, hits = teacher.evidence("a boat on a lake")
    assert not any(h.signal == "metadata" for h in hits)
