"""AutoML settings between amlstep's ``AutoMLStep`` (``AutoMLConfig``'s names, SDK v1) and SDK v2's AutoML node.

SDK v2 spreads what ``AutoMLConfig`` takes in one call over the task function
(``automl.classification(...)``) and setters: ``set_limits`` (budgets), ``set_training``
(models, ensembles), ``set_featurization`` and, for forecasting, ``set_forecast_settings`` (what
SDK v1 holds in ``ForecastingParameters``). ``to_v2`` sorts a step's settings into those groups
under their v2 names. (The fake service reads a submitted node on its own terms, from the REST
contract: ``emulator.azure_service.v2_automl``.)

Pure Python: nothing here imports ``azure.ai.ml``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from ....errors import BackendError

# AutoMLConfig name -> (group, v2 name). Groups: the task function's keywords ("task"),
# set_limits ("limits"), set_training ("training").
RENAMES: dict[str, tuple[str, str]] = {
    "primary_metric": ("task", "primary_metric"),
    "label_column_name": ("task", "target_column_name"),
    "n_cross_validations": ("task", "n_cross_validations"),
    "validation_size": ("task", "validation_data_size"),
    "cv_split_column_names": ("task", "cv_split_column_names"),
    "weight_column_name": ("task", "weight_column_name"),
    "model_explainability": ("task", "enable_model_explainability"),
    "iterations": ("limits", "max_trials"),
    "experiment_timeout_minutes": ("limits", "timeout_minutes"),
    "iteration_timeout_minutes": ("limits", "trial_timeout_minutes"),
    "max_concurrent_iterations": ("limits", "max_concurrent_trials"),
    "max_cores_per_iteration": ("limits", "max_cores_per_trial"),
    "enable_early_stopping": ("limits", "enable_early_termination"),
    "experiment_exit_score": ("limits", "exit_score"),
    "max_nodes": ("limits", "max_nodes"),
    "allowed_models": ("training", "allowed_training_algorithms"),
    "blocked_models": ("training", "blocked_training_algorithms"),
    "enable_voting_ensemble": ("training", "enable_vote_ensemble"),
    "enable_stack_ensemble": ("training", "enable_stack_ensemble"),
    "enable_onnx_compatible_models": ("training", "enable_onnx_compatible_models"),
    "enable_dnn": ("training", "enable_dnn_training"),
}
# Settings a pipeline input may feed under SDK v2: scalar fields of the node, which the SDK's node
# schema accepts as ``${{parent.inputs.NAME}}`` and the service resolves at run time. The others
# (task, primary metric, label, model lists, ensembles, featurization) are fixed at compile time:
# the SDK turns their values into enums, lists or nested objects when it builds the node.
BINDABLE = ("iterations", "experiment_timeout_minutes", "iteration_timeout_minutes", "max_concurrent_iterations",
            "max_cores_per_iteration", "enable_early_stopping", "experiment_exit_score", "n_cross_validations")
# AutoMLConfig settings with no SDK v2 counterpart, and what to do instead.
NO_V2 = {
    "exclude_nan_labels": "SDK v2 AutoML always drops rows without a label",
    "random_state": "SDK v2 AutoML has no seed setting",
    "enable_code_generation": "SDK v2 AutoML has no code generation setting",
    "ensemble_iterations": "SDK v2 AutoML picks the ensemble's members itself",
    "verbosity": "use the node's log_verbosity in the studio instead",
    "path": "SDK v2 AutoML needs no project folder",
    "debug_log": "SDK v2 AutoML writes its logs to the job",
    "compute_target": "set compute_target= on the AutoMLStep",
    "run_configuration": "SDK v2 AutoML runs on the node's compute",
    "spark_context": "SDK v2 AutoML does not run on Spark",
}
# Values equal to these are AutoMLConfig's defaults: left out rather than refused.
NO_V2_DEFAULTS: dict[str, tuple[Any, ...]] = {"exclude_nan_labels": (True,), "random_state": (0, None),
                                              "enable_code_generation": (False,), "verbosity": (None,)}
FEATURIZATION_RENAMES = {"column_purposes": "column_name_and_types", "blocked_transformers": "blocked_transformers",
                         "dataset_language": "dataset_language", "transformer_params": "transformer_params"}
FEATURIZATION_NO_V2 = {"drop_columns": "drop the columns in the step that prepares the data",
                       "prediction_transform_type": "SDK v2 featurization has no prediction transform type"}
TASKS = ("classification", "regression", "forecasting")
# ForecastingParameters (SDK v1) name -> set_forecast_settings (SDK v2) keyword
FORECAST_RENAMES = {
    "time_column_name": "time_column_name", "forecast_horizon": "forecast_horizon",
    "time_series_id_column_names": "time_series_id_column_names", "freq": "frequency", "target_lags": "target_lags",
    "feature_lags": "feature_lags", "target_rolling_window_size": "target_rolling_window_size",
    "seasonality": "seasonality", "use_stl": "use_stl",
    "short_series_handling_configuration": "short_series_handling_config",
    "target_aggregation_function": "target_aggregate_function",
    "country_or_region_for_holidays": "country_or_region_for_holidays", "cv_step_size": "cv_step_size",
    "features_unknown_at_forecast_time": "features_unknown_at_forecast_time",
}
FORECAST_NO_V2 = {"drop_column_names": "drop the columns in the step that prepares the data"}


@dataclass
class V2Settings:
    """A step's AutoML settings sorted into SDK v2's groups, under v2 names."""

    task: str
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    featurization: dict[str, Any] = field(default_factory=dict)
    stack_ensemble: dict[str, Any] = field(default_factory=dict)
    forecasting: dict[str, Any] = field(default_factory=dict)  # set_forecast_settings keywords
    bound: dict[str, str] = field(default_factory=dict)  # v1 setting -> pipeline parameter feeding it


def to_v2(step: str, settings: Mapping[str, Any], parameters: Mapping[str, str] | None = None) -> V2Settings:
    """Sort ``settings`` (AutoMLConfig names, values resolved) into SDK v2's groups.

    ``parameters`` names, per setting, the pipeline parameter it came from; for settings in
    ``BINDABLE`` the value is replaced by the marker ``("input", NAME)`` that the compiler turns into
    the pipeline input. Raises BackendError naming the step for settings v2 cannot express.
    """
    parameters = dict(parameters or {})
    task = settings.get("task")
    if task not in TASKS:
        raise BackendError(f"step {step!r}: AutoML task {task!r} cannot be compiled for SDK v2; "
                           f"tasks: {', '.join(TASKS)}")
    out = V2Settings(task=task)
    forecasting_names: set[str] = set()
    if task == "forecasting":
        out.forecasting, forecasting_names = _forecast_settings(step, settings)
    minutes = settings.get("experiment_timeout_minutes")
    hours = settings.get("experiment_timeout_hours")
    for name, value in settings.items():
        if name in ("task", "experiment_timeout_hours") or name in forecasting_names:
            continue
        if name in NO_V2:
            if value in NO_V2_DEFAULTS.get(name, (None,)):
                continue
            raise BackendError(f"step {step!r}: AutoML setting {name!r} has no SDK v2 equivalent ({NO_V2[name]}); "
                               f"remove it to compile with --sdk v2")
        if name == "featurization":
            out.featurization = _featurization(step, value)
            continue
        if name in ("stack_meta_learner_type", "stack_meta_learner_train_percentage"):
            if value is not None:
                out.stack_ensemble[name] = value
            continue
        if name not in RENAMES:
            raise BackendError(f"step {step!r}: AutoML setting {name!r} is not known to the SDK v2 compiler")
        if value is None:
            continue
        group, v2_name = RENAMES[name]
        if name in ("experiment_timeout_minutes", "iteration_timeout_minutes"):
            value = _whole_minutes(step, name, value)
        if name in parameters and name in BINDABLE:
            out.bound[name] = parameters[name]
            value = ("input", parameters[name])
        getattr(out, "task_kwargs" if group == "task" else group)[v2_name] = value
    if hours is not None and minutes is None:
        out.limits["timeout_minutes"] = _whole_minutes(step, "experiment_timeout_hours", float(hours) * 60)
    return out


def _forecast_settings(step: str, settings: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """``set_forecast_settings`` keywords from ``forecasting_parameters`` and the older flat keywords
    (checked with Azure's messages), and the names of the settings they were read from."""
    from framework.automl import FLAT_ALIASES, PARAMETERS, check_parameters, parameters_of

    from ....errors import StepDefinitionError

    names = {"forecasting_parameters", *PARAMETERS, *FLAT_ALIASES}
    try:
        params = parameters_of(settings.get("forecasting_parameters"))
        for name in [*PARAMETERS, *FLAT_ALIASES]:
            if name in settings and (settings[name] is not None or name == "short_series_handling_configuration"):
                params[FLAT_ALIASES.get(name, name)] = settings[name]
        checked = check_parameters(params, f"step {step!r}")
    except StepDefinitionError as exc:
        message = str(exc)
        raise BackendError(message if message.startswith(f"step {step!r}") else f"step {step!r}: {message}") from None
    out: dict[str, Any] = {}
    for name, value in checked.items():
        if name in FORECAST_NO_V2:
            if value:
                raise BackendError(f"step {step!r}: forecasting parameter {name!r} has no SDK v2 equivalent "
                                   f"({FORECAST_NO_V2[name]}); remove it to compile with --sdk v2")
            continue
        default = PARAMETERS[name]
        if name in ("time_column_name", "forecast_horizon"):
            pass  # always written: the forecasting node needs them
        elif name == "short_series_handling_configuration" and value is None:
            value = "none"  # None turns short series handling off (its default is auto)
        elif value is None or value == default or (name == "cv_step_size" and value == "auto"):
            continue  # SDK v2's default is the same (cv_step_size takes only ints: "auto" is leaving it out)
        if name == "time_series_id_column_names" and len(value) == 1:
            value = value[0]  # the SDK dumps a list of names as its Python text in a pipeline node
        if name == "use_stl":
            value = {"season_trend": "seasontrend"}.get(value, value)  # the SDK's STLMode refuses "season_trend"
        if name == "target_lags" and isinstance(value, list) and len(value) == 1:
            value = value[0]
        if name == "features_unknown_at_forecast_time" and len(value) == 1:
            value = value[0]
        out[FORECAST_RENAMES[name]] = value
    return out, names


def fixed_parameters(v2: V2Settings, parameters: Mapping[str, str]) -> dict[str, str]:
    """setting -> pipeline parameter, for the settings whose value was fixed at compile time."""
    return {name: param for name, param in parameters.items() if name not in v2.bound}


def _whole_minutes(step: str, name: str, value: Any) -> int:
    minutes = float(value)
    if not math.isclose(minutes, round(minutes)):
        raise BackendError(f"step {step!r}: AutoML setting {name!r} is {value!r} minutes; SDK v2 limits take whole "
                           f"minutes (e.g. {max(1, round(minutes))})")
    return int(round(minutes))


def _featurization(step: str, value: Any) -> dict[str, Any]:
    to_dict = getattr(value, "to_dict", None)
    value = to_dict() if callable(to_dict) else value
    if isinstance(value, str):
        return {"mode": value}
    config = dict(value or {})
    out: dict[str, Any] = {"mode": "custom"}
    for key, item in config.items():
        if key in FEATURIZATION_NO_V2:
            if item:
                raise BackendError(f"step {step!r}: featurization {key!r} has no SDK v2 equivalent "
                                   f"({FEATURIZATION_NO_V2[key]})")
            continue
        if not item:
            continue
        if key == "transformer_params":
            item = {transformer: [{"fields": list(cols), "parameters": dict(params)} for cols, params in uses]
                    for transformer, uses in item.items()}
        out[FEATURIZATION_RENAMES[key]] = item
    return out
