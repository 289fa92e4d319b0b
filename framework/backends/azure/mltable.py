"""MLTable files: how SDK v2 describes tabular data (what AutoML nodes and ``mltable`` inputs read).

An MLTable is a folder holding a YAML file named ``MLTable`` that lists data files (relative to the
folder, or URLs) and how to read them. amlstep writes one beside the CSV files of every tabular
output and every dataset it registers under SDK v2, and reads the subset it writes: ``paths``
entries ``file``/``folder``/``pattern`` with a ``read_delimited`` transformation (delimiter,
header, encoding). Anything else is refused with a message naming the file.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any, Iterable

from ...errors import StepExecutionError

FILE_NAME = "MLTable"
SCHEMA = "https://azuremlschemas.azureedge.net/latest/MLTable.schema.json"


def _yaml() -> Any:
    import yaml  # type: ignore[import-untyped]

    return yaml


def document(paths: Iterable[str]) -> dict[str, Any]:
    """The MLTable for comma-separated files with a header row (``paths`` relative to the folder, or URLs)."""
    return {
        "$schema": SCHEMA,
        "type": "mltable",
        "paths": [{"file": p if "://" in p else f"./{p}"} for p in paths],
        "transformations": [{"read_delimited": {"delimiter": ",", "encoding": "utf8",
                                                "header": "all_files_same_headers"}}],
    }


def write(folder: str | Path, paths: Iterable[str] | None = None) -> Path:
    """Write ``folder/MLTable`` for ``paths``, or for every CSV file in ``folder`` when None."""
    folder = Path(folder)
    if paths is None:
        paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.csv") if p.is_file())
    paths = list(paths)
    if not paths:
        raise StepExecutionError(f"cannot describe {folder} as an MLTable: it holds no .csv file")
    target = folder / FILE_NAME
    target.write_text(_yaml().safe_dump(document(paths), sort_keys=False))
    return target


def is_mltable(folder: str | Path) -> bool:
    return (Path(folder) / FILE_NAME).is_file()


def files(folder: str | Path, what: str) -> tuple[list[str], dict[str, Any]]:
    """The data files an MLTable folder lists (local paths, or URLs) and its read_delimited options."""
    folder = Path(folder)
    source = folder / FILE_NAME
    try:
        doc = _yaml().safe_load(source.read_text()) or {}
    except Exception as exc:
        raise StepExecutionError(f"{what}: cannot read {source}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("paths"), list) or not doc["paths"]:
        raise StepExecutionError(f"{what}: {source} lists no paths; expected 'paths: [{{file: ./data.csv}}]'")
    found: list[str] = []
    for entry in doc["paths"]:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise StepExecutionError(f"{what}: {source}: each path must be one of file/folder/pattern, got {entry!r}")
        kind, value = next(iter(entry.items()))
        if "://" in str(value):
            if kind != "file":
                raise StepExecutionError(f"{what}: {source}: only 'file' paths may be URLs, got {kind}: {value}")
            found.append(str(value))
            continue
        local = (folder / str(value)).resolve()
        if kind == "file":
            found.append(str(local))
        elif kind == "folder":
            found += [str(p) for p in sorted(local.rglob("*")) if p.is_file() and p.name != FILE_NAME]
        elif kind == "pattern":
            found += [str(p) for p in sorted(folder.rglob("*")) if p.is_file()
                      and fnmatch.fnmatch(p.relative_to(folder).as_posix(), str(value).lstrip("./"))]
        else:
            raise StepExecutionError(f"{what}: {source}: unknown path kind {kind!r}; expected file, folder or pattern")
    options: dict[str, Any] = {"delimiter": ",", "header": "all_files_same_headers", "encoding": "utf8"}
    for step in doc.get("transformations") or []:
        if isinstance(step, dict) and "read_delimited" in step:
            options.update(step["read_delimited"] or {})
        elif isinstance(step, dict) and ("read_parquet" in step or "read_json_lines" in step):
            raise StepExecutionError(f"{what}: {source}: only read_delimited MLTables are supported, got "
                                     f"{next(iter(step))}")
    return found, options


def read(folder: str | Path, what: str) -> Any:
    """The MLTable at ``folder`` as one pandas DataFrame."""
    import pandas as pd

    paths, options = files(folder, what)
    # read_delimited's header: no_header, from_first_file (only the first file has one),
    # all_files_different_headers, all_files_same_headers
    mode = options.get("header")
    frames: list[Any] = []
    for index, path in enumerate(paths):
        names = None
        if mode in ("no_header", False):
            header: Any = None
        elif mode == "from_first_file" and index > 0:
            header, names = None, list(frames[0].columns)
        else:
            header = 0
        try:
            frames.append(pd.read_csv(path, sep=options.get("delimiter", ","), header=header, names=names,
                                      encoding=str(options.get("encoding", "utf8")).replace("utf8", "utf-8")))
        except (OSError, ValueError) as exc:
            raise StepExecutionError(f"{what}: cannot read {path} listed in {Path(folder) / FILE_NAME}: "
                                     f"{str(exc).strip()}") from None
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
