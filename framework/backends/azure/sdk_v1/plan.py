"""The compiled plan of SDK v1: what the SDK v1 objects say, in the one plan format (``..plans``).

Everything is read back from the SDK objects themselves (``PythonScriptStep``, ``AutoMLStep``,
``AutoMLConfig``, ``Pipeline.graph``), so the plan shows what would be submitted, not what amlstep
meant to build. It never holds workspace ids, keys or tokens.
"""

from __future__ import annotations

import json
from typing import Any

from .. import plans
from .compiler import SCRIPT_DIR, CompiledPipeline, CompiledStep
from .sdk import versions

PUBLIC_CLASSES = {
    "PythonScriptStep": "azureml.pipeline.steps.PythonScriptStep",
    "AutoMLStep": "azureml.pipeline.steps.AutoMLStep",
    "PipelineData": "azureml.pipeline.core.PipelineData",
    "PipelineParameter": "azureml.pipeline.core.PipelineParameter",
    "OutputFileDatasetConfig": "azureml.data.OutputFileDatasetConfig",
    "OutputTabularDatasetConfig": "azureml.data.output_dataset_config.OutputTabularDatasetConfig",
    "DatasetConsumptionConfig": "azureml.data.dataset_consumption_config.DatasetConsumptionConfig",
    "TabularDataset": "azureml.data.TabularDataset",
    "PipelineOutputTabularDataset": "azureml.pipeline.core.PipelineOutputTabularDataset",
}
# AutoMLConfig.user_settings entries that are objects or machine-specific, shown elsewhere or not at all.
HIDDEN_SETTINGS = {"path", "compute_target", "training_data", "validation_data", "run_configuration",
                   "debug_log", "spark_context", "X", "y", "X_valid", "y_valid", "sample_weight",
                   "sample_weight_valid", "cv_splits_indices", "subscription_id", "resource_group",
                   "workspace_name", "region", "azure_service"}


def class_name(obj: Any) -> str:
    return PUBLIC_CLASSES.get(type(obj).__name__, f"{type(obj).__module__}.{type(obj).__name__}")


def describe_value(value: Any) -> Any:
    """A plan-friendly rendering of an argument, input or output object."""
    kind = type(value).__name__
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if kind == "PipelineParameter":
        return f"PipelineParameter({value.name}, default={value.default_value!r})"
    if kind == "OutputFileDatasetConfig":
        return f"OutputFileDatasetConfig({value.name})"
    if kind == "PipelineData":
        extra = ""
        if getattr(value, "_training_output", None) is not None:
            extra += f", training_output={value._training_output.type}"
        if getattr(value, "_pipeline_output_name", None):
            extra += f", pipeline_output_name={value._pipeline_output_name}"
        return f"PipelineData({value.name}{extra})"
    if kind == "DatasetConsumptionConfig":
        dataset = value.dataset
        dataset_kind = type(dataset).__name__
        if dataset_kind == "OutputFileDatasetConfig":
            source = f"OutputFileDatasetConfig({dataset.name})"
        elif dataset_kind in ("TabularDataset", "FileDataset"):
            source = f"{dataset_kind}({dataset.name})"
        else:
            source = describe_value(dataset)
        return f"DatasetConsumptionConfig({value.name} <- {source})"
    if kind == "OutputTabularDatasetConfig":
        return f"OutputTabularDatasetConfig({value.name}).read_delimited_files()"
    if kind in ("TabularDataset", "FileDataset"):
        return f"{kind}({value.name})"
    if kind == "PipelineOutputTabularDataset":
        return f"PipelineOutputTabularDataset({value._pipeline_data.name}).parse_delimited_files()"
    return f"{kind}({getattr(value, 'name', '?')})"


def _script_dir() -> str:
    return "<amlstep>/" + SCRIPT_DIR.relative_to(SCRIPT_DIR.parents[3]).as_posix()


def _step(compiled: CompiledStep) -> dict[str, Any]:
    step = compiled.sdk_step
    entry: dict[str, Any] = {
        "name": step.name,
        "sdk_class": class_name(step),
        "plugin": compiled.binding.plugin,
        "compute_target": compiled.compute_target,
        "allow_reuse": step._allow_reuse,
    }
    if compiled.kind == "automl":
        config = step._automl_config
        given = {"task_type" if k == "task" else k for k in compiled.automl_settings}
        settings = {k: v for k, v in sorted(config.user_settings.items())
                    if k in given and k not in HIDDEN_SETTINGS and _is_json(v)}
        forecasting = config.user_settings.get("forecasting_parameters")
        if forecasting is not None:  # Azure's object, shown by the values the SDK holds
            settings["forecasting_parameters"] = forecasting_parameters_plan(forecasting)
        training = {port: describe_value(config.user_settings.get(port))
                    for port in ("training_data", "validation_data") if config.user_settings.get(port) is not None}
        entry.update({
            "script": None,
            "arguments": [],
            "inputs": [f"{port}: {value}" for port, value in training.items()],
            "outputs": [describe_value(o) for o in (compiled.outputs["metrics"], compiled.outputs["model"])],
            "automl_config": {"sdk_class": "azureml.train.automl.AutoMLConfig",
                              "compute_target": f"ComputeTarget({compiled.compute_target})",
                              "settings": settings,
                              "from_pipeline_parameters": dict(sorted(compiled.baked_settings.items()))},
            "enable_default_model_output": step._enable_default_model_output,
            "enable_default_metrics_output": step._enable_default_metrics_output,
        })
    else:
        entry.update({
            "script": step._script_name,
            "source_directory": _script_dir(),
            "arguments": [describe_value(a) for a in step._arguments],
            "inputs": [describe_value(i) for i in step._inputs],
            "outputs": [describe_value(o) for o in compiled.outputs.values()],
            "environment": compiled.environment,
        })
    entry["reuse"] = compiled.reuse
    return entry


def forecasting_parameters_plan(value: Any) -> dict[str, Any]:
    """``ForecastingParameters(...)``'s settings as the SDK object reports them (defaults left out)."""
    from framework.automl import PARAMETERS, parameters_of

    shown = {k: v for k, v in parameters_of(value).items() if k in PARAMETERS and v not in (None, PARAMETERS[k])}
    return {"sdk_class": f"{type(value).__module__}.{type(value).__name__}", **shown}


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def edges(compiled: CompiledPipeline) -> list[list[str]]:
    """``[source, destination]`` pairs, sorted: step ports, datasets and pipeline outputs."""
    found: set[tuple[str, str]] = set()
    graph = compiled.pipeline.graph
    module_ids = {node.node_id for node in graph.module_nodes}
    for edge in graph.edges:
        source = edge.source_port
        dest = edge.dest_port
        source_node = source.node
        if source_node.node_id not in module_ids:
            label = f"dataset:{source_node.name}"
        else:
            label = f"{source_node.name}.{source.name}"
        found.add((label, f"{dest.node.name}.{dest.name}"))
    for out, data in compiled.pipeline_outputs.items():
        for step in compiled.steps:
            for sdk_output in step.outputs.values():
                if getattr(sdk_output, "name", None) == data:
                    found.add((f"{step.sdk_step.name}.{data}", f"pipeline_output:{out}"))
    return [list(pair) for pair in sorted(found)]


def render(compiled: CompiledPipeline, *, workspace: str = plans.DRY_RUN_WORKSPACE) -> dict[str, Any]:
    """The plan of a compiled pipeline, as plain JSON-ready data in a stable order."""
    def azure(name: str) -> str:
        if name in compiled.parameters:
            return "PipelineParameter"
        if name in compiled.baked_parameters:
            return ("fixed in AutoMLConfig of step(s) " + ", ".join(compiled.baked_parameters[name])
                    + " (SDK v1 AutoML settings cannot be pipeline parameters)")
        return "not used by any step"

    return plans.plan(compiled, sdk="Azure ML SDK v1", version="v1", versions=versions(), workspace=workspace,
                      parameters=plans.pipeline_parameters(compiled, azure),
                      steps=[_step(s) for s in compiled.steps], edges=edges(compiled))
