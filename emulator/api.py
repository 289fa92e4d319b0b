"""The Python surface Azure users know: ``AutoMLConfig``, ``Experiment.submit``, ``AutoMLRun``.

```python
from emulator import AutoMLConfig, Experiment

config = AutoMLConfig(task="classification", training_data=df, label_column_name="Survived",
                      primary_metric="AUC_weighted", experiment_timeout_minutes=1)
run = Experiment(name="titanic").submit(config, show_output=True)
best_run, fitted_model = run.get_output()
for child in run.get_children():
    print(child.properties["run_algorithm"], child.get_metrics()["AUC_weighted"])
```

Runs go to the local workspace (``framework.LocalWorkspace``: ``$AMLSTEP_WORKSPACE``, else
``~/.amlstep``) and run synchronously: ``submit`` returns when the experiment has finished.
"""

from __future__ import annotations

import json
import pickle
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

from framework import Run, StepDefinitionError, WorkspaceError
from framework.backends import cancellable
from framework.workspace import LocalChildRun, LocalWorkspace, check_asset_name

from .settings import validate_settings

MODEL_ARTIFACT = "outputs/model.pkl"
METRICS_ARTIFACT = "outputs/metrics_data"


class AutoMLConfig:
    """Settings of an AutoML experiment, validated like Azure's ``AutoMLConfig`` (errors list the valid values).

    Args:
        task: one of ``emulator.task_types.task_names()`` (``classification``, ``regression``).
        training_data: a DataFrame, a CSV/Parquet path, a dataset with ``to_pandas_dataframe()``, or a
            ``framework.Dataset`` registered in the workspace. The label column is inside it.
        validation_data: the same kinds, for an explicit holdout.
        X, y: the deprecated form (features and labels separately).
        **settings: every other ``AutoMLConfig`` setting (``primary_metric``, ``iterations``, ...).
    """

    def __init__(self, task: str | None = None, *, training_data: Any = None, validation_data: Any = None,
                 X: Any = None, y: Any = None, label_column_name: str | None = None, **settings: Any) -> None:
        if training_data is None and X is None:
            raise StepDefinitionError("AutoMLConfig: training_data is required (a DataFrame, a file or a dataset "
                                      "holding the label column)")
        if X is not None and training_data is not None:
            raise StepDefinitionError("AutoMLConfig: give training_data or X/y, not both")
        if X is not None:
            if y is None:
                raise StepDefinitionError("AutoMLConfig: X needs y (or pass training_data and label_column_name)")
            label_column_name = label_column_name or "label"
        values = {"task": task, "label_column_name": label_column_name, **settings}
        self.user_settings = {k: v for k, v in values.items() if v is not None}
        self.settings = validate_settings(self.user_settings, "AutoMLConfig")
        self.training_data = training_data
        self.validation_data = validation_data
        self._X, self._y = X, y

    def get(self, name: str, default: Any = None) -> Any:
        value = self.settings.get(name)
        return default if value is None else value

    def training_frames(self, workspace: LocalWorkspace | None = None) -> tuple[Any, Any]:
        """The training and validation data as DataFrames."""
        import pandas as pd

        if self._X is not None:
            frame = pd.DataFrame(self._X).copy()
            frame[self.settings["label_column_name"]] = list(self._y)
            training = frame
        else:
            training = to_frame(self.training_data, workspace, "training_data")
        validation = None if self.validation_data is None else to_frame(self.validation_data, workspace,
                                                                         "validation_data")
        return training, validation

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.user_settings.items())
        return f"AutoMLConfig({shown})"


def to_frame(data: Any, workspace: LocalWorkspace | None, what: str) -> Any:
    """A DataFrame from a frame, a file path, an Azure-like dataset or a registered ``framework.Dataset``."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if hasattr(data, "to_pandas_dataframe"):
        return data.to_pandas_dataframe()
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.is_file():
            raise WorkspaceError(f"AutoMLConfig {what}: {str(path)!r} is not a file")
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    name = getattr(data, "name", None)
    if name is not None and workspace is not None:
        version = workspace.get_dataset(name, getattr(data, "version", None))
        return pd.concat([pd.read_csv(p) for p in version.file_paths()], ignore_index=True)
    raise StepDefinitionError(f"AutoMLConfig {what}: expected a DataFrame, a file path or a dataset, "
                              f"got {type(data).__name__}")


class Experiment:
    """A named experiment in the local workspace (``azureml.core.Experiment``).

    ``Experiment(ws, "name")`` as on Azure, or ``Experiment(name="name")`` for the default workspace.
    """

    def __init__(self, workspace: LocalWorkspace | str | Path | None = None, name: str | None = None) -> None:
        if name is None and isinstance(workspace, str) and not Path(workspace).exists():
            workspace, name = None, workspace
        if not name:
            raise StepDefinitionError("Experiment needs a name, e.g. Experiment(name='titanic_automl')")
        check_asset_name(name, "experiment")
        self.name = name
        self.workspace = workspace if isinstance(workspace, LocalWorkspace) else LocalWorkspace(workspace)

    def submit(self, config: AutoMLConfig, show_output: bool = False, tags: Mapping[str, Any] | None = None,
               **_ignored: Any) -> AutoMLRun:
        """Run the experiment here and now; return its ``AutoMLRun`` (completed, or failed with the error raised)."""
        if not isinstance(config, AutoMLConfig):
            raise StepDefinitionError(f"Experiment.submit expects an AutoMLConfig, got {type(config).__name__}")
        ws = self.workspace
        run_id = f"AutoML_{uuid.uuid4()}"
        record = ws.create_run(run_type="automl", name=run_id, experiment=self.name, run_id=run_id, status="Running",
                               params={k: _jsonable(v) for k, v in config.user_settings.items()},
                               properties={"task": config.settings["task"],
                                           "primary_metric": config.settings["primary_metric"]})
        if tags:
            ws.update_run(run_id, tags=dict(tags))
        log_path = ws.log_path(run_id)
        ws.update_run(run_id, log_path=ws.relative(log_path))
        with open(log_path, "a", buffering=1) as log_file:
            def log(message: str) -> None:
                log_file.write(message + "\n")
                if show_output:
                    print(message, flush=True)

            watcher = None
            try:
                with cancellable(ws, run_id) as watcher:  # `amlstep runs cancel` stops it as Ctrl-C does
                    training, validation = config.training_frames(ws)
                    result = execute(config.settings, training, validation, recorder=WorkspaceRecorder(ws, record.id,
                                                                                                         self.name),
                                     parent_run_id=run_id, log=log, announce=None if show_output else print)
            except KeyboardInterrupt:
                ws.end_unfinished(run_id, "Canceled", (watcher.reason if watcher else None) or "canceled by the user")
                raise
            except BaseException as exc:
                ws.end_unfinished(run_id, "Failed", f"{type(exc).__name__}: {exc}")
                raise
        ws.merge_properties(run_id, parent_properties(result))
        ws.log_metric(run_id, result.settings["primary_metric"], result.best.score)
        ws.write_artifact(run_id, METRICS_ARTIFACT, json.dumps(result.metrics_json(), indent=1))
        ws.write_artifact(run_id, MODEL_ARTIFACT, result.model_pickle or pickle.dumps(result.model))
        result.model_pickle = None  # written: the run keeps the model itself, not its bytes too
        ws.update_run(run_id, status="Completed")
        return AutoMLRun(ws, ws.get_run(run_id), result=result)

    def __repr__(self) -> str:
        return f"Experiment(name={self.name!r}, workspace={str(self.workspace.path)!r})"


class WorkspaceRecorder:
    """Records child runs under a parent run of the local run history."""

    def __init__(self, workspace: LocalWorkspace, parent_id: str, experiment: str) -> None:
        self.workspace, self.parent_id, self.experiment = workspace, parent_id, experiment

    def child_run(self, name: str, *, run_id: str | None = None, properties: Mapping[str, Any] | None = None) -> Any:
        record = self.workspace.create_run(run_type="child", name=name, experiment=self.experiment,
                                           parent_id=self.parent_id, run_id=run_id, status="Running",
                                           properties=dict(properties or {}), display_name=name)
        return LocalChildRun(self.workspace, record.id)


def execute(settings: Mapping[str, Any], training: Any, validation: Any, *, recorder: Any, parent_run_id: str,
            log: Callable[[str], None] = print, announce: Callable[[str], None] | None = None,
            stop: Callable[[], bool] | None = None) -> Any:
    """The one code path of ``Experiment.submit`` and the pipeline's ``automl`` step.

    ``announce`` also receives the notice of unhonoured settings (so it is printed even when the
    rest of the output is not shown); ``stop``: see ``run_automl`` (the fake Azure ML's canceled runs).
    """
    started = time.monotonic()  # the budget counts from here: importing the estimators is part of the experiment
    from .engine import run_automl

    if announce is not None and settings.get("unhonoured"):
        announce("AutoML emulator: settings accepted but not honoured offline: " + ", ".join(settings["unhonoured"]))
    result = run_automl(settings, training, validation, recorder=recorder, parent_run_id=parent_run_id, log=log,
                        started=started, stop=stop)
    child = _find_child(recorder, result.best.run_id)
    if child is not None:  # pickled once: the parent run's (or the step's) model.pkl is the same bytes
        begun = time.monotonic()
        result.model_pickle = pickle.dumps(result.model)
        child.write_artifact(MODEL_ARTIFACT, result.model_pickle)
        log(f"Saved the model of iteration {result.best.iteration} ({len(result.model_pickle) / 1e6:.1f} MB) in "
            f"{time.monotonic() - begun:.1f} s; the experiment took {time.monotonic() - started:.1f} s")
    return result


def _find_child(recorder: Any, run_id: str) -> Any:
    workspace = getattr(recorder, "workspace", None)
    if workspace is None:
        return None
    return LocalChildRun(workspace, run_id)


def parent_properties(result: Any) -> dict[str, Any]:
    """What the parent AutoML run records about the experiment (forecasting: also the names of its series, in
    the order of the series codes its children's per-series hyperparameters use)."""
    properties = {"best_child_run_id": result.best.run_id, "primary_metric": result.settings["primary_metric"],
                  "score": result.best.score, "training_type": result.training_type, "guardrails": result.guardrails,
                  "unhonoured_settings": result.settings.get("unhonoured", []), "iterations_run": len(result.children),
                  "featurization": result.featurization, "stop_reason": result.stop_reason,
                  "duration_seconds": round(result.duration, 3)}
    series = series_names(result)
    if series:
        properties["series"] = series
    return properties


def series_names(result: Any) -> list[str] | None:
    """The time series of a forecasting experiment by code (``realgdp``; ``store 1 / dept 3`` for several id
    columns), or None (other tasks, or one series without id columns)."""
    keys = getattr(getattr(getattr(result, "loop", None), "featurizer", None), "keys", None)
    if not isinstance(keys, list) or not keys or not any(keys):
        return None
    return [" / ".join(map(str, key)) if isinstance(key, tuple) else str(key) for key in keys]


def _jsonable(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


class AutoMLChildRun(Run):
    """One AutoML iteration: properties as Azure names them, metrics, and artifacts."""

    def get_file_names(self) -> list[str]:
        return self.workspace.list_artifacts(self.id)

    def download_file(self, name: str, output_file_path: str | Path | None = None) -> str:
        source = self.workspace.artifact_path(self.id, name)
        if not source.is_file():
            raise WorkspaceError(f"run {self.id} has no file {name!r}; its files: "
                                 f"{', '.join(self.get_file_names()) or '(none)'}")
        target = Path(output_file_path or Path(name).name)
        if target.is_dir():
            target = target / Path(name).name
        target.write_bytes(source.read_bytes())
        return str(target)

    def get_artifact(self, name: str) -> Any:
        """An artifact's content: JSON artifacts (``confusion_matrix``, ``accuracy_table``) parsed."""
        source = self.workspace.artifact_path(self.id, name)
        if not source.is_file():
            raise WorkspaceError(f"run {self.id} has no file {name!r}; its files: "
                                 f"{', '.join(self.get_file_names()) or '(none)'}")
        data = source.read_bytes()
        if name.endswith(".pkl"):
            return pickle.loads(data)
        return json.loads(data)

    @property
    def display_name(self) -> str:
        return self.record.display_name or self.name


class AutoMLRun(Run):
    """The parent run of an AutoML experiment (``azureml.train.automl.run.AutoMLRun``)."""

    def __init__(self, workspace: LocalWorkspace, record: Any, result: Any = None) -> None:
        super().__init__(workspace, record)
        self._result = result

    @classmethod
    def from_id(cls, run_id: str, workspace: LocalWorkspace | str | Path | None = None) -> AutoMLRun:
        ws = workspace if isinstance(workspace, LocalWorkspace) else LocalWorkspace(workspace)
        return cls(ws, ws.get_run(run_id))

    def get_children(self) -> list[AutoMLChildRun]:  # type: ignore[override]
        return [AutoMLChildRun(self.workspace, r) for r in self.workspace.get_children(self.id)]

    def get_best_child(self, metric: str | None = None) -> AutoMLChildRun:
        """The completed child with the best ``metric`` (the primary metric by default)."""
        from . import metrics as M
        from .task_types import all_tasks

        metric = metric or self.properties.get("primary_metric")
        valid = tuple(dict.fromkeys(m for task in all_tasks() for m in task.metrics))
        if metric not in valid:
            raise StepDefinitionError(f"unknown metric {metric!r}; valid metrics: {', '.join(valid)}")
        best, best_score = None, None
        for child in self.get_children():
            if child.status != "Completed":
                continue
            score = child.get_metrics().get(metric)
            if score is not None and (best_score is None or M.better(metric, float(score), float(best_score))):
                best, best_score = child, score
        if best is None:
            raise WorkspaceError(f"run {self.id} has no completed child with metric {metric!r}")
        return best

    def get_output(self, iteration: int | None = None, metric: str | None = None,
                   return_onnx_model: bool = False, **_ignored: Any) -> tuple[AutoMLChildRun, Any]:
        """``(best_run, fitted_model)``: the best child, or the one of ``iteration``, or the best by ``metric``."""
        if iteration is not None and metric is not None:
            raise StepDefinitionError("get_output: give iteration or metric, not both")
        if return_onnx_model:
            raise StepDefinitionError("get_output: ONNX models are not produced by the offline emulator")
        if iteration is not None:
            matches = [c for c in self.get_children() if str(c.properties.get("iteration")) == str(iteration)]
            if not matches:
                raise WorkspaceError(f"run {self.id} has no iteration {iteration}; iterations: 0.."
                                     f"{len(self.get_children()) - 1}")
            child = matches[0]
        elif metric is not None:
            child = self.get_best_child(metric)
        else:
            child = AutoMLChildRun(self.workspace, self.workspace.get_run(self.properties["best_child_run_id"]))
        if MODEL_ARTIFACT in child.get_file_names():
            return child, child.get_artifact(MODEL_ARTIFACT)
        if child.status != "Completed":
            raise WorkspaceError(f"iteration {child.properties.get('iteration')} ({child.display_name}) did not "
                                 f"complete ({child.status}: {child.record.error}); it has no model")
        if self._result is None:
            raise WorkspaceError(f"child run {child.id} kept no model and the training data of run {self.id} is not "
                                 f"in memory; call get_output(iteration=...) on the run that submit returned")
        model = self._result.refit_child(int(child.properties["iteration"]))
        self.workspace.write_artifact(child.id, MODEL_ARTIFACT, pickle.dumps(model))
        return child, model

    def get_guardrails(self) -> list[dict[str, Any]]:
        return list(self.properties.get("guardrails") or [])

    def get_metrics_output(self) -> dict[str, dict[str, list[Any]]]:
        """The metrics JSON ``{child_run_id: {metric: [value]}}`` (what AutoMLStep's metrics output holds)."""
        return json.loads((self.workspace.artifacts_dir(self.id) / METRICS_ARTIFACT).read_text())

    def wait_for_completion(self, show_output: bool = False, **_ignored: Any) -> dict[str, Any]:  # type: ignore[override]
        record = self.workspace.get_run(self.id)
        if show_output and record.log_path:
            print((self.workspace.path / record.log_path).read_text())
        return {"runId": record.id, "status": record.status, "properties": record.properties}

    def __repr__(self) -> str:
        return f"AutoMLRun(id={self.id!r}, experiment={self.record.experiment!r}, status={self.status!r})"

