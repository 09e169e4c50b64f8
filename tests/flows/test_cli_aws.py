"""`run --backend aws --dry-run` and `blocks create`: no AWS access needed."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws
from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventOccurredFilter
from prefect_aws import AwsCredentials, S3Bucket

from blocks.bedrock import CONVERSE_LIMIT, BedrockDistillationBackend
from router_distill.cli import main

OPERATIONS = [
    "Converse",
    "PutObject",
    "GetModelCustomizationJob",
    "CreateModelCustomizationJob",
    "GetCustomModel",
    "CreateCustomModelDeployment",
    "GetCustomModelDeployment",
    "DeleteCustomModelDeployment",
    "UpdateCustomModelDeployment",
    "TagResource",
    "StopModelCustomizationJob",
    "DeleteCustomModel",
]


def test_dry_run_prints_a_complete_valid_plan_and_calls_nothing(
    router_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    code = main(
        ["run", "--backend", "aws", "--dry-run", "--train-count", "500", "--holdout-count", "100"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    for operation in OPERATIONS:
        assert f" {operation} x " in out, operation
    assert "INVALID" not in out and out.count("[valid]") == 13
    assert '"customizationType": "DISTILLATION"' in out
    assert "Total this run (priced lines): $" in out
    # The same run in each mode, side by side: distill-prompts pays no training label.
    table = out[out.index("The same run in each training mode") :]
    assert "distill-prompts  distill-invocation-logs  fine-tune-labelled" in table
    row = next(line for line in table.splitlines() if line.startswith("pipeline Converse calls"))
    assert row.split()[-3:] == ["0", "0", "500"]
    assert not (router_home / "store").exists()  # nothing written, nothing called


def test_dry_run_prints_the_setup_checks_and_stops_on_a_wrong_region(
    router_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--backend", "aws", "--dry-run", "--region", "eu-west-1"])
    captured = capsys.readouterr()
    assert code == 2
    assert "[FAILED] deployment region" in captured.out
    assert "[FAILED] teacher profile" in captured.out  # us. profile outside the US
    assert "[ok] role arn" in captured.out
    assert "need the live service" in captured.out and "s3:GetBucketLocation" in captured.out
    error = captured.err.strip()
    assert "\n" not in error
    assert "region_name 'eu-west-1' does not offer on-demand custom-model deployment" in error
    assert "use eu.amazon.nova-premier-v1:0" in error


def test_dry_run_plans_batch_labelling_above_the_threshold(
    router_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "--backend", "aws", "--dry-run", "--train-count", "1000"]
    code = main([*args, "--batches", "2", "--batch-labelling-threshold", "500"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert " CreateModelInvocationJob x " in out and "INVALID" not in out
    assert '"modelInvocationType": "Converse"' in out
    assert '"modelId": "us.amazon.nova-premier-v1:0"' in out
    assert "pipeline labelling (batch inference, 50% off)" in out


def test_dry_run_enforces_the_budget(router_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = ["run", "--backend", "aws", "--dry-run", "--train-count", "500", "--holdout-count", "100"]
    assert main([*run, "--budget-usd", "1000"]) == 2
    assert "no price for student training" in capsys.readouterr().err  # unpriced lines block
    assert main([*run, "--budget-usd", "0.01", "--allow-unpriced"]) == 2
    assert "exceeds the budget of $0.01" in capsys.readouterr().err


def test_dry_run_rejects_a_count_bedrock_cannot_accept(
    router_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--backend", "aws", "--dry-run", "--train-count", "20000"])
    assert code == 2
    assert "outside what backend 'bedrock-nova' accepts" in capsys.readouterr().err


SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKEKEYID0000001",
    "AWS_SECRET_ACCESS_KEY": "fake-secret-access-key-do-not-persist",
    "AWS_SESSION_TOKEN": "fake-session-token-expires-soon",
}
CREATE = [
    "blocks",
    "create",
    "--backend",
    "aws",
    "--bucket",
    "my-bucket",
    "--role-arn",
    "arn:aws:iam::123456789012:role/router-distill-bedrock",
]


def _events_since(since: datetime) -> list[dict[str, Any]]:
    """Every event the API has persisted since `since`, as JSON."""
    with get_client(sync_client=True) as client:
        page = client.read_events(EventFilter(occurred=EventOccurredFilter(since=since)), 50)
        events = [event.model_dump(mode="json") for event in page.events]
        while page.next_page:
            page = client.read_events_page(page.next_page)
            events += [event.model_dump(mode="json") for event in page.events]
    return events


def _events_about(documents: list[str], since: datetime) -> list[dict[str, Any]]:
    """Events since `since`, once each block document has one (they persist asynchronously)."""
    wanted = {f"prefect.block-document.{document}" for document in documents}
    deadline = time.monotonic() + 30
    while True:
        events = _events_since(since)
        seen = {event["resource"]["prefect.resource.id"] for event in events}
        if wanted <= seen:
            return events
        assert time.monotonic() < deadline, f"no events for {wanted - seen}"
        time.sleep(0.2)  # poll interval, bounded by the deadline


def test_blocks_create_aws_persists_no_secret_from_the_environment(
    router_home: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable, value in SECRETS.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # A block saved by the old behaviour, keys and all: the new one must replace it.
    AwsCredentials(
        aws_access_key_id=SECRETS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=SECRETS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=SECRETS["AWS_SESSION_TOKEN"],
    ).save("router-distill", overwrite=True)
    since = datetime.now(UTC)
    caplog.set_level(logging.INFO)

    assert main(CREATE) == 0

    out = capsys.readouterr().out
    saved: list[str] = [out, caplog.text]
    documents = []
    with get_client(sync_client=True) as client:
        for slug in ("aws-credentials", "s3-bucket", "router-distill-bedrock-backend"):
            document = client.read_block_document_by_name(
                "router-distill", slug, include_secrets=True
            )
            documents.append(str(document.id))
            saved.append(document.model_dump_json())
        saved += [log.model_dump_json() for log in client.read_logs()]
        saved += [artifact.model_dump_json() for artifact in client.read_artifacts()]
    saved += [json.dumps(event) for event in _events_about(documents, since)]
    for variable, value in SECRETS.items():
        leaks = [text[:200] for text in saved if value in text]
        assert not leaks, f"{variable} persisted: {leaks}"
    assert "no keys saved" in out and "boto3's default chain" in out and "instance role" in out
    assert "secrets masked" not in out
    assert "not saved from this shell: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY" in out
    credentials = AwsCredentials.load("router-distill")
    assert credentials.aws_access_key_id is None
    assert credentials.aws_secret_access_key is None
    assert credentials.aws_session_token is None
    assert credentials.profile_name is None and credentials.assume_role_arn is None
    backend = BedrockDistillationBackend.load("router-distill")
    assert backend.credentials.aws_access_key_id is None


def test_blocks_create_aws_saves_a_profile_name_only(
    router_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value in SECRETS.items():
        monkeypatch.setenv(variable, value)
    assert main([*CREATE, "--profile", "router-prod", "--converse-concurrency", "5"]) == 0
    assert main([*CREATE, "--profile", "router-prod", "--converse-concurrency", "5"]) == 0
    out = capsys.readouterr().out
    assert "from profile 'router-prod' from the shared AWS config" in out
    credentials = AwsCredentials.load("router-distill")
    assert credentials.profile_name == "router-prod"
    assert credentials.aws_access_key_id is None and credentials.aws_session_token is None
    assert credentials.aws_secret_access_key is None
    assert credentials.region_name == "us-east-1"
    backend = BedrockDistillationBackend.load("router-distill")
    assert backend.bucket.bucket_name == "my-bucket"
    assert backend.settings.role_arn == "arn:aws:iam::123456789012:role/router-distill-bedrock"
    assert S3Bucket.load("router-distill").bucket_folder == "router-distill"
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(CONVERSE_LIMIT).limit == 5


def test_blocks_create_aws_assume_role_gives_sessions_of_that_role(
    router_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    role = "arn:aws:iam::123456789012:role/router-distill-runner"
    for variable, value in SECRETS.items():
        monkeypatch.setenv(variable, value)
    assert main([*CREATE, "--assume-role-arn", role]) == 0
    out = capsys.readouterr().out
    assert f"then assuming {role} (session name 'router-distill')" in out
    credentials = AwsCredentials.load("router-distill")
    assert credentials.assume_role_arn == role and credentials.aws_access_key_id is None
    with mock_aws():  # the base credentials come from the environment at run time
        session = credentials.get_boto3_session()
        identity = session.client("sts", region_name="us-east-1").get_caller_identity()
        assert session.get_credentials().access_key != SECRETS["AWS_ACCESS_KEY_ID"]
    assert identity["Arn"].endswith(":assumed-role/router-distill-runner/router-distill")


def test_blocks_create_aws_rejects_a_malformed_assume_role_arn(
    router_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*CREATE, "--assume-role-arn", "router-distill-runner"]) == 2
    assert "--assume-role-arn" in capsys.readouterr().err


def test_blocks_create_aws_names_missing_flags(
    router_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["blocks", "create", "--backend", "aws"]) == 2
    assert "--role-arn and --bucket" in capsys.readouterr().err


def test_blocks_create_local(router_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["blocks", "create", "--backend", "local"]) == 0
    out = capsys.readouterr().out
    assert "router-distill-local-backend/router-distill" in out
    assert str(router_home / "store") in out
