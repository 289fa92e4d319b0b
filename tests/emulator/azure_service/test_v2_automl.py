"""The v2 fake reads AutoML jobs on the service's terms: REST bodies written from the contract, and what
azure-ai-ml itself sends, give the emulator the settings they ask for. amlstep's compiler is not involved,
so a mistake it makes the same way in writing and reading cannot hide here."""

from __future__ import annotations

import pytest

from emulator.azure_service.v2_automl import duration_minutes, settings_of_task, task_of_node

pytest.importorskip("azure.ai.ml")


def test_a_classification_task_written_from_the_rest_contract():
    task = {  # AutoMLJob.taskDetails: the Classification model, camelCase, ISO 8601 durations, the service's enums
        "taskType": "Classification", "primaryMetric": "AUCWeighted", "targetColumnName": "Survived",
        "trainingData": {"jobInputType": "mltable", "uri": "azureml:titanic:1"},
        "nCrossValidations": {"mode": "Custom", "value": 5}, "weightColumnName": "weight",
        "limitSettings": {"maxTrials": 12, "timeout": "PT1H30M", "trialTimeout": "PT10M", "maxConcurrentTrials": 2,
                          "maxCoresPerTrial": -1, "enableEarlyTermination": False, "exitScore": 0.95},
        "trainingSettings": {"blockedTrainingAlgorithms": ["KNN", "XGBoostClassifier"], "enableStackEnsemble": True,
                             "enableVoteEnsemble": False, "enableModelExplainability": False,
                             "enableOnnxCompatibleModels": True, "enableDnnTraining": False,
                             "stackEnsembleSettings": {"stackMetaLearnerType": "LogisticRegression",
                                                       "stackMetaLearnerTrainPercentage": 0.3}},
        "featurizationSettings": {"mode": "Custom", "blockedTransformers": ["LabelEncoder"],
                                  "columnNameAndTypes": {"Age": "Numeric"}, "datasetLanguage": "eng",
                                  "transformerParams": {"Imputer": [{"fields": ["Age"],
                                                                     "parameters": {"strategy": "median"}}]}},
        "testDataSize": 0.1, "logVerbosity": "Info", "positiveLabel": "1"}
    assert settings_of_task(task) == {
        "task": "classification", "primary_metric": "AUC_weighted", "label_column_name": "Survived",
        "n_cross_validations": 5, "weight_column_name": "weight",
        "iterations": 12, "experiment_timeout_minutes": 90, "iteration_timeout_minutes": 10,
        "max_concurrent_iterations": 2, "max_cores_per_iteration": -1, "enable_early_stopping": False,
        "experiment_exit_score": 0.95,
        "blocked_models": ["KNN", "XGBoostClassifier"], "enable_stack_ensemble": True, "enable_voting_ensemble": False,
        "model_explainability": False, "enable_onnx_compatible_models": True, "enable_dnn": False,
        "stack_meta_learner_type": "LogisticRegression", "stack_meta_learner_train_percentage": 0.3,
        "featurization": {"column_purposes": {"Age": "Numeric"}, "blocked_transformers": ["LabelEncoder"],
                          "dataset_language": "eng", "transformer_params": {"Imputer": [(["Age"],
                                                                                          {"strategy": "median"})]}}}


def test_a_forecasting_task_written_from_the_rest_contract():
    task = {"taskType": "Forecasting", "primaryMetric": "NormalizedRootMeanSquaredError", "targetColumnName": "sales",
            "trainingData": {"jobInputType": "mltable", "uri": "azureml:sales:1"},
            "nCrossValidations": {"mode": "Auto"}, "validationDataSize": 0.2,
            "trainingSettings": {"allowedTrainingAlgorithms": ["SeasonalNaive", "AutoArima", "LightGBM"]},
            "featurizationSettings": {"mode": "Off"},
            "forecastingSettings": {"timeColumnName": "date", "forecastHorizon": {"mode": "Custom", "value": 12},
                                    "timeSeriesIdColumnNames": ["store", "brand"], "frequency": "MS",
                                    "targetLags": {"mode": "Custom", "values": [1, 12]}, "featureLags": "Auto",
                                    "targetRollingWindowSize": {"mode": "Custom", "value": 3},
                                    "seasonality": {"mode": "Auto"}, "useStl": "SeasonTrend",
                                    "shortSeriesHandlingConfig": "None", "targetAggregateFunction": "Sum",
                                    "countryOrRegionForHolidays": "US", "cvStepSize": 2}}
    assert settings_of_task(task) == {
        "task": "forecasting", "primary_metric": "normalized_root_mean_squared_error", "label_column_name": "sales",
        "n_cross_validations": "auto", "validation_size": 0.2,
        "allowed_models": ["SeasonalNaive", "AutoArima", "LightGBM"], "featurization": "off",
        "forecasting_parameters": {
            "time_column_name": "date", "forecast_horizon": 12, "time_series_id_column_names": ["store", "brand"],
            "freq": "MS", "target_lags": [1, 12], "feature_lags": "auto", "target_rolling_window_size": 3,
            "seasonality": "auto", "use_stl": "season_trend", "short_series_handling_configuration": None,
            "target_aggregation_function": "sum", "country_or_region_for_holidays": "US", "cv_step_size": 2}}


def test_values_are_read_as_the_services_json_reader_reads_them():
    task = {"taskType": "Regression", "primaryMetric": "R2Score", "targetColumnName": "y",
            "nCrossValidations": {"mode": "Custom", "value": "3"},
            "limitSettings": {"maxTrials": "4", "exitScore": "0.5", "enableEarlyTermination": "false",
                              "timeout": "00:45:00", "trialTimeout": "PT90S"}}
    settings = settings_of_task(task)
    assert (settings["n_cross_validations"], settings["iterations"], settings["experiment_exit_score"]) == (3, 4, 0.5)
    assert settings["enable_early_stopping"] is False and settings["primary_metric"] == "r2_score"
    assert (settings["experiment_timeout_minutes"], settings["iteration_timeout_minutes"]) == (45, 1.5)


def test_what_cannot_be_read_is_passed_on_for_the_emulator_to_refuse():
    settings = settings_of_task({"taskType": "Classification", "primaryMetric": "F1Score", "targetColumnName": "y",
                                 "limitSettings": {"maxTrials": "many", "timeout": "P1M"},
                                 "trainingSettings": {"allowedTrainingAlgorithms": ["NoSuchModel"]}})
    assert settings["primary_metric"] == "F1Score" and settings["iterations"] == "many"
    assert settings["experiment_timeout_minutes"] == "P1M" and settings["allowed_models"] == ["NoSuchModel"]


@pytest.mark.parametrize("text, minutes", [("PT30M", 30), ("PT1H30M", 90), ("P1DT2H", 1560), ("PT90S", 1.5),
                                           ("P2W", 20160), ("01:30:00", 90), ("1.00:00:00", 1440), ("-PT5M", -5),
                                           ("P1M", "P1M"), ("P1Y", "P1Y"), ("PT", "PT"), ("soon", "soon")])
def test_durations_in_both_forms_the_service_reads(text, minutes):
    assert duration_minutes(text) == minutes


# -- what azure-ai-ml sends, not what amlstep compiles ----------------------------------------------------
def _classification():
    from azure.ai.ml import Input, Output, automl

    job = automl.classification(training_data=Input(type="mltable", path="azureml:titanic:1"),
                                target_column_name="Survived", primary_metric="accuracy", n_cross_validations=3,
                                outputs={"best_model": Output(type="mlflow_model")})
    job.set_limits(max_trials=4, timeout_minutes=30, trial_timeout_minutes=10, max_concurrent_trials=1,
                   enable_early_termination=False, exit_score=0.9)
    job.set_training(blocked_training_algorithms=["knn", "xg_boost_classifier"], enable_stack_ensemble=False,
                     enable_vote_ensemble=True, enable_model_explainability=False)
    job.set_featurization(mode="custom", blocked_transformers=["label_encoder"], column_name_and_types={"Age": "Numeric"})
    job.compute = "cpu-cluster"
    return job


def _forecasting():
    from azure.ai.ml import Input, automl

    job = automl.forecasting(training_data=Input(type="mltable", path="azureml:sales:1"), target_column_name="sales",
                             primary_metric="normalized_root_mean_squared_error", n_cross_validations="auto")
    job.set_forecast_settings(time_column_name="date", forecast_horizon=12, time_series_id_column_names=["store", "brand"],
                              frequency="MS", target_lags=[1, 12], feature_lags="auto", target_rolling_window_size=3,
                              seasonality="auto", use_stl="season", short_series_handling_config="pad",
                              target_aggregate_function="sum", country_or_region_for_holidays="US", cv_step_size=2)
    job.set_limits(timeout_minutes=90, max_trials=8)
    job.set_training(allowed_training_algorithms=["seasonal_naive", "AutoArima", "LightGBM"], enable_stack_ensemble=False)
    job.set_featurization(mode="off")
    job.compute = "cpu-cluster"
    return job


EXPECTED = {
    "classification": {
        "task": "classification", "primary_metric": "accuracy", "label_column_name": "Survived",
        "n_cross_validations": 3, "iterations": 4, "experiment_timeout_minutes": 30, "iteration_timeout_minutes": 10,
        "max_concurrent_iterations": 1, "enable_early_stopping": False, "experiment_exit_score": 0.9,
        "blocked_models": ["KNN", "XGBoostClassifier"], "enable_stack_ensemble": False, "enable_voting_ensemble": True,
        "model_explainability": False,
        "featurization": {"column_purposes": {"Age": "Numeric"}, "blocked_transformers": ["LabelEncoder"]}},
    "forecasting": {
        "task": "forecasting", "primary_metric": "normalized_root_mean_squared_error", "label_column_name": "sales",
        "n_cross_validations": "auto", "iterations": 8, "experiment_timeout_minutes": 90,
        "allowed_models": ["SeasonalNaive", "AutoArima", "LightGBM"], "enable_stack_ensemble": False,
        "featurization": "off",
        "forecasting_parameters": {
            "time_column_name": "date", "forecast_horizon": 12, "time_series_id_column_names": ["store", "brand"],
            "freq": "MS", "target_lags": [1, 12], "feature_lags": "auto", "target_rolling_window_size": 3,
            "seasonality": "auto", "use_stl": "season", "short_series_handling_configuration": "pad",
            "target_aggregation_function": "sum", "country_or_region_for_holidays": "US", "cv_step_size": 2}},
}
JOBS = {"classification": _classification, "forecasting": _forecasting}


@pytest.mark.parametrize("kind", sorted(JOBS))
def test_azure_ai_mls_own_rest_body_of_an_automl_job_reads_as_asked(kind):
    """What ``MLClient.jobs.create_or_update`` sends for a standalone AutoML job: ``AutoMLJob._to_rest_object()``."""
    import json

    body = json.loads(json.dumps(JOBS[kind]()._to_rest_object().as_dict()))
    assert body["properties"]["jobType"] == "AutoML"
    assert settings_of_task(body["properties"]["taskDetails"]) == EXPECTED[kind]


@pytest.mark.parametrize("kind", sorted(JOBS))
def test_azure_ai_mls_pipeline_node_of_the_same_job_reads_the_same(kind):
    """In a pipeline job the node comes in the YAML schema's form (``_to_dict(inside_pipeline=True)``); written
    in the REST form it is a valid task of the REST models, and it reads as the standalone job does."""
    import json

    from emulator.azure_service.v2_schema import check, models

    node = json.loads(json.dumps(JOBS[kind]()._to_dict(inside_pipeline=True)))
    assert node["type"] == "automl" and "limits" in node and "taskDetails" not in node
    task = task_of_node({k: v for k, v in node.items() if k != "training_data"})
    task["trainingData"] = {"jobInputType": "mltable", "uri": "azureml:data:1"}
    assert check(task, models().AutoMLVertical, "taskDetails") == []
    assert settings_of_task(task) == EXPECTED[kind]


def test_a_node_written_by_hand_in_the_yaml_form_reads_as_asked():
    """A ``type: automl`` node as the CLI v2 YAML schema writes it (bindings already resolved to text)."""
    node = {"type": "automl", "task": "regression", "primary_metric": "normalized_mean_absolute_error",
            "target_column_name": "price", "training_data": "${{parent.jobs.prep.outputs.data}}",
            "validation_data_size": "0.25", "n_cross_validations": "auto",
            "limits": {"max_trials": "6", "timeout_minutes": "20", "trial_timeout_minutes": 5,
                       "enable_early_termination": "True", "max_cores_per_trial": -1},
            "training": {"allowed_training_algorithms": ["light_gbm", "random_forest", "xg_boost_regressor"],
                         "enable_stack_ensemble": True,
                         "stack_ensemble_settings": {"stack_meta_learner_type": "light_gbm_regressor",
                                                     "stack_meta_learner_train_percentage": 0.25}},
            "featurization": {"mode": "auto"}}
    task = task_of_node(node)
    assert task["limitSettings"]["timeout"] == "PT20M" and task["nCrossValidations"] == {"mode": "Auto"}
    assert task["trainingData"] == {"jobInputType": "mltable", "uri": "${{parent.jobs.prep.outputs.data}}"}
    assert settings_of_task(task) == {
        "task": "regression", "primary_metric": "normalized_mean_absolute_error", "label_column_name": "price",
        "n_cross_validations": "auto", "validation_size": 0.25, "iterations": 6, "experiment_timeout_minutes": 20,
        "iteration_timeout_minutes": 5, "enable_early_stopping": True, "max_cores_per_iteration": -1,
        "allowed_models": ["LightGBM", "RandomForest", "XGBoostRegressor"], "enable_stack_ensemble": True,
        "stack_meta_learner_type": "LightGBMRegressor", "stack_meta_learner_train_percentage": 0.25,
        "featurization": "auto"}


def test_what_amlstep_compiles_reads_back_as_the_steps_own_settings(tmp_path):
    """The compiler's node, read by the fake's own reader: a setting the compiler writes under the wrong name
    (and would read back with the same mistake) shows up here as a setting the step did not ask for."""
    import json

    from framework import AutoMLStep, Dataset, Pipeline, Step, get_plugin_manager
    from framework.backends.azure.sdk_v2.compiler import build as compile_pipeline

    settings = dict(task="classification", label_column_name="Survived", primary_metric="norm_macro_recall",
                    iterations=7, experiment_timeout_minutes=45, iteration_timeout_minutes=6, max_concurrent_iterations=2,
                    max_cores_per_iteration=-1, enable_early_stopping=False, experiment_exit_score=0.8,
                    n_cross_validations=4, weight_column_name="Fare", allowed_models=["LightGBM", "RandomForest"],
                    enable_voting_ensemble=False, enable_stack_ensemble=True, model_explainability=False,
                    featurization={"blocked_transformers": ["LabelEncoder"], "column_purposes": {"Age": "Numeric"}})
    pipeline = Pipeline(experiment="x", steps=[
        Step("dataprep_titanic", name="prep", inputs={"titanic_ds": Dataset("titanic_ds")},
             outputs={"prepped_data": "prepped"}),
        AutoMLStep(name="train", training_data="prepped", **settings)])
    plugins = get_plugin_manager()
    compiled = compile_pipeline(pipeline.validate(plugins), plugins=plugins, assets=tmp_path / "assets")
    node = json.loads(json.dumps(compiled.pipeline._to_rest_object().as_dict()["properties"]["jobs"]["train"]))
    read = settings_of_task(task_of_node({k: v for k, v in node.items() if k not in ("training_data", "outputs")}))
    assert read == settings


# -- what the service refuses, as it refuses it ------------------------------------------------------------
NODE = {"task": "classification", "target_column_name": "y", "training_data": "${{parent.inputs.data}}",
        "primary_metric": "accuracy"}


@pytest.mark.parametrize("change, target, message", [
    ({"limits": {"timeout_minutes": 5}}, "limits.timeout_minutes",
     "Value for argument [limits.timeout_minutes] is out of range (Range: [15 - 525600])."),
    ({"limits": {"max_trials": 1001}}, "limits.max_trials",
     "Value for argument [limits.max_trials] is out of range (Range: [1 - 1000])."),
    ({"limits": {"trial_timeout_minutes": 0}}, "limits.trial_timeout_minutes",
     "Value for argument [limits.trial_timeout_minutes] is out of range (Range: [1 - 43200])."),
    ({"n_cross_validations": 1}, "n_cross_validations",
     "Value for argument [n_cross_validations] is out of range (Range: [2 - 1000])."),
    ({"n_cross_validations": 5, "validation_data_size": 0.2}, "n_cross_validations",
     "Conflicting or duplicate values are provided for arguments: [n_cross_validations, validation_data_size]"),
    ({"n_cross_validations": "auto", "validation_data": "${{parent.inputs.data}}"}, "n_cross_validations",
     "Conflicting or duplicate values are provided for arguments: [n_cross_validations, validation_data]"),
    ({"limits": {"max_trials": "many"}}, "limits.max_trials", 'expected an integer, got string "many"'),
    ({"limits": {"timeout_minutes": "P1M"}}, "limits.timeout_minutes",
     "expected a duration (ISO 8601 such as PT30M, without years or months), got 'P1M'"),
    ({"primary_metric": "F1Score"}, "primary_metric", "unknown value 'F1Score'; one of AUCWeighted, Accuracy, "),
    ({"training": {"allowed_training_algorithms": ["NoSuchModel"]}}, "training.allowed_training_algorithms",
     "unknown value 'NoSuchModel'; one of LogisticRegression, "),
    ({"featurization": {"mode": "sometimes"}}, "featurization.mode", "unknown value 'sometimes'; one of "),
])
def test_the_service_refuses_what_azure_refuses(change, target, message):
    from emulator.azure_service.v2_automl import check_task

    problems = check_task(task_of_node({**NODE, **change}), "properties.jobs.train")
    assert [p.target for p in problems] == [f"properties.jobs.train.{target}"]
    assert problems[0].message.startswith(f"properties.jobs.train.{target}: {message}")


def test_settings_the_fake_does_not_act_on_are_accepted_when_well_typed():
    from emulator.azure_service.v2_automl import check_task

    node = {**NODE, "positive_label": "1", "log_verbosity": "info", "test_data_size": 0.1,
            "limits": {"timeout_minutes": 15, "max_trials": 1000, "max_concurrent_trials": 4},
            "training": {"enable_dnn_training": False, "blocked_training_algorithms": ["knn"]}}
    assert check_task(task_of_node(node), "properties.jobs.train") == []


@pytest.mark.parametrize("limits, message", [
    ({"timeout_minutes": 5}, "Value for argument [limits.timeout_minutes] is out of range (Range: [15 - 525600])."),
    ({"max_trials": 1001}, "Value for argument [limits.max_trials] is out of range (Range: [1 - 1000])."),
])
def test_azure_ai_ml_gets_azures_error_shape(fake_azure_v2, limits, message):
    """A job azure-ai-ml 1.35 submits as written: the service answers 400 UserError with the node's field as target."""
    from azure.ai.ml import Input, automl, dsl
    from azure.core.exceptions import HttpResponseError

    @dsl.pipeline(default_compute="cpu-cluster")
    def pipeline(data):
        node = automl.classification(training_data=data, target_column_name="y", primary_metric="accuracy",
                                     n_cross_validations=3)
        node.set_limits(**limits)

    with pytest.raises(HttpResponseError) as raised:
        fake_azure_v2.ml_client.jobs.create_or_update(pipeline(Input(type="mltable", path="azureml:titanic:1")),
                                                      experiment_name="refused")
    assert raised.value.status_code == 400
    error = raised.value.response.json()["error"]
    target = f"properties.jobs.node.limits.{next(iter(limits))}"
    assert (error["code"], error["target"]) == ("UserError", target)
    assert error["message"] == f"The request is invalid: {target}: {message}"
    assert error["details"][0]["code"] == "ArgumentOutOfRange"
