"""The bundled commands reach the CLI through the register_commands hook, like third-party ones.

Pinned by behaviour (which command exists, which installed plugin adds it), not by module path.
"""

from __future__ import annotations

import subprocess
import sys

import click

from framework import get_plugin_manager
from framework.cli import make_cli


def commands_by_plugin(plugins) -> dict[str, str]:
    """command name -> the plugin that adds it through ``register_commands``."""
    found = {}
    for impl in plugins.pm.hook.register_commands.get_hookimpls():
        group = click.Group()
        impl.function(cli=group)
        found.update({name: impl.plugin_name for name in group.commands})
    return found


def test_commands_are_entry_point_plugins_of_amlstep():
    plugins = get_plugin_manager()
    found = commands_by_plugin(plugins)
    assert {command: found.get(command) for command in ("new-plugin", "report", "predict", "workspace")} == {
        "new-plugin": "new_plugin_command", "report": "report_command", "predict": "predict_command",
        "workspace": "workspace_command"}
    for command in ("new-plugin", "report", "predict", "workspace", "fake-azure"):
        assert plugins.distributions.get(found[command]) == "amlstep", command
    assert not set(found) & set(make_cli(plugins).commands), "a bundled plugin command is also a core command"
    assert plugins.distributions.get("progress") == "amlstep"  # the live progress display is a plugin too
    assert plugins.pm.get_plugin("progress") is not None


def test_help_lists_them_without_heavy_imports():
    code = ("import sys\nfrom framework.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('sklearn', 'xgboost', 'matplotlib', 'azureml', 'pandas') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("new-plugin", "report", "predict", "run", "workspace"):
        assert f"  {command} " in done.stdout
    assert "HEAVY []" in done.stdout
