"""The reuse rule shared by every backend, modelled on Azure's ``allow_reuse``.

A step re-runs only when its code, its parameters or its inputs changed. The *reuse key* hashes
the plugin name and kind, the hash of its source code, its resolved parameters and the content
hash of each input. ``allow_reuse=False`` (or ``--no-reuse``) forces a re-run whatever the key.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import json
from pathlib import Path
from typing import Any, Mapping

from .steps import StepSpec


@functools.lru_cache(maxsize=None)
def _hash_paths(paths: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for root in paths:
        path = Path(root)
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            if "__pycache__" in file.parts:
                continue
            digest.update(file.name.encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def source_paths(spec: StepSpec) -> tuple[str, ...]:
    """The files whose content is the step's code: its module (its package, for a package's
    ``__init__``), plus the modules it names in ``source_modules``."""
    paths: list[str] = []
    try:
        file = inspect.getsourcefile(spec.run)
    except TypeError:
        file = None
    if file:
        path = Path(file)
        paths.append(str(path.parent if path.name == "__init__.py" else path))
    for module in spec.source_modules:
        found = importlib.util.find_spec(module)
        if found is not None and found.submodule_search_locations:
            paths.extend(found.submodule_search_locations)
        elif found is not None and found.origin:
            paths.append(found.origin)
    return tuple(paths)


def code_hash(spec: StepSpec) -> str:
    return _hash_paths(source_paths(spec))


def components(spec: StepSpec, params: Mapping[str, Any], inputs: Mapping[str, str],
               allow_reuse: bool, sample: str | None = None) -> dict[str, Any]:
    """What the reuse key is made of, kept in the run history to explain later re-runs.

    ``sample`` (a run on a sample of its datasets, ``--sample``) is part of the key: sampled and full
    runs never reuse each other's outputs. Runs on the full data leave it out, so their keys are the
    keys they always had.
    """
    parts = {
        "plugin": spec.name,
        "kind": spec.kind,
        "code": code_hash(spec),
        "params": json.loads(json.dumps(dict(params), sort_keys=True, default=str)),
        "inputs": dict(sorted(inputs.items())),
        "allow_reuse": allow_reuse,
    }
    if sample is not None:
        parts["sample"] = sample
    return parts


def dataset_hash(sha256: str, sample: str | None = None) -> str:
    """What a step's reuse key holds for a dataset input: its content hash (and the sample taken of it)."""
    return f"dataset:{sha256}" + (f":sample:{sample}" if sample else "")


def key(parts: Mapping[str, Any]) -> str:
    """The reuse key: everything but ``allow_reuse``, which only decides whether to look."""
    keyed = {k: v for k, v in parts.items() if k != "allow_reuse"}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()


OUTPUT_CHANGED = "earlier output changed on disk"


def integrity_problem(workspace: Any, run: Any) -> str | None:
    """Why the outputs of step run ``run`` cannot be reused, or None when every one of them is on
    disk with the sha256 recorded when it was written."""
    from .workspace.store import sha256_tree

    for record in (run.outputs or {}).values():
        path = workspace.path / record["path"]
        if not path.exists():
            return f"{OUTPUT_CHANGED}: {record['data']!r} of step run {run.id[:8]} is missing ({record['path']})"
        if sha256_tree(path) != record.get("sha256"):
            return (f"{OUTPUT_CHANGED}: {record['data']!r} of step run {run.id[:8]} is not what it wrote "
                    f"(its sha256 differs from the one recorded)")
    return None


def find_reusable(workspace: Any, reuse_key: str) -> tuple[Any, str | None]:
    """The latest completed step run with ``reuse_key`` whose outputs are intact on disk, and, when
    there is none, why the latest one with that key cannot be reused (None if there is none)."""
    problem = None
    for run in workspace.step_runs_with_key(reuse_key):
        found = integrity_problem(workspace, run)
        if found is None:
            return run, None
        problem = problem or found
    return None, problem


def changes(current: Mapping[str, Any], previous: Mapping[str, Any]) -> list[str]:
    """What differs between the reuse ingredients of two runs of a step (code, parameters, inputs), one reason each;
    every backend's explainer says it in these words."""
    reasons = []
    if previous.get("code") != current.get("code"):
        reasons.append("code changed (the plugin's source is different)")
    old_params, new_params = previous.get("params") or {}, current.get("params") or {}
    for name in sorted(set(old_params) | set(new_params)):
        if old_params.get(name, "<unset>") != new_params.get(name, "<unset>"):
            reasons.append(f"parameter {name!r} changed: {old_params.get(name, '<unset>')!r} -> "
                           f"{new_params.get(name, '<unset>')!r}")
    old_inputs, new_inputs = previous.get("inputs") or {}, current.get("inputs") or {}
    for name in sorted(set(old_inputs) | set(new_inputs)):
        if old_inputs.get(name) != new_inputs.get(name):
            reasons.append(f"input {name!r} changed (different content)")
    return reasons


def explain(current: Mapping[str, Any], previous: Mapping[str, Any] | None, *, previous_status: str | None = None,
            previous_id: str | None = None, problem: str | None = None) -> list[str]:
    """Why a step whose key matched no reusable run must re-run.

    Args:
        current: this run's ``components``.
        previous: the components of the latest earlier run of this step in the same pipeline
            (experiment), or None when there is none.
        previous_status, previous_id: that run's status and id.
        problem: why an earlier run with the very same key cannot be reused (``find_reusable``).
    """
    if problem is not None:
        return [problem]
    if previous is None:
        return ["no earlier run of this step in this pipeline"]
    reasons = []
    if previous.get("sample") != current.get("sample"):
        reasons.append(f"sample changed: {_sample_text(previous.get('sample'))} -> {_sample_text(current.get('sample'))}")
    if previous.get("plugin") != current["plugin"] or previous.get("kind") != current["kind"]:
        reasons.append(f"plugin changed: {previous.get('plugin')!r} -> {current['plugin']!r}")
    reasons += changes(current, previous)
    if reasons:
        return reasons
    run = f"step run {previous_id[:8]}" if previous_id else "the earlier run"
    if previous_status in ("Failed", "Canceled", "NotStarted", "Running"):
        verb = {"Failed": "failed", "Canceled": "was canceled", "NotStarted": "never started",
                "Running": "has not finished"}[previous_status]
        return [f"the earlier run of this step with the same code, parameters and inputs ({run}) {verb}, "
                f"so there is nothing to reuse"]
    return [f"no completed earlier run with the same code, parameters and inputs keeps its outputs ({run} "
            f"reused outputs that are gone)"]


def _sample_text(key: Any) -> str:
    """``rows=200`` -> ``a sample of 200 rows``; None -> ``the full data``."""
    from .sampling import Sample

    if not key:
        return "the full data"
    sample = Sample.from_key(key)
    if sample.fraction is not None and not sample.by:
        return f"a sample of {sample} of the rows"
    return f"a sample of {sample}"


def predict(pipeline: Any, workspace: Any, params: Mapping[str, Any] | None = None,
            reuse: bool = True, sample: str | None = None) -> list[dict[str, Any]]:
    """Whether each step of a validated pipeline would be reused now, and if not, why.

    The same rule the local backend applies when it runs, walked without running anything: a
    step's key needs its inputs' content, which is known for registered datasets and for the
    outputs of upstream steps that would themselves be reused. Downstream of a step that re-runs,
    a step re-runs unless that step's output comes out unchanged (a comment-only edit, say): when
    an earlier run of it with that same output would be reused, ``would_reuse`` is None ("maybe")
    and the reason says so. On Azure the service decides, with the same ingredients in the
    compiled step: the code hash and the parameters are in its arguments, its inputs are the
    same bindings, and ``allow_reuse`` is carried over.
    """
    from .pipeline import Dataset

    values = pipeline.resolve_parameters(params)
    known: dict[str, str | None] = {}
    # the content a data name would have if the step producing it re-ran and wrote what it wrote last time
    as_before: dict[str, str | None] = {}
    producers = {data: step for step, ports in ((b.name, b.outputs) for b in pipeline.steps) for data in ports.values()}
    decided: dict[str, bool | None] = {}
    found = []
    for binding in pipeline.steps:
        resolved = binding.resolve_params(values)
        hashes: dict[str, str] = {}
        guessed: dict[str, str] = {}
        unknown: list[str] = []
        rerunning: list[str] = []
        for port, source in sorted(binding.inputs.items()):
            if isinstance(source, Dataset):
                if workspace.has_dataset(source.name):
                    hashes[port] = dataset_hash(workspace.get_dataset(source.name, source.version).sha256, sample)
                else:
                    unknown.append(f"input {port!r}: dataset {source.name!r} is not registered yet")
            elif known.get(source) is None:
                rerunning.append(producers[source])
                unknown.append(f"input {port!r} changes: upstream step {producers[source]!r} re-runs, "
                               f"so {source!r} is new data" if decided.get(producers[source]) is not None else
                               f"input {port!r} may change: upstream step {producers[source]!r} may re-run")
                if as_before.get(source):
                    guessed[port] = str(as_before[source])
            else:
                hashes[port] = str(known[source])
        entry: dict[str, Any] = {"step": binding.name, "plugin": binding.plugin, "allow_reuse": binding.allow_reuse,
                                 "code": code_hash(binding.spec)[:16], "would_reuse": False, "reused_from": None,
                                 "key": None}
        earlier = None
        previous = workspace.last_step_run(binding.name, binding.plugin, experiment=pipeline.experiment)
        history = dict(previous_status=previous.status if previous else None,
                       previous_id=previous.id if previous else None)
        before = previous.reuse_components if previous else None
        if not binding.allow_reuse:
            entry["reasons"] = ["allow_reuse is False for this step"]
        elif not reuse:
            entry["reasons"] = ["reuse disabled for this run (--no-reuse)"]
        elif unknown and rerunning and len(guessed) + len(hashes) == len(binding.inputs):
            parts = components(binding.spec, resolved, {**hashes, **guessed}, binding.allow_reuse, sample)
            candidate, problem = find_reusable(workspace, key(parts))
            upstream = ", ".join(repr(s) for s in sorted(set(rerunning)))
            if candidate is not None:
                entry.update(would_reuse=None, reused_from=candidate.id, reasons=[
                    f"re-runs unless the output of {upstream} is unchanged (then it reuses step run "
                    f"{candidate.id[:8]}: code and parameters unchanged)"])
                for port, data in binding.outputs.items():
                    as_before[data] = (candidate.outputs.get(port) or {}).get("sha256")
            else:
                entry["reasons"] = unknown + [r for r in explain(parts, before, problem=problem, **history)
                                              if not r.startswith("input ")]
        elif unknown:
            entry["reasons"] = unknown
        else:
            parts = components(binding.spec, resolved, hashes, binding.allow_reuse, sample)
            entry["key"] = key(parts)
            earlier, problem = find_reusable(workspace, entry["key"])
            if earlier is not None:
                entry.update(would_reuse=True, reused_from=earlier.id,
                             reasons=[f"would reuse step run {earlier.id[:8]}: code, parameters and inputs unchanged"])
            else:
                entry["reasons"] = explain(parts, before, problem=problem, **history)
        for port, data in binding.outputs.items():
            record = (earlier.outputs.get(port) if earlier is not None else None) or {}
            known[data] = record.get("sha256")
            if entry["would_reuse"] is not None and data not in as_before:
                last = (previous.outputs.get(port) if previous is not None and previous.status == "Completed"
                        else None) or {}
                as_before[data] = record.get("sha256") or last.get("sha256")
        decided[binding.name] = entry["would_reuse"]
        found.append(entry)
    return found
