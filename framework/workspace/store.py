"""The local workspace on disk: SQLite for records, plain files for data, models and logs.

Layout under the workspace directory::

    amlstep.db                      run history, dataset and model registries (SQLite, WAL)
    datasets/<name>/<version>/      registered dataset files
    datastore/azureml/<run_id>/<data_name>/   step outputs
    models/<name>/<version>/        registered models
    logs/<run_id>/std_log.txt       step logs
    artifacts/<run_id>/             run artifacts (AutoML child runs: confusion_matrix, outputs/model.pkl)
    cache/downloads/                downloaded dataset sources (only downloads that registered)
    .live/<lease>.lock              one per process using the workspace: held locked while it lives
    .staging/<lease>.<token>/       files being written, renamed into place when complete
    lost+found/                     folders found where a new version had to go (never deleted)

Files land atomically: written under ``.staging/`` and renamed into place. Whether the process
behind a Running run is alive is judged by its lease (see ``liveness``), which works across PID
namespaces and containers sharing the workspace.
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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..errors import WorkspaceError, did_you_mean
from . import liveness, rows
from .db import (
    WorkspaceDamaged,
    WorkspaceLocked,
    WorkspaceUnwritable,
    is_disk_full,
    lock_timeout,
    locked_message,
    no_space_message,
    translate,
    unreadable_row_message,
)
from .liveness import process_alive, process_start
from .names import check_asset_name
from .sources import (
    cache_download,
    check_each_source_once,
    fetch_into,
    keep_permissions,
    keep_tree_permissions,
    redact,
    source_name,
)

SCHEMA_VERSION = 3
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
    3: ["ALTER TABLE runs ADD COLUMN lease TEXT"],
}
DATA_FOLDERS = ("datasets", "datastore", "models", "logs", ".staging", ".live")
INTERRUPTED = "interrupted: the process running it ended without finishing (killed or crashed)"


class RegistrationInterrupted(KeyboardInterrupt):
    """Ctrl-C during a registration that was rolled back: the message says nothing was registered."""


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


def sha256_tree(path: Path, known: dict[Path, str] | None = None) -> str:
    """Content hash of a file or of every file under a folder (names included).

    ``known``: the sha256 of some files, already computed (from bytes held in memory), used instead of reading them.
    """
    known = known or {}
    if path.is_file():
        return known.get(path) or sha256_file(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(item.relative_to(path).as_posix().encode() + b"\0" + (known.get(item) or sha256_file(item)).encode())
    return digest.hexdigest()


def content_digest(path: Path) -> str:
    """Content hash of a file or of the files under a folder, names left out: the same bytes compare equal
    wherever a copy put them (a model downloaded from a registry and the step output it was registered from)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for item in sorted(sha256_file(f) for f in files):
        digest.update(item.encode())
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
    restored: tuple[int, ...] = field(default=(), compare=False)
    """Versions of this content whose files were missing or changed and were put back by this registration."""

    def file_paths(self) -> list[Path]:
        return [self.path / f for f in self.files]

    def check_files(self) -> None:
        """Raise a one-line WorkspaceError when registered files were deleted behind amlstep's back."""
        _check_files(f"dataset {self.name}:{self.version}", self.path, self.files,
                     f"; register the same file again to put it back (`amlstep datasets register {self.name} FILE`)")

    def to_dict(self) -> dict[str, Any]:
        data = {**asdict(self), "path": str(self.path)}
        data.pop("restored")
        return data


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

    def check_files(self) -> None:
        """Raise a one-line WorkspaceError when registered files were deleted behind amlstep's back."""
        _check_files(f"model {self.id}", self.path, self.files)

    def read_verified(self, file: Path) -> bytes:
        """The bytes of ``file`` (one of the model's files), once the model's files match the sha256 recorded at
        registration; a one-line WorkspaceError naming the file and both hashes otherwise.

        Loading a pickle runs code: a model changed behind amlstep's back is refused before it is loaded. The
        bytes returned are the ones hashed, so the file cannot change between the check and the load.
        """
        try:
            data = Path(file).read_bytes()
        except OSError as exc:
            raise WorkspaceError(f"model {self.id}: cannot read {file}: {exc.strerror or exc}") from None
        if self.sha256:
            now = sha256_tree(self.path, {Path(file): hashlib.sha256(data).hexdigest()})
            if now != self.sha256:
                raise WorkspaceError(
                    f"model {self.id} changed after it was registered ({file}): its files' sha256 is now {now}, the "
                    f"registry recorded {self.sha256}; amlstep does not load it (loading a pickle runs its code). "
                    f"Run `amlstep workspace check` to see what else changed; register the model again if the "
                    f"change is yours")
        return data

    @property
    def learned(self) -> dict[str, dict[str, Any]]:
        """What the preparation upstream of the model learned from its training rows, as registered with it:
        step name -> {learned output -> the JSON object}; empty for a model registered without (by an older
        amlstep, or a file registered outside a pipeline run)."""
        found = self.properties.get("learned")
        return dict(found) if isinstance(found, dict) else {}

    def learned_state(self, step: str | None = None, output: str | None = None) -> dict[str, Any]:
        """The object preparation step ``step`` learned (its learned output ``output``), to prepare new rows as
        the training rows were: ``prepare(new_rows, learned=model.learned_state("dataprep"))``. ``step`` and
        ``output`` may be left out when there is only one."""
        learned = self.learned
        if not learned:
            raise WorkspaceError(f"model {self.id} carries no learned state: its preparation learned nothing it kept, "
                                 f"or it was registered by an older amlstep (run the pipeline again to register "
                                 f"a version that carries it)")
        if step is None:
            if len(learned) > 1:
                raise WorkspaceError(f"model {self.id} carries the learned state of several steps "
                                     f"({', '.join(sorted(learned))}); say which one")
            step = next(iter(learned))
        if step not in learned:
            raise WorkspaceError(f"model {self.id} carries no learned state of step {step!r}"
                                 f"{did_you_mean(step, learned)}; it carries: {', '.join(sorted(learned))}")
        outputs = learned[step]
        if output is None:
            if len(outputs) > 1:
                raise WorkspaceError(f"step {step!r} of model {self.id} has several learned outputs "
                                     f"({', '.join(sorted(outputs))}); say which one")
            output = next(iter(outputs))
        if output not in outputs:
            raise WorkspaceError(f"step {step!r} of model {self.id} has no learned output {output!r}"
                                 f"{did_you_mean(output, outputs)}; its learned outputs: {', '.join(sorted(outputs))}")
        return dict(outputs[output])

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
    lease: str | None = None

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.ended_at or time.time()) - self.started_at

    def to_dict(self) -> dict[str, Any]:
        """The run as JSON: ``run_id`` is its id, as in ``amlstep run --json`` (``id`` holds the same, for
        scripts written before ``run_id``)."""
        data = {"run_id": self.id, **asdict(self)}
        data["duration"] = self.duration
        return data


_RUN_JSON_FIELDS = ("params", "properties", "outputs", "reuse_components", "tags")


class LocalWorkspace:
    """A workspace directory. Safe to share between processes, PID namespaces and containers on one machine."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, allow_missing_history: bool = False) -> None:
        self.path = Path(path).expanduser().resolve() if path is not None else default_workspace_path().resolve()
        self._clocks: dict[str, tuple[float, float]] = {}  # run id -> (started_at, monotonic clock then)
        self._open(allow_missing_history)

    # -- set-up -----------------------------------------------------------------------------
    def _open(self, allow_missing_history: bool = False) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise WorkspaceError(f"workspace path {self.path} is a file, not a directory") from None
        except OSError as exc:
            if is_disk_full(exc):
                raise WorkspaceUnwritable(no_space_message(self.path.parent)) from None
            raise WorkspaceError(f"cannot create workspace directory {self.path}: {exc.strerror}") from exc
        if not self.path.is_dir():
            raise WorkspaceError(f"workspace path {self.path} is not a directory")
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise WorkspaceError(
                f"workspace directory {self.path} is not writable; choose another with --workspace "
                f"or ${ENV_VAR}"
            )
        self.db_path = self.path / "amlstep.db"
        if not allow_missing_history:
            self._refuse_lost_history()
        for sub in DATA_FOLDERS:
            folder = self.path / sub
            try:
                folder.mkdir(exist_ok=True)
            except FileExistsError:
                pass
            except OSError as exc:
                if is_disk_full(exc):
                    raise WorkspaceUnwritable(no_space_message(self.path)) from None
                raise WorkspaceError(f"workspace {self.path}: cannot create {sub}/: {exc.strerror}") from None
            if not folder.is_dir():
                raise WorkspaceError(f"workspace {self.path}: {sub} is a file, but amlstep keeps a folder there; move "
                                     f"the file away (e.g. `mv {folder} {folder}.file`) and run again")
        with self._connect() as conn:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal":
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                except sqlite3.OperationalError as exc:  # another process holds a lock: it will have set WAL
                    if "locked" not in str(exc) and "busy" not in str(exc):
                        raise
            self._migrate(conn)
        self._housekeeping()

    def _refuse_lost_history(self) -> None:
        """Never treat a folder full of data whose run history is gone or empty as a new workspace."""
        try:
            size = self.db_path.stat().st_size
        except FileNotFoundError:
            size = None
        if size:
            return
        wal = Path(f"{self.db_path}-wal")
        if size == 0 and wal.is_file() and wal.stat().st_size > 0:
            return
        kept = sorted(p.name for p in self.path.glob("amlstep.db.damaged-*")
                      if not p.name.endswith(("-wal", "-shm", "-journal")))
        found = ", ".join(filter(None, [held_data(self.path), f"{len(kept)} kept cop{'y' if len(kept) == 1 else 'ies'} "
                                                               f"of its history ({', '.join(kept[-3:])})" if kept else ""]))
        if found:
            state = "is missing" if size is None else "is empty (0 bytes)"
            raise WorkspaceError(
                f"workspace {self.path} holds {found} but its run history amlstep.db {state}; amlstep will not start "
                f"a new history over existing data. Restore amlstep.db from a backup, or run `amlstep --workspace "
                f"{self.path} workspace check --repair` to rebuild it from the kept copies and the files")

    def _housekeeping(self) -> None:
        """Mark runs of dead processes Failed and remove their half-written files; skipped when unwritable."""
        try:
            self.reconcile_interrupted_runs()
            self._clean_stale_staging()
        except WorkspaceUnwritable:
            pass  # a full disk or a held lock must not stop reads; the next opener tries again

    def _clean_stale_staging(self) -> None:
        """Remove half-written files left by processes that died, and the leases of those processes."""
        verdicts: dict[str, str] = {}

        def state(lease: str) -> str:
            if lease not in verdicts:
                verdicts[lease] = liveness.probe(self.path, lease).state
            return verdicts[lease]

        for entry in (self.path / ".staging").iterdir():
            lease = liveness.lease_of_staging(entry.name)
            if lease is not None:
                if state(lease) in (liveness.DEAD, liveness.GONE):
                    shutil.rmtree(entry, ignore_errors=True)
                continue
            pid, _, rest = entry.name.partition("-")  # named before leases: <pid>-<start>-<token>
            started = rest.split("-", 1)[0] or None
            if pid.isdigit() and not process_alive(int(pid), None if started == "x" else started):
                shutil.rmtree(entry, ignore_errors=True)
        with self._connect() as conn:
            wanted = {r[0] for r in conn.execute("SELECT DISTINCT lease FROM runs WHERE status='Running' AND "
                                                 "lease IS NOT NULL")}
        for lease in liveness.lease_names(self.path):
            if lease not in wanted and verdicts.get(lease) != liveness.ALIVE:
                liveness.probe(self.path, lease, remove_if_dead=True)
        for leftover in liveness.leftover_new_leases(self.path):
            if liveness.probe_file_released(leftover):
                leftover.unlink(missing_ok=True)

    def reconcile_interrupted_runs(self) -> list[str]:
        """Mark local runs whose process died (``kill -9``, crash, power loss) as Failed; return their ids.

        A run is dead when the lease of the process running it is no longer held. Runs recorded
        before leases existed are judged by pid and process start time on this host. Its end is
        when it was last seen alive (see ``_last_seen``), not when someone noticed.
        """
        dead = self.interrupted_runs()
        if dead:
            with self._write(timeout=min(lock_timeout(), 2.0)) as conn:
                conn.executemany(
                    "UPDATE runs SET status='Failed', ended_at=?, error=? WHERE id=? AND status='Running'",
                    [(ended, reason, run_id) for run_id, reason, ended in dead])
        return [run_id for run_id, _, _ in dead]

    def interrupted_runs(self) -> list[tuple[str, str, float]]:
        """Local runs recorded Running whose process is gone: (id, reason, when last seen alive). Writes nothing."""
        host = socket.gethostname()
        with self._connect() as conn:
            found = conn.execute("SELECT id, pid, process_start, host, lease, started_at, created_at FROM runs "
                                 "WHERE status='Running' AND backend='local'").fetchall()
        probes: dict[str, liveness.Probe] = {}
        dead: list[tuple[str, str, float]] = []
        for row in found:
            reason = INTERRUPTED
            seen = liveness.last_seen(self.path, row["lease"]) if row["lease"] else None
            if row["lease"]:
                if row["lease"] not in probes:
                    probes[row["lease"]] = liveness.probe(self.path, row["lease"])
                probed = probes[row["lease"]]
                if probed.state == liveness.DEAD:
                    note = probed.info.get("note")
                    dead.append((row["id"], f"interrupted: {note}" if note else reason, _ended(row, seen)))
                    continue
                if probed.state != liveness.GONE:
                    continue
            if row["host"] == host and not process_alive(row["pid"], row["process_start"]):
                dead.append((row["id"], reason, _ended(row, seen)))
        return dead

    def note_unrecorded(self, run_id: str, text: str) -> None:
        """Run ``run_id`` ended but its end cannot be recorded (disk full): leave ``text`` in its lease and
        release it, so that the next process opening the workspace records the run Failed with ``text``."""
        liveness.release(self.path, run_id, note=text)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise WorkspaceError(
                f"workspace {self.path} was made by a newer amlstep (schema version {version}; this "
                f"amlstep understands up to {SCHEMA_VERSION}); upgrade amlstep or use another workspace"
            )
        if version == SCHEMA_VERSION:
            return
        self._begin_immediate(conn, lock_timeout())
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
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _connect(self, timeout: float | None = None) -> Iterator[sqlite3.Connection]:
        """A connection whose SQLite errors come out as one-line WorkspaceErrors."""
        wait = lock_timeout() if timeout is None else timeout
        try:
            conn = sqlite3.connect(self.db_path, timeout=wait, isolation_level=None)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError as exc:
                if not isinstance(translate(exc, self.db_path, self.path), WorkspaceUnwritable) or "locked" in str(exc):
                    raise
                # No room for the shared-memory index (disk full): read with the index in private memory.
                conn.close()
                conn = sqlite3.connect(self.db_path, timeout=wait, isolation_level=None)
                conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        except sqlite3.Error as exc:
            raise translate(exc, self.db_path, self.path) from None
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
            conn.execute("PRAGMA synchronous=NORMAL")
            yield conn
        except sqlite3.Error as exc:
            raise translate(exc, self.db_path, self.path) from None
        finally:
            conn.close()

    def _begin_immediate(self, conn: sqlite3.Connection, timeout: float) -> None:
        """Take the write lock, waiting at most ``timeout`` seconds in total, then say who holds it."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            conn.execute(f"PRAGMA busy_timeout={max(0, int(remaining * 1000))}")
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
            if time.monotonic() >= deadline:
                raise WorkspaceLocked(locked_message(self.db_path, timeout))
            time.sleep(0.05)

    @contextmanager
    def _write(self, timeout: float | None = None) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the lock up front, waiting at most the lock timeout in total."""
        wait = lock_timeout() if timeout is None else timeout
        with self._connect(wait) as conn:
            self._begin_immediate(conn, wait)
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # An interrupt can land after COMMIT ran or after SQLite rolled back by itself.
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise

    def staging_dir(self) -> Path:
        """A fresh folder on the workspace's file system, for writing before renaming into place.

        Its name carries this process's lease: once the process is gone, any other process
        sharing the workspace removes it.
        """
        lease = self._lease()
        path = self.path / ".staging" / f"{lease.name}.{uuid.uuid4().hex}"
        try:
            path.mkdir(parents=True)
        except OSError as exc:
            if is_disk_full(exc):
                raise WorkspaceUnwritable(no_space_message(self.path)) from None
            raise WorkspaceError(f"workspace {self.path}: cannot create a staging folder: {exc.strerror}") from None
        return path

    def _lease(self, run_id: str | None = None) -> liveness.Lease:
        """This process's lease for staging folders, or a new lease held for run ``run_id``."""
        try:
            return liveness.take_run_lease(self.path, run_id) if run_id else liveness.process_lease(self.path)
        except OSError as exc:
            if is_disk_full(exc):
                raise WorkspaceUnwritable(no_space_message(self.path)) from None
            raise WorkspaceError(f"workspace {self.path}: cannot create the lease file in .live/: {exc.strerror}") from None

    def move_aside(self, folder: Path) -> Path:
        """Move ``folder`` (unknown to the run history) into ``lost+found/``; never delete it."""
        relative = folder.relative_to(self.path).as_posix().replace("/", "_")
        target = self.path / "lost+found" / f"{relative}.{time.strftime('%Y%m%d-%H%M%S')}.{uuid.uuid4().hex[:6]}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(folder, target)
        return target

    def _move_into_place(self, source: Path, target: Path) -> None:
        """Rename ``source`` to ``target``; a folder already there (never recorded) goes to ``lost+found/``."""
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() or target.is_symlink():
            self.move_aside(target)
        os.replace(source, target)

    # -- datasets -----------------------------------------------------------------------------
    def register_dataset(
        self, name: str, sources: Sequence[str], *, description: str = "", validate: bool = True,
        refresh: bool = False,
    ) -> tuple[DatasetVersion, bool]:
        """Register delimited files (paths or URLs) under ``name``.

        Returns the version and whether it is new: registering the same content again returns the
        latest version unchanged; different content creates a new version. Every source is first
        copied (or downloaded) into a staging folder; the copy is what is validated, hashed and
        registered. A URL is downloaded once and cached after it registered; ``refresh`` downloads
        it again. Ctrl-C before the version is recorded raises ``RegistrationInterrupted``.
        """
        check_asset_name(name, "dataset")
        if not sources:
            raise WorkspaceError(f"dataset {name!r}: give at least one file or URL")
        check_each_source_once(name, sources)
        cache = self.path / "cache" / "downloads"
        staging: Path | None = None
        version: int | None = None
        content = ""
        try:
            staging = self.staging_dir()
            names = _unique_basenames([Path(source_name(s)) for s in sources])
            local = []
            for index, (source, base) in enumerate(zip(sources, names)):
                fetched = staging / "sources" / str(index) / base
                fetched.parent.mkdir(parents=True)
                fetch_into(source, fetched, cache, refresh=refresh)
                local.append(fetched)
            if validate:
                from ..io import check_delimited_file, check_same_columns

                columns = [(path.name, check_delimited_file(path, f"dataset {name!r} source {redact(source)!r}"))
                           for source, path in zip(sources, local)]
                check_same_columns(columns, f"dataset {name!r}")
            digest = hashlib.sha256()
            for base, path in zip(names, local):
                digest.update(base.encode() + b"\0" + sha256_file(path).encode())
            content = digest.hexdigest()
            restored = self._restore_dataset_files(name, content, names, local, staging)
            latest = self._latest_dataset(name)
            if latest is not None and latest.sha256 == content:
                self._cache_sources(sources, local, cache)
                return replace(latest, restored=restored), False
            files = staging / "files"
            files.mkdir()
            for base, path in zip(names, local):
                os.replace(path, files / base)
            placed: Path | None = None
            try:
                with self._write() as conn:
                    row = conn.execute("SELECT version, sha256 FROM datasets WHERE name=? ORDER BY version DESC "
                                       "LIMIT 1", (name,)).fetchone()
                    if row is not None and row["sha256"] == content:
                        return self.get_dataset(name, row["version"]), False
                    version = (row["version"] if row else 0) + 1
                    target = self.path / "datasets" / name / str(version)
                    self._move_into_place(files, target)
                    placed = target
                    conn.execute(
                        "INSERT INTO datasets(name, version, description, sources, files, sha256, created_at) "
                        "VALUES (?,?,?,?,?,?,?)",
                        (name, version, description, json.dumps([redact(s) for s in sources]), json.dumps(names), content,
                         time.time()),
                    )
            except BaseException:
                if placed is not None and version is not None and \
                        self._recorded("datasets", name, version, content) is False:
                    self._take_back(placed, staging)
                raise
        except KeyboardInterrupt:
            if version is None or not self._recorded("datasets", name, version, content):
                raise RegistrationInterrupted(f"interrupted: nothing was registered as dataset {name!r}") from None
            raise
        except OSError as exc:
            if is_disk_full(exc):
                raise WorkspaceUnwritable(no_space_message(self.path)) from None
            raise WorkspaceError(f"dataset {name!r}: cannot write it into the workspace: {exc.strerror or exc}") from None
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        registered = replace(self.get_dataset(name, version), restored=restored)
        self._cache_sources(sources, registered.file_paths(), cache)
        return registered, True

    def _restore_dataset_files(self, name: str, content: str, names: Sequence[str], local: Sequence[Path],
                               staging: Path) -> tuple[int, ...]:
        """Put back the files of registered versions of ``name`` with this content whose files are missing or
        changed (deleted outside amlstep): the staged copies are those very files. A changed folder is set
        aside in ``lost+found/``, never deleted. Returns the versions put back."""
        with self._connect() as conn:
            found = [self._dataset(r) for r in conn.execute("SELECT * FROM datasets WHERE name=? AND sha256=? "
                                                            "ORDER BY version", (name, content)).fetchall()]
        restored = []
        for dataset in found:
            if dataset.files != list(names) or _dataset_intact(dataset):
                continue
            copy = staging / f"restore-{dataset.version}"
            copy.mkdir()
            for base, path in zip(names, local):
                shutil.copyfile(path, copy / base)
                shutil.copymode(path, copy / base)
            with self._write():  # one restorer at a time
                if _dataset_intact(dataset):
                    continue
                self._move_into_place(copy, dataset.path)
            restored.append(dataset.version)
        return tuple(restored)

    def _take_back(self, placed: Path, staging: Path) -> None:
        """The commit that was to record ``placed`` failed (a full disk): move it back into staging, which is
        removed, so that no unrecorded copy keeps the disk full. Best effort: a folder that stays is reported by
        ``workspace check`` and set aside by the next registration."""
        try:
            os.replace(placed, staging / f"unrecorded-{uuid.uuid4().hex[:8]}")
        except OSError:
            pass

    def _cache_sources(self, sources: Sequence[str], files: Sequence[Path], cache: Path) -> None:
        for source, path in zip(sources, files):
            cache_download(source, path, cache)

    def _recorded(self, table: str, name: str, version: int, content: str) -> bool | None:
        """Whether version ``version`` of ``name`` with this content is in the registry (None: cannot tell)."""
        try:
            with self._connect(timeout=1.0) as conn:
                row = conn.execute(f"SELECT sha256 FROM {table} WHERE name=? AND version=?", (name, version)).fetchone()
        except WorkspaceError:
            return None
        return row is not None and row["sha256"] == content

    def _latest_dataset(self, name: str) -> DatasetVersion | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM datasets WHERE name=? ORDER BY version DESC LIMIT 1", (name,)
            ).fetchone()
        return self._dataset(row) if row else None

    def get_dataset(self, name: str, version: int | None = None) -> DatasetVersion:
        check_asset_name(name, "dataset")
        _check_version(version, "dataset", name)
        with self._connect() as conn:
            if version is None:
                row = conn.execute(
                    "SELECT * FROM datasets WHERE name=? ORDER BY version DESC LIMIT 1", (name,)
                ).fetchone()
            elif version > _MAX_VERSION:
                row = None  # beyond SQLite's integers: never registered
            else:
                row = conn.execute("SELECT * FROM datasets WHERE name=? AND version=?", (name, version)).fetchone()
        if row is None:
            which = f"version {version} of dataset {name!r}" if version is not None else f"dataset {name!r}"
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
        data = self._decoded("datasets", row)
        return DatasetVersion(
            name=data["name"], version=data["version"], path=self.path / "datasets" / data["name"] / str(data["version"]),
            files=data["files"], sha256=data["sha256"], sources=[redact(str(s)) for s in data["sources"]],
            description=data["description"] or "", created_at=data["created_at"],
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
        version = 0
        try:
            if source.is_dir():
                shutil.copytree(source, staging / "model", symlinks=False)
                root = staging / "model"
                keep_tree_permissions(source, root)
            else:
                root = staging / "model"
                root.mkdir()
                shutil.copyfile(source, root / source.name)
                keep_permissions(source, root / source.name)
            files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
            content = sha256_tree(root)
            placed: Path | None = None
            try:
                with self._write() as conn:
                    row = conn.execute("SELECT MAX(version) FROM models WHERE name=?", (name,)).fetchone()
                    version = (row[0] or 0) + 1
                    placed = self.path / "models" / name / str(version)
                    self._move_into_place(root, placed)
                    conn.execute(
                        "INSERT INTO models(name, version, description, files, sha256, run_id, properties, tags, "
                        "created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                        (name, version, description, json.dumps(files), content, run_id,
                         json.dumps(properties or {}), json.dumps(tags or {}), time.time()),
                    )
            except BaseException:
                if placed is not None and self._recorded("models", name, version, content) is False:
                    self._take_back(placed, staging)
                raise
        except OSError as exc:
            if is_disk_full(exc):
                raise WorkspaceUnwritable(no_space_message(self.path)) from None
            raise WorkspaceError(f"model {name!r}: cannot copy {str(source)!r} into the registry: "
                                 f"{exc.strerror or exc}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.get_model(name, version)

    def get_model(self, name: str, version: int | None = None) -> ModelVersion:
        check_asset_name(name, "model")
        _check_version(version, "model", name)
        with self._connect() as conn:
            if version is None:
                row = conn.execute("SELECT * FROM models WHERE name=? ORDER BY version DESC LIMIT 1",
                                   (name,)).fetchone()
            elif version > _MAX_VERSION:
                row = None  # beyond SQLite's integers: never registered
            else:
                row = conn.execute("SELECT * FROM models WHERE name=? AND version=?", (name, version)).fetchone()
        if row is None:
            with self._connect() as conn:
                names = [r[0] for r in conn.execute("SELECT DISTINCT name FROM models ORDER BY name")]
                versions = [r[0] for r in conn.execute("SELECT version FROM models WHERE name=? ORDER BY version",
                                                       (name,))]
            if versions:
                raise WorkspaceError(f"version {version} of model {name!r} is not registered in workspace {self.path}; "
                                     f"its versions: {', '.join(map(str, versions))}")
            known = f"; registered models: {', '.join(names)}" if names else "; no model is registered yet"
            raise WorkspaceError(f"model {name!r} is not registered in workspace {self.path}"
                                 f"{did_you_mean(name, names)}{known}")
        return self._model(row)

    def list_models(self) -> list[ModelVersion]:
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM models ORDER BY name, version").fetchall()
        return [self._model(r) for r in rows]

    def _model(self, row: sqlite3.Row) -> ModelVersion:
        data = self._decoded("models", row)
        return ModelVersion(
            name=data["name"], version=data["version"], path=self.path / "models" / data["name"] / str(data["version"]),
            files=data["files"], sha256=data["sha256"], run_id=data["run_id"],
            description=data["description"] or "", properties=data["properties"],
            tags=data["tags"], created_at=data["created_at"],
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
        if status == "Running":
            self._clocks[run_id] = (now, time.monotonic())
        # taken before the row exists: whoever sees the run Running finds its lease held
        lease = self._run_lease(run_id, parent_id) if status == "Running" else None
        with self._release_on_error(run_id), self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO experiments(name, created_at) VALUES (?,?)", (experiment, now))
            pid, started = _this_process()
            conn.execute(
                "INSERT INTO runs(id, parent_id, experiment, run_type, name, display_name, status, backend, "
                "created_at, started_at, params, properties, pid, process_start, host, lease) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, parent_id, experiment, run_type, name, display_name, status, backend, now,
                 now if status == "Running" else None, _dumps(params or {}), _dumps(properties or {}),
                 pid, started, socket.gethostname(), lease),
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
            self._clocks[run_id] = (changes["started_at"], time.monotonic())
            with self._connect() as conn:
                row = conn.execute("SELECT parent_id, lease FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is not None and not (row["lease"] and liveness.held_here(self.path, row["lease"])):
                pid, started = _this_process()
                changes.update(lease=self._run_lease(run_id, row["parent_id"]), pid=pid, process_start=started,
                               host=socket.gethostname())
        if status in TERMINAL_STATUSES:
            changes.setdefault("ended_at", self._end_time(run_id, now))
        columns, values = [], []
        for key, value in changes.items():
            columns.append(f"{key}=?")
            values.append(_dumps(value) if key in _RUN_JSON_FIELDS else value)
        with self._write() as conn:
            conn.execute(f"UPDATE runs SET {', '.join(columns)} WHERE id=?", (*values, run_id))
        if status in TERMINAL_STATUSES:
            liveness.release(self.path, run_id)

    def stop_following(self, run_id: str) -> None:
        """This process no longer follows run ``run_id``, which goes on elsewhere (an Azure run submitted with
        ``--no-wait``): its lease is let go, as if the process had exited; the run stays as it is."""
        liveness.release(self.path, run_id)

    def _run_lease(self, run_id: str, parent_id: str | None) -> str:
        """The lease a new Running run records: its parent's when this process holds that, else a new one."""
        if parent_id:
            with self._connect() as conn:
                row = conn.execute("SELECT lease FROM runs WHERE id=?", (parent_id,)).fetchone()
            if row is not None and row[0] and liveness.held_here(self.path, row[0]):
                return str(row[0])
        return self._lease(run_id).name

    @contextmanager
    def _release_on_error(self, run_id: str) -> Iterator[None]:
        try:
            yield
        except BaseException:
            liveness.release(self.path, run_id)
            raise

    def end_unfinished(self, run_id: str, status: str, error: str) -> None:
        """Give ``run_id`` and every descendant still running the terminal ``status``."""
        now = time.time()
        with self._write() as conn:
            unfinished = [r[0] for r in conn.execute(
                "WITH RECURSIVE tree(id) AS (SELECT ? UNION ALL SELECT runs.id FROM runs JOIN tree ON "
                "runs.parent_id = tree.id) SELECT id FROM runs WHERE id IN tree AND status IN ('Running', "
                "'NotStarted') AND reused_from IS NULL", (run_id,))]
            conn.executemany("UPDATE runs SET status=?, error=COALESCE(error, ?), ended_at=? WHERE id=?",
                             [(status, error, self._end_time(unfinished_id, now), unfinished_id)
                              for unfinished_id in unfinished])
        liveness.release(self.path, run_id)

    def _end_time(self, run_id: str, now: float) -> float:
        """When a run that this process started ends: its start plus the time elapsed on the monotonic clock, so
        that a step of the wall clock during the run (NTP, a suspended laptop's resync) does not change its
        duration. Runs started elsewhere end ``now``."""
        clock = self._clocks.pop(run_id, None)
        if clock is None:
            return now
        started, monotonic_start = clock
        return started + max(0.0, time.monotonic() - monotonic_start)

    def merge_properties(self, run_id: str, properties: dict[str, Any]) -> None:
        with self._write() as conn:
            row = conn.execute("SELECT id, properties FROM runs WHERE id=?", (run_id,)).fetchone()
            merged = {**self._decoded("runs", row)["properties"], **properties} if row else properties
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
            found_rows = conn.execute("SELECT run_id, name, value FROM metrics WHERE run_id=? ORDER BY name, seq",
                                      (run_id,)).fetchall()
        found: dict[str, list[Any]] = {}
        for row in found_rows:
            found.setdefault(row["name"], []).append(self._decoded("metrics", row)["value"])
        return {k: v[0] if len(v) == 1 else v for k, v in found.items()}

    def get_run(self, run_id: str) -> RunRecord:
        """A run by id, or by a unique prefix of at least ``MIN_PREFIX`` characters (like git).

        A child run's id starts with its step run's id, so a prefix that matches a run and its
        children names the run.
        """
        if not isinstance(run_id, str):
            raise WorkspaceError(f"a run id is text (a run's id or a prefix of at least {MIN_PREFIX} characters), got "
                                 f"{type(run_id).__name__} {run_id!r}; see `amlstep runs list`")
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None:  # an Azure step run by the id the service gave it (``run --json``)
                row = conn.execute("SELECT * FROM runs WHERE run_type='step' AND "
                                   "json_extract(properties, '$.azure_step_run_id')=? LIMIT 1", (run_id,)).fetchone()
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

    def completed_step_runs(self, step_name: str, plugin: str, experiment: str, limit: int = 20) -> list[RunRecord]:
        """Completed runs of step ``step_name`` (plugin ``plugin``) in ``experiment``, newest first; a reused one
        holds the outputs of the run it reused. For partial runs, which take the outputs of steps they leave out."""
        with self._connect() as conn:
            found = conn.execute(
                "SELECT * FROM runs WHERE run_type='step' AND name=? AND experiment=? AND status='Completed' AND "
                "json_extract(properties, '$.plugin')=? ORDER BY created_at DESC, rowid DESC LIMIT ?",
                (step_name, experiment, plugin, int(limit))).fetchall()
        return [self._run(row) for row in found]

    def _run(self, row: sqlite3.Row) -> RunRecord:
        return RunRecord(**self._decoded("runs", row))

    def _decoded(self, table: str, row: sqlite3.Row) -> dict[str, Any]:
        """A row with its JSON decoded; a row that does not decode is named in one line (no traceback)."""
        try:
            return rows.decode(table, dict(row))
        except rows.RowProblem as exc:
            raise WorkspaceDamaged(unreadable_row_message(self.db_path, str(exc))) from None

    # -- datastore ----------------------------------------------------------------------------
    def output_root(self, step_run_id: str) -> Path:
        return self.path / "datastore" / "azureml" / step_run_id

    def commit_outputs(self, staging: Path, step_run_id: str) -> Path:
        """Rename a step's staged outputs into the datastore in one move."""
        target = self.output_root(step_run_id)
        self._move_into_place(staging, target)
        return target

    def artifacts_dir(self, run_id: str) -> Path:
        """Files a run keeps (Azure's run artifacts, e.g. an AutoML child's ``confusion_matrix``)."""
        return self.path / "artifacts" / run_id

    def artifact_path(self, run_id: str, name: str) -> Path:
        """Where artifact ``name`` of ``run_id`` lives; names that lead outside the run's folder are refused."""
        root = self.artifacts_dir(run_id)
        parts = Path(name).parts
        candidate = root / name
        inside = bool(parts) and not Path(name).is_absolute() and ".." not in parts
        if inside:
            try:
                candidate.resolve().relative_to(root.resolve())
            except ValueError:
                inside = False
        if not inside:
            raise WorkspaceError(f"run {run_id}: artifact name {name!r} leads outside the run's files; use a name "
                                 f"from get_file_names(), e.g. 'outputs/model.pkl'")
        return candidate

    def write_artifact(self, run_id: str, name: str, content: str | bytes) -> Path:
        """Write artifact ``name`` of ``run_id`` atomically; return its path."""
        target = self.artifact_path(run_id, name)
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
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if is_disk_full(exc):
                raise WorkspaceUnwritable(no_space_message(self.path)) from None
            raise WorkspaceError(f"workspace {self.path}: cannot create the log folder of run {run_id}: "
                                 f"{exc.strerror}") from None
        return path

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.path).as_posix()


def _ended(row: sqlite3.Row, seen: float | None) -> float:
    """When a run whose process died ended: when its lease was last seen alive, never before it started and
    never in the future; now when nothing tells."""
    now = time.time()
    started = row["started_at"] if isinstance(row["started_at"], (int, float)) else row["created_at"]
    if seen is None or not isinstance(started, (int, float)):
        return now
    return min(now, max(float(started), seen))


def _check_files(what: str, folder: Path, files: Sequence[str], fix: str = "") -> None:
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        gone = "its folder" if not folder.exists() else ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise WorkspaceError(f"{what} is registered but {gone} is missing from {folder} (deleted outside amlstep?){fix}; "
                             f"`amlstep workspace check` lists what else is missing")


_MAX_VERSION = (1 << 63) - 1  # SQLite's largest integer


def _check_version(version: object, what: str, name: str) -> None:
    """Versions are whole numbers from 1 (``-v 0`` used to say the dataset was not registered at all)."""
    if version is None:
        return
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise WorkspaceError(f"{what} {name!r}: version {version!r} is not valid; versions are whole numbers from 1 "
                             f"(leave the version out for the latest)")


def _dataset_intact(dataset: DatasetVersion) -> bool:
    """Whether every file of ``dataset`` is in place with the content that was registered."""
    if not all(p.is_file() for p in dataset.file_paths()):
        return False
    digest = hashlib.sha256()
    for base, path in zip(dataset.files, dataset.file_paths()):
        digest.update(base.encode() + b"\0" + sha256_file(path).encode())
    return digest.hexdigest() == dataset.sha256


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _unique_basenames(paths: Sequence[Path]) -> list[str]:
    names: list[str] = []
    for index, path in enumerate(paths):
        base = path.name
        names.append(base if base not in names else f"{index}_{base}")
    return names


def held_data(path: Path) -> str:
    """What data a workspace folder holds, in words ("" when none): registered versions and step outputs."""
    def count(folder: Path, depth: int) -> int:
        if not folder.is_dir():
            return 0
        return sum(1 for p in folder.glob("/".join(["*"] * depth)) if p.is_dir())

    found = [(count(path / "datasets", 2), "dataset version"), (count(path / "models", 2), "model version"),
             (count(path / "datastore" / "azureml", 1), "step output folder")]
    return ", ".join(f"{n} {what}{'s' if n > 1 else ''}" for n, what in found if n)
