"""Router events (`router.promoted`, `router.rejected`, `router.drift`): one resource shape, so
one automation trigger (`prefect.resource.id: router.<name>`) matches them all."""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event


def emit_router_event(event: str, router: str, run_id: str, payload: dict[str, Any]) -> None:
    """Emit `event` about router `router`, related to the flow run that found it."""
    emit_event(
        event=event,
        resource={"prefect.resource.id": f"router.{router}", "prefect.resource.name": router},
        related=[
            {
                "prefect.resource.id": f"prefect.flow-run.{run_id}",
                "prefect.resource.role": "flow-run",
            }
        ]
        if run_id != "local"
        else None,
        payload=payload,
    )
