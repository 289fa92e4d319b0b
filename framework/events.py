"""One place that fires the lifecycle hooks, whatever the backend.

A backend reports what happens to its pipeline run to a :class:`PipelineEvents` (started, ended
with a result, or an exception escaped) and what happens to its steps (started, finished, failed,
logged a metric, an AutoML iteration ended) to its :class:`StepEvents`. They call the hooks, by
keyword, in the documented order: ``before_pipeline_run`` first, then ``after_pipeline_run``
(the run ended, whatever its status) or ``on_pipeline_error`` (an exception escaped the run) once;
``before_step_run`` first, then ``after_step_run`` or ``on_step_error`` once per step. Every
backend behaves alike even when it only learns about a step late (a poll of a remote service may
see a step already finished: ``before_step_run`` is fired first anyway).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Mapping

from .pipeline import Pipeline, StepBinding
from .results import PipelineRunResult, StepRunResult


class PipelineEvents:
    """The pipeline hooks of one run, each fired once; ``steps`` fires its step hooks.

    Use it as a context manager around the run: call :meth:`started` when the run starts and
    :meth:`ended` with the result when it ends; an exception escaping the block before that fires
    ``on_pipeline_error`` (then propagates). ``hook`` None (no plugins) fires nothing.
    """

    def __init__(self, hook: Any, run_id: str, pipeline: Pipeline, params: Mapping[str, Any], backend: str) -> None:
        self.hook = hook
        self.run_id = run_id
        self.pipeline = pipeline
        self.params = dict(params)
        self.backend = backend
        self.steps: StepEvents | None = StepEvents(hook, run_id) if hook is not None else None
        self._started = self._ended = False

    def started(self) -> None:
        if self._started or self.hook is None:
            return
        self._started = True
        self.hook.before_pipeline_run(run_id=self.run_id, pipeline=self.pipeline, params=self.params,
                                      backend=self.backend)

    def ended(self, result: PipelineRunResult) -> None:
        """The run ended (``Completed``, ``Failed``, ``Canceled``...): ``after_pipeline_run``."""
        if self._ended or self.hook is None:
            return
        self.started()
        self._ended = True
        self.hook.after_pipeline_run(run_id=self.run_id, pipeline=self.pipeline, result=result)

    def failed(self, error: BaseException) -> None:
        """An exception escaped the run: ``on_pipeline_error`` (nothing when the run already ended)."""
        if self._ended or self.hook is None:
            return
        self.started()
        self._ended = True
        self.hook.on_pipeline_error(run_id=self.run_id, pipeline=self.pipeline, params=self.params,
                                    backend=self.backend, error=error)

    def __enter__(self) -> PipelineEvents:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if error is not None:
            self.failed(error)


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

    def registered(self, step_run_id: str, model: Any) -> None:
        """A step registered a model version: ``after_model_register``."""
        self.hook.after_model_register(run_id=self.run_id, step_run_id=step_run_id, model=model)

    def ended(self, step_name: str) -> bool:
        return step_name in self._ended
