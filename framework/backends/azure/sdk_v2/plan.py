"""The SDK v2 plan and job YAML: what the compiled ``PipelineJob`` says, read back from the SDK.

The plan is in the one plan format (``..plans``): the same keys per step, pipeline parameter and
dataset as SDK v1's, read from the job as the SDK serialises it (``PipelineJob._to_dict``), so it
shows what would be submitted. ``write_yaml`` writes the job YAML as the SDK dumps it, so it can be
reviewed and submitted with ``az ml job create --file``; ``load_yaml`` reads it back with
``azure.ai.ml.load_job``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

from ....errors import BackendError
from .. import plans
from .compiler import AUTOML_MODEL, LABEL, NAME, CompiledPipelineV2, versions

BINDING = re.compile(r"^\$\{\{parent\.(inputs|jobs|outputs)\.([A-Za-z0-9_]+)(?:\.outputs\.([A-Za-z0-9_]+))?\}\}$")
ASSETS_MARKER = ".amlstep-assets"


def job_dict(compiled: CompiledPipelineV2) -> dict[str, Any]:
    """The job as the SDK dumps it to YAML (``PipelineJob._to_yaml``), with SDK v2's AutoML output fix."""
    import yaml  # type: ignore[import-untyped]

    return fix_boolean_inputs(fix_automl_outputs(yaml.safe_load(compiled.pipeline._to_yaml())), compiled.pipeline)


def fix_boolean_inputs(job: dict[str, Any], pipeline: Any) -> dict[str, Any]:
    """azure-ai-ml 1.35 dumps a boolean pipeline input (``keep: False``) as ``0``/``1`` (its YAML schema tries
    numbers first), which ``load_job`` and ``az ml job create`` then read as an integer bound to a boolean
    input; write the boolean."""
    inputs = job.get("inputs") or {}
    for name, value in pipeline.inputs.items():
        data = getattr(value, "_data", value)
        if isinstance(data, bool) and name in inputs:
            inputs[name] = data
    return job


def fix_automl_outputs(job: dict[str, Any]) -> dict[str, Any]:
    """azure-ai-ml 1.35 dumps an AutoML node's outputs in their REST form (``{type: literal, value:
    ${{parent.outputs.X}}}``, ``{job_output_type: mlflow_model}``, ``AutoMLNodeMixin.resolve_nested_data``),
    which its own ``load_job`` refuses; write them as the YAML schema has them."""
    for node in (job.get("jobs") or {}).values():
        if not isinstance(node, dict) or node.get("type") != "automl":
            continue
        for port, value in dict(node.get("outputs") or {}).items():
            if isinstance(value, dict) and value.get("type") == "literal" and "value" in value:
                node["outputs"][port] = value["value"]
            elif isinstance(value, dict) and "job_output_type" in value:
                fixed = {"type": value["job_output_type"]}
                fixed.update({k: v for k, v in value.items() if k not in ("job_output_type", "type")})
                node["outputs"][port] = fixed
    return job


def _relative_paths(job: Any, root: Path, base: Path) -> Any:
    """Paths under ``root`` written relative to ``base`` (the YAML's folder), so the folder can move."""
    if isinstance(job, dict):
        return {k: _relative_paths(v, root, base) for k, v in job.items()}
    if isinstance(job, list):
        return [_relative_paths(v, root, base) for v in job]
    if isinstance(job, str) and job.startswith(str(root)):
        return "./" + Path(os.path.relpath(job, base)).as_posix()
    return job


def assets_folder(yaml_file: Path) -> Path:
    """Where the code and environment build contexts of ``yaml_file`` go: ``<stem>.assets`` beside it."""
    return yaml_file.with_name(f"{yaml_file.stem}.assets")


def prepare_assets(yaml_file: Path) -> Path:
    """An empty assets folder beside ``yaml_file``; an existing one is replaced only if amlstep made it."""
    folder = assets_folder(yaml_file)
    if folder.exists():
        if not (folder / ASSETS_MARKER).exists():
            raise BackendError(f"{folder} exists and was not written by amlstep; move it away or choose another "
                               f"--yaml file")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / ASSETS_MARKER).write_text("code and environment build contexts of the job YAML beside this folder\n")
    return folder


def write_yaml(compiled: CompiledPipelineV2, yaml_file: str | Path) -> Path:
    """Write the pipeline job YAML (paths to its assets relative to it), atomically."""
    import yaml  # type: ignore[import-untyped]

    target = Path(yaml_file).resolve()
    job = job_dict(compiled)
    if compiled.assets is not None:
        job = _relative_paths(job, Path(compiled.assets).resolve(), target.parent)
    header = (f"# Azure ML pipeline job compiled by amlstep ({LABEL}) for experiment {compiled.experiment!r}.\n"
              f"# Submit: az ml job create --file {target.name} --resource-group RG --workspace-name WS\n")
    text = header + yaml.safe_dump(job, sort_keys=False, width=120)
    fd, staging = tempfile.mkstemp(prefix=f".{target.name}.", dir=str(target.parent))
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(staging, target)
    return target


def load_yaml(yaml_file: str | Path) -> Any:
    """The job a YAML file describes, as ``azure.ai.ml.load_job`` reads it."""
    from azure.ai.ml import load_job

    return load_job(str(yaml_file))


# -- the plan ---------------------------------------------------------------------------------------
def _binding(value: Any) -> tuple[str, str, str | None] | None:
    if isinstance(value, dict):
        value = value.get("path", value.get("value"))
    match = BINDING.match(value) if isinstance(value, str) else None
    return (match.group(1), match.group(2), match.group(3)) if match else None


def _source_label(found: tuple[str, str, str | None], steps_by_node: Mapping[str, str],
                  datasets: set[str]) -> str:
    scope, name, port = found
    if scope == "jobs":
        return f"{steps_by_node.get(name, name)}.{port}"
    if scope == "inputs":
        return f"dataset:{name}" if name in datasets else f"pipeline_input:{name}"
    return f"pipeline_output:{name}"


def _command_step(compiled_step: Any, node: Mapping[str, Any], steps_by_node: Mapping[str, str],
                  datasets: set[str]) -> dict[str, Any]:
    component = node.get("component") or {}
    words = shlex.split(" ".join(str(component.get("command", "")).split()))
    script_at = words.index(next(w for w in words if w.endswith(".py"))) if any(w.endswith(".py") for w in words) else 0
    inputs = []
    for port, spec in sorted((component.get("inputs") or {}).items()):
        source = _binding((node.get("inputs") or {}).get(port))
        label = _source_label(source, steps_by_node, datasets) if source else "literal"
        inputs.append(f"{port}: {spec.get('type')} <- {label}")
    outputs = [f"{port}: {spec.get('type')}" for port, spec in sorted((component.get("outputs") or {}).items())]
    env = component.get("environment") or {}
    return {
        "script": words[script_at] if words else None,
        "source_directory": "<assets>/code",
        "arguments": words[script_at + 1:],
        "inputs": inputs,
        "outputs": outputs,
        "environment": {"build_context": "<assets>/environments/" + Path(str((env.get("build") or {}).get("path", "")))
                        .name, **compiled_step.environment},
        "component": {"name": component.get("name"), "type": component.get("type"),
                      "is_deterministic": component.get("is_deterministic")},
    }


AUTOML_KEYS = ("task", "primary_metric", "target_column_name", "n_cross_validations", "validation_data_size",
               "cv_split_column_names", "weight_column_name", "enable_model_explainability", "limits", "training",
               "featurization", "forecasting")


def _automl_step(compiled_step: Any, node: Mapping[str, Any], steps_by_node: Mapping[str, str],
                 datasets: set[str], run_history: Mapping[str, str]) -> dict[str, Any]:
    inputs = []
    for port in ("training_data", "validation_data", "test_data"):
        source = _binding(node.get(port))
        if source:
            inputs.append(f"{port}: mltable <- {_source_label(source, steps_by_node, datasets)}")
    outputs = []
    for port, value in sorted((node.get("outputs") or {}).items()):
        target = _binding(value)
        outputs.append(f"{port}: mlflow_model" + (f" -> pipeline output {target[1]}" if target else ""))
    binding = compiled_step.binding
    for port, data in sorted(binding.outputs.items()):
        if port != "model":
            outputs.append(f"{port}: {data} (no SDK v2 output: read from the AutoML job's child runs after the run"
                           + ("; pipeline output " + ", ".join(o for o, s in run_history.items() if s == binding.name)
                              if binding.name in run_history.values() else "") + ")")
    settings = {k: node[k] for k in AUTOML_KEYS if node.get(k) not in (None, {}, [])}
    return {
        "script": None,
        "arguments": [],
        "inputs": inputs,
        "outputs": outputs,
        "automl_config": {"sdk_class": f"azure.ai.ml.automl.{node.get('task')}",
                          "compute_target": compiled_step.compute_target,
                          "settings": settings,
                          "from_pipeline_parameters": dict(sorted(getattr(compiled_step, "bound_settings", {})
                                                                  .items())),
                          "fixed_from_pipeline_parameters": dict(sorted(compiled_step.baked_settings.items()))},
    }


def render(compiled: CompiledPipelineV2, *, workspace: str = plans.DRY_RUN_WORKSPACE) -> dict[str, Any]:
    """The plan of a compiled SDK v2 pipeline, as plain JSON-ready data in a stable order."""
    job = job_dict(compiled)
    steps_by_node = {node: step for step, node in compiled.node_names.items()}
    dataset_names = {d.name for d in compiled.datasets}
    users: dict[str, list[str]] = {}
    for step in compiled.steps:
        for value in step.binding.params.values():
            if hasattr(value, "default_value") and step.kind == "command":
                users.setdefault(value.name, []).append(step.binding.name)
        for setting, param in getattr(step, "bound_settings", {}).items():
            users.setdefault(param, []).append(f"{step.binding.name} ({setting})")

    def azure(name: str) -> str:
        if name in compiled.parameters:
            return "pipeline input, used by " + ", ".join(users.get(name, []))
        if name in compiled.baked_parameters:
            return ("fixed in the AutoML node of step(s) " + ", ".join(compiled.baked_parameters[name])
                    + " (SDK v2 cannot bind this AutoML setting to a pipeline input)")
        return "not used by any step"

    steps = []
    for compiled_step in compiled.steps:
        node_name = compiled.node_names[compiled_step.binding.name]
        node = job["jobs"][node_name]
        entry: dict[str, Any] = {
            "name": compiled_step.binding.name,
            "node": node_name,
            "sdk_class": ("azure.ai.ml.entities.CommandComponent" if compiled_step.kind == "command"
                          else f"azure.ai.ml.automl.{node.get('task')}"),
            "plugin": compiled_step.binding.plugin,
            "compute_target": compiled_step.compute_target,
            "allow_reuse": compiled_step.binding.allow_reuse and not job.get("settings", {}).get("force_rerun"),
        }
        if compiled_step.kind == "automl":
            entry.update(_automl_step(compiled_step, node, steps_by_node, dataset_names,
                                      compiled.run_history_outputs))
        else:
            entry.update(_command_step(compiled_step, node, steps_by_node, dataset_names))
        entry["reuse"] = compiled_step.reuse
        steps.append(entry)
    datasets = plans.datasets(compiled, lambda d: (job.get("inputs") or {}).get(d.name, {}).get("type"))
    return plans.plan(compiled, sdk=LABEL, version=NAME, versions=versions(), workspace=workspace,
                      parameters=plans.pipeline_parameters(compiled, azure), steps=steps,
                      edges=edges(job, steps_by_node, dataset_names), dataset_entries=datasets,
                      pipeline_outputs_from_run_history=dict(sorted(compiled.run_history_outputs.items())))


def notes(plan: Mapping[str, Any]) -> list[str]:
    """What the plan's text says after its edges: pipeline outputs read from AutoML's child runs."""
    return [f"pipeline output {out}: read from the child runs of step {step} after the run "
            f"(SDK v2 AutoML nodes output only {AUTOML_MODEL})"
            for out, step in (plan.get("pipeline_outputs_from_run_history") or {}).items()]


def edges(job: Mapping[str, Any], steps_by_node: Mapping[str, str], datasets: set[str]) -> list[list[str]]:
    """``[source, destination]`` pairs, sorted: step ports, datasets, pipeline inputs and outputs."""
    found: set[tuple[str, str]] = set()
    for node_name, node in (job.get("jobs") or {}).items():
        step = steps_by_node.get(node_name, node_name)
        ports: dict[str, Any] = dict(node.get("inputs") or {})
        for port in ("training_data", "validation_data", "test_data"):
            if node.get(port) is not None:
                ports[port] = node[port]
        for port, value in ports.items():
            source = _binding(value)
            if source is not None and not (source[0] == "inputs" and source[1] not in datasets):
                found.add((_source_label(source, steps_by_node, datasets), f"{step}.{port}"))
        for port, value in (node.get("outputs") or {}).items():
            target = _binding(value)
            if target is not None and target[0] == "outputs":
                found.add((f"{step}.{port}", f"pipeline_output:{target[1]}"))
    return [list(pair) for pair in sorted(found)]


def format_text(plan: Mapping[str, Any]) -> str:
    """An SDK v2 plan for a terminal: the one text rendering (``plans.format_text``) with its :func:`notes`."""
    return plans.format_text(plan, notes(plan))
