"""Unit tests for intent_router.taxonomy: loading, resolving, validation messages, fingerprint."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from intent_router.errors import TaxonomyError, UserInputError
from intent_router.synthesis import QueryWriter, plan_cells
from intent_router.taxonomy import (
    BUILTIN_SIGNALS,
    MAX_ATTRIBUTES,
    MAX_PHRASING_CHARS,
    MAX_SIGNALS,
    MAX_TAXONOMY_FILE_BYTES,
    MAX_VALUE_CHARS,
    MAX_VALUES_PER_ATTRIBUTE,
    VOCABULARY_SLOTS,
    Taxonomy,
    builtin_taxonomy,
    builtin_taxonomy_names,
    load_taxonomy,
    resolve_taxonomy,
    taxonomy_from_mapping,
)
from intent_router.text import MAX_QUERY_CHARS

MINIMAL: dict[str, Any] = {
    "name": "mini",
    "signals": [
        {"name": "visual", "description": "how things look"},
        {"name": "audio", "description": "how things sound", "cues": ["clang"]},
    ],
    "attributes": [
        {
            "name": "mood",
            "values": ["eerie", "calm"],
            "informs": {"visual": 0.5, "audio": 0.5},
            "phrasings": ["a {value} mood"],
        }
    ],
}


def minimal() -> dict[str, Any]:
    return copy.deepcopy(MINIMAL)


def error_for(data: Any) -> str:
    with pytest.raises(TaxonomyError) as caught:
        taxonomy_from_mapping(data)
    return str(caught.value)


# -- built-in ------------------------------------------------------------------------------------
def test_builtin_default_has_the_four_standard_signals() -> None:
    taxonomy = builtin_taxonomy()

    assert taxonomy.name == "default"
    assert taxonomy.signal_names == ("visual", "audio", "transcription", "metadata")
    assert taxonomy.signal_names == BUILTIN_SIGNALS


def test_builtin_default_has_attributes_that_inform_known_signals() -> None:
    taxonomy = builtin_taxonomy()

    names = {a.name for a in taxonomy.attributes}
    assert {"title", "camera_angle", "people", "genre"} <= names
    for attribute in taxonomy.attributes:
        assert attribute.values
        assert set(attribute.informs) <= set(taxonomy.signal_names)


def test_builtin_names_include_default() -> None:
    assert "default" in builtin_taxonomy_names()


def test_attribute_lookup_by_name_and_unknown_name() -> None:
    taxonomy = builtin_taxonomy()

    assert taxonomy.attribute("camera_angle").informs == {"visual": 1.0}
    with pytest.raises(KeyError):
        taxonomy.attribute("no_such_attribute")


# -- resolve_taxonomy ----------------------------------------------------------------------------
def test_resolve_none_gives_the_default() -> None:
    assert resolve_taxonomy(None) == builtin_taxonomy()


def test_resolve_by_builtin_name() -> None:
    assert resolve_taxonomy("default").signal_names == BUILTIN_SIGNALS


def test_resolve_a_yaml_path(tmp_path: Path) -> None:
    file = tmp_path / "mini.yaml"
    file.write_text(yaml.safe_dump(MINIMAL), encoding="utf-8")

    taxonomy = resolve_taxonomy(str(file))

    assert taxonomy.name == "mini"
    assert taxonomy.signal_names == ("visual", "audio")


def test_resolve_a_yml_path(tmp_path: Path) -> None:
    file = tmp_path / "mini.yml"
    file.write_text(yaml.safe_dump(MINIMAL), encoding="utf-8")

    assert resolve_taxonomy(str(file)).name == "mini"


def test_resolve_a_json_path(tmp_path: Path) -> None:
    file = tmp_path / "mini.json"
    file.write_text(json.dumps(MINIMAL), encoding="utf-8")

    taxonomy = resolve_taxonomy(str(file))

    assert taxonomy.attribute("mood").values == ("eerie", "calm")


def test_resolve_a_dict() -> None:
    taxonomy = resolve_taxonomy(minimal())

    assert isinstance(taxonomy, Taxonomy)
    assert taxonomy.signals[1].cues == ("clang",)


def test_resolve_a_taxonomy_instance_returns_it_unchanged() -> None:
    taxonomy = taxonomy_from_mapping(minimal())

    assert resolve_taxonomy(taxonomy) is taxonomy


def test_yaml_and_json_files_with_equal_content_load_equal(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(MINIMAL), encoding="utf-8")
    (tmp_path / "a.json").write_text(json.dumps(MINIMAL), encoding="utf-8")

    assert load_taxonomy(tmp_path / "a.yaml") == load_taxonomy(tmp_path / "a.json")


# -- validation errors ---------------------------------------------------------------------------
def test_taxonomy_error_is_a_user_input_error() -> None:
    assert issubclass(TaxonomyError, UserInputError)
    data = minimal()
    data["attributes"][0]["values"] = []
    with pytest.raises(UserInputError):
        resolve_taxonomy(data)


def test_attribute_informing_unknown_signal_names_the_attribute_and_signal() -> None:
    data = minimal()
    data["attributes"][0]["informs"]["speech"] = 0.3

    message = error_for(data)

    assert "attribute 'mood'" in message
    assert "unknown signal" in message
    assert "speech" in message
    assert "known signals" in message


def test_empty_values_names_the_field() -> None:
    data = minimal()
    data["attributes"][0]["values"] = []

    message = error_for(data)

    assert "attributes.0.values" in message
    assert "must not be empty" in message


def test_blank_value_names_the_field() -> None:
    data = minimal()
    data["attributes"][0]["values"] = ["eerie", "   "]

    message = error_for(data)

    assert "attributes.0.values" in message
    assert "empty strings" in message


def test_duplicate_values_ignoring_case_and_spaces_are_named() -> None:
    data = minimal()
    data["attributes"][0]["values"] = ["Eerie", "calm", "eerie "]

    message = error_for(data)

    assert "attributes.0.values" in message
    assert "duplicate values: eerie" in message


@pytest.mark.parametrize("affinity", [0, 0.0, -0.5, 1.01, 2])
def test_affinity_outside_zero_one_is_rejected(affinity: float) -> None:
    data = minimal()
    data["attributes"][0]["informs"]["visual"] = affinity

    message = error_for(data)

    assert "attributes.0.informs" in message
    assert "affinity for 'visual' must be in (0, 1]" in message


def test_affinity_of_exactly_one_is_accepted() -> None:
    data = minimal()
    data["attributes"][0]["informs"] = {"visual": 1.0}

    assert taxonomy_from_mapping(data).attributes[0].informs == {"visual": 1.0}


def test_empty_informs_is_rejected() -> None:
    data = minimal()
    data["attributes"][0]["informs"] = {}

    assert "informs must name at least one signal" in error_for(data)


def test_duplicate_signal_names_are_rejected() -> None:
    data = minimal()
    data["signals"].append({"name": "visual", "description": "again"})

    message = error_for(data)

    assert "duplicate signal names" in message
    assert "visual" in message


def test_duplicate_attribute_names_are_rejected() -> None:
    data = minimal()
    data["attributes"].append(copy.deepcopy(data["attributes"][0]))

    assert "duplicate attribute names" in error_for(data)


def test_signal_named_reasoning_is_rejected() -> None:
    data = minimal()
    data["signals"].append({"name": "reasoning", "description": "clashes with the output key"})

    message = error_for(data)

    assert "'reasoning' is reserved" in message


def test_phrasing_without_value_slot_is_rejected() -> None:
    data = minimal()
    data["attributes"][0]["phrasings"] = ["a {value} mood", "a spooky mood"]

    message = error_for(data)

    assert "attributes.0.phrasings" in message
    assert "'a spooky mood' has no {value} slot" in message


def test_signal_name_must_be_a_lowercase_identifier() -> None:
    data = minimal()
    data["signals"][0]["name"] = "Visual Signal"

    assert "signals.0.name" in error_for(data)


def test_fewer_than_two_signals_is_rejected() -> None:
    data = minimal()
    data["signals"] = data["signals"][:1]
    data["attributes"][0]["informs"] = {"visual": 1.0}

    assert "signals" in error_for(data)


def test_unknown_top_level_key_is_rejected() -> None:
    data = minimal()
    data["colour"] = "red"

    message = error_for(data)

    assert "colour" in message
    assert "Extra inputs are not permitted" in message


def test_error_message_names_the_source_file(tmp_path: Path) -> None:
    data = minimal()
    data["attributes"][0]["values"] = []
    file = tmp_path / "broken.yaml"
    file.write_text(yaml.safe_dump(data), encoding="utf-8")

    with pytest.raises(TaxonomyError, match=r"broken\.yaml"):
        resolve_taxonomy(str(file))


def test_error_message_is_one_line() -> None:
    data = minimal()
    data["attributes"][0]["informs"]["nowhere"] = 0.5

    assert "\n" not in error_for(data)


# -- source errors -------------------------------------------------------------------------------
def test_unknown_builtin_name_lists_the_available_ones() -> None:
    with pytest.raises(TaxonomyError) as caught:
        resolve_taxonomy("no-such-taxonomy")

    message = str(caught.value)
    assert "no built-in taxonomy named 'no-such-taxonomy'" in message
    assert "default" in message


def test_missing_file_is_a_taxonomy_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"

    with pytest.raises(TaxonomyError, match="cannot read taxonomy file") as caught:
        resolve_taxonomy(str(missing))

    assert "missing.yaml" in str(caught.value)


def test_non_utf8_file_is_a_taxonomy_error(tmp_path: Path) -> None:
    file = tmp_path / "latin.yaml"
    file.write_bytes(b"\xff\xfe\x00bad")

    with pytest.raises(TaxonomyError, match="not UTF-8") as caught:
        resolve_taxonomy(str(file))

    assert "offset 0" in str(caught.value)


def test_unparseable_yaml_is_a_taxonomy_error(tmp_path: Path) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text("name: [unclosed\nsignals: {", encoding="utf-8")

    with pytest.raises(TaxonomyError, match="does not parse"):
        resolve_taxonomy(str(file))


def test_unparseable_json_is_a_taxonomy_error(tmp_path: Path) -> None:
    file = tmp_path / "broken.json"
    file.write_text('{"name": "x",', encoding="utf-8")

    with pytest.raises(TaxonomyError, match="does not parse"):
        resolve_taxonomy(str(file))


def test_top_level_list_is_a_taxonomy_error(tmp_path: Path) -> None:
    file = tmp_path / "list.yaml"
    file.write_text(yaml.safe_dump([MINIMAL]), encoding="utf-8")

    with pytest.raises(TaxonomyError, match="expected a mapping at the top level"):
        resolve_taxonomy(str(file))


def test_empty_yaml_file_is_a_taxonomy_error(tmp_path: Path) -> None:
    file = tmp_path / "empty.yaml"
    file.write_text("", encoding="utf-8")

    with pytest.raises(TaxonomyError, match="expected a mapping"):
        resolve_taxonomy(str(file))


@pytest.mark.parametrize("data", [None, [], "visual, audio", 42])
def test_non_mapping_inline_data_is_a_taxonomy_error(data: Any) -> None:
    assert "expected a mapping at the top level" in error_for(data)


# -- fingerprint ---------------------------------------------------------------------------------
def test_fingerprint_is_stable_for_equal_content() -> None:
    first = taxonomy_from_mapping(minimal())
    second = taxonomy_from_mapping(minimal())

    assert first.fingerprint == second.fingerprint
    assert builtin_taxonomy().fingerprint == builtin_taxonomy().fingerprint
    assert len(first.fingerprint) == 12


def test_fingerprint_does_not_depend_on_the_source_format(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(MINIMAL), encoding="utf-8")

    assert load_taxonomy(tmp_path / "a.yaml").fingerprint == resolve_taxonomy(minimal()).fingerprint


def test_fingerprint_changes_when_a_value_changes() -> None:
    changed = minimal()
    changed["attributes"][0]["values"] = ["eerie", "serene"]

    assert (
        taxonomy_from_mapping(changed).fingerprint != taxonomy_from_mapping(minimal()).fingerprint
    )


def test_fingerprint_changes_when_an_affinity_changes() -> None:
    changed = minimal()
    changed["attributes"][0]["informs"]["audio"] = 0.6

    assert (
        taxonomy_from_mapping(changed).fingerprint != taxonomy_from_mapping(minimal()).fingerprint
    )


# -- phrasings: the slots query synthesis can fill -----------------------------------------------
@pytest.mark.parametrize("phrasing", ["{value} {", "{value} }", "{value} {a b}", "{value} {}"])
def test_phrasing_with_unbalanced_braces_or_a_malformed_slot_is_rejected(phrasing: str) -> None:
    data = minimal()
    data["attributes"][0]["phrasings"] = [phrasing]

    message = error_for(data)

    assert "attributes.0.phrasings" in message and "unbalanced braces" in message


def test_phrasing_slot_naming_no_attribute_is_rejected_when_the_taxonomy_loads() -> None:
    data = minimal()
    data["attributes"][0]["phrasings"] = ["a {value} mood at {venue}"]

    message = error_for(data)

    assert "attribute 'mood'" in message and "unknown slot(s) venue" in message


def test_phrasing_may_name_value_another_attribute_and_vocabulary_slots() -> None:
    data = minimal()
    data["attributes"][0]["phrasings"] = ["a {value} mood at {venue} in {scene}"]
    data["attributes"].append({"name": "venue", "values": ["the pier"], "informs": {"visual": 1}})

    assert taxonomy_from_mapping(data).attribute("mood").phrasings[0].endswith("{scene}")


def test_vocabulary_slots_are_the_slots_the_query_writer_fills() -> None:
    writer = QueryWriter(builtin_taxonomy(), "train")

    assert set(writer._slots(random.Random(0))) == VOCABULARY_SLOTS


# -- limits --------------------------------------------------------------------------------------
def test_a_value_with_a_brace_or_control_characters_is_rejected() -> None:
    for bad, reason in [("calm {", "contains a brace"), ("calm\x1b[0m", "control characters")]:
        data = minimal()
        data["attributes"][0]["values"] = ["eerie", bad]
        assert reason in error_for(data)


@pytest.mark.parametrize(
    ("change", "location"),
    [
        (
            lambda d: d["attributes"][0].update(
                values=[f"v{i}" for i in range(MAX_VALUES_PER_ATTRIBUTE + 1)]
            ),
            "attributes.0.values",
        ),
        (
            lambda d: d["attributes"][0].update(values=["x" * (MAX_VALUE_CHARS + 1)]),
            "attributes.0.values.0",
        ),
        (
            lambda d: d["attributes"][0].update(phrasings=["{value} " + "y" * MAX_PHRASING_CHARS]),
            "attributes.0.phrasings.0",
        ),
        (
            lambda d: d["attributes"][0].update(
                phrasings=["{value} {value} {value} {value} {value}"]
            ),
            "attributes.0.phrasings",
        ),
        (lambda d: d.update(attributes=many_attributes(MAX_ATTRIBUTES + 1)), "attributes"),
        (lambda d: d["signals"][1].update(cues=["c" * (MAX_VALUE_CHARS + 1)]), "signals.1.cues.0"),
    ],
)
def test_sizes_beyond_the_limits_are_rejected(change: Any, location: str) -> None:
    data = minimal()
    change(data)

    message = error_for(data)

    assert f": {location}: " in message
    assert "\n" not in message


def many_attributes(count: int) -> list[dict[str, Any]]:
    return [
        {"name": f"a{i:02d}", "values": [f"value {i}"], "informs": {"visual": 1.0}}
        for i in range(count)
    ]


def test_bounds_are_in_the_json_schema_the_server_enforces() -> None:
    schema = json.dumps(Taxonomy.model_json_schema())

    for bound in (MAX_VALUE_CHARS, MAX_VALUES_PER_ATTRIBUTE, MAX_ATTRIBUTES, MAX_PHRASING_CHARS):
        assert f'"maxItems": {bound}' in schema or f'"maxLength": {bound}' in schema


def test_queries_from_a_taxonomy_at_every_limit_fit_the_query_limit() -> None:
    longest = "w" * (MAX_VALUE_CHARS - 3)
    attributes = many_attributes(MAX_ATTRIBUTES)
    for i, attribute in enumerate(attributes):
        attribute["values"] = [f"{longest}{j:03d}" for j in range(3)]
        others = " ".join(f"{{a{(i + k) % MAX_ATTRIBUTES:02d}}}" for k in range(1, 4))
        filler = "z" * (MAX_PHRASING_CHARS - len("{value} " + others) - 1)
        attribute["phrasings"] = [f"{filler} {{value}} {others}"]
    signals = builtin_taxonomy().model_dump(mode="json")["signals"]
    signals += [
        {"name": f"s{i:02d}", "description": "custom", "cues": [f"{longest}{i:03d}"]}
        for i in range(MAX_SIGNALS - len(signals))
    ]
    taxonomy = taxonomy_from_mapping({"name": "huge", "signals": signals, "attributes": attributes})
    writer = QueryWriter(taxonomy, "train")

    cells = [q.model_copy(update={"count": 3}) for q in plan_cells(taxonomy, 20_000, 1, "t")]
    queries = [query for quota in cells for query in writer.write_cell(quota)]

    assert len(queries) > 5_000
    assert max(len(q) for q in queries) <= MAX_QUERY_CHARS
    assert max(len(q) for q in queries) > 500  # the long phrasings were used


# -- files ---------------------------------------------------------------------------------------
def test_a_directory_is_not_a_taxonomy_file(tmp_path: Path) -> None:
    with pytest.raises(TaxonomyError, match="is a directory, not a taxonomy file"):
        resolve_taxonomy(str(tmp_path))


def test_an_unreadable_file_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "locked.yaml"
    file.write_text(yaml.safe_dump(MINIMAL), encoding="utf-8")

    def denied(*_: Any, **__: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", denied)  # chmod does not stop root

    with pytest.raises(TaxonomyError, match=r"cannot read taxonomy file .*: Permission denied"):
        load_taxonomy(file)


def test_a_file_over_the_size_limit_is_rejected_before_it_is_parsed(tmp_path: Path) -> None:
    file = tmp_path / "huge.yaml"
    file.write_bytes(b"#" * (MAX_TAXONOMY_FILE_BYTES + 1))

    with pytest.raises(TaxonomyError, match=r"larger than the limit of 1,000,000 bytes"):
        load_taxonomy(file)


def test_a_key_given_twice_in_a_taxonomy_file_is_rejected(tmp_path: Path) -> None:
    from intent_router.taxonomy import load_taxonomy

    path = tmp_path / "twice.yaml"
    path.write_text("name: shop\nname: other\nattributes: []\n")
    with pytest.raises(TaxonomyError, match="duplicate key 'name'"):
        load_taxonomy(path)
