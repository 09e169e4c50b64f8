"""prefect.yaml, checked offline: entrypoints import, presets validate, schedules parse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prefect import Flow
from prefect.client.schemas.schedules import CronSchedule
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools.validation import validate

from deployments.serve import load_flow, runner_deployment
from deployments.specs import PREFECT_YAML, PROJECT_DIR, DeploymentSpec, load_specs
from intent_router.errors import UserInputError
from intent_router.params import DistillParams
from intent_router.taxonomy import resolve_taxonomy

SPECS = load_specs()
BY_NAME = {s.name: s for s in SPECS}


def _server_schema(spec: DeploymentSpec) -> dict[str, Any]:
    """The parameter schema the server enforces for this deployment."""
    return parameter_schema(load_flow(spec)).model_dump_for_openapi()


def test_the_three_deployments_are_declared() -> None:
    assert set(BY_NAME) == {"scheduled-retraining", "manual", "taxonomy-experiment"}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_entrypoint_file_exists_and_imports_a_flow(spec: DeploymentSpec) -> None:
    path, _, _ = spec.entrypoint.partition(":")
    assert (PROJECT_DIR / path).is_file()
    assert isinstance(load_flow(spec), Flow)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_parameter_preset_validates_against_the_flow(spec: DeploymentSpec) -> None:
    assert validate(spec.parameters, _server_schema(spec)) == []
    validated = load_flow(spec).validate_parameters(spec.parameters)
    params = DistillParams.model_validate(validated)
    resolve_taxonomy(params.taxonomy)  # the taxonomy it names exists


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_deployment_enforces_its_schema_on_the_process_pool(spec: DeploymentSpec) -> None:
    assert spec.enforce_parameter_schema
    assert spec.work_pool.name == "router-distill"
    assert spec.description


def test_retraining_runs_weekly_and_never_overlaps() -> None:
    spec = BY_NAME["scheduled-retraining"]
    [schedule] = spec.schedules
    CronSchedule(cron=schedule.cron, timezone=schedule.timezone)  # parses
    _minute, _hour, day_of_month, month, day_of_week = schedule.cron.split()
    assert (day_of_month, month) == ("*", "*") and day_of_week != "*"
    assert spec.concurrency_limit == 1
    assert "schedule" in spec.parameters["triggered_by"]


def test_manual_and_taxonomy_deployments_have_no_schedule() -> None:
    assert BY_NAME["manual"].schedules == []
    assert BY_NAME["taxonomy-experiment"].schedules == []


def test_taxonomy_deployment_trains_a_separate_router() -> None:
    params = DistillParams.model_validate(BY_NAME["taxonomy-experiment"].parameters)
    taxonomy = resolve_taxonomy(params.taxonomy)
    assert taxonomy.name != "default"
    assert (params.router_name or taxonomy.name) != "default"


def test_runner_deployment_keeps_schedule_parameters_and_entrypoint() -> None:
    deployment = runner_deployment(BY_NAME["scheduled-retraining"])
    assert deployment.name == "scheduled-retraining"
    assert deployment.entrypoint == "flows.distill.distill_router"
    assert deployment.enforce_parameter_schema
    assert deployment.parameters == BY_NAME["scheduled-retraining"].parameters
    [schedule] = deployment.schedules
    assert schedule.schedule.cron == "0 3 * * 1"  # type: ignore[union-attr]


def test_cron_override_replaces_only_the_retraining_schedule() -> None:
    retrain = runner_deployment(BY_NAME["scheduled-retraining"], cron="30 4 * * 0")
    manual = runner_deployment(BY_NAME["manual"], cron="30 4 * * 0")
    assert [s.schedule.cron for s in retrain.schedules] == ["30 4 * * 0"]  # type: ignore[union-attr]
    assert not manual.schedules


def test_missing_or_empty_prefect_yaml_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="cannot read"):
        load_specs(tmp_path / "absent.yaml")
    empty = tmp_path / "prefect.yaml"
    empty.write_text("name: x\n")
    with pytest.raises(UserInputError, match="declares no deployments"):
        load_specs(empty)
    assert PREFECT_YAML.is_file()


# The form the UI renders comes from this schema.


def _definitions() -> dict[str, Any]:
    schema = _server_schema(BY_NAME["manual"])
    return dict(schema["definitions"])


def _fields() -> dict[str, Any]:
    return dict(_server_schema(BY_NAME["manual"])["properties"])


def test_every_form_field_has_a_description() -> None:
    fields = _fields()
    assert set(fields) == set(DistillParams.model_fields)  # one top-level parameter per field
    missing = [name for name, field in fields.items() if not field.get("description")]
    assert missing == []


def test_form_has_bounds_enums_and_an_editable_taxonomy() -> None:
    definitions = _definitions()
    fields = _fields()
    assert fields["train_count"]["minimum"] == 1 and fields["train_count"]["maximum"] == 200_000
    assert fields["task_runner"]["enum"] == ["threads", "dask"]
    assert fields["taxonomy"]["default"] == "default"
    assert "Taxonomy" in definitions  # taxonomy_definition renders as a nested form
    assert "signals" in definitions["Taxonomy"]["properties"]


def _reasons(errors: list[Any]) -> list[str]:
    """Every message in the error tree (anyOf nests the real reason)."""
    return [m for e in errors for m in [e.message, *_reasons(list(e.context or []))]]


def _inline(signal_name: str) -> dict[str, Any]:
    return {
        "taxonomy_definition": {
            "name": "shop",
            "signals": [
                {"name": signal_name, "description": "how it looks"},
                {"name": "metadata", "description": "catalogue facts"},
            ],
            "attributes": [{"name": "brand", "values": ["Acme"], "informs": {"metadata": 1}}],
        }
    }


def test_server_rejects_a_malformed_inline_taxonomy_at_run_creation() -> None:
    schema = _server_schema(BY_NAME["manual"])
    assert validate(_inline("visual"), schema) == []
    errors = validate(_inline("Visual Signal"), schema)
    assert errors
    assert any("'Visual Signal' does not match" in reason for reason in _reasons(errors))


def test_flow_rejects_an_unknown_taxonomy_naming_the_field() -> None:
    flow = load_flow(BY_NAME["manual"])
    with pytest.raises(Exception, match="no built-in taxonomy named 'sportz'"):
        flow.validate_parameters({"taxonomy": "sportz"})


def test_a_one_key_override_keeps_the_other_presets() -> None:
    """The server merges run parameters into the presets per top-level key (Prefect 3.9)."""
    spec = BY_NAME["taxonomy-experiment"]
    merged = {**spec.parameters, "train_count": 3000}
    assert validate(merged, _server_schema(spec)) == []
    params = DistillParams.model_validate(load_flow(spec).validate_parameters(merged))
    assert (params.taxonomy, params.train_count) == ("sports_broadcasting", 3000)
    assert params.triggered_by == "taxonomy experiment"
