"""One `prefect server start` + `router-distill serve` shared by the browser tests of a session.

Each test starts its own flow run with its own router name and finds it by name or id, so the
tests do not depend on each other or on their order. Started only when an e2e test asks for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.system.processes import Stack, prefect_server, serve_deployments


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = time.monotonic()
    with prefect_server(tmp_path_factory.mktemp("e2e-stack")) as running:
        serve_deployments(running)
        print(f"server and serve up in {time.monotonic() - started:.1f} s")
        yield running
    alive = [p.args for p in running.processes if p.poll() is None]
    assert alive == [], f"processes left running: {alive}"
