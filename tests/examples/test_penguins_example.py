"""The second dataset by swapping one plugin: dataprep_penguins, shipped as its own distribution.

Needs ``pip install -e examples/penguins/amlstep-penguins`` (done by .ci/run).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest

from framework import LocalWorkspace, get_plugin_manager, run_pipeline
from framework.commands.predict import predict
from framework.commands.report import build_report

REPO = Path(__file__).resolve().parents[2]
PENGUINS = REPO / "examples" / "penguins"
INSTALL = f"pip install -e {PENGUINS.relative_to(REPO) / 'amlstep-penguins'}"


@pytest.fixture(scope="module")
def installed() -> None:
    try:
        dist = metadata.distribution("amlstep-penguins")
    except metadata.PackageNotFoundError:
        pytest.fail(f"the amlstep-penguins distribution is not installed; run `{INSTALL}`")
    assert any(ep.group == "amlstep" and ep.name == "dataprep_penguins" for ep in dist.entry_points)


@pytest.fixture(scope="module")
def penguin_run(installed, tmp_path_factory):
    ws = LocalWorkspace(tmp_path_factory.mktemp("penguins-ws"))
    result = run_pipeline(PENGUINS, params={"iterations": "3"}, workspace=ws)
    return ws, result


def test_plugin_is_discovered_from_its_own_distribution(installed):
    plugins = get_plugin_manager()
    assert plugins.owner("dataprep_penguins") == "dataprep_penguins (amlstep-penguins)"


def test_swap_changes_only_the_preparation(installed):
    """Same AutoML and register_model plugins as the Titanic pipeline; only the first step differs."""
    from framework.api import load_pipeline

    titanic = load_pipeline(REPO / "examples" / "titanic")
    penguins = load_pipeline(PENGUINS)
    assert [s.plugin for s in titanic.steps][1:] == [s.plugin for s in penguins.steps][1:] == ["automl", "register_model"]
    assert [s.plugin for s in penguins.steps][0] == "dataprep_penguins"
    changed = {k for k in titanic.step("AutoML_Classification").params
               if titanic.step("AutoML_Classification").params[k] != penguins.step("AutoML_Classification").params[k]}
    assert changed == {"label_column_name"}


def test_runs_offline_end_to_end(penguin_run):
    ws, result = penguin_run
    assert result.succeeded, result.error
    automl = ws.get_run(result.step("AutoML_Classification").run_id)
    assert automl.properties["score"] > 0.9
    guardrails = {g["type"]: g for g in automl.properties["guardrails"]}
    assert guardrails["Missing feature values imputation"]["status"] == "Done"
    assert "sex" in guardrails["Missing feature values imputation"]["columns"]
    assert ws.get_model("PenguinSpecies").version == 1
    dataset = ws.get_dataset("penguins_ds")
    assert dataset.sources[0].endswith("penguins.csv")


def test_predicts_species_for_new_penguins(penguin_run, tmp_path):
    from amlstep_penguins import penguins_csv

    ws, _ = penguin_run
    new = pd.read_csv(penguins_csv()).drop(columns=["species"]).sample(25, random_state=3)
    path = tmp_path / "new_penguins.csv"
    new.to_csv(path, index=False)
    frame = predict(ws, get_plugin_manager(), "PenguinSpecies", path).frame
    assert len(frame) == 25
    assert set(frame["predicted_species"]) <= {"Adelie", "Chinstrap", "Gentoo"}
    assert [c for c in frame.columns if c.startswith("proba_")] == ["proba_Adelie", "proba_Chinstrap", "proba_Gentoo"]
    truth = pd.read_csv(penguins_csv()).loc[new.index, "species"].tolist()
    assert (frame["predicted_species"] == truth).mean() > 0.85


def test_report_has_multiclass_plots(penguin_run):
    ws, result = penguin_run
    html = build_report(ws, result.run_id)
    for plot in ("roc", "precision_recall", "confusion_matrix", "calibration", "feature_importance"):
        assert f"id='plot-{plot}'" in html
    assert "PenguinSpecies:1" in html


@pytest.mark.slow
def test_the_distributions_own_tests_pass(installed):
    tests = PENGUINS / "amlstep-penguins" / "tests"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
                          capture_output=True, text=True, timeout=300, cwd=tests.parent)
    assert done.returncode == 0, done.stdout[-3000:]


def test_pipeline_file_imports_no_backend():
    tree = ast.parse((PENGUINS / "pipeline.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported == {"framework", "amlstep_penguins"}
