"""Confidence calibration, the cascade curve and its threshold, and route --cascade."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from intent_router.cascade import (
    ALWAYS_DEFER,
    CostModel,
    build_policy,
    calibration_error,
    cascade_curve,
    choose_point,
    confidence_features,
    fit_calibration,
)
from intent_router.registry import ChampionRecord, ChampionRegistry, now_iso
from intent_router.storage import DirectoryStore
from intent_router.student import HashedNgramStudent
from intent_router.taxonomy import builtin_taxonomy
from intent_router.teacher import ReferenceTeacher
from router_distill.cli import main
from tests.support.champions import TRAINING_QUERIES

SIGNALS = ("visual", "audio", "transcription", "metadata")
COSTS = CostModel(
    student_ms=0.05, fallback_ms=500, student_cost_per_1k=0.01, fallback_cost_per_1k=2
)


def synthetic_answers(n: int, seed: int = 0) -> tuple[list[list[float]], list[bool]]:
    """Answers whose chance of being right grows with their top weight (a calibrated world)."""
    rng = np.random.default_rng(seed)
    answers, correct = [], []
    for _ in range(n):
        weights = rng.dirichlet(np.ones(4) * 0.7)
        answers.append(list(weights))
        correct.append(bool(rng.random() < weights.max()))
    return answers, correct


def test_confidence_features_are_the_top_weight_and_the_margin() -> None:
    assert confidence_features([0.1, 0.6, 0.2, 0.1]) == pytest.approx((0.6, 0.4))
    assert confidence_features([0.25, 0.25, 0.25, 0.25]) == pytest.approx((0.25, 0.0))


def test_fitted_confidence_is_calibrated_and_grows_with_the_margin() -> None:
    answers, correct = synthetic_answers(4000)
    calibration = fit_calibration(answers, correct)
    held_answers, held_correct = synthetic_answers(4000, seed=1)
    confidences = [calibration.confidence(a) for a in held_answers]

    assert calibration_error(confidences, held_correct) < 0.03
    assert calibration.confidence([0.9, 0.05, 0.05, 0.0]) > calibration.confidence(
        [0.4, 0.35, 0.15, 0.1]
    )


def test_calibration_error_is_large_for_an_overconfident_model() -> None:
    assert calibration_error([0.99] * 100, [True] * 50 + [False] * 50) == pytest.approx(0.49)


def test_fit_calibration_rejects_mismatched_or_empty_inputs() -> None:
    with pytest.raises(ValueError, match="2 answers for 1 outcomes"):
        fit_calibration([[1.0, 0.0], [0.5, 0.5]], [True])
    with pytest.raises(ValueError, match="no answers"):
        fit_calibration([], [])


def test_the_curve_trades_local_share_for_accuracy_latency_and_cost() -> None:
    confidences = [0.95, 0.9, 0.6, 0.3]
    student = [True, True, False, False]
    teacher = [True, True, True, True]

    curve = cascade_curve(confidences, student, teacher, COSTS, thresholds=(0.0, 0.5, 0.8, 1.0))

    assert [p.local_share for p in curve] == [1.0, 0.75, 0.5, 0.0]
    assert [p.accuracy for p in curve] == [0.5, 0.75, 1.0, 1.0]
    assert curve[0].mean_latency_ms == pytest.approx(0.05)
    assert curve[2].mean_latency_ms == pytest.approx(0.05 + 0.5 * 500)
    assert curve[3].cost_per_1k_usd == pytest.approx(2.01)


def test_the_chosen_point_answers_most_locally_while_meeting_the_target() -> None:
    curve = cascade_curve(
        [0.95, 0.9, 0.6, 0.3],
        [True, True, False, False],
        [True] * 4,
        COSTS,
        thresholds=(0.0, 0.5, 0.8, 1.0),
    )
    assert choose_point(curve, 0.75).threshold == 0.5
    assert choose_point(curve, 0.99).threshold == 0.8
    # nothing reaches it (the fallback is wrong too): defer as much as possible
    unreachable = cascade_curve([0.9], [False], [False], COSTS, thresholds=(0.0, 1.0))
    assert choose_point(unreachable, 0.9).threshold == 1.0


def test_build_policy_meets_its_target_and_sends_unparseable_answers_to_the_fallback() -> None:
    answers, correct = synthetic_answers(2000)
    student_answers: list[list[float] | None] = [*answers, None]
    policy = build_policy(
        student_answers,
        [*correct, False],
        [True] * (len(answers) + 1),
        costs=COSTS,
        target_accuracy=0.95,
        fallback="teacher",
    )
    assert policy.chosen.accuracy >= 0.95
    assert 0 < policy.chosen.local_share < 1
    assert policy.defers([0.3, 0.3, 0.2, 0.2])
    assert not policy.defers([0.97, 0.01, 0.01, 0.01])
    assert policy.calibration_error < 0.05


def test_build_policy_defers_everything_when_the_target_cannot_be_met() -> None:
    answers, correct = synthetic_answers(200)
    policy = build_policy(
        answers, correct, [False] * 200, costs=COSTS, target_accuracy=0.99, fallback="teacher"
    )
    assert policy.threshold == ALWAYS_DEFER
    assert policy.defers([1.0, 0.0, 0.0, 0.0])


# -- route -------------------------------------------------------------------------------------
@pytest.fixture
def trained_champion(router_home: Path) -> ChampionRecord:
    """A small student trained on teacher labels, promoted with a cascade policy."""
    taxonomy = builtin_taxonomy()
    teacher = ReferenceTeacher(taxonomy)
    queries = [
        *TRAINING_QUERIES,
        "a man walking a dog",
        "who said we will fight on the beaches",
    ] * 3
    labels = np.array([[teacher.route(q).weights[s] for s in SIGNALS] for q in queries])
    student = HashedNgramStudent(SIGNALS, n_buckets=2**11)
    student.fit(queries, labels, max_iterations=100)
    answers, correct = synthetic_answers(2000)  # a policy with a meaningful threshold
    policy = build_policy(
        answers,
        correct,
        [True] * len(answers),
        costs=COSTS,
        target_accuracy=0.95,
        fallback="teacher",
    )
    store = DirectoryStore(router_home / "store")
    store.write("models/small/student.npz", student.to_bytes())
    record = ChampionRecord(
        router="default",
        model_id="local-model/small",
        deployment_id="dep-small",
        run_id="run-small",
        taxonomy="default",
        signals=SIGNALS,
        metrics={},
        promoted_at=now_iso(),
        cascade=policy,
    )
    ChampionRegistry(store, "default").promote(record)
    return record


def route_json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, object]]:
    assert main(["route", "--json", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_route_reports_confidence_and_cascade_asks_the_teacher_when_unsure(
    trained_champion: ChampionRecord, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = trained_champion.cascade
    assert policy is not None
    queries = ["sound of rain on a tin roof", "zxqv plorf"]
    alone = route_json(capsys, *queries)
    cascaded = route_json(capsys, "--cascade", *queries)

    for row in alone:
        assert row["answered_by"] == "student"
        assert isinstance(row["confidence"], float) and 0 <= row["confidence"] <= 1
    for solo, row in zip(alone, cascaded, strict=True):
        unsure = float(solo["confidence"]) < policy.threshold  # type: ignore[arg-type]
        assert row["answered_by"] == ("teacher" if unsure else "student")
        assert row["confidence"] == solo["confidence"]
    assert cascaded[1]["answered_by"] == "teacher"  # nothing it knows: low confidence
    teacher = ReferenceTeacher(builtin_taxonomy())
    assert cascaded[1]["weights"] == teacher.route("zxqv plorf").weights


def test_route_cascade_without_a_policy_is_a_one_line_error(
    router_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = DirectoryStore(router_home / "store")
    store.write("models/old/student.npz", HashedNgramStudent(SIGNALS, n_buckets=256).to_bytes())
    ChampionRegistry(store, "default").promote(
        ChampionRecord(
            router="default",
            model_id="local-model/old",
            deployment_id="dep-old",
            run_id="run-old",
            taxonomy="default",
            signals=SIGNALS,
            metrics={},
            promoted_at=now_iso(),
        )
    )
    assert main(["route", "--cascade", "rain"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no cascade policy" in err[0]
    assert main(["route", "--json", "rain"]) == 0
    assert json.loads(capsys.readouterr().out)["confidence"] is None


def test_route_cascade_needs_the_taxonomy_file_of_a_custom_router(
    trained_champion: ChampionRecord, router_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = DirectoryStore(router_home / "store")
    ChampionRegistry(store, "custom").promote(
        trained_champion.model_copy(update={"router": "custom", "taxonomy": "my-own"})
    )
    assert main(["route", "--router", "custom", "--cascade", "rain"]) == 2
    assert "pass --taxonomy FILE" in capsys.readouterr().err


def test_the_cascade_fallback_must_be_a_model_the_backend_evaluates(router_home: Path) -> None:
    from intent_router.backends.local import LocalBackend
    from intent_router.errors import UserInputError
    from intent_router.evaluation import check_cascade_fallback

    baselines = LocalBackend(DirectoryStore(router_home / "store")).baselines(builtin_taxonomy())
    check_cascade_fallback("teacher", baselines)
    with pytest.raises(UserInputError, match="'baseline-haiku' is not a model this backend"):
        check_cascade_fallback("baseline-haiku", baselines)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("threshold", 1.5),
        ("threshold", -1),
        ("threshold", float("nan")),
        ("calibration.top_coef", float("nan")),
        ("calibration.intercept", float("inf")),
        ("calibration.margin_coef", 1e308),
    ],
)
def test_a_champion_record_with_a_corrupt_cascade_is_refused(
    trained_champion: ChampionRecord,
    router_home: Path,
    capsys: pytest.CaptureFixture[str],
    field: str,
    value: float,
) -> None:
    pointer = router_home / "store" / "routers" / "default" / "champion.json"
    record = json.loads(pointer.read_text())
    target = record["cascade"]
    *parents, leaf = field.split(".")
    for name in parents:
        target = target[name]
    target[leaf] = value
    pointer.write_text(json.dumps(record))  # json writes NaN / Infinity literals

    assert main(["route", "--json", "rain on a tin roof"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "corrupt" in err[0]


def test_a_fallback_that_is_not_the_teacher_is_named_by_its_role(
    trained_champion: ChampionRecord, router_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pointer = router_home / "store" / "routers" / "default" / "champion.json"
    record = json.loads(pointer.read_text())
    record["cascade"]["fallback_role"] = "baseline-haiku"
    pointer.write_text(json.dumps(record))
    assert main(["route", "--cascade", "rain"]) == 2
    assert "role 'baseline-haiku'" in capsys.readouterr().err


def test_a_dry_run_refuses_a_cascade_fallback_the_backend_does_not_evaluate(
    router_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"cascade_fallback": "baseline-nope"}))
    assert main(["run", "--params-json", str(params), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'baseline-nope' is not a model this backend evaluates" in err[0]


@pytest.mark.parametrize("content", ["[]", "{}", '{"x": 1}'])
def test_bench_refuses_a_compare_file_that_is_not_a_bench_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    previous = tmp_path / "old.json"
    previous.write_text(content)
    assert main(["bench", "--compare", str(previous)]) == 2  # before any pipeline starts
    assert "is not a bench report" in capsys.readouterr().err


def test_bench_refuses_a_report_path_in_a_missing_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "--report-json", str(tmp_path / "nope" / "b.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
