"""What a run created, kept in storage so clean-up works from another process.

A run writes `runs/<run id>/resources.json` as soon as it submits a distillation job or creates
a deployment, before anything can go wrong with it. The flow's crash and cancellation hooks
(run by the worker or `serve` process when the flow's own process died) read it, stop the jobs
still running and delete the deployments that are not the champion's. Each job entry also says
which attempt it is and how the earlier attempts ended.
"""

from __future__ import annotations

import json
from typing import Any

from intent_router.backends.base import JobSubmission
from intent_router.errors import CorruptStateError
from intent_router.storage import ObjectStore


class RunJournal:
    """The jobs and deployments one flow run created or used."""

    def __init__(self, store: ObjectStore, run_id: str) -> None:
        self.store = store
        self.path = f"runs/{run_id}/resources.json"

    def _load(self) -> dict[str, Any]:
        data = self.store.read(self.path)
        if data is None:
            return {"deployments": [], "jobs": []}
        try:
            payload = json.loads(data)
            found = {"deployments": payload["deployments"], "jobs": payload.get("jobs", [])}
            if not isinstance(found["deployments"], list) or not isinstance(found["jobs"], list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise CorruptStateError(
                f"{self.path} is corrupt; it lists a run's jobs and deployments"
            ) from None
        return found

    def _save(self, payload: dict[str, Any]) -> None:
        self.store.write(self.path, json.dumps(payload, indent=2).encode())

    def deployments(self) -> list[str]:
        return [str(d) for d in self._load()["deployments"]]

    def record_deployment(self, deployment_id: str) -> None:
        payload = self._load()
        if deployment_id not in payload["deployments"]:
            payload["deployments"].append(deployment_id)
            self._save(payload)

    def jobs(self) -> list[JobSubmission]:
        try:
            return [JobSubmission.model_validate(j) for j in self._load()["jobs"]]
        except ValueError:
            raise CorruptStateError(f"{self.path} is corrupt; a job entry is invalid") from None

    def record_job(self, submission: JobSubmission) -> None:
        payload = self._load()
        known = [j for j in payload["jobs"] if j.get("job_id") != submission.job_id]
        payload["jobs"] = [*known, submission.model_dump(mode="json")]
        self._save(payload)
