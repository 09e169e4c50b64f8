"""An automation that reacts to router.promoted / router.rejected (documented in the README)."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from prefect.automations import Automation
from prefect.events.actions import CallWebhook, RunDeployment
from prefect.events.schemas.automations import EventTrigger, Posture

# Rendered by the server with the event that fired; the payload is what tasks/promote.py emits.
WEBHOOK_BODY = (
    '{"event": "{{ event.event }}", "router": "{{ event.payload.router }}", '
    '"model_id": "{{ event.payload.model_id }}", "run_id": "{{ event.payload.run_id }}", '
    '"top_signal_accuracy": "{{ event.payload.metrics.top_signal_accuracy }}", '
    '"gate": "{{ event.payload.gate }}"}'
)


def router_webhook(
    webhook_block_id: UUID,
    *,
    events: tuple[str, ...] = ("router.promoted", "router.rejected"),
    router: str | None = None,
    name: str = "router-outcome-webhook",
) -> Automation:
    """POST every promotion or rejection (of one router, or all) to a saved Webhook block."""
    return Automation(
        name=name,
        description="Tell a chat channel or an on-call tool when a router is promoted or "
        "a candidate is rejected.",
        trigger=EventTrigger(
            expect=set(events),
            match={"prefect.resource.id": f"router.{router}" if router else "router.*"},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[CallWebhook(block_document_id=webhook_block_id, payload=WEBHOOK_BODY)],
    )


def retrain_on_drift(
    deployment_id: UUID,
    *,
    router: str | None = None,
    name: str = "retrain-on-drift",
) -> Automation:
    """Run the retraining deployment when the monitor emits router.drift (of one router, or
    any). The deployment's concurrency limit keeps a second drift event from overlapping a
    retraining run that is still going; it waits instead."""
    return Automation(
        name=name,
        description="Start a retraining run when the drift monitor says the router drifted.",
        trigger=EventTrigger(
            expect={"router.drift"},
            match={"prefect.resource.id": f"router.{router}" if router else "router.*"},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            RunDeployment(
                source="selected",
                deployment_id=deployment_id,
                parameters={"triggered_by": "automation: router.drift"},
            )
        ],
    )
