import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from framework.cli import make_cli

TOY_PIPELINE = """
from framework import Pipeline, PipelineParameter, Step

pipeline = Pipeline(
    [Step("make_table", params={"rows": PipelineParameter("rows", 3)}), Step("fit", inputs={"table": "table"}),
     Step("score", inputs={"model": "model"})],
    experiment="toys", outputs={"final": "metrics"},
)
"""


@pytest.fixture
def cli(toy_plugins, workspace):
    runner = CliRunner()
    app = make_cli(toy_plugins)

    def invoke(*args):
        return runner.invoke(app, ["--workspace", str(workspace.path), *args])

    return invoke


@pytest.fixture
def toy_pipeline(tmp_path):
    folder = tmp_path / "toys"
    folder.mkdir()
    (folder / "pipeline.py").write_text(TOY_PIPELINE)
    return folder


def test_plugins_json_lists_ports_and_params(cli):
    result = cli("plugins", "--json")
    assert result.exit_code == 0
    steps = {s["name"]: s for s in json.loads(result.stdout)["steps"]}
    assert steps["dataprep_titanic"]["inputs"] == [
        {"name": "titanic_ds", "type": "tabular", "optional": False,
         "description": "raw Titanic passengers (Kaggle train.csv columns)"}]
    assert steps["register_model"]["allow_reuse"] is False
    assert steps["make_table"]["params"][0]["default"] == 3 or steps["make_table"]["params"][0]["default"] == 4


def test_plugins_text(cli):
    result = cli("plugins")
    assert "dataprep_titanic  [dataprep_titanic (amlstep)]" in result.stdout
    assert "  param model_name: str (required)" in result.stdout


def test_run_json_then_history_and_download(cli, toy_pipeline, tmp_path):
    result = cli("run", str(toy_pipeline), "--backend", "local", "--json", "--param", "rows=5")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "Completed"
    assert [(s["name"], s["status"], s["reused"]) for s in data["steps"]] == [
        ("make_table", "Completed", False), ("fit", "Completed", False), ("score", "Completed", False)]
    assert json.load(open(data["outputs"]["final"])) == {"score": 0.5}
    assert data["params"] == {"rows": 5}

    listed = json.loads(cli("runs", "list", "--json").stdout)
    assert [r["id"] for r in listed] == [data["run_id"]]
    shown = json.loads(cli("runs", "show", data["run_id"], "--json").stdout)
    assert [s["name"] for s in shown["steps"]] == ["make_table", "fit", "score"]
    assert shown["steps"][0]["metrics"] == {"rows": 5}
    text = cli("runs", "show", data["run_id"][:8]).stdout
    assert "make_table" in text and "Completed" in text

    downloaded = cli("download", data["run_id"], "final", str(tmp_path / "dl"))
    assert downloaded.exit_code == 0
    assert json.load(open(downloaded.stdout.strip())) == {"score": 0.5}
    again = cli("download", data["run_id"], "final", str(tmp_path / "dl"))
    assert again.exit_code == 2 and "already exists; pass --overwrite to replace it" in again.stderr


def test_bad_input_exits_2_with_one_line(cli, toy_pipeline):
    result = cli("run", str(toy_pipeline), "--param", "rowz=5")
    assert result.exit_code == 2
    assert result.stderr == ("Error: unknown pipeline parameter 'rowz' (did you mean 'rows'?); pipeline parameters: "
                             "rows\n")
    assert cli("runs", "show", "does-not-exist").exit_code == 2
    assert cli("run", str(toy_pipeline), "--param", "novalue").exit_code == 2
    assert cli("run", str(toy_pipeline), "--backend", "nowhere").exit_code == 2


def test_failed_run_exits_1(cli, tmp_path):
    (tmp_path / "bad.py").write_text(
        "from framework import Pipeline, Step\n"
        "pipeline = Pipeline([Step('make_table'), Step('explode', inputs={'table': 'table'})])\n")
    result = cli("run", str(tmp_path / "bad.py"), "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == "Failed"


def test_pipeline_argument_errors(cli, tmp_path):
    assert "has no pipeline.py" in cli("run", str(tmp_path)).stderr
    (tmp_path / "empty.py").write_text("x = 1\n")
    assert "defines neither `pipeline = Pipeline(...)` nor a create_pipeline() function" in cli(
        "run", str(tmp_path / "empty.py")).stderr
    assert "no pipeline at 'not.a.module'" in cli("run", "not.a.module").stderr


def test_datasets_and_models(cli, tmp_path):
    source = tmp_path / "d.csv"
    source.write_text("x,y\n1,2\n")
    assert cli("datasets", "register", "d", str(source)).stdout == "Registered version 1 of dataset d (1 file(s))\n"
    assert "already has this content" in cli("datasets", "register", "d", str(source)).stdout
    listed = json.loads(cli("datasets", "list", "--json").stdout)
    assert [(d["name"], d["version"]) for d in listed] == [("d", 1)]
    assert cli("datasets", "register", "../d", str(source)).exit_code == 2
    assert json.loads(cli("models", "list", "--json").stdout) == []


def test_datasets_register_refuses_a_file_given_twice_naming_it_as_given(cli, tmp_path, monkeypatch):
    (tmp_path / "wine.csv").write_text("x,y\n1,2\n")
    monkeypatch.chdir(tmp_path)
    twice = cli("datasets", "register", "wine_ds", "wine.csv", "wine.csv")
    assert (twice.exit_code, twice.stderr) == (2, "Error: dataset 'wine_ds': wine.csv is given twice; give each file once\n")
    assert "./wine.csv is given twice (first as wine.csv)" in cli("datasets", "register", "wine_ds", "wine.csv",
                                                                 "./wine.csv").stderr
    assert json.loads(cli("datasets", "list", "--json").stdout) == []


def test_help_imports_nothing_heavy():
    """`amlstep --help` is fast because it imports none of the heavy libraries (what is checked, not a time)."""
    code = ("import sys\n"
            "from framework.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('azureml', 'azure.ai.ml', 'mlflow', 'sklearn', 'xgboost', 'pandas', 'matplotlib')\n"
            "         if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out, out


# -- help and messages ---------------------------------------------------------------------------
def _all_commands():
    from framework import get_plugin_manager

    plugins = get_plugin_manager()
    app = make_cli(plugins)
    plugins.hook.register_commands(cli=app)
    found = [((), app)]
    for name, command in app.commands.items():
        found.append(((name,), command))
        for sub, child in getattr(command, "commands", {}).items():
            found.append(((name, sub), child))
    return app, found


def test_help_at_80_columns_cuts_no_command_summary():
    app, found = _all_commands()
    for path, command in found:
        if not getattr(command, "commands", None):
            continue
        shown = CliRunner().invoke(app, [*path, "--help"], terminal_width=80).stdout
        listed = shown.split("Commands:\n", 1)[1].splitlines()
        assert listed and not [line for line in listed if line.rstrip().endswith("...")], (path, listed)


def test_every_option_says_what_it_does():
    _, found = _all_commands()
    undocumented = [(" ".join(path), param.opts[0]) for path, command in found for param in command.params
                    if isinstance(param, __import__("click").Option) and not param.help and param.name != "help"]
    assert undocumented == []


def test_resume_help_names_both_statuses_it_accepts():
    app, _ = _all_commands()
    shown = CliRunner().invoke(app, ["run", "--help"], terminal_width=200).stdout
    assert "Continue a Failed or Canceled run" in shown


def test_messages_suggest_the_command_as_it_was_invoked(tmp_path):
    import shutil

    from framework.cli import invoked_as

    assert invoked_as("amlstep") == "amlstep"
    assert invoked_as(".venv/bin/amlstep") == ".venv/bin/amlstep"
    assert invoked_as("/usr/lib/python3/site-packages/framework/cli.py") == "amlstep"
    # a copy of the console script, run by a relative path that the shell would not find as `amlstep`
    script = shutil.which("amlstep") or str(Path(sys.executable).with_name("amlstep"))
    (tmp_path / "bin").mkdir()
    shutil.copy(script, tmp_path / "bin" / "amlstep")
    done = subprocess.run(["bin/amlstep", "--workspace", str(tmp_path / "ws"), "runs", "show", "no-such-run"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "see `bin/amlstep runs list`" in done.stderr, done.stderr


def test_python_dash_m_runs_the_commands_that_read_the_cli_state(tmp_path):
    """``python -m framework.cli`` is one module, not two: report found no workspace state and asserted."""
    done = subprocess.run([sys.executable, "-m", "framework.cli", "--workspace", str(tmp_path / "ws"), "report", "abcd"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "AssertionError" not in done.stderr
    assert done.stderr.startswith("Error: run 'abcd' does not exist"), done.stderr
