"""The plan: one SDK-neutral format every compiler reads its objects back into, and its one text rendering.

A plan is plain JSON-ready data in a stable order (``amlstep run --backend azure --dry-run --json``)::

    sdk, sdk_version, sdk_versions      what it was compiled with ("Azure ML SDK v1", "v1", installed versions)
    workspace, experiment, continue_on_step_failure
    pipeline_parameters                 name -> {default, value, azure: what the SDK makes of it}
    datasets                            [{name, version, sources, registered_from_sources_when_missing, [type]}]
    compute_targets, steps, edges       edges: [source, destination] pairs
    pipeline_outputs                    output name -> data name; an SDK may add keys after these

and each step ``{name, [node], sdk_class, plugin, compute_target, allow_reuse, ...}`` with, as the
SDK has them, ``script``/``source_directory``/``arguments``/``environment`` (a script step),
``automl_config`` (an AutoML step), ``inputs``/``outputs`` (descriptions) and ``reuse``.

Each SDK fills it from its own objects (``sdk_v1.plan``, ``sdk_v2.plan``: what would be submitted,
not what amlstep meant to build) with the helpers below; :func:`format_text` renders any plan for
a terminal. A plan never holds workspace ids, keys or tokens.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from ...pipeline import Dataset
from .compiled import CompiledPipeline

DRY_RUN_WORKSPACE = "(not contacted: dry run)"


def pipeline_parameters(compiled: CompiledPipeline, azure: Callable[[str], str]) -> dict[str, Any]:
    """Each pipeline parameter: its default, the value of this compilation, and ``azure(name)``: what the SDK made
    of it (a pipeline parameter or input, a value fixed at compile time, unused)."""
    found: dict[str, Any] = {}
    validated = compiled.validated
    for name in sorted(validated.parameters):
        default = validated.parameters[name].default_value
        found[name] = {"default": default, "value": compiled.parameter_values.get(name, default), "azure": azure(name)}
    return found


def datasets(compiled: CompiledPipeline, kind: Callable[[Dataset], Any] | None = None) -> list[dict[str, Any]]:
    """The datasets the pipeline reads, by name; ``kind(dataset)``, when given, is their ``type`` in the SDK."""
    found = []
    for d in sorted(compiled.datasets, key=lambda d: d.name):
        entry: dict[str, Any] = {"name": d.name, "version": d.version or "latest", "sources": list(d.sources),
                                 "registered_from_sources_when_missing": bool(d.sources)}
        if kind is not None:
            entry["type"] = kind(d)
        found.append(entry)
    return found


def plan(compiled: CompiledPipeline, *, sdk: str, version: str, versions: Mapping[str, str], workspace: str,
         parameters: Mapping[str, Any], steps: list[dict[str, Any]], edges: list[list[str]],
         dataset_entries: list[dict[str, Any]] | None = None, **more: Any) -> dict[str, Any]:
    """The plan of ``compiled`` in the one format: the SDK's ``steps`` and ``edges``, ``more`` keys at the end."""
    return {
        "sdk": sdk,
        "sdk_version": version,
        "sdk_versions": dict(versions),
        "workspace": workspace,
        "experiment": compiled.experiment,
        "continue_on_step_failure": compiled.validated.pipeline.continue_on_step_failure,
        "pipeline_parameters": dict(parameters),
        "datasets": dataset_entries if dataset_entries is not None else datasets(compiled),
        "compute_targets": sorted({s.compute_target for s in compiled.steps}),
        "steps": steps,
        "edges": edges,
        "pipeline_outputs": dict(sorted(compiled.pipeline_outputs.items())),
        **more,
    }


def format_text(plan: Mapping[str, Any], notes: Sequence[str] = ()) -> str:
    """Any plan for a terminal: the parameters and datasets, one block per step, the edges, then the SDK's
    ``notes`` on it (``Compiler.plan_notes``)."""
    lines = [f"{plan['sdk']} plan for experiment {plan['experiment']!r} (workspace: {plan['workspace']})"]
    if plan.get("pipeline_parameters"):
        lines.append("pipeline parameters:")
        for name, p in plan["pipeline_parameters"].items():
            lines.append(f"  {name} = {p['value']!r} (default {p['default']!r}; {p['azure']})")
    for d in plan.get("datasets", []):
        kind = f", {d.get('type') or 'data'}" if "type" in d else ""
        lines.append(f"dataset {d['name']} (version {d['version']}{kind})"
                     + (f", registered from {', '.join(d['sources'])} when missing" if d["sources"] else ""))
    for step in plan.get("steps", []):
        lines.append("")
        node = f" (node {step['node']})" if "node" in step else ""
        lines.append(f"step {step['name']}{node}: {step['sdk_class']} on {step['compute_target']} "
                     f"(plugin {step['plugin']}, allow_reuse={step['allow_reuse']})")
        if step.get("automl_config"):
            lines += _automl_lines(step["automl_config"])
        elif step.get("script"):
            lines.append(f"  script     {step['source_directory']}/{step['script']}")
            lines.append("  arguments  " + " ".join(str(a) for a in step["arguments"]))
            lines += _environment_lines(step.get("environment") or {})
        for value in step.get("inputs", []):
            lines.append(f"  input      {value}")
        for value in step.get("outputs", []):
            lines.append(f"  output     {value}")
    lines.append("")
    lines.append("edges:")
    lines += [f"  {a} -> {b}" for a, b in plan.get("edges", [])]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def _automl_lines(config: Mapping[str, Any]) -> list[str]:
    """An AutoML step's settings. A plan that names the settings fixed at compile time
    (``fixed_from_pipeline_parameters``) binds those in ``from_pipeline_parameters`` to pipeline inputs;
    one that does not (SDK v1's ``AutoMLConfig``) fixes them all."""
    settings = ", ".join(f"{k}={v!r}" for k, v in config["settings"].items())
    if "fixed_from_pipeline_parameters" in config:
        lines = [f"  settings   {settings}"]
        bound, fixed = config.get("from_pipeline_parameters", {}), config["fixed_from_pipeline_parameters"]
    else:
        lines = [f"  AutoMLConfig {settings}"]
        bound, fixed = {}, config.get("from_pipeline_parameters", {})
    lines += [f"  note: {setting} is bound to pipeline input {param!r}" for setting, param in bound.items()]
    lines += [f"  note: {setting} comes from pipeline parameter {param!r}, fixed at compile time"
              for setting, param in fixed.items()]
    return lines


def _environment_lines(env: Mapping[str, Any]) -> list[str]:
    """A script step's environment: built from an image (its pip requirements and shipped wheels by name), or a
    named environment (its Python, shipped wheels by file and hash, pinned requirements)."""
    if "image" in env:
        wheels = ", ".join(f"{w['name']}=={w['version']}" for w in env.get("wheels", []))
        return [f"  environment {env['image']} + conda: pip {', '.join(env['pip'])}"
                + (f"; wheels {wheels}" if wheels else "")]
    if "name" in env:
        return [f"  environment {env['name']} (python {env['python']}): "
                + ", ".join(f"{w['file']} (sha256 {w['sha256'][:12]})" for w in env["wheels"]),
                f"  requirements {', '.join(env['requirements'])}"]
    return []
