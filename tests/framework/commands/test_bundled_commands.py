"""The bundled commands reach the CLI through the register_commands hook, like third-party ones."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata


def test_commands_are_entry_point_plugins():
    eps = {ep.name: ep.value for ep in metadata.entry_points(group="amlstep")}
    assert eps["new_plugin_command"] == "framework.commands.scaffold"
    assert eps["report_command"] == "framework.commands.report"
    assert eps["predict_command"] == "framework.commands.predict"
    assert eps["workspace_command"] == "framework.commands.workspace"
    assert eps["progress"] == "framework.progress"


def test_help_lists_them_without_heavy_imports():
    code = ("import sys\nfrom framework.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('sklearn', 'xgboost', 'matplotlib', 'azureml', 'pandas') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("new-plugin", "report", "predict", "run", "workspace"):
        assert f"  {command} " in done.stdout
    assert "HEAVY []" in done.stdout
