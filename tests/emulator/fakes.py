"""A clock and a task runner for tests of the AutoML loop's budget that never depend on the machine's speed.

``ScriptedRunner`` runs every task for real, in the test's process (the tests give it tiny data), and
makes it last a scripted number of seconds on a ``FakeClock``: a task scripted to take longer than its
timeout is stopped at the timeout, as a worker process would be. ``run_automl(..., clock=clock,
runner=ScriptedRunner.factory(clock, seconds))`` then runs a whole experiment in fake time.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from emulator.worker import TaskOutcome


class FakeClock:
    """Seconds that pass only when a test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


#: ``seconds(kind, algorithm)``: how long a child's cross-validation (``"cv"``) or its model (``"refit"``) takes.
Script = Callable[[str, str], float]


class ScriptedRunner:
    """Runs the experiment's tasks in this process; each lasts what ``seconds`` says, on ``clock``."""

    def __init__(self, clock: FakeClock, data: Any, seconds: Script, model_bytes: int = 0) -> None:
        self.clock, self.data, self.seconds, self.model_bytes = clock, data, seconds, model_bytes
        self.calls: list[tuple[str, list[str], float | None, str]] = []  # (kind, algorithms, timeout, outcome)

    @classmethod
    def factory(cls, clock: FakeClock, seconds: Script, runners: list[ScriptedRunner] | None = None,
                model_bytes: int = 0) -> Callable[[str, Any], ScriptedRunner]:
        """What ``run_automl(runner=...)`` takes; the runner made is appended to ``runners``. Every model it
        makes comes back as ``model_bytes`` bytes (what a worker's answer would weigh)."""
        def make(key: str, data: Any) -> ScriptedRunner:
            runner = cls(clock, data, seconds, model_bytes)
            if runners is not None:
                runners.append(runner)
            return runner

        return make

    def __call__(self, target: str, kwargs: dict[str, Any], timeout: float | None,
                 count_startup: bool = True) -> TaskOutcome:
        function = target.partition(":")[2]
        if function == "cross_validate":
            kind, algorithms = "cv", [kwargs["spec"]["algorithm"]]
            cv = self.seconds("cv", algorithms[0])
            took = cv + (self.seconds("refit", algorithms[0]) if kwargs.get("with_model") else 0.0)
        else:
            kind, algorithms = "refit", [spec["algorithm"] for spec in kwargs["specs"]]
            took = sum(self.seconds("refit", a) for a in algorithms)
        if timeout is not None and took > timeout:
            self.clock.advance(timeout)
            self.calls.append((kind, algorithms, timeout, "stopped"))
            return TaskOutcome(False, timed_out=True, seconds=timeout, error=f"stopped after {timeout:.1f} s")
        module, _, name = target.partition(":")
        value = getattr(importlib.import_module(module), name)(self.data, **kwargs)
        self.clock.advance(took)
        self.calls.append((kind, algorithms, timeout, "ok"))
        models = len(value) if kind == "refit" else int(value.get("model") is not None)
        if kind == "cv":
            value["fit_time"] = cv
            if "refit_time" in value:
                value["refit_time"] = took - cv
        return TaskOutcome(True, value=value, seconds=took, nbytes=models * self.model_bytes)
