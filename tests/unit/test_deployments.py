"""prefect.yaml and serve, checked offline: entrypoints import, presets validate, schedules
parse, pull steps and job variables are usable, serve refuses names deployed on a work pool."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from prefect import Flow
from prefect.client.schemas.schedules import CronSchedule
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.utilities.callables import parameter_schema
from prefect.utilities.importtools import import_object
from prefect.utilities.schema_tools.validation import validate
from prefect.utilities.templating import apply_values

from deployments.serve import (
    load_flow,
    refuse_pool_deployments,
    runner_deployment,
    serve_deployments,
)
from deployments.specs import (
    PREFECT_YAML,
    PROJECT_DIR,
    DeploymentSpec,
    WorkPoolSpec,
    load_document,
    load_specs,
)
from intent_router.errors import UserInputError
from intent_router.params import DistillParams, MonitorParams
from intent_router.settings import HOME_ENV, home
from intent_router.taxonomy import resolve_taxonomy

SPECS = load_specs()
BY_NAME = {s.name: s for s in SPECS}


def _server_schema(spec: DeploymentSpec) -> dict[str, Any]:
    """The parameter schema the server enforces for this deployment."""
    return parameter_schema(load_flow(spec)).model_dump_for_openapi()


def test_the_four_deployments_are_declared() -> None:
    assert set(BY_NAME) == {
        "scheduled-retraining",
        "manual",
        "taxonomy-experiment",
        "drift-monitor",
    }


def test_scheduled_retraining_takes_traffic_and_a_dated_seed() -> None:
    params = DistillParams.model_validate(BY_NAME["scheduled-retraining"].parameters)
    assert params.seed_policy == "scheduled-date"
    assert params.traffic == "default"
    assert params.holdout_seed == DistillParams().holdout_seed  # like for like


def test_drift_monitor_runs_daily_on_the_monitor_flow() -> None:
    spec = BY_NAME["drift-monitor"]
    assert spec.entrypoint == "flows/monitor.py:monitor_router"
    [schedule] = spec.schedules
    _minute, _hour, day_of_month, month, day_of_week = schedule.cron.split()
    assert (day_of_month, month, day_of_week) == ("*", "*", "*")
    MonitorParams.model_validate(spec.parameters)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_entrypoint_file_exists_and_imports_a_flow(spec: DeploymentSpec) -> None:
    path, _, _ = spec.entrypoint.partition(":")
    assert (PROJECT_DIR / path).is_file()
    assert isinstance(load_flow(spec), Flow)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_parameter_preset_validates_against_the_flow(spec: DeploymentSpec) -> None:
    assert validate(spec.parameters, _server_schema(spec)) == []
    validated = load_flow(spec).validate_parameters(spec.parameters)
    model = MonitorParams if spec.name == "drift-monitor" else DistillParams
    params = model.model_validate(validated)
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


# One way to deploy per environment: serve refuses names that are on a work pool.


class FakeServe:
    """Stands in for prefect.serve: records what would be served, serves nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, *deployments: Any, **options: Any) -> None:
        self.calls.append((deployments, options))


@pytest.fixture
def fake_serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServe]:
    fake = FakeServe()
    monkeypatch.setattr("deployments.serve.serve", fake)
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        yield fake


def test_serve_refuses_deployments_that_are_on_a_work_pool(fake_serve: FakeServe) -> None:
    pools = {"distill-router/manual": "router-distill", "distill-router/taxonomy-experiment": None}
    asked: list[str] = []

    def work_pool_of(name: str) -> str | None:
        asked.append(name)
        return pools.get(name)

    with pytest.raises(UserInputError) as refused:
        serve_deployments(work_pool_of=work_pool_of)
    message = str(refused.value)
    assert "\n" not in message
    assert "distill-router/manual" in message
    assert "taxonomy-experiment" not in message  # only the ones on a pool are named
    assert "prefect worker start --pool router-distill" in message and "delete" in message
    flow_of = {"drift-monitor": "monitor-router"}
    assert sorted(asked) == sorted(f"{flow_of.get(n, 'distill-router')}/{n}" for n in BY_NAME)
    assert fake_serve.calls == []  # nothing was registered or served


def test_refusal_names_every_deployment_on_a_pool() -> None:
    with pytest.raises(UserInputError, match="distill-router/a, distill-router/b already"):
        refuse_pool_deployments(["distill-router/a", "distill-router/b"], lambda _: "pool-x")
    refuse_pool_deployments(["distill-router/a"], lambda _: None)  # absent or served: fine


def test_serve_leaves_schedules_active_when_it_stops(
    fake_serve: FakeServe, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(HOME_ENV, "relative-home")
    serve_deployments(limit=1, work_pool_of=lambda _: None)
    [(deployments, options)] = fake_serve.calls
    assert options == {"limit": 1, "pause_on_shutdown": False}
    assert {d.name for d in deployments} == set(BY_NAME)
    assert all(d.work_pool_name is None for d in deployments)
    # Served runs inherit an absolute storage root, resolved where serve was started.
    assert os.environ[HOME_ENV] == str(tmp_path / "relative-home")


# Workers that run anywhere: pull steps and job variables, checked offline.

DOCUMENT = load_document()
RESERVED_STEP_KEYS = {"id", "requires"}


def _steps(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every pull step declared in prefect.yaml: templates under definitions and real ones."""
    lists = [*document["definitions"].get("pull", {}).values(), document.get("pull") or []]
    lists += [d.get("pull") or [] for d in document["deployments"]]
    return [next(iter(step.items())) for steps in lists for step in steps]


def test_pull_steps_name_real_step_functions_with_their_arguments() -> None:
    steps = _steps(DOCUMENT)
    assert "prefect.deployments.steps.git_clone" in {name for name, _ in steps}
    for name, inputs in steps:
        function = import_object(name)
        accepted = set(inspect.signature(function).parameters)
        assert set(inputs) - RESERVED_STEP_KEYS <= accepted, name


def test_git_clone_template_takes_the_token_from_a_secret_block() -> None:
    [step] = DOCUMENT["definitions"]["pull"]["git_clone"]
    clone = step["prefect.deployments.steps.git_clone"]
    assert clone["repository"].startswith("https://") and clone["branch"]
    assert clone["access_token"].replace(" ", "") == (
        "{{prefect.blocks.secret.router-distill-git-token}}"
    )


def test_process_pool_deployments_keep_the_local_working_directory() -> None:
    # No pull section: `prefect deploy` then records set_working_directory(<this folder>).
    assert "pull" not in DOCUMENT
    assert all("pull" not in d for d in DOCUMENT["deployments"])
    assert callable(import_object("prefect.deployments.steps.set_working_directory"))


def _as_prefect_deploy_renders(
    value: Any, home_at_deploy: str | None, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """The two templating passes of `prefect deploy` (prefect/cli/deploy/_core.py); `{{ $VAR }}`
    reads os.environ, with ROUTER_DISTILL_HOME as the deployer's shell has it (None: unset)."""
    if home_at_deploy is None:
        monkeypatch.delenv(HOME_ENV, raising=False)
    else:
        monkeypatch.setenv(HOME_ENV, home_at_deploy)
    with_env = apply_values(value, dict(os.environ), remove_notset=False)
    return apply_values(with_env, {}, skip_prefixes=["ctx."])


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_process_pool_pins_the_deployers_router_distill_home(
    spec: DeploymentSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = spec.work_pool.job_variables["env"]
    rendered = _as_prefect_deploy_renders(env, "/srv/router-distill", monkeypatch)
    assert rendered == {HOME_ENV: "/srv/router-distill"}


def test_unset_home_at_deploy_time_means_the_working_directory_of_the_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = BY_NAME["manual"].work_pool.job_variables["env"]
    rendered = _as_prefect_deploy_renders(env, None, monkeypatch)
    assert rendered[HOME_ENV] == ""
    monkeypatch.setenv(HOME_ENV, rendered[HOME_ENV])  # what the worker gives the run
    monkeypatch.chdir(tmp_path)  # the run starts in the recorded project folder
    assert home() == tmp_path / ".router-distill"


def test_container_pool_template_has_an_absolute_home_for_its_pods() -> None:
    pool = WorkPoolSpec.model_validate(DOCUMENT["definitions"]["work_pools"]["kubernetes"])
    assert pool.name != "router-distill"  # its own pool, never the process pool
    env = pool.job_variables["env"]
    assert PurePosixPath(env[HOME_ENV]).is_absolute()
    assert "image" in pool.job_variables
