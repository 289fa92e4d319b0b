"""Reading step inputs and writing step outputs, by data type.

Inputs reach a step's function as: tabular -> ``pandas.DataFrame``; folder -> ``Path`` of the
folder; model and metrics -> ``Path`` of the file. A step returns ``{output: value}`` where
value is: tabular -> a DataFrame (written as ``<output>.csv``) or a file path; folder -> a folder
path; model -> a file path, or any object (pickled as ``model.pkl``); metrics -> a dict (written
as ``metrics.json``) or a file path. A step may also write into ``context.output_dir(name)``
itself and leave the name out of what it returns.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .errors import StepExecutionError, WorkspaceError
from .steps import DataType

if TYPE_CHECKING:
    import pandas as pd

TABULAR_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet")


def check_delimited_file(path: Path, what: str) -> None:
    """Raise a WorkspaceError naming ``what`` unless ``path`` is a non-empty CSV with unique columns."""
    import pandas as pd

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), None)
    except UnicodeDecodeError as exc:
        raise _not_utf8(what, path, exc) from None
    except OSError as exc:
        raise WorkspaceError(f"{what}: cannot read {path}: {exc.strerror}") from None
    if not header or not any(h.strip() for h in header):
        raise WorkspaceError(f"{what}: {path.name} is empty; expected a header row and data rows")
    line = ",".join(header)
    other = max(";\t|", key=line.count)
    if path.suffix != ".tsv" and line.count(other) > line.count(","):
        shown = {"\t": "tab", ";": "semicolon", "|": "pipe"}[other]
        raise WorkspaceError(f"{what}: {path.name} looks {shown}-separated (header {line[:80]!r}); amlstep reads "
                             f"comma-separated files: save it as CSV with ',' between columns and '.' in numbers")
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise WorkspaceError(f"{what}: {path.name} has duplicate column names: {', '.join(map(repr, duplicates))}")
    try:
        frame = pd.read_csv(path)
    except UnicodeDecodeError as exc:
        raise _not_utf8(what, path, exc) from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise WorkspaceError(f"{what}: {path.name} is not a valid CSV file: {str(exc).strip()}") from None
    if frame.empty:
        raise WorkspaceError(f"{what}: {path.name} has a header but no data rows")


def _not_utf8(what: str, path: Path, exc: UnicodeDecodeError) -> WorkspaceError:
    with open(path, "rb") as f:
        line = next((n for n, raw in enumerate(f, 1) if not _decodes(raw)), None)
    return WorkspaceError(f"{what}: {path.name} is not UTF-8 text ({exc.reason} on line {line}); "
                          f"save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 {path.name} > {path.stem}-utf8{path.suffix}`")


def _decodes(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def read_tabular(paths: Sequence[Path] | Path, what: str) -> pd.DataFrame:
    """One DataFrame from delimited files, or from every tabular file in a folder."""
    import pandas as pd

    if isinstance(paths, Path):
        paths = tabular_files(paths, what)
    frames = []
    for path in paths:
        try:
            if path.suffix == ".parquet":
                frames.append(pd.read_parquet(path))
            else:
                frames.append(pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ","))
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as exc:
            raise StepExecutionError(f"{what}: cannot read {path.name} as a table: {str(exc).strip()}") from None
    if not frames:
        raise StepExecutionError(f"{what}: no tabular files found")
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def tabular_files(folder: Path, what: str) -> list[Path]:
    if folder.is_file():
        return [folder]
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TABULAR_SUFFIXES)
    if not files:
        raise StepExecutionError(f"{what}: folder {folder} holds no .csv, .tsv or .parquet file")
    return files


def single_file(folder: Path, what: str) -> Path:
    """The one file an output folder holds (model and metrics data)."""
    if folder.is_file():
        return folder
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if len(files) != 1:
        raise StepExecutionError(
            f"{what}: expected exactly one file in {folder}, found {len(files)}"
            + (f": {', '.join(p.name for p in files[:5])}" if files else "")
        )
    return files[0]


def read_input(kind: DataType, location: Path, what: str) -> Any:
    """The value a step function receives for an input of type ``kind`` stored at ``location``."""
    if kind is DataType.TABULAR:
        return read_tabular(location, what)
    if kind is DataType.FOLDER:
        return location
    return single_file(location, what)


def write_output(kind: DataType, name: str, value: Any, folder: Path, what: str) -> None:
    """Write a step's returned ``value`` for output ``name`` into ``folder``."""
    import pandas as pd

    if isinstance(value, (str, os.PathLike)):
        source = Path(value)
        if not source.exists():
            raise StepExecutionError(f"{what}: returned path {str(source)!r} does not exist")
        if source.resolve() == folder.resolve():
            return
        if source.is_dir():
            shutil.copytree(source, folder, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, folder / source.name)
        return
    if kind is DataType.TABULAR:
        if not isinstance(value, pd.DataFrame):
            raise StepExecutionError(f"{what}: tabular output must be a pandas DataFrame or a file path, "
                                     f"got {type(value).__name__}")
        value.to_csv(folder / f"{name}.csv", index=False)
    elif kind is DataType.MODEL:
        with open(folder / "model.pkl", "wb") as f:
            pickle.dump(value, f)
    elif kind is DataType.METRICS:
        if not isinstance(value, dict):
            raise StepExecutionError(f"{what}: metrics output must be a dict or a file path, got {type(value).__name__}")
        (folder / "metrics.json").write_text(json.dumps(value, indent=1, default=str))
    else:
        raise StepExecutionError(f"{what}: folder output must be a folder path, got {type(value).__name__}")
