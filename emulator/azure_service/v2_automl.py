"""SDK v2 AutoML jobs read as the service reads them: from the REST contract into the AutoML emulator's settings.

The contract is the ARM REST API's AutoML job: ``AutoMLJob.taskDetails``, one of the
``Classification``, ``Regression`` and ``Forecasting`` models that azure-ai-ml ships in
``azure/ai/ml/_restclient/arm_ml_service/models`` (generated from the service's API definition).
Their fields are camelCase (``targetColumnName``, ``limitSettings.maxTrials``), durations are
ISO 8601 (``limitSettings.timeout: PT30M``), enums are spelled the service's way (``AUCWeighted``,
``XGBoostClassifier``, ``SeasonTrend``), and a few settings are objects with a ``mode``
(``nCrossValidations: {mode: Custom, value: 5}``, ``forecastHorizon: {mode: Auto}``).
:func:`settings_of_task` reads such a ``taskDetails`` into the emulator's settings (``AutoMLConfig``'s
names: ``iterations``, ``experiment_timeout_minutes``, ``allowed_models``...).

A pipeline job's ``jobs`` are free-form in the REST contract: an AutoML node comes in the form of
the CLI v2 YAML schema for ``type: automl`` jobs (``reference-yaml-job-automl``: snake_case
keys and enum values, ``limits.timeout_minutes`` in minutes, ``n_cross_validations: 5`` or
``auto``). :func:`task_of_node` writes such a node in the REST form, field by field, so that one
reader reads both.

Nothing here comes from amlstep's compiler: the fake reads what any client sends on the service's
terms, so a mistake the compiler makes shows up as a job that does not run as asked. Values are
read the way the service's JSON reader reads them (a numeric string where a number is declared is
that number); a value that cannot be read is passed on as it is, for the emulator to refuse with
its message. Settings the emulator has no use for (``testData``, ``positiveLabel``, ``logVerbosity``)
are ignored.
"""

from __future__ import annotations

import ast
import re
from typing import Any, Mapping

from .v2_schema import models

# the durations the service reads: ISO 8601 without years or months (PT30M, P1DT2H), and .NET's TimeSpan text
ISO_DURATION = re.compile(r"^(?P<sign>-)?P(?!$)(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
                          r"(?:T(?=\d)(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")
TIMESPAN = re.compile(r"^(?P<sign>-)?(?:(?P<d>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2}(?:\.\d+)?)$")

# -- the node (CLI v2 YAML schema) written in the REST form ------------------------------------------
# node key -> REST key, at the task's level and in each group
TASK_FIELDS = {"target_column_name": "targetColumnName", "primary_metric": "primaryMetric",
               "log_verbosity": "logVerbosity", "validation_data_size": "validationDataSize",
               "test_data_size": "testDataSize", "cv_split_column_names": "cvSplitColumnNames",
               "weight_column_name": "weightColumnName", "positive_label": "positiveLabel",
               "n_cross_validations": "nCrossValidations"}
LIMIT_FIELDS = {"max_trials": "maxTrials", "max_concurrent_trials": "maxConcurrentTrials",
                "max_cores_per_trial": "maxCoresPerTrial", "enable_early_termination": "enableEarlyTermination",
                "exit_score": "exitScore", "timeout_minutes": "timeout", "trial_timeout_minutes": "trialTimeout"}
TRAINING_FIELDS = {"enable_dnn_training": "enableDnnTraining", "enable_model_explainability": "enableModelExplainability",
                   "enable_onnx_compatible_models": "enableOnnxCompatibleModels",
                   "enable_stack_ensemble": "enableStackEnsemble", "enable_vote_ensemble": "enableVoteEnsemble",
                   "ensemble_model_download_timeout": "ensembleModelDownloadTimeout",
                   "stack_ensemble_settings": "stackEnsembleSettings",
                   "allowed_training_algorithms": "allowedTrainingAlgorithms",
                   "blocked_training_algorithms": "blockedTrainingAlgorithms"}
STACK_FIELDS = {"stack_meta_learner_type": "stackMetaLearnerType",
                "stack_meta_learner_train_percentage": "stackMetaLearnerTrainPercentage",
                "stack_meta_learner_kwargs": "stackMetaLearnerKWargs"}
FEATURIZATION_FIELDS = {"mode": "mode", "blocked_transformers": "blockedTransformers",
                        "column_name_and_types": "columnNameAndTypes", "dataset_language": "datasetLanguage",
                        "transformer_params": "transformerParams", "enable_dnn_featurization": "enableDnnFeaturization"}
FORECASTING_FIELDS = {"time_column_name": "timeColumnName", "forecast_horizon": "forecastHorizon",
                      "time_series_id_column_names": "timeSeriesIdColumnNames", "frequency": "frequency",
                      "target_lags": "targetLags", "feature_lags": "featureLags",
                      "target_rolling_window_size": "targetRollingWindowSize", "seasonality": "seasonality",
                      "use_stl": "useStl", "short_series_handling_config": "shortSeriesHandlingConfig",
                      "target_aggregate_function": "targetAggregateFunction",
                      "country_or_region_for_holidays": "countryOrRegionForHolidays", "cv_step_size": "cvStepSize",
                      "features_unknown_at_forecast_time": "featuresUnknownAtForecastTime"}
# REST field -> the enum of its values, per task (primary metrics and models depend on the task)
TASK_ENUMS = {"Classification": {"primaryMetric": "ClassificationPrimaryMetrics", "models": "ClassificationModels"},
              "Regression": {"primaryMetric": "RegressionPrimaryMetrics", "models": "RegressionModels"},
              "Forecasting": {"primaryMetric": "ForecastingPrimaryMetrics", "models": "ForecastingModels"}}
ENUMS = {"logVerbosity": "LogVerbosity", "stackMetaLearnerType": "StackMetaLearnerType", "mode": "FeaturizationMode",
         "blockedTransformers": "BlockedTransformers", "featureLags": "FeatureLags", "useStl": "UseStl",
         "shortSeriesHandlingConfig": "ShortSeriesHandlingConfiguration",
         "targetAggregateFunction": "TargetAggregationFunction"}
# the transformers whose parameters featurization takes (the YAML schema spells them snake_case)
TRANSFORMERS = ("Imputer", "HashOneHotEncoder", "TfIdf")


def _key(text: str) -> str:
    """A name with case and separators left out: ``auc_weighted``, ``AUCWeighted`` and ``AUC_weighted`` meet."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _spelled(value: Any, choices: Any) -> Any:
    """``value`` as ``choices`` spell it (case and separators aside); a value they do not hold, as given."""
    if not isinstance(value, str):
        return value
    return next((c for c in choices if _key(c) == _key(value)), value)


def _enum(name: str, value: Any) -> Any:
    """``value`` in the service's spelling of the REST enum ``name`` (a list: each item)."""
    choices = [member.value for member in getattr(models(), name)]
    if isinstance(value, list):
        return [_spelled(v, choices) for v in value]
    return _spelled(value, choices)


def _minutes_to_duration(value: Any) -> Any:
    number = _number(value)
    if not isinstance(number, (int, float)) or isinstance(number, bool):
        return value
    return f"PT{int(number) if float(number).is_integer() else number}M"


def _auto_or(value: Any, key: str = "value") -> Any:
    """A setting that is ``auto`` or a value, as the REST models hold it: ``{mode: Auto}`` / ``{mode: Custom, value}``."""
    if isinstance(value, str) and value.lower() == "auto":
        return {"mode": "Auto"}
    if key == "values":
        return {"mode": "Custom", "values": value if isinstance(value, list) else [value]}
    return {"mode": "Custom", "value": value}


def _names(value: Any) -> Any:
    """Column names as a node may hold them: a list, one name, or the Python text of a list (azure-ai-ml 1.35
    dumps a list given to a field that also takes one name through ``str()``: ``"['store', 'brand']"``)."""
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return [value]
        if isinstance(parsed, list) and all(isinstance(v, str) for v in parsed):
            return parsed
    return [value] if isinstance(value, str) else value


def _group(node: Any, fields: Mapping[str, str]) -> dict[str, Any]:
    """The known fields of a node's group under their REST names (``None`` left out)."""
    if not isinstance(node, Mapping):
        return {}
    return {fields[k]: v for k, v in node.items() if k in fields and v is not None}


def task_of_node(node: Mapping[str, Any]) -> dict[str, Any]:
    """The REST ``taskDetails`` of a pipeline's AutoML node (CLI v2 YAML form, bindings resolved).

    Data inputs (``training_data``, ``validation_data``, ``test_data``) become ``mltable`` job
    inputs whose ``uri`` is the value the node gives (a binding, or a URI).
    """
    task_type = _enum("TaskType", node.get("task"))
    enums = TASK_ENUMS.get(str(task_type), {})
    task: dict[str, Any] = {"taskType": task_type}
    for name, rest in TASK_FIELDS.items():
        if node.get(name) is not None:
            task[rest] = node[name]
    if "primaryMetric" in task and "primaryMetric" in enums:
        task["primaryMetric"] = _enum(enums["primaryMetric"], task["primaryMetric"])
    if "logVerbosity" in task:
        task["logVerbosity"] = _enum(ENUMS["logVerbosity"], task["logVerbosity"])
    if "nCrossValidations" in task:
        task["nCrossValidations"] = _auto_or(task["nCrossValidations"])
    for port, rest in (("training_data", "trainingData"), ("validation_data", "validationData"),
                       ("test_data", "testData")):
        if node.get(port):
            task[rest] = {"jobInputType": "mltable", "uri": node[port]}

    limits = _group(node.get("limits"), LIMIT_FIELDS)
    for name in ("timeout", "trialTimeout"):
        if name in limits:
            limits[name] = _minutes_to_duration(limits[name])
    if limits:
        task["limitSettings"] = limits

    training = _group(node.get("training"), TRAINING_FIELDS)
    if "ensembleModelDownloadTimeout" in training:
        training["ensembleModelDownloadTimeout"] = _minutes_to_duration(training["ensembleModelDownloadTimeout"])
    for name in ("allowedTrainingAlgorithms", "blockedTrainingAlgorithms"):
        if name in training and "models" in enums:
            training[name] = _enum(enums["models"], training[name])
    if "stackEnsembleSettings" in training:
        stack = _group(training["stackEnsembleSettings"], STACK_FIELDS)
        if "stackMetaLearnerType" in stack:
            stack["stackMetaLearnerType"] = _enum(ENUMS["stackMetaLearnerType"], stack["stackMetaLearnerType"])
        training["stackEnsembleSettings"] = stack
    if training:
        task["trainingSettings"] = training

    featurization = _group(node.get("featurization"), FEATURIZATION_FIELDS)
    for name in ("mode", "blockedTransformers"):
        if name in featurization:
            featurization[name] = _enum(ENUMS[name], featurization[name])
    if isinstance(featurization.get("transformerParams"), Mapping):
        featurization["transformerParams"] = {_spelled(name, TRANSFORMERS): uses
                                              for name, uses in featurization["transformerParams"].items()}
    if featurization:
        task["featurizationSettings"] = featurization

    forecasting = _group(node.get("forecasting"), FORECASTING_FIELDS)
    for name in ("forecastHorizon", "targetRollingWindowSize", "seasonality"):
        if name in forecasting:
            forecasting[name] = _auto_or(forecasting[name])
    if "targetLags" in forecasting:
        forecasting["targetLags"] = _auto_or(forecasting["targetLags"], "values")
    for name in ("timeSeriesIdColumnNames", "featuresUnknownAtForecastTime"):
        if name in forecasting:
            forecasting[name] = _names(forecasting[name])
    for name in ("featureLags", "useStl", "shortSeriesHandlingConfig", "targetAggregateFunction"):
        if name in forecasting:
            forecasting[name] = _enum(ENUMS[name], forecasting[name])
    if forecasting:
        task["forecastingSettings"] = forecasting
    return task


# -- the REST task read into the emulator's settings -----------------------------------------------------
def _number(value: Any) -> Any:
    """A JSON number, or a numeric string read as one (as the service's JSON reader reads it); else as given."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() and re.fullmatch(r"\s*[-+]?\d+\s*", value) else number
    return value


def _integer(value: Any) -> Any:
    number = _number(value)
    return int(number) if isinstance(number, float) and number.is_integer() else number


def _flag(value: Any) -> Any:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def duration_minutes(value: Any) -> Any:
    """Minutes of an ISO 8601 duration (``PT1H30M``, ``P1D``) or a .NET TimeSpan (``01:30:00``, ``1.00:00:00``),
    the two forms the service reads; anything else (years and months included: no fixed length) as given."""
    if not isinstance(value, str):
        return value
    found = ISO_DURATION.match(value.strip()) or TIMESPAN.match(value.strip())
    if found is None:
        return value
    parts = {k: float(v) for k, v in found.groupdict().items() if v not in (None, "-")}
    minutes = parts.get("w", 0) * 7 * 24 * 60 + parts.get("d", 0) * 24 * 60 + parts.get("h", 0) * 60 + \
        parts.get("m", 0) + parts.get("s", 0) / 60
    minutes = -minutes if found.group("sign") else minutes
    return int(minutes) if float(minutes).is_integer() else minutes


def _mode_value(value: Any, key: str = "value") -> Any:
    """``auto`` or the value of a ``{mode: Auto|Custom, value}`` setting."""
    if not isinstance(value, Mapping):
        return value
    if str(value.get("mode", "")).lower() == "auto":
        return "auto"
    return value.get(key)


def _put(settings: dict[str, Any], name: str, value: Any) -> None:
    if value is not None:
        settings[name] = value


def _emulator_task(task_type: Any) -> Any:
    from emulator.settings import TASKS

    return _spelled(task_type, TASKS) if isinstance(task_type, str) else task_type


def settings_of_task(task: Mapping[str, Any]) -> dict[str, Any]:
    """The AutoML emulator's settings (``AutoMLConfig``'s names) from a REST ``taskDetails``."""
    from emulator.settings import MODELS, PRIMARY_METRICS

    name = _emulator_task(task.get("taskType"))
    metrics = PRIMARY_METRICS.get(name, ())
    known_models = MODELS.get(name, ())
    settings: dict[str, Any] = {"task": name}
    _put(settings, "primary_metric", _spelled(task.get("primaryMetric"), metrics))
    _put(settings, "label_column_name", task.get("targetColumnName"))
    _put(settings, "n_cross_validations", _integer(_mode_value(task.get("nCrossValidations"))))
    _put(settings, "validation_size", _number(task.get("validationDataSize")))
    _put(settings, "cv_split_column_names", task.get("cvSplitColumnNames"))
    _put(settings, "weight_column_name", task.get("weightColumnName"))

    limits = task.get("limitSettings") or {}
    _put(settings, "iterations", _integer(limits.get("maxTrials")))
    _put(settings, "max_concurrent_iterations", _integer(limits.get("maxConcurrentTrials")))
    _put(settings, "max_cores_per_iteration", _integer(limits.get("maxCoresPerTrial")))
    _put(settings, "enable_early_stopping", _flag(limits.get("enableEarlyTermination")))
    _put(settings, "experiment_exit_score", _number(limits.get("exitScore")))
    _put(settings, "experiment_timeout_minutes", duration_minutes(limits.get("timeout")))
    _put(settings, "iteration_timeout_minutes", duration_minutes(limits.get("trialTimeout")))

    training = task.get("trainingSettings") or {}
    for rest, emulator in (("allowedTrainingAlgorithms", "allowed_models"),
                           ("blockedTrainingAlgorithms", "blocked_models")):
        models_given = training.get(rest)
        if models_given is not None:
            settings[emulator] = [_spelled(m, known_models) for m in models_given] \
                if isinstance(models_given, list) else models_given
    for rest, emulator in (("enableStackEnsemble", "enable_stack_ensemble"),
                           ("enableVoteEnsemble", "enable_voting_ensemble"),
                           ("enableOnnxCompatibleModels", "enable_onnx_compatible_models"),
                           ("enableDnnTraining", "enable_dnn"),
                           ("enableModelExplainability", "model_explainability")):
        _put(settings, emulator, _flag(training.get(rest)))
    stack = training.get("stackEnsembleSettings") or {}
    _put(settings, "stack_meta_learner_type", stack.get("stackMetaLearnerType"))
    _put(settings, "stack_meta_learner_train_percentage", _number(stack.get("stackMetaLearnerTrainPercentage")))

    featurization = task.get("featurizationSettings")
    if featurization is not None:
        settings["featurization"] = _featurization(featurization)
    if name == "forecasting":
        settings["forecasting_parameters"] = _forecasting(task.get("forecastingSettings") or {})
    return settings


def _featurization(featurization: Mapping[str, Any]) -> Any:
    """'auto', 'off', or a featurization config (``FeaturizationConfig``'s names) from featurizationSettings."""
    mode = str(featurization.get("mode") or "Auto").lower()
    if mode != "custom":
        return mode
    config: dict[str, Any] = {}
    if featurization.get("columnNameAndTypes"):
        config["column_purposes"] = dict(featurization["columnNameAndTypes"])
    if featurization.get("blockedTransformers"):
        config["blocked_transformers"] = _enum("BlockedTransformers", list(featurization["blockedTransformers"]))
    if featurization.get("datasetLanguage"):
        config["dataset_language"] = featurization["datasetLanguage"]
    if featurization.get("transformerParams"):
        config["transformer_params"] = {
            transformer: [(list(use.get("fields") or []), dict(use.get("parameters") or {})) for use in uses or []]
            for transformer, uses in featurization["transformerParams"].items()}
    return config


# ForecastingSettings' enum values -> ForecastingParameters' ("None" turns the setting off)
FORECAST_ENUMS = {
    "featureLags": ("feature_lags", {"None": None, "Auto": "auto"}),
    "useStl": ("use_stl", {"None": None, "Season": "season", "SeasonTrend": "season_trend"}),
    "shortSeriesHandlingConfig": ("short_series_handling_configuration",
                                  {"None": None, "Auto": "auto", "Pad": "pad", "Drop": "drop"}),
    "targetAggregateFunction": ("target_aggregation_function",
                                {"None": None, "Sum": "sum", "Max": "max", "Min": "min", "Mean": "mean"}),
}


def _forecasting(forecasting: Mapping[str, Any]) -> dict[str, Any]:
    """``ForecastingParameters`` (their names and values) from forecastingSettings."""
    out: dict[str, Any] = {}
    _put(out, "time_column_name", forecasting.get("timeColumnName"))
    _put(out, "forecast_horizon", _integer(_mode_value(forecasting.get("forecastHorizon"))))
    _put(out, "time_series_id_column_names", forecasting.get("timeSeriesIdColumnNames"))
    _put(out, "freq", forecasting.get("frequency"))
    lags = _mode_value(forecasting.get("targetLags"), "values")
    _put(out, "target_lags", [_integer(v) for v in lags] if isinstance(lags, list) else lags)
    _put(out, "target_rolling_window_size", _integer(_mode_value(forecasting.get("targetRollingWindowSize"))))
    _put(out, "seasonality", _integer(_mode_value(forecasting.get("seasonality"))))
    _put(out, "country_or_region_for_holidays", forecasting.get("countryOrRegionForHolidays"))
    _put(out, "cv_step_size", _integer(forecasting.get("cvStepSize")))
    _put(out, "features_unknown_at_forecast_time", forecasting.get("featuresUnknownAtForecastTime"))
    for rest, (name, values) in FORECAST_ENUMS.items():
        if forecasting.get(rest) is not None:
            spelled = _spelled(forecasting[rest], values)
            out[name] = values.get(spelled, spelled)
    return out


# -- what the service refuses in a task ----------------------------------------------------------------------
# AutoMLConfig name -> the node's (CLI v2 YAML) name, for messages in the client's terms
NODE_NAMES = {"experiment_timeout_minutes": "limits.timeout_minutes", "iteration_timeout_minutes":
              "limits.trial_timeout_minutes", "iterations": "limits.max_trials",
              "max_concurrent_iterations": "limits.max_concurrent_trials", "n_cross_validations": "n_cross_validations",
              "validation_size": "validation_data_size", "validation_data": "validation_data"}
GROUPS = {"limitSettings": ("limits", LIMIT_FIELDS), "trainingSettings": ("training", TRAINING_FIELDS),
          "featurizationSettings": ("featurization", FEATURIZATION_FIELDS),
          "forecastingSettings": ("forecasting", FORECASTING_FIELDS),
          "stackEnsembleSettings": ("stack_ensemble_settings", STACK_FIELDS)}
TASK_MODELS = {"Classification": "Classification", "Regression": "Regression", "Forecasting": "Forecasting"}


def _node_path(rest_path: str) -> str:
    """A path in the REST task (``limitSettings.maxTrials``) in the node's terms (``limits.max_trials``)."""
    parts, out, fields = rest_path.split("."), [], TASK_FIELDS
    for part in parts:
        bare = part.split("[")[0]
        if bare in GROUPS:
            name, fields = GROUPS[bare]
            out.append(name + part[len(bare):])
            continue
        reverse = {rest: name for name, rest in fields.items()}
        out.append(reverse.get(bare, bare) + part[len(bare):])
    return ".".join(out)


def check_task(task: Mapping[str, Any], where: str) -> list[Any]:
    """What the service refuses in an AutoML task, as :class:`~.v2_schema.Problem` s targeted at the node's
    fields (``where`` is the node's path): values the REST models do not hold (types, the enums of
    primary metrics, models and settings, durations), then Azure AutoML's limits (:func:`.automl.limit_problems`).
    Settings the fake does not act on are accepted when well-typed, as the service accepts them."""
    from .automl import limit_problems
    from .v2_schema import Problem, check

    def problem(rest_path: str, code: str, message: str) -> Problem:
        target = f"{where}.{_node_path(rest_path)}"
        return Problem(target, code, f"{target}: {message}")

    task_type = str(task.get("taskType"))
    model = TASK_MODELS.get(task_type)
    if model is None:
        choices = [m.value for m in models().TaskType]
        return [problem("task", "InvalidValue", f"unknown value {task.get('taskType')!r}; one of "
                                                f"{', '.join(choices)} (the fake runs {', '.join(TASK_MODELS)})")]
    problems: list[Problem] = []
    for found in check(task, getattr(models(), model)):
        if found.target.split(".")[-1] in ("trainingData", "validationData", "testData", "uri", "jobInputType"):
            continue  # data inputs are read by the pipeline's bindings
        problems.append(problem(found.target, found.code, found.message.split(": ", 1)[-1]))
    enums = dict(TASK_ENUMS[task_type])

    def strict(rest_path: str, value: Any, enum_name: str) -> None:
        choices = [member.value for member in getattr(models(), enum_name)]
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item not in choices:
                problems.append(problem(rest_path, "InvalidValue", f"unknown value {item!r}; one of "
                                                                   f"{', '.join(choices)}"))

    if "primaryMetric" in task:
        strict("primaryMetric", task["primaryMetric"], enums["primaryMetric"])
    if "logVerbosity" in task:
        strict("logVerbosity", task["logVerbosity"], ENUMS["logVerbosity"])
    training = task.get("trainingSettings") or {}
    for name in ("allowedTrainingAlgorithms", "blockedTrainingAlgorithms"):
        if name in training:
            strict(f"trainingSettings.{name}", training[name], enums["models"])
    stack = training.get("stackEnsembleSettings") or {}
    if isinstance(stack, Mapping) and "stackMetaLearnerType" in stack:
        strict("trainingSettings.stackEnsembleSettings.stackMetaLearnerType", stack["stackMetaLearnerType"],
               ENUMS["stackMetaLearnerType"])
    featurization = task.get("featurizationSettings") or {}
    for name in ("mode", "blockedTransformers"):
        if isinstance(featurization, Mapping) and name in featurization:
            strict(f"featurizationSettings.{name}", featurization[name], ENUMS[name])
    forecasting = task.get("forecastingSettings") or {}
    for name in ("featureLags", "useStl", "shortSeriesHandlingConfig", "targetAggregateFunction"):
        if isinstance(forecasting, Mapping) and name in forecasting:
            strict(f"forecastingSettings.{name}", forecasting[name], ENUMS[name])
    limits = task.get("limitSettings") or {}
    for name in ("timeout", "trialTimeout"):
        value = limits.get(name) if isinstance(limits, Mapping) else None
        if isinstance(value, str) and not isinstance(duration_minutes(value), (int, float)):
            problems.append(problem(f"limitSettings.{name}", "InvalidType", f"expected a duration (ISO 8601 such as "
                                                                            f"PT30M, without years or months), got "
                                                                            f"{value!r}"))
    if problems:
        return problems
    settings = settings_of_task(task)
    for setting, code, message in limit_problems(settings, NODE_NAMES, has_validation_data=bool(task.get("validationData"))):
        target = f"{where}.{NODE_NAMES.get(setting, setting)}"
        problems.append(Problem(target, code, f"{target}: {message}"))
    return problems
