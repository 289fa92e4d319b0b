"""Local pipeline runs in MLflow: the bundled tracking plugin.

Off by default. On for a run with ``amlstep run --mlflow`` (to ``$MLFLOW_TRACKING_URI``, else MLflow's
default store, ``sqlite:///mlflow.db`` in the current folder), or whenever the standard
``MLFLOW_TRACKING_URI`` is set (``--no-mlflow`` turns it off for one run). Each local pipeline run
becomes an MLflow run in the pipeline's experiment, each step a nested run (its parameters, the
metrics it logs with ``context.log``, its status, duration and reuse), each AutoML iteration a run
nested under its step (hyperparameters and metrics); a step's model output is logged as an MLflow
model and each registration is a version in the MLflow registry under the same name.

It is an ordinary plugin: it only implements the lifecycle hooks every backend fires (and adds
``--mlflow`` to the ``run`` command through ``register_commands``). mlflow is imported only when a
run is tracked; a tracking server that fails costs one warning line, never the pipeline.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from framework import hookimpl

if TYPE_CHECKING:
    from framework import Pipeline, PipelineRunResult, StepRunResult
    from framework.backends import StepBinding
    from framework.workspace import ModelVersion

    from .tracker import Tracker

ENV = "MLFLOW_TRACKING_URI"
INSTALL_HINT = "pip install 'amlstep[mlflow]'"

# --mlflow / --no-mlflow of the running command (None: follow $MLFLOW_TRACKING_URI)
_switch: list[bool | None] = [None]
# pipeline run id -> its tracker, while the run lasts
_trackers: dict[str, Tracker] = {}
# what the last tracked run logged, for the command's closing line
_last: list[dict[str, str]] = []


def tracking_uri() -> str | None:
    """The tracking URI runs go to now, "" for MLflow's default store, or None when tracking is off."""
    if _switch[0] is False:
        return None
    uri = os.environ.get(ENV, "")
    if _switch[0] or uri:
        return uri
    return None


def warn(message: str) -> None:
    """One line on the terminal's stderr (not into a step's log, where a step's own stderr goes)."""
    stream = sys.__stderr__ or sys.stderr
    print(f"warning: {message}", file=stream, flush=True)


def missing_packages(uri: str) -> list[str]:
    """The modules tracking to ``uri`` needs that are not installed."""
    needed = ["mlflow"]
    if not uri or uri.startswith(("sqlite:", "postgresql", "mysql", "mssql")):
        needed += ["sqlalchemy", "alembic"]  # MLflow's SQL store (its default store is SQLite)
    return [name for name in needed if importlib.util.find_spec(name) is None]


def _tracker(run_id: str) -> Tracker | None:
    return _trackers.get(run_id)


@hookimpl
def before_pipeline_run(run_id: str, pipeline: Pipeline, params: dict[str, Any], backend: str) -> None:
    uri = tracking_uri()
    if uri is None or backend != "local":  # Azure runs are in the Azure ML workspace's own MLflow
        return
    missing = missing_packages(uri)
    if missing:
        warn(f"MLflow tracking is on ({ENV}={uri!r}) but {', '.join(missing)} is not installed: {INSTALL_HINT}; "
             f"run {run_id} is not tracked")
        return
    from .tracker import Tracker

    tracker = Tracker(uri, warn)
    _trackers[run_id] = tracker
    tracker.safely(tracker.pipeline_started, run_id, pipeline, params, backend)


@hookimpl
def before_step_run(run_id: str, step: StepBinding, step_run_id: str) -> None:
    tracker = _tracker(run_id)
    if tracker is not None:
        tracker.safely(tracker.step_started, step, step_run_id)


@hookimpl
def on_step_log(run_id: str, step_run_id: str, name: str, value: Any) -> None:
    tracker = _tracker(run_id)
    if tracker is not None:
        tracker.safely(tracker.step_logged, step_run_id, name, value)


@hookimpl
def after_child_run(run_id: str, step_run_id: str, child_run_id: str, status: str, properties: dict[str, Any],
                    metrics: dict[str, Any]) -> None:
    tracker = _tracker(run_id)
    if tracker is not None:
        tracker.safely(tracker.child_ended, step_run_id, child_run_id, status, properties, metrics)


@hookimpl
def after_step_run(run_id: str, step: StepBinding, step_run_id: str, result: StepRunResult) -> None:
    tracker = _tracker(run_id)
    if tracker is not None:
        tracker.safely(tracker.step_finished, step, step_run_id, result)


@hookimpl
def on_step_error(run_id: str, step: StepBinding, step_run_id: str, error: BaseException) -> None:
    tracker = _tracker(run_id)
    if tracker is not None:
        tracker.safely(tracker.step_failed, step_run_id, error)


@hookimpl
def after_model_register(run_id: str, step_run_id: str, model: ModelVersion) -> None:
    tracker = _tracker(run_id)
    if tracker is not None:
        tracker.safely(tracker.model_registered, step_run_id, model)


@hookimpl
def after_pipeline_run(run_id: str, pipeline: Pipeline, result: PipelineRunResult) -> None:
    tracker = _trackers.pop(run_id, None)
    if tracker is not None:
        tracker.safely(tracker.pipeline_ended, result.status, result.error)
        _remember(tracker, pipeline)


@hookimpl
def on_pipeline_error(run_id: str, pipeline: Pipeline, params: dict[str, Any], backend: str,
                      error: BaseException) -> None:
    tracker = _trackers.pop(run_id, None)
    if tracker is not None:
        tracker.safely(tracker.pipeline_ended, "Failed", f"{type(error).__name__}: {error}")
        _remember(tracker, pipeline)


def _remember(tracker: Tracker, pipeline: Pipeline) -> None:
    if tracker.pipeline_run is not None and not tracker.broken:
        _last[:] = [{"run": tracker.pipeline_run, "experiment": pipeline.experiment, "uri": tracker.uri}]


# -- `amlstep run --mlflow` ----------------------------------------------------------------------------
MLFLOW_HELP = (f"Log this local run to MLflow: to ${ENV}, else MLflow's default store (sqlite:///mlflow.db here). "
               f"On by default when ${ENV} is set; --no-mlflow turns it off. Needs amlstep[mlflow].")


@hookimpl
def register_commands(cli: Any) -> None:
    run = cli.commands.get("run") if isinstance(cli, click.Group) else None
    if run is None or any(p.name == "mlflow" for p in run.params):
        return
    tracked = copy.copy(run)  # the group's own copy: the module-level command stays as it is
    tracked.params = [*run.params, click.Option(["--mlflow/--no-mlflow"], default=None, help=MLFLOW_HELP)]
    original = run.callback
    assert original is not None

    @functools.wraps(original)
    def callback(*args: Any, mlflow: bool | None = None, **kwargs: Any) -> Any:
        if mlflow and kwargs.get("backend", "local") != "local":
            raise click.UsageError("--mlflow logs local runs; Azure ML keeps the runs of --backend azure in the "
                                   "workspace's own MLflow")
        if mlflow:
            missing = missing_packages(os.environ.get(ENV, ""))
            if missing:
                raise click.UsageError(f"--mlflow needs {', '.join(missing)}: {INSTALL_HINT}")
        _switch[0], _last[:] = mlflow, []
        try:
            return original(*args, **kwargs)
        finally:
            _switch[0] = None
            if _last and not kwargs.get("quiet"):
                logged = _last[0]
                uri = logged["uri"]
                click.echo(f"mlflow: run {logged['run']} in experiment {logged['experiment']!r} at {uri} "
                           f"(browse: mlflow ui --backend-store-uri {uri})" if uri.startswith("sqlite:") else
                           f"mlflow: run {logged['run']} in experiment {logged['experiment']!r} at {uri}", err=True)

    tracked.callback = callback
    cli.add_command(tracked)
