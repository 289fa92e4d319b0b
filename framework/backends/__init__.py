"""For backend writers: what a backend is and what it uses. Each registers through ``register_backends``.

A backend takes a :class:`ValidatedPipeline` (its ``steps`` are :class:`StepBinding`\\ s in
dependency order) and runs or submits it, returning a :class:`PipelineRunResult`. It reports what
happens to a :class:`PipelineEvents` (entered around the run; its ``steps`` is the
:class:`StepEvents` of the run), which fires every lifecycle hook in the documented order, so
every backend behaves alike. A step runs through :func:`execute_step` (inputs read with
:func:`load_inputs`) with a :class:`RunContext` of the backend's. A backend's factory takes its
options as keyword arguments and refuses unknown ones (:func:`check_options`, with "did you mean").
A backend that runs on this machine runs under :func:`cancellable`, so that ``amlstep runs cancel``
stops it from another process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Protocol

from ..cancel import cancellable
from ..context import RunContext
from ..errors import BackendError
from ..events import PipelineEvents, StepEvents
from ..execution import execute_step, load_inputs
from ..pipeline import StepBinding, ValidatedPipeline
from ..results import PipelineRunResult, StepRunResult
from .options import accepted_options, check_options

if TYPE_CHECKING:
    from ..manager import Plugins


class Backend(Protocol):
    """What every backend offers."""

    name: str

    def run(self, pipeline: ValidatedPipeline, *, plugins: Plugins, params: Mapping[str, Any] | None = None,
            reuse: bool = True, resume: str | None = None) -> PipelineRunResult:
        """Run (or submit) the pipeline with parameter overrides ``params``; ``resume`` continues a failed run."""
        ...


__all__ = ["Backend", "BackendError", "PipelineEvents", "PipelineRunResult", "RunContext", "StepBinding", "StepEvents",
           "StepRunResult", "ValidatedPipeline", "accepted_options", "cancellable", "check_options", "execute_step",
           "load_inputs"]
