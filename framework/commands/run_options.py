"""``amlstep run --params FILE.yml`` (or ``.json``): pipeline parameters as a flat mapping, name -> value.

They sit beside ``--param NAME=VALUE`` (which wins) and are checked like ``--param``'s, with "did you mean".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import PipelineValidationError

PARAMS_SUFFIXES = (".yml", ".yaml", ".json")


def read_params_file(path: str | Path) -> dict[str, Any]:
    """The pipeline parameters in a YAML or JSON file: a mapping of names to single values (text, numbers, true/false).

    Raises PipelineValidationError naming the file (and the line of a syntax error, or the name of a bad value).
    """
    file = Path(path)
    shown = str(path)
    if file.suffix.lower() not in PARAMS_SUFFIXES:
        raise PipelineValidationError(f"--params {shown}: expected a .yml, .yaml or .json file of pipeline "
                                      f"parameters (name: value)")
    try:
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PipelineValidationError(f"--params {shown}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineValidationError(f"--params {shown}: cannot read it: {exc}") from None
    if file.suffix.lower() == ".json":
        try:
            values = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            raise PipelineValidationError(f"--params {shown}: line {exc.lineno}: not valid JSON: {exc.msg}") from None
    else:
        import yaml  # type: ignore[import-untyped]

        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise PipelineValidationError(f"--params {shown}: {where}not valid YAML: {problem}") from None
        values = {} if values is None else values
    if not isinstance(values, dict):
        raise PipelineValidationError(f"--params {shown}: expected a mapping of pipeline parameters (name: value), "
                                      f"got {type(values).__name__}")
    for name, value in values.items():
        if not isinstance(name, str):
            raise PipelineValidationError(f"--params {shown}: parameter names are text, got {name!r}")
        if value is None:
            raise PipelineValidationError(f"--params {shown}: parameter {name!r} has no value")
        if not isinstance(value, (str, int, float, bool)):
            raise PipelineValidationError(f"--params {shown}: parameter {name!r} must be a single value (text, a "
                                          f"number, true or false), got {type(value).__name__} {value!r}")
    return dict(values)
