"""Importing the Azure ML SDK v1 with a clear error when the ``azure`` extra is missing."""

from __future__ import annotations

import importlib
from typing import Any

from ....errors import BackendError

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
    from ..compiled import installed_versions

    return installed_versions(("azureml-core", "azureml-pipeline-core", "azureml-pipeline-steps",
                               "azureml-train-automl-client"))


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
                           TrainingOutput=TrainingOutput, AutoMLStep=stable_automl_step(AutoMLStep),
                           PythonScriptStep=PythonScriptStep, AutoMLConfig=AutoMLConfig)


_STABLE: dict[type, type] = {}
UNORDERED_SETTINGS = ("supported_models", "private_models", "allowed_private_models")


def stable_automl_step(base: type) -> type:
    """``AutoMLStep`` whose module does not change from one Python process to the next.

    The SDK lists ``supported_models`` from a set, so their order follows the process's string hash
    seed; the list is part of the step's module definition, hence of its fingerprint, and the
    service reuses a step only when the fingerprint matches: an AutoMLStep submitted from another
    process would never be reused. This subclass sorts the list (module parameter and AutoML
    settings JSON alike); nothing else changes.
    """
    if base in _STABLE:
        return _STABLE[base]

    class AutoMLStep(base):  # type: ignore[misc,valid-type]
        __doc__ = base.__doc__

        def _get_automl_settings(self, context: Any) -> Any:
            return stable_settings(super()._get_automl_settings(context))

    AutoMLStep.__module__ = __name__
    _STABLE[base] = AutoMLStep
    return AutoMLStep


def stable_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The AutoMLStep's settings with set-ordered lists sorted (see ``stable_automl_step``)."""
    import json

    for key in UNORDERED_SETTINGS:
        if isinstance(settings.get(key), list):
            settings[key] = sorted(settings[key], key=str)
    config = settings.get("AutoMLConfig")
    if isinstance(config, str):
        outer = json.loads(config)
        inner_text = outer.get("aml_settings_json_string")
        if isinstance(inner_text, str):
            inner = json.loads(inner_text)
            for key in UNORDERED_SETTINGS:
                if isinstance(inner.get(key), list):
                    inner[key] = sorted(inner[key], key=str)
            outer["aml_settings_json_string"] = json.dumps(inner)
        settings["AutoMLConfig"] = json.dumps(outer)
    return settings
