"""`run --backend aws --dry-run` and `blocks create`: no AWS access needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
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
    assert "INVALID" not in out and out.count("[valid]") == 9
    assert '"customizationType": "DISTILLATION"' in out
    assert "Total (priced items): $" in out
    assert not (router_home / "store").exists()  # nothing written, nothing called


def test_dry_run_enforces_the_budget(router_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "run",
            "--backend",
            "aws",
            "--dry-run",
            "--train-count",
            "500",
            "--holdout-count",
            "100",
            "--budget-usd",
            "0.01",
        ]
    )
    assert code == 2
    assert "exceeds the budget of $0.01" in capsys.readouterr().err


def test_dry_run_rejects_a_count_bedrock_cannot_accept(
    router_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--backend", "aws", "--dry-run", "--train-count", "20000"])
    assert code == 2
    assert "outside what backend 'bedrock-nova' accepts" in capsys.readouterr().err


def test_blocks_create_aws_is_idempotent_and_keeps_secrets_out_of_output(
    router_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value")
    args = [
        "blocks",
        "create",
        "--backend",
        "aws",
        "--bucket",
        "my-bucket",
        "--role-arn",
        "arn:aws:iam::123456789012:role/router-distill-bedrock",
        "--converse-concurrency",
        "5",
    ]
    assert main(args) == 0
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "very-secret-value" not in out and "router-distill-bedrock-backend/" in out
    backend = BedrockDistillationBackend.load("router-distill")
    assert backend.bucket.bucket_name == "my-bucket"
    assert backend.settings.role_arn == "arn:aws:iam::123456789012:role/router-distill-bedrock"
    assert backend.credentials.aws_secret_access_key is not None
    assert backend.credentials.aws_secret_access_key.get_secret_value() == "very-secret-value"
    assert AwsCredentials.load("router-distill").region_name == "us-east-1"
    assert S3Bucket.load("router-distill").bucket_folder == "router-distill"
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(CONVERSE_LIMIT).limit == 5


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
