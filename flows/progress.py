"""Progress for long steps: a Prefect progress artifact and, in a terminal, a progress bar."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import cast
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class StepProgress:
    """Counts completed units of a step and shows them in the UI and the terminal."""

    def __init__(self, key: str, description: str, total: int) -> None:
        self.key = key
        self.description = description
        self.total = max(1, total)
        self.done = 0
        console = Console(file=sys.stderr)
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            disable=not console.is_terminal,
        )
        self._task = self._bar.add_task(description, total=self.total)
        self._artifact: UUID | None = None

    def __enter__(self) -> StepProgress:
        self._artifact = cast(
            UUID, create_progress_artifact(progress=0.0, key=self.key, description=self.description)
        )
        self._bar.start()
        return self

    def advance(self, units: int = 1) -> None:
        self.done += units
        self._bar.update(self._task, completed=self.done)
        if self._artifact is not None:
            update_progress_artifact(
                artifact_id=self._artifact, progress=min(100.0, 100.0 * self.done / self.total)
            )

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bar.stop()
