"""Unit tests for intent_router.synthesis (planning, query writing) and intent_router.dedupe."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pandas as pd
import pytest

from intent_router.dedupe import DedupeResult, dedupe_and_split, jaccard, leaked_pairs
from intent_router.errors import TaxonomyError, UserInputError
from intent_router.synthesis import (
    AWS_SAMPLE_MIX,
    BALANCED,
    DIFFICULTIES,
    Cell,
    CellQuota,
    Difficulty,
    QueryWriter,
    allocate,
    default_mix,
    plan_batches,
    plan_cells,
    vocabulary_half,
)
from intent_router.taxonomy import Taxonomy, builtin_taxonomy, taxonomy_from_mapping
from intent_router.text import normalise

DEFAULT = builtin_taxonomy()

CUSTOM: dict[str, Any] = {
    "name": "custom",
    "signals": [
        {"name": "visual", "description": "how things look"},
        {"name": "audio", "description": "how things sound"},
        {"name": "on_screen_text", "description": "text visible on screen"},
    ],
    "attributes": [
        {"name": "mood", "values": ["eerie", "calm"], "informs": {"visual": 0.5, "audio": 0.5}}
    ],
}


def custom_taxonomy(**signal_changes: Any) -> Taxonomy:
    data = copy.deepcopy(CUSTOM)
    data["signals"][2].update(signal_changes)
    return taxonomy_from_mapping(data)


# -- allocate -------------------------------------------------------------------------------------
@pytest.mark.parametrize("total", [0, 1, 7, 10, 99, 1000, 12_345])
def test_allocate_sums_exactly_to_the_total(total: int) -> None:
    counts = allocate(total, {"a": 0.5, "b": 0.3, "c": 0.2})

    assert sum(counts.values()) == total
    assert all(count >= 0 for count in counts.values())


def test_allocate_follows_shares() -> None:
    assert allocate(1000, AWS_SAMPLE_MIX) == {
        "visual": 250,
        "audio": 200,
        "transcription": 200,
        "metadata": 150,
        BALANCED: 200,
    }


def test_allocate_gives_leftovers_to_the_largest_remainders() -> None:
    # raw shares 3.5, 2.1, 1.4: floors 3, 2, 1 and the one leftover goes to 'a' (remainder 0.5)
    assert allocate(7, {"a": 0.5, "b": 0.3, "c": 0.2}) == {"a": 4, "b": 2, "c": 1}


def test_allocate_normalises_unnormalised_shares() -> None:
    assert allocate(10, {"a": 3, "b": 1, "c": 1}) == {"a": 6, "b": 2, "c": 2}


def test_allocate_breaks_remainder_ties_by_key() -> None:
    assert allocate(2, {"c": 1, "b": 1, "a": 1}) == {"c": 0, "b": 1, "a": 1}


def test_allocate_each_count_is_within_one_of_the_exact_share() -> None:
    shares = {"a": 0.123, "b": 0.456, "c": 0.321, "d": 0.1}
    counts = allocate(997, shares)

    total_share = sum(shares.values())
    for key, share in shares.items():
        assert abs(counts[key] - 997 * share / total_share) < 1


@pytest.mark.parametrize("shares", [{"a": 0.0, "b": 0.0}, {}])
def test_allocate_rejects_shares_without_positive_sum(shares: dict[str, float]) -> None:
    with pytest.raises(UserInputError, match="positive"):
        allocate(10, shares)


# -- plan_cells -----------------------------------------------------------------------------------
def test_default_mix_is_the_aws_sample_mix_for_builtin_signals() -> None:
    assert default_mix(DEFAULT) == AWS_SAMPLE_MIX


def test_default_mix_is_even_for_custom_signals() -> None:
    mix = default_mix(custom_taxonomy(cues=["caption"]))

    assert mix[BALANCED] == pytest.approx(0.2)
    assert mix["visual"] == mix["audio"] == mix["on_screen_text"] == pytest.approx(0.8 / 3)


def test_plan_cells_covers_dominant_by_attribute_by_difficulty() -> None:
    quotas = plan_cells(DEFAULT, 1500, seed=7, namespace="train")

    keys = {q.cell.key for q in quotas}
    expected = {
        f"{dominant}/{attribute.name}/{difficulty}"
        for dominant in AWS_SAMPLE_MIX
        for attribute in DEFAULT.attributes
        for difficulty in DIFFICULTIES
    }
    assert keys == expected
    assert len(quotas) == 5 * len(DEFAULT.attributes) * 3


@pytest.mark.parametrize("total", [1, 135, 1000, 1501])
def test_plan_cells_counts_sum_to_total(total: int) -> None:
    quotas = plan_cells(DEFAULT, total, seed=7, namespace="train")

    assert sum(q.count for q in quotas) == total
    assert all(q.count > 0 for q in quotas)


def test_plan_cells_follows_the_mix_and_difficulty_shares() -> None:
    quotas = plan_cells(DEFAULT, 2000, seed=7, namespace="train")

    by_dominant = Counter[str]()
    by_difficulty = Counter[str]()
    for q in quotas:
        by_dominant[q.cell.dominant] += q.count
        by_difficulty[q.cell.difficulty] += q.count
    for dominant, share in AWS_SAMPLE_MIX.items():
        assert by_dominant[dominant] == pytest.approx(2000 * share, abs=10)
    assert by_difficulty["easy"] == pytest.approx(1000, abs=10)
    assert by_difficulty["hard"] == pytest.approx(700, abs=10)
    assert by_difficulty["edge"] == pytest.approx(300, abs=10)


def test_plan_cells_is_deterministic_and_seeds_depend_on_seed_and_namespace() -> None:
    first = plan_cells(DEFAULT, 500, seed=7, namespace="train")
    again = plan_cells(DEFAULT, 500, seed=7, namespace="train")
    other_seed = plan_cells(DEFAULT, 500, seed=8, namespace="train")
    other_namespace = plan_cells(DEFAULT, 500, seed=7, namespace="holdout")

    assert first == again
    assert len({q.seed for q in first}) == len(first)  # every cell has its own seed
    assert [q.seed for q in first] != [q.seed for q in other_seed]
    assert [q.seed for q in first] != [q.seed for q in other_namespace]
    assert [q.count for q in first] == [q.count for q in other_seed]


def test_plan_cells_with_a_custom_mix() -> None:
    quotas = plan_cells(DEFAULT, 90, seed=1, namespace="x", mix={"audio": 1.0})

    assert {q.cell.dominant for q in quotas} == {"audio"}
    assert sum(q.count for q in quotas) == 90


def test_plan_cells_rejects_a_mix_naming_an_unknown_signal() -> None:
    with pytest.raises(UserInputError, match="unknown signal"):
        plan_cells(DEFAULT, 100, seed=1, namespace="x", mix={"smell": 1.0})


# -- plan_batches ---------------------------------------------------------------------------------
def test_plan_batches_packs_every_cell_once_and_keeps_the_count() -> None:
    quotas = plan_cells(DEFAULT, 1000, seed=7, namespace="train")

    batches = plan_batches(quotas, 8, "train", "train")

    packed = [q for b in batches for q in b.quotas]
    assert sorted(packed, key=lambda q: q.cell.key) == sorted(quotas, key=lambda q: q.cell.key)
    assert sum(b.size for b in batches) == 1000
    assert len(batches) == 8
    assert [b.index for b in batches] == list(range(8))


def test_plan_batches_are_balanced() -> None:
    quotas = plan_cells(DEFAULT, 1000, seed=7, namespace="train")

    sizes = [b.size for b in plan_batches(quotas, 8, "train", "train")]

    assert max(sizes) - min(sizes) <= max(q.count for q in quotas)


def test_plan_batches_is_deterministic() -> None:
    quotas = plan_cells(DEFAULT, 1000, seed=7, namespace="train")

    first = plan_batches(quotas, 6, "holdout", "heldout")
    again = plan_batches(list(reversed(quotas)), 6, "holdout", "heldout")

    assert first == again
    assert [b.key for b in first] == [f"holdout-heldout-{i:03d}" for i in range(6)]


@pytest.mark.parametrize("n_batches", [0, -3, 1])
def test_plan_batches_with_fewer_than_one_batch_makes_one(n_batches: int) -> None:
    quotas = plan_cells(DEFAULT, 100, seed=7, namespace="train")

    batches = plan_batches(quotas, n_batches, "train", "train")

    assert len(batches) == 1
    assert batches[0].size == 100


def test_plan_batches_never_makes_more_batches_than_cells() -> None:
    quotas = plan_cells(DEFAULT, 3, seed=7, namespace="train")

    batches = plan_batches(quotas, 50, "train", "train")

    assert len(batches) == len(quotas) == 3
    assert all(b.size == 1 for b in batches)


# -- vocabulary halves ----------------------------------------------------------------------------
def test_train_and_heldout_vocabulary_halves_are_disjoint() -> None:
    train = vocabulary_half("train")
    heldout = vocabulary_half("heldout")

    assert set(train) == set(heldout)
    for category in train:
        train_items = {item.lower() for item in train[category]}
        heldout_items = {item.lower() for item in heldout[category]}
        assert not train_items & heldout_items, category
        assert train[category], category
        assert heldout[category], category


def test_heldout_half_is_the_smaller_half() -> None:
    train = sum(len(v) for v in vocabulary_half("train").values())
    heldout = sum(len(v) for v in vocabulary_half("heldout").values())

    assert 0 < heldout < train


# -- QueryWriter ----------------------------------------------------------------------------------
def quota(
    dominant: str, attribute: str, difficulty: Difficulty, count: int, seed: int
) -> CellQuota:
    cell = Cell(dominant=dominant, attribute=attribute, difficulty=difficulty)
    return CellQuota(cell=cell, count=count, seed=seed)


def test_write_cell_is_byte_for_byte_deterministic() -> None:
    writer = QueryWriter(DEFAULT, "train")
    q = quota("visual", "camera_angle", "hard", 25, seed=1234)

    first = writer.write_cell(q)
    again = QueryWriter(DEFAULT, "train").write_cell(q)

    assert first == again
    assert "\n".join(first).encode() == "\n".join(again).encode()


def test_write_cell_differs_for_another_seed() -> None:
    writer = QueryWriter(DEFAULT, "train")

    first = writer.write_cell(quota("audio", "mood", "easy", 20, seed=1))
    other = writer.write_cell(quota("audio", "mood", "easy", 20, seed=2))

    assert first != other


def test_write_cell_returns_the_requested_number_of_distinct_queries() -> None:
    writer = QueryWriter(DEFAULT, "train")

    queries = writer.write_cell(quota(BALANCED, "title", "hard", 40, seed=5))

    assert len(queries) == 40
    assert len({q.lower() for q in queries}) == 40
    assert all(q == " ".join(q.split()) and q for q in queries)
    assert all("{" not in q and "}" not in q for q in queries)


def test_write_cell_respects_exclusions() -> None:
    writer = QueryWriter(DEFAULT, "train")
    q = quota("metadata", "genre", "easy", 10, seed=3)
    first = writer.write_cell(q)

    again = writer.write_cell(q, exclude={first[0].lower()})

    assert first[0] not in again
    assert len(again) == 10


def test_edge_cells_include_short_queries() -> None:
    writer = QueryWriter(DEFAULT, "train")
    cells = plan_cells(DEFAULT, 1000, seed=7, namespace="train")
    edge = [q for q in cells if q.cell.difficulty == "edge"]

    queries = [text for q in edge for text in writer.write_cell(q)]

    short = [text for text in queries if len(text.split()) <= 3]
    assert len(queries) >= 100
    assert len(short) >= 0.2 * len(queries)


def test_heldout_writer_uses_only_heldout_vocabulary_for_slots() -> None:
    writer = QueryWriter(DEFAULT, "heldout")
    train_only = {i.lower() for i in vocabulary_half("train")["sounds"]}
    heldout_only = {i.lower() for i in vocabulary_half("heldout")["sounds"]}

    queries = writer.write_cell(quota("audio", "mood", "easy", 30, seed=11))

    lowered = [q.lower() for q in queries]
    assert any(any(item in q for item in heldout_only) for q in lowered)
    assert not any(q.removeprefix("sound of ") in train_only for q in lowered)


def test_custom_signal_without_cues_or_informing_attribute_is_rejected() -> None:
    taxonomy = custom_taxonomy()

    with pytest.raises(TaxonomyError, match="'on_screen_text' has no cues"):
        QueryWriter(taxonomy, "train")


def test_custom_signal_with_cues_gets_queries_built_from_its_cues() -> None:
    taxonomy = custom_taxonomy(cues=["caption", "subtitle", "lower third"])
    writer = QueryWriter(taxonomy, "train")

    queries = writer.write_cell(quota("on_screen_text", "mood", "easy", 30, seed=9))

    non_empty = [q for q in queries if q.strip()]
    assert len(non_empty) >= 10
    cues = ("caption", "subtitle", "lower third")
    assert any(cue in q.lower() for q in non_empty for cue in cues)
    assert all(any(w in q.lower() for w in (*cues, "eerie", "calm")) for q in non_empty)


def test_custom_signal_queries_are_never_empty() -> None:
    taxonomy = custom_taxonomy(cues=["caption", "subtitle", "lower third"])
    writer = QueryWriter(taxonomy, "train")

    queries = writer.write_cell(quota("on_screen_text", "mood", "easy", 30, seed=9))

    assert all(q.strip() for q in queries)


def test_edge_cells_of_a_custom_signal_with_cues_do_not_crash() -> None:
    taxonomy = custom_taxonomy(cues=["caption", "subtitle", "lower third"])
    writer = QueryWriter(taxonomy, "train")

    queries = writer.write_cell(quota("on_screen_text", "mood", "edge", 20, seed=1))

    assert len(queries) == 20


def test_custom_signal_informed_by_an_attribute_is_accepted_without_cues() -> None:
    data = copy.deepcopy(CUSTOM)
    data["attributes"][0]["informs"]["on_screen_text"] = 0.5

    QueryWriter(taxonomy_from_mapping(data), "train")  # does not raise


def with_phrasings(*phrasings: str) -> Taxonomy:
    data = copy.deepcopy(CUSTOM)
    data["signals"][2]["cues"] = ["caption"]
    data["attributes"][0]["phrasings"] = list(phrasings)
    data["attributes"].append(
        {"name": "venue", "values": ["the old pier", "the town hall"], "informs": {"visual": 1.0}}
    )
    return taxonomy_from_mapping(data)


def test_phrasings_can_use_another_attribute_as_a_slot() -> None:
    writer = QueryWriter(with_phrasings("a {value} mood at {venue}"), "train")

    queries = writer.write_cell(quota("visual", "mood", "easy", 60, seed=3))

    phrased = [q for q in queries if " mood at " in q]
    assert phrased
    assert all(" mood at the old pier" in q or " mood at the town hall" in q for q in phrased)
    assert not any("venue" in q or "{" in q for q in queries)


def test_vocabulary_slots_in_phrasings_still_work() -> None:
    writer = QueryWriter(with_phrasings("a {value} mood in {scene}"), "train")
    scenes = vocabulary_half("train")["scenes"]

    queries = writer.write_cell(quota("visual", "mood", "easy", 60, seed=3))

    phrased = [q for q in queries if " mood in " in q.lower()]
    assert phrased
    assert all(any(scene in q for scene in scenes) for q in phrased)


def test_phrasing_with_an_unknown_slot_is_rejected() -> None:
    with pytest.raises(TaxonomyError, match=r"attribute 'mood'.*unknown slot\(s\) place"):
        QueryWriter(with_phrasings("a {value} mood at {place}"), "train")


# -- dedupe ---------------------------------------------------------------------------------------
# Pairs far above the 0.85 threshold (Jaccard 0.986 and 0.953): MinHash LSH finds them.
NEAR_A = "a slow motion shot of a golden retriever catching a frisbee on a sunny beach"
NEAR_B = "slow motion shot of a golden retriever catching a frisbee on a sunny beach"
TODDLER = "a toddler blowing out birthday candles at a party in the garden"
TODDLER_NEAR = "a toddler blowing out birthday candles at a party in the gardens"


def frame(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["query", "cell"])


def leaks_after(result: DedupeResult) -> list[tuple[str, str, float]]:
    return leaked_pairs(result.train["query"].tolist(), result.holdout["query"].tolist(), 0.85)


def report_row(report: pd.DataFrame, split: str, cell: str) -> dict[str, Any]:
    rows = report[(report["split"] == split) & (report["cell"] == cell)]
    assert len(rows) == 1
    return {str(key): value for key, value in rows.iloc[0].items()}


def test_near_duplicate_fixtures_are_near_but_not_exact() -> None:
    assert jaccard(NEAR_A, NEAR_B) > 0.95
    assert jaccard(TODDLER, TODDLER_NEAR) > 0.95
    assert normalise(NEAR_A) != normalise(NEAR_B)
    assert normalise(TODDLER) != normalise(TODDLER_NEAR)


def test_exact_normalised_duplicates_are_dropped_and_counted_per_cell() -> None:
    train = frame(
        [
            ("Dog barking!", "audio/easy"),
            ("dog barking", "audio/easy"),
            ("DOG   barking...", "audio/easy"),
            ("red car parked outside a bakery", "visual/easy"),
        ]
    )

    result = dedupe_and_split(train, frame([("thunder rolling over hills", "audio/easy")]))

    assert result.train["query"].tolist() == ["Dog barking!", "red car parked outside a bakery"]
    row = report_row(result.report, "train", "audio/easy")
    assert (row["generated"], row["exact_dropped"], row["kept"]) == (3, 2, 1)
    assert report_row(result.report, "train", "visual/easy")["exact_dropped"] == 0


def test_near_duplicates_are_dropped_keeping_the_first() -> None:
    train = frame([(NEAR_A, "visual/hard"), (NEAR_B, "visual/hard"), ("owl hooting", "audio")])

    result = dedupe_and_split(train, frame([("crowd cheering loudly", "audio")]))

    assert result.train["query"].tolist() == [NEAR_A, "owl hooting"]
    row = report_row(result.report, "train", "visual/hard")
    assert (row["near_dropped"], row["exact_dropped"], row["kept"]) == (1, 0, 1)


def test_holdout_near_duplicate_of_training_query_is_dropped() -> None:
    train = frame([(NEAR_A, "visual/hard")])
    holdout = frame([(NEAR_B, "visual/hard"), ("a choir singing in a cathedral", "audio")])
    assert normalise(NEAR_B) != normalise(NEAR_A)  # near, not exact

    result = dedupe_and_split(train, holdout)

    assert result.holdout["query"].tolist() == ["a choir singing in a cathedral"]
    row = report_row(result.report, "holdout", "visual/hard")
    assert row["near_train_dropped"] == 1
    assert row["kept"] == 0


def test_holdout_exact_duplicate_of_training_query_is_dropped_as_exact() -> None:
    train = frame([("Rain on a tin roof", "audio")])
    holdout = frame([("rain on a tin roof!", "audio"), ("church bells ringing", "audio")])

    result = dedupe_and_split(train, holdout)

    assert result.holdout["query"].tolist() == ["church bells ringing"]
    assert report_row(result.report, "holdout", "audio")["exact_dropped"] == 1


def test_holdout_near_duplicates_of_each_other_are_dropped() -> None:
    holdout = frame([(TODDLER, "v"), (TODDLER_NEAR, "v")])

    result = dedupe_and_split(frame([("crowd cheering", "a")]), holdout)

    assert result.holdout["query"].tolist() == [TODDLER]
    assert report_row(result.report, "holdout", "v")["near_dropped"] == 1


def test_report_columns_add_up() -> None:
    train = frame([("Dog barking!", "a"), ("dog barking", "a"), (NEAR_A, "b"), (NEAR_B, "b")])
    holdout = frame([(NEAR_B, "b"), ("whale song", "c"), ("Whale song.", "c")])

    report = dedupe_and_split(train, holdout).report

    dropped = report["exact_dropped"] + report["near_dropped"] + report["near_train_dropped"]
    assert (report["generated"] == dropped + report["kept"]).all()
    assert report["generated"].sum() == len(train) + len(holdout)


def test_no_leaks_remain_after_dedupe() -> None:
    train = frame(
        [
            (NEAR_A, "v"),
            (TODDLER, "v"),
            ("the mayor says the bridge will reopen next spring", "t"),
        ]
    )
    holdout = frame(
        [
            (NEAR_B, "v"),
            (TODDLER_NEAR, "v"),
            ("The mayor says the bridge will reopen next spring!", "t"),
            ("waves crashing against a lighthouse in a storm", "v"),
        ]
    )
    assert len(leaked_pairs(train["query"].tolist(), holdout["query"].tolist(), 0.85)) == 3

    result = dedupe_and_split(train, holdout, threshold=0.85)

    assert result.holdout["query"].tolist() == ["waves crashing against a lighthouse in a storm"]
    assert leaks_after(result) == []


def test_dedupe_of_empty_frames_gives_empty_results() -> None:
    result = dedupe_and_split(frame([]), frame([]))

    assert result.train.empty
    assert result.holdout.empty
    assert result.report.empty


def test_holdout_one_letter_variants_of_training_queries_are_all_dropped() -> None:
    writer = QueryWriter(DEFAULT, "train")
    cells = plan_cells(DEFAULT, 200, seed=3, namespace="leak")
    queries = [q for c in cells for q in writer.write_cell(c) if len(q.split()) >= 6]
    variants = [q + "s" for q in queries]
    assert len(queries) > 100
    assert all(jaccard(q, v) >= 0.85 for q, v in zip(queries, variants, strict=True))

    result = dedupe_and_split(
        frame([(q, "c") for q in queries]), frame([(v, "c") for v in variants])
    )

    assert leaks_after(result) == []


def test_leaked_pairs_reports_score_and_both_queries() -> None:
    leaks = leaked_pairs([NEAR_A, "unrelated words here"], [NEAR_B], 0.85)

    assert len(leaks) == 1
    holdout_query, train_query, score = leaks[0]
    assert (holdout_query, train_query) == (NEAR_B, NEAR_A)
    assert score == pytest.approx(jaccard(NEAR_A, NEAR_B))


def test_jaccard_ignores_case_and_punctuation() -> None:
    assert jaccard("Dog barking!", "dog barking") == 1.0
    assert jaccard("dog barking", "cat meowing") < 0.2
