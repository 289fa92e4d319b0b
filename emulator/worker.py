"""Worker processes that fit child pipelines, so a child past its time limit can be stopped for real.

Every model fit (cross-validation of a child, the final refit) runs in a separate process. The
parent waits for the answer with a deadline; a child that runs past it is stopped with SIGKILL,
which also stops a hang inside native code (an OpenMP loop, a C extension) that an in-thread
check would never see. The worker is then replaced by a fresh one.

Workers are fresh interpreters (not forks: forking a process that has used OpenMP deadlocks; and
unlike multiprocessing's spawn they do not re-import the user's ``__main__``, so scripts need no
``if __name__ == "__main__"`` guard). They are kept in a per-process pool and reused across
experiments; the training data is sent once per worker and cached there by key. ``run_guarded`` is
a plain function of picklable arguments, so it runs the same way in a joblib thread, a loky process
or a Dask/Ray worker: wherever it runs, it drives a local worker process of that machine.
"""

from __future__ import annotations

import atexit
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

# Tasks the worker knows, by name: "module:function". The function gets (data, **kwargs).
_STARTUP_TIMEOUT = 120.0


class ChildTimeout(Exception):
    """A task ran past its deadline; its worker process was killed."""


@dataclass
class TaskOutcome:
    ok: bool
    value: Any = None
    error: str | None = None
    timed_out: bool = False
    seconds: float = 0.0
    traceback: str = ""
    """The worker's traceback of a failed task: for the log, never for an error message."""
    nbytes: int = 0
    """The size of the answer as it came from the worker (pickled): what saving a model it holds will write."""


def _serve(fd: int) -> None:  # pragma: no cover - runs in the worker process
    from multiprocessing.connection import Connection

    _worker_main(Connection(fd))


def _worker_main(conn: Any) -> None:  # pragma: no cover - runs in the worker process
    import importlib
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    # Preload what children use, so the first task does not pay for imports.
    for name in ("sklearn.ensemble", "sklearn.linear_model", "xgboost", "emulator.tasks"):
        try:
            importlib.import_module(name)
        except Exception:
            pass
    cache: dict[str, Any] = {}
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        kind = message[0]
        if kind == "stop":
            return
        if kind == "data":
            _, key, data = message
            if len(cache) >= 2:
                cache.pop(next(iter(cache)))
            cache[key] = data
            continue
        _, key, target, kwargs = message
        started = time.perf_counter()
        try:
            module, _, function = target.partition(":")
            fn = getattr(importlib.import_module(module), function)
            value = fn(cache.get(key), **kwargs)
            reply = ("ok", value, time.perf_counter() - started, "")
        except BaseException as exc:  # report, never die on a failing child
            reply = ("error", f"{type(exc).__name__}: {exc}", time.perf_counter() - started,
                     traceback.format_exc(limit=4))
        try:
            conn.send(reply)
        except Exception as exc:  # an unpicklable result
            conn.send(("error", f"cannot return the result: {type(exc).__name__}: {exc}", reply[2], ""))


# Ctrl-C in a terminal reaches the whole process group: a worker ignores it (from its first line, before any
# import), so that no worker prints a KeyboardInterrupt traceback over the live display; the parent, which
# does get it, stops its workers.
_WORKER_COMMAND = ("import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                   "from emulator.worker import _serve; _serve(int(sys.argv[1]))")


class Worker:
    """One spawned worker process and the data keys it holds."""

    def __init__(self) -> None:
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), PYTHONWARNINGS="ignore")
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WORKER_COMMAND, str(theirs.fileno())], pass_fds=[theirs.fileno()], env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        theirs.close()
        self.conn = Connection(ours.detach())
        self.keys: list[str] = []  # mirrors the worker's cache: at most 2, oldest evicted first
        self.ready = False

    def wait_ready(self, timeout: float = _STARTUP_TIMEOUT) -> None:
        if self.ready:
            return
        if not self.conn.poll(timeout):
            self.kill()
            raise RuntimeError("an AutoML worker process did not start in time")
        self.conn.recv()
        self.ready = True

    def alive(self) -> bool:
        return self.process.poll() is None

    def run(self, key: str, data: Any, target: str, kwargs: dict[str, Any], timeout: float | None,
            count_startup: bool = True) -> TaskOutcome:
        """``target(data, **kwargs)`` here; ``count_startup=False``: the timeout starts once the worker is ready.

        Interrupted (Ctrl-C, a canceled run), the worker is killed: it may be busy with the task, so it must
        not go back to the pool, whose next task would read this one's answer."""
        try:
            return self._run(key, data, target, kwargs, timeout, count_startup)
        except BaseException:
            self.kill()
            raise

    def _run(self, key: str, data: Any, target: str, kwargs: dict[str, Any], timeout: float | None,
             count_startup: bool) -> TaskOutcome:
        started = time.perf_counter()
        if count_startup and timeout is not None and not self.ready and not self.conn.poll(max(0.0, timeout)):
            # still starting when the task's time is up: the task is stopped, the worker (not its fault) kept
            return TaskOutcome(False, timed_out=True, seconds=time.perf_counter() - started,
                               error=f"stopped after {timeout:.1f} s (the worker process was still starting)")
        self.wait_ready()
        if not count_startup:
            started = time.perf_counter()
        if key not in self.keys:
            if len(self.keys) >= 2:
                self.keys.pop(0)
            self.conn.send(("data", key, data))
            self.keys.append(key)
        self.conn.send(("task", key, target, kwargs))
        remaining = None if timeout is None else max(0.0, timeout - (time.perf_counter() - started))
        if not self.conn.poll(remaining):
            self.kill()
            return TaskOutcome(False, timed_out=True, seconds=time.perf_counter() - started,
                               error=f"stopped after {timeout:.1f} s")
        try:
            answer = self.conn.recv_bytes()
            status, value, _, trace = pickle.loads(answer)
        except (EOFError, OSError) as exc:
            self.kill()
            return TaskOutcome(False, error=f"the worker process died ({type(exc).__name__}; exit code "
                                            f"{self.process.poll()})", seconds=time.perf_counter() - started)
        seconds = time.perf_counter() - started
        if status == "ok":
            return TaskOutcome(True, value=value, seconds=seconds, nbytes=len(answer))
        return TaskOutcome(False, error=str(value), seconds=seconds, traceback=trace)

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.conn.close()

    def stop(self) -> None:
        try:
            if self.alive():
                self.conn.send(("stop",))
                self.process.wait(timeout=2)
        except Exception:
            pass
        self.kill()


class WorkerPool:
    """Idle workers of this process, handed out one per running task."""

    def __init__(self) -> None:
        self._idle: list[Worker] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def warm(self, count: int) -> None:
        """Start workers in the background until ``count`` are idle (they import while we featurize)."""
        with self._lock:
            self._check_pid()
            self._idle = [w for w in self._idle if w.alive()]
            while len(self._idle) < count:
                self._idle.append(Worker())

    def acquire(self, key: str | None = None) -> Worker:
        """An idle worker: preferably one that already holds ``key``'s data, else a started one."""
        with self._lock:
            self._check_pid()
            self._idle = [w for w in self._idle if w.alive()]
            if self._idle:
                ranked = sorted(self._idle, key=lambda w: (key in w.keys, w.ready or w.conn.poll(0)))
                worker = ranked[-1]
                self._idle.remove(worker)
                return worker
        return Worker()

    def ready_count(self) -> int:
        """Idle workers that have finished starting."""
        with self._lock:
            return sum(1 for w in self._idle if w.alive() and (w.ready or w.conn.poll(0)))

    def release(self, worker: Worker) -> None:
        """Return ``worker`` to the pool (a killed one is dropped; ``warm`` replaces it)."""
        if worker.alive():
            with self._lock:
                self._idle.append(worker)

    def wait_ready(self) -> None:
        """Block until every idle worker has finished importing."""
        with self._lock:
            workers = list(self._idle)
        for worker in workers:
            try:
                worker.wait_ready()
            except RuntimeError:
                pass

    def shutdown(self) -> None:
        with self._lock:
            workers, self._idle = self._idle, []
        for worker in workers:
            worker.stop()

    def _check_pid(self) -> None:
        if os.getpid() != self._pid:  # inherited through fork: those workers are not ours
            self._idle, self._pid = [], os.getpid()


POOL = WorkerPool()
atexit.register(POOL.shutdown)


def run_guarded(key: str, data: Any, target: str, kwargs: dict[str, Any], timeout: float | None,
                count_startup: bool = True) -> TaskOutcome:
    """Run ``target(data, **kwargs)`` in a worker process of this machine, killed after ``timeout`` s
    (counted from when the task is sent: ``count_startup=False`` leaves out a new worker's start)."""
    worker = POOL.acquire(key)
    try:
        return worker.run(key, data, target, kwargs, timeout, count_startup)
    finally:
        POOL.release(worker)


def call(fn: Callable[..., Any]) -> str:
    """The ``module:function`` name a worker uses to find ``fn``."""
    return f"{fn.__module__}:{fn.__qualname__}"
