"""For backend writers: what a backend is and what it uses. Each registers through ``register_backends``.

A backend takes a :class:`ValidatedPipeline` (its ``steps`` are :class:`StepBinding`\\ s in
dependency order) and runs or submits it, returning a :class:`PipelineRunResult`. It reports what
happens to a :class:`PipelineEvents` (entered around the run; its ``steps`` is the
:class:`StepEvents` of the run), which fires every lifecycle hook in the documented order, so
every backend behaves alike. A step runs through :func:`execute_step` (inputs read with
:func:`load_inputs`) with a :class:`RunContext` of the backend's. A backend's factory takes its
options as keyword arguments and refuses unknown ones (:func:`check_options`, with "did you mean").
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Protocol

from ..context import RunContext
from ..errors import BackendError, did_you_mean
from ..events import PipelineEvents, StepEvents
from ..execution import execute_step, load_inputs
from ..pipeline import StepBinding, ValidatedPipeline
from ..results import PipelineRunResult, StepRunResult

if TYPE_CHECKING:
    from ..manager import Plugins


class Backend(Protocol):
    """What every backend offers."""

    name: str

    def run(self, pipeline: ValidatedPipeline, *, plugins: Plugins, params: Mapping[str, Any] | None = None,
            reuse: bool = True, resume: str | None = None) -> PipelineRunResult:
        """Run (or submit) the pipeline with parameter overrides ``params``; ``resume`` continues a failed run."""
        ...


def accepted_options(factory: Callable[..., Any]) -> tuple[str, ...] | None:
    """The keyword options ``factory`` takes, or None when it takes any (``**options``: it checks them itself)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return tuple(p.name for p in parameters if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                          inspect.Parameter.KEYWORD_ONLY) and p.name != "self")


def check_options(backend: str, options: Iterable[str], accepted: Iterable[str]) -> None:
    """Refuse the ``options`` backend ``backend`` does not take, naming the close ones and the valid ones.

    Raises BackendError: ``backend 'local' does not take option 'dry_run'; its options: echo, workspace``.
    """
    valid = sorted(accepted)
    unknown = [name for name in options if name not in valid]
    if not unknown:
        return
    named = ", ".join(f"{name!r}{did_you_mean(name, valid)}" for name in unknown)
    raise BackendError(f"backend {backend!r} does not take option{'s' if len(unknown) > 1 else ''} {named}; "
                       f"its options: {', '.join(valid) or '(none)'}")


__all__ = ["Backend", "BackendError", "PipelineEvents", "PipelineRunResult", "RunContext", "StepBinding", "StepEvents",
           "StepRunResult", "ValidatedPipeline", "accepted_options", "check_options", "execute_step", "load_inputs"]
