"""Children run in worker processes; one past its time limit is killed, even inside native code."""

import time

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
