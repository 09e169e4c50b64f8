"""Unit tests for intent_router.student (grid rounding, persistence, learning) and the teacher."""

from __future__ import annotations

import copy
import csv
import io
import json
from importlib import resources
from typing import Any

import numpy as np
import pytest
import yaml

from intent_router.metrics import agrees, top_signal
from intent_router.schema import parse_routing_output
from intent_router.student import FEATURE_VERSION, HashedNgramStudent, round_to_grid
from intent_router.synthesis import QueryWriter, plan_cells
from intent_router.taxonomy import Taxonomy, builtin_taxonomy, taxonomy_from_mapping
from intent_router.teacher import ReferenceTeacher
from tests.conftest import DATA

DEFAULT = builtin_taxonomy()
SIGNALS = DEFAULT.signal_names
# A small hash space keeps training fast and steady: with 2**11 buckets the parameter vector
# (<= 8,196 values) stays under OpenBLAS's threading cut-off, so scipy's L-BFGS-B does not
# spin BLAS threads (with the default 2**18 buckets, 150 iterations take ~10 s on a busy box).
TEST_BUCKETS = 2**11


@pytest.fixture(scope="module")
def teacher() -> ReferenceTeacher:
    return ReferenceTeacher(DEFAULT)


def labels(teacher: ReferenceTeacher, queries: list[str]) -> np.ndarray:
    return np.array([[teacher.route(q).weights[s] for s in SIGNALS] for q in queries])


def is_on_grid(values: np.ndarray, step: float) -> bool:
    scaled = values / step
    return bool(np.allclose(scaled, np.round(scaled), atol=1e-9))


# -- round_to_grid ---------------------------------------------------------------------------------
def test_round_to_grid_rows_sum_to_one_and_are_multiples_of_the_step() -> None:
    probabilities = np.random.default_rng(0).dirichlet(np.ones(4), size=500)

    rounded = round_to_grid(probabilities, 0.05)

    assert rounded.shape == probabilities.shape
    assert np.allclose(rounded.sum(axis=1), 1.0)
    assert is_on_grid(rounded, 0.05)
    assert (rounded >= 0).all()
    assert np.abs(rounded - probabilities).max() < 0.05 + 1e-9


@pytest.mark.parametrize("k", [2, 3, 5, 7])
def test_round_to_grid_handles_uniform_rows_that_do_not_divide_evenly(k: int) -> None:
    rounded = round_to_grid(np.full((1, k), 1 / k), 0.05)

    assert rounded.sum() == pytest.approx(1.0)
    assert is_on_grid(rounded, 0.05)
    assert rounded.max() - rounded.min() <= 0.05 + 1e-9


def test_round_to_grid_keeps_values_already_on_the_grid() -> None:
    on_grid = np.array([[0.7, 0.1, 0.1, 0.1], [1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])

    assert np.allclose(round_to_grid(on_grid, 0.05), on_grid)


def test_round_to_grid_with_a_coarser_step() -> None:
    rounded = round_to_grid(np.array([[0.46, 0.31, 0.23]]), 0.1)

    assert np.allclose(rounded, [[0.5, 0.3, 0.2]])


# -- HashedNgramStudent basics ---------------------------------------------------------------------
def test_untrained_student_predicts_uniform_weights() -> None:
    student = HashedNgramStudent(signals=SIGNALS, n_buckets=2**10)

    probabilities = student.predict_proba(["dog barking", "Friends season 2 episode 14"])
    rounded = student.predict_weights(["dog barking"])

    assert np.allclose(probabilities, 0.25)
    assert np.allclose(rounded, [[0.25, 0.25, 0.25, 0.25]])


def test_n_buckets_must_be_a_power_of_two() -> None:
    with pytest.raises(ValueError, match="power of two"):
        HashedNgramStudent(signals=SIGNALS, n_buckets=1000)


def test_fit_rejects_labels_of_the_wrong_shape() -> None:
    student = HashedNgramStudent(signals=SIGNALS, n_buckets=2**10)

    with pytest.raises(ValueError, match="soft_labels"):
        student.fit(["a", "b"], np.full((2, 3), 1 / 3), max_iterations=5)
    with pytest.raises(ValueError, match="soft_labels"):
        student.fit(["a", "b"], np.full((3, 4), 0.25), max_iterations=5)


def test_fit_reports_progress_and_training_size() -> None:
    student = HashedNgramStudent(signals=SIGNALS, n_buckets=2**10)
    seen: list[tuple[int, int]] = []
    y = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])

    report = student.fit(
        ["red car", "dog barking", "she says hello", "Friends season 2"],
        y,
        max_iterations=10,
        on_iteration=lambda i, n: seen.append((i, n)),
    )

    assert report.examples == 4
    assert 1 <= report.epochs <= 10
    assert [i for i, _ in seen] == list(range(1, report.epochs + 1))  # one call per iteration
    assert all(total == 10 for _, total in seen)
    assert report.final_loss < np.log(4)  # better than the uniform start


def small_trained_student() -> tuple[HashedNgramStudent, list[str]]:
    queries = ["red car at night", "dog barking loudly", "she says we won", "Friends season 2"]
    y = np.eye(4) * 0.85 + 0.0375
    student = HashedNgramStudent(signals=SIGNALS, n_buckets=2**10)
    student.fit(queries, y, max_iterations=30)
    return student, [*queries, "a completely new query", ""]


def test_to_bytes_from_bytes_round_trip_gives_identical_predictions() -> None:
    student, queries = small_trained_student()

    restored = HashedNgramStudent.from_bytes(student.to_bytes())

    assert restored.signals == student.signals
    assert restored.n_buckets == student.n_buckets
    assert restored.round_step == student.round_step
    assert np.array_equal(restored.predict_proba(queries), student.predict_proba(queries))
    assert np.array_equal(restored.predict_weights(queries), student.predict_weights(queries))
    assert not np.allclose(student.predict_proba(queries[:1]), 0.25)  # it did learn something


def test_from_bytes_rejects_another_feature_version() -> None:
    student, _ = small_trained_student()
    meta = {
        "signals": list(SIGNALS),
        "n_buckets": student.n_buckets,
        "round_step": 0.05,
        "feature_version": FEATURE_VERSION + 1,
    }
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, weights=student.weights, bias=student.bias, meta=np.array(json.dumps(meta))
    )

    with pytest.raises(ValueError, match="feature version"):
        HashedNgramStudent.from_bytes(buffer.getvalue())


def test_from_bytes_rejects_garbage() -> None:
    with pytest.raises(Exception):  # noqa: B017 - any load error is acceptable, silence is not
        HashedNgramStudent.from_bytes(b"not a student artifact")


# -- learning from the teacher ---------------------------------------------------------------------
# The generator writes from thousands of phrasebook items, so a small student needs a few
# thousand examples (not the 1,500 that were enough for the old 700-item templates) to agree
# with the teacher on queries it has not seen.
TRAIN_QUERIES = 8000


@pytest.fixture(scope="module")
def generated_queries() -> tuple[list[str], list[str]]:
    writer = QueryWriter(DEFAULT, "train")
    train = [
        q
        for c in plan_cells(DEFAULT, TRAIN_QUERIES, seed=7, namespace="train")
        for q in writer.write_cell(c)
    ]
    seen = {q.lower() for q in train}
    other = [
        q
        for c in plan_cells(DEFAULT, 300, seed=8, namespace="eval")
        for q in writer.write_cell(c, exclude=seen)
    ]
    return train, other


def test_student_trained_on_teacher_labels_agrees_with_the_teacher(
    teacher: ReferenceTeacher, generated_queries: tuple[list[str], list[str]]
) -> None:
    train, other = generated_queries
    assert len(train) == TRAIN_QUERIES
    assert len(other) >= 280
    assert not {q.lower() for q in train} & {q.lower() for q in other}
    student = HashedNgramStudent(signals=SIGNALS, n_buckets=TEST_BUCKETS)

    student.fit(train, labels(teacher, train), max_iterations=150)

    predicted = student.predict_weights(other)
    agreement = np.mean(
        [
            agrees(teacher.route(q).weights, dict(zip(SIGNALS, row, strict=True)), SIGNALS)
            for q, row in zip(other, predicted, strict=True)
        ]
    )
    assert agreement >= 0.80
    assert np.allclose(predicted.sum(axis=1), 1.0)
    assert is_on_grid(predicted, 0.05)


# -- ReferenceTeacher ------------------------------------------------------------------------------
SENSIBLE = [
    ("rain hammering on a car roof", "audio"),
    ("the moment the mayor says the bridge will reopen", "transcription"),
    ("Friends season 2 episode 14", "metadata"),
    ("overhead shot of a busy harbour at dawn", "visual"),
    ("drone shot of a beach at sunset", "visual"),
]


@pytest.mark.parametrize(("query", "expected"), SENSIBLE)
def test_teacher_routes_clear_queries_sensibly(
    teacher: ReferenceTeacher, query: str, expected: str
) -> None:
    decision = teacher.route(query)

    assert top_signal(decision.weights, SIGNALS) == expected
    assert decision.weights[expected] >= 0.4


@pytest.mark.parametrize("query", [q for q, _ in SENSIBLE] + ["", "!!!", "x" * 2000])
def test_teacher_weights_parse_and_sum_to_one(teacher: ReferenceTeacher, query: str) -> None:
    decision = teacher.route(query)

    parsed = parse_routing_output(teacher.label_json(query), SIGNALS)

    assert parsed == decision
    assert tuple(decision.weights) == SIGNALS
    assert sum(decision.weights.values()) == pytest.approx(1.0)
    assert all(0.0 <= w <= 1.0 for w in decision.weights.values())
    assert is_on_grid(np.array(list(decision.weights.values())), 0.05)


def test_teacher_is_deterministic(teacher: ReferenceTeacher) -> None:
    queries = [q for q, _ in SENSIBLE]
    another = ReferenceTeacher(builtin_taxonomy())

    first = [teacher.label_json(q) for q in queries]

    assert first == [teacher.label_json(q) for q in queries]
    assert first == [another.label_json(q) for q in queries]


@pytest.mark.parametrize("query", [q for q, _ in SENSIBLE])
def test_teacher_reasoning_names_a_cue(teacher: ReferenceTeacher, query: str) -> None:
    _, hits = teacher.evidence(query)
    reasoning = teacher.route(query).reasoning

    assert hits
    assert any(hit.phrase in reasoning for hit in hits)
    assert reasoning.startswith("Mostly ")


def test_teacher_reasoning_for_the_drone_query_names_the_camera_cue(
    teacher: ReferenceTeacher,
) -> None:
    assert "drone shot" in teacher.route("drone shot of a beach at sunset").reasoning


def test_teacher_without_cues_says_so(teacher: ReferenceTeacher) -> None:
    decision = teacher.route("zzqx")

    assert decision.reasoning.startswith("No specific cues")


def test_teacher_negation_lowers_a_cue(teacher: ReferenceTeacher) -> None:
    plain = teacher.route("city skyline at night with music").weights["audio"]
    negated = teacher.route("city skyline at night without music").weights["audio"]

    assert negated < plain


def test_teacher_accuracy_on_hand_written_realistic_queries(teacher: ReferenceTeacher) -> None:
    with (DATA / "realistic_queries.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 200
    assert {r["expected_top"] for r in rows} == set(SIGNALS)

    correct = sum(
        top_signal(teacher.route(r["query"]).weights, SIGNALS) == r["expected_top"] for r in rows
    )

    accuracy = correct / len(rows)
    print(f"teacher top-signal accuracy on realistic queries: {accuracy:.3f}")
    assert accuracy >= 0.88


def taxonomy_with_extra_signal() -> Taxonomy:
    text = (resources.files("intent_router") / "data" / "taxonomies" / "default.yaml").read_text(
        "utf-8"
    )
    data: dict[str, Any] = copy.deepcopy(yaml.safe_load(text))
    data["name"] = "with-on-screen-text"
    data["signals"].append(
        {
            "name": "on_screen_text",
            "description": "text visible in the picture - captions, subtitles, lower thirds",
            "cues": ["caption", "subtitle", "lower third"],
        }
    )
    return taxonomy_from_mapping(data)


def test_teacher_with_an_extra_signal_returns_five_weights() -> None:
    taxonomy = taxonomy_with_extra_signal()
    teacher = ReferenceTeacher(taxonomy)
    signals = taxonomy.signal_names

    decision = teacher.route("interview with a lower third showing the name")
    parsed = parse_routing_output(teacher.label_json("dog barking"), signals)

    assert len(signals) == 5
    assert tuple(decision.weights) == signals
    assert sum(decision.weights.values()) == pytest.approx(1.0)
    assert set(parsed.weights) == set(signals)
    assert decision.weights["on_screen_text"] > parsed.weights["on_screen_text"]
    assert "lower third" in decision.reasoning
