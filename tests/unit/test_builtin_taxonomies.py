"""Every built-in taxonomy loads; the domain taxonomies drive synthesis, teacher and student.

The figures measured here (value coverage, the teacher's top-signal rate, student agreement) are
printed, so `pytest -s` shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest

from intent_router.metrics import agrees
from intent_router.student import HashedNgramStudent
from intent_router.synthesis import Cell, QueryWriter, plan_cells
from intent_router.taxonomy import (
    BUILTIN_SIGNALS,
    Attribute,
    Taxonomy,
    builtin_taxonomy,
    builtin_taxonomy_names,
    resolve_taxonomy,
)
from intent_router.teacher import ReferenceTeacher
from intent_router.text import normalise

DOMAIN_TAXONOMIES = ("news_archives", "sports_broadcasting")
# Small hash space: fast, and under OpenBLAS's threading cut-off (see test_student_teacher.py).
TEST_BUCKETS = 2**11
# Thousands of phrasebook items: the student needs a few thousand examples to agree with the
# teacher on unseen queries (1,200 were enough for the old 700-item templates).
TRAIN_COUNT = 4000
HOLDOUT_COUNT = 300


def single_signal(attribute: Attribute) -> str | None:
    """The signal an attribute points at strongly (affinity >= 0.8, every other affinity at
    most half of it), or None for attributes that inform several signals."""
    ranked = sorted(attribute.informs.items(), key=lambda item: -item[1])
    signal, top = ranked[0]
    if top >= 0.8 and all(affinity <= 0.5 * top for _, affinity in ranked[1:]):
        return signal
    return None


def top_signals(weights: dict[str, float]) -> set[str]:
    best = max(weights.values())
    return {signal for signal, weight in weights.items() if weight == best}


@dataclass(frozen=True)
class Generated:
    taxonomy: Taxonomy
    teacher: ReferenceTeacher
    train: list[tuple[Cell, str]]
    holdout: list[str]

    def mentions(self, query: str) -> set[str]:
        """Names of the attributes whose values the query mentions (whole words, any case)."""
        padded = f" {normalise(query)} "
        return {
            attribute.name
            for attribute in self.taxonomy.attributes
            if any(f" {normalise(value)} " in padded for value in attribute.values)
        }


@cache
def generated(name: str) -> Generated:
    taxonomy = builtin_taxonomy(name)
    writer = QueryWriter(taxonomy, "train")
    train = [
        (quota.cell, query)
        for quota in plan_cells(taxonomy, TRAIN_COUNT, seed=7, namespace="train")
        for query in writer.write_cell(quota)
    ]
    seen = {query.lower() for _, query in train}
    holdout = [
        query
        for quota in plan_cells(taxonomy, HOLDOUT_COUNT, seed=8, namespace="holdout")
        for query in writer.write_cell(quota, exclude=seen)
    ]
    return Generated(taxonomy, ReferenceTeacher(taxonomy), train, holdout)


# -- every built-in taxonomy -----------------------------------------------------------------------
def test_builtin_names_include_the_domain_taxonomies() -> None:
    assert {"default", *DOMAIN_TAXONOMIES} <= set(builtin_taxonomy_names())


@pytest.mark.parametrize("name", builtin_taxonomy_names())
def test_builtin_taxonomy_loads_with_the_standard_signals(name: str) -> None:
    taxonomy = builtin_taxonomy(name)

    assert resolve_taxonomy(name) == taxonomy
    # Taxonomy names double as router names, which allow no underscores (Bedrock job names).
    assert taxonomy.name == name.replace("_", "-")
    assert taxonomy.signal_names == BUILTIN_SIGNALS
    assert 7 <= len(taxonomy.attributes) <= 10
    for attribute in taxonomy.attributes:
        assert len(attribute.values) >= 6, attribute.name
        assert set(attribute.informs) <= set(taxonomy.signal_names)
    informed = {signal for a in taxonomy.attributes for signal in a.informs}
    assert informed == set(BUILTIN_SIGNALS)
    QueryWriter(taxonomy, "train")  # every phrasing slot is one the writer can fill


# -- the domain taxonomies -------------------------------------------------------------------------
@pytest.mark.parametrize("name", DOMAIN_TAXONOMIES)
def test_domain_taxonomy_has_a_single_signal_attribute_for_every_signal(name: str) -> None:
    taxonomy = builtin_taxonomy(name)

    strong = {single_signal(a) for a in taxonomy.attributes} - {None}

    assert strong == set(BUILTIN_SIGNALS)


@pytest.mark.parametrize("name", DOMAIN_TAXONOMIES)
def test_generated_queries_use_the_taxonomy_values(name: str) -> None:
    data = generated(name)
    mentioned = [data.mentions(query) for _, query in data.train]

    with_any = sum(bool(m) for m in mentioned) / len(mentioned)
    with_several = sum(len(m) >= 2 for m in mentioned) / len(mentioned)
    per_attribute = {a.name: sum(a.name in m for m in mentioned) for a in data.taxonomy.attributes}
    print(f"{name}: {with_any:.1%} of queries mention a value, {with_several:.1%} two or more")

    assert len(data.train) == TRAIN_COUNT
    assert with_any >= 0.4
    assert with_several >= 0.05
    assert min(per_attribute.values()) >= 20, per_attribute
    assert not any("{" in query or "}" in query for _, query in data.train)


@pytest.mark.parametrize("name", DOMAIN_TAXONOMIES)
def test_values_of_single_signal_attributes_route_to_that_signal(name: str) -> None:
    data = generated(name)
    checked = 0
    misses = []
    for attribute in data.taxonomy.attributes:
        signal = single_signal(attribute)
        if signal is None:
            continue
        for value in attribute.values:
            checked += 1
            weights = data.teacher.route(value).weights
            if signal not in top_signals(weights):
                misses.append((attribute.name, value, weights))

    assert checked >= 60
    assert misses == []


@pytest.mark.parametrize("name", DOMAIN_TAXONOMIES)
def test_single_signal_affinities_agree_with_a_teacher_that_does_not_know_the_taxonomy(
    name: str,
) -> None:
    """The default router's teacher knows only the built-in lexicon, names and patterns. Where
    it finds a cue in a value of a single-signal attribute, it should mostly pick the signal the
    taxonomy declares (a wrong affinity such as crowd reaction -> metadata fails this). It
    cannot know that an unquoted commentary call is speech, so this is a rate, not all."""
    taxonomy = builtin_taxonomy(name)
    generic = ReferenceTeacher(builtin_taxonomy("default"))
    agree = total = 0
    for attribute in taxonomy.attributes:
        signal = single_signal(attribute)
        if signal is None:
            continue
        for value in attribute.values:
            _, hits = generic.evidence(value)
            if hits:
                total += 1
                agree += signal in top_signals(generic.route(value).weights)

    rate = agree / total
    print(f"{name}: the default teacher agrees with the declared affinity on {agree}/{total}")
    assert total >= 50
    assert rate >= 0.9


@pytest.mark.parametrize("name", DOMAIN_TAXONOMIES)
def test_generated_queries_mentioning_single_signal_values_route_to_that_signal(
    name: str,
) -> None:
    """Queries written for a cell whose dominant signal is the one the mentioned attributes
    point at. In the other cells the generator deliberately makes another signal dominant
    ("sound of rain, Boston Celtics"), so there the mention is secondary by design."""
    data = generated(name)
    strong = {a.name: single_signal(a) for a in data.taxonomy.attributes}
    hits = total = 0
    for cell, query in data.train:
        mentioned = data.mentions(query)
        signals = {strong[a] for a in mentioned}
        if not mentioned or len(signals) != 1 or None in signals:
            continue
        (signal,) = signals
        if cell.dominant != signal:
            continue
        total += 1
        hits += signal in top_signals(data.teacher.route(query).weights)

    rate = hits / total
    print(
        f"{name}: teacher's top signal is the mentioned attribute's in {hits}/{total} = {rate:.3f}"
    )
    assert total >= 40
    assert rate >= 0.9


@pytest.mark.parametrize("name", DOMAIN_TAXONOMIES)
def test_student_trained_on_the_taxonomy_agrees_with_the_teacher(name: str) -> None:
    data = generated(name)
    signals = data.taxonomy.signal_names
    train = [query for _, query in data.train]
    labels = np.array([[data.teacher.route(q).weights[s] for s in signals] for q in train])
    student = HashedNgramStudent(signals=signals, n_buckets=TEST_BUCKETS)

    student.fit(train, labels, max_iterations=150)

    predicted = student.predict_weights(data.holdout)
    agreement = float(
        np.mean(
            [
                agrees(data.teacher.route(q).weights, dict(zip(signals, row, strict=True)), signals)
                for q, row in zip(data.holdout, predicted, strict=True)
            ]
        )
    )
    print(f"{name}: student/teacher top-signal agreement {agreement:.3f} (n={len(data.holdout)})")
    assert len(data.holdout) >= 0.9 * HOLDOUT_COUNT
    assert agreement >= 0.8
