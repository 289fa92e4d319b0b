"""Is the process behind a run still alive? Judged by a lock the kernel releases when the process dies.

A run started in a workspace holds a *lease*: a file ``.live/<pid>-<token>.lock`` on which its
process keeps an exclusive ``flock`` for the whole run. The run's step runs and child runs started
by the same process share it. Any process sharing the workspace — in another PID namespace or
container included — can tell whether the lease is held: trying the same lock fails while the
run's process holds it, and succeeds once the run ended or the kernel released it (exit, crash,
``kill -9``). Process ids and start times are kept only as a hint, for people and for runs
recorded before leases existed. Staging folders carry the lease of the process that made them.

The lease file is written whole when it is created (4 KiB, padded): a run that cannot record its
end (disk full) leaves a *note* in it by overwriting those bytes, then releases it; whoever finds
the lease released records the note as the run's error.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no flock; liveness falls back to the pid hint
    fcntl = None  # type: ignore[assignment]

LIVE_DIR = ".live"
LEASE_SIZE = 4096
ALIVE, DEAD, GONE, UNKNOWN = "alive", "dead", "gone", "unknown"


def boot_id() -> str | None:
    """The running kernel's boot id: the same in every container and PID namespace of one machine."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (Linux ``/proc``), to tell it from a later process with the same pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_alive(pid: int | None, started: str | None) -> bool:
    """The old hint: is ``pid`` (started at ``started``) alive in *this* PID namespace?"""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return started is None or process_start(pid) in (None, started)


@dataclass
class Lease:
    """This process's lease on one workspace."""

    name: str
    path: Path
    fd: int
    pid: int

    def note(self, text: str) -> None:
        """Leave ``text`` for whoever finds this lease released (overwrites bytes already on disk)."""
        info = _read_info(self.fd)
        info["note"] = text[:1500]
        data = json.dumps(info).encode()[: LEASE_SIZE - 1]
        try:
            _pwrite(self.fd, data.ljust(LEASE_SIZE, b" "))
            os.fsync(self.fd)
        except OSError:
            pass


_process_leases: dict[Path, Lease] = {}
_run_leases: dict[tuple[Path, str], Lease] = {}
_guard = threading.RLock()
HEARTBEAT_SECONDS = 5.0
_heartbeat: dict[str, Any] = {"pid": None}


def _beat() -> None:
    """Touch every lease this process holds: its modification time says when the process was last seen alive
    (what a run killed with ``kill -9`` records as its end, instead of when someone noticed)."""
    with _guard:  # held while touching: a released lease's descriptor is closed (and may be reused) under it
        for lease in [*_process_leases.values(), *_run_leases.values()]:
            if lease.pid == os.getpid():
                try:
                    os.utime(lease.fd)
                except OSError:
                    pass


def _keep_beating() -> None:
    """Start this process's heartbeat thread (once per process: a forked child starts its own)."""
    with _guard:
        if _heartbeat["pid"] == os.getpid():
            return
        _heartbeat["pid"] = os.getpid()
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            _beat()

    threading.Thread(target=loop, name="amlstep-lease-heartbeat", daemon=True).start()


def last_seen(workspace: Path, name: str) -> float | None:
    """When the process holding lease ``name`` was last seen alive (its last heartbeat), if its file is there."""
    try:
        return (workspace / LIVE_DIR / f"{name}.lock").stat().st_mtime
    except OSError:
        return None


def process_lease(workspace: Path) -> Lease:
    """This process's lease on ``workspace`` (for staging folders), held until the process exits."""
    with _guard:
        lease = _process_leases.get(workspace)
        if lease is None or lease.pid != os.getpid():
            lease = _take(workspace)
            _process_leases[workspace] = lease
    _keep_beating()
    return lease


def take_run_lease(workspace: Path, run_id: str) -> Lease:
    """A new lease held for run ``run_id`` until ``release`` (or until the process dies)."""
    with _guard:
        lease = _take(workspace)
        _run_leases[(workspace, run_id)] = lease
    _keep_beating()
    return lease


def held_here(workspace: Path, name: str) -> bool:
    """Whether this process holds lease ``name`` (for a run or for its staging folders)."""
    pid = os.getpid()
    with _guard:
        leases = [lease for (path, _), lease in _run_leases.items() if path == workspace]
        leases += [lease for path, lease in _process_leases.items() if path == workspace]
    return any(lease.name == name and lease.pid == pid for lease in leases)


def release(workspace: Path, run_id: str, note: str | None = None) -> bool:
    """Let go of the lease taken for ``run_id`` (with ``note`` for whoever records its end); False if none."""
    with _guard:
        lease = _run_leases.pop((workspace, run_id), None)
        if lease is None or lease.pid != os.getpid():
            return False
        if note:
            lease.note(note)
        try:
            os.utime(lease.fd)  # last seen: now
        except OSError:
            pass
        os.close(lease.fd)  # the file stays: whoever opens the workspace next sees it released and removes it
    return True


def _take(workspace: Path) -> Lease:
    live = workspace / LIVE_DIR
    live.mkdir(exist_ok=True)
    pid = os.getpid()
    name = f"{pid}-{uuid.uuid4().hex[:12]}"
    # Locked under a temporary name, then renamed: nobody ever sees the lease file unlocked.
    temporary = live / f".new-{name}"
    fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        info = {"pid": pid, "process_start": process_start(pid), "host": socket.gethostname(), "boot_id": boot_id(),
                "started_at": time.time()}
        _pwrite(fd, json.dumps(info).encode().ljust(LEASE_SIZE, b" "))
        os.rename(temporary, live / f"{name}.lock")
    except BaseException:
        os.close(fd)
        temporary.unlink(missing_ok=True)
        raise
    return Lease(name, live / f"{name}.lock", fd, pid)


def _forget_in_child() -> None:
    """A forked child must not keep its parent's leases alive (or write notes into them). The parent's
    heartbeat thread does not exist here, and may have held the guard when the fork happened."""
    global _guard
    _guard = threading.RLock()
    for lease in [*_process_leases.values(), *_run_leases.values()]:
        try:
            os.close(lease.fd)
        except OSError:
            pass
    _process_leases.clear()
    _run_leases.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def _pwrite(fd: int, data: bytes) -> None:
    if hasattr(os, "pwrite"):
        os.pwrite(fd, data, 0)
    else:
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, data)


def _pread(fd: int, size: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, size, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, size)


def _read_info(fd: int) -> dict[str, Any]:
    try:
        data = _pread(fd, LEASE_SIZE).strip()
        info = json.loads(data) if data else {}
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


@dataclass
class Probe:
    """What a look at a lease found: ``state`` is alive, dead, gone (no file) or unknown (another machine)."""

    state: str
    info: dict[str, Any]


def probe(workspace: Path, name: str, *, remove_if_dead: bool = False) -> Probe:
    """Whether lease ``name`` is still held. With ``remove_if_dead`` a released lease file is deleted.

    A lease released on another machine (another kernel, seen through a network file system) is
    ``unknown``: whether that machine's locks are visible here depends on the file system.
    """
    if held_here(workspace, name):
        return Probe(ALIVE, {})
    if fcntl is None:
        return Probe(GONE, {})  # no flock here: the caller falls back to the pid hint
    path = workspace / LIVE_DIR / f"{name}.lock"
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return Probe(GONE, {})
    except OSError:
        return Probe(UNKNOWN, {})
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return Probe(ALIVE, {})
            return Probe(UNKNOWN, {})
        info = _read_info(fd)
        mine = boot_id()
        if info.get("boot_id") and mine and info["boot_id"] != mine:
            return Probe(UNKNOWN, info)
        if remove_if_dead:
            path.unlink(missing_ok=True)  # still holding the lock: nobody can be using it
        return Probe(DEAD, info)
    finally:
        os.close(fd)


def lease_of_staging(entry_name: str) -> str | None:
    """The lease a staging entry was made under (``<lease>.<token>``), ``None`` for older names."""
    lease, dot, _ = entry_name.partition(".")
    return lease if dot and "-" in lease else None


def leftover_new_leases(workspace: Path, older_than: float = 60.0) -> list[Path]:
    """Lease files a process was killed while creating (never renamed into place)."""
    live = workspace / LIVE_DIR
    if not live.is_dir():
        return []
    now = time.time()
    found = []
    for path in live.glob(".new-*"):
        try:
            if now - path.stat().st_mtime > older_than:
                found.append(path)
        except OSError:
            pass
    return found


def probe_file_released(path: Path) -> bool:
    """Whether nobody holds the lock on ``path`` (a lease file never renamed into place)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def lease_names(workspace: Path) -> list[str]:
    live = workspace / LIVE_DIR
    if not live.is_dir():
        return []
    return sorted(p.name[: -len(".lock")] for p in live.glob("*.lock") if not p.name.startswith("."))
