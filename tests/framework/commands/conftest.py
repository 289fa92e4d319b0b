"""A Titanic pipeline run shared by the command tests (one small AutoML run per session)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from framework import LocalWorkspace, Plugins, get_plugin_manager, run_pipeline
from framework.cli import make_cli

REPO = Path(__file__).resolve().parents[3]
FAST = {"iterations": "3", "experiment_timeout_minutes": "1"}


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


@pytest.fixture(scope="session")
def titanic_run(tmp_path_factory: pytest.TempPathFactory, titanic_csv: Path) -> tuple[LocalWorkspace, Any]:
    """(workspace, result) of one completed Titanic pipeline run with 3 AutoML iterations."""
    ws = LocalWorkspace(tmp_path_factory.mktemp("titanic-run-ws"))
    ws.register_dataset("titanic_ds", [str(titanic_csv)])
    result = run_pipeline(REPO / "examples" / "titanic", params=FAST, workspace=ws)
    assert result.succeeded, result.error
    return ws, result
