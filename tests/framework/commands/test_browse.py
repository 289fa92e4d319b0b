"""Browsing the history and the registries: runs list/show/logs, experiments list, models show, datasets show."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from framework import LocalWorkspace, Pipeline, Step, get_run, run_pipeline
from framework.errors import WorkspaceError

from .conftest import cli_with_commands

EXPLODES = """
from framework import Pipeline, Step
pipeline = Pipeline([Step('make_table'), Step('explode', inputs={'table': 'table'})], experiment='cursed')
"""


@pytest.fixture
def toy_cli(toy_plugins, workspace):
    from click.testing import CliRunner

    app = cli_with_commands(toy_plugins)

    def invoke(*args):
        return CliRunner().invoke(app, ["--workspace", str(workspace.path), *args])

    return invoke


def test_runs_show_takes_any_run_id_or_a_prefix_of_4_characters(cli, titanic_run):
    ws, result = titanic_run
    automl = result.step("AutoML_Classification").run_id
    pipeline = cli(ws, "runs", "show", result.run_id[:4])
    assert pipeline.exit_code == 0, pipeline.output
    assert pipeline.stdout.startswith(f"Pipeline run {result.run_id}")
    step = cli(ws, "runs", "show", automl[:8])  # as "reused step run 2a9940d5" prints it; its children share it
    assert step.exit_code == 0, step.output
    assert step.stdout.startswith(f"Step run {automl}  step AutoML_Classification (automl)")
    assert "best: AUC_weighted" in step.stdout and f"{automl}_0" in step.stdout
    child = cli(ws, "runs", "show", f"{automl}_1")
    assert child.exit_code == 0, child.output
    assert child.stdout.startswith(f"Child run {automl}_1  ")
    assert re.search(r"^fit time \d+\.\ds  duration \d+\.\ds$", child.stdout, flags=re.M)
    assert "│ AUC_weighted " in child.stdout and "artifacts: accuracy_table, confusion_matrix" in child.stdout
    shown = json.loads(cli(ws, "runs", "show", automl, "--json").stdout)
    assert shown["run_type"] == "step" and len(shown["children"]) == 3 and shown["log"].endswith("std_log.txt")


def test_a_prefix_names_one_run_or_says_it_is_ambiguous(workspace):
    for run_id in ("abcd1111", "abcd2222", "abcd1111_0"):
        workspace.create_run(run_type="child" if "_" in run_id else "step", name=run_id, experiment="x",
                             run_id=run_id)
    assert workspace.get_run("abcd1").id == "abcd1111"  # a run and its children: the run
    with pytest.raises(WorkspaceError, match=re.escape(
            "run id prefix 'abcd' is ambiguous: it starts 3 run ids (abcd1111, abcd2222, abcd1111_0); give more")):
        workspace.get_run("abcd")
    with pytest.raises(WorkspaceError, match=re.escape("run 'abc' does not exist in workspace")):
        workspace.get_run("abc")


def test_reused_step_ids_as_printed_are_accepted(toy_cli, tmp_path):
    (tmp_path / "p.py").write_text("from framework import Pipeline, Step\n"
                                   "pipeline = Pipeline([Step('make_table'), Step('fit', inputs={'table': 'table'})])\n")
    assert toy_cli("run", str(tmp_path / "p.py"), "--quiet").exit_code == 0
    again = toy_cli("run", str(tmp_path / "p.py"), "--json", "--quiet")
    reused = json.loads(again.stdout)["steps"][0]
    assert reused["reasons"][0].startswith(f"reused step run {reused['reused_from'][:8]}")
    for run_id in (reused["reused_from"][:8], reused["run_id"][:4]):
        shown = toy_cli("runs", "show", run_id)
        assert shown.exit_code == 0, shown.output
        assert shown.stdout.startswith("Step run ") and "make_table" in shown.stdout


def test_a_failed_step_shows_its_traceback_and_log(toy_cli, tmp_path, workspace):
    (tmp_path / "cursed.py").write_text(EXPLODES)
    run = toy_cli("run", str(tmp_path / "cursed.py"))
    assert run.exit_code == 1
    data = next(r for r in workspace.list_runs())
    step = workspace.get_children(data.id)[1]
    log = workspace.path / step.log_path
    assert "step 'explode' failed:" in run.stderr
    assert re.search(r'File ".*toy_steps\.py", line \d+, in explode\n\s+raise RuntimeError', run.stderr), run.stderr
    assert "RuntimeError: boom: the table is cursed" in run.stderr
    assert f"full log: {log}  (amlstep runs logs {data.id[:8]} explode)" in run.stderr
    shown = toy_cli("runs", "show", data.id[:8])
    assert f"  explode: {log}" in shown.stdout
    logs = toy_cli("runs", "logs", data.id[:8], "explode")
    assert logs.exit_code == 0
    assert "Traceback (most recent call last)" in logs.stdout and "boom: the table is cursed" in logs.stdout
    everything = toy_cli("runs", "logs", data.id, "--follow")  # a finished run: prints and returns
    assert "=== make_table (step run" in everything.stdout and "=== explode (step run" in everything.stdout
    wrong = toy_cli("runs", "logs", data.id, "explod")
    assert wrong.exit_code == 2
    assert "has no step 'explod' (did you mean 'explode'?); its steps: make_table, explode" in wrong.stderr


def test_runs_list_shows_standalone_automl_runs_and_best_metrics(cli, workspace, titanic_csv):
    from emulator import AutoMLConfig, Experiment

    frame = pd.read_csv(titanic_csv).head(200)[["Survived", "Pclass", "Sex", "Fare"]]
    submitted = Experiment(workspace, "standalone").submit(AutoMLConfig(
        task="classification", training_data=frame, label_column_name="Survived", iterations=2,
        n_cross_validations=3, primary_metric="accuracy"))
    listed = cli(workspace, "runs", "list")
    assert submitted.id in listed.stdout and "automl" in listed.stdout
    rows = json.loads(cli(workspace, "runs", "list", "--json").stdout)
    assert [(r["id"], r["run_type"]) for r in rows] == [(submitted.id, "automl")]
    assert rows[0]["best_metric"] == {"name": "accuracy", "value": pytest.approx(submitted.properties["score"])}
    experiments = json.loads(cli(workspace, "experiments", "list", "--json").stdout)
    assert [(e["name"], e["runs"], e["latest_run"]) for e in experiments] == [("standalone", 1, submitted.id)]
    child = submitted.get_children()[0]
    assert child.display_name == child.properties["display_name"] == child.record.display_name
    assert submitted.get_properties()["primary_metric"] == "accuracy"


def test_children_of_pipeline_steps_have_a_display_name_and_properties(titanic_run):
    ws, result = titanic_run
    step = get_run(result.step("AutoML_Classification").run_id, ws)
    children = step.get_children()
    assert [c.display_name for c in children] == [c.get_properties()["display_name"] for c in children]
    assert all(c.record.display_name for c in children)


def test_pipeline_runs_list_their_best_metric(cli, titanic_run):
    ws, result = titanic_run
    rows = json.loads(cli(ws, "runs", "list", "--json").stdout)
    mine = next(r for r in rows if r["id"] == result.run_id)
    assert mine["best_metric"]["name"] == "AUC_weighted" and 0.5 < mine["best_metric"]["value"] <= 1
    assert re.search(rf"{result.run_id}.*AUC_weighted 0\.\d{{4}}", cli(ws, "runs", "list").stdout)


def test_models_show_and_datasets_show(cli, titanic_run):
    ws, result = titanic_run
    model = cli(ws, "models", "show", "TitanicSurvivalInitial:1")
    assert model.exit_code == 0, model.output
    assert model.stdout.startswith("Model TitanicSurvivalInitial:1  registered ")
    assert f"source run: {result.run_id}" in model.stdout
    assert re.search(r"trained by: step AutoML_Classification of pipeline run .* classification of 'Survived', "
                     r"best AUC_weighted 0\.\d{4}", model.stdout)
    data = json.loads(cli(ws, "models", "show", "TitanicSurvivalInitial", "--json").stdout)
    assert data["training"]["label"] == "Survived" and data["training"]["automl_step"] == "AutoML_Classification"
    dataset = cli(ws, "datasets", "show", "titanic_ds")
    assert dataset.exit_code == 0, dataset.output
    assert "files: titanic.csv  (891 rows, 12 columns)" in dataset.stdout
    assert re.search(r"│ Age\s+│ float64 │ 177 ", dataset.stdout)
    assert cli(ws, "models", "show", "Nope").exit_code == 2
    assert "dataset 'nope' is not registered" in cli(ws, "datasets", "show", "nope").stderr


def test_datasets_list_shows_descriptions_and_resolved_sources(cli, tmp_path, monkeypatch):
    ws = LocalWorkspace(tmp_path / "ws")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.csv").write_text("x,y\n1,2\n")
    monkeypatch.chdir(tmp_path / "data")
    assert cli(ws, "datasets", "register", "d", "d.csv", "-d", "tiny numbers").exit_code == 0
    listed = json.loads(cli(ws, "datasets", "list", "--json").stdout)
    assert listed[0]["sources"] == [str(tmp_path / "data" / "d.csv")]
    assert "tiny numbers" in cli(ws, "datasets", "list").stdout


def test_experiments_list_counts_runs_per_experiment(toy_plugins, workspace, toy_cli):
    for experiment in ("first", "second", "second"):
        run_pipeline(Pipeline([Step("make_table")], experiment=experiment), workspace=workspace, plugins=toy_plugins)
    found = json.loads(toy_cli("experiments", "list", "--json").stdout)
    assert [(e["name"], e["runs"]) for e in found] == [("second", 2), ("first", 1)]


def test_json_calls_a_runs_id_run_id_everywhere(toy_cli, tmp_path):
    """`run --json` and `runs list/show --json` name the id alike: run_id (`id` stays, the same value)."""
    (tmp_path / "toy.py").write_text("from framework import Pipeline, Step\n"
                                     "pipeline = Pipeline([Step('make_table')], experiment='toys')\n")
    ran = json.loads(toy_cli("run", str(tmp_path / "toy.py"), "--json").stdout)
    listed = json.loads(toy_cli("runs", "list", "--json").stdout)[0]
    shown = json.loads(toy_cli("runs", "show", ran["run_id"], "--json").stdout)
    assert listed["run_id"] == listed["id"] == shown["run_id"] == shown["id"] == ran["run_id"]
    assert shown["steps"][0]["run_id"] == ran["steps"][0]["run_id"]


def test_a_whole_number_metric_shows_as_one(cli, workspace):
    """MLflow keeps every metric as a float: SDK v2's registered_version 2 comes back as 2.0, and shows as 2."""
    run = workspace.create_run(run_type="pipeline", name="p", experiment="p", status="Completed")
    step = workspace.create_run(run_type="step", name="register_model", experiment="p", parent_id=run.id,
                                status="Completed")
    workspace.log_metrics(step.id, {"registered_version": 2.0, "accuracy": 0.91234})
    shown = cli(workspace, "runs", "show", step.id)
    assert shown.exit_code == 0, shown.output
    assert "registered_version=2," in shown.stdout or "registered_version=2\n" in shown.stdout, shown.stdout
    assert "accuracy=0.9123" in shown.stdout


def test_ctrl_c_in_runs_logs_follow_of_an_azure_run_followed_here_says_it_goes_on(cli, workspace, monkeypatch):
    """Exit code 3 and how to re-attach, as Ctrl-C in `runs follow`; the logs went to the real stdout even though the
    following thread had sys.stdout redirected (an SDK call) when they were printed."""
    import io
    import sys
    from types import SimpleNamespace

    from framework.backends.azure.follower import LAST_SEEN, interrupted_text
    from framework.commands import browse

    run = workspace.create_run(run_type="pipeline", name="e", experiment="e", backend="azure", status="Running",
                               properties={"sdk": "v2", LAST_SEEN: 1000.0})
    step = workspace.create_run(run_type="step", name="train", experiment="e", parent_id=run.id, backend="azure",
                                status="Completed")
    path = workspace.log_path(step.id)
    path.write_text("trained\n")
    workspace.update_run(step.id, log_path=workspace.relative(path))

    def ctrl_c():
        raise KeyboardInterrupt

    def follow_here(ctx, ws, found):
        sys.stdout = io.StringIO()  # the following thread inside an SDK call's redirect_stdout
        return SimpleNamespace(record=found, is_alive=ctrl_c)

    monkeypatch.setattr(browse, "_follow_here", follow_here)
    followed = cli(workspace, "runs", "logs", run.id, "--follow")
    assert followed.exit_code == 3, followed.output
    assert "trained" in followed.stdout
    assert followed.stderr.strip() == f"Error: {interrupted_text('pipeline job', run.id, 1000.0)}"
