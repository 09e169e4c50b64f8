"""What a run created, kept in storage so clean-up works from another process.

A run writes `runs/<run id>/resources.json` as soon as it creates a deployment, before anything
can go wrong with it. The flow's crash and cancellation hooks (run by the worker or `serve`
process when the flow's own process died) read it and delete what is not the champion's.
"""

from __future__ import annotations

import json

from intent_router.errors import CorruptStateError
from intent_router.storage import ObjectStore


class RunJournal:
    """The deployments one flow run created."""

    def __init__(self, store: ObjectStore, run_id: str) -> None:
        self.store = store
        self.path = f"runs/{run_id}/resources.json"

    def deployments(self) -> list[str]:
        data = self.store.read(self.path)
        if data is None:
            return []
        try:
            found = json.loads(data)["deployments"]
        except (ValueError, KeyError, TypeError):
            raise CorruptStateError(
                f"{self.path} is corrupt; it lists a run's deployments"
            ) from None
        return [str(d) for d in found]

    def record_deployment(self, deployment_id: str) -> None:
        known = self.deployments()
        if deployment_id not in known:
            payload = {"deployments": [*known, deployment_id]}
            self.store.write(self.path, json.dumps(payload, indent=2).encode())
