"""Golden sets: parsing, every validation problem, scoring, the taxonomy's golden field, the CLI."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from intent_router.errors import UserInputError
from intent_router.golden import (
    MAX_GOLDEN_BYTES,
    GoldenSet,
    GoldenSetError,
    builtin_golden_path,
    load_golden,
    parse_golden,
    score_golden,
)
from intent_router.metrics import wilson_interval
from intent_router.taxonomy import (
    BUILTIN_SIGNALS,
    builtin_taxonomy,
    builtin_taxonomy_names,
    load_taxonomy,
    taxonomy_from_mapping,
)
from router_distill.cli import main

SIGNALS = BUILTIN_SIGNALS
WEIGHTS = {"visual": 0.7, "audio": 0.1, "transcription": 0.1, "metadata": 0.1}


def jsonl(*records: Any) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()


def problems_of(data: bytes, source: str = "g.jsonl") -> list[str]:
    with pytest.raises(GoldenSetError) as caught:
        parse_golden(data, source, SIGNALS)
    return caught.value.problems


def only_problem(record: dict[str, Any]) -> str:
    problems = problems_of(jsonl({"query": "ok query", "top": "visual"}, record))
    assert len(problems) == 1, problems
    return problems[0]


# -- parsing -------------------------------------------------------------------------------------
def test_jsonl_parses_every_field_and_line_numbers_skip_blank_lines() -> None:
    data = jsonl(
        {"query": "  red car  chase ", "top": "visual", "also": ["metadata", "visual"]},
        "",
        {"query": "sirens", "top": "audio", "weights": {**WEIGHTS, "visual": 0.1, "audio": 0.7}},
        {"query": "he says hello", "top": "transcription", "tags": ["Quote", "short", "quote"]},
    )

    golden = parse_golden(data, "set.jsonl", SIGNALS)

    first, second, third = golden.items
    assert (first.query, first.top, first.also, first.line) == (
        "red car  chase",
        "visual",
        ("metadata",),  # `top` in `also` is dropped
        1,
    )
    assert second.line == 3 and second.weights is not None and second.weights["audio"] == 0.7
    assert third.tags == ("quote", "short")
    assert golden.queries == ["red car  chase", "sirens", "he says hello"]
    assert golden.source == "set.jsonl" and len(golden.version) == 12


def test_csv_with_bom_lists_and_weights_cell() -> None:
    text = (
        "\ufeffQuery,top,also,tags,weights\n"
        'red car,visual,metadata | audio,mixed;name,"{""visual"": 0.7, ""audio"": 0.1, '
        '""transcription"": 0.1, ""metadata"": 0.1}"\n'
        "\n"
        "sirens,audio,,,\n"
    )

    golden = parse_golden(text.encode(), "set.csv", SIGNALS)

    first, second = golden.items
    assert first.also == ("metadata", "audio") and first.tags == ("mixed", "name")
    assert first.weights == WEIGHTS and first.line == 2
    assert (second.query, second.also, second.weights, second.line) == ("sirens", (), None, 4)


def test_csv_line_numbers_count_the_header_and_name_the_field() -> None:
    problems = problems_of(b"query,top\nfine,visual\nbad,video\n", "set.csv")

    assert problems == [
        "line 3, field 'top': unknown signal 'video' (known: visual, audio, transcription, "
        "metadata)"
    ]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("query,signal", "header lacks the column(s) top"),
        ("query,top,colour", "unknown column 'colour'"),
        ("query,top,top", "column(s) given twice: top"),
    ],
)
def test_csv_header_problems(header: str, expected: str) -> None:
    problems = problems_of(f"{header}\nred car,visual,x\n".encode(), "set.csv")

    assert any(p.startswith("line 1: ") and expected in p for p in problems), problems


def test_csv_row_with_extra_cells_and_bad_weights_cell() -> None:
    problems = problems_of(
        b"query,top,weights\nred car,visual,,extra\nblue car,visual,{not json\n", "set.csv"
    )

    assert problems[0] == "line 2: 4 cells but the header has 3 columns"
    assert problems[1].startswith("line 3, field 'weights': expected a JSON object")


@pytest.mark.parametrize("name", ["set.jsonl.gz", "set.JSONL.GZ"])
def test_gzipped_jsonl_parses_and_the_version_hashes_the_file_bytes(name: str) -> None:
    raw = gzip.compress(jsonl({"query": "red car", "top": "visual"}))

    golden = parse_golden(raw, name, SIGNALS)

    assert golden.queries == ["red car"]
    assert golden.version == hashlib.sha256(raw).hexdigest()[:12]


def test_gzipped_csv_parses() -> None:
    raw = gzip.compress(b"query,top\nred car,visual\n")

    assert parse_golden(raw, "set.csv.gz", SIGNALS).items[0].top == "visual"


def test_broken_gzip_is_one_problem() -> None:
    assert problems_of(b"not gzip at all", "set.jsonl.gz")[0].startswith("is not a valid gzip")


def test_version_changes_with_content() -> None:
    one = parse_golden(jsonl({"query": "red car", "top": "visual"}), "a.jsonl", SIGNALS)
    same = parse_golden(jsonl({"query": "red car", "top": "visual"}), "b.jsonl", SIGNALS)
    other = parse_golden(jsonl({"query": "red car", "top": "metadata"}), "a.jsonl", SIGNALS)

    assert one.version == same.version != other.version


def test_unsupported_suffix_is_a_problem() -> None:
    assert "unsupported file type" in problems_of(b"{}", "set.json")[0]


# -- validation: every problem, with its line and field ----------------------------------------
@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"query": "x", "top": "visual", "colour": 1}, "line 2: unknown field 'colour'"),
        ({"top": "visual"}, "line 2, field 'query': missing or empty query"),
        ({"query": "   ", "top": "visual"}, "line 2, field 'query': missing or empty query"),
        ({"query": 42, "top": "visual"}, "line 2, field 'query': query must be text"),
        ({"query": "a" * 501, "top": "visual"}, "line 2, field 'query': query is 501 characters"),
        ({"query": "bad\x1b[2J", "top": "visual"}, "line 2, field 'query': query contains control"),
        ({"query": "x"}, "line 2, field 'top': missing expected top signal"),
        ({"query": "x", "top": "video"}, "line 2, field 'top': unknown signal 'video' (known: "),
        ({"query": "x", "top": "visual", "also": "audio"}, "line 2, field 'also': expected a list"),
        (
            {"query": "x", "top": "visual", "also": ["sound"]},
            "field 'also': unknown signal 'sound'",
        ),
        ({"query": "x", "top": "visual", "weights": [0.5]}, "field 'weights': expected an object"),
        (
            {"query": "x", "top": "visual", "weights": {**WEIGHTS, "colour": 0.0}},
            "field 'weights': unknown signal(s) 'colour'",
        ),
        (
            {"query": "x", "top": "visual", "weights": {"visual": 1.0}},
            "field 'weights': missing signal(s) audio, transcription, metadata",
        ),
        (
            {"query": "x", "top": "visual", "weights": {**WEIGHTS, "visual": 1.2}},
            "field 'weights': weight 'visual' = 1.2 is outside 0..1",
        ),
        (
            {"query": "x", "top": "visual", "weights": {**WEIGHTS, "audio": "0.1"}},
            "field 'weights': weight 'audio' is str, not a number",
        ),
        (
            {"query": "x", "top": "visual", "weights": {**WEIGHTS, "visual": 0.5}},
            "field 'weights': weights sum to 0.8000, not 1.0",
        ),
        (
            {"query": "x", "top": "audio", "weights": WEIGHTS},
            "field 'weights': the weights' top signal 'visual' is not the expected top",
        ),
        ({"query": "x", "top": "visual", "tags": "short"}, "field 'tags': expected a list of str"),
        ({"query": "x", "top": "visual", "tags": [1]}, "field 'tags': expected a list of strings"),
        ({"query": "x", "top": "visual", "tags": ["two words"]}, "tag 'two words' is not one"),
    ],
)
def test_each_problem_names_its_line_and_field(record: dict[str, Any], expected: str) -> None:
    assert expected in only_problem(record)


def test_weights_within_tolerance_and_also_covering_the_weights_top_are_fine() -> None:
    near = {**WEIGHTS, "visual": 0.705}
    golden = parse_golden(
        jsonl(
            {"query": "a", "top": "visual", "weights": near},
            {"query": "b", "top": "audio", "also": ["visual"], "weights": WEIGHTS},
        ),
        "g.jsonl",
        SIGNALS,
    )

    assert len(golden.items) == 2


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("[1, 2]", "line 2: not a JSON object (got list)"),
        ("null", "line 2: not a JSON object (got null)"),
        ('{"query": ', "line 2: not valid JSON"),
        ('{"query": "x", "top": "visual", "weights": NaN}', "line 2: not valid JSON"),
    ],
)
def test_jsonl_lines_that_are_not_objects(line: str, expected: str) -> None:
    problems = problems_of(jsonl({"query": "ok", "top": "visual"}, line))

    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_duplicates_name_both_lines_and_say_whether_labels_conflict() -> None:
    problems = problems_of(
        jsonl(
            {"query": "Red  Car", "top": "visual"},
            {"query": "red car ", "top": "visual"},
            {"query": "RED CAR", "top": "metadata"},
        )
    )

    assert problems[0] == "line 2, field 'query': duplicate of line 1"
    assert problems[1].startswith(
        "line 3, field 'query': duplicate of line 1 with different labels"
    )
    assert "'metadata'" in problems[1] and "'visual'" in problems[1]


def test_duplicate_with_the_same_also_in_another_order_is_a_plain_duplicate() -> None:
    problems = problems_of(
        jsonl(
            {"query": "a", "top": "visual", "also": ["audio", "metadata"]},
            {"query": "a", "top": "visual", "also": ["metadata", "audio"]},
        )
    )

    assert problems == ["line 2, field 'query': duplicate of line 1"]


def test_every_problem_is_collected_and_str_is_one_line() -> None:
    data = jsonl(
        {"query": "fine", "top": "visual"},
        {"query": "x", "top": "video"},
        "not json",
        {"query": "", "top": "audio", "tags": "t"},
    )
    with pytest.raises(GoldenSetError) as caught:
        parse_golden(data, "set.jsonl", SIGNALS)
    error = caught.value

    assert [p.split(":")[0] for p in error.problems] == [
        "line 2, field 'top'",
        "line 3",
        "line 4, field 'query'",
        "line 4, field 'tags'",
    ]
    message = str(error)
    assert "\n" not in message
    assert message.startswith("golden set set.jsonl: 4 problems; first: line 2, field 'top': ")
    assert isinstance(error, UserInputError)


@pytest.mark.parametrize("data", [b"", b"\n\n  \n", b"query,top\n"])
def test_empty_file_is_a_problem(data: bytes) -> None:
    source = "g.csv" if data.startswith(b"query") else "g.jsonl"

    assert problems_of(data, source) == ["holds no labelled queries"]


def test_not_utf8_is_one_problem_naming_the_line() -> None:
    problems = problems_of(b'{"query": "ok", "top": "visual"}\n{"query": "\xff"}\n')

    assert problems == ["is not UTF-8 (bad byte 0xff on line 2)"]


# -- load_golden ---------------------------------------------------------------------------------
def test_load_golden_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    path.write_bytes(jsonl({"query": "red car", "top": "visual"}))

    assert load_golden(path, SIGNALS).source == str(path)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p, "file does not exist"),
        (lambda p: (p.mkdir(), p)[1], "is a directory"),
        (lambda p: (p.write_bytes(b"\xff\xfe"), p)[1], "is not UTF-8"),
        (lambda p: (p.write_bytes(b" " * (MAX_GOLDEN_BYTES + 1)), p)[1], "larger than the limit"),
    ],
)
def test_load_golden_unreadable_files_are_one_line(
    tmp_path: Path, make: Any, expected: str
) -> None:
    path = make(tmp_path / "g.jsonl")

    with pytest.raises(GoldenSetError) as caught:
        load_golden(path, SIGNALS)

    assert len(caught.value.problems) == 1 and expected in str(caught.value)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


# -- scoring -------------------------------------------------------------------------------------
def output(**weights: float) -> str:
    return json.dumps({**weights, "reasoning": "because"})


def golden_for_scoring() -> GoldenSet:
    return parse_golden(
        jsonl(
            {"query": "q1", "top": "visual", "weights": WEIGHTS, "tags": ["short"]},
            {"query": "q2", "top": "visual", "also": ["metadata"], "tags": ["mixed", "short"]},
            {"query": "q3", "top": "audio"},
            {
                "query": "q4",
                "top": "metadata",
                "weights": {"visual": 0.0, "audio": 0.0, "transcription": 0.0, "metadata": 1.0},
            },
            {"query": "q5", "top": "audio", "tags": ["mixed"]},
        ),
        "s.jsonl",
        SIGNALS,
    )


def test_scoring_strict_lenient_mae_recall_slices_and_misses() -> None:
    golden = golden_for_scoring()
    outputs = [
        output(visual=0.6, audio=0.2, transcription=0.1, metadata=0.1),  # strict hit
        output(visual=0.1, audio=0.1, transcription=0.1, metadata=0.7),  # lenient only
        output(visual=0.4, audio=0.4, transcription=0.1, metadata=0.1),  # tie: visual wins
        "not json at all",  # unparseable, has weights: out of the MAE
        output(visual=0.1, audio=0.7, transcription=0.1, metadata=0.1),  # strict hit
    ]

    result = score_golden(
        model="m", role="student", golden=golden, outputs=outputs, signals=SIGNALS
    )

    assert (result.n, result.golden_version, result.parse_rate) == (5, golden.version, 0.8)
    assert result.strict_top1 == pytest.approx(2 / 5)
    assert result.lenient_top1 == pytest.approx(3 / 5)
    assert result.strict_ci95 == wilson_interval(2, 5)
    assert result.lenient_ci95 == wilson_interval(3, 5)
    assert result.mae == pytest.approx((0.1 + 0.1 + 0.0 + 0.0) / 4)  # only q1 parsed + weighted
    assert result.n_with_weights == 2
    assert result.recall_per_signal == {"visual": 0.5, "audio": 0.5, "metadata": 0.0}
    assert set(result.slices) == {"mixed", "short"}
    assert result.slices["short"].n == 2
    assert result.slices["short"].strict_top1 == 0.5
    assert result.slices["short"].lenient_top1 == 1.0
    assert result.slices["short"].lenient_ci95 == wilson_interval(2, 2)
    assert result.slices["mixed"].strict_ci95 == wilson_interval(1, 2)
    assert [(m.query, m.expected, m.predicted) for m in result.misses] == [
        ("q2", "visual", "metadata"),
        ("q3", "audio", "visual"),
        ("q4", "metadata", "unparseable"),
    ]
    assert result.misses[0].also == ("metadata",)


def test_scoring_without_weighted_items_has_no_mae_and_caps_misses() -> None:
    golden = parse_golden(
        jsonl(*({"query": f"q{i}", "top": "audio"} for i in range(30))), "s.jsonl", SIGNALS
    )
    outputs = [output(visual=1.0, audio=0.0, transcription=0.0, metadata=0.0)] * 30

    result = score_golden(model="m", role="r", golden=golden, outputs=outputs, signals=SIGNALS)

    assert result.mae is None and result.n_with_weights == 0
    assert result.strict_top1 == 0.0 and result.recall_per_signal == {"audio": 0.0}
    assert len(result.misses) == 25 and result.misses[0].query == "q0"
    assert result.slices == {}


def test_scoring_needs_one_output_per_item() -> None:
    with pytest.raises(ValueError, match="1 outputs for 5 golden items"):
        score_golden(
            model="m", role="r", golden=golden_for_scoring(), outputs=["x"], signals=SIGNALS
        )


# -- the taxonomy's golden field -----------------------------------------------------------------
TAXONOMY: dict[str, Any] = {
    "name": "mini",
    "signals": [
        {"name": "visual", "description": "how things look"},
        {"name": "audio", "description": "how things sound"},
    ],
    "attributes": [{"name": "mood", "values": ["calm"], "informs": {"visual": 1.0}}],
}


def test_relative_golden_resolves_against_the_taxonomy_file(tmp_path: Path) -> None:
    folder = tmp_path / "taxonomies"
    folder.mkdir()
    (folder / "t.yaml").write_text(
        yaml.safe_dump({**TAXONOMY, "golden": "../golden/mini.jsonl"}), "utf-8"
    )
    (tmp_path / "absolute.yaml").write_text(
        yaml.safe_dump({**TAXONOMY, "golden": "/srv/golden.csv"}), "utf-8"
    )

    assert load_taxonomy(folder / "t.yaml").golden == str(tmp_path / "golden" / "mini.jsonl")
    assert load_taxonomy(tmp_path / "absolute.yaml").golden == "/srv/golden.csv"
    assert (
        load_taxonomy(folder / "t.yaml").fingerprint == taxonomy_from_mapping(TAXONOMY).fingerprint
    )


def test_golden_does_not_change_the_fingerprint_but_content_does() -> None:
    plain = taxonomy_from_mapping(copy.deepcopy(TAXONOMY))
    with_golden = taxonomy_from_mapping({**copy.deepcopy(TAXONOMY), "golden": "g.jsonl"})
    other = copy.deepcopy(TAXONOMY)
    other["attributes"][0]["values"] = ["calm", "eerie"]

    assert with_golden.golden == "g.jsonl"
    assert with_golden.fingerprint == plain.fingerprint
    assert taxonomy_from_mapping(other).fingerprint != plain.fingerprint


def test_builtin_fingerprints_are_what_they_were_before_the_golden_field() -> None:
    # Values from before `golden` existed; a change here re-labels every cached dataset.
    assert builtin_taxonomy("default").fingerprint == "3ff6f1eea525"
    assert builtin_taxonomy("news_archives").fingerprint == "2319f61ea0f9"
    assert builtin_taxonomy("sports_broadcasting").fingerprint == "fc97d51073a0"


@pytest.mark.parametrize("name", builtin_taxonomy_names())
def test_builtin_taxonomies_name_their_golden_set_in_the_package(name: str) -> None:
    golden = builtin_taxonomy(name).golden

    assert golden is not None and Path(golden).is_absolute()
    assert Path(golden).parent.name == "golden" and Path(golden).name == f"{name}.jsonl"
    assert (Path(golden).parent.parent / "taxonomies" / f"{name}.yaml").is_file()


def test_bad_golden_value_is_a_taxonomy_error() -> None:
    with pytest.raises(UserInputError, match="golden"):
        taxonomy_from_mapping({**TAXONOMY, "golden": "bad\x1bpath"})


# -- the shipped golden sets ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["news_archives", "sports_broadcasting"])
def test_shipped_golden_sets_parse_and_cover_every_signal(name: str) -> None:
    taxonomy = builtin_taxonomy(name)
    path = builtin_golden_path(name)
    assert path is not None and path == Path(str(taxonomy.golden))

    golden = load_golden(path, taxonomy.signal_names)

    tops = Counter(item.top for item in golden.items)
    tags = Counter(tag for item in golden.items for tag in item.tags)
    assert len(golden.items) >= 65
    assert all(tops[s] >= 10 for s in taxonomy.signal_names), tops
    for tag in ("negation", "mixed", "name", "short", "long", "typo", "quote"):
        assert tags[tag] >= 2, (tag, tags)
    assert sum(bool(item.also) for item in golden.items) >= 10
    assert any(item.weights for item in golden.items)


@pytest.mark.parametrize("name", builtin_taxonomy_names())
def test_every_builtin_golden_file_present_parses(name: str) -> None:
    path = builtin_golden_path(name)
    if path is None:
        pytest.skip(f"no golden set shipped for {name} yet")

    assert load_golden(path, builtin_taxonomy(name).signal_names).items


def test_builtin_golden_path_accepts_the_taxonomy_name_and_rejects_paths() -> None:
    assert builtin_golden_path("news-archives") == builtin_golden_path("news_archives")
    assert builtin_golden_path("no_such_taxonomy") is None
    assert builtin_golden_path("../taxonomies/default") is None


# -- CLI -----------------------------------------------------------------------------------------
def test_cli_check_ok_prints_one_summary_line(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(builtin_golden_path("news_archives"))

    status = main(["golden", "check", path, "--taxonomy", "news_archives"])

    out, err = capsys.readouterr()
    assert status == 0 and err == ""
    golden = load_golden(path, SIGNALS)
    assert out.strip().splitlines() == [out.strip()]
    assert out.startswith(
        f"golden set {path}: {len(golden.items)} queries, version {golden.version}"
    )
    assert "top signals: visual " in out and "tags: " in out and "negation " in out


def test_cli_check_with_a_taxonomy_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(TAXONOMY), "utf-8")
    (tmp_path / "g.csv").write_text("query,top\ncalm lake,visual\nthunder,audio\n", "utf-8")

    status = main(
        ["golden", "check", str(tmp_path / "g.csv"), "--taxonomy", str(tmp_path / "t.yaml")]
    )

    out = capsys.readouterr().out
    assert status == 0
    assert "2 queries" in out and "top signals: visual 1, audio 1; tags: none" in out


def test_cli_check_bad_file_lists_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "g.jsonl"
    path.write_bytes(
        jsonl({"query": "a", "top": "video"}, "[]", {"query": "b", "top": "audio", "x": 1})
    )

    status = main(["golden", "check", str(path)])

    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert status == 2 and out == ""
    assert all(line.startswith("error: ") for line in lines)
    assert lines[0].endswith(
        "line 1, field 'top': unknown signal 'video' (known: visual, audio, "
        "transcription, metadata)"
    )
    assert lines[1].endswith("line 2: not a JSON object (got list)")
    assert lines[2].endswith("line 3: unknown field 'x' (known: query, top, also, weights, tags)")
    assert lines[3] == f"error: golden set {path}: 3 problems"


def test_cli_check_missing_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["golden", "check", str(tmp_path / "none.jsonl")])

    err = capsys.readouterr().err
    assert status == 2
    assert err == f"error: golden set {tmp_path / 'none.jsonl'}: file does not exist\n"


def test_cli_check_unknown_taxonomy_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["golden", "check", "g.jsonl", "--taxonomy", "nope"])

    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "no built-in taxonomy named 'nope'" in err


def test_an_infinite_weight_is_called_not_finite_not_a_float_that_is_not_a_number() -> None:
    text = (
        "query,top,weights\n"
        'snow,visual,"{""visual"": 1e400, ""audio"": 0, ""transcription"": 0, ""metadata"": 0}"\n'
    )
    with pytest.raises(GoldenSetError) as caught:
        parse_golden(text.encode(), "set.csv", SIGNALS)
    [problem] = caught.value.problems
    assert "weight 'visual' = inf (not finite)" in problem
