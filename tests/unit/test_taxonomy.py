"""Unit tests for intent_router.taxonomy: loading, resolving, validation messages, fingerprint."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from intent_router.errors import TaxonomyError, UserInputError
from intent_router.taxonomy import (
    BUILTIN_SIGNALS,
    Taxonomy,
    builtin_taxonomy,
    builtin_taxonomy_names,
    load_taxonomy,
    resolve_taxonomy,
    taxonomy_from_mapping,
)

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
