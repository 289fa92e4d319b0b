"""Children run in worker processes; one past its time limit is killed, even inside native code."""

import time

import pytest

from emulator import tasks
from emulator.worker import POOL, call, run_guarded


def test_a_hanging_task_is_killed_at_its_deadline():
    started = time.perf_counter()
    outcome = run_guarded("none", None, call(tasks.sleep), {"seconds": 60}, timeout=1.0)
    assert outcome.timed_out and not outcome.ok
    assert time.perf_counter() - started < 10
    # the pool replaces the killed worker: the next task runs
    assert run_guarded("none", None, call(tasks.sleep), {"seconds": 0}, timeout=60).ok


def test_errors_come_back_as_text():
    outcome = run_guarded("none", None, "emulator.tasks:no_such_task", {}, timeout=60)
    assert not outcome.ok and "AttributeError" in outcome.error


def test_workers_are_reused():
    run_guarded("none", None, call(tasks.sleep), {"seconds": 0}, timeout=60)
    idle = list(POOL._idle)
    run_guarded("none", None, call(tasks.sleep), {"seconds": 0}, timeout=60)
    assert set(map(id, POOL._idle)) & set(map(id, idle))


def test_a_task_on_a_worker_still_starting_stops_at_its_timeout_and_keeps_the_worker():
    """The task's time limit covers the worker's start: a task whose worker has not started when its time is up is
    stopped then (not once the worker is ready), and the worker, not at fault, is kept."""
    import socket
    from multiprocessing.connection import Connection
    from types import SimpleNamespace

    from emulator.worker import Worker

    ours, theirs = socket.socketpair()  # nobody ever says "ready" on the other end
    worker = Worker.__new__(Worker)
    worker.conn, worker.ready, worker.keys = Connection(ours.detach()), False, []
    worker.process = SimpleNamespace(poll=lambda: None)
    outcome = worker.run("key", None, "emulator.tasks:sleep", {"seconds": 1}, timeout=0.05)
    assert outcome.timed_out and not outcome.ok
    assert outcome.error == "stopped after 0.1 s (the worker process was still starting)"
    assert worker.alive()
    theirs.close()
    worker.conn.close()


@pytest.mark.slow
def test_ctrl_c_does_not_reach_a_worker_and_an_interrupted_task_kills_it(monkeypatch):
    """Ctrl-C goes to the whole process group: a worker must not die printing a KeyboardInterrupt traceback
    over the live display. The parent, which gets it too, kills a worker it interrupted while busy: that
    worker never goes back to the pool (its late answer would be taken for the next task's)."""
    import os
    import signal

    from emulator.worker import Worker

    worker = Worker()
    try:
        worker.wait_ready()
        os.kill(worker.process.pid, signal.SIGINT)
        outcome = worker.run("none", None, call(tasks.sleep), {"seconds": 0}, timeout=60)
        assert outcome.ok, outcome.error
        assert worker.alive()

        def interrupted(timeout=None):
            raise KeyboardInterrupt

        monkeypatch.setattr(worker.conn, "poll", interrupted)
        try:
            worker.run("none", None, call(tasks.sleep), {"seconds": 30}, timeout=60)
        except KeyboardInterrupt:
            pass
        assert not worker.alive()
    finally:
        worker.stop()
