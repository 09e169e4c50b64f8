"""The approval gate in the Prefect UI: a paused run of `manual` resumed from the Resume form.

The run is created through the REST API with `require_approval`; it pauses before the
distillation job is submitted (flows/approval.py). The browser opens the flow run, waits for
Paused, clicks Resume, answers the Approval form (approve on, a reviewer), submits and follows the
run until the page shows Completed. The outcome is then checked through the API and on disk.

Same conditions as tests/e2e/test_ui.py (whose marks and helpers this module imports): only with
`pytest -m e2e`, with Debian's /usr/bin/chromium; the server is the session fixture `stack`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.e2e.test_ui import (
    RUN_TIMEOUT_MS,
    _browser_page,
    _input,
    _phase_timer,
    _property,
    _screenshot_dir,
)
from tests.e2e.test_ui import pytestmark as e2e_marks
from tests.support.runs import LENIENT_GATE, TINY_RUN
from tests.system.processes import Stack

pytestmark = e2e_marks  # the e2e mark and the Chromium skip condition of test_ui.py

ROUTER_NAME = "ui-approval"
REVIEWER = "e2e-reviewer"
PAUSE_TIMEOUT_MS = 120_000  # from creation to Paused: preflight and data generation run first
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
APPROVAL_RUN: dict[str, Any] = {
    **TINY_RUN,
    "gate": LENIENT_GATE,
    "taxonomy": "news_archives",
    "router_name": ROUTER_NAME,
    "require_approval": True,
    "approval_timeout_seconds": 600,
}


def _create_run(stack: Stack) -> str:
    with stack.api() as client:
        deployment = client.get("/deployments/name/distill-router/manual")
        deployment.raise_for_status()
        created = client.post(
            f"/deployments/{deployment.json()['id']}/create_flow_run",
            json={"parameters": APPROVAL_RUN},
        )
        assert created.status_code == 201, created.text
        return str(created.json()["id"])


def _cancel_if_unfinished(stack: Stack, run_id: str) -> None:
    """After a failure, free serve's single slot (`--limit 1`) for the other tests of the stack."""
    with stack.api() as client:
        run = client.get(f"/flow_runs/{run_id}").json()
        if run["state_type"] not in TERMINAL | {"CANCELLING"}:
            client.post(
                f"/flow_runs/{run_id}/set_state",
                json={"state": {"type": "CANCELLING", "message": "e2e test failed"}, "force": True},
            )


def _approve_in_the_ui(
    page: Page, stack: Stack, run_id: str, shots: Path, phase: Callable[[str], None]
) -> None:
    page.goto(f"{stack.url}/runs/flow-run/{run_id}")
    state = page.locator(".page-heading-flow-run__meta .state-badge").first
    expect(state).to_have_text(re.compile(r"^\s*Paused\s*$"), timeout=PAUSE_TIMEOUT_MS)
    phase("run page shows Paused")

    page.get_by_role("button", name="Resume", exact=True).click()
    dialog = page.get_by_role("dialog").filter(has_text="Resume Flow Run")
    expect(dialog).to_be_visible()
    # `approve` is the form's only boolean: a p-toggle rendered as role=switch.
    approve = dialog.get_by_role("switch")
    expect(approve).to_have_attribute("aria-checked", "false")
    approve.click()
    expect(approve).to_have_attribute("aria-checked", "true")
    reviewer = _input(_property(dialog, "Reviewer"))
    reviewer.fill(REVIEWER)
    expect(reviewer).to_have_value(REVIEWER)

    page.screenshot(path=str(shots / "resume-form.png"))
    dialog.get_by_role("button", name="Submit", exact=True).click()
    expect(dialog).to_be_hidden()
    phase("approval submitted from the Resume form")

    # The run page refreshes itself; wait for a terminal state and require Completed.
    expect(state).to_have_text(
        re.compile(r"Completed|Failed|Crashed|Cancelled"), timeout=RUN_TIMEOUT_MS
    )
    page.screenshot(path=str(shots / "approved-run.png"))
    assert state.inner_text().strip() == "Completed", f"the run ended {state.inner_text()!r}"


def _assert_outcome(stack: Stack, run_id: str) -> None:
    with stack.api() as client:
        run = client.get(f"/flow_runs/{run_id}").json()
        assert run["state_type"] == "COMPLETED", run["state"]
        messages: list[str] = []
        while True:  # the server returns at most 200 logs per call
            page = client.post(
                "/logs/filter",
                json={
                    "logs": {"flow_run_id": {"any_": [run_id]}},
                    "sort": "TIMESTAMP_ASC",
                    "offset": len(messages),
                    "limit": 200,
                },
            )
            page.raise_for_status()
            batch = [entry["message"] for entry in page.json()]
            messages += batch
            if len(batch) < 200:
                break
        assert any(f"approved by {REVIEWER}" in m for m in messages), messages[-20:]

    ledger = stack.home / "store" / "routers" / ROUTER_NAME / "ledger.jsonl"
    assert ledger.is_file(), f"no ledger at {ledger}"


def test_paused_run_resumed_from_the_ui_approval_form_completes(
    tmp_path: Path, stack: Stack
) -> None:
    shots = _screenshot_dir(tmp_path)
    phase = _phase_timer()

    run_id = _create_run(stack)
    phase(f"run {run_id} created through the API")
    try:
        with _browser_page(shots, stack) as page:
            _approve_in_the_ui(page, stack, run_id, shots, phase)
            phase("run page shows Completed")
    except BaseException:
        _cancel_if_unfinished(stack, run_id)
        raise
    _assert_outcome(stack, run_id)
    phase("outcome checked through the API")
    assert (shots / "resume-form.png").stat().st_size > 10_000
