"""amlstep: plugin-based steps for Azure Machine Learning pipelines, with a local emulator.

The public API, by audience (docs/api.md lists every name):

- ``framework`` (this module): plugin authors (steps and hooks), pipeline writers (pipelines,
  running them) and result readers (runs, outputs, the local workspace);
- ``framework.testing``: plugin authors' tests (the contract harness, ``run_step``);
- ``framework.backends``: backend writers (``Backend``, ``PipelineEvents``, ``StepEvents``...);
- ``framework.reporting``: plugins adding to ``amlstep report`` and ``amlstep predict``;
- ``framework.automl``: Azure's AutoML settings contract (``ForecastingParameters``, metric names);
- ``framework.workspace``: the local workspace's records (runs, models, datasets, child runs).

Every other module is internal: it may change without notice. Heavy libraries (pandas,
scikit-learn, xgboost, azureml) are imported only when a step runs.
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
from .hookspecs import hookimpl
from .manager import Plugins, get_plugin_manager
from .pipeline import AutoMLStep, Dataset, Pipeline, PipelineParameter, Step
from .results import PipelineRunResult, StepRunResult
from .runs import PortDataReference, Run, get_run
from .steps import REQUIRED, DataType, Input, Output, Param, StepSpec
from .workspace import LocalWorkspace, check_asset_name

__version__ = "0.1.0"

__all__ = [
    # plugin authors: a step, its hooks, its errors
    "DataType",
    "Input",
    "Output",
    "Param",
    "REQUIRED",
    "RunContext",
    "StepSpec",
    "check_asset_name",
    "did_you_mean",
    "hookimpl",
    # the errors amlstep raises (everyone)
    "AmlStepError",
    "BackendError",
    "PipelineValidationError",
    "PluginLoadError",
    "RunCanceled",
    "StepDefinitionError",
    "StepExecutionError",
    "WorkspaceError",
    # pipeline writers: a pipeline, and running it
    "AutoMLStep",
    "Dataset",
    "Pipeline",
    "PipelineParameter",
    "Plugins",
    "Step",
    "get_plugin_manager",
    "load_pipeline",
    "run_pipeline",
    # result readers: runs, their outputs, the local workspace
    "LocalWorkspace",
    "PipelineRunResult",
    "PortDataReference",
    "Run",
    "StepRunResult",
    "get_run",
]
