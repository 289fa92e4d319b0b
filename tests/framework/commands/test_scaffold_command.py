"""amlstep new-plugin: the generated package installs, is discovered, and its own tests pass."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from framework.commands.scaffold import new_plugin, plugin_files
from framework.errors import StepDefinitionError

NAME = "dataprep_scaffoldcheck"
DIST = "amlstep-dataprep-scaffoldcheck"


def test_writes_a_complete_package(tmp_path, cli):
    run = cli(tmp_path / "ws", "new-plugin", NAME, str(tmp_path / "plugins"), "--label", "Outcome")
    assert run.exit_code == 0, run.output
    root = tmp_path / "plugins" / NAME
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert files == ["README.md", "pipeline.py", "pyproject.toml", f"src/{NAME}/__init__.py", f"tests/test_{NAME}.py"]
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["name"] == DIST
    assert project["project"]["entry-points"]["amlstep"] == {NAME: NAME}
    assert "amlstep" in project["project"]["dependencies"]
    test = (root / "tests" / f"test_{NAME}.py").read_text()
    assert "@parametrize_with_checks([STEP]" in test and "label=LABEL" in test
    module = (root / "src" / NAME / "__init__.py").read_text()
    assert 'LABEL = "Outcome"' in module and 'Output("learned", DataType.LEARNED' in module
    assert 'label_column_name="Outcome"' in (root / "pipeline.py").read_text()
    # the dataset is named after the table (scaffoldcheck), not after the step (dataprep_scaffoldcheck_ds)
    assert 'scaffoldcheck_ds = Dataset("scaffoldcheck_ds"' in (root / "pipeline.py").read_text()
    assert "amlstep datasets register scaffoldcheck_ds path/to/your.csv" in run.output
    assert f"pip install -e {tmp_path / 'plugins' / NAME}" in run.output
    for source in plugin_files(NAME).values():
        compile(source, "generated", "exec") if not source.startswith(("[", "#")) else None


def test_refuses_the_name_of_an_installed_step(tmp_path, cli):
    run = cli(tmp_path / "ws", "new-plugin", "dataprep_titanic", str(tmp_path / "plugins"))
    assert run.exit_code == 2
    assert ("a step named 'dataprep_titanic' is already installed, by dataprep_titanic (amlstep); step names "
            "are unique: choose another NAME") in run.stderr
    assert not (tmp_path / "plugins").exists()


def test_any_label_becomes_valid_code_and_a_hyphen_is_announced(tmp_path, cli):
    run = cli(tmp_path / "ws", "new-plugin", "dataprep-odd", str(tmp_path), "--label", 'it"s \\ odd')
    assert run.exit_code == 0, run.output
    assert "Wrote step plugin 'dataprep_odd' (a Python module name: 'dataprep-odd' with '-' as '_')" in run.output
    root = tmp_path / "dataprep_odd"
    for path in [root / "pipeline.py", root / "tests" / "test_dataprep_odd.py"]:
        compile(path.read_text(), str(path), "exec")
    assert 'label_column_name="it\\"s \\\\ odd"' in (root / "pipeline.py").read_text()


def test_refuses_bad_names_and_existing_folders(tmp_path):
    with pytest.raises(StepDefinitionError, match="is not valid"):
        new_plugin("9lives", tmp_path)
    assert new_plugin("my-plugin", tmp_path).name == "my_plugin"
    with pytest.raises(StepDefinitionError, match="already exists and is not empty"):
        new_plugin("my_plugin", tmp_path)
    new_plugin("my_plugin", tmp_path, force=True)


@pytest.fixture
def installed_plugin(tmp_path):
    root = new_plugin(NAME, tmp_path, label="Outcome")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check", "-e", str(root)]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    try:
        yield root
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "-y", DIST], capture_output=True,
                       timeout=300)


def test_generated_plugin_installs_and_its_tests_pass(installed_plugin):
    root = installed_plugin
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
                           capture_output=True, text=True, timeout=300, cwd=root)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    # every contract check runs (the label check too: new-plugin knows the label), none is skipped, and
    # the Azure SDK's deprecation warnings stay out of the plugin author's test summary
    assert "test_step_contract[dataprep_scaffoldcheck-check_keeps_label]" not in tests.stdout
    assert re.search(r"^\d+ passed in ", tests.stdout.splitlines()[-1]), tests.stdout[-2000:]
    assert "warning" not in tests.stdout.lower(), tests.stdout[-3000:]
    listed = amlstep(root / "ws", "plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    steps = {s["name"]: s for s in json.loads(listed.stdout)["steps"]}
    assert steps[NAME]["plugin"] == f"{NAME} ({DIST})"
    assert [p["name"] for p in steps[NAME]["params"]] == ["drop_columns"]


def amlstep(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script in a fresh process (it sees the just-installed plugin)."""
    command = [str(Path(sys.executable).with_name("amlstep")), "--workspace", str(workspace), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_generated_pipeline_runs_offline_and_predicts(installed_plugin, tmp_path):
    import pandas as pd

    rows = 120
    frame = pd.DataFrame({
        "id": range(rows), "colour": ["red", "blue", "green", " red"] * (rows // 4),
        "size": [float(i % 7) for i in range(rows)], "Outcome": [i % 7 > 3 for i in range(rows)],
    })
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    ws = tmp_path / "ws"
    assert amlstep(ws, "datasets", "register", "scaffoldcheck_ds", str(data)).returncode == 0
    run = amlstep(ws, "run", str(installed_plugin), "-p", "iterations=2", "--json", "--quiet")
    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads(run.stdout)["status"] == "Completed"
    new = tmp_path / "new.csv"
    frame.drop(columns=["Outcome"]).head(5).to_csv(new, index=False)
    predicted = amlstep(ws, "predict", "ScaffoldcheckModel", str(new), "--out", str(tmp_path / "p.csv"))
    assert predicted.returncode == 0, predicted.stderr
    assert "predicted_Outcome" in (tmp_path / "p.csv").read_text().splitlines()[0]
    plan = amlstep(ws, "run", str(installed_plugin), "--backend", "azure", "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    assert '"primary_metric": "AUC_weighted"' in plan.stdout
