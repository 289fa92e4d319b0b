"""Calling a step's function: the one code path every backend uses."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

from .context import RunContext
from .errors import StepExecutionError
from .io import read_input, read_tabular, write_output
from .steps import DataType, StepSpec


def load_inputs(spec: StepSpec, step_name: str, locations: Mapping[str, Path | list[Path]]) -> dict[str, Any]:
    """The values a step function receives for its inputs (unbound optional inputs get None).

    A location is a folder or file (another step's output) or a list of files (a dataset).
    """
    values: dict[str, Any] = {}
    for declared in spec.inputs:
        location = locations.get(declared.name)
        what = f"step {step_name!r} input {declared.name!r}"
        if location is None:
            values[declared.name] = None
        elif declared.type is DataType.LEARNED:
            values[declared.name] = read_learned(location[0] if isinstance(location, list) else location, what)
        elif isinstance(location, list):
            if declared.type is DataType.TABULAR:
                values[declared.name] = read_tabular(location, what)
            elif declared.type is DataType.FOLDER:
                values[declared.name] = location[0].parent
            else:
                values[declared.name] = location[0]
        else:
            values[declared.name] = read_input(declared.type, location, what)
    return values


def execute_step(spec: StepSpec, step_name: str, inputs: Mapping[str, Any], params: Mapping[str, Any],
                 context: RunContext, output_dirs: Mapping[str, Path],
                 learned: Mapping[str, Any] | None = None) -> None:
    """Run ``spec.run`` and write what it returns into ``output_dirs`` (output port -> empty folder).

    ``learned`` (learned output port -> the object a training run recorded) makes the step apply
    what it learned instead of learning from these rows; ports it lacks get None (learn).

    Raises StepExecutionError when the step returns something else than a dict, writes an
    undeclared output, or leaves a declared output unwritten.
    """
    kwargs: dict[str, Any] = {**inputs, **params}
    if spec.wants_context or spec.kind != "python":
        kwargs["context"] = context
    for output in spec.learned_outputs:
        kwargs[output.name] = (learned or {}).get(output.name)
    returned = spec.run(**kwargs)
    if returned is None:
        returned = {}
    if not isinstance(returned, dict):
        raise StepExecutionError(
            f"step {step_name!r}: run function returned {type(returned).__name__}; expected a dict "
            f"{{output name: value}} or None", step=step_name)
    undeclared = sorted(set(returned) - set(output_dirs))
    if undeclared:
        raise StepExecutionError(
            f"step {step_name!r} wrote undeclared output {undeclared[0]!r}; declared outputs: "
            f"{', '.join(output_dirs) or '(none)'}", step=step_name)
    for port, value in returned.items():
        if value is not None:
            declared = spec.output(port)
            assert declared is not None
            what = f"step {step_name!r} output {port!r}"
            if declared.type is DataType.LEARNED and not isinstance(value, (str, os.PathLike)):
                write_learned(value, output_dirs[port], what)
            else:
                write_output(declared.type, port, value, output_dirs[port], what)
    for port, folder in output_dirs.items():
        if not any(folder.iterdir()):
            declared = spec.output(port)
            assert declared is not None
            raise StepExecutionError(
                f"step {step_name!r} did not write its declared output {port!r} ({declared.type.value}); "
                f"return it or write into context.output_dir({port!r})", step=step_name)


LEARNED_FILE = "learned.json"


def write_learned(value: Any, folder: Path, what: str) -> Path:
    """Write what a step learned (a JSON object) as ``folder/learned.json``, keys sorted so that
    the same learning gives the same bytes (and the same reuse hash)."""
    if not isinstance(value, Mapping):
        raise StepExecutionError(f"{what}: a learned output must be a dict of JSON values (numbers, text, lists, "
                                 f"dicts), got {type(value).__name__}")
    try:
        text = json.dumps(_plain(value, "learned"), indent=1, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise StepExecutionError(f"{what}: {exc}") from None
    path = folder / LEARNED_FILE
    path.write_text(text + "\n")
    return path


def read_learned(location: Path, what: str) -> dict[str, Any]:
    """What a step learned, from a learned output folder (or its ``learned.json``)."""
    path = location / LEARNED_FILE if location.is_dir() else location
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise StepExecutionError(f"{what}: {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise StepExecutionError(f"{what}: cannot read {path}: {exc}") from None
    if not isinstance(value, dict):
        raise StepExecutionError(f"{what}: {path} holds {type(value).__name__}, expected a JSON object")
    return value


def _plain(value: Any, where: str) -> Any:
    """``value`` with numpy scalars and arrays as Python values, NaN as None (JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    for convert in ("tolist", "item"):  # numpy arrays and scalars
        method = getattr(value, convert, None)
        if callable(method):
            return _plain(method(), where)
    raise TypeError(f"{where} is a {type(value).__name__}; a learned output holds only numbers, text, lists "
                    f"and dicts")
