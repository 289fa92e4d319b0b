"""AutoML tasks as objects, chosen by name: ``get_task("classification")``.

Each task (``classification``, ``regression``...) is one ``Task`` object holding what differs
between tasks: its metrics and primary-metric rules, its splits, its models under Azure's names,
its guardrails, what its ensembles need, its report plots and its prediction shape. Adding a task
is adding a module here and a line to ``_REGISTRY``, not editing the engine.
"""

from __future__ import annotations

import importlib

from .base import Task

# name -> "module:class", imported when first asked for (the modules are light anyway)
_REGISTRY: dict[str, str] = {
    "classification": "emulator.task_types.classification:Classification",
    "regression": "emulator.task_types.regression:Regression",
    "forecasting": "emulator.task_types.forecasting:Forecasting",
}
_INSTANCES: dict[str, Task] = {}


def task_names() -> tuple[str, ...]:
    """The tasks the emulator runs, in Azure's order."""
    return tuple(_REGISTRY)


def get_task(name: str) -> Task:
    """The task object named ``name`` (a ``KeyError`` naming the valid tasks otherwise)."""
    task = _INSTANCES.get(name)
    if task is None:
        if name not in _REGISTRY:
            raise KeyError(f"unknown AutoML task {name!r}; valid tasks: {', '.join(_REGISTRY)}")
        module, _, cls = _REGISTRY[name].partition(":")
        task = _INSTANCES[name] = getattr(importlib.import_module(module), cls)()
    return task


def all_tasks() -> list[Task]:
    return [get_task(name) for name in _REGISTRY]


__all__ = ["Task", "all_tasks", "get_task", "task_names"]
