"""What every command shares: the CLI state, bad input as a message and an exit code, tables and JSON.

``framework.cli`` builds the command group; the bundled commands (``commands/browse.py``, the
``report``, ``predict``, ``new-plugin`` and ``workspace`` plugins) read the state and print
through these helpers, so none of them imports the CLI module itself.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Callable, Iterable

import click

from ..errors import AmlStepError
from ..manager import Plugins, get_plugin_manager

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNKNOWN = 3  # submitted (to Azure) but not followed to its end: the run's state is unknown here


class State:
    """What every command shares: the workspace path and the plugins, built on first use."""

    def __init__(self, workspace: str | None, plugins: Plugins | None) -> None:
        self.workspace_path = workspace
        self._plugins = plugins
        self._workspace: Any = None

    @property
    def plugins(self) -> Plugins:
        if self._plugins is None:
            self._plugins = get_plugin_manager()
        return self._plugins

    @property
    def workspace(self) -> Any:
        if self._workspace is None:
            from ..workspace import LocalWorkspace

            self._workspace = LocalWorkspace(self.workspace_path)
        return self._workspace


pass_state = click.make_pass_decorator(State)


PROG = ["amlstep"]  # how amlstep was invoked (set by main), for the commands messages suggest


def invoked_as(argv0: str) -> str:
    """The command to suggest in messages: ``amlstep`` when that is what the shell finds, else the
    path the user typed (``.venv/bin/amlstep``)."""
    import os
    import shutil

    if os.path.basename(argv0) not in ("amlstep", "amlstep.exe"):
        return "amlstep"
    if os.sep not in argv0:
        return argv0
    found = shutil.which("amlstep")
    try:
        if found and os.path.samefile(found, argv0):
            return "amlstep"
    except OSError:
        pass
    return argv0


def suggested(message: str) -> str:
    """``message`` with the commands it suggests written as the user invoked amlstep."""
    return message if PROG[0] == "amlstep" else message.replace("`amlstep ", f"`{PROG[0]} ")


def fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    click.echo(f"Error: {suggested(message)}", err=True)
    sys.exit(code)


def handle_errors(function: Callable[..., Any]) -> Callable[..., Any]:
    """Turn amlstep errors into a one-line message and exit code 2."""
    import functools

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except AmlStepError as exc:
            fail(str(exc))

    return wrapper


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    grid = Table(title=title, show_lines=False)
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*["" if v is None else str(v) for v in row])
    console = Console()
    if not console.is_terminal:
        console = Console(width=240)
    console.print(grid)


def when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else ""


def seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}s"
