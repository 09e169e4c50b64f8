"""Choosing where the batch fan-out runs."""

from __future__ import annotations

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.fanout import fan_out
from intent_router.errors import UserInputError


def test_threads_use_the_flows_own_task_runner() -> None:
    with fan_out("threads") as runner:
        assert runner is None


def test_dask_without_a_prefect_server_is_refused_with_the_reason() -> None:
    with (
        temporary_settings({PREFECT_API_URL: None}),
        pytest.raises(UserInputError, match="needs a Prefect server"),
        fan_out("dask"),
    ):
        pass


@pytest.mark.parametrize("workers", ["two", "0", "-1", "65"])
def test_bad_local_dask_worker_count_is_named(
    workers: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROUTER_DISTILL_DASK_WORKERS", workers)
    monkeypatch.delenv("ROUTER_DISTILL_DASK_ADDRESS", raising=False)
    with (
        temporary_settings({PREFECT_API_URL: "http://127.0.0.1:1/api"}),
        pytest.raises(UserInputError, match="ROUTER_DISTILL_DASK_WORKERS must be"),
        fan_out("dask"),
    ):
        pass
