"""amlstep: plugin-based steps for Azure Machine Learning pipelines, with a local emulator.

The public API for plugin authors and pipeline writers. Heavy libraries (pandas, scikit-learn,
xgboost, azureml) are imported only when a step runs.
"""

from .api import load_pipeline, run_pipeline
from .context import RunContext
from .errors import (
    AmlStepError,
    BackendError,
    PipelineValidationError,
    PluginLoadError,
    RunCanceled,
    StepDefinitionError,
    StepExecutionError,
    WorkspaceError,
    did_you_mean,
)
from .hookspecs import hookimpl, hookspec
from .manager import Plugins, get_plugin_manager
from .pipeline import AutoMLStep, Dataset, Pipeline, PipelineParameter, Step, StepBinding, ValidatedPipeline
from .results import PipelineRunResult, StepRunResult
from .runs import PortDataReference, Run, get_run
from .steps import REQUIRED, DataType, Input, Output, Param, StepSpec
from .workspace import LocalWorkspace, check_asset_name

__version__ = "0.1.0"

__all__ = [
    "REQUIRED",
    "AmlStepError",
    "AutoMLStep",
    "BackendError",
    "DataType",
    "Dataset",
    "Input",
    "LocalWorkspace",
    "Output",
    "Param",
    "Pipeline",
    "PipelineParameter",
    "PipelineRunResult",
    "PipelineValidationError",
    "PluginLoadError",
    "Plugins",
    "PortDataReference",
    "Run",
    "RunCanceled",
    "RunContext",
    "Step",
    "StepBinding",
    "StepDefinitionError",
    "StepExecutionError",
    "StepRunResult",
    "StepSpec",
    "ValidatedPipeline",
    "WorkspaceError",
    "check_asset_name",
    "did_you_mean",
    "get_plugin_manager",
    "get_run",
    "hookimpl",
    "hookspec",
    "load_pipeline",
    "run_pipeline",
]
