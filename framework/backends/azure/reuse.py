"""Would Azure reuse each step now, and if not, why: ``amlstep explain-reuse --backend azure``. SDK-neutral.

Azure reuses a step when an earlier completed step run in the workspace has the same module
(script, arguments, environment) and the same inputs, and ``allow_reuse`` is on. amlstep compiles
the pipeline offline (the same wheels, code hashes and parameters a submission would carry) and
compares each compiled step's ingredients (:func:`reuse_parts`) with those of the Azure step runs
it recorded in the local run history. The reasons are worded as the local backend words them
(``framework.reuse.changes``), plus what only Azure compares (environment, compute target).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from ... import reuse as reuse_rule
from ...pipeline import Dataset, ValidatedPipeline
from ...workspace import LocalWorkspace
from . import endpoint
from .compiled import CompiledPipeline, CompiledStep


def reuse_parts(step: CompiledStep, datasets: Mapping[str, str]) -> dict[str, Any]:
    """What Azure's reuse compares, in amlstep's terms: code, parameters, inputs (datasets by content),
    environment (wheels by content, pinned requirements), compute target."""
    inputs = {}
    for port, bound in (step.reuse.get("inputs") or {}).items():
        if bound.startswith("dataset:"):
            name = bound.split(":")[1]
            inputs[port] = f"dataset:{name}:{datasets.get(name, 'unknown')}"
        else:
            inputs[port] = bound
    return {"plugin": step.binding.plugin, "code": step.reuse.get("code"), "params": step.reuse.get("params"),
            "inputs": inputs, "compute": step.compute_target,
            "environment": {"wheels": sorted(w["sha256"] for w in step.environment.get("wheels", [])),
                            "requirements": step.environment.get("requirements", []),
                            "python": step.environment.get("python")}}


def azure_reuse_key(step: CompiledStep, datasets: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(reuse_parts(step, datasets), sort_keys=True, default=str).encode()).hexdigest()


def explain_parts(current: Mapping[str, Any], previous: Mapping[str, Any] | None) -> list[str]:
    """Why a step whose ingredients match no earlier Azure step run re-runs, against its latest run."""
    if previous is None:
        return ["no earlier run of this step on Azure (in the local run history)"]
    reasons = reuse_rule.changes(current, previous)
    if previous.get("environment") != current.get("environment"):
        reasons.append("environment changed (shipped wheels or pinned requirements differ)")
    if previous.get("compute") != current.get("compute"):
        reasons.append(f"compute target changed: {previous.get('compute')!r} -> {current.get('compute')!r}")
    return reasons or ["the earlier step run with these ingredients did not complete"]


def explain(compiled: CompiledPipeline, pipeline: ValidatedPipeline, local: LocalWorkspace, *,
            workspace_name: str | None, reuse: bool = True) -> list[dict[str, Any]]:
    """One entry per step of ``compiled`` (compiled offline): would Azure reuse it, and why (not).

    Compared with the Azure step runs of the local run history (only those of ``workspace_name`` when
    given). Datasets count by content: a dataset registered locally is what a submission uploads.
    """
    history = _azure_step_records(local, workspace_name)
    hashes = {d.name: local.get_dataset(d.name, d.version).sha256 for d in pipeline.datasets()
              if local.has_dataset(d.name)}
    producers = {data: b.name for b in pipeline.steps for data in b.outputs.values()}
    rerun: set[str] = set()
    found = []
    for step in compiled.steps:
        binding = step.binding
        parts = reuse_parts(step, hashes)
        key = azure_reuse_key(step, hashes)
        entry: dict[str, Any] = {"step": binding.name, "plugin": binding.plugin, "allow_reuse": binding.allow_reuse,
                                 "code": str(step.reuse.get("code"))[:16], "would_reuse": False,
                                 "reused_from": None, "key": key, "backend": "azure"}
        upstream = [f"input {port!r} changes: upstream step {producers[src]!r} re-runs, so {src!r} is new data"
                    for port, src in sorted(binding.inputs.items())
                    if not isinstance(src, Dataset) and src in rerun]
        unknown = [f"input {port!r}: dataset {src.name!r} is not registered locally, so its content is unknown "
                   f"here; the service decides" for port, src in sorted(binding.inputs.items())
                   if isinstance(src, Dataset) and src.name not in hashes]
        if not binding.allow_reuse:
            entry["reasons"] = ["allow_reuse is False for this step"]
        elif not reuse:
            entry["reasons"] = ["reuse disabled for this run (--no-reuse)"]
        elif upstream or unknown:
            entry["reasons"] = upstream + unknown
        else:
            earlier = next((r for r in history if r.status == "Completed"
                            and r.properties.get("azure_reuse_key") == key), None)
            if earlier is not None:
                origin = earlier.properties.get("azure_reused_from") or earlier.properties.get("azure_step_run_id")
                entry.update(would_reuse=True, reused_from=origin,
                             reasons=[f"would reuse Azure step run {origin}: module (code, arguments, "
                                      f"environment) and inputs unchanged"])
            else:
                previous = _previous_run(history, binding.name, binding.plugin, pipeline.experiment)
                entry["reasons"] = explain_parts(parts, previous.properties["azure_reuse_parts"]
                                                 if previous else None)
        if not entry["would_reuse"]:
            rerun.update(binding.outputs.values())
        found.append(entry)
    return found


def config_workspace(config: str | Path | None) -> str | None:
    """The workspace name a ``--config`` file names, if any."""
    path = endpoint.config_path(config)
    if path is None:
        return None
    try:
        return str(json.loads(path.read_text()).get("workspace_name") or "") or None
    except (OSError, ValueError):
        return None


def _previous_run(history: list[Any], name: str, plugin: str, experiment: str) -> Any:
    """The latest Azure run of step ``name`` of this plugin to compare with: in this pipeline's experiment, else in
    another (the same module can be reused across pipelines); never another plugin's step of the same name."""
    runs = [r for r in history if r.name == name and r.properties.get("plugin") == plugin
            and r.properties.get("azure_reuse_parts")]
    return next((r for r in runs if r.experiment == experiment), runs[0] if runs else None)


def _azure_step_records(local: LocalWorkspace, workspace_name: str | None) -> list[Any]:
    """Azure step runs in the local history, newest first (of one Azure workspace when named)."""
    found = []
    for pipeline_run in local.list_runs(run_type="pipeline", limit=500):
        if pipeline_run.backend != "azure":
            continue
        if workspace_name and pipeline_run.properties.get("azure_workspace") != workspace_name:
            continue
        found += list(reversed(local.get_children(pipeline_run.id)))
    return found
