"""Optional human approval before the first paid step, answered from the Prefect UI.

A run of a deployment suspends: its process exits and holds no worker or `serve` slot while it
waits; once resumed, the run starts again in a new process and its completed steps come back
from the task cache and persisted results. A run without a deployment (the CLI) cannot be
suspended, so it pauses and keeps its process waiting.
"""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput
from prefect.logging import get_run_logger
from prefect.states import Cancelling
from pydantic import Field


class Approval(RunInput):
    """Approve or decline submitting the distillation job (the first paid step)."""

    approve: bool = Field(description="Submit the distillation job and continue the run.")
    reviewer: str = Field(default="", max_length=200, description="Who decided (for the log).")
    note: str = Field(default="", max_length=1000, description="Why (for the log).")


class ApprovalDeclined(Exception):
    """Nobody approved the run: declined, or the timeout passed."""


APPROVAL_KEY = "approval"  # fixed, so the resumed run finds the answer its first life asked for


def wait_for_approval(summary: str, timeout_seconds: int) -> Approval:
    """Wait until the run is approved in the UI; raise ApprovalDeclined otherwise."""
    logger = get_run_logger()
    logger.warning(
        "waiting up to %d s for approval before submitting the distillation job: %s. "
        "Resume the run in the Prefect UI and answer the form.",
        timeout_seconds,
        summary,
    )
    context = FlowRunContext.get()
    if context is not None and context.flow_run is not None and context.flow_run.deployment_id:
        # Raises Pause on the first call (the process exits); returns the answer once resumed.
        # Past the timeout the server's pause-expiration service fails the run.
        answer = suspend_flow_run(
            wait_for_input=Approval, timeout=timeout_seconds, key=APPROVAL_KEY
        )
        return _accepted(answer)
    try:
        answer = pause_flow_run(
            wait_for_input=Approval,
            timeout=timeout_seconds,
            poll_interval=max(1, min(10, timeout_seconds // 4)),
        )
    except FlowPauseTimeout:
        reason = f"nobody approved the run within {timeout_seconds} s"
        _mark_cancelling(reason)
        raise ApprovalDeclined(reason) from None
    return _accepted(answer)


def _accepted(answer: Approval) -> Approval:
    logger = get_run_logger()
    if not answer.approve:
        who = f" by {answer.reviewer}" if answer.reviewer else ""
        why = f": {answer.note}" if answer.note else ""
        raise ApprovalDeclined(f"declined{who}{why}")
    logger.info("approved%s", f" by {answer.reviewer}" if answer.reviewer else "")
    return answer


def _mark_cancelling(reason: str) -> None:
    """Once a pause has expired the server only lets the run go to Cancelling (or Failed)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(context.flow_run.id, Cancelling(message=reason))
