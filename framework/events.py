"""One place that fires the step lifecycle hooks, whatever the backend.

A backend reports what happens to its steps (started, finished, failed, logged a metric, an AutoML
iteration ended) to a :class:`StepEvents`; it calls the hooks, by keyword, in the documented order
(``before_step_run`` first, then ``after_step_run`` or ``on_step_error`` once), so every backend
behaves alike even when it only learns about a step late (a poll of a remote service may see a
step already finished: ``before_step_run`` is fired first anyway).
"""

from __future__ import annotations

from typing import Any, Mapping

from .pipeline import StepBinding
from .results import StepRunResult


class StepEvents:
    """The hooks of one pipeline run, fired once each per step."""

    def __init__(self, hook: Any, run_id: str) -> None:
        self.hook = hook
        self.run_id = run_id
        self._started: set[str] = set()
        self._ended: set[str] = set()
        self._children: set[str] = set()

    def started(self, step: StepBinding, step_run_id: str) -> None:
        if step.name in self._started:
            return
        self._started.add(step.name)
        self.hook.before_step_run(run_id=self.run_id, step=step, step_run_id=step_run_id)

    def finished(self, step: StepBinding, step_run_id: str, result: StepRunResult) -> None:
        if step.name in self._ended:
            return
        self.started(step, step_run_id)
        self._ended.add(step.name)
        self.hook.after_step_run(run_id=self.run_id, step=step, step_run_id=step_run_id, result=result)

    def failed(self, step: StepBinding, step_run_id: str, error: BaseException) -> None:
        if step.name in self._ended:
            return
        self.started(step, step_run_id)
        self._ended.add(step.name)
        self.hook.on_step_error(run_id=self.run_id, step=step, step_run_id=step_run_id, error=error)

    def logged(self, step_run_id: str, name: str, value: Any) -> None:
        self.hook.on_step_log(run_id=self.run_id, step_run_id=step_run_id, name=name, value=value)

    def child_ended(self, step_run_id: str, child_run_id: str, status: str, properties: Mapping[str, Any],
                    metrics: Mapping[str, Any]) -> None:
        if child_run_id in self._children:
            return
        self._children.add(child_run_id)
        self.hook.after_child_run(run_id=self.run_id, step_run_id=step_run_id, child_run_id=child_run_id,
                                  status=status, properties=dict(properties), metrics=dict(metrics))

    def ended(self, step_name: str) -> bool:
        return step_name in self._ended
