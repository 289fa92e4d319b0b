"""The amlstep CLI with the plugins' commands, as ``main`` builds it (the Titanic run is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from framework import LocalWorkspace, Plugins, get_plugin_manager
from framework.cli import make_cli


def cli_with_commands(plugins: Plugins | None = None) -> click.Group:
    """The amlstep CLI as ``main`` builds it: core commands plus the plugins' commands."""
    plugins = plugins or get_plugin_manager()
    cli = make_cli(plugins)
    plugins.hook.register_commands(cli=cli)
    return cli


def invoke(workspace: LocalWorkspace | Path, *args: str, **kwargs: Any) -> Result:
    path = workspace.path if isinstance(workspace, LocalWorkspace) else workspace
    return CliRunner().invoke(cli_with_commands(), ["--workspace", str(path), *args], catch_exceptions=False,
                              **kwargs)


@pytest.fixture
def cli() -> Any:
    """``cli(workspace, *args)`` -> click Result of ``amlstep --workspace WS args...``."""
    return invoke
