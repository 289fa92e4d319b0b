"""What can go wrong with the run history file, said in one line: damaged, full disk, locked, read-only."""

from __future__ import annotations

import errno
import math
import os
import shutil
import sqlite3
from pathlib import Path

from ..errors import WorkspaceError

LOCK_TIMEOUT_ENV = "AMLSTEP_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 60.0
LOW_SPACE_BYTES = 1 << 20
# SQLite's WAL-mode write lock is byte 120 of the -shm file; in rollback mode, RESERVED is byte 2**30 + 1.
_WAL_WRITE_LOCK_BYTE = 120
_RESERVED_BYTE = (1 << 30) + 1


class WorkspaceDamaged(WorkspaceError):
    """The run history file is not a valid SQLite database any more."""


class WorkspaceUnwritable(WorkspaceError):
    """The workspace can be read but not written now (disk full, read-only, locked by another process)."""


class WorkspaceLocked(WorkspaceUnwritable):
    """Another process held the run history's write lock longer than the lock timeout."""


MAX_LOCK_TIMEOUT = 7 * 24 * 3600.0  # SQLite's busy timeout is a 32-bit count of milliseconds


def lock_timeout() -> float:
    """How long a write waits for the database lock in total: ``$AMLSTEP_LOCK_TIMEOUT`` seconds, default 60.

    A value that is not a number of seconds from 0 to a week is an error naming the variable (it
    used to be taken silently: ``abc`` as 60, ``-5`` as 0).
    """
    value = os.environ.get(LOCK_TIMEOUT_ENV)
    if value is None or not value.strip():
        return DEFAULT_LOCK_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= MAX_LOCK_TIMEOUT:  # also refuses nan
        raise WorkspaceError(f"${LOCK_TIMEOUT_ENV} must be a number of seconds from 0 to {MAX_LOCK_TIMEOUT:g} (a week), "
                             f"got {value!r}; unset it for the default of {DEFAULT_LOCK_TIMEOUT:g}")
    return seconds


def free_bytes(path: Path) -> int | None:
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return None
    return usage.free


def human_bytes(count: int | None) -> str:
    if count is None:
        return "unknown"
    size = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} bytes"


def no_space_message(workspace: Path) -> str:
    return (f"no space left on the device holding the workspace {workspace} ({human_bytes(free_bytes(workspace))} "
            f"free): free some space, or use a workspace on another disk (--workspace), and run again")


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def translate(exc: sqlite3.Error, db_path: Path, workspace: Path) -> WorkspaceError:
    """One line for an SQLite error on the run history: what happened, to which file, and what to do."""
    text = str(exc)
    low = text.lower()
    if "database or disk is full" in low or ("disk i/o error" in low and _low_space(workspace)):
        return WorkspaceUnwritable(no_space_message(workspace))
    if "readonly" in low or "read-only" in low:
        return WorkspaceUnwritable(f"the run history {db_path} is read-only (SQLite: {text}); make the workspace "
                                   f"writable to record runs and registrations")
    if "locked" in low or "busy" in low:
        return WorkspaceLocked(locked_message(db_path, None))
    if "disk i/o error" in low:
        return WorkspaceError(f"cannot read or write the run history {db_path}: disk I/O error (SQLite); check the "
                              f"disk and the file's permissions, then run `amlstep workspace check`")
    if "unable to open database" in low:
        return WorkspaceError(f"cannot open the run history {db_path} (SQLite: {text})")
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, (sqlite3.OperationalError,
                                                                         sqlite3.IntegrityError,
                                                                         sqlite3.ProgrammingError)):
        return WorkspaceDamaged(damaged_message(db_path, text))
    if "malformed" in low or "not a database" in low or "corrupt" in low:
        return WorkspaceDamaged(damaged_message(db_path, text))
    return WorkspaceError(f"the run history {db_path}: SQLite error: {text}")


def damaged_message(db_path: Path, what: str) -> str:
    return (f"the run history {db_path} is damaged (SQLite: {what}); run `amlstep workspace check` to see what is "
            f"intact and `amlstep workspace check --repair` to rebuild it, or restore amlstep.db from a backup")


def unreadable_row_message(db_path: Path, what: str) -> str:
    return (f"the run history {db_path} holds a row amlstep cannot read ({what}); run `amlstep workspace check` "
            f"to list such rows and `amlstep workspace check --repair` to mend them (the original is kept)")


def _low_space(workspace: Path) -> bool:
    free = free_bytes(workspace)
    return free is not None and free < LOW_SPACE_BYTES


def locked_message(db_path: Path, waited: float | None) -> str:
    holders = lock_holders(db_path)
    who = ""
    if holders:
        who = "; held by " + ", ".join(f"process {pid}" + (f" ({command})" if command else "") for pid, command in holders)
    elif holders is not None:
        who = "; the holder is not visible from here (another container or machine?)"
    waited_text = f" for {waited:g} s" if waited is not None else ""
    return (f"the workspace {db_path.parent} is locked: another process has held the run history's write lock"
            f"{waited_text}{who}. Wait for it to finish, or stop it (a stopped job: `fg`; an open `sqlite3` shell: "
            f"end its transaction), then try again; ${LOCK_TIMEOUT_ENV} sets how long to wait")


def lock_holders(db_path: Path) -> list[tuple[int, str]] | None:
    """Processes holding SQLite's write lock on ``db_path`` (from ``/proc/locks``); ``None`` if unknowable."""
    targets: dict[int, int] = {}
    for path, byte in ((Path(f"{db_path}-shm"), _WAL_WRITE_LOCK_BYTE), (db_path, _RESERVED_BYTE)):
        try:
            targets[os.stat(path).st_ino] = byte
        except OSError:
            pass
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    found: list[tuple[int, str]] = []
    for line in lines:
        fields = line.split()
        if "->" in fields:  # a process waiting for a lock, not holding it
            continue
        try:
            kind, pid_text, ident, start, end = fields[1], fields[4], fields[5], fields[6], fields[7]
            inode = int(ident.rsplit(":", 1)[1])
            pid = int(pid_text)
        except (IndexError, ValueError):
            continue
        if kind != "POSIX" or inode not in targets or fields[3] != "WRITE":
            continue
        try:
            low, high = int(start), (int(end) if end != "EOF" else 1 << 62)
        except ValueError:
            continue
        if low <= targets[inode] <= high and pid > 0 and pid not in [p for p, _ in found]:
            found.append((pid, _command(pid)))
    return found


def _command(pid: int) -> str:
    if pid == os.getpid():
        return "this process"
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return " ".join(raw.replace(b"\0", b" ").decode(errors="replace").split())[:120]
