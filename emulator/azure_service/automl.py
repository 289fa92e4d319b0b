"""AutoML steps, run service-side by the project's AutoML emulator, as Azure runs them on its side.

The job carries the AutoML settings the client submitted (for SDK v1: ``aml_settings_json_string``
of the ``AutoMLConfig`` module parameter, every setting with the SDK's defaults filled in; for SDK v2:
the AutoML node, read from the REST contract into ``AutoMLConfig``'s names by :mod:`.v2_automl`). They
are mapped onto the emulator's settings; the training data is read from where the upstream step
wrote it (or from the registered dataset); each iteration becomes a child run of the step run with
its properties and metrics; the fitted pipeline of the best child is kept as its
``outputs/model.pkl``; the ``Metrics`` and ``Model`` training outputs are written as single blobs
where downstream steps and ``get_pipeline_output`` find them (``azureml/<step run id>/<name>``).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from . import mltable
from .engine import StepFailure

if TYPE_CHECKING:
    from .engine import Engine, PipelineState, RunRecord, StepJob

# SDK setting name -> emulator setting name, where they differ.
RENAMED = {"task_type": "task", "enable_ensembling": "enable_voting_ensemble",
           "enable_stack_ensembling": "enable_stack_ensemble", "whitelist_models": "allowed_models",
           "blacklist_algos": "blocked_models"}
# Settings the SDK fills in that mean "not set" when they hold these values.
UNSET = {"validation_size": (0, 0.0), "experiment_exit_score": (None,)}


# SDK v1 serialises ForecastingParameters as flat settings of a "regression" task with is_timeseries.
FORECASTING_KEYS = {"time_column_name": "time_column_name", "max_horizon": "forecast_horizon",
                    "grain_column_names": "time_series_id_column_names", "freq": "freq",
                    "feature_lags": "feature_lags", "window_size": "target_rolling_window_size",
                    "seasonality": "seasonality", "use_stl": "use_stl",
                    "short_series_handling_configuration": "short_series_handling_configuration",
                    "target_aggregation_function": "target_aggregation_function",
                    "country_or_region": "country_or_region_for_holidays", "cv_step_size": "cv_step_size",
                    "drop_column_names": "drop_column_names"}
TARGET_LAGS_KEY = "_automl_target_col"


def forecasting_parameters(submitted: Mapping[str, Any]) -> dict[str, Any]:
    """The ``ForecastingParameters`` of a submitted forecasting experiment, from its flat settings."""
    found = {target: submitted[name] for name, target in FORECASTING_KEYS.items() if submitted.get(name) is not None}
    lags = (submitted.get("lags") or {}).get(TARGET_LAGS_KEY)
    if lags is not None:
        found["target_lags"] = lags[0] if isinstance(lags, list) and len(lags) == 1 else lags
    return found


def emulator_settings(submitted: Mapping[str, Any]) -> dict[str, Any]:
    """The emulator's settings from the submitted ones (names it does not know are Azure-side only)."""
    from emulator.settings import ALIASES, DEFAULTS, UNHONOURED

    forecasting = bool(submitted.get("is_timeseries"))
    settings: dict[str, Any] = {}
    for name, value in submitted.items():
        target = RENAMED.get(name, name)
        target = ALIASES.get(target, target)
        if forecasting and name in FORECASTING_KEYS:
            continue
        if target not in DEFAULTS or target in UNHONOURED or value is None or value in UNSET.get(name, ()):
            continue
        settings[target] = value
    if forecasting:
        settings["task"] = "forecasting"
        settings["forecasting_parameters"] = forecasting_parameters(submitted)
    elif submitted.get("task") == "forecasting":  # SDK v2: read back from the node's forecasting settings
        settings["forecasting_parameters"] = dict(submitted.get("forecasting_parameters") or {})
    return settings


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


class _ChildRun:
    def __init__(self, engine: Engine, record: RunRecord, on_end: Any) -> None:
        self.engine, self.record, self.id, self._on_end = engine, record, record.id, on_end

    def log(self, name: str, value: Any, description: str = "") -> None:
        self.engine.log_metric(self.id, name, value)

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        for name, value in metrics.items():
            self.engine.log_metric(self.id, name, value)

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        with self.engine.lock:
            self.record.properties.update({k: _text(v) for k, v in properties.items()})

    def write_artifact(self, name: str, content: str | bytes) -> None:
        self.engine.add_file(self.id, name, content.encode() if isinstance(content, str) else content)

    def complete(self) -> None:
        self.engine.set_status(self.record, "Completed")

    def fail(self, error: str, status: str = "Failed") -> None:
        self.engine.set_status(self.record, status, {"code": "UserError", "message": error})


class _Recorder:
    """Child runs of the AutoML step run in the service's run history."""

    def __init__(self, engine: Engine, step_run: RunRecord) -> None:
        self.engine, self.step_run = engine, step_run

    def child_run(self, name: str, *, run_id: str | None = None, properties: Mapping[str, Any] | None = None) -> Any:
        record = self.engine.create_run(self.step_run.experiment, "automl.child", name, parent_id=self.step_run.id,
                                        run_id=run_id, status="Running", target=self.step_run.target,
                                        properties={k: _text(v) for k, v in (properties or {}).items()})
        return _ChildRun(self.engine, record, None)


def _files(location: Path) -> list[Path]:
    if location.is_file():
        return [location]
    return sorted(p for p in location.rglob("*") if p.is_file() and not p.name.startswith("."))


def run_automl_step(engine: Engine, state: PipelineState, step: StepJob, step_run: RunRecord) -> None:
    from framework.errors import AmlStepError
    from framework.io import read_tabular

    from emulator.api import execute, parent_properties
    from emulator.settings import validate_settings

    lines: list[str] = []

    def log(message: str) -> None:
        lines.append(message)

    def save_log() -> None:
        engine.add_file(step_run.id, "azureml-logs/70_driver_log.txt", ("\n".join(lines) + "\n").encode())

    try:
        settings = validate_settings(emulator_settings(step.automl_settings), f"step {step.name!r}")
        frames = {}
        for port in ("training_data", "validation_data"):
            if port in step.inputs:
                location = engine.input_location(state, step.inputs[port])
                if mltable.is_mltable(location):  # SDK v2: an mltable input
                    try:
                        frames[port] = mltable.read(location)
                    except mltable.MLTableError as exc:
                        raise StepFailure("UserError", f"AutoML step {step.name!r} input {port!r}: {exc}") from None
                else:
                    frames[port] = read_tabular(_files(location), f"step {step.name!r} input {port!r}")
        if "training_data" not in frames:
            raise StepFailure("UserError", f"AutoML step {step.name!r} has no training_data input")
        log(f"AutoML: task {settings['task']}, primary metric {settings['primary_metric']}, "
            f"{len(frames['training_data'])} training rows")
        result = execute(settings, frames["training_data"], frames.get("validation_data"),
                         recorder=_Recorder(engine, step_run), parent_run_id=step_run.id, log=log)
    except StepFailure:
        save_log()
        raise
    except (AmlStepError, ValueError) as exc:
        log(f"{type(exc).__name__}: {exc}")
        save_log()
        raise StepFailure("UserError", f"{type(exc).__name__}: {exc}") from None
    best = engine.run(result.best.run_id)
    engine.add_file(best.id, "outputs/model.pkl", pickle.dumps(result.model))
    with engine.lock:
        step_run.properties.update({k: _text(v) for k, v in parent_properties(result).items()})
        step_run.properties.update({"run_algorithm": best.properties.get("run_algorithm", ""),
                                    "azureml.automl.best_child_run_id": best.id})
    engine.log_metric(step_run.id, settings["primary_metric"], result.best.score)
    metrics = json.dumps(result.metrics_json()).encode()
    model = pickle.dumps(result.model)
    for port, spec in step.outputs.items():
        if spec.training_output == "MLflowModel":  # SDK v2's best_model: an MLflow model folder
            from emulator.mlflow_model import save_mlflow_model

            target = engine.output_location(step_run, port, is_file=False)
            label = settings["label_column_name"]
            save_mlflow_model(result.model, target / "model", features=frames["training_data"].drop(columns=[label]))
            for item in (target / "model").iterdir():
                item.rename(target / item.name)
            (target / "model").rmdir()
        if spec.training_output in ("Metrics", "Model"):
            target = engine.output_location(step_run, port, is_file=True)
            target.write_bytes(metrics if spec.training_output == "Metrics" else model)
    save_log()
