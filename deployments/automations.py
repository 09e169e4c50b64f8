"""An automation that reacts to router.promoted / router.rejected (documented in the README)."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from prefect.automations import Automation
from prefect.events.actions import CallWebhook
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
