"""Backends: every operation that differs between production (Bedrock) and the embedded default."""

from intent_router.backends.base import (
    Backend,
    DeploymentState,
    DeploymentStatus,
    DistillationRequest,
    Invocation,
    JobState,
    JobStatus,
    ModelTarget,
)

__all__ = [
    "Backend",
    "DeploymentState",
    "DeploymentStatus",
    "DistillationRequest",
    "Invocation",
    "JobState",
    "JobStatus",
    "ModelTarget",
]
