"""``amlstep workspace check``: verify a whole workspace, and rebuild what can be rebuilt with ``repair``.

What is checked: the run history file (present, SQLite's ``integrity_check``, schema version);
the sha256 of every step output, registered model and registered dataset against what was
recorded; gap-free version numbers; folders the history does not know (orphans); runs recorded
Running whose process is gone; half-written files left in ``.staging/``.

What ``repair`` does (and only this):
- a damaged run history is moved aside (``amlstep.db.damaged-<time>``) and a new one is built
  from every row SQLite can still read from it (row by row, skipping unreadable pages; a
  destroyed file header is replaced first);
- a missing or empty run history is started anew;
- dataset and model version folders the history does not know are registered again from the
  files (new sha256, sources and lineage marked "recovered"), which also fills version gaps when
  the folder of the missing version is there;
- step output folders of runs the history does not know are moved to ``lost+found/``;
- runs recorded Running whose process is gone are marked Failed; stale staging is removed.
What it cannot do: bring back runs, metrics or lineage whose rows are unreadable, or files that
were changed or deleted (a changed output is reported; re-run its step).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import WorkspaceError
from . import liveness
from .db import translate
from .names import ASSET_NAME

TABLES = ("experiments", "runs", "metrics", "datasets", "models")
RECOVERED = "recovered by `amlstep workspace check --repair`"


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


def check_workspace(path: str | os.PathLike[str], *, repair: bool = False) -> CheckReport:
    """Check the workspace at ``path``; with ``repair``, rebuild what can be rebuilt, then check again."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise WorkspaceError(f"workspace {root} does not exist or is not a directory")
    report, tables = _inspect(root)
    if not repair or report.ok:
        return report
    _repair(root, report, tables)
    after, _ = _inspect(root)
    remaining = {f.key for f in after.findings}
    for finding in report.findings:
        finding.repaired = finding.key not in remaining
    known = {f.key for f in report.findings}
    report.findings += [f for f in after.findings if f.key not in known]
    report.checked, report.notes = after.checked, report.notes + after.notes
    return report


# -- inspecting ---------------------------------------------------------------------------------
def _inspect(root: Path) -> tuple[CheckReport, dict[str, list[dict[str, Any]]]]:
    from .store import SCHEMA_VERSION, held_data

    report = CheckReport(root)
    db = root / "amlstep.db"
    size = db.stat().st_size if db.exists() else None
    tables: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
    if not size:
        data = held_data(root)
        if not data:
            report.history = "none (an empty workspace)"
            return report, tables
        state = "missing" if size is None else "empty (0 bytes)"
        report.history = state
        report.add("history", "amlstep.db", f"the run history is {state} but the workspace holds {data}",
                   "start a new history and register the dataset and model folders found")
    else:
        version, problems = _integrity(db, root)
        if version is not None and version > SCHEMA_VERSION:
            raise WorkspaceError(f"workspace {root} was made by a newer amlstep (schema version {version}); "
                                 f"check it with that amlstep")
        tables, unreadable = salvage(db)
        if problems:
            report.history = "damaged"
            counts = ", ".join(f"{len(rows)} {t}" for t, rows in tables.items())
            report.add("history", "amlstep.db", f"the run history is damaged (SQLite: {problems[0]}); readable: "
                       f"{counts}" + (f"; unreadable parts of {', '.join(unreadable)}" if unreadable else ""),
                       "move it aside and rebuild it from the readable rows and the files")
        else:
            report.history = f"ok (integrity check passed, schema version {version})"
    _check_outputs(root, tables, report)
    _check_registry(root, tables, report, "models")
    _check_registry(root, tables, report, "datasets")
    _check_orphan_outputs(root, tables, report)
    _check_runs(root, tables, report)
    _check_staging(root, report)
    lost = root / "lost+found"
    if lost.is_dir() and any(lost.iterdir()):
        report.notes.append(f"lost+found/ holds {sum(1 for _ in lost.iterdir())} folder(s) set aside earlier; "
                            f"look through them and delete what you do not need")
    return report, tables


def _integrity(db: Path, root: Path) -> tuple[int | None, list[str]]:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return None, [str(exc)]
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        found = [r[0] for r in conn.execute("PRAGMA integrity_check(20)").fetchall()]
        return version, [] if found == ["ok"] else found
    except sqlite3.Error as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise translate(exc, db, root) from None
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
    (one rowid at a time at first, then in growing steps)."""
    rows: list[dict[str, Any]] = []
    last: int | None = None
    failures = 0
    while failures < 2000:
        try:
            query = f"SELECT rowid AS _rowid, * FROM {table}" + (" WHERE rowid > ?" if last is not None else "")
            for row in conn.execute(query + " ORDER BY rowid", (last,) if last is not None else ()):
                item = dict(row)
                last = item.pop("_rowid")
                rows.append(item)
            return rows, failures == 0
        except sqlite3.Error as exc:
            if "no such table" in str(exc):
                return rows, False
            failures += 1
            last = (last or 0) + (1 if failures < 500 else 1 << min(failures - 490, 40))
    return rows, False


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
def _repair(root: Path, report: CheckReport, tables: dict[str, list[dict[str, Any]]]) -> None:
    from .store import LocalWorkspace

    db = root / "amlstep.db"
    rebuild = any(f.kind == "history" for f in report.findings)
    if rebuild:
        if db.exists():
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for suffix in ("", "-wal", "-shm"):
                part = Path(f"{db}{suffix}")
                if part.exists():
                    os.replace(part, root / f"amlstep.db.damaged-{stamp}{suffix}")
            report.notes.append(f"the damaged run history was kept as amlstep.db.damaged-{stamp}")
        workspace = LocalWorkspace(root, allow_missing_history=True)
        _restore_rows(workspace, tables)
    workspace = LocalWorkspace(root)  # marks dead runs Failed and removes stale staging
    for finding in report.findings:
        folder = root / finding.path
        if finding.kind == "staging":
            shutil.rmtree(folder, ignore_errors=True)
        if finding.kind != "orphan" or not folder.exists():
            continue
        if finding.repair and finding.repair.startswith("register"):
            _register_found(workspace, folder)
        else:
            workspace.move_aside(folder)


def _restore_rows(workspace: Any, tables: dict[str, list[dict[str, Any]]]) -> None:
    with workspace._write() as conn:
        for table in TABLES:
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            for row in tables[table]:
                names = [c for c in columns if c in row]
                if not names:
                    continue
                conn.execute(f"INSERT OR IGNORE INTO {table}({', '.join(names)}) VALUES "
                             f"({', '.join('?' * len(names))})", [row[c] for c in names])


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
