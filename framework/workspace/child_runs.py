"""Child runs (one AutoML iteration each) recorded in the local run history.

A step that starts child runs gets one from its run context (``context.child_run(name)``); the
AutoML emulator also records the children of a standalone ``Experiment.submit`` with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    from .store import LocalWorkspace


class LocalChildRun:
    """A child run (an AutoML iteration) recorded in the local run history.

    ``on_end(child_run_id, status)`` hears when it completes or fails (the local backend fires
    ``after_child_run`` from it).
    """

    def __init__(self, workspace: LocalWorkspace, run_id: str,
                 on_end: Callable[[str, str], None] | None = None) -> None:
        self.workspace = workspace
        self.id = run_id
        self._on_end = on_end

    def log(self, name: str, value: Any, description: str = "") -> None:
        self.workspace.log_metric(self.id, name, value)

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        self.workspace.log_metrics(self.id, dict(metrics))

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        self.workspace.merge_properties(self.id, dict(properties))

    def write_artifact(self, name: str, content: str | bytes) -> Path:
        """Keep a file with the run (``confusion_matrix``, ``accuracy_table``, ``outputs/model.pkl``)."""
        return self.workspace.write_artifact(self.id, name, content)

    def complete(self) -> None:
        self.workspace.update_run(self.id, status="Completed")
        if self._on_end is not None:
            self._on_end(self.id, "Completed")

    def fail(self, error: str, status: str = "Failed") -> None:
        self.workspace.update_run(self.id, status=status, error=error)
        if self._on_end is not None:
            self._on_end(self.id, status)
