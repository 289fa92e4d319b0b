"""The validated graph compiled to real Azure ML SDK v1 objects, with the seed's arguments."""

from __future__ import annotations

import re
from importlib import metadata

import pytest

from framework import AutoMLStep, BackendError, Dataset, Pipeline, PipelineParameter, Step, get_plugin_manager, load_pipeline
from framework.backends.azure.sdk_v1.backend import AzureBackend
from framework.backends.azure.sdk_v1.compiler import SCRIPT_DIR, SCRIPT_NAME

from .conftest import PENGUINS, TITANIC


def test_compiled_objects_are_real_sdk_classes(titanic_compiled):
    from azureml.core.compute import ComputeTarget
    from azureml.core.runconfig import RunConfiguration
    from azureml.data import OutputFileDatasetConfig
    from azureml.data.output_dataset_config import OutputTabularDatasetConfig
    from azureml.pipeline.core import Pipeline as AzurePipeline
    from azureml.pipeline.core import PipelineData, PipelineParameter as AzureParameter
    from azureml.pipeline.steps import AutoMLStep as AzureAutoMLStep
    from azureml.pipeline.steps import PythonScriptStep
    from azureml.train.automl import AutoMLConfig

    compiled = titanic_compiled
    assert isinstance(compiled.pipeline, AzurePipeline)
    dataprep, automl, register = (s.sdk_step for s in compiled.steps)
    assert [type(s).__name__ for s in (dataprep, automl, register)] == ["PythonScriptStep", "AutoMLStep",
                                                                        "PythonScriptStep"]
    assert isinstance(dataprep, PythonScriptStep) and isinstance(register, PythonScriptStep)
    assert isinstance(automl, AzureAutoMLStep)

    # dataprep: the generic entry, the dataset as a named input, the output as OutputFileDatasetConfig
    assert dataprep.name == "dataprep" and dataprep._script_name == SCRIPT_NAME
    assert dataprep._source_directory == str(SCRIPT_DIR) and (SCRIPT_DIR / SCRIPT_NAME).is_file()
    assert dataprep._compute_target == "cpu-cluster" and dataprep._allow_reuse is True
    assert [i.name for i in dataprep._inputs] == ["titanic_ds"]
    assert isinstance(compiled.steps[0].outputs["prepped_data"], OutputFileDatasetConfig)
    assert isinstance(dataprep._runconfig, RunConfiguration)
    # the environment: pinned third-party requirements, and amlstep as a wheel shipped with the submission
    pip = list(dataprep._runconfig.environment.python.conda_dependencies.pip_packages)
    assert "amlstep==0.1.0" not in pip and not any(p.startswith("amlstep==") for p in pip)
    assert re.fullmatch(r"<private wheel amlstep-0\.1\.0-0sha[0-9a-f]{12}-py3-none-any\.whl>", pip[-1])
    assert f"pandas=={metadata.version('pandas')}" in pip and f"azureml-core=={metadata.version('azureml-core')}" in pip
    wheel = compiled.steps[0].environment["wheels"][0]
    assert wheel["name"] == "amlstep" and wheel["sha256"][:12] in wheel["file"]

    # AutoML: AutoMLConfig with a ComputeTarget object, read_delimited_files() training data
    config = automl._automl_config
    assert isinstance(config, AutoMLConfig)
    settings = config.user_settings
    assert isinstance(settings["compute_target"], ComputeTarget) and settings["compute_target"].name == "cpu-cluster"
    assert isinstance(settings["training_data"], OutputTabularDatasetConfig)
    assert {k: settings[k] for k in ("task_type", "primary_metric", "label_column_name", "featurization", "iterations",
                                     "experiment_timeout_minutes", "iteration_timeout_minutes")} == {
        "task_type": "classification", "primary_metric": "AUC_weighted", "label_column_name": "Survived",
        "featurization": "auto", "iterations": 2, "experiment_timeout_minutes": 15, "iteration_timeout_minutes": 10}
    assert automl._allow_reuse is True
    assert automl._enable_default_metrics_output is False and automl._enable_default_model_output is False
    metrics, model = compiled.steps[1].outputs["metrics"], compiled.steps[1].outputs["model"]
    assert isinstance(metrics, PipelineData) and isinstance(model, PipelineData)
    assert (metrics.name, metrics._training_output.type, metrics._pipeline_output_name) == (
        "metrics_data", "Metrics", "metrics_output")
    assert (model.name, model._training_output.type, model._pipeline_output_name) == (
        "best_model_data", "Model", "model_output")

    # register_model: a PipelineParameter argument, the model as input, never reused
    assert register._allow_reuse is False
    parameter = compiled.parameters["model_name"]
    assert isinstance(parameter, AzureParameter) and parameter.default_value == "TitanicSurvivalInitial"
    assert parameter in register._arguments and model in register._inputs


def test_submit_time_parameters_reach_the_compiled_objects(titanic_compiled):
    assert titanic_compiled.parameter_values == {"iterations": 2, "experiment_timeout_minutes": 15,
                                                 "model_name": "Submitted"}
    assert set(titanic_compiled.parameters) == {"model_name"}  # AutoML settings are fixed at compile time
    assert titanic_compiled.baked_parameters == {"iterations": ["AutoML_Classification"],
                                                 "experiment_timeout_minutes": ["AutoML_Classification"]}


def test_automl_parameters_are_fixed_at_compile_time():
    plugins = get_plugin_manager()
    validated = load_pipeline(TITANIC).validate(plugins)
    compiled = AzureBackend(dry_run=True).compile(validated, plugins=plugins, params={"iterations": "4"})
    assert compiled.steps[1].sdk_step._automl_config.user_settings["iterations"] == 4


def test_compute_override_applies_to_steps_that_name_none():
    plugins = get_plugin_manager()
    pipeline = load_pipeline(TITANIC)
    pipeline.steps[2].compute_target = "small-cluster"
    compiled = AzureBackend(dry_run=True, compute="gpu-cluster").compile(pipeline.validate(plugins), plugins=plugins)
    assert [s.compute_target for s in compiled.steps] == ["gpu-cluster", "gpu-cluster", "small-cluster"]
    assert compiled.steps[1].sdk_step._automl_config.user_settings["compute_target"].name == "gpu-cluster"


def test_automl_timeout_below_azure_minimum_is_a_clear_error():
    plugins = get_plugin_manager()
    validated = load_pipeline(TITANIC).validate(plugins)
    message = ("step 'AutoML_Classification': experiment_timeout_minutes=1.0 is below Azure's minimum of 15 "
               "minutes (0.25 hours) for an AutoML experiment")
    with pytest.raises(BackendError, match=re.escape(message)):
        AzureBackend(dry_run=True).compile(validated, plugins=plugins, params={"experiment_timeout_minutes": "1"})


def test_third_party_plugin_environment_ships_its_distribution():
    pytest.importorskip("amlstep_penguins")
    plugins = get_plugin_manager()
    compiled = AzureBackend(dry_run=True).compile(load_pipeline(PENGUINS).validate(plugins), plugins=plugins)
    environment = compiled.steps[0].environment
    assert [w["name"] for w in environment["wheels"]] == ["amlstep", "amlstep-penguins"]
    assert f"palmerpenguins=={metadata.version('palmerpenguins')}" in environment["requirements"]
    assert not any(r.startswith(("amlstep==", "amlstep-penguins==")) for r in environment["requirements"])
    assert compiled.steps[0].sdk_step._arguments[:4] == ["--amlstep-step", "dataprep", "--amlstep-plugin",
                                                         "dataprep_penguins"]


def test_a_plugin_that_is_no_distribution_is_refused_at_compile_time(toy_plugins):
    pipeline = Pipeline([Step("double", inputs={"table": Dataset("numbers_ds")}, outputs={"doubled": "twice"})],
                        experiment="toy")
    message = ("step 'double': plugin 'double' is not part of an installed distribution, so it cannot be shipped to "
               "Azure; make it a package with an 'amlstep' entry point (`amlstep new-plugin NAME` scaffolds one) "
               "and `pip install -e` it")
    with pytest.raises(BackendError, match=re.escape(message)):
        AzureBackend(dry_run=True).compile(pipeline.validate(toy_plugins), plugins=toy_plugins)


def test_automl_step_module_is_the_same_in_every_process():
    """The SDK orders supported_models by set iteration (hash seed): amlstep sorts it, or Azure never reuses."""
    import json
    import os
    import subprocess
    import sys

    script = ("import json\nfrom framework.backends.azure.sdk_v1.sdk import stable_settings\n"
              "from azureml.automl.core.automl_base_settings import AutoMLBaseSettings\n"
              "sdk = AutoMLBaseSettings.__new__(AutoMLBaseSettings)\n"
              "sdk.task_type, sdk.is_timeseries = 'classification', False\n"
              "models = sdk._get_supported_model_names()   # what AutoMLStep sends\n"
              "settings = {'supported_models': models, 'AutoMLConfig': json.dumps({'aml_settings_json_string': "
              "json.dumps({'supported_models': models})})}\n"
              "print(json.dumps([models, stable_settings(settings)]))\n")
    seen = []
    for seed in ("1", "2"):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONHASHSEED": seed})
        assert done.returncode == 0, done.stderr[-2000:]
        seen.append(json.loads(done.stdout.splitlines()[-1]))
    assert seen[0][0] != seen[1][0]           # the SDK's order differs between processes...
    assert seen[0][1] == seen[1][1]           # ...amlstep's does not


def test_step_output_that_is_a_pipeline_output_becomes_pipeline_data(toy_distribution):
    from azureml.pipeline.core import PipelineData

    toy_plugins = toy_distribution
    source = Dataset("numbers_ds")
    pipeline = Pipeline([Step("double", inputs={"table": source}, outputs={"doubled": "twice"}),
                         AutoMLStep(training_data="twice", task="regression", label_column_name="y",
                                    experiment_timeout_minutes=15)],
                        experiment="toy", outputs={"doubled_output": "twice"},
                        parameters=[PipelineParameter("unused", default_value=1)])
    compiled = AzureBackend(dry_run=True).compile(pipeline.validate(toy_plugins), plugins=toy_plugins)
    out = compiled.steps[0].outputs["doubled"]
    assert isinstance(out, PipelineData) and out._pipeline_output_name == "doubled_output"
    assert compiled.plan["pipeline_parameters"]["unused"]["azure"] == "not used by any step"
    assert type(compiled.steps[1].sdk_step._automl_config.user_settings["training_data"]).__name__ == \
        "PipelineOutputTabularDataset"
