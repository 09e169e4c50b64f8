"""The Prefect UI end to end: a custom run of `manual` from the form, in headless Chromium.

A real `prefect server start` and `router-distill serve` (tests/system/processes.py, shared with
the other browser tests through the session fixture `stack` in tests/e2e/conftest.py); the browser
opens the deployment, fills the top-level parameters of Run > Custom run, submits, follows the
flow run until the page shows Completed, and opens its `evaluation` artifact. The outcome is then
checked through the API and on disk.

Runs only with `pytest -m e2e` (addopts deselects it) and needs Debian's /usr/bin/chromium;
Playwright's own browser downloads are never used. Screenshots go to the folder
$ROUTER_DISTILL_E2E_SCREENSHOTS if set.
"""

from __future__ import annotations

import base64
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page, expect, sync_playwright

from tests.system.processes import Stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RUN_TIMEOUT_MS = 240_000
UI_TIMEOUT_MS = 30_000
ROUTER_NAME = "ui-e2e"
EVALUATION_KEY = f"evaluation-{ROUTER_NAME}"  # artifact keys are per router

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(  # CI sets ROUTER_DISTILL_E2E_REQUIRED=1: a missing browser fails there
        not CHROMIUM.exists() and not os.environ.get("ROUTER_DISTILL_E2E_REQUIRED"),
        reason=f"{CHROMIUM} is absent (apt-get install chromium)",
    ),
]

# Typed into the form, field by field. Top-level parameters are labelled "<name> (Optional)",
# the fields of the nested gate "<Title> (Optional)".
PARAM_FIELDS: dict[str, str] = {
    "taxonomy": "news_archives",
    "train_count": "300",
    "holdout_count": "80",
    "novel_vocabulary_count": "20",
    "batches": "2",
    "poll_interval_seconds": "0",
}
GATE_FIELDS: dict[str, str] = {
    "Min Top Signal Accuracy": "0.3",
    "Min Mean Rubric": "1.5",
    "Min Golden Top1": "0.3",
}
EXPECTED_PARAMS: dict[str, Any] = {
    "taxonomy": "news_archives",
    "router_name": ROUTER_NAME,
    "train_count": 300,
    "holdout_count": 80,
    "novel_vocabulary_count": 20,
    "batches": 2,
    "poll_interval_seconds": 0,
}
EXPECTED_GATE: dict[str, float] = {
    "min_top_signal_accuracy": 0.3,
    "min_mean_rubric": 1.5,
    "min_golden_top1": 0.3,
}

SCREENSHOT_ATTEMPTS = 5
MIN_TABLE_COLOURS = 16  # a blank area is 1 colour; rendered text gives some 80 to 300

# Resolves after fonts are loaded and two animation frames (one full paint) have passed.
_NEXT_PAINTED_FRAME_JS = """
() => document.fonts.ready.then(
  () => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))
).then(() => null)
"""
# Distinct RGB colours of a PNG (base64) inside a clip; decoded with a canvas in the browser.
_DISTINCT_COLOURS_JS = """
async ([png, clip]) => {
  const image = new Image();
  image.src = "data:image/png;base64," + png;
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = image.width;
  canvas.height = image.height;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const data = context.getImageData(clip.x, clip.y, clip.width, clip.height).data;
  const colours = new Set();
  for (let i = 0; i < data.length; i += 4) {
    colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  }
  return colours.size;
}
"""

# The closest enclosing form property of a label (not the `gate` object around it).
_PROPERTY = (
    "xpath=ancestor::div[contains(concat(' ', normalize-space(@class), ' '), "
    "' schema-form-property ')][1]"
)


def _screenshot_dir(tmp_path: Path) -> Path:
    configured = os.environ.get("ROUTER_DISTILL_E2E_SCREENSHOTS")
    folder = Path(configured) if configured else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _property(scope: Page | Locator, title: str) -> Locator:
    """The schema-form property whose label is exactly `<title> (Optional)`."""
    label = scope.locator(".schema-form-property__label").filter(
        has_text=re.compile(rf"^\s*{re.escape(title)} \(Optional\)\s*$")
    )
    return label.locator(_PROPERTY)


def _input(prop: Locator) -> Locator:
    return (
        prop.locator(".p-label__body").first.locator("input:not([type=checkbox]), textarea").first
    )


def _fill(prop: Locator, value: str) -> None:
    field = _input(prop)
    field.fill(value)
    expect(field).to_have_value(value)


@contextmanager
def _browser_page(shots: Path, stack: Stack) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_context(viewport={"width": 1920, "height": 1080}).new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        try:
            yield page
        except Exception:
            with suppress(PlaywrightError):
                page.screenshot(path=str(shots / "failure.png"))
            print(f"page at failure: {page.url}\nserve log:\n{stack.log('serve')[-4000:]}")
            raise
        finally:
            browser.close()


def _start_custom_run(page: Page, stack: Stack, run_name: str, shots: Path) -> None:
    """Deployments > manual > Run > Custom run; fill the form; Submit."""
    page.goto(f"{stack.url}/deployments")
    page.get_by_role("link", name="manual", exact=True).click()
    page.wait_for_url(re.compile(r"/deployments/deployment/[0-9a-f-]+"))
    # exact: the sidebar's "Runs" entry is a role=button too.
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_role("button", name="Custom run", exact=True).click()
    page.wait_for_url(re.compile(r"/deployments/deployment/[0-9a-f-]+/run"))

    run_name_input = page.locator(".flow-run-name-input input")
    run_name_input.fill(run_name)
    expect(run_name_input).to_have_value(run_name)

    # The deployment's presets arrive in the form (taxonomy "default"); we change them here.
    expect(_input(_property(page, "taxonomy"))).to_have_value("default")
    for title, value in PARAM_FIELDS.items():
        _fill(_property(page, title), value)
    gate = _property(page, "gate")
    for title, value in GATE_FIELDS.items():
        _fill(_property(gate, title), value)
    # router_name is `str | None`: pick "str" in its type switch, then type the name.
    router_name = _property(page, "router_name")
    router_name.get_by_role("button", name="str", exact=True).click()
    _fill(router_name, ROUTER_NAME)

    submit = page.get_by_role("button", name="Submit", exact=True)
    submit.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "custom-run-form.png"))
    submit.click()
    # The UI returns to the deployment page, whose Runs tab lists the new run.
    page.wait_for_url(re.compile(r"/deployments/deployment/[0-9a-f-]+/?(\?.*)?$"))


def _open_run_and_wait(page: Page, run_name: str, shots: Path) -> None:
    page.get_by_role("link", name=run_name, exact=True).click()
    page.wait_for_url(re.compile(r"/runs/flow-run/[0-9a-f-]+"))
    # The run page refreshes itself; wait for a terminal state and require Completed.
    state = page.locator(".page-heading-flow-run__meta .state-badge").first
    expect(state).to_be_visible()
    print(f"{run_name} is {state.inner_text().strip()} when its page opens")
    expect(state).to_have_text(
        re.compile(r"Completed|Failed|Crashed|Cancelled"), timeout=RUN_TIMEOUT_MS
    )
    page.screenshot(path=str(shots / "flow-run.png"))
    assert state.inner_text().strip() == "Completed", f"the run ended {state.inner_text()!r}"


def _screenshot_evaluation(page: Page, shots: Path) -> Path:
    page.locator("li.p-tab", has_text="Artifacts").click()
    card = page.locator("a").filter(
        has=page.locator(".artifact-card__title", has_text=re.compile(rf"^\s*{EVALUATION_KEY}\s*$"))
    )
    card.click()
    page.wait_for_url(re.compile(r"/artifacts/artifact/[0-9a-f-]+"))
    expect(page.get_by_role("link", name=EVALUATION_KEY, exact=True).first).to_be_visible()
    table = page.locator("table")
    expect(table.locator("tbody tr")).to_have_count(4)  # candidate, teacher, 2 baselines
    expect(table).to_contain_text(f"{ROUTER_NAME}-student")
    path = shots / "evaluation-artifact.png"
    # Under load headless Chromium has captured the app's frame with the content area not yet
    # painted (sidebar only). Check the saved image itself: the table's area must hold text.
    scratch = page.context.new_page()
    try:
        for _ in range(SCREENSHOT_ATTEMPTS):
            page.evaluate(_NEXT_PAINTED_FRAME_JS)
            box = table.bounding_box()
            assert box is not None, "the evaluation table has no layout box"
            png = page.screenshot(path=str(path))
            clip = {key: round(box[key]) for key in ("x", "y", "width", "height")}
            colours = scratch.evaluate(_DISTINCT_COLOURS_JS, [base64.b64encode(png).decode(), clip])
            if colours >= MIN_TABLE_COLOURS:
                return path
            print(f"the evaluation table is blank in the screenshot ({colours} colours); again")
    finally:
        scratch.close()
    raise AssertionError(f"the evaluation table is blank in {path} ({colours} colours)")


def _assert_outcome(stack: Stack, run_name: str) -> None:
    with stack.api() as client:
        runs = client.post(
            "/flow_runs/filter", json={"flow_runs": {"name": {"any_": [run_name]}}}
        ).json()
        assert len(runs) == 1, runs
        [run] = runs
        assert run["state_type"] == "COMPLETED", run["state"]
        deployment = client.get(f"/deployments/{run['deployment_id']}").json()
        assert deployment["name"] == "manual"

        params = run["parameters"]
        assert {key: params.get(key) for key in EXPECTED_PARAMS} == EXPECTED_PARAMS
        assert {key: params["gate"].get(key) for key in EXPECTED_GATE} == EXPECTED_GATE
        # Untouched fields keep the deployment's value.
        assert params["triggered_by"] == "manual run from the Prefect UI"

        artifacts = client.post(
            "/artifacts/filter",
            json={
                "artifacts": {
                    "flow_run_id": {"any_": [run["id"]]},
                    "key": {"any_": [EVALUATION_KEY]},
                }
            },
        ).json()
        assert [a["key"] for a in artifacts] == [EVALUATION_KEY], artifacts

    ledger = stack.home / "store" / "routers" / ROUTER_NAME / "ledger.jsonl"
    assert ledger.is_file(), f"no ledger at {ledger}"


def _phase_timer() -> Callable[[str], None]:
    """Prints each named phase with the seconds since the timer started (shown with -s)."""
    started = time.monotonic()

    def phase(name: str) -> None:
        print(f"{time.monotonic() - started:6.1f} s  {name}")

    return phase


def test_custom_run_from_the_ui_form_completes_with_an_evaluation_artifact(
    tmp_path: Path, stack: Stack
) -> None:
    shots = _screenshot_dir(tmp_path)
    run_name = f"ui-e2e-{uuid.uuid4().hex[:8]}"
    phase = _phase_timer()

    with _browser_page(shots, stack) as page:
        _start_custom_run(page, stack, run_name, shots)
        phase("custom run submitted from the form")
        _open_run_and_wait(page, run_name, shots)
        phase("run page shows Completed")
        screenshot = _screenshot_evaluation(page, shots)
        phase("evaluation artifact captured")
    _assert_outcome(stack, run_name)
    phase("outcome checked through the API")

    assert screenshot.is_file()
    assert screenshot.stat().st_size > 10_000, screenshot.stat().st_size
    print(f"evaluation screenshot: {screenshot}")
