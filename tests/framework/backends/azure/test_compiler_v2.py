"""The validated graph compiled to real Azure ML SDK v2 entities: command components, the AutoML node, MLTable."""

from __future__ import annotations

import re

import pytest
import yaml

from framework import (AutoMLStep, BackendError, DataType, Dataset, Input, Pipeline, PipelineParameter, Step, StepSpec,
                       get_plugin_manager, hookimpl, load_pipeline)
from framework.backends.azure.sdk_v2 import plan as plan_v2
from framework.backends.azure.sdk_v2.compiler import build as compile_pipeline

from .conftest import PENGUINS, TITANIC

pytest.importorskip("azure.ai.ml")


def compile_v2(pipeline, tmp_path, plugins=None, **kwargs):
    plugins = plugins or get_plugin_manager()
    return compile_pipeline(pipeline.validate(plugins), plugins=plugins, assets=tmp_path / "assets", **kwargs)


@pytest.fixture(scope="module")
def titanic_v2(tmp_path_factory):
    plugins = get_plugin_manager()
    validated = load_pipeline(TITANIC).validate(plugins)
    return compile_pipeline(validated, plugins=plugins, assets=tmp_path_factory.mktemp("v2") / "assets",
                            params={"model_name": "Submitted", "iterations": "4"})


def test_titanic_compiles_to_a_pipeline_job_of_command_and_automl_nodes(titanic_v2):
    from azure.ai.ml.entities import Command, PipelineJob
    from azure.ai.ml.entities._job.automl.tabular import ClassificationJob

    job = titanic_v2.pipeline
    assert isinstance(job, PipelineJob)
    assert titanic_v2.node_names == {"dataprep": "dataprep", "AutoML_Classification": "automl_classification",
                                     "register_model": "register_model"}
    dataprep, automl, register = (job.jobs[n] for n in ("dataprep", "automl_classification", "register_model"))
    assert isinstance(dataprep, Command) and isinstance(register, Command) and isinstance(automl, ClassificationJob)
    assert job.experiment_name == "titanic_automl" and job.settings.default_compute == "cpu-cluster"

    # a command component per plugin step: the entry script, typed inputs and outputs, reuse as is_deterministic
    component = dataprep.component
    assert component.command.startswith("python amlstep_entry.py --amlstep-sdk v2 --amlstep-step dataprep "
                                         "--amlstep-plugin dataprep_titanic --amlstep-code ")
    assert ("--input titanic_ds ${{inputs.titanic_ds}} --output learned ${{outputs.learned}} "
            "--output prepped_data ${{outputs.prepped_data}}") in component.command
    assert component.inputs["titanic_ds"].type == "mltable" and component.outputs["prepped_data"].type == "mltable"
    assert component.outputs["learned"].type == "uri_folder"  # what dataprep learned: learned.json
    assert component.is_deterministic is True and register.component.is_deterministic is False
    assert (titanic_v2.assets / "code" / "amlstep_entry.py").is_file()
    assert component.code == str(titanic_v2.assets / "code")
    build = component.environment.build
    assert (titanic_v2.assets / "environments" / "amlstep" / "Dockerfile").is_file()
    assert build.path == str(titanic_v2.assets / "environments" / "amlstep")
    # the wheels shipped in the build context, installed by the conda file from where the Dockerfile copies them
    context = titanic_v2.assets / "environments" / "amlstep"
    wheel = next((context / "wheels").glob("amlstep-0.1.0-*.whl"))
    pip = yaml.safe_load((context / "conda.yaml").read_text())["dependencies"][-1]["pip"]
    assert pip[0] == f"/amlstep/wheels/{wheel.name}"
    assert "COPY wheels /amlstep/wheels" in (context / "Dockerfile").read_text()
    assert {p.split("==")[0] for p in pip[1:]} >= {"pandas", "scikit-learn", "azure-ai-ml", "mlflow-skinny"}
    assert not any(p.startswith(("amlstep==", "azureml-core")) for p in pip)
    assert titanic_v2.environments["amlstep"]["wheels"][0]["name"] == "amlstep"
    assert register.component.inputs["model"].type == "mlflow_model"
    assert register.component.inputs["model_name"].type == "string"
    assert "--param model_name '${{inputs.model_name}}'" in register.component.command

    # the AutoML node: v2 names, limits bound to pipeline inputs, mlflow_model output
    assert automl.target_column_name == "Survived" and automl.primary_metric.lower() == "aucweighted"
    assert automl.n_cross_validations == 5
    assert plan_v2.job_dict(titanic_v2)["jobs"]["automl_classification"]["limits"] == {
        "enable_early_termination": True, "max_trials": "${{parent.inputs.iterations}}",
        "timeout_minutes": "${{parent.inputs.experiment_timeout_minutes}}", "trial_timeout_minutes": 10}
    assert automl.featurization.mode == "auto"

    # pipeline inputs: the dataset and the parameters, with the submit-time values
    assert job.inputs["titanic_ds"].type == "mltable" and job.inputs["titanic_ds"].path == "titanic_ds@latest"
    assert {n: job.inputs[n]._data for n in ("iterations", "experiment_timeout_minutes", "model_name")} == {
        "iterations": 4, "experiment_timeout_minutes": 15, "model_name": "Submitted"}
    assert plan_v2.job_dict(titanic_v2)["outputs"] == {"model_output": {"type": "mlflow_model"}}
    assert titanic_v2.run_history_outputs == {"metrics_output": "AutoML_Classification"}


def test_the_plan_reads_the_job_back(titanic_v2):
    plan = plan_v2.render(titanic_v2)
    assert plan["sdk"] == "Azure ML SDK v2" and plan["sdk_version"] == "v2"
    assert plan["pipeline_parameters"]["iterations"] == {
        "default": 2, "value": 4, "azure": "pipeline input, used by AutoML_Classification (iterations)"}
    dataprep, automl, register = plan["steps"]
    assert (dataprep["node"], automl["node"]) == ("dataprep", "automl_classification")
    assert dataprep["script"] == "amlstep_entry.py" and dataprep["arguments"][:2] == ["--amlstep-sdk", "v2"]
    assert dataprep["inputs"] == ["titanic_ds: mltable <- dataset:titanic_ds"]
    assert automl["automl_config"]["settings"]["limits"]["max_trials"] == "${{parent.inputs.iterations}}"
    assert automl["automl_config"]["from_pipeline_parameters"] == {
        "experiment_timeout_minutes": "experiment_timeout_minutes", "iterations": "iterations"}
    assert register["allow_reuse"] is False
    assert plan["edges"] == [["AutoML_Classification.best_model", "pipeline_output:model_output"],
                             ["AutoML_Classification.best_model", "register_model.model"],
                             ["dataprep.prepped_data", "AutoML_Classification.training_data"],
                             ["dataset:titanic_ds", "dataprep.titanic_ds"]]
    assert plan["pipeline_outputs_from_run_history"] == {"metrics_output": "AutoML_Classification"}
    text = plan_v2.format_text(plan)
    assert "step AutoML_Classification (node automl_classification): azure.ai.ml.automl.classification" in text
    assert "pipeline output metrics_output: read from the child runs of step AutoML_Classification" in text


def test_job_yaml_round_trips_through_load_job(tmp_path):
    plugins = get_plugin_manager()
    validated = load_pipeline(TITANIC).validate(plugins)
    target = tmp_path / "review" / "titanic.yml"
    target.parent.mkdir()
    compiled = compile_pipeline(validated, plugins=plugins, assets=plan_v2.prepare_assets(target))
    plan_v2.write_yaml(compiled, target)
    text = target.read_text()
    assert [line for line in text.splitlines() if str(tmp_path) in line] == []
    assert "code: ./titanic.assets/code" in text
    loaded = plan_v2.load_yaml(target)
    assert type(loaded) is type(compiled.pipeline)
    assert plan_v2.fix_automl_outputs(yaml.safe_load(loaded._to_yaml())) == plan_v2.job_dict(compiled)
    assert str(loaded.jobs["automl_classification"].limits.max_trials) == "${{parent.inputs.iterations}}"
    # writing again replaces the assets amlstep made, never a folder it did not make
    plan_v2.prepare_assets(target)
    (tmp_path / "review" / "mine.assets").mkdir()
    with pytest.raises(BackendError, match=re.escape("mine.assets exists and was not written by amlstep")):
        plan_v2.prepare_assets(tmp_path / "review" / "mine.yml")


def test_a_boolean_pipeline_parameter_is_written_true_or_false(tmp_path):
    """azure-ai-ml dumps a boolean pipeline input as 0: the job YAML says false, and reads back as a boolean (issue 26)."""
    plugins = get_plugin_manager()
    target = tmp_path / "job.yml"
    pipeline = _pipeline(enable_early_stopping=PipelineParameter("early", default_value=False))
    for given, expected in (({}, False), ({"early": "true"}, True)):
        compiled = compile_pipeline(pipeline.validate(plugins), plugins=plugins, params=given,
                                    assets=plan_v2.prepare_assets(target), environment=lambda *_: {})
        plan_v2.write_yaml(compiled, target)
        assert f"  early: {str(expected).lower()}\n" in target.read_text()
        assert plan_v2.job_dict(compiled)["inputs"]["early"] is expected
        loaded = plan_v2.load_yaml(target)
        assert loaded.inputs["early"]._data is expected
        assert loaded._to_rest_object().properties.inputs["early"].value == str(expected)


def test_penguins_compiles_with_its_own_distribution_environment(tmp_path):
    compiled = compile_v2(load_pipeline(PENGUINS), tmp_path)
    envs = sorted(p.name for p in (compiled.assets / "environments").iterdir())
    assert envs == ["amlstep", "amlstep-penguins"]
    conda = yaml.safe_load((compiled.assets / "environments" / "amlstep-penguins" / "conda.yaml").read_text())
    shipped = [p for p in conda["dependencies"][-1]["pip"] if p.endswith(".whl")]
    assert [p.split("/")[-1].split("-")[0] for p in shipped] == ["amlstep", "amlstep_penguins"]
    automl = compiled.pipeline.jobs["automl_classification"]
    assert automl.target_column_name == "species"


def _pipeline(**automl):
    settings = {"task": "classification", "label_column_name": "Survived", **automl}
    return Pipeline(experiment="x", steps=[
        Step("dataprep_titanic", name="prep", inputs={"titanic_ds": Dataset("titanic_ds")},
             outputs={"prepped_data": "prepped"}),
        AutoMLStep(name="train", training_data="prepped", **settings),
    ], outputs={"model_output": "best_model_data"})


def test_settings_v2_cannot_bind_are_fixed_and_say_so(tmp_path):
    allowed = PipelineParameter("metric", default_value="accuracy")
    compiled = compile_v2(_pipeline(primary_metric=allowed, iterations=PipelineParameter("n", default_value=3),
                                    allowed_models=["LogisticRegression", "XGBoostClassifier"],
                                    enable_stack_ensemble=False), tmp_path)
    assert plan_v2.job_dict(compiled)["jobs"]["train"]["limits"]["max_trials"] == "${{parent.inputs.n}}"
    assert plan_v2.job_dict(compiled)["jobs"]["train"]["training"] == {
        "enable_stack_ensemble": False, "allowed_training_algorithms": ["logistic_regression", "xg_boost_classifier"]}
    assert compiled.baked_parameters == {"metric": ["train"]} and "metric" not in compiled.pipeline.inputs
    plan = plan_v2.render(compiled)
    assert plan["pipeline_parameters"]["metric"]["azure"] == (
        "fixed in the AutoML node of step(s) train (SDK v2 cannot bind this AutoML setting to a pipeline input)")
    assert plan["steps"][1]["automl_config"]["fixed_from_pipeline_parameters"] == {"primary_metric": "metric"}


@pytest.mark.parametrize("settings, message", [
    ({"random_state": 3}, "step 'train': AutoML setting 'random_state' has no SDK v2 equivalent (SDK v2 AutoML has no "
                          "seed setting); remove it to compile with --sdk v2"),
    ({"experiment_timeout_minutes": 15.5}, "step 'train': AutoML setting 'experiment_timeout_minutes' is 15.5 minutes; "
                                           "SDK v2 limits take whole minutes (e.g. 16)"),
    ({"featurization": {"drop_columns": ["Name"]}}, "step 'train': featurization 'drop_columns' has no SDK v2 "
                                                    "equivalent (drop the columns in the step that prepares the data)"),
])
def test_settings_v2_cannot_express_are_refused_naming_the_step(tmp_path, settings, message):
    with pytest.raises(BackendError, match=re.escape(message)):
        compile_v2(_pipeline(**settings), tmp_path)


class ReadsMetrics:
    @hookimpl
    def register_steps(self, register):
        register(StepSpec("reads_metrics", lambda metrics: None, inputs=[Input("metrics", DataType.METRICS)]))


def test_automl_metrics_feeding_a_step_are_refused(tmp_path):
    pipeline = Pipeline(experiment="x", steps=[
        Step("dataprep_titanic", name="prep", inputs={"titanic_ds": Dataset("titanic_ds")},
             outputs={"prepped_data": "prepped"}),
        AutoMLStep(name="train", training_data="prepped", task="classification", label_column_name="Survived"),
        Step("reads_metrics", name="report", inputs={"metrics": "metrics_data"}),
    ])
    with pytest.raises(BackendError, match=re.escape(
            "step 'report': input 'metrics' reads AutoML's metrics 'metrics_data', which SDK v2 AutoML nodes do not "
            "output (only best_model)")):
        compile_v2(pipeline, tmp_path, plugins=get_plugin_manager(plugins=[ReadsMetrics()]))


def test_steps_that_would_share_a_node_name_are_refused(tmp_path):
    reads_metrics = Pipeline(experiment="x", steps=[
        Step("dataprep_titanic", name="prep", inputs={"titanic_ds": Dataset("titanic_ds")},
             outputs={"prepped_data": "prepped"}),
        AutoMLStep(name="train", training_data="prepped", task="classification", label_column_name="Survived"),
        Step("register_model", inputs={"model": "best_model_data"}, params={"model_name": "m"}),
        Step("register_model", name="Register_Model", inputs={"model": "best_model_data"}, params={"model_name": "n"}),
    ])
    with pytest.raises(BackendError, match=re.escape(
            "steps 'register_model' and 'Register_Model' would both be node 'register_model' under SDK v2")):
        compile_v2(reads_metrics, tmp_path)


def test_no_reuse_forces_a_rerun_of_every_node(tmp_path):
    compiled = compile_v2(load_pipeline(TITANIC), tmp_path, reuse=False)
    assert compiled.pipeline.settings.force_rerun is True
    assert compiled.pipeline.jobs["dataprep"].component.is_deterministic is False


def test_an_automl_step_that_must_not_be_reused_forces_a_rerun_and_the_plan_says_so(tmp_path):
    """SDK v2's AutoML node has no reuse switch of its own: the whole pipeline job re-runs."""
    reused = compile_v2(_pipeline(), tmp_path / "a")
    assert not reused.pipeline.settings.force_rerun
    compiled = compile_v2(_pipeline(allow_reuse=False), tmp_path / "b")
    assert compiled.pipeline.settings.force_rerun is True
    assert [step["allow_reuse"] for step in plan_v2.render(compiled)["steps"]] == [False, False]


def _forecasting(**automl):
    settings = {"task": "forecasting", "label_column_name": "Fare", **automl}
    return Pipeline(experiment="x", steps=[
        Step("dataprep_titanic", name="prep", inputs={"titanic_ds": Dataset("titanic_ds")},
             outputs={"prepped_data": "prepped"}),
        AutoMLStep(name="train", training_data="prepped", **settings),
    ], outputs={"model_output": "best_model_data"})


def test_forecasting_compiles_to_automl_forecasting_with_set_forecast_settings(tmp_path):
    from azure.ai.ml.entities._job.automl.tabular import ForecastingJob

    from emulator import ForecastingParameters
    from emulator.azure_service.v2_automl import settings_of_task, task_of_node

    parameters = ForecastingParameters(
        time_column_name="date", forecast_horizon=6, time_series_id_column_names=["store", "brand"], freq="MS",
        target_lags=[1, 12], feature_lags="auto", target_rolling_window_size=3, seasonality=None,
        use_stl="season_trend", short_series_handling_configuration=None, target_aggregation_function="sum",
        country_or_region_for_holidays="us", cv_step_size=2)
    compiled = compile_v2(_forecasting(forecasting_parameters=parameters, n_cross_validations=3,
                                       allowed_models=["SeasonalNaive", "AutoArima", "LightGBM", "Prophet"]), tmp_path)
    node = compiled.pipeline.jobs["train"]
    assert isinstance(node, ForecastingJob) and node.target_column_name == "Fare"
    written = plan_v2.job_dict(compiled)["jobs"]["train"]
    assert written["forecasting"] == {
        "time_column_name": "date", "forecast_horizon": 6, "time_series_id_column_names": "['store', 'brand']",
        "frequency": "MS", "target_lags": [1, 12], "feature_lags": "auto", "target_rolling_window_size": 3,
        "seasonality": 1, "use_stl": "seasontrend", "short_series_handling_config": "none",
        "target_aggregate_function": "sum", "country_or_region_for_holidays": "US", "cv_step_size": 2}
    assert written["training"]["allowed_training_algorithms"] == ["seasonal_naive", "auto_arima", "light_gbm", "prophet"]
    # what the service reads (the REST body's node, read by the fake on the service's terms) is the same
    # ForecastingParameters
    rest = compiled.pipeline._to_rest_object().as_dict()["properties"]["jobs"]["train"]
    settings = settings_of_task(task_of_node(rest))
    assert settings["task"] == "forecasting" and settings["allowed_models"] == ["SeasonalNaive", "AutoArima",
                                                                                "LightGBM", "Prophet"]
    assert settings["forecasting_parameters"] == {
        "time_column_name": "date", "forecast_horizon": 6, "time_series_id_column_names": ["store", "brand"],
        "freq": "MS", "target_lags": [1, 12], "feature_lags": "auto", "target_rolling_window_size": 3, "seasonality": 1,
        "use_stl": "season_trend", "short_series_handling_configuration": None, "target_aggregation_function": "sum",
        "country_or_region_for_holidays": "US", "cv_step_size": 2}
    plan = plan_v2.render(compiled)
    assert plan["steps"][1]["automl_config"]["sdk_class"] == "azure.ai.ml.automl.forecasting"
    assert plan["steps"][1]["automl_config"]["settings"]["forecasting"]["frequency"] == "MS"
    # the YAML loads back into an equal job
    target = tmp_path / "review" / "forecast.yml"
    target.parent.mkdir()
    plugins = get_plugin_manager()
    again = compile_pipeline(_forecasting(forecasting_parameters=parameters).validate(plugins), plugins=plugins,
                             assets=plan_v2.prepare_assets(target))
    plan_v2.write_yaml(again, target)
    loaded = plan_v2.load_yaml(target)
    assert plan_v2.fix_automl_outputs(yaml.safe_load(loaded._to_yaml())) == plan_v2.job_dict(again)


def test_forecasting_flat_keywords_compile_like_forecasting_parameters(tmp_path):
    from emulator import ForecastingParameters

    flat = compile_v2(_forecasting(time_column_name="date", max_horizon=4, grain_column_names="store"), tmp_path / "a")
    given = compile_v2(_forecasting(forecasting_parameters=ForecastingParameters(
        time_column_name="date", forecast_horizon=4, time_series_id_column_names="store")), tmp_path / "b")
    forecasting = plan_v2.job_dict(flat)["jobs"]["train"]["forecasting"]
    assert forecasting == plan_v2.job_dict(given)["jobs"]["train"]["forecasting"] == {
        "time_column_name": "date", "forecast_horizon": 4, "time_series_id_column_names": "store"}


def test_forecasting_settings_v2_cannot_express_are_refused(tmp_path):
    from emulator import ForecastingParameters

    with pytest.raises(BackendError, match=re.escape(
            "step 'train': forecasting parameter 'drop_column_names' has no SDK v2 equivalent (drop the columns in the "
            "step that prepares the data); remove it to compile with --sdk v2")):
        compile_v2(_forecasting(forecasting_parameters=ForecastingParameters(
            time_column_name="date", drop_column_names=["Name"])), tmp_path)
