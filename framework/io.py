"""Reading step inputs and writing step outputs, by data type.

Inputs reach a step's function as: tabular -> ``pandas.DataFrame``; folder -> ``Path`` of the
folder; model and metrics -> ``Path`` of the file. A step returns ``{output: value}`` where
value is: tabular -> a DataFrame (written as ``<output>.csv``) or a file path; folder -> a folder
path; model -> a file path, or any object (pickled as ``model.pkl``); metrics -> a dict (written
as ``metrics.json``) or a file path. A step may also write into ``context.output_dir(name)``
itself and leave the name out of what it returns.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import errno
import json
import os
import pickle
import shutil
import stat
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Sequence

from .errors import AmlStepError, StepExecutionError, WorkspaceError
from .steps import DataType

if TYPE_CHECKING:
    import pandas as pd

TABULAR_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet")


def check_delimited_file(path: Path, what: str) -> list[str]:
    """Raise a WorkspaceError naming ``what`` unless ``path`` is a non-empty table with well-named columns;
    return its column names.

    ``path`` is a comma-separated file, or a Parquet file when it is named ``*.parquet``. Files of
    another kind named ``.csv`` (gzip, Parquet, Excel, an HTML page...) are recognised by their
    first bytes and named in the error.
    """
    import pandas as pd

    special = special_file(path)
    if special is not None:  # opening a FIFO waits for a writer, a device may never end
        raise WorkspaceError(f"{what}: {path.name} is {special}, not a file; give a CSV or Parquet file")
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise WorkspaceError(f"{what}: cannot read {path}: {exc.strerror}") from None
    kind = sniff_kind(head, path)
    if path.suffix.lower() == ".parquet":
        return _check_parquet(path, what, kind)
    if kind is not None:
        raise WorkspaceError(f"{what}: {path.name} is {kind}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), None)
    except UnicodeDecodeError as exc:
        raise _not_utf8(what, path, exc) from None
    except OSError as exc:
        raise WorkspaceError(f"{what}: cannot read {path}: {exc.strerror}") from None
    except csv.Error as exc:
        raise WorkspaceError(f"{what}: {path.name} is not a valid CSV file: {exc}") from None
    if not header or not any(h.strip() for h in header):
        raise WorkspaceError(f"{what}: {path.name} is empty; expected a header row and data rows")
    line = ",".join(header)
    other = max(";\t|", key=line.count)
    if path.suffix != ".tsv" and line.count(other) > line.count(","):
        shown = {"\t": "tab", ";": "semicolon", "|": "pipe"}[other]
        raise WorkspaceError(f"{what}: {path.name} looks {shown}-separated (header {line[:80]!r}); amlstep reads "
                             f"comma-separated files: save it as CSV with ',' between columns and '.' in numbers")
    check_column_names(header, f"{what}: {path.name}")
    try:
        frame = pd.read_csv(path)
    except UnicodeDecodeError as exc:
        raise _not_utf8(what, path, exc) from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise WorkspaceError(f"{what}: {path.name} is not a valid CSV file: {str(exc).strip()}") from None
    if frame.empty:
        raise WorkspaceError(f"{what}: {path.name} has a header but no data rows")
    return [str(c) for c in header]


def check_column_names(names: Sequence[object], what: str) -> None:
    """Refuse duplicate names, empty or blank names, and names that differ only by spaces around them.

    Positions are 1-based, as a spreadsheet user counts columns.
    """
    texts = [str(n) for n in names]
    counts = collections.Counter(texts)  # linear: 100,000 columns used to take minutes with list.count
    duplicates = sorted(h for h, n in counts.items() if n > 1)
    if duplicates:
        raise WorkspaceError(f"{what} has duplicate column names: {', '.join(map(repr, duplicates))}")
    blank = [i for i, h in enumerate(texts, 1) if not h.strip()]
    if blank:
        where = f"column {blank[0]}" if len(blank) == 1 else f"columns {', '.join(map(str, blank))}"
        hint = " (a first column without a name is often an index written by pandas: save with index=False)"
        raise WorkspaceError(f"{what} has a column without a name ({where}); name every column in the header"
                             + (hint if blank[0] == 1 else ""))
    seen: dict[str, int] = {}
    for position, text in enumerate(texts, 1):
        key = text.strip()
        if key in seen:
            first = seen[key]
            raise WorkspaceError(f"{what} has columns whose names differ only by spaces around them: column {first} "
                                 f"{texts[first - 1]!r} and column {position} {text!r}; rename one or remove the spaces")
        seen[key] = position


_MAGIC = [
    (b"\x1f\x8b", "gzip-compressed, not a plain CSV file: decompress it first (`gunzip -c {name} > {stem}-plain.csv`)"),
    (b"PAR1", "a Parquet file, not a CSV file: name it {stem}.parquet to register it as Parquet, or export it as CSV"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old-style Excel (.xls) or other Office file, not a CSV file: "
                                         "save the sheet as CSV UTF-8 (comma delimited)"),
    (b"BZh", "bzip2-compressed, not a plain CSV file: decompress it first (`bunzip2 -c {name} > {stem}-plain.csv`)"),
    (b"\xfd7zXZ\x00", "xz-compressed, not a plain CSV file: decompress it first (`xz -dc {name} > {stem}-plain.csv`)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed, not a plain CSV file: decompress it first (`zstd -dc {name} > {stem}-plain.csv`)"),
    (b"%PDF", "a PDF document, not a CSV file"),
    (b"SQLite format 3\x00", "an SQLite database, not a CSV file: export the table as CSV"),
    (b"\xff\xfe", "not UTF-8 text (it is UTF-16, little-endian): save it as UTF-8, e.g. "
                  "`iconv -f utf-16 -t utf-8 {name} > {stem}-utf8.csv`"),
    (b"\xfe\xff", "not UTF-8 text (it is UTF-16, big-endian): save it as UTF-8, e.g. "
                  "`iconv -f utf-16 -t utf-8 {name} > {stem}-utf8.csv`"),
]


def sniff_kind(head: bytes, path: Path) -> str | None:
    """What a file that is not delimited text is, from its first bytes (``None`` when it may be text)."""
    name, stem = path.name, path.stem
    for magic, described in _MAGIC:
        if head.startswith(magic):
            return described.format(name=name, stem=stem)
    if head.startswith(b"PK\x03\x04"):
        inner = _zip_names(path)
        if any(n.startswith("xl/") for n in inner):
            return "an Excel workbook (.xlsx), not a CSV file: save the sheet as CSV UTF-8 (comma delimited)"
        if any(n.startswith(("word/", "ppt/")) for n in inner) or "content.xml" in inner:
            return "an office document, not a CSV file"
        return f"a ZIP archive, not a CSV file: unzip it and register the CSV inside ({', '.join(inner[:3]) or 'empty'})"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml", b"<!--")):
        return ("an HTML or XML page, not a CSV file (a login or error page served in its place? check the URL "
                "in a browser)")
    return None


def _zip_names(path: Path) -> list[str]:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def _check_parquet(path: Path, what: str, kind: str | None) -> list[str]:
    import pandas as pd

    if kind is not None and not kind.startswith("a Parquet file"):
        raise WorkspaceError(f"{what}: {path.name} is {kind}")
    try:
        frame = pd.read_parquet(path)
    except ImportError as exc:
        raise WorkspaceError(f"{what}: reading Parquet needs pyarrow: `pip install pyarrow` ({exc})") from None
    except Exception as exc:  # pyarrow raises its own error types for damaged files
        raise WorkspaceError(f"{what}: {path.name} is not a valid Parquet file: {_reason(exc, path)}") from None
    check_column_names(list(frame.columns), f"{what}: {path.name}")
    if frame.empty:
        raise WorkspaceError(f"{what}: {path.name} has columns but no rows")
    return [str(c) for c in frame.columns]


def check_same_columns(tables: Sequence[tuple[str, list[str] | None]], what: str) -> None:
    """Refuse files of one dataset whose columns differ: Azure reads them with one header
    (``read_delimited_files``: all files have the same headers), so a merge padded with NaN is not what runs."""
    known = [(name, columns) for name, columns in tables if columns is not None]
    if len(known) < 2:
        return
    first_name, first = known[0]
    for name, columns in known[1:]:
        if columns != first:
            missing = [c for c in first if c not in columns]
            extra = [c for c in columns if c not in first]
            if missing or extra:
                differs = "; ".join(filter(None, [
                    f"it lacks {', '.join(map(repr, missing[:5]))}" + (" ..." if len(missing) > 5 else "") if missing else "",
                    f"it adds {', '.join(map(repr, extra[:5]))}" + (" ..." if len(extra) > 5 else "") if extra else ""]))
            else:
                differs = "the same names in another order"
            raise WorkspaceError(f"{what}: {name} has other columns than {first_name} ({differs}); the files of one "
                                 f"dataset share one header, as Azure reads them: give them the same columns, or "
                                 f"register them as separate datasets")


def _reason(exc: BaseException, path: Path) -> str:
    """A reader's error without the path it was given (a staging copy the user never named): pyarrow's
    "Could not read schema from '<path>'. ...: Could not open ... '<path>': <reason>" becomes "<reason>"."""
    text = str(exc).strip()
    marker = f"{path}': "
    if marker in text:
        text = text.rsplit(marker, 1)[1]
    return text.replace(str(path), path.name)


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


def output_path(kind: DataType, location: Path) -> Path:
    """What a pipeline output points to: the file for model and metrics data, else the folder."""
    if kind in (DataType.MODEL, DataType.METRICS):
        try:
            return single_file(location, "output")
        except AmlStepError:
            return location
    return location


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


# -- files the commands write ------------------------------------------------------------------------------
def special_file(path: Path) -> str | None:
    """What ``path`` is when it exists but is not a regular file or a folder (a FIFO, a socket, a device), else None.

    Reading one may block forever (a FIFO waits for a writer) or never end (``/dev/zero``): callers refuse it,
    as ``datasets register`` refuses anything that is not a file.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return None


def write_atomically(target: str | Path, write: Callable[[IO[str]], Any], what: str) -> Path:
    """Write ``what`` to ``target`` through ``write(file)``, so that ``target`` is the old file or the complete new one.

    The text goes to a temporary file beside ``target`` (same folder, so the same file system), which is
    flushed to disk and renamed over ``target`` once complete; if writing fails or is interrupted (an
    exception, Ctrl-C) the temporary file is removed and the file that was there is untouched. A kill
    (``kill -9``) can leave the temporary file (``.<name>.*.partial``), never a truncated ``target``. A
    symbolic link is followed (the file it points to is replaced, the link stays). A target that exists
    but is not a regular file (``/dev/stdout``, ``/dev/null``, ``/dev/full``, a FIFO) is written in place:
    renaming over it would replace the device. The new file keeps the old one's permissions (a new file
    gets what the umask allows).

    Raises:
        AmlStepError: one line naming ``target`` and why (no space, no permission, a folder...).
    """
    path = Path(target)
    real = Path(os.path.realpath(path))
    try:
        info: os.stat_result | None = os.stat(real)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise _write_error(what, path, real.parent, exc, existed=False) from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise AmlStepError(f"cannot write {what} to {path}: it is a folder")
    if info is not None and not stat.S_ISREG(info.st_mode):
        try:
            with open(real, "w", encoding="utf-8", newline="") as f:
                write(f)
        except OSError as exc:
            raise _write_error(what, path, None, exc, existed=False) from None
        return path
    folder = real.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, staging = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".partial", dir=folder)
    except OSError as exc:
        raise _write_error(what, path, folder, exc, existed=info is not None) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(staging, stat.S_IMODE(info.st_mode) if info is not None else 0o666 & ~_umask())
        os.replace(staging, real)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(staging)
        if isinstance(exc, OSError):
            raise _write_error(what, path, folder, exc, existed=info is not None) from None
        raise
    return path


def _umask() -> int:
    from .workspace.sources import umask

    return umask()


def _write_error(what: str, path: Path, folder: Path | None, exc: OSError, *, existed: bool) -> AmlStepError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = "no space left on the device" + (f" holding {folder}" if folder is not None else "")
    else:
        reason = exc.strerror or str(exc)
    kept = f"; {path} is unchanged" if existed else ""
    return AmlStepError(f"cannot write {what} to {path}: {reason}{kept}")
