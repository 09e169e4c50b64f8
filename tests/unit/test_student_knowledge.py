"""What the student knows: the prior for queries with nothing it learned, content-word
reasoning, the single-query fast path, and artifacts of the previous feature version."""

from __future__ import annotations

import io
import json
import random
import re
import string

import numpy as np
import pytest

from intent_router.backends.local import student_decision
from intent_router.student import FEATURE_VERSION, HashedNgramStudent
from intent_router.taxonomy import builtin_taxonomy
from intent_router.teacher import ReferenceTeacher
from intent_router.text import STOPWORDS, normalise, words_of

SIGNALS = builtin_taxonomy().signal_names
QUERIES = [
    "sound of rain on a tin roof",
    "dog barking in the distance",
    "footage of a drone flying over a beach",
    "close-up of a red car in the snow",
    "interview where she explains her new album",
    "speech about the economy",
    "Breaking Bad season 2 episode 3",
    "Taylor Swift documentary from 2020",
] * 4


@pytest.fixture(scope="module")
def student() -> HashedNgramStudent:
    teacher = ReferenceTeacher(builtin_taxonomy())
    labels = np.array([[teacher.route(q).weights[s] for s in SIGNALS] for q in QUERIES])
    model = HashedNgramStudent(SIGNALS, n_buckets=2**16)  # few collisions
    model.fit(QUERIES, labels, max_iterations=100)
    return model


def test_a_query_with_no_known_word_gets_the_training_prior(student: HashedNgramStudent) -> None:
    assert student.prior is not None
    assert not student.informed("zxqv plorf")
    assert student.answers_prior("zxqv plorf")
    assert np.allclose(student.predict_proba(["zxqv plorf"])[0], student.prior)
    assert "No cue it knows" in student_decision(student, "zxqv plorf").reasoning


def test_a_known_word_a_quote_or_a_name_makes_a_query_informed(
    student: HashedNgramStudent,
) -> None:
    assert student.informed("barking")
    assert student.informed("barked")  # a piece of a known word ("<bark")
    assert student.informed('someone saying "zxqv plorf"')
    assert student.informed("clips with Zorblax Quint")
    assert not student.answers_prior("dog barking")


def test_single_query_answers_match_the_batch_path(student: HashedNgramStudent) -> None:
    queries = ["sound of rain", "zxqv plorf", "Taylor Swift speech", "a drone over a beach"]
    batch = student.predict_proba(queries)
    for query, row in zip(queries, batch, strict=True):
        assert np.allclose(student.predict_proba([query])[0], row, atol=1e-6)
    assert np.allclose(student.predict_weights(queries[:1]), student.predict_weights(queries)[:1])


def test_reasoning_names_content_words_never_stop_words(student: HashedNgramStudent) -> None:
    hostile = [
        "does anyone have David Letterman, it might be The Social Network, if that helps at all",
        "Barack Obama appearances where you can hear wind but no voices",
        "there's a clip while it's raining and i'm looking for every one",
    ]
    for query in QUERIES[:8] + hostile:
        reasoning = student_decision(student, query).reasoning
        named = [c for group in re.findall(r"\(([^)]*)\)", reasoning) for c in group.split(", ")]
        for cue in named:
            assert cue and not set(cue.split(" ")) & STOPWORDS, (query, reasoning)
        assert len(named) == len(set(named)), reasoning  # a cue is named for one signal only


def test_prior_and_known_words_survive_persistence(student: HashedNgramStudent) -> None:
    loaded = HashedNgramStudent.from_bytes(student.to_bytes())
    assert loaded.prior is not None and np.allclose(loaded.prior, student.prior)  # type: ignore[arg-type]
    assert loaded.known is not None and student.known is not None
    assert (loaded.known == student.known).all()
    assert loaded.answers_prior("zxqv plorf")


def test_an_artifact_of_feature_version_1_still_loads_without_a_prior(
    student: HashedNgramStudent,
) -> None:
    buffer = io.BytesIO()
    meta = {"signals": list(SIGNALS), "n_buckets": 2**16, "round_step": 0.05, "feature_version": 1}
    np.savez_compressed(
        buffer, weights=student.weights, bias=student.bias, meta=np.array(json.dumps(meta))
    )
    old = HashedNgramStudent.from_bytes(buffer.getvalue())
    assert FEATURE_VERSION == 2
    assert old.prior is None and old.informed("zxqv plorf")
    assert np.allclose(old.predict_proba(["dog barking"]), student.predict_proba(["dog barking"]))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "  ",
        "Dog's  BARKING!!",
        's01e02 -- "quote"\ttab',
        "café Über",
        "x_y-z 'a'",
        "\u00a0nbsp",
    ],
)
def test_the_ascii_fast_path_splits_words_exactly_like_normalise(text: str) -> None:
    assert words_of(text) == normalise(text).split(" ")


def test_the_ascii_fast_path_agrees_with_normalise_on_random_printable_text() -> None:
    rng = random.Random(0)
    for _ in range(3000):
        text = "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 40)))
        assert words_of(text) == normalise(text).split(" "), repr(text)
