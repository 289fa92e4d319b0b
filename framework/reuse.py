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
