"""AutoML steps, run service-side by the project's AutoML emulator, as Azure runs them on its side.

The job carries the AutoML settings the client submitted (for SDK v1: ``aml_settings_json_string``
of the ``AutoMLConfig`` module parameter, every setting with the SDK's defaults filled in; for SDK v2:
the AutoML node, read from the REST contract into ``AutoMLConfig``'s names by :mod:`.v2_automl`). They
are mapped onto the emulator's settings; the training data is read from where the upstream step
wrote it (or from the registered dataset); each iteration becomes a child run of the step run with
its properties and metrics; the fitted pipeline of the best child is kept as its
``outputs/model.pkl``; the ``Metrics`` and ``Model`` training outputs are written as single blobs
where downstream steps and ``get_pipeline_output`` find them (``azureml/<step run id>/<name>``).

The outputs have Azure's shape, not the emulator's: the model is a fitted scikit-learn ``Pipeline`` that
unpickles where amlstep is not installed (the emulator's classes travel in the pickle by value,
:func:`emulator.mlflow_model.portable_pickle`), SDK v2's ``best_model`` an MLflow model that loads the same
way; the metrics are ``{child_run_id: {metric: [value]}}``, the scalar metrics of every child run.

Before anything runs, the settings are checked against Azure AutoML's limits (:func:`limit_problems`): the
service refuses what its own settings check refuses, whatever the client checked.
"""

from __future__ import annotations

import json
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


# Azure AutoML's limits on the settings, as its settings check states them (azureml-automl-core 1.62,
# automl_base_settings.py AutoMLBaseSettings._verify_settings: MIN_EXPTIMEOUT_MINUTES = 15,
# MAXIMUM_EXPERIMENT_TIMEOUT_MINUTES = 525600, MAXIMUM_ITERATION_TIMEOUT_MINUTES = 43200,
# MAX_N_CROSS_VALIDATIONS = 1000; shared/constants.py MAX_ITERATIONS = 1000) with the SDK's messages
# (azureml/_common/_error_definition/error_strings.py ARGUMENT_OUT_OF_RANGE; automl core's
# CONFLICTING_VALUE_FOR_ARGUMENTS). AutoMLConfig name -> (min, max, exclusive bounds)
LIMITS: dict[str, tuple[float, float | str, bool]] = {
    "experiment_timeout_minutes": (15, 525600, False), "iteration_timeout_minutes": (1, 43200, False),
    "iterations": (1, 1000, False), "max_concurrent_iterations": (1, "inf", False),
    "n_cross_validations": (2, 1000, False), "validation_size": (0, 1, False)}
OUT_OF_RANGE = "Value for argument [{name}] is out of range (Range: [{min} - {max}])."
CONFLICTING = "Conflicting or duplicate values are provided for arguments: [{arguments}]"


def limit_problems(settings: Mapping[str, Any], names: Mapping[str, str] | None = None,
                   has_validation_data: bool = False) -> list[tuple[str, str, str]]:
    """``(setting, code, message)`` for each setting outside Azure AutoML's limits, named as the API names them
    (``names``: AutoMLConfig name -> the API's). Values that are not numbers are left to the type checks.

    ``n_cross_validations`` with ``validation_size`` or validation data: AutoMLConfig's documentation says to
    set one of them ("otherwise set n_cross_validations or validation_size"), and azureml-automl-core's
    ``_check_validation_config`` refuses cross-validation with validation data."""
    named = dict(names or {})
    problems: list[tuple[str, str, str]] = []
    for setting, (low, high, exclusive) in LIMITS.items():
        value = settings.get(setting)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if setting == "iterations" and value == 0:
            value = -1   # 0 trials: out of range too
        above = high != "inf" and (value >= float(high) if exclusive else value > float(high))
        below = value <= low if exclusive else value < low
        if above or below:
            name = named.get(setting, setting)
            problems.append((setting, "ArgumentOutOfRange", OUT_OF_RANGE.format(name=name, min=low, max=high)))
    cv = settings.get("n_cross_validations")
    has_cv = cv == "auto" or (isinstance(cv, (int, float)) and not isinstance(cv, bool) and cv > 0)
    size = settings.get("validation_size")
    has_size = isinstance(size, (int, float)) and not isinstance(size, bool) and size > 0
    for other, present in (("validation_size", has_size), ("validation_data", has_validation_data)):
        if has_cv and present:
            arguments = ", ".join(named.get(n, n) for n in ("n_cross_validations", other))
            problems.append(("n_cross_validations", "ConflictingValueForArguments",
                             CONFLICTING.format(arguments=arguments)))
    if has_size and has_validation_data:
        arguments = ", ".join(named.get(n, n) for n in ("validation_data", "validation_size"))
        problems.append(("validation_size", "ConflictingValueForArguments", CONFLICTING.format(arguments=arguments)))
    return problems


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


def _as_child_artifact(engine: Engine, child_id: str, folder: Path) -> None:
    """As Azure's AutoML writes its best model: the MLmodel names the child run that trained it, and the child
    run holds the model under ``outputs/mlflow-model/`` (what ``runs:/<run_id>/outputs/mlflow-model/`` reads)."""
    import yaml  # type: ignore[import-untyped]

    mlmodel = folder / "MLmodel"
    content = yaml.safe_load(mlmodel.read_text()) or {}
    content["run_id"] = child_id
    mlmodel.write_text(yaml.safe_dump(content, sort_keys=False))
    for item in _files(folder):
        engine.add_file(child_id, f"outputs/mlflow-model/{item.relative_to(folder).as_posix()}", item.read_bytes())


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
        if state.canceled.is_set():   # canceled while it waited to start
            raise StepFailure("UserError", f"AutoML step {step.name!r} was canceled")
        refused = limit_problems(step.automl_settings, has_validation_data="validation_data" in step.inputs)
        if refused:  # the service's own check (a client that does not check, or sends raw REST)
            log("; ".join(message for _, _, message in refused))
            raise StepFailure("UserError", refused[0][2])
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
                         recorder=_Recorder(engine, step_run), parent_run_id=step_run.id, log=log,
                         stop=state.canceled.is_set)
    except StepFailure:
        save_log()
        raise
    except (AmlStepError, ValueError) as exc:
        log(f"{type(exc).__name__}: {exc}")
        save_log()
        raise StepFailure("UserError", f"{type(exc).__name__}: {exc}") from None
    from emulator.mlflow_model import portable_pickle

    # the model as Azure hands it over: a fitted scikit-learn Pipeline that unpickles without amlstep (the
    # emulator's classes travel by value), where Azure's needs its AutoML runtime
    model = portable_pickle(result.model)
    best = engine.run(result.best.run_id)
    engine.add_file(best.id, "outputs/model.pkl", model)
    with engine.lock:
        step_run.properties.update({k: _text(v) for k, v in parent_properties(result).items()})
        step_run.properties.update({"run_algorithm": best.properties.get("run_algorithm", ""),
                                    "azureml.automl.best_child_run_id": best.id})
    engine.log_metric(step_run.id, settings["primary_metric"], result.best.score)
    metrics = json.dumps(result.metrics_json()).encode()
    for port, spec in step.outputs.items():
        if spec.training_output == "MLflowModel":  # SDK v2's best_model: an MLflow model folder
            from emulator.mlflow_model import save_mlflow_model

            target = engine.output_location(step_run, port, is_file=False)
            label = settings["label_column_name"]
            save_mlflow_model(result.model, target / "model", features=frames["training_data"].drop(columns=[label]))
            for item in (target / "model").iterdir():
                item.rename(target / item.name)
            (target / "model").rmdir()
            _as_child_artifact(engine, best.id, target)
        if spec.training_output in ("Metrics", "Model"):
            target = engine.output_location(step_run, port, is_file=True)
            target.write_bytes(metrics if spec.training_output == "Metrics" else model)
    save_log()
