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
               allow_reuse: bool) -> dict[str, Any]:
    """What the reuse key is made of, kept in the run history to explain later re-runs."""
    return {
        "plugin": spec.name,
        "kind": spec.kind,
        "code": code_hash(spec),
        "params": json.loads(json.dumps(dict(params), sort_keys=True, default=str)),
        "inputs": dict(sorted(inputs.items())),
        "allow_reuse": allow_reuse,
    }


def key(parts: Mapping[str, Any]) -> str:
    """The reuse key: everything but ``allow_reuse``, which only decides whether to look."""
    keyed = {k: v for k, v in parts.items() if k != "allow_reuse"}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()


def explain(current: Mapping[str, Any], previous: Mapping[str, Any] | None) -> list[str]:
    """Why a step whose key matched no earlier run must re-run, comparing with its latest run."""
    if previous is None:
        return ["no earlier run of this step"]
    reasons = []
    if previous.get("plugin") != current["plugin"] or previous.get("kind") != current["kind"]:
        reasons.append(f"plugin changed: {previous.get('plugin')!r} -> {current['plugin']!r}")
    if previous.get("code") != current["code"]:
        reasons.append("code changed (the plugin's source is different)")
    old_params, new_params = previous.get("params", {}), current["params"]
    for name in sorted(set(old_params) | set(new_params)):
        if old_params.get(name, "<unset>") != new_params.get(name, "<unset>"):
            reasons.append(f"parameter {name!r} changed: {old_params.get(name, '<unset>')!r} -> "
                           f"{new_params.get(name, '<unset>')!r}")
    old_inputs, new_inputs = previous.get("inputs", {}), current["inputs"]
    for name in sorted(set(old_inputs) | set(new_inputs)):
        if old_inputs.get(name) != new_inputs.get(name):
            reasons.append(f"input {name!r} changed (different content)")
    return reasons or ["earlier outputs are no longer in the datastore"]


def predict(pipeline: Any, workspace: Any, params: Mapping[str, Any] | None = None,
            reuse: bool = True) -> list[dict[str, Any]]:
    """Whether each step of a validated pipeline would be reused now, and if not, why.

    The same rule the local backend applies when it runs, walked without running anything: a
    step's key needs its inputs' content, which is known for registered datasets and for the
    outputs of upstream steps that would themselves be reused; a step downstream of one that
    re-runs re-runs too (its input is new data). On Azure the service decides, with the same
    ingredients in the compiled step: the code hash and the parameters are in its arguments,
    its inputs are the same bindings, and ``allow_reuse`` is carried over.
    """
    from .pipeline import Dataset

    values = pipeline.resolve_parameters(params)
    known: dict[str, str | None] = {}
    producers = {data: step for step, ports in ((b.name, b.outputs) for b in pipeline.steps) for data in ports.values()}
    found = []
    for binding in pipeline.steps:
        resolved = binding.resolve_params(values)
        hashes: dict[str, str] = {}
        unknown: list[str] = []
        for port, source in sorted(binding.inputs.items()):
            if isinstance(source, Dataset):
                if workspace.has_dataset(source.name):
                    hashes[port] = f"dataset:{workspace.get_dataset(source.name, source.version).sha256}"
                else:
                    unknown.append(f"input {port!r}: dataset {source.name!r} is not registered yet")
            elif known.get(source) is None:
                unknown.append(f"input {port!r} changes: upstream step {producers[source]!r} re-runs, "
                               f"so {source!r} is new data")
            else:
                hashes[port] = str(known[source])
        entry: dict[str, Any] = {"step": binding.name, "plugin": binding.plugin, "allow_reuse": binding.allow_reuse,
                                 "code": code_hash(binding.spec)[:16], "would_reuse": False, "reused_from": None,
                                 "key": None}
        earlier = None
        if not binding.allow_reuse:
            entry["reasons"] = ["allow_reuse is False for this step"]
        elif not reuse:
            entry["reasons"] = ["reuse disabled for this run (--no-reuse)"]
        elif unknown:
            entry["reasons"] = unknown
        else:
            parts = components(binding.spec, resolved, hashes, binding.allow_reuse)
            entry["key"] = key(parts)
            earlier = workspace.find_reusable(entry["key"])
            if earlier is not None:
                entry.update(would_reuse=True, reused_from=earlier.id,
                             reasons=[f"would reuse step run {earlier.id[:8]}: code, parameters and inputs unchanged"])
            else:
                previous = workspace.last_step_run(binding.name, binding.plugin)
                entry["reasons"] = explain(parts, previous.reuse_components if previous else None)
        for port, data in binding.outputs.items():
            record = (earlier.outputs.get(port) if earlier is not None else None) or {}
            known[data] = record.get("sha256")
        found.append(entry)
    return found
