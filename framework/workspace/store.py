"""The local workspace on disk: SQLite for records, plain files for data, models and logs.

Layout under the workspace directory::

    amlstep.db                      run history, dataset and model registries (SQLite, WAL)
    datasets/<name>/<version>/      registered dataset files
    datastore/azureml/<run_id>/<data_name>/   step outputs
    models/<name>/<version>/        registered models
    logs/<run_id>/std_log.txt       step logs
    artifacts/<run_id>/             run artifacts (AutoML child runs: confusion_matrix, outputs/model.pkl)
    cache/downloads/                downloaded dataset sources

Files land atomically: written under ``.staging/`` and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..errors import WorkspaceError
from .names import check_asset_name
from .sources import fetch

SCHEMA_VERSION = 2
ENV_VAR = "AMLSTEP_WORKSPACE"
TERMINAL_STATUSES = ("Completed", "Failed", "Canceled")
MIN_PREFIX = 4  # shortest run id prefix accepted (like git's abbreviated hashes)

_SCHEMA = [
    """CREATE TABLE experiments(name TEXT PRIMARY KEY, created_at REAL NOT NULL)""",
    """CREATE TABLE runs(
        id TEXT PRIMARY KEY, parent_id TEXT, experiment TEXT NOT NULL, run_type TEXT NOT NULL,
        name TEXT NOT NULL, display_name TEXT, status TEXT NOT NULL, backend TEXT NOT NULL,
        created_at REAL NOT NULL, started_at REAL, ended_at REAL,
        params TEXT NOT NULL DEFAULT '{}', properties TEXT NOT NULL DEFAULT '{}',
        outputs TEXT NOT NULL DEFAULT '{}', error TEXT, reuse_key TEXT, reuse_components TEXT,
        reused_from TEXT, log_path TEXT, pid INTEGER, host TEXT)""",
    "CREATE INDEX runs_parent ON runs(parent_id)",
    "CREATE INDEX runs_type_created ON runs(run_type, created_at)",
    "CREATE INDEX runs_reuse ON runs(reuse_key, status)",
    """CREATE TABLE metrics(run_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
        seq INTEGER NOT NULL, logged_at REAL NOT NULL)""",
    "CREATE INDEX metrics_run ON metrics(run_id)",
    """CREATE TABLE datasets(name TEXT NOT NULL, version INTEGER NOT NULL, description TEXT,
        sources TEXT NOT NULL, files TEXT NOT NULL, sha256 TEXT NOT NULL, created_at REAL NOT NULL,
        PRIMARY KEY(name, version))""",
    """CREATE TABLE models(name TEXT NOT NULL, version INTEGER NOT NULL, description TEXT,
        files TEXT NOT NULL, sha256 TEXT NOT NULL, run_id TEXT, properties TEXT NOT NULL DEFAULT '{}',
        tags TEXT NOT NULL DEFAULT '{}', created_at REAL NOT NULL, PRIMARY KEY(name, version))""",
]

# Migrations from version N-1 to N, applied in order to every workspace (new ones start at 1).
MIGRATIONS: dict[int, list[str]] = {
    2: [
        "ALTER TABLE runs ADD COLUMN process_start TEXT",
        "ALTER TABLE runs ADD COLUMN tags TEXT NOT NULL DEFAULT '{}'",
        "CREATE INDEX runs_status ON runs(status)",
    ],
}


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (Linux ``/proc``), to tell it from a later process with the same pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_alive(pid: int | None, started: str | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return started is None or process_start(pid) in (None, started)




def _this_process() -> tuple[int, str | None]:
    return os.getpid(), process_start(os.getpid())


def default_workspace_path() -> Path:
    """``$AMLSTEP_WORKSPACE``, else ``~/.amlstep``."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".amlstep"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(path: Path) -> str:
    """Content hash of a file or of every file under a folder (names included)."""
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(item.relative_to(path).as_posix().encode() + b"\0" + sha256_file(item).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class DatasetVersion:
    name: str
    version: int
    path: Path
    files: list[str]
    sha256: str
    sources: list[str]
    description: str
    created_at: float

    def file_paths(self) -> list[Path]:
        return [self.path / f for f in self.files]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    path: Path
    files: list[str]
    sha256: str
    run_id: str | None
    description: str
    properties: dict[str, Any]
    tags: dict[str, Any]
    created_at: float

    @property
    def id(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path), "id": self.id}


@dataclass
class RunRecord:
    """One run in the history: a pipeline run, a step run or an AutoML child run."""

    id: str
    parent_id: str | None
    experiment: str
    run_type: str
    name: str
    display_name: str | None
    status: str
    backend: str
    created_at: float
    started_at: float | None
    ended_at: float | None
    params: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    reuse_key: str | None = None
    reuse_components: dict[str, Any] | None = None
    reused_from: str | None = None
    log_path: str | None = None
    pid: int | None = None
    host: str | None = None
    process_start: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.ended_at or time.time()) - self.started_at

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["duration"] = self.duration
        return data


_RUN_JSON_FIELDS = ("params", "properties", "outputs", "reuse_components", "tags")


class LocalWorkspace:
    """A workspace directory. Safe to share between processes."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).expanduser().resolve() if path is not None else default_workspace_path().resolve()
        self._open()

    # -- set-up -----------------------------------------------------------------------------
    def _open(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(f"cannot create workspace directory {self.path}: {exc.strerror}") from exc
        if not self.path.is_dir():
            raise WorkspaceError(f"workspace path {self.path} is not a directory")
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise WorkspaceError(
                f"workspace directory {self.path} is not writable; choose another with --workspace "
                f"or ${ENV_VAR}"
            )
        self.db_path = self.path / "amlstep.db"
        for sub in ("datasets", "datastore", "models", "logs", ".staging"):
            (self.path / sub).mkdir(exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            self._migrate(conn)
        self._clean_stale_staging()
        self.reconcile_interrupted_runs()

    def _clean_stale_staging(self) -> None:
        """Remove half-written files left by processes that were killed."""
        for entry in (self.path / ".staging").iterdir():
            pid, _, rest = entry.name.partition("-")
            started = rest.split("-", 1)[0] or None
            if pid.isdigit() and not process_alive(int(pid), None if started == "x" else started):
                shutil.rmtree(entry, ignore_errors=True)

    def reconcile_interrupted_runs(self) -> list[str]:
        """Mark local runs whose process died (``kill -9``, power loss) as Failed; return their ids."""
        host = socket.gethostname()
        with self._connect() as conn:
            rows = conn.execute("SELECT id, pid, process_start FROM runs WHERE status='Running' AND backend='local' "
                                "AND host=?", (host,)).fetchall()
        dead = [r["id"] for r in rows if not process_alive(r["pid"], r["process_start"])]
        if dead:
            with self._write() as conn:
                conn.executemany(
                    "UPDATE runs SET status='Failed', ended_at=?, error=? WHERE id=? AND status='Running'",
                    [(time.time(), "interrupted: the process running it ended without finishing (killed or crashed)",
                      run_id) for run_id in dead])
        return dead

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise WorkspaceError(
                f"workspace {self.path} was made by a newer amlstep (schema version {version}; this "
                f"amlstep understands up to {SCHEMA_VERSION}); upgrade amlstep or use another workspace"
            )
        if version == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                for statement in _SCHEMA:
                    conn.execute(statement)
                version = 1
            while version < SCHEMA_VERSION:
                version += 1
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.db_path, timeout=60, isolation_level=None)
        except sqlite3.Error as exc:
            raise WorkspaceError(f"cannot open the run history {self.db_path}: {exc}") from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=60000")
            conn.execute("PRAGMA synchronous=NORMAL")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the lock up front, retried while the database is busy."""
        with self._connect() as conn:
            for attempt in range(50):
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) and "busy" not in str(exc):
                        raise
                    time.sleep(min(0.05 * (attempt + 1), 1.0))
            else:
                raise WorkspaceError(f"the run history {self.db_path} stayed locked; try again")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # An interrupt can land after COMMIT ran or after SQLite rolled back by itself.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def staging_dir(self) -> Path:
        """A fresh folder on the workspace's file system, for writing before renaming into place."""
        pid, started = _this_process()
        path = self.path / ".staging" / f"{pid}-{started or 'x'}-{uuid.uuid4().hex}"
        path.mkdir(parents=True)
        return path

    # -- datasets -----------------------------------------------------------------------------
    def register_dataset(
        self, name: str, sources: Sequence[str], *, description: str = "", validate: bool = True
    ) -> tuple[DatasetVersion, bool]:
        """Register delimited files (paths or URLs) under ``name``.

        Returns the version and whether it is new: registering the same content again returns the
        latest version unchanged; different content creates a new version.
        """
        check_asset_name(name, "dataset")
        if not sources:
            raise WorkspaceError(f"dataset {name!r}: give at least one file or URL")
        local = [fetch(s, self.path / "cache" / "downloads") for s in sources]
        if validate:
            from ..io import check_delimited_file

            for source, path in zip(sources, local):
                check_delimited_file(path, f"dataset {name!r} source {source!r}")
        names = _unique_basenames(local)
        digest = hashlib.sha256()
        for base, path in zip(names, local):
            digest.update(base.encode() + b"\0" + sha256_file(path).encode())
        content = digest.hexdigest()
        latest = self._latest_dataset(name)
        if latest is not None and latest.sha256 == content:
            return latest, False
        staging = self.staging_dir()
        try:
            for base, path in zip(names, local):
                shutil.copyfile(path, staging / base)
            with self._write() as conn:
                row = conn.execute("SELECT version, sha256 FROM datasets WHERE name=? ORDER BY version DESC "
                                   "LIMIT 1", (name,)).fetchone()
                if row is not None and row["sha256"] == content:
                    version, created = row["version"], False
                    return self.get_dataset(name, version), created
                version = (row["version"] if row else 0) + 1
                target = self.path / "datasets" / name / str(version)
                _move_into_place(staging, target)
                conn.execute(
                    "INSERT INTO datasets(name, version, description, sources, files, sha256, created_at) "
                    "VALUES (?,?,?,?,?,?,?)",
                    (name, version, description, json.dumps(list(sources)), json.dumps(names), content, time.time()),
                )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.get_dataset(name, version), True

    def _latest_dataset(self, name: str) -> DatasetVersion | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM datasets WHERE name=? ORDER BY version DESC LIMIT 1", (name,)
            ).fetchone()
        return self._dataset(row) if row else None

    def get_dataset(self, name: str, version: int | None = None) -> DatasetVersion:
        check_asset_name(name, "dataset")
        with self._connect() as conn:
            if version is None:
                row = conn.execute(
                    "SELECT * FROM datasets WHERE name=? ORDER BY version DESC LIMIT 1", (name,)
                ).fetchone()
            else:
                row = conn.execute("SELECT * FROM datasets WHERE name=? AND version=?", (name, version)).fetchone()
        if row is None:
            which = f"version {version} of dataset {name!r}" if version else f"dataset {name!r}"
            raise WorkspaceError(
                f"{which} is not registered in workspace {self.path}; register it with "
                f"`amlstep datasets register {name} PATH_OR_URL`"
            )
        return self._dataset(row)

    def has_dataset(self, name: str) -> bool:
        return self._latest_dataset(name) is not None

    def list_datasets(self) -> list[DatasetVersion]:
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM datasets ORDER BY name, version").fetchall()
        return [self._dataset(r) for r in rows]

    def _dataset(self, row: sqlite3.Row) -> DatasetVersion:
        return DatasetVersion(
            name=row["name"], version=row["version"], path=self.path / "datasets" / row["name"] / str(row["version"]),
            files=json.loads(row["files"]), sha256=row["sha256"], sources=json.loads(row["sources"]),
            description=row["description"] or "", created_at=row["created_at"],
        )

    # -- models -------------------------------------------------------------------------------
    def register_model(
        self,
        name: str,
        model_path: str | os.PathLike[str],
        *,
        run_id: str | None = None,
        description: str = "",
        properties: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Copy a model file or folder into the registry as the next version of ``name``."""
        check_asset_name(name, "model")
        source = Path(model_path)
        if not source.exists():
            raise WorkspaceError(f"model {name!r}: model path {str(source)!r} does not exist")
        staging = self.staging_dir()
        try:
            if source.is_dir():
                shutil.copytree(source, staging / "model", symlinks=False)
                root = staging / "model"
            else:
                root = staging / "model"
                root.mkdir()
                shutil.copyfile(source, root / source.name)
            files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
            content = sha256_tree(root)
            with self._write() as conn:
                row = conn.execute("SELECT MAX(version) FROM models WHERE name=?", (name,)).fetchone()
                version = (row[0] or 0) + 1
                _move_into_place(root, self.path / "models" / name / str(version))
                conn.execute(
                    "INSERT INTO models(name, version, description, files, sha256, run_id, properties, tags, "
                    "created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                    (name, version, description, json.dumps(files), content, run_id,
                     json.dumps(properties or {}), json.dumps(tags or {}), time.time()),
                )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.get_model(name, version)

    def get_model(self, name: str, version: int | None = None) -> ModelVersion:
        check_asset_name(name, "model")
        with self._connect() as conn:
            if version is None:
                row = conn.execute("SELECT * FROM models WHERE name=? ORDER BY version DESC LIMIT 1",
                                   (name,)).fetchone()
            else:
                row = conn.execute("SELECT * FROM models WHERE name=? AND version=?", (name, version)).fetchone()
        if row is None:
            which = f"version {version} of model {name!r}" if version else f"model {name!r}"
            raise WorkspaceError(f"{which} is not registered in workspace {self.path}")
        return self._model(row)

    def list_models(self) -> list[ModelVersion]:
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM models ORDER BY name, version").fetchall()
        return [self._model(r) for r in rows]

    def _model(self, row: sqlite3.Row) -> ModelVersion:
        return ModelVersion(
            name=row["name"], version=row["version"], path=self.path / "models" / row["name"] / str(row["version"]),
            files=json.loads(row["files"]), sha256=row["sha256"], run_id=row["run_id"],
            description=row["description"] or "", properties=json.loads(row["properties"]),
            tags=json.loads(row["tags"]), created_at=row["created_at"],
        )

    # -- run history --------------------------------------------------------------------------
    def create_run(
        self,
        *,
        run_type: str,
        name: str,
        experiment: str,
        parent_id: str | None = None,
        run_id: str | None = None,
        backend: str = "local",
        status: str = "NotStarted",
        params: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        display_name: str | None = None,
    ) -> RunRecord:
        check_asset_name(experiment, "experiment")
        run_id = run_id or str(uuid.uuid4())
        now = time.time()
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO experiments(name, created_at) VALUES (?,?)", (experiment, now))
            pid, started = _this_process()
            conn.execute(
                "INSERT INTO runs(id, parent_id, experiment, run_type, name, display_name, status, backend, "
                "created_at, started_at, params, properties, pid, process_start, host) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, parent_id, experiment, run_type, name, display_name, status, backend, now,
                 now if status == "Running" else None, _dumps(params or {}), _dumps(properties or {}),
                 pid, started, socket.gethostname()),
            )
        return self.get_run(run_id)

    def update_run(self, run_id: str, **changes: Any) -> None:
        """Set fields of a run; ``status='Running'`` stamps the start, terminal statuses the end."""
        if not changes:
            return
        now = time.time()
        status = changes.get("status")
        if status == "Running":
            changes.setdefault("started_at", now)
        if status in TERMINAL_STATUSES:
            changes.setdefault("ended_at", now)
        columns, values = [], []
        for key, value in changes.items():
            columns.append(f"{key}=?")
            values.append(_dumps(value) if key in _RUN_JSON_FIELDS else value)
        with self._write() as conn:
            conn.execute(f"UPDATE runs SET {', '.join(columns)} WHERE id=?", (*values, run_id))

    def end_unfinished(self, run_id: str, status: str, error: str) -> None:
        """Give ``run_id`` and every descendant still running the terminal ``status``."""
        with self._write() as conn:
            conn.execute(
                "WITH RECURSIVE tree(id) AS (SELECT ? UNION ALL SELECT runs.id FROM runs JOIN tree ON "
                "runs.parent_id = tree.id) UPDATE runs SET status=?, error=COALESCE(error, ?), ended_at=? "
                "WHERE id IN tree AND status IN ('Running', 'NotStarted') AND reused_from IS NULL",
                (run_id, status, error, time.time()))

    def merge_properties(self, run_id: str, properties: dict[str, Any]) -> None:
        with self._write() as conn:
            row = conn.execute("SELECT properties FROM runs WHERE id=?", (run_id,)).fetchone()
            merged = {**json.loads(row[0]), **properties} if row else properties
            conn.execute("UPDATE runs SET properties=? WHERE id=?", (_dumps(merged), run_id))

    def log_metric(self, run_id: str, name: str, value: Any) -> None:
        with self._write() as conn:
            row = conn.execute("SELECT COUNT(*) FROM metrics WHERE run_id=? AND name=?", (run_id, name)).fetchone()
            conn.execute("INSERT INTO metrics(run_id, name, value, seq, logged_at) VALUES (?,?,?,?,?)",
                         (run_id, name, _dumps(value), row[0], time.time()))

    def log_metrics(self, run_id: str, metrics: dict[str, Any]) -> None:
        """Log several scalar metrics in one transaction."""
        now = time.time()
        with self._write() as conn:
            conn.executemany("INSERT INTO metrics(run_id, name, value, seq, logged_at) VALUES (?,?,?,0,?)",
                             [(run_id, k, _dumps(v), now) for k, v in metrics.items()])

    def get_metrics(self, run_id: str) -> dict[str, Any]:
        """Metrics of a run: a single value, or a list when the name was logged more than once."""
        with self._connect() as conn:
            rows = conn.execute("SELECT name, value FROM metrics WHERE run_id=? ORDER BY name, seq",
                                (run_id,)).fetchall()
        found: dict[str, list[Any]] = {}
        for row in rows:
            found.setdefault(row["name"], []).append(json.loads(row["value"]))
        return {k: v[0] if len(v) == 1 else v for k, v in found.items()}

    def get_run(self, run_id: str) -> RunRecord:
        """A run by id, or by a unique prefix of at least ``MIN_PREFIX`` characters (like git).

        A child run's id starts with its step run's id, so a prefix that matches a run and its
        children names the run.
        """
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
            matches = []
            if row is None and len(run_id) >= MIN_PREFIX:
                pattern = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                matches = conn.execute("SELECT * FROM runs WHERE id LIKE ? ESCAPE '\\' ORDER BY length(id), id "
                                       "LIMIT 200", (pattern,)).fetchall()
        if row is None and matches:
            shortest = matches[0]["id"]
            if all(m["id"].startswith(shortest) for m in matches):
                row = matches[0]
            else:
                shown = ", ".join(m["id"] for m in matches[:5]) + (", ..." if len(matches) > 5 else "")
                raise WorkspaceError(f"run id prefix {run_id!r} is ambiguous: it starts {len(matches)} run ids "
                                     f"({shown}); give more characters")
        if row is None:
            short = (f" (a prefix needs at least {MIN_PREFIX} characters)" if len(run_id) < MIN_PREFIX else "")
            raise WorkspaceError(f"run {run_id!r} does not exist in workspace {self.path}{short}; "
                                 f"see `amlstep runs list`")
        return self._run(row)

    def list_runs(self, *, run_type: str | None = "pipeline", experiment: str | None = None,
                  limit: int | None = None) -> list[RunRecord]:
        query, args = "SELECT * FROM runs WHERE 1=1", []
        if run_type:
            query += " AND run_type=?"
            args.append(run_type)
        if experiment:
            query += " AND experiment=?"
            args.append(experiment)
        query += " ORDER BY created_at DESC, rowid DESC"
        if limit:
            query += f" LIMIT {int(limit)}"
        with self._connect() as conn:
            return [self._run(r) for r in conn.execute(query, args).fetchall()]

    def get_children(self, run_id: str) -> list[RunRecord]:
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM runs WHERE parent_id=? ORDER BY created_at, rowid", (run_id,)).fetchall()
        return [self._run(r) for r in rows]

    def find_reusable(self, reuse_key: str) -> RunRecord | None:
        """The latest completed step run with this reuse key whose outputs are all still on disk."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM runs WHERE reuse_key=? AND status='Completed' AND reused_from IS NULL "
                "ORDER BY created_at DESC LIMIT 5", (reuse_key,)).fetchall()
        for row in rows:
            run = self._run(row)
            if all((self.path / o["path"]).exists() for o in run.outputs.values()):
                return run
        return None

    def step_runs_with_key(self, reuse_key: str, limit: int = 5) -> list[RunRecord]:
        """Completed step runs that computed ``reuse_key`` themselves (not reused), newest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM runs WHERE reuse_key=? AND status='Completed' AND reused_from IS NULL "
                "ORDER BY created_at DESC, rowid DESC LIMIT ?", (reuse_key, int(limit))).fetchall()
        return [self._run(row) for row in rows]

    def last_step_run(self, step_name: str, plugin: str, experiment: str | None = None) -> RunRecord | None:
        """The latest step run of ``step_name`` that computed a reuse key, for explaining re-runs."""
        query = ("SELECT * FROM runs WHERE run_type='step' AND name=? AND reuse_components IS NOT NULL "
                 "AND json_extract(reuse_components, '$.plugin')=?")
        args: list[Any] = [step_name, plugin]
        if experiment:
            query += " AND experiment=?"
            args.append(experiment)
        with self._connect() as conn:
            row = conn.execute(query + " ORDER BY created_at DESC, rowid DESC LIMIT 1", args).fetchone()
        return self._run(row) if row else None

    def _run(self, row: sqlite3.Row) -> RunRecord:
        data = dict(row)
        for key in _RUN_JSON_FIELDS:
            if data.get(key) is not None:
                data[key] = json.loads(data[key])
        return RunRecord(**data)

    # -- datastore ----------------------------------------------------------------------------
    def output_root(self, step_run_id: str) -> Path:
        return self.path / "datastore" / "azureml" / step_run_id

    def commit_outputs(self, staging: Path, step_run_id: str) -> Path:
        """Rename a step's staged outputs into the datastore in one move."""
        target = self.output_root(step_run_id)
        _move_into_place(staging, target)
        return target

    def artifacts_dir(self, run_id: str) -> Path:
        """Files a run keeps (Azure's run artifacts, e.g. an AutoML child's ``confusion_matrix``)."""
        return self.path / "artifacts" / run_id

    def write_artifact(self, run_id: str, name: str, content: str | bytes) -> Path:
        """Write artifact ``name`` of ``run_id`` atomically; return its path."""
        target = self.artifacts_dir(run_id) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        staging.write_bytes(content.encode() if isinstance(content, str) else content)
        os.replace(staging, target)
        return target

    def list_artifacts(self, run_id: str) -> list[str]:
        root = self.artifacts_dir(run_id)
        if not root.is_dir():
            return []
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
                      and not p.name.endswith(".partial"))

    def log_path(self, run_id: str) -> Path:
        path = self.path / "logs" / run_id / "std_log.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.path).as_posix()


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _unique_basenames(paths: Sequence[Path]) -> list[str]:
    names: list[str] = []
    for index, path in enumerate(paths):
        base = path.name
        names.append(base if base not in names else f"{index}_{base}")
    return names


def _move_into_place(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``; a leftover ``target`` from a crash (never recorded) is replaced."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    os.replace(source, target)
