"""``AutoMLConfig`` settings: names, defaults and validation, as Azure Automated ML (SDK v1) has them.

Pure Python: importing this module does not import pandas or scikit-learn.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from framework import StepDefinitionError, did_you_mean

from .task_types.registry import all_tasks, get_task, task_names

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = task_names()

# Views of the task objects (emulator.task_types), by task name.
PRIMARY_METRICS = {t.name: t.primary_metrics for t in all_tasks()}
DEFAULT_PRIMARY_METRIC = {t.name: t.default_primary_metric for t in all_tasks()}
MODELS = {t.name: t.models for t in all_tasks()}

# name -> default. Settings below UNHONOURED are accepted and reported, never silently dropped.
DEFAULTS: dict[str, Any] = {
    "task": None,
    "primary_metric": None,
    "label_column_name": None,
    "iterations": 1000,
    "iteration_timeout_minutes": None,
    "experiment_timeout_hours": None,
    "experiment_timeout_minutes": None,
    "experiment_exit_score": None,
    "enable_early_stopping": True,
    "n_cross_validations": None,
    "validation_size": None,
    "cv_split_column_names": None,
    "featurization": "auto",
    "allowed_models": None,
    "blocked_models": None,
    "enable_voting_ensemble": True,
    "enable_stack_ensemble": None,
    "max_concurrent_iterations": 1,
    "max_cores_per_iteration": 1,
    "weight_column_name": None,
    "exclude_nan_labels": True,
    "random_state": 0,
    "enable_onnx_compatible_models": False,
    "model_explainability": True,
    "enable_dnn": False,
    "enable_code_generation": False,
    "verbosity": None,
    "path": None,
    "debug_log": None,
    "compute_target": None,
    "run_configuration": None,
    "spark_context": None,
    "max_nodes": None,
    "stack_meta_learner_type": None,
    "stack_meta_learner_train_percentage": 0.2,
    "ensemble_iterations": None,
}
ALIASES = {"whitelist_models": "allowed_models", "blacklist_models": "blocked_models",
           "blacklist_algos": "blocked_models"}
UNHONOURED = ("enable_onnx_compatible_models", "enable_dnn",
              "enable_code_generation", "verbosity", "path", "debug_log", "compute_target",
              "run_configuration", "spark_context", "max_nodes", "stack_meta_learner_type")
FEATURIZATION_KEYS = ("column_purposes", "drop_columns", "blocked_transformers", "transformer_params",
                      "dataset_language", "prediction_transform_type")
COLUMN_PURPOSES = ("Numeric", "Categorical", "CategoricalHash", "DateTime", "Text", "Ignore")


def _fail(where: str, message: str) -> StepDefinitionError:
    return StepDefinitionError(f"{where}: {message}")


# Timeouts reach Azure ML as a .NET TimeSpan, whose longest is 10,675,199 days (about 29,000 years): beyond that
# a timeout is no time at all (1e20 minutes used to pass here and fail at run time).
_TIMESPAN_MAX_MINUTES = 10_675_199 * 24 * 60
_LONGEST = {"experiment_timeout_minutes": _TIMESPAN_MAX_MINUTES, "iteration_timeout_minutes": _TIMESPAN_MAX_MINUTES,
            "experiment_timeout_hours": _TIMESPAN_MAX_MINUTES // 60}


def _number(settings: dict[str, Any], name: str, where: str, *, kind: type = float, minimum: float | None = None,
            exclusive: bool = False, maximum: float | None = None) -> None:
    value = settings.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise _fail(where, f"AutoML setting {name!r} expects {'an int' if kind is int else 'a number'}, got {value!r}")
    if not math.isfinite(value):
        raise _fail(where, f"AutoML setting {name!r} must be a finite number, got {value!r}")
    if maximum is None and name in _LONGEST:
        maximum = _LONGEST[name]
    if minimum is not None and (value <= minimum if exclusive else value < minimum):
        bound = f"greater than {minimum}" if exclusive else f"at least {minimum}"
        raise _fail(where, f"AutoML setting {name!r} must be {bound}, got {value!r}")
    if maximum is not None and value > maximum:
        why = " (the longest timeout Azure ML can represent, about 29,000 years)" if name in _LONGEST else ""
        raise _fail(where, f"AutoML setting {name!r} must be at most {maximum}{why}, got {value!r}")


def _flag(settings: dict[str, Any], name: str, where: str) -> None:
    value = settings.get(name)
    if value is not None and not isinstance(value, bool):
        raise _fail(where, f"AutoML setting {name!r} expects True or False, got {value!r}")


def featurization_dict(value: Any) -> Any:
    """'auto', 'off', or a FeaturizationConfig as a plain dict."""
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else value


def validate_settings(values: Mapping[str, Any], where: str = "AutoML") -> dict[str, Any]:
    """Check ``values`` like ``AutoMLConfig`` does; return every setting with defaults filled in.

    The result also carries ``unhonoured``: the settings given that the emulator accepts but
    cannot act on (reported in the run's output).
    """
    task = values.get("task")
    known = {**DEFAULTS, **(get_task(task).extra_settings if task in TASKS else {})}
    settings = dict(known)
    given: list[str] = []
    for name, value in values.items():
        target = ALIASES.get(name, name)
        if target not in known:
            hint = did_you_mean(name, [*known, *ALIASES], n=1)
            raise _fail(where, f"unknown AutoML setting {name!r}{hint}; valid settings: {', '.join(sorted(known))}")
        settings[target] = value
        given.append(target)

    if task is None:
        raise _fail(where, f"AutoML setting 'task' is required; one of {', '.join(TASKS)}")
    if task not in TASKS:
        raise _fail(where, f"AutoML task {task!r} is not valid; valid tasks: {', '.join(TASKS)}")
    kind = get_task(task)
    metric = settings["primary_metric"] or kind.default_primary_metric
    if metric not in kind.primary_metrics:
        raise _fail(where, f"primary_metric {metric!r} is not valid for task {task!r}; valid metrics: "
                           f"{', '.join(kind.primary_metrics)}")
    settings["primary_metric"] = metric
    label = settings["label_column_name"]
    if label is None or label == "":
        raise _fail(where, "AutoML setting 'label_column_name' is required (the column to predict)")
    if not isinstance(label, str):
        raise _fail(where, f"AutoML setting 'label_column_name' expects one column name (a str), got "
                           f"{type(label).__name__} {label!r}")

    _number(settings, "iterations", where, kind=int, minimum=1)
    _number(settings, "iteration_timeout_minutes", where, minimum=0, exclusive=True)
    _number(settings, "experiment_timeout_hours", where, minimum=0, exclusive=True)
    _number(settings, "experiment_timeout_minutes", where, minimum=0, exclusive=True)
    if settings["experiment_timeout_hours"] is not None and settings["experiment_timeout_minutes"] is not None:
        raise _fail(where, "set only one of 'experiment_timeout_hours' and 'experiment_timeout_minutes'")
    _number(settings, "experiment_exit_score", where)
    _number(settings, "max_concurrent_iterations", where, kind=int, minimum=1)
    _number(settings, "max_cores_per_iteration", where, kind=int, minimum=-1)
    _number(settings, "random_state", where, kind=int, minimum=0)
    _number(settings, "stack_meta_learner_train_percentage", where, minimum=0, exclusive=True, maximum=1)
    _number(settings, "ensemble_iterations", where, kind=int, minimum=1)
    n_cv = settings["n_cross_validations"]
    if n_cv == "auto":
        settings["n_cross_validations"] = n_cv = None
    _number(settings, "n_cross_validations", where, kind=int, minimum=2)
    _number(settings, "validation_size", where, minimum=0, exclusive=True, maximum=0.99)
    for name in ("enable_early_stopping", "enable_voting_ensemble", "enable_stack_ensemble", "exclude_nan_labels",
                 "enable_onnx_compatible_models", "model_explainability", "enable_dnn", "enable_code_generation"):
        _flag(settings, name, where)
    if settings["enable_stack_ensemble"] is None:
        settings["enable_stack_ensemble"] = kind.stack_ensemble_default

    cv_columns = settings["cv_split_column_names"]
    if cv_columns is not None:
        if isinstance(cv_columns, str) or not all(isinstance(c, str) for c in cv_columns) or not cv_columns:
            raise _fail(where, f"cv_split_column_names must be a list of column names, got {cv_columns!r}")
        settings["cv_split_column_names"] = list(cv_columns)
        if n_cv is not None or settings["validation_size"] is not None:
            raise _fail(where, "cv_split_column_names cannot be combined with n_cross_validations or validation_size")

    weight = settings["weight_column_name"]
    if weight is not None and (not isinstance(weight, str) or weight == label):
        raise _fail(where, f"weight_column_name must name a column other than the label, got {weight!r}")

    for name in ("allowed_models", "blocked_models"):
        models = settings[name]
        if models is None:
            continue
        if isinstance(models, str):
            models = [models]
        unknown = [m for m in models if m not in kind.models]
        if unknown:
            raise _fail(where, f"{name} has unknown model(s) {', '.join(map(repr, unknown))} for task {task!r}; "
                               f"valid models: {', '.join(kind.models)}")
        settings[name] = list(models)
    remaining = [m for m in kind.models if (settings["allowed_models"] is None or m in settings["allowed_models"])
                 and m not in (settings["blocked_models"] or [])]
    if not remaining:
        raise _fail(where, "allowed_models and blocked_models leave no model to try")

    featurization = featurization_dict(settings["featurization"])
    if isinstance(featurization, str):
        if featurization not in ("auto", "off"):
            raise _fail(where, f"featurization must be 'auto', 'off' or a FeaturizationConfig, got {featurization!r}")
    elif isinstance(featurization, Mapping):
        unknown = [k for k in featurization if k not in FEATURIZATION_KEYS]
        if unknown:
            raise _fail(where, f"featurization config has unknown key(s) {', '.join(map(repr, unknown))}; "
                               f"valid keys: {', '.join(FEATURIZATION_KEYS)}")
        for column, purpose in dict(featurization.get("column_purposes") or {}).items():
            if purpose not in COLUMN_PURPOSES:
                raise _fail(where, f"featurization column purpose {purpose!r} for column {column!r} is not valid; "
                                   f"valid purposes: {', '.join(COLUMN_PURPOSES)}")
        featurization = {k: featurization[k] for k in FEATURIZATION_KEYS if k in featurization}
    else:
        raise _fail(where, f"featurization must be 'auto', 'off' or a FeaturizationConfig, got {featurization!r}")
    settings["featurization"] = featurization
    unhonoured = [n for n in given if n in UNHONOURED and values.get(n) not in (None, False)]
    if isinstance(featurization, Mapping):
        unhonoured += [f"featurization.{k}" for k in ("transformer_params", "dataset_language",
                                                      "prediction_transform_type") if featurization.get(k)]
    settings["unhonoured"] = sorted(unhonoured)
    kind.validate_settings(settings, given, where)
    return settings


def experiment_timeout_seconds(settings: Mapping[str, Any]) -> float | None:
    if settings.get("experiment_timeout_minutes") is not None:
        return float(settings["experiment_timeout_minutes"]) * 60
    if settings.get("experiment_timeout_hours") is not None:
        return float(settings["experiment_timeout_hours"]) * 3600
    return None


def iteration_timeout_seconds(settings: Mapping[str, Any]) -> float | None:
    minutes = settings.get("iteration_timeout_minutes")
    return None if minutes is None else float(minutes) * 60


class FeaturizationConfig:
    """Azure's ``FeaturizationConfig``: column purposes, dropped columns, blocked transformers, parameters.

    Pass it as ``featurization=`` of ``AutoMLConfig`` (or as a dict with the same keys).
    """

    def __init__(self, blocked_transformers: list[str] | None = None, column_purposes: dict[str, str] | None = None,
                 transformer_params: dict[str, Any] | None = None, drop_columns: list[str] | None = None,
                 dataset_language: str | None = None, prediction_transform_type: str | None = None) -> None:
        self.blocked_transformers = list(blocked_transformers or [])
        self.column_purposes = dict(column_purposes or {})
        self.transformer_params = dict(transformer_params or {})
        self.drop_columns = list(drop_columns or [])
        self.dataset_language = dataset_language
        self.prediction_transform_type = prediction_transform_type

    def add_column_purpose(self, column_name: str, feature_type: str) -> None:
        if feature_type not in COLUMN_PURPOSES:
            raise StepDefinitionError(f"FeaturizationConfig: column purpose {feature_type!r} for column "
                                      f"{column_name!r} is not valid; valid purposes: {', '.join(COLUMN_PURPOSES)}")
        self.column_purposes[column_name] = feature_type

    def add_drop_columns(self, drop_columns: str | list[str]) -> None:
        self.drop_columns.extend([drop_columns] if isinstance(drop_columns, str) else drop_columns)

    def add_blocked_transformers(self, transformers: str | list[str]) -> None:
        self.blocked_transformers.extend([transformers] if isinstance(transformers, str) else transformers)

    def add_transformer_params(self, transformer: str, cols: list[str], params: dict[str, Any]) -> None:
        self.transformer_params.setdefault(transformer, []).append((list(cols), dict(params)))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"column_purposes": self.column_purposes, "drop_columns": self.drop_columns,
                               "blocked_transformers": self.blocked_transformers,
                               "transformer_params": self.transformer_params}
        if self.dataset_language:
            out["dataset_language"] = self.dataset_language
        if self.prediction_transform_type:
            out["prediction_transform_type"] = self.prediction_transform_type
        return out
