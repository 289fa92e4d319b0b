"""AutoML tasks as objects, chosen by name: ``get_task("classification")``.

Each task (``classification``, ``regression``...) is one ``Task`` object holding what differs
between tasks: its metrics and primary-metric rules, its splits, its models under Azure's names,
its guardrails, what its ensembles need, its report plots and its prediction shape. Adding a task
is adding a module here and a line to ``registry._REGISTRY``, not editing the engine.
"""

from __future__ import annotations

from .base import Task
from .registry import all_tasks, get_task, task_names

__all__ = ["Task", "all_tasks", "get_task", "task_names"]
