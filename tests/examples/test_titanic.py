"""The seed's Titanic pipeline end to end, offline, through the CLI and the Python API."""

import json
import pickle

import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import FAST_AUTOML, REPO
from framework import get_run, load_pipeline, run_pipeline
from framework.cli import make_cli
from plugins.dataprep_titanic import prepare

TITANIC = REPO / "examples" / "titanic"


@pytest.fixture
def cli(plugins, titanic_workspace):
    app = make_cli(plugins)
    return lambda *args: CliRunner().invoke(app, ["--workspace", str(titanic_workspace.path), *args])


def fast(*extra):
    return [arg for name, value in FAST_AUTOML.items() for arg in ("--param", f"{name}={value}")] + list(extra)


@pytest.mark.slow
def test_cli_end_to_end(cli, titanic_test_csv, titanic_workspace):
    first = cli("run", str(TITANIC), "--backend", "local", "--json", *fast())
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert data["status"] == "Completed"
    assert [(s["name"], s["reused"]) for s in data["steps"]] == [
        ("dataprep", False), ("AutoML_Classification", False), ("register_model", False)]

    with open(data["outputs"]["metrics_output"]) as f:
        metrics = pd.DataFrame(json.load(f))
    assert "AUC_weighted" in metrics.index
    assert len(metrics.columns) == int(FAST_AUTOML["iterations"])
    assert all(0.5 < v[0] <= 1 for v in metrics.loc["AUC_weighted"])

    with open(data["outputs"]["model_output"], "rb") as f:
        model = pickle.load(f)
    proba = model.predict_proba(prepare(pd.read_csv(titanic_test_csv)))
    assert proba.shape == (418, 2)

    models = json.loads(cli("models", "list", "--json").stdout)
    assert [(m["name"], m["version"], m["run_id"]) for m in models] == [("TitanicSurvivalInitial", 1, data["run_id"])]

    second = json.loads(cli("run", str(TITANIC), "--json", *fast()).stdout)
    assert [(s["name"], s["reused"]) for s in second["steps"]] == [
        ("dataprep", True), ("AutoML_Classification", True), ("register_model", False)]
    other = json.loads(cli("run", str(TITANIC), "--json", *fast("--param", "model_name=Other")).stdout)
    assert other["status"] == "Completed"
    models = json.loads(cli("models", "list", "--json").stdout)
    assert [(m["name"], m["version"]) for m in models] == [
        ("Other", 1), ("TitanicSurvivalInitial", 1), ("TitanicSurvivalInitial", 2)]

    shown = json.loads(cli("runs", "show", data["run_id"], "--json").stdout)
    automl = next(s for s in shown["steps"] if s["name"] == "AutoML_Classification")
    assert len(automl["children"]) == int(FAST_AUTOML["iterations"])
    assert automl["children"][0]["properties"]["primary_metric"] == "AUC_weighted"


@pytest.mark.slow
def test_python_api(plugins, titanic_workspace, titanic_csv, tmp_path):
    result = run_pipeline(load_pipeline(TITANIC), workspace=titanic_workspace, plugins=plugins, params=FAST_AUTOML)
    assert result.succeeded
    run = get_run(result.run_id, titanic_workspace)
    path = run.get_pipeline_output("metrics_output").download(tmp_path)
    assert "AUC_weighted" in pd.DataFrame(json.load(open(path))).index
    model_path = run.get_pipeline_output("model_output").download(tmp_path)
    assert pickle.load(open(model_path, "rb")).predict(prepare(pd.read_csv(titanic_csv)))\
        .shape == (891,)
    automl = run.find_step_run("AutoML_Classification")[0]
    children = automl.get_children()
    assert {c.properties["run_algorithm"] for c in children} >= {"LightGBM"}
    assert "AUC_weighted" in children[0].get_metrics()


def test_csv_without_the_label_fails_automl_naming_the_column(plugins, workspace, titanic_csv, tmp_path):
    unlabeled = tmp_path / "no_label.csv"
    pd.read_csv(titanic_csv).drop(columns=["Survived"]).to_csv(unlabeled, index=False)
    workspace.register_dataset("titanic_ds", [str(unlabeled)])
    result = run_pipeline(load_pipeline(TITANIC), workspace=workspace, plugins=plugins, params=FAST_AUTOML)
    assert result.status == "Failed"
    assert [s.status for s in result.steps] == ["Completed", "Failed", "NotStarted"]
    assert "label column 'Survived' is not in the training data" in result.error
    assert "AutoML_Classification" in result.error
    history = workspace.get_run(result.run_id)
    assert history.status == "Failed"
    dataprep = workspace.get_run(result.steps[0].run_id)
    assert all((workspace.path / o["path"]).exists() for o in dataprep.outputs.values())


def test_offline_user_is_told_to_register_a_local_file(plugins, workspace, monkeypatch):
    import framework.workspace.sources as sources

    monkeypatch.setattr(sources, "DOWNLOAD_TIMEOUT_SECONDS", 2)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    from framework import WorkspaceError

    with pytest.raises(WorkspaceError, match="amlstep datasets register titanic_ds path/to/file.csv"):
        run_pipeline(load_pipeline(TITANIC), workspace=workspace, plugins=plugins, params=FAST_AUTOML)
    assert workspace.list_runs() == []
