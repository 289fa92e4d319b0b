"""MLTable folders read as Azure's data runtime reads them, for the AutoML jobs the fake runs service-side.

Written from the MLTable YAML schema (https://azuremlschemas.azureedge.net/latest/MLTable.schema.json,
documented in "CLI (v2) MLtable YAML schema", ``reference-yaml-mltable``), not from any client's
writer: a folder holding a file named ``MLTable`` whose ``paths`` list ``file``, ``folder`` or
``pattern`` (a glob) entries, relative to the folder, absolute, or ``http(s)://`` URLs; and whose
``transformations`` start with a read transformation and go on with row and column steps.

What the fake reads: ``read_delimited`` (``delimiter``, ``header``: ``all_files_same_headers``
(default), ``all_files_different_headers``, ``from_first_file``, ``no_header``; ``encoding``;
``empty_as_string``; ``include_path_column``; ``infer_column_types``), ``read_parquet``,
``read_json_lines`` (``invalid_lines``: ``error``/``drop``, ``encoding``), then ``keep_columns``,
``drop_columns``, ``skip``, ``take`` and ``take_random_sample``. What it does not (``read_delta_lake``,
``convert_column_types``, ``filter``, ``extract_columns_from_partition_format``, datastore URIs in
``paths``) fails the job naming it, never read some other way.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

FILE_NAME = "MLTable"
READERS = ("read_delimited", "read_parquet", "read_json_lines")
# the encodings the schema names -> Python's
ENCODINGS = {"utf8": "utf-8", "iso88591": "iso-8859-1", "latin1": "latin-1", "ascii": "ascii", "utf16": "utf-16",
             "utf32": "utf-32", "utf8bom": "utf-8-sig", "windows1252": "cp1252"}
HEADERS = ("all_files_same_headers", "all_files_different_headers", "from_first_file", "no_header")
PATH_COLUMN = "Path"


class MLTableError(ValueError):
    """An MLTable the data runtime cannot read (the message names the file and what is wrong)."""


def is_mltable(folder: Path) -> bool:
    return folder.is_dir() and (folder / FILE_NAME).is_file()


def read(folder: Path) -> Any:
    """The table an MLTable folder describes, as one pandas DataFrame."""
    import yaml  # type: ignore[import-untyped]

    source = Path(folder) / FILE_NAME
    try:
        doc = yaml.safe_load(source.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise MLTableError(f"{source}: not a readable MLTable file: {exc}") from None
    if not isinstance(doc, dict):
        raise MLTableError(f"{source}: an MLTable file is a mapping with paths and transformations")
    sources = _sources(Path(folder), doc.get("paths"), source)
    steps = doc.get("transformations") or []
    if not isinstance(steps, list) or not steps:
        raise MLTableError(f"{source}: no transformations; the first must read the files (one of "
                           f"{', '.join(READERS)})")
    (kind, options), rest = _step(steps[0], source), steps[1:]
    if kind not in READERS:
        raise MLTableError(f"{source}: the first transformation must read the files (one of {', '.join(READERS)}), "
                           f"got {kind}")
    frame = _read(kind, options, sources, source)
    for item in rest:
        frame = _transform(frame, *_step(item, source), source)
    return frame


def _step(item: Any, source: Path) -> tuple[str, Any]:
    if isinstance(item, str):
        return item, {}
    if isinstance(item, dict) and len(item) == 1:
        kind, options = next(iter(item.items()))
        return str(kind), options if options is not None else {}
    raise MLTableError(f"{source}: a transformation is one key (its kind) and its options, got {item!r}")


def _sources(folder: Path, paths: Any, source: Path) -> list[str]:
    """The files the ``paths`` name, in order: local paths, or http(s) URLs."""
    if not isinstance(paths, list) or not paths:
        raise MLTableError(f"{source}: paths lists no file, folder or pattern")
    found: list[str] = []
    for entry in paths:
        if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in ("file", "folder", "pattern"):
            raise MLTableError(f"{source}: each path is one of file, folder or pattern, got {entry!r}")
        kind, value = next(iter(entry.items()))
        text = str(value)
        if text.startswith(("http://", "https://")) and kind == "file":
            found.append(text)
            continue
        if "://" in text:
            raise MLTableError(f"{source}: the fake service reads {kind} paths on the job's own storage (relative "
                               f"to the MLTable file) or http(s) files, got {text}")
        local = Path(text) if Path(text).is_absolute() else folder / text
        if kind == "file":
            if not local.is_file():
                raise MLTableError(f"{source}: file {text} does not exist")
            found.append(str(local))
        elif kind == "folder":
            if not local.is_dir():
                raise MLTableError(f"{source}: folder {text} does not exist")
            found += [str(p) for p in sorted(local.rglob("*")) if p.is_file() and p.name != FILE_NAME]
        else:
            pattern = text[2:] if text.startswith("./") else text
            base = folder if not Path(pattern).is_absolute() else Path("/")
            matched = [p for p in sorted(base.rglob("*")) if p.is_file() and p.name != FILE_NAME and
                       fnmatch.fnmatchcase(p.relative_to(base).as_posix(), pattern.lstrip("/"))]
            if not matched:
                raise MLTableError(f"{source}: pattern {text} matches no file")
            found += [str(p) for p in matched]
    return found


def _encoding(options: dict[str, Any], source: Path) -> str:
    name = str(options.get("encoding") or "utf8")
    if name not in ENCODINGS:
        raise MLTableError(f"{source}: encoding {name!r} is not one of {', '.join(ENCODINGS)}")
    return ENCODINGS[name]


def _read(kind: str, options: Any, sources: list[str], source: Path) -> Any:
    import pandas as pd

    if not isinstance(options, dict):
        raise MLTableError(f"{source}: {kind} takes a mapping of options, got {options!r}")
    frames: list[Any] = []
    path = ""
    try:
        if kind == "read_delimited":
            header = str(options.get("header") or "all_files_same_headers")
            if header not in HEADERS:
                raise MLTableError(f"{source}: header {header!r} is not one of {', '.join(HEADERS)}")
            strings = options.get("infer_column_types") is False
            for index, path in enumerate(sources):
                names = None
                has_header = header != "no_header" and not (header == "from_first_file" and index > 0)
                if header == "from_first_file" and index > 0:
                    names = list(frames[0].columns.drop(PATH_COLUMN, errors="ignore"))
                frame = pd.read_csv(path, sep=str(options.get("delimiter", ",")), header=0 if has_header else None,
                                    names=names, encoding=_encoding(options, source),
                                    keep_default_na=not options.get("empty_as_string"),
                                    dtype=str if strings else None)
                if header == "no_header":
                    frame.columns = [f"Column{i + 1}" for i in range(len(frame.columns))]
                frames.append(_with_path(frame, path, options))
        elif kind == "read_parquet":
            frames = [_with_path(pd.read_parquet(path), path, options) for path in sources]
        else:
            invalid = str(options.get("invalid_lines") or "error")
            for path in sources:
                if invalid not in ("error", "drop"):
                    raise MLTableError(f"{source}: invalid_lines {invalid!r} is not one of error, drop")
                if invalid == "drop":
                    frame = pd.DataFrame(_json_rows(_text(path, _encoding(options, source))))
                else:
                    frame = pd.read_json(path, lines=True, encoding=_encoding(options, source))
                frames.append(_with_path(frame, path, options))
    except MLTableError:
        raise
    except (OSError, ValueError) as exc:
        raise MLTableError(f"{source}: cannot {kind.replace('_', ' ')} {path}: {str(exc).strip()}") from None
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _text(path: str, encoding: str) -> str:
    if "://" in path:
        import urllib.request

        with urllib.request.urlopen(path, timeout=60) as answer:
            return str(answer.read().decode(encoding))
    return Path(path).read_text(encoding=encoding)


def _json_rows(text: str) -> list[dict[str, Any]]:
    """The JSON objects of a JSON Lines text, lines that are none dropped."""
    import json

    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _with_path(frame: Any, path: str, options: dict[str, Any]) -> Any:
    if options.get("include_path_column"):
        frame[PATH_COLUMN] = path
    return frame


def _transform(frame: Any, kind: str, options: Any, source: Path) -> Any:
    if kind in ("keep_columns", "drop_columns"):
        columns = [options] if isinstance(options, str) else list(options or [])
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise MLTableError(f"{source}: {kind} names column(s) the table does not have: {', '.join(missing)}; "
                               f"columns: {', '.join(map(str, frame.columns))}")
        return frame[columns] if kind == "keep_columns" else frame.drop(columns=columns)
    if kind in ("skip", "take"):
        if isinstance(options, bool) or not isinstance(options, int) or options < 0:
            raise MLTableError(f"{source}: {kind} takes a count of rows, got {options!r}")
        return (frame.iloc[options:] if kind == "skip" else frame.iloc[:options]).reset_index(drop=True)
    if kind == "take_random_sample":
        probability = (options or {}).get("probability") if isinstance(options, dict) else None
        if not isinstance(probability, (int, float)) or not 0 <= probability <= 1:
            raise MLTableError(f"{source}: take_random_sample takes a probability in [0, 1], got {probability!r}")
        import numpy as np

        keep = np.random.default_rng(options.get("seed")).random(len(frame)) < probability
        return frame[keep].reset_index(drop=True)
    raise MLTableError(f"{source}: the fake service does not apply the MLTable transformation {kind!r} (it reads "
                       f"{', '.join(READERS)}, then keep_columns, drop_columns, skip, take, take_random_sample)")
