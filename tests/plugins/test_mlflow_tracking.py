"""The bundled MLflow tracking plugin, read back from MLflow's own SQLite store with MLflow's API."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from framework import Pipeline, Step, get_plugin_manager, load_pipeline, run_pipeline
from tests.test_docs import snippet
from tests.toy_steps import ToySteps

REPO = Path(__file__).resolve().parents[2]

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed: pip install 'amlstep[mlflow]'")
from plugins.mlflow_tracking.tracker import mlflow_tracking_uri  # noqa: E402 (after the skip)


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite tracking store, its tables made once (MLflow's migrations take seconds)."""
    path = tmp_path_factory.mktemp("mlflow-store") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store: Path) -> str:
    """A fresh SQLite tracking store as $MLFLOW_TRACKING_URI; artifacts land in ./mlruns of a temporary folder."""
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def runs(uri: str, experiment: str) -> pd.DataFrame:
    with mlflow_tracking_uri(uri):
        return mlflow.search_runs(experiment_names=[experiment], order_by=["attributes.start_time ASC"])


def toy_pipeline(*steps: Step) -> Pipeline:
    return Pipeline(experiment="toys", steps=list(steps) or [
        Step("make_table", params={"rows": 6}, outputs={"table": "t"}),
        Step("fit", inputs={"table": "t"}, outputs={"model": "m"}),
        Step("score", inputs={"model": "m"}, outputs={"metrics": "s"}),
    ])


def test_off_by_default(workspace, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_pipeline(toy_pipeline(), workspace=workspace, plugins=get_plugin_manager(plugins=[ToySteps()]))
    assert result.succeeded
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


def test_a_run_nests_its_steps_with_parameters_metrics_status_and_duration(workspace, store):
    result = run_pipeline(toy_pipeline(), workspace=workspace, plugins=get_plugin_manager(plugins=[ToySteps()]))
    assert result.succeeded
    found = runs(store, "toys")
    pipeline = found[found["tags.amlstep.kind"] == "pipeline"]
    assert pipeline["tags.amlstep.run_id"].tolist() == [result.run_id]
    assert pipeline["status"].tolist() == ["FINISHED"]
    steps = found[found["tags.amlstep.kind"] == "step"].set_index("tags.mlflow.runName")
    assert list(steps.index) == ["make_table", "fit", "score"]
    assert set(steps["tags.mlflow.parentRunId"]) == {pipeline["run_id"].iloc[0]}
    assert steps.loc["make_table", "params.rows"] == "6"                    # its parameters
    assert steps.loc["make_table", "metrics.rows"] == 6                     # context.log
    assert steps.loc["score", "metrics.score"] == 0.5
    assert set(steps["status"]) == {"FINISHED"} and set(steps["tags.amlstep.reused"]) == {"false"}
    for step in result.steps:
        row = steps.loc[step.name]
        assert row["tags.amlstep.run_id"] == step.run_id
        took = (row["end_time"] - row["start_time"]).total_seconds()
        assert took == pytest.approx(step.duration, abs=0.002)
    # the toy model (a pickled dict, not an estimator) is kept as an artifact of its step
    client = mlflow.MlflowClient(store)
    assert [a.path for a in client.list_artifacts(steps.loc["fit", "run_id"])] == ["model"]


def test_a_rerun_with_reuse_logs_nothing_twice(workspace, store):
    plugins = get_plugin_manager(plugins=[ToySteps()])
    first = run_pipeline(toy_pipeline(), workspace=workspace, plugins=plugins)
    second = run_pipeline(toy_pipeline(), workspace=workspace, plugins=plugins)
    assert all(s.reused for s in second.steps)
    found = runs(store, "toys")
    later = found[found["tags.amlstep.run_id"].isin([s.run_id for s in second.steps])].set_index("tags.mlflow.runName")
    assert set(later["tags.amlstep.reused"]) == {"true"}
    earlier = found.set_index("tags.amlstep.run_id")["run_id"]
    for step in first.steps:
        assert later.loc[step.name, "tags.amlstep.reused_from_mlflow_run"] == earlier[step.run_id]
    assert later["metrics.rows"].isna().all()  # what a reused step logged is in the run it reuses
    client = mlflow.MlflowClient(store)
    assert client.list_artifacts(later.loc["fit", "run_id"]) == []


def test_a_failed_step_and_its_pipeline_are_failed_runs(workspace, store):
    pipeline = toy_pipeline(Step("make_table", outputs={"table": "t"}), Step("explode", inputs={"table": "t"}))
    result = run_pipeline(pipeline, workspace=workspace, plugins=get_plugin_manager(plugins=[ToySteps()]))
    assert result.status == "Failed"
    found = runs(store, "toys").set_index("tags.mlflow.runName")
    assert found.loc["explode", "status"] == "FAILED"
    assert "boom: the table is cursed" in found.loc["explode", "tags.amlstep.error"]
    assert found.loc[result.run_id, "status"] == "FAILED"


def test_a_tracking_server_that_fails_costs_one_warning_line_never_the_run(workspace, monkeypatch, capfd):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens on the discard port
    result = run_pipeline(toy_pipeline(), workspace=workspace, plugins=get_plugin_manager(plugins=[ToySteps()]))
    assert result.succeeded
    lines = [line for line in capfd.readouterr().err.splitlines() if "mlflow" in line.lower()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("warning: MLflow tracking to http://127.0.0.1:9 failed (")
    assert lines[0].endswith("this run goes on untracked")


def test_a_store_that_fails_midway_costs_one_warning_line(workspace, store, monkeypatch, capfd):
    def refuse(self, *args, **kwargs):
        raise ConnectionError("the tracking server went away")

    plugins = get_plugin_manager(plugins=[ToySteps()])
    run_pipeline(toy_pipeline(), workspace=workspace, plugins=plugins)  # the store exists
    capfd.readouterr()
    monkeypatch.setattr(mlflow.MlflowClient, "log_batch", refuse)
    result = run_pipeline(toy_pipeline(), workspace=workspace, plugins=plugins, reuse=False)
    assert result.succeeded
    err = capfd.readouterr().err
    assert err.count("warning: MLflow tracking") == 1
    assert "ConnectionError: the tracking server went away" in err


def test_run_mlflow_flag_and_no_mlflow(workspace, tmp_path, monkeypatch, empty_store):
    from framework.cli import make_cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    plugins = get_plugin_manager(plugins=[ToySteps()])
    cli = make_cli(plugins)
    plugins.hook.register_commands(cli=cli)
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")  # MLflow's default store, here; its tables made
    (tmp_path / "toys.py").write_text(
        "from framework import Pipeline, Step\n"
        "pipeline = Pipeline(experiment='toys', steps=[Step('make_table', outputs={'table': 't'})])\n")
    done = CliRunner().invoke(cli, ["run", "toys.py", "--mlflow"])
    assert done.exit_code == 0, done.output
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # MLflow's default store, here
    assert f"at {uri} (browse: mlflow ui --backend-store-uri {uri})" in done.stderr
    assert len(runs(uri, "toys")) == 2
    # $MLFLOW_TRACKING_URI turns it on; --no-mlflow off for one run
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert CliRunner().invoke(cli, ["run", "toys.py", "--no-mlflow"]).exit_code == 0
    assert len(runs(uri, "toys")) == 2
    assert CliRunner().invoke(cli, ["run", "toys.py", "--no-reuse"]).exit_code == 0
    assert len(runs(uri, "toys")) == 4
    refused = CliRunner().invoke(cli, ["run", "toys.py", "--mlflow", "--backend", "azure"])
    assert refused.exit_code == 2 and "--mlflow logs local runs" in refused.output


@pytest.mark.slow
def test_the_titanic_pipeline_in_mlflow(titanic_workspace, store, titanic_csv):
    """The pipeline run, three step runs, the AutoML children with their metrics, the model and the registered
    version, read back with mlflow.search_runs; a rerun with reuse adds no child run and no model."""
    workspace = titanic_workspace
    pipeline = load_pipeline(REPO / "examples" / "titanic")
    params = {"iterations": "3", "experiment_timeout_minutes": "1"}
    first = run_pipeline(pipeline, workspace=workspace, params=params)
    assert first.succeeded, first.error
    found = runs(store, "titanic_automl")
    parent = found[found["tags.amlstep.kind"] == "pipeline"]
    assert parent["tags.mlflow.runName"].tolist() == [first.run_id]
    steps = found[found["tags.amlstep.kind"] == "step"].set_index("tags.mlflow.runName")
    assert list(steps.index) == ["dataprep", "AutoML_Classification", "register_model"]
    assert set(steps["tags.mlflow.parentRunId"]) == {parent["run_id"].iloc[0]}
    automl = steps.loc["AutoML_Classification"]
    assert automl["params.primary_metric"] == "AUC_weighted" and automl["params.iterations"] == "3"
    children = found[found["tags.amlstep.kind"] == "child"]
    recorded = workspace.get_children(first.step("AutoML_Classification").run_id)
    assert len(children) == len(recorded) == 3
    assert set(children["tags.mlflow.parentRunId"]) == {automl["run_id"]}
    by_id = children.set_index("tags.amlstep.run_id")
    for child in recorded:
        row = by_id.loc[child.id]
        assert row["params.run_algorithm"] == child.properties["run_algorithm"]
        assert row["metrics.AUC_weighted"] == pytest.approx(workspace.get_metrics(child.id)["AUC_weighted"])
        assert row["metrics.accuracy"] == pytest.approx(workspace.get_metrics(child.id)["accuracy"])
    lightgbm = by_id[by_id["params.run_algorithm"] == "LightGBM"].iloc[0]
    assert json.loads(recorded[0].properties["pipeline_spec"])["params"]["num_leaves"] == int(lightgbm["params.num_leaves"])
    assert steps.loc["register_model", "metrics.registered_version"] == 1
    # the best model, an MLflow model, registered under the same name and version
    with mlflow_tracking_uri(store):
        models = mlflow.search_logged_models(experiment_ids=[parent["experiment_id"].iloc[0]], output_format="list")
        assert [m.source_run_id for m in models] == [automl["run_id"]]
        client = mlflow.MlflowClient()
        (version,) = client.search_model_versions("name='TitanicSurvivalInitial'")
        assert (str(version.version), version.tags["amlstep.version"]) == ("1", "1")
        assert version.source == f"models:/{models[0].model_id}"
        loaded = mlflow.pyfunc.load_model("models:/TitanicSurvivalInitial/1")
        prepped = pd.read_csv(Path(first.step("dataprep").outputs["prepped_data"]) / "prepped_data.csv").head(20)
        with open(first.outputs["model_output"], "rb") as f:
            pickled = pickle.load(f)
        rows = prepped.drop(columns=["Survived"])
        assert list(loaded.predict(rows)) == list(pickled.predict(rows))
        # docs/mlflow.md's snippet reads the same back
        namespace: dict = {}
        exec(compile(snippet("mlflow-search"), "mlflow.md", "exec"), namespace)
        assert len(namespace["children"]) == 3 and len(namespace["steps"]) == 3
        assert namespace["pipeline"]["tags.amlstep.run_id"] == first.run_id

        second = run_pipeline(pipeline, workspace=workspace, params=params)
        assert [s.reused for s in second.steps] == [True, True, False]
        again = runs(store, "titanic_automl")
        assert len(again[again["tags.amlstep.kind"] == "child"]) == 3          # no child run twice
        assert len(again[again["tags.amlstep.kind"] == "step"]) == 6
        assert len(mlflow.search_logged_models(experiment_ids=[parent["experiment_id"].iloc[0]],
                                               output_format="list")) == 1     # no model twice
        versions = sorted(client.search_model_versions("name='TitanicSurvivalInitial'"), key=lambda v: int(v.version))
        assert [(str(v.version), v.tags["amlstep.version"], v.source) for v in versions] == [
            ("1", "1", version.source), ("2", "2", version.source)]
