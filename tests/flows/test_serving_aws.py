"""Serving a Bedrock champion kept in S3 (moto) behind a saved storage block: `route` and the
client get their Converse client from the block's credentials and call the fake deployment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prefect_aws import AwsCredentials

from blocks.storage import load_storage_block, object_store
from intent_router.serving import load_router
from router_distill.cli import main
from tests.support.aws import bedrock_on_moto
from tests.support.champions import promote_bedrock, promote_local
from tests.support.fake_bedrock import FakeBedrock
from tests.unit.test_fake_bedrock import active_deployment

pytestmark = pytest.mark.flow


class Session:
    """Stands in for the boto3 session the credentials block hands out; records the config."""

    def __init__(self, fake: FakeBedrock, configs: list[Any]) -> None:
        self.fake = fake
        self.configs = configs

    def client(self, service: str, **kwargs: Any) -> Any:
        self.configs.append((service, kwargs.get("config")))
        return self.fake.client(service)


def test_route_answers_with_a_bedrock_champion_from_the_s3_storage_block(
    router_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeBedrock(job_polls_to_finish=1, deployment_polls_to_active=0)
    configs: list[Any] = []
    monkeypatch.setattr(AwsCredentials, "get_boto3_session", lambda self: Session(fake, configs))
    deployment = active_deployment(fake)  # before moto: its job reads no training file
    with bedrock_on_moto(monkeypatch, fake, bucket="serving-bucket", name="serving"):
        store = object_store(load_storage_block("s3-bucket/serving"))
        champion = promote_bedrock(store, deployment)

        code = main(["route", "--storage-block", "s3-bucket/serving", "--json", "sound of rain"])
        out = capsys.readouterr().out
        assert code == 0, out
        answer = json.loads(out)
        assert answer["model_id"] == champion.model_id
        assert (answer["answered_by"], answer["fallback"]) == ("student", False)
        assert fake.calls_to("converse")[-1]["modelId"] == deployment
        service, config = configs[-1]
        assert service == "bedrock-runtime"
        assert config.retries == {"mode": "standard", "total_max_attempts": 2}
        assert (config.region_name, config.read_timeout) == ("us-east-1", 10.0)

        fake.throttle("converse", 1)
        assert main(["route", "--storage-block", "s3-bucket/serving", "rain"]) == 0
        assert "(fallback: prior, throttled)" in capsys.readouterr().out

        # the client follows a promotion in the bucket
        router = load_router("default", "s3-bucket/serving", watch=False)
        assert router.route("rain").model_id == champion.model_id
        local = promote_local(store, "m-after")
        assert router.refresh() is True
        assert router.route("rain").model_id == local.model_id
