"""Canceling a local run from another process: ``amlstep runs cancel RUN_ID``.

The canceler records a request in the run's properties (``cancel_requested``: when, by whom). The
process running the run watches for it (:func:`cancellable`, which the local backend and
``Experiment.submit`` run under) and stops as Ctrl-C stops it: the step that runs ends
``Canceled``, so does the run, with the request as its error. It works across processes,
containers and PID namespaces sharing the workspace, since it goes through the run history, not
through signals between processes.

In the running process, a watcher thread polls the request; when the run runs in the main
thread, the watcher interrupts it there (a SIGINT to that thread, which a handler installed for
the run's duration turns into ``KeyboardInterrupt`` even when SIGINT is otherwise ignored, as
in a background job); in another thread, the run stops before its next step.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from typing import Any, Iterator

from .errors import RunCanceled

REQUEST = "cancel_requested"
POLL_SECONDS = 0.5


def request_cancel(workspace: Any, run_id: str) -> dict[str, Any]:
    """Record a cancel request for run ``run_id``; returns the request."""
    request = {"at": time.time(), "by": f"amlstep runs cancel (pid {os.getpid()} on {socket.gethostname()})"}
    workspace.merge_properties(run_id, {REQUEST: request})
    return request


def requested(record: Any) -> dict[str, Any] | None:
    """The cancel request recorded for a run, or None."""
    found = (record.properties or {}).get(REQUEST)
    return found if isinstance(found, dict) else None


class Watcher:
    """Watches the run history for a cancel request of one run (see :func:`cancellable`)."""

    def __init__(self, workspace: Any, run_id: str, poll_seconds: float = POLL_SECONDS) -> None:
        self.workspace = workspace
        self.run_id = run_id
        self.poll_seconds = poll_seconds
        self.request: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._active = True
        self._fired = False  # a SIGINT was sent to the main thread
        self._handled = threading.Event()
        self._main: int | None = None
        self._thread: threading.Thread | None = None

    @property
    def reason(self) -> str | None:
        """The run's error once canceled by request: ``canceled with amlstep runs cancel (pid 12 on host)``."""
        return f"canceled with {self.request.get('by')}" if self.request else None

    def check(self) -> None:
        """Raise RunCanceled when the run was asked to stop (for runs outside the main thread, between steps)."""
        if self.request is not None:
            raise RunCanceled(f"run {self.run_id} was canceled: {self.reason}")

    def start(self, main_ident: int | None) -> None:
        self._main = main_ident
        self._thread = threading.Thread(target=self._watch, name=f"amlstep-cancel-{self.run_id[:8]}", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                found = requested(self.workspace.get_run(self.run_id))
            except Exception:  # a busy or full workspace: look again later
                continue
            if found is None:
                continue
            with self._lock:
                if not self._active:
                    return
                self.request = found
                if self._main is not None:
                    self._fired = True
                    signal.pthread_kill(self._main, signal.SIGINT)
            return

    def handle(self, previous: Any, signum: int, frame: Any) -> None:
        """The SIGINT handler while the run runs: our own interrupt raises KeyboardInterrupt; any other SIGINT
        does what it did before (Ctrl-C, or nothing when SIGINT was ignored)."""
        if self._fired:
            self._handled.set()
            if self._active:
                raise KeyboardInterrupt
            return
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt

    def stop(self) -> None:
        with self._lock:
            self._active = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._fired and self._main is not None:
            self._handled.wait(1.0)  # our SIGINT, if still on its way, lands in our handler, not the previous one


@contextlib.contextmanager
def cancellable(workspace: Any, run_id: str, poll_seconds: float = POLL_SECONDS) -> Iterator[Watcher]:
    """Run the block so that ``amlstep runs cancel RUN_ID`` (from any process) stops it like Ctrl-C.

    In the main thread a cancel request raises KeyboardInterrupt where the block is; elsewhere call
    ``watcher.check()`` between units of work. ``watcher.reason`` is the run's error once canceled.
    """
    watcher = Watcher(workspace, run_id, poll_seconds)
    main = threading.current_thread() is threading.main_thread()
    previous: Any = None
    if main:
        previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, lambda signum, frame: watcher.handle(previous, signum, frame))
    watcher.start(threading.get_ident() if main else None)
    try:
        yield watcher
    finally:
        watcher.stop()
        if main and previous is not None:
            signal.signal(signal.SIGINT, previous)
