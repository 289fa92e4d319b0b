"""Importing the Azure ML SDK v1 with a clear error when the ``azure`` extra is missing."""

from __future__ import annotations

import importlib
from typing import Any

from ...errors import BackendError

INSTALL_HINT = "pip install 'amlstep[azure]'"
REQUIRED = ("azureml.core", "azureml.pipeline.core", "azureml.pipeline.steps", "azureml.train.automl")


def require_azureml() -> None:
    """Raise BackendError naming the ``azure`` extra unless the SDK v1 packages import."""
    for module in REQUIRED:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise BackendError(
                f"the azure backend needs the Azure ML SDK v1 (module {module!r} is not importable: {exc}); "
                f"install it with: {INSTALL_HINT}") from exc


def versions() -> dict[str, str]:
    """Installed versions of the SDK v1 distributions the backend uses."""
    from importlib import metadata

    found = {}
    for dist in ("azureml-core", "azureml-pipeline-core", "azureml-pipeline-steps", "azureml-train-automl-client"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def sdk() -> Any:
    """The SDK v1 names the compiler uses, imported once."""
    require_azureml()
    from types import SimpleNamespace

    from azureml.core import Environment
    from azureml.core.compute import AmlCompute, ComputeTarget
    from azureml.core.conda_dependencies import CondaDependencies
    from azureml.core.runconfig import RunConfiguration
    from azureml.data import OutputFileDatasetConfig
    from azureml.pipeline.core import Pipeline, PipelineData, PipelineParameter, TrainingOutput
    from azureml.pipeline.steps import AutoMLStep, PythonScriptStep
    from azureml.train.automl import AutoMLConfig

    return SimpleNamespace(Environment=Environment, AmlCompute=AmlCompute, ComputeTarget=ComputeTarget,
                           CondaDependencies=CondaDependencies, RunConfiguration=RunConfiguration,
                           OutputFileDatasetConfig=OutputFileDatasetConfig, Pipeline=Pipeline,
                           PipelineData=PipelineData, PipelineParameter=PipelineParameter,
                           TrainingOutput=TrainingOutput, AutoMLStep=AutoMLStep, PythonScriptStep=PythonScriptStep,
                           AutoMLConfig=AutoMLConfig)
