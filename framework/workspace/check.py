"""``amlstep workspace check``: verify a whole workspace, and rebuild what can be rebuilt with ``repair``.

What is checked: the run history file (present, SQLite's ``integrity_check``, schema version);
rows the readers cannot decode; copies of the history kept by earlier repairs
(``amlstep.db.damaged-*``) that hold rows the history lacks; the sha256 of every step output,
registered model and registered dataset against what was recorded; gap-free version numbers;
folders the history does not know (orphans); runs recorded Running whose process is gone;
half-written files left in ``.staging/``.

"Cannot be read or written now" is told from "damaged": a history SQLite cannot open in place
because the disk is full or the workspace is read-only is read from a copy in a temporary folder
and judged on its content; a full disk, a read-only workspace or a held write lock is a note,
and ``repair`` refuses to start (changing nothing) until it is gone.

What ``repair`` does (and only this), never making things worse than it found them:
- when the history is damaged, missing, or holds rows readers cannot decode, a new one is built
  in ``.staging/`` from every row SQLite can still read from it and from every kept copy (row
  by row, skipping unreadable pages; a destroyed file header is replaced first), undecodable
  values mended; then the old file is kept under a unique name (``amlstep.db.damaged-<time>-<id>``,
  a hard link: no space needed) and the new one renamed into place. A kill at any point leaves
  either the old history, or no ``amlstep.db`` (every command refuses) and a kept copy from
  which the next ``repair`` rebuilds it; kept copies are never deleted and always read;
- rows that only kept copies hold are copied into a sound history (one transaction);
- folders set aside in ``lost+found/`` that hold what the history records as missing (outputs of a
  restored run, a registered version's files) are moved back when their sha256 matches;
- dataset and model version folders the history does not know are registered again from the
  files (new sha256, sources and lineage marked "recovered"), which also fills version gaps when
  the folder of the missing version is there;
- step output folders of runs the history does not know are moved to ``lost+found/``;
- runs recorded Running whose process is gone are marked Failed; stale staging is removed.
What it cannot do: bring back runs, metrics or lineage whose rows are unreadable everywhere, or
files that were changed or deleted (a changed output is reported; re-run its step). It does not
run while another amlstep process uses the workspace.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import WorkspaceError
from . import liveness, rows
from .db import LOW_SPACE_BYTES, WorkspaceUnwritable, free_bytes, human_bytes, lock_holders, translate
from .names import ASSET_NAME

TABLES = ("experiments", "runs", "metrics", "datasets", "models")
RECOVERED = "recovered by `amlstep workspace check --repair`"
KEPT_PREFIX = "amlstep.db.damaged-"
_SIDE_FILES = ("-wal", "-shm", "-journal")
Tables = dict[str, list[dict[str, Any]]]


@dataclass
class Finding:
    """One thing wrong with the workspace."""

    kind: str
    path: str
    problem: str
    repair: str | None = None
    repaired: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return self.kind, self.path


@dataclass
class CheckReport:
    workspace: Path
    history: str = "ok"
    checked: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.repaired for f in self.findings)

    def add(self, kind: str, path: str, problem: str, repair: str | None = None) -> None:
        self.findings.append(Finding(kind, path, problem, repair))

    def to_dict(self) -> dict[str, Any]:
        return {"workspace": str(self.workspace), "ok": self.ok, "history": self.history, "checked": self.checked,
                "findings": [asdict(f) for f in self.findings], "notes": self.notes}


@dataclass
class _State:
    """What the inspection read: the history's rows, and those only kept copies hold."""

    current: Tables
    extra: Tables
    union: Tables


def check_workspace(path: str | os.PathLike[str], *, repair: bool = False) -> CheckReport:
    """Check the workspace at ``path``; with ``repair``, rebuild what can be rebuilt, then check again.

    Raises WorkspaceUnwritable (changing nothing) when a repair is needed but the workspace cannot
    be written now (full disk, read-only, write lock held), and WorkspaceError when other amlstep
    processes are using it.
    """
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise WorkspaceError(f"workspace {root} does not exist or is not a directory")
    report, state = _inspect(root)
    if not repair or report.ok:
        return report
    notes = _repair(root, report, state)
    after, _ = _inspect(root)
    remaining = {f.key for f in after.findings}
    for finding in report.findings:
        finding.repaired = finding.key not in remaining
    known = {f.key for f in report.findings}
    report.findings += [f for f in after.findings if f.key not in known]
    report.checked, report.notes = after.checked, report.notes + notes + [n for n in after.notes
                                                                          if n not in report.notes]
    return report


def kept_copies(root: Path) -> list[Path]:
    """Copies of the run history kept by earlier repairs, oldest first."""
    return sorted(p for p in root.glob(f"{KEPT_PREFIX}*")
                  if p.is_file() and not p.name.endswith(_SIDE_FILES))


# -- inspecting ---------------------------------------------------------------------------------
def _inspect(root: Path) -> tuple[CheckReport, _State]:
    from .store import held_data

    report = CheckReport(root)
    db = root / "amlstep.db"
    size = _size(db)
    current: Tables = {t: [] for t in TABLES}
    if size:
        current = _inspect_history(root, db, report)
    extra = _inspect_kept(root, current, report)
    union = {t: current[t] + extra[t] for t in TABLES}
    state = _State(current, extra, union)
    if not size:
        data = held_data(root)
        kept = [p.name for p in kept_copies(root)]
        if not data and not kept:
            report.history = "none (an empty workspace)"
            return report, state
        state_text = "missing" if db.exists() is False else "empty (0 bytes)"
        report.history = state_text
        held = ", ".join(filter(None, [data, f"{len(kept)} kept cop{'y' if len(kept) == 1 else 'ies'} of it "
                                                f"({', '.join(kept)})" if kept else ""]))
        report.add("history", "amlstep.db", f"the run history is {state_text} but the workspace holds {held}",
                   "start a new history" + (" from the kept copies" if kept else "")
                   + (" and register the dataset and model folders found" if data else ""))
    _check_rows(current, report)
    _check_outputs(root, union, report)
    _check_registry(root, union, report, "models")
    _check_registry(root, union, report, "datasets")
    _check_orphan_outputs(root, union, report)
    _check_runs(root, union, report)
    _check_staging(root, report)
    lost = root / "lost+found"
    if lost.is_dir() and any(lost.iterdir()):
        report.notes.append(f"lost+found/ holds {sum(1 for _ in lost.iterdir())} folder(s) set aside earlier; "
                            f"look through them and delete what you do not need")
    problem = write_problem(root)
    if problem:
        report.notes.append(f"the workspace cannot be written now: {problem}. Reads work; runs, registrations and "
                            f"`--repair` must wait until that is resolved")
    return report, state


def _inspect_history(root: Path, db: Path, report: CheckReport) -> Tables:
    from .store import SCHEMA_VERSION

    try:
        with readable(db, root) as (source, why):
            version, problems = _integrity(source, root)
            if version is not None and version > SCHEMA_VERSION:
                raise WorkspaceError(f"workspace {root} was made by a newer amlstep (schema version {version}); "
                                     f"check it with that amlstep")
            tables, unreadable = salvage(source)
    except CannotRead as exc:
        raise WorkspaceError(f"cannot check the workspace {root} now: its run history {db} cannot be read ({exc}); "
                             f"nothing was changed") from None
    if why:
        report.notes.append(f"the run history was read from a copy, since it cannot be opened in place now ({why})")
    if problems:
        report.history = "damaged"
        counts = ", ".join(f"{len(found)} {t}" for t, found in tables.items())
        report.add("history", "amlstep.db", f"the run history is damaged (SQLite: {problems[0]}); readable: "
                   f"{counts}" + (f"; unreadable parts of {', '.join(unreadable)}" if unreadable else ""),
                   "keep it aside and rebuild it from the readable rows, the kept copies and the files")
    else:
        report.history = f"ok (integrity check passed, schema version {version})"
    return tables


def _inspect_kept(root: Path, current: Tables, report: CheckReport) -> Tables:
    """Rows of the kept copies that the history lacks (the first copy holding a row gives it)."""
    extra: Tables = {t: [] for t in TABLES}
    known = {t: {_identity(t, r) for r in current[t]} for t in TABLES}
    for kept in reversed(kept_copies(root)):  # newest first: its state of a row wins
        try:
            with readable(kept, root) as (source, _):
                found, _ = salvage(source)
        except CannotRead as exc:
            report.notes.append(f"the kept copy {kept.name} cannot be read now ({exc})")
            continue
        added: dict[str, int] = {}
        for table in TABLES:
            for row in found[table]:
                row_key = _identity(table, row)
                if row_key is not None and row_key not in known[table]:
                    known[table].add(row_key)
                    extra[table].append(row)
                    added[table] = added.get(table, 0) + 1
        if added:
            counts = ", ".join(f"{n} {t if n > 1 else t[:-1]}" for t, n in added.items())
            report.add("kept", kept.name, f"the kept copy {kept.name} holds rows the run history lacks ({counts})",
                       "copy them into the run history")
    return extra


def _identity(table: str, row: dict[str, Any]) -> tuple[Any, ...] | None:
    """What identifies ``row`` once mended as a repair stores it (None: a row a repair leaves out)."""
    fixed, _ = rows.mended(table, row)
    return None if fixed is None else rows.key(table, fixed)


def _check_rows(current: Tables, report: CheckReport) -> None:
    """Rows the readers would trip over, found the way they decode them."""
    for table in TABLES:
        for row in current[table]:
            for problem in rows.problems(table, row):
                report.add("row", f"{table}: {problem.what}: {problem.column}",
                           f"{problem}: commands that read it fail",
                           f"rebuild the history with {problem.column!r} mended (the original stays in the kept copy)")


class CannotRead(Exception):
    """The file cannot be read now (no space, read-only, no permission): not a sign of damage."""


def cannot_read_now(exc: sqlite3.Error) -> bool:
    """Whether an SQLite error says "not now" (I/O, space, permissions, locks) rather than "damaged"."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return False
    if name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_BUSY", "SQLITE_LOCKED",
                        "SQLITE_FULL", "SQLITE_PERM", "SQLITE_AUTH")):
        return True
    text = str(exc).lower()
    return any(w in text for w in ("disk i/o error", "unable to open", "readonly", "read-only", "locked", "busy",
                                   "is full"))


@contextlib.contextmanager
def readable(db: Path, root: Path) -> Iterator[tuple[Path, str | None]]:
    """``(path to read, why it is a copy or None)``: ``db`` itself, or a copy in a temporary folder when SQLite
    cannot open it in place now (a full disk has no room for its shared-memory file; a read-only
    workspace cannot hold one). Damage is not a reason: a damaged file is read as it is."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()
        failure: sqlite3.Error | None = None
    except sqlite3.Error as exc:
        failure = exc
    if failure is None or not cannot_read_now(failure):
        yield db, None
        return
    why = write_problem(root) or f"SQLite: {failure}"
    with tempfile.TemporaryDirectory(prefix="amlstep-check-") as scratch:
        copy = Path(scratch) / db.name
        try:
            shutil.copyfile(db, copy)
            wal = Path(f"{db}-wal")
            if wal.is_file():
                shutil.copyfile(wal, Path(f"{copy}-wal"))
        except OSError as exc:
            raise CannotRead(f"{why}; and no copy could be made in {scratch}: {exc.strerror or exc}") from None
        yield copy, why


def write_problem(root: Path, needed: int = LOW_SPACE_BYTES) -> str | None:
    """Why the workspace cannot be written now (read-only, no space, write lock held), or None."""
    if not os.access(root, os.W_OK | os.X_OK):
        try:
            read_only = bool(os.statvfs(root).f_flag & os.ST_RDONLY)
        except (OSError, AttributeError):
            read_only = False
        return (f"it is on a read-only file system ({root})" if read_only
                else f"{root} is not writable by this user")
    free = free_bytes(root)
    if free is not None and free < needed:
        wanted = f", about {human_bytes(needed)} needed" if needed > LOW_SPACE_BYTES else ""
        return f"no space left on the device holding it ({human_bytes(free)} free{wanted})"
    holders = [h for h in (lock_holders(root / "amlstep.db") or []) if h[0] != os.getpid()]
    if holders:
        who = ", ".join(f"process {pid}" + (f" ({command})" if command else "") for pid, command in holders)
        return f"another process holds the run history's write lock: {who}"
    return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _integrity(db: Path, root: Path) -> tuple[int | None, list[str]]:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        if cannot_read_now(exc):
            raise CannotRead(f"SQLite: {exc}") from None
        return None, [str(exc)]
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        found = [r[0] for r in conn.execute("PRAGMA integrity_check(20)").fetchall()]
        return version, [] if found == ["ok"] else found
    except sqlite3.Error as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise translate(exc, db, root) from None
        if cannot_read_now(exc):
            raise CannotRead(f"SQLite: {exc}") from None
        return None, [str(exc)]
    finally:
        conn.close()


def salvage(db: Path) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Every row SQLite can still read from ``db``, table by table; and the tables with unreadable parts.

    Rows are read from the file as it is and, when that misses some, from a copy whose 100-byte
    header is rebuilt (a destroyed header, or a page count that no longer matches a truncated
    file); for each table the better of the two is kept.
    """
    best: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
    complete: dict[str, bool] = {t: False for t in TABLES}
    with tempfile.TemporaryDirectory(prefix="amlstep-salvage-") as scratch:
        for source in (db, None):
            if source is None:
                if all(complete.values()):
                    break
                source = _header_rebuilt(db, Path(scratch))
            if source is None or not _schema_readable(source):
                continue
            conn = _salvage_connection(source)
            try:
                for table in TABLES:
                    rows, whole = _salvage_table(conn, table)
                    if whole and not complete[table] or len(rows) > len(best[table]):
                        best[table], complete[table] = rows, whole
            finally:
                conn.close()
    return best, [t for t in TABLES if not complete[t]]


def _header_rebuilt(db: Path, scratch: Path) -> Path | None:
    """A copy of ``db`` with a fresh 100-byte header (page size kept when plausible, page count from the size)."""
    data = bytearray(db.read_bytes())
    if len(data) < 512:
        return None
    template = scratch / "template.db"
    template.unlink(missing_ok=True)
    conn = sqlite3.connect(template)
    page_size = int.from_bytes(data[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
        page_size = 4096
    conn.execute(f"PRAGMA page_size={page_size}")
    conn.execute("CREATE TABLE t(x)")
    conn.commit()
    conn.close()
    header = bytearray(template.read_bytes()[:100])
    header[28:32] = (len(data) // page_size).to_bytes(4, "big")  # database size in pages
    header[92:96] = header[24:28]  # version-valid-for = change counter: trust the size above
    header[32:40] = bytes(8)  # no freelist
    data[:100] = header
    copy = scratch / "header-rebuilt.db"
    copy.write_bytes(bytes(data))
    return copy


def _salvage_connection(db: Path) -> sqlite3.Connection:
    """Read-only, with schema errors ignored (``writable_schema``): a table whose root page is lost does not
    hide the others."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA writable_schema=ON")
    return conn


def _schema_readable(db: Path) -> bool:
    try:
        conn = _salvage_connection(db)
        try:
            conn.execute("SELECT name FROM sqlite_master").fetchall()
            return True
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def _salvage_table(conn: sqlite3.Connection, table: str) -> tuple[list[dict[str, Any]], bool]:
    """The rows of ``table`` that can be read, in rowid order; past an unreadable stretch, seek further on
    (one rowid at a time at first, then in growing steps). A "row" without its key (bytes of a damaged
    page read through a rebuilt header) is not one."""
    found: list[dict[str, Any]] = []
    last: int | None = None
    failures = 0
    while failures < 2000:
        try:
            query = f"SELECT rowid AS _rowid, * FROM {table}" + (" WHERE rowid > ?" if last is not None else "")
            for row in conn.execute(query + " ORDER BY rowid", (last,) if last is not None else ()):
                item = dict(row)
                last = item.pop("_rowid")
                if all(item.get(column) is not None for column in rows.KEYS[table]):
                    found.append(item)
            return found, failures == 0
        except sqlite3.Error as exc:
            if "no such table" in str(exc):
                return found, False
            failures += 1
            last = (last or 0) + (1 if failures < 500 else 1 << min(failures - 490, 40))
    return found, False


def _sha256_file(path: Path) -> str:
    from .store import sha256_file

    return sha256_file(path)


def _sha256_tree(path: Path) -> str:
    from .store import sha256_tree

    return sha256_tree(path)


def _json(value: Any, default: Any) -> Any:
    try:
        return json.loads(value) if isinstance(value, str) else default
    except ValueError:
        return default


def _check_outputs(root: Path, tables: dict[str, list[dict[str, Any]]], report: CheckReport) -> None:
    checked = 0
    for run in tables["runs"]:
        if run.get("status") != "Completed" or run.get("reused_from"):
            continue
        for record in _json(run.get("outputs"), {}).values():
            if not isinstance(record, dict) or "path" not in record:
                continue
            checked += 1
            location = root / record["path"]
            if not location.exists():
                report.add("output", record["path"], f"output {record.get('data')!r} of step run {run['id']} is missing")
            elif record.get("sha256") and _sha256_tree(location) != record["sha256"]:
                report.add("output", record["path"], f"output {record.get('data')!r} of step run {run['id']} changed "
                           f"after it was written (sha256 differs from the recorded one); re-run its step")
    report.checked["step outputs"] = checked


def _check_registry(root: Path, tables: dict[str, list[dict[str, Any]]], report: CheckReport, kind: str) -> None:
    what = kind[:-1]
    by_name: dict[str, list[int]] = {}
    for row in tables[kind]:
        name, version = row.get("name"), row.get("version")
        if not isinstance(name, str) or not isinstance(version, int):
            continue
        by_name.setdefault(name, []).append(version)
        folder = root / kind / name / str(version)
        relative = f"{kind}/{name}/{version}"
        files = _json(row.get("files"), [])
        missing = [f for f in files if not (folder / f).is_file()]
        if not folder.is_dir() or missing:
            report.add(what, relative, f"{what} {name}:{version} is registered but "
                       + ("its folder is missing" if not folder.is_dir() else f"{', '.join(missing[:3])} is missing"))
        elif _content_digest(kind, folder, files) != row.get("sha256"):
            report.add(what, relative, f"{what} {name}:{version} changed after it was registered (sha256 differs "
                       f"from the recorded one)")
    report.checked[f"{what} versions"] = sum(len(v) for v in by_name.values())
    for name, versions in sorted(by_name.items()):
        absent = sorted(set(range(1, max(versions) + 1)) - set(versions))
        if absent:
            report.add("versions", f"{kind}/{name}", f"{what} {name} has no version {', '.join(map(str, absent))} "
                       f"(versions should run 1..{max(versions)} without gaps)")
    known = {(row.get("name"), str(row.get("version"))) for row in tables[kind]}
    base = root / kind
    if not base.is_dir():
        return
    for folder in sorted(base.glob("*/*")):
        name, version = folder.parent.name, folder.name
        if (name, version) in known:
            continue
        recoverable = (folder.is_dir() and version.isdigit() and ASSET_NAME.fullmatch(name) is not None
                       and ".." not in name and any(p.is_file() for p in folder.rglob("*")))
        report.add("orphan", f"{kind}/{name}/{version}", f"folder {kind}/{name}/{version} is not in the run history",
                   f"register it as {what} {name}:{version}" if recoverable else "move it to lost+found/")


def _content_digest(kind: str, folder: Path, files: list[str]) -> str:
    if kind == "models":
        return _sha256_tree(folder)
    digest = hashlib.sha256()
    for base in files:
        digest.update(base.encode() + b"\0" + _sha256_file(folder / base).encode())
    return digest.hexdigest()


def _check_orphan_outputs(root: Path, tables: dict[str, list[dict[str, Any]]], report: CheckReport) -> None:
    known = {run["id"] for run in tables["runs"] if isinstance(run.get("id"), str)}
    store = root / "datastore" / "azureml"
    if not store.is_dir():
        return
    for folder in sorted(store.iterdir()):
        if folder.name not in known:
            report.add("orphan", f"datastore/azureml/{folder.name}", f"step outputs of run {folder.name}, which the run "
                       f"history does not know", "move it to lost+found/")


def _check_runs(root: Path, tables: dict[str, list[dict[str, Any]]], report: CheckReport) -> None:
    from .liveness import process_alive

    host = socket.gethostname()
    report.checked["runs"] = len(tables["runs"])
    for run in tables["runs"]:
        if run.get("status") != "Running" or run.get("backend") != "local":
            continue
        lease = run.get("lease")
        state = liveness.probe(root, lease).state if lease else liveness.GONE
        if state == liveness.GONE and not (run.get("host") == host and not process_alive(run.get("pid"),
                                                                                          run.get("process_start"))):
            state = liveness.ALIVE if run.get("host") == host else liveness.UNKNOWN
        if state in (liveness.DEAD, liveness.GONE):
            report.add("run", f"run {run['id']}", f"run {run['id']} is recorded Running but the process running it "
                       f"is gone", "mark it Failed (interrupted)")
        elif state == liveness.UNKNOWN:
            report.notes.append(f"run {run['id']} is Running on {run.get('host')}; whether it is alive cannot be told "
                                f"from this machine")


def _check_staging(root: Path, report: CheckReport) -> None:
    staging = root / ".staging"
    if not staging.is_dir():
        return
    for entry in sorted(staging.iterdir()):
        lease = liveness.lease_of_staging(entry.name)
        if lease is not None:
            stale = liveness.probe(root, lease).state in (liveness.DEAD, liveness.GONE)
        else:  # named before leases: <pid>-<start>-<token>
            pid, _, rest = entry.name.partition("-")
            started = rest.split("-", 1)[0] or None
            stale = not pid.isdigit() or not liveness.process_alive(int(pid), None if started == "x" else started)
        if stale:
            report.add("staging", f".staging/{entry.name}", "half-written files left by a process that ended",
                       "delete them (they were never recorded)")


# -- repairing ----------------------------------------------------------------------------------
def _repair(root: Path, report: CheckReport, state: _State) -> list[str]:
    """Repair what ``report`` found; return notes on what was done. Refuses, changing nothing, when the
    workspace cannot be written now or other amlstep processes use it."""
    from .store import LocalWorkspace

    kinds = {f.kind for f in report.findings}
    db = root / "amlstep.db"
    needed = LOW_SPACE_BYTES + (_size(db) + _size(Path(f"{db}-wal")) if kinds & {"history", "row"} else 0)
    problem = write_problem(root, needed)
    if problem:
        raise WorkspaceUnwritable(f"cannot repair the workspace {root} now: {problem}; nothing was changed "
                                  f"(`amlstep workspace check` shows what is wrong)")
    busy = _other_processes(root)
    if busy:
        raise WorkspaceError(f"cannot repair the workspace {root} while other amlstep processes use it ({busy}); "
                             f"nothing was changed: run `amlstep workspace check --repair` once they ended")
    notes: list[str] = []
    try:
        if kinds & {"history", "row"}:
            notes += _rebuild(root, state.union)
        elif "kept" in kinds:
            notes += _merge(root, state.extra)
        workspace = LocalWorkspace(root)  # marks dead runs Failed and removes stale staging
        _, after = _inspect(root)
        notes += _bring_back(root, after.union)
        checked, _ = _inspect(root)
        for finding in checked.findings:
            folder = root / finding.path
            if finding.kind == "staging":
                shutil.rmtree(folder, ignore_errors=True)
            if finding.kind != "orphan" or not folder.exists():
                continue
            if finding.repair and finding.repair.startswith("register"):
                _register_found(workspace, folder)
            else:
                workspace.move_aside(folder)
    except OSError as exc:
        from .db import is_disk_full, no_space_message

        if is_disk_full(exc):
            raise WorkspaceUnwritable(f"cannot finish the repair: {no_space_message(root)}; what was done is "
                                      f"consistent, run --repair again once there is space") from None
        raise WorkspaceError(f"cannot finish the repair of {root}: {exc.strerror or exc} "
                             f"({exc.filename or ''}); what was done is consistent") from None
    return notes


def _other_processes(root: Path) -> str:
    """Other amlstep processes holding a lease on the workspace, in words ("" when none)."""
    alive = []
    for name in liveness.lease_names(root):
        if not liveness.held_here(root, name) and liveness.probe(root, name).state == liveness.ALIVE:
            alive.append(f"process {name.split('-', 1)[0]}")
    return ", ".join(alive)


def _rebuild(root: Path, union: Tables) -> list[str]:
    """Build a new history from ``union`` in staging; keep the old file under a unique name; swap atomically."""
    from .store import MIGRATIONS, SCHEMA_VERSION, _SCHEMA

    notes: list[str] = []
    staging = root / ".staging" / f"{liveness.process_lease(root).name}.{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        new = staging / "amlstep.db"
        conn = sqlite3.connect(new, isolation_level=None)
        try:
            conn.execute("BEGIN")
            for statement in _SCHEMA:
                conn.execute(statement)
            for version in range(2, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
            mended = _insert(conn, union)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
            conn.execute("PRAGMA journal_mode=WAL")
        finally:
            conn.close()
        _fsync(new)
        if mended:
            notes.append(f"mended {len(mended)} undecodable value(s): " + "; ".join(mended[:5])
                         + (" ..." if len(mended) > 5 else ""))
        kept = _keep(root)
        _swap(root, new)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if kept is not None:
        notes.append(f"the earlier run history was kept as {kept.name}")
    counts = ", ".join(f"{len(union[t])} {t}" for t in TABLES)
    notes.append(f"the run history was rebuilt: {counts}")
    return notes


def _insert(conn: sqlite3.Connection, found: Tables) -> list[str]:
    """Insert ``found`` rows (mended where they do not decode); return what was mended."""
    mended: list[str] = []
    for table in TABLES:
        columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        for row in found[table]:
            fixed, changes = rows.mended(table, row)
            mended += changes
            if fixed is None:
                continue
            names = [c for c in columns if c in fixed]
            if names:
                conn.execute(f"INSERT OR IGNORE INTO {table}({', '.join(names)}) VALUES "
                             f"({', '.join('?' * len(names))})", [fixed[c] for c in names])
    return mended


def _keep(root: Path) -> Path | None:
    """Keep the current history (and its WAL) under a new unique name; None when there is nothing to keep.

    Hard links: instant, atomic and no space needed (a copy where the file system has no links). The
    WAL is kept first, so that a kept main file is never seen without it.
    """
    db = root / "amlstep.db"
    if not _size(db):
        return None
    while True:
        name = f"{KEPT_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        if not any((root / f"{name}{suffix}").exists() for suffix in ("", *_SIDE_FILES)):
            break
    for suffix in (*_SIDE_FILES[::2], ""):  # -wal, -journal, then the main file
        source = Path(f"{db}{suffix}")
        if _size(source):
            _link_or_copy(source, root / f"{name}{suffix}")
    _fsync(root)
    return root / name


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
        return
    except OSError:
        pass
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        shutil.copyfile(source, partial)
        _fsync(partial)
        os.rename(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _swap(root: Path, new: Path) -> None:
    """Put ``new`` in place of the history. The old files are kept already; until the rename, the workspace
    has no ``amlstep.db`` (every command refuses it) rather than a main file without its WAL."""
    db = root / "amlstep.db"
    db.unlink(missing_ok=True)
    for suffix in _SIDE_FILES:
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    os.replace(new, db)
    _fsync(root)


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _merge(root: Path, extra: Tables) -> list[str]:
    """Copy rows only kept copies hold into a sound history, in one transaction."""
    from .store import LocalWorkspace

    workspace = LocalWorkspace(root)
    with workspace._write() as conn:
        mended = _insert(conn, extra)
    counts = ", ".join(f"{len(extra[t])} {t}" for t in TABLES if extra[t])
    return [f"copied from the kept copies into the run history: {counts}"] + (
        [f"mended {len(mended)} undecodable value(s) on the way"] if mended else [])


def _bring_back(root: Path, union: Tables) -> list[str]:
    """Move folders set aside in lost+found/ back where the history says they belong, when their sha256 matches
    (a step run's outputs; a registered version's files)."""
    lost = root / "lost+found"
    if not lost.is_dir():
        return []
    notes = []
    for run in union["runs"]:
        records = [r for r in _json(run.get("outputs"), {}).values() if isinstance(r, dict) and "path" in r]
        if run.get("status") != "Completed" or run.get("reused_from") or not records or not isinstance(run.get("id"), str):
            continue
        home = root / "datastore" / "azureml" / run["id"]
        if home.exists():
            continue
        for candidate in sorted(lost.glob(f"datastore_azureml_{run['id']}.*"), reverse=True):
            if all(not r.get("sha256") or _digest_or_none(candidate / Path(r["path"]).name) == r["sha256"]
                   for r in records):
                home.parent.mkdir(parents=True, exist_ok=True)
                os.replace(candidate, home)
                notes.append(f"moved {candidate.name} back from lost+found/ to datastore/azureml/{run['id']}")
                break
    for kind in ("datasets", "models"):
        for row in union[kind]:
            name, version = row.get("name"), row.get("version")
            if not isinstance(name, str) or not isinstance(version, int):
                continue
            home = root / kind / name / str(version)
            if home.exists():
                continue
            files = _json(row.get("files"), [])
            for candidate in sorted(lost.glob(f"{kind}_{name}_{version}.*"), reverse=True):
                if candidate.is_dir() and all((candidate / f).is_file() for f in files) and \
                        _content_digest(kind, candidate, files) == row.get("sha256"):
                    home.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(candidate, home)
                    notes.append(f"moved {candidate.name} back from lost+found/ to {kind}/{name}/{version}")
                    break
    return notes


def _digest_or_none(path: Path) -> str | None:
    try:
        return _sha256_tree(path) if path.exists() else None
    except OSError:
        return None


def _register_found(workspace: Any, folder: Path) -> None:
    kind, name, version = folder.parent.parent.name, folder.parent.name, int(folder.name)
    now = time.time()
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(now))
    with workspace._write() as conn:
        if kind == "models":
            files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
            conn.execute("INSERT OR IGNORE INTO models(name, version, description, files, sha256, run_id, properties, "
                         "tags, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                         (name, version, f"{RECOVERED} on {when}", json.dumps(files), _sha256_tree(folder), None,
                          json.dumps({"recovered": True}), "{}", folder.stat().st_mtime))
        else:
            files = sorted(p.name for p in folder.iterdir() if p.is_file())
            conn.execute("INSERT OR IGNORE INTO datasets(name, version, description, sources, files, sha256, "
                         "created_at) VALUES (?,?,?,?,?,?,?)",
                         (name, version, f"{RECOVERED} on {when}", json.dumps([f"(recovered from {kind}/{name}/{version})"]),
                          json.dumps(files), _content_digest(kind, folder, files), folder.stat().st_mtime))
