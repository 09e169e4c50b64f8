"""Retries: transient errors are retried with backoff; validation errors fail fast."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

import flows.distill
from flows.distill import distill_router
from intent_router.backends.base import LabelResult
from intent_router.backends.local import LocalBackend
from intent_router.errors import TransientBackendError
from intent_router.taxonomy import Taxonomy
from tasks.generate import generate_batch
from tasks.runtime import is_transient

PARAMS = {
    "train_count": 200,
    "holdout_count": 40,
    "novel_vocabulary_count": 0,
    "batches": 2,
    "poll_interval_seconds": 0,
    "seed": 99,
    "traffic": "none",  # counts the synthetic batches; traffic labelling: test_traffic_flow.py
}


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "Converse")


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (TransientBackendError("busy"), True),
        (client_error("ThrottlingException"), True),
        (client_error("ModelNotReadyException"), True),
        (client_error("ServiceUnavailableException"), True),
        (client_error("InternalServerException"), True),
        (client_error("ValidationException"), False),
        (client_error("ServiceQuotaExceededException"), False),
        (ValueError("bad"), False),
        (None, False),
    ],
)
def test_only_transient_errors_are_retried(error: BaseException | None, transient: bool) -> None:
    assert is_transient(error) is transient


class FlakyTeacher:
    def __init__(self, error: Exception, failures: int) -> None:
        self.error = error
        self.failures = failures
        self.attempts = 0


def install_flaky(monkeypatch: pytest.MonkeyPatch, flaky: FlakyTeacher) -> None:
    original = LocalBackend.label

    def label(self: LocalBackend, queries: Sequence[str], taxonomy: Taxonomy) -> list[LabelResult]:
        flaky.attempts += 1
        if flaky.attempts <= flaky.failures:
            raise flaky.error
        return original(self, queries, taxonomy)

    monkeypatch.setattr(LocalBackend, "label", label)
    # Same task, no backoff wait, so the test does not sleep.
    monkeypatch.setattr(
        flows.distill, "generate_batch", generate_batch.with_options(retry_delay_seconds=0)
    )


def test_transient_teacher_error_is_retried(
    router_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky = FlakyTeacher(TransientBackendError("ThrottlingException"), failures=2)
    install_flaky(monkeypatch, flaky)
    summary = distill_router(**PARAMS)
    assert summary.dataset.train_records == 200
    assert flaky.attempts == 2 + 3  # two failures, then every batch (2 train + 1 holdout)


def test_validation_error_fails_fast(router_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flaky = FlakyTeacher(ValueError("malformed request"), failures=10)
    install_flaky(monkeypatch, flaky)
    with pytest.raises(ValueError, match="malformed request"):
        distill_router(**{**PARAMS, "seed": 100})
    assert flaky.attempts <= 3  # one attempt per batch, never a retry
