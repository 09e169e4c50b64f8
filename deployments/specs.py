"""The deployments declared in prefect.yaml, read once for `serve` and for the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from intent_router.errors import UserInputError

PROJECT_DIR = Path(__file__).resolve().parents[1]
PREFECT_YAML = PROJECT_DIR / "prefect.yaml"


class ScheduleSpec(BaseModel):
    """One schedule of a deployment (cron only: that is all prefect.yaml uses here)."""

    model_config = ConfigDict(extra="forbid")

    cron: str
    timezone: str = "UTC"
    active: bool = True


class WorkPoolSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    work_queue_name: str | None = None
    job_variables: dict[str, Any] = Field(default_factory=dict)


class DeploymentSpec(BaseModel):
    """The parts of a prefect.yaml deployment that `serve` and the checks use."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    entrypoint: str
    tags: list[str] = Field(default_factory=list)
    enforce_parameter_schema: bool = True
    concurrency_limit: int | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    schedules: list[ScheduleSpec] = Field(default_factory=list)
    work_pool: WorkPoolSpec

    @property
    def module_entrypoint(self) -> str:
        """'flows/distill.py:distill_router' -> 'flows.distill.distill_router'."""
        path, _, function = self.entrypoint.partition(":")
        module = path.removesuffix(".py").replace("/", ".")
        return f"{module}.{function}"


def load_document(path: Path = PREFECT_YAML) -> dict[str, Any]:
    """prefect.yaml as a mapping, anchors resolved (`definitions` included)."""
    try:
        document = yaml.safe_load(path.read_text("utf-8"))
    except OSError as error:
        raise UserInputError(f"cannot read {path}: {error.strerror}") from None
    return dict(document or {})


def load_specs(path: Path = PREFECT_YAML) -> list[DeploymentSpec]:
    """Every deployment in prefect.yaml, validated."""
    deployments = load_document(path).get("deployments")
    if not deployments:
        raise UserInputError(f"{path} declares no deployments")
    return [DeploymentSpec.model_validate(d) for d in deployments]
