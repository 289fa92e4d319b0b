"""Hook specifications for the project ``amlstep``.

Specs only grow by adding arguments; call hooks by keyword.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from .backends import Backend
    from .backends.azure.compiled import Compiler
    from .manager import Plugins
    from .pipeline import Dataset, Pipeline, StepBinding
    from .reporting import Lineage, Predictor, Progress, ReportSection
    from .results import PipelineRunResult, StepRunResult
    from .steps import StepSpec
    from .workspace import ModelVersion, RunRecord

PROJECT = "amlstep"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_steps(register: Callable[[StepSpec], None]) -> None:
    """Register step plugins by calling ``register(StepSpec(...))`` once per step."""


@hookspec
def register_backends(register: Callable[[str, Callable[..., Backend]], None]) -> None:
    """Register backends by calling ``register(name, factory)``; ``factory(**options)`` builds one."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``amlstep`` click group ``cli``."""


@hookspec
def register_run_options(register: Callable[..., None], plugins: Plugins) -> None:
    """Add a backend's options to ``amlstep run``: ``register(backend, options, convert)``, where ``options`` are
    click options and ``convert(values)`` turns their values (by parameter name) into the backend's options."""


@hookspec
def register_azure_sdks(register: Callable[[Compiler], None]) -> None:
    """Register Azure ML SDKs the azure backend compiles to: ``register(compiler)``, a
    ``framework.backends.azure.Compiler`` whose ``name`` is the ``--sdk`` value."""


@hookspec(firstresult=True)
def offline_azure_workspace(computes: list[str], datasets: list[Dataset], folder: Path) -> Any:
    """A context manager giving an offline ``azureml.core.Workspace`` that holds ``computes`` and ``datasets``, for
    SDK v1 dry runs; ``folder`` is a scratch folder for the duration. Stops at first non-None result."""


@hookspec
def before_pipeline_run(run_id: str, pipeline: Pipeline, params: dict[str, Any], backend: str) -> None:
    """Called once before the first step of a pipeline run starts."""


@hookspec
def before_step_run(run_id: str, step: StepBinding, step_run_id: str) -> None:
    """Called before a step runs (or is reused)."""


@hookspec
def after_step_run(run_id: str, step: StepBinding, step_run_id: str, result: StepRunResult) -> None:
    """Called after a step completed or was reused; ``result.reused`` tells which."""


@hookspec
def on_step_error(run_id: str, step: StepBinding, step_run_id: str, error: BaseException) -> None:
    """Called when a step fails, with the ``before_step_run`` arguments plus the error."""


@hookspec
def after_pipeline_run(run_id: str, pipeline: Pipeline, result: PipelineRunResult) -> None:
    """Called once when a pipeline run ends, whatever its status (``Completed``, ``Failed``, ``Canceled``)."""


@hookspec
def on_pipeline_error(run_id: str, pipeline: Pipeline, params: dict[str, Any], backend: str,
                      error: BaseException) -> None:
    """Called once when an exception escapes a pipeline run, with the ``before_pipeline_run`` arguments plus the
    error; ``after_pipeline_run`` is not called then (a local run canceled by Ctrl-C ends ``Canceled`` instead)."""


@hookspec
def on_step_log(run_id: str, step_run_id: str, name: str, value: Any) -> None:
    """Called when a step (or an AutoML child run) logs a metric."""


@hookspec
def after_child_run(run_id: str, step_run_id: str, child_run_id: str, status: str, properties: dict[str, Any],
                    metrics: dict[str, Any]) -> None:
    """Called when a child run (one AutoML iteration) ends, with its properties and metrics."""


@hookspec
def after_model_register(run_id: str, step_run_id: str, model: ModelVersion) -> None:
    """Called when a step registered a model (``context.register_model``) in the local workspace's registry,
    with the new ``ModelVersion`` (name, version, files, source run)."""


@hookspec
def report_section(lineage: Lineage, step: RunRecord, plots: bool, progress: Progress | None) -> ReportSection | None:
    """``amlstep report``: this plugin's section of the page for step run ``step``, or None.

    Called once per step run of the reported pipeline run, in the pipeline's order; the sections
    follow the parameters on the page. ``plots`` is False with ``--no-plots``; ``progress(what,
    done, total)``, when given, hears how far a slow part is (see ``framework.reporting``).
    """


@hookspec(firstresult=True)
def model_predictor(lineage: Lineage, step: RunRecord) -> Predictor | None:
    """``amlstep predict``: how to predict with a model step run ``step`` trained, or None for a step this plugin
    does not know (see ``framework.reporting.Predictor``). Stops at first non-None result."""
