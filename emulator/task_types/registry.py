"""The AutoML tasks by name: ``get_task("classification")``.

A leaf: the task modules are imported by name when first asked for, so the code the task objects
call (the engine, the worker code, the models, the ensembles) can look a task up without
importing the task objects (no file loop).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
