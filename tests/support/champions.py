"""Champions in storage for serving tests: a small trained local student, or a Bedrock
deployment on the validated fake."""

from __future__ import annotations

from typing import Any

import numpy as np

from intent_router.backends.local import LocalBackend
from intent_router.registry import ChampionRecord, ChampionRegistry, now_iso
from intent_router.storage import ObjectStore
from intent_router.student import HashedNgramStudent
from intent_router.taxonomy import builtin_taxonomy
from intent_router.teacher import ReferenceTeacher

SIGNALS = ("visual", "audio", "transcription", "metadata")
PRIOR = {"visual": 0.4, "audio": 0.1, "transcription": 0.2, "metadata": 0.3}
TRAINING_QUERIES = [
    "sound of rain on a tin roof",
    "dog barking at night",
    "applause and cheering",
    "drone shot of a beach",
    "red car parked outside",
    "close-up of hands kneading dough",
    "interview where she explains her new album",
    "speech about climate change",
    "Breaking Bad season 2",
    "Taylor Swift documentary",
    "news bulletin from 1998",
    "crickets chirping",
]


def trained_student(seed_queries: list[str] | None = None) -> HashedNgramStudent:
    """A small student fitted on the reference teacher's labels (under a second)."""
    teacher = ReferenceTeacher(builtin_taxonomy())
    queries = (seed_queries or TRAINING_QUERIES) * 2
    labels = np.array([[teacher.route(q).weights[s] for s in SIGNALS] for q in queries])
    student = HashedNgramStudent(SIGNALS, n_buckets=2**11)
    student.fit(queries, labels, max_iterations=60)
    return student


def record(model_id: str, deployment_id: str, **changes: Any) -> ChampionRecord:
    fields: dict[str, Any] = {
        "router": "default",
        "model_id": model_id,
        "deployment_id": deployment_id,
        "run_id": f"run-{model_id.rsplit('/', 1)[-1]}",
        "taxonomy": "default",
        "signals": SIGNALS,
        "metrics": {"holdout_top1": 0.9},
        "promoted_at": now_iso(),
        "prior": PRIOR,
    }
    fields.update(changes)
    return ChampionRecord(**fields)


def promote_local(
    store: ObjectStore,
    name: str,
    *,
    router: str = "default",
    student: HashedNgramStudent | None = None,
    write_artifact: bool = True,
    **changes: Any,
) -> ChampionRecord:
    """Write a local student artifact for `local-model/<name>` and promote it."""
    model_id = f"local-model/{name}"
    if write_artifact:
        artifact = LocalBackend(store).artifact_path(model_id)
        store.write(artifact, (student or trained_student()).to_bytes())
    champion = record(model_id, f"local-deployment/{name}", router=router, **changes)
    ChampionRegistry(store, router).promote(champion)
    return champion


def promote_bedrock(store: ObjectStore, deployment_arn: str, **changes: Any) -> ChampionRecord:
    """Promote a Bedrock champion served by `deployment_arn`."""
    model_arn = "arn:aws:bedrock:us-east-1:123456789012:custom-model/nova-micro/router-r42"
    champion = record(model_arn, deployment_arn, **changes)
    ChampionRegistry(store, champion.router).promote(champion)
    return champion
