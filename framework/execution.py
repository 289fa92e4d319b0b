"""Calling a step's function: the one code path every backend uses."""

from __future__ import annotations

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
                 context: RunContext, output_dirs: Mapping[str, Path]) -> None:
    """Run ``spec.run`` and write what it returns into ``output_dirs`` (output port -> empty folder).

    Raises StepExecutionError when the step returns something else than a dict, writes an
    undeclared output, or leaves a declared output unwritten.
    """
    kwargs: dict[str, Any] = {**inputs, **params}
    if spec.wants_context or spec.kind != "python":
        kwargs["context"] = context
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
            write_output(declared.type, port, value, output_dirs[port], f"step {step_name!r} output {port!r}")
    for port, folder in output_dirs.items():
        if not any(folder.iterdir()):
            declared = spec.output(port)
            assert declared is not None
            raise StepExecutionError(
                f"step {step_name!r} did not write its declared output {port!r} ({declared.type.value}); "
                f"return it or write into context.output_dir({port!r})", step=step_name)
