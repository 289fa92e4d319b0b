"""The errors amlstep raises. Every message names the step, port, parameter or column at fault."""

from __future__ import annotations


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
    """The run was canceled (Ctrl-C or a signal)."""
