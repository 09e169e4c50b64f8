"""The labelling cache key: the teacher's fingerprint and the label code are in it; it is
stable across processes. Computed with the task's own cache policy, as Prefect does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from intent_router.backends.base import TeacherFingerprint
from intent_router.backends.bedrock import BedrockBackend, BedrockSettings
from intent_router.backends.local import LocalBackend
from intent_router.params import DistillParams
from intent_router.planning import plan_generation
from intent_router.storage import DirectoryStore
from intent_router.taxonomy import resolve_taxonomy
from tasks.generate import generate_batch
from tasks.runtime import Runtime, code_version, label_code_files

TAXONOMY = resolve_taxonomy("default")
BATCH = plan_generation(
    DistillParams(train_count=300, holdout_count=40, batches=2), TAXONOMY
).train_batches[0]
LOCAL = TeacherFingerprint(
    backend="local",
    teacher_model_id="reference-teacher",
    prompt_sha256="0" * 16,
    label_settings="deterministic rules",
)


def cache_key(**changes: Any) -> str | None:
    inputs: dict[str, Any] = {
        "batch": BATCH,
        "taxonomy": TAXONOMY,
        "teacher": LOCAL,
        "code_version": code_version(),
        "runtime": Runtime(),
    } | changes
    policy = generate_batch.cache_policy
    assert policy is not None
    key: str | None = policy.compute_key(
        task_ctx=SimpleNamespace(task=generate_batch),  # type: ignore[arg-type]
        inputs=inputs,
        flow_parameters={},
    )
    return key


@pytest.mark.parametrize(
    "field,value",
    [
        ("backend", "bedrock"),
        ("teacher_model_id", "us.amazon.nova-premier-v1:0"),
        ("prompt_sha256", "1" * 16),
        ("label_settings", "maxTokens=200 temperature=0.5 attempts=3"),
    ],
)
def test_each_part_of_the_teacher_fingerprint_changes_the_key(field: str, value: str) -> None:
    assert cache_key(teacher=LOCAL.model_copy(update={field: value})) != cache_key()


def test_code_version_and_batch_change_the_key_but_runtime_does_not() -> None:
    assert cache_key(code_version="something-else") != cache_key()
    other_batch = BATCH.model_copy(update={"index": BATCH.index + 1})
    assert cache_key(batch=other_batch) != cache_key()
    # The storage/backend references do not shape labels (the fingerprint does).
    assert cache_key(runtime=Runtime(storage_block="s3-bucket/elsewhere")) == cache_key()


def test_the_key_is_the_same_in_a_new_process(tmp_path: Path) -> None:
    script = "from tests.unit.test_cache_keys import cache_key; print(cache_key())"
    root = Path(__file__).resolve().parents[2]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PREFECT_HOME": str(tmp_path / "p")}
    keys = {
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=root,
            env={**env, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert keys == {cache_key()}


def test_backends_fingerprint_their_teacher() -> None:
    local = LocalBackend(DirectoryStore("/nonexistent")).teacher_fingerprint(TAXONOMY)
    settings = BedrockSettings(role_arn="arn:aws:iam::123456789012:role/r")
    bedrock = BedrockBackend(
        settings, control=None, runtime=None, store=DirectoryStore("/nonexistent")
    ).teacher_fingerprint(TAXONOMY)
    assert local.backend == "local" and bedrock.backend == "bedrock"
    assert bedrock.teacher_model_id == settings.teacher_model_id
    assert local.prompt_sha256 == bedrock.prompt_sha256  # same teacher prompt for a taxonomy
    news = LocalBackend(DirectoryStore("/nonexistent")).teacher_fingerprint(
        resolve_taxonomy("news_archives")
    )
    assert news.prompt_sha256 != local.prompt_sha256
    hotter = BedrockBackend(
        settings.model_copy(update={"label_temperature": 0.7}),
        control=None,
        runtime=None,
        store=DirectoryStore("/nonexistent"),
    ).teacher_fingerprint(TAXONOMY)
    assert hotter.label_settings != bedrock.label_settings


def test_the_code_hash_covers_every_file_that_shapes_labels() -> None:
    names = {p.relative_to(p.parents[1]).as_posix() for p in label_code_files()}
    package = {p.as_posix().split("intent_router/", 1)[1] for p in label_code_files()}
    for expected in (
        "synthesis.py",
        "teacher.py",
        "text.py",
        "schema.py",
        "prompts.py",
        "taxonomy.py",
        "dedupe.py",
        "dataset.py",
        "backends/local.py",
        "backends/bedrock.py",
        "data/cues.json",
        "data/vocabulary.json",
        "data/entities.json",
    ):
        assert expected in package, expected
    assert names  # and nothing outside the package
    assert all("intent_router" in p.as_posix() for p in label_code_files())
