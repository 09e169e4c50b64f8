"""One Prefect test harness for every flow-level test (starting it costs 15-25 s)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from prefect.testing.utilities import prefect_test_harness

from intent_router.backends.base import LabelResult
from intent_router.backends.local import LocalBackend
from intent_router.taxonomy import Taxonomy


@pytest.fixture(autouse=True, scope="session")
def prefect_api() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


class TeacherCalls:
    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def teacher_calls(monkeypatch: pytest.MonkeyPatch) -> TeacherCalls:
    """Counts every query the local teacher is asked to label."""
    calls = TeacherCalls()
    original = LocalBackend.label

    def counting(
        self: LocalBackend, queries: Sequence[str], taxonomy: Taxonomy
    ) -> list[LabelResult]:
        calls.count += len(queries)
        return original(self, queries, taxonomy)

    monkeypatch.setattr(LocalBackend, "label", counting)
    return calls
