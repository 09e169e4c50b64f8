"""The serving client: local and Bedrock champions, reload on promotion, fallbacks."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest

from intent_router.backends.local import student_decision
from intent_router.cascade import CascadePolicy, build_policy
from intent_router.errors import UserInputError
from intent_router.prompts import student_system_prompt, teacher_prompt, teacher_user_message
from intent_router.registry import ChampionRegistry
from intent_router.serving import (
    NoChampionError,
    ServingSettings,
    converse_config,
    failure_of,
    load_router,
)
from intent_router.storage import DirectoryStore
from intent_router.student import HashedNgramStudent
from intent_router.taxonomy import builtin_taxonomy
from tests.support.champions import PRIOR, SIGNALS, promote_bedrock, promote_local, trained_student
from tests.support.fake_bedrock import FakeBedrock
from tests.unit.test_cascade import COSTS, synthetic_answers
from tests.unit.test_fake_bedrock import active_deployment


@pytest.fixture
def store(tmp_path: Path) -> DirectoryStore:
    return DirectoryStore(tmp_path / "store")


def cascade_policy(n: int, target_accuracy: float) -> CascadePolicy:
    """A cascade policy to the teacher, calibrated on `n` synthetic answers."""
    answers, correct = synthetic_answers(n)
    return build_policy(
        answers,
        correct,
        [True] * n,
        costs=COSTS,
        target_accuracy=target_accuracy,
        fallback="teacher",
    )


# -- local champions ---------------------------------------------------------------------------


def test_a_local_champion_answers_like_its_student(store: DirectoryStore) -> None:
    student = trained_student()
    champion = promote_local(store, "m-1", student=student)
    with load_router("default", store=store, watch=False) as router:
        decision = router.route("  sound of rain on a tin roof ")
        many = router.route_many(["sound of rain on a tin roof", "drone shot of a beach"])

    expected = student_decision(student, "sound of rain on a tin roof")
    assert decision.weights == expected.weights
    assert decision.reasoning == expected.reasoning
    assert decision.model_id == champion.model_id
    assert (decision.answered_by, decision.fallback, decision.fallback_reason) == (
        "student",
        False,
        None,
    )
    assert decision.confidence is None  # no cascade policy: no calibrated confidence
    assert decision.latency_ms >= 0
    assert [d.weights for d in many] == [
        student_decision(student, q).weights
        for q in ["sound of rain on a tin roof", "drone shot of a beach"]
    ]
    assert abs(sum(decision.weights.values()) - 1.0) < 1e-6


def test_bad_queries_raise_value_errors_naming_them(store: DirectoryStore) -> None:
    promote_local(store, "m-1")
    router = load_router("default", store=store, watch=False)
    with pytest.raises(ValueError, match="query is empty"):
        router.route("   ")
    with pytest.raises(ValueError, match="query 2: query is 100,000 characters"):
        router.route_many(["rain", "x" * 100_000])
    assert router.route_many([]) == []


def test_no_champion_is_a_clear_error_or_a_router_that_is_not_ready(
    store: DirectoryStore,
) -> None:
    with pytest.raises(NoChampionError, match="no router has been promoted yet for 'default'"):
        load_router("default", store=store, watch=False)
    router = load_router("default", store=store, watch=False, require_champion=False)
    assert not router.ready
    with pytest.raises(NoChampionError, match="no champion loaded"):
        router.route("rain")
    champion = promote_local(store, "m-1")
    assert router.refresh() is True
    assert router.route("rain").model_id == champion.model_id


def test_a_promotion_is_picked_up_by_refresh_and_the_old_model_answers_until_then(
    store: DirectoryStore,
) -> None:
    first = promote_local(store, "m-1")
    router = load_router("default", store=store, watch=False)
    assert router.refresh() is False  # nothing changed
    second = promote_local(store, "m-2", student=trained_student(["crickets chirping"] * 3))
    assert router.route("rain").model_id == first.model_id  # not checked yet
    assert router.refresh() is True
    assert router.route("rain").model_id == second.model_id
    assert router.status()["reloads"] == 1


def test_the_background_check_swaps_the_champion(store: DirectoryStore) -> None:
    promote_local(store, "m-1")
    settings = ServingSettings(reload_interval_s=0.05)
    with load_router("default", store=store, settings=settings) as router:
        second = promote_local(store, "m-2")
        assert router.wait_for_champion(second.model_id, timeout_s=30)
        assert router.route("rain").model_id == second.model_id


def test_a_promotion_under_traffic_fails_no_request(store: DirectoryStore) -> None:
    first = promote_local(store, "m-1")
    settings = ServingSettings(reload_interval_s=0.05)
    seen: set[str] = set()
    errors: list[BaseException] = []
    stop = threading.Event()
    new_answer = threading.Event()
    with load_router("default", store=store, settings=settings) as router:

        def traffic() -> None:
            while not stop.is_set():
                try:
                    model = router.route("sound of rain").model_id
                except BaseException as error:  # any failure is the defect under test
                    errors.append(error)
                    continue
                seen.add(model)
                if model == "local-model/m-2":
                    new_answer.set()

        worker = threading.Thread(target=traffic)
        worker.start()
        second = promote_local(store, "m-2")
        assert router.wait_for_champion(second.model_id, timeout_s=30)
        assert new_answer.wait(30)  # the traffic itself got an answer from the new model
        stop.set()
        worker.join()
    assert errors == []
    assert second.model_id in seen and seen <= {first.model_id, second.model_id}


@pytest.mark.parametrize("damage", ["missing artifact", "corrupt artifact", "corrupt pointer"])
def test_a_broken_reload_keeps_the_previous_champion_and_reports_it(
    store: DirectoryStore, damage: str
) -> None:
    first = promote_local(store, "m-1")
    router = load_router("default", store=store, watch=False)
    if damage == "corrupt pointer":
        (store.root / "routers/default/champion.json").write_text('{"router": ')
    else:
        promote_local(store, "m-2", write_artifact=damage != "missing artifact")
        if damage == "corrupt artifact":
            (store.root / "models/m-2/student.npz").write_bytes(b"not a model")

    assert router.refresh() is False
    assert router.route("rain").model_id == first.model_id
    status = router.status()
    assert status["ready"] is True and status["reload_failures"] == 1
    expected = "champion.json is corrupt" if damage == "corrupt pointer" else "models/m-2"
    assert expected in status["reload_error"]
    if damage != "corrupt pointer":
        (store.root / "models/m-2").mkdir(parents=True, exist_ok=True)
        (store.root / "models/m-2/student.npz").write_bytes(trained_student().to_bytes())
        assert router.refresh() is True  # repaired: the next check loads it
        assert router.status()["reload_error"] is None


def test_a_deleted_pointer_keeps_serving_and_is_reported(store: DirectoryStore) -> None:
    first = promote_local(store, "m-1")
    router = load_router("default", store=store, watch=False)
    (store.root / "routers/default/champion.json").unlink()
    assert router.refresh() is False
    assert router.route("rain").model_id == first.model_id
    assert "champion.json is missing" in router.status()["reload_error"]


def test_the_cascade_asks_the_reference_teacher_when_the_student_is_unsure(
    store: DirectoryStore,
) -> None:
    policy = cascade_policy(2000, target_accuracy=0.95)
    promote_local(store, "m-1", cascade=policy)
    plain = load_router("default", store=store, watch=False)
    cascaded = load_router(
        "default", store=store, watch=False, settings=ServingSettings(cascade=True)
    )
    for query in ["sound of rain on a tin roof", "zxqv plorf"]:
        alone, asked = plain.route(query), cascaded.route(query)
        assert alone.confidence is not None and asked.confidence == alone.confidence
        unsure = alone.confidence < policy.threshold
        assert asked.answered_by == ("teacher" if unsure else "student")
        assert asked.fallback is False
    assert cascaded.route("zxqv plorf").answered_by == "teacher"


def test_the_cascade_needs_a_policy(store: DirectoryStore) -> None:
    promote_local(store, "m-1")
    with pytest.raises(UserInputError, match="has no cascade policy"):
        load_router("default", store=store, watch=False, settings=ServingSettings(cascade=True))


def test_the_prior_comes_from_the_record_else_the_student_else_uniform(
    store: DirectoryStore,
) -> None:
    promote_local(store, "m-1", prior=None)
    router = load_router("default", store=store, watch=False)
    active = router._snapshot()
    student = trained_student()
    assert student.prior is not None
    assert active.prior == pytest.approx(dict(zip(SIGNALS, student.prior.tolist(), strict=True)))
    untrained = HashedNgramStudent(SIGNALS, n_buckets=256)
    promote_local(store, "m-3", student=untrained, prior=None)
    router.refresh()
    assert router._snapshot().prior == {s: 0.25 for s in SIGNALS}


# -- Bedrock champions on the validated fake --------------------------------------------------


def answer(weights: dict[str, float], reasoning: str = "fake student") -> str:
    return json.dumps({**weights, "reasoning": reasoning})


STUDENT_ANSWER = {"visual": 0.1, "audio": 0.7, "transcription": 0.1, "metadata": 0.1}
TEACHER_ANSWER = {"visual": 0.05, "audio": 0.85, "transcription": 0.05, "metadata": 0.05}


@pytest.fixture
def fake() -> FakeBedrock:
    def responder(model_id: str, system: str, user: str) -> str:
        if model_id.startswith("us.amazon.nova-premier"):
            return answer(TEACHER_ANSWER, "fake teacher")
        return answer(STUDENT_ANSWER)

    return FakeBedrock(responder=responder, job_polls_to_finish=1, deployment_polls_to_active=0)


def bedrock_router(
    store: DirectoryStore, fake: FakeBedrock, settings: ServingSettings | None = None
) -> Any:
    return load_router(
        "default",
        store=store,
        settings=settings,
        runtime_factory=lambda _store, region, _settings: fake.runtime,
        watch=False,
    )


def test_a_bedrock_champion_is_called_on_its_deployment_with_the_student_prompt(
    store: DirectoryStore, fake: FakeBedrock
) -> None:
    deployment = active_deployment(fake)
    champion = promote_bedrock(store, deployment)
    router = bedrock_router(store, fake)
    decision = router.route("sound of rain")
    assert decision.weights == STUDENT_ANSWER
    assert (decision.model_id, decision.answered_by, decision.fallback) == (
        champion.model_id,
        "student",
        False,
    )
    (call,) = fake.calls_to("converse")
    assert call["modelId"] == deployment
    assert call["system"] == [{"text": student_system_prompt(builtin_taxonomy())}]
    assert call["messages"][0]["content"] == [{"text": "sound of rain"}]
    assert router.blocking is True
    many = router.route_many(["rain", "drums", "a speech"])
    assert [d.weights for d in many] == [STUDENT_ANSWER] * 3


def test_a_distill_prompts_champion_is_called_with_the_teacher_prompt(
    store: DirectoryStore, fake: FakeBedrock
) -> None:
    promote_bedrock(store, active_deployment(fake), prompt="teacher")
    bedrock_router(store, fake).route("sound of rain")
    (call,) = fake.calls_to("converse")
    assert call["system"] == [{"text": teacher_prompt(builtin_taxonomy())}]
    assert call["messages"][0]["content"] == [{"text": teacher_user_message("sound of rain")}]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("ThrottlingException", "throttled"),
        ("ModelTimeoutException", "timeout"),
        ("ModelErrorException", "model_error"),
        ("ServiceUnavailableException", "unavailable"),
        ("AccessDeniedException", "error"),
    ],
)
def test_a_failed_call_answers_the_prior_and_is_counted(
    store: DirectoryStore, fake: FakeBedrock, code: str, reason: str
) -> None:
    promote_bedrock(store, active_deployment(fake))
    router = bedrock_router(store, fake)
    fake.inject_error("converse", code)
    failed, fine = router.route_many(["sound of rain", "drums"])
    assert (failed.answered_by, failed.fallback, failed.fallback_reason) == ("prior", True, reason)
    assert failed.weights == PRIOR and failed.confidence is None
    assert reason in failed.reasoning
    assert (fine.answered_by, fine.fallback) == ("student", False)
    assert router.status()["fallbacks"] == {reason: 1}
    assert router.status()["queries"] == {"prior": 1, "student": 1}


def test_an_unparseable_answer_falls_back(store: DirectoryStore, fake: FakeBedrock) -> None:
    promote_bedrock(store, active_deployment(fake))
    router = bedrock_router(store, fake)
    fake.responder = lambda model, system, user: "I think it is mostly audio."
    decision = router.route("sound of rain")
    assert (decision.answered_by, decision.fallback_reason) == ("prior", "unparsed")


def test_with_the_cascade_a_failure_asks_the_bedrock_teacher(
    store: DirectoryStore, fake: FakeBedrock
) -> None:
    policy = cascade_policy(500, target_accuracy=0.5)
    promote_bedrock(store, active_deployment(fake), cascade=policy)
    settings = ServingSettings(cascade=True, teacher_model_id="us.amazon.nova-premier-v1:0")
    router = bedrock_router(store, fake, settings)
    fake.throttle("converse", 1)
    decision = router.route("sound of rain")
    assert (decision.answered_by, decision.fallback, decision.fallback_reason) == (
        "teacher",
        True,
        "throttled",
    )
    assert decision.weights == TEACHER_ANSWER
    teacher_call = fake.calls_to("converse")[-1]
    assert teacher_call["modelId"] == "us.amazon.nova-premier-v1:0"
    assert teacher_call["messages"][0]["content"] == [
        {"text": teacher_user_message("sound of rain")}
    ]
    # the teacher throttled too: the prior answers
    fake.throttle("converse", 2)
    assert router.route("sound of rain").answered_by == "prior"


def test_the_bedrock_cascade_needs_the_teacher_model_id(
    store: DirectoryStore, fake: FakeBedrock
) -> None:
    policy = cascade_policy(200, target_accuracy=0.5)
    promote_bedrock(store, active_deployment(fake), cascade=policy)
    with pytest.raises(UserInputError, match="teacher_model_id"):
        bedrock_router(store, fake, ServingSettings(cascade=True))


def test_a_bedrock_champion_of_a_custom_taxonomy_needs_its_file(
    store: DirectoryStore, fake: FakeBedrock
) -> None:
    promote_bedrock(store, active_deployment(fake), taxonomy="my-own")
    with pytest.raises(UserInputError, match="pass --taxonomy FILE"):
        bedrock_router(store, fake)
    taxonomy = builtin_taxonomy().model_copy(update={"name": "my-own"})
    router = load_router(
        "default",
        store=store,
        taxonomy=taxonomy,
        runtime_factory=lambda *_: fake.runtime,
        watch=False,
    )
    assert router.route("rain").answered_by == "student"


def test_the_serving_client_has_standard_retries_and_explicit_timeouts() -> None:
    config = converse_config(ServingSettings(max_attempts=3, read_timeout_s=4), "us-west-2")
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert (config.read_timeout, config.connect_timeout, config.region_name) == (
        4,
        2.0,
        "us-west-2",
    )


def test_a_real_botocore_read_timeout_answers_the_prior(
    store: DirectoryStore, fake: FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real bedrock-runtime client against a local socket that never answers."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
    settings = ServingSettings(read_timeout_s=0.3, connect_timeout_s=0.3, max_attempts=1)

    def real_client(_store: Any, region: str, serving: ServingSettings) -> Any:
        return boto3.session.Session().client(
            "bedrock-runtime", endpoint_url=endpoint, config=converse_config(serving, region)
        )

    promote_bedrock(store, active_deployment(fake))
    try:
        router = load_router(
            "default", store=store, settings=settings, runtime_factory=real_client, watch=False
        )
        decision = router.route("sound of rain")
    finally:
        silent.close()
    assert (decision.answered_by, decision.fallback_reason) == ("prior", "timeout")


def test_failure_reasons_of_errors_that_are_not_client_errors() -> None:
    from botocore.exceptions import EndpointConnectionError

    from intent_router.errors import RouterOutputError

    assert failure_of(EndpointConnectionError(endpoint_url="http://x")).reason == "unavailable"
    assert failure_of(RouterOutputError("no JSON")).reason == "unparsed"
    assert failure_of(RuntimeError("boom")).reason == "error"


def test_the_registry_reads_the_pointer_bytes_it_compares(store: DirectoryStore) -> None:
    champion = promote_local(store, "m-1")
    found = ChampionRegistry(store, "default").read_pointer()
    assert found is not None and found[1] == champion
    assert found[0] == (store.root / "routers/default/champion.json").read_bytes()
    assert ChampionRegistry(store, "other").read_pointer() is None


def test_a_champion_whose_record_and_artifact_disagree_on_signals_is_refused(
    store: DirectoryStore,
) -> None:
    policy = cascade_policy(2000, target_accuracy=0.95)
    first = promote_local(store, "m-1", cascade=policy)
    router = load_router("default", store=store, watch=False)
    other = ("visual", "audio", "speech", "metadata")  # the student answers transcription
    promote_local(store, "m-2", cascade=policy, signals=other)
    assert router.refresh() is False
    assert router.route("rain").model_id == first.model_id  # no KeyError: the old one serves
    assert "'speech'" in router.status()["reload_error"]
    with pytest.raises(UserInputError, match="champion record says"):
        load_router("default", store=store, watch=False)


def test_a_bedrock_champion_whose_signals_differ_from_its_builtin_taxonomy_says_so(
    store: DirectoryStore, fake: FakeBedrock
) -> None:
    promote_bedrock(store, active_deployment(fake), signals=("visual", "audio", "speech"))
    with pytest.raises(UserInputError) as caught:
        bedrock_router(store, fake)
    message = str(caught.value)
    assert "not built in" not in message  # it is: its signals differ
    assert "['visual', 'audio', 'speech']" in message and "pass --taxonomy FILE" in message
