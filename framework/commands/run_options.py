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
        def once(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
            names = [name for name, _ in pairs]
            twice = next((name for name in names if names.count(name) > 1), None)
            if twice is not None:
                raise PipelineValidationError(f"--params {shown}: parameter {twice!r} is given twice")
            return dict(pairs)

        try:
            values = json.loads(text, object_pairs_hook=once) if text.strip() else {}
        except json.JSONDecodeError as exc:
            raise PipelineValidationError(f"--params {shown}: line {exc.lineno}: not valid JSON: {exc.msg}") from None
    else:
        import yaml  # type: ignore[import-untyped]

        try:
            values = yaml.load(text, Loader=_loader_refusing_duplicates(shown))
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


def _loader_refusing_duplicates(shown: str) -> Any:
    """A YAML ``SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise PipelineValidationError(f"--params {shown}: line {key_node.start_mark.line + 1}: "
                                                  f"parameter {key!r} is given twice")
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return Loader
