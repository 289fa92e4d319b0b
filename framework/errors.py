"""The errors amlstep raises. Every message names the step, port, parameter or column at fault."""

from __future__ import annotations

from typing import Any, Iterable


class AmlStepError(Exception):
    """Base class for every error amlstep raises on purpose."""


class PluginLoadError(AmlStepError):
    """A plugin could not be imported or registered."""


class StepDefinitionError(AmlStepError):
    """A step plugin's declaration is invalid."""


class PipelineValidationError(AmlStepError):
    """A pipeline graph is invalid; raised before any step runs."""


class StepExecutionError(AmlStepError):
    """A step failed while running."""

    def __init__(self, message: str, *, step: str | None = None) -> None:
        super().__init__(message)
        self.step = step


class WorkspaceError(AmlStepError):
    """The local workspace cannot be used as asked (bad name, missing run, unreadable file...)."""


class BackendError(AmlStepError):
    """A backend could not do what was asked (missing extra, no config, service error...)."""


class RunCanceled(AmlStepError):
    """The run was canceled (Ctrl-C or a signal); ``result``: the pipeline run's result so far, when there is one."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


def did_you_mean(name: str, candidates: Iterable[Any], *, n: int = 3) -> str:
    """`` (did you mean 'a' or 'b'?)`` for the candidates close to ``name``, or ``""`` when none is.

    Candidates equal to ``name`` up to case and surrounding spaces come first (a column ``"Age "``
    for ``"age"``); else up to ``n`` close names (``difflib``). Every "unknown X" message uses it.
    """
    import difflib

    names = [str(c) for c in candidates]
    same = [c for c in names if c.strip().lower() == name.strip().lower()]
    close = same[:n] or difflib.get_close_matches(name, names, n=n, cutoff=0.6)
    return " (did you mean " + " or ".join(map(repr, close)) + "?)" if close else ""
