"""amlstep predict: the registered model applied to new rows, after the training preparation."""

from __future__ import annotations

import io
import json
import re
import warnings
from pathlib import Path

import pandas as pd
import pytest

from framework import Dataset, Pipeline, Step, get_plugin_manager, hookimpl, run_pipeline
from framework.commands.predict import predict
from framework.errors import WorkspaceError
from framework.reporting import Predictions

from tests.toy_steps import ToySteps


def test_predicts_the_titanic_test_file(cli, titanic_run, titanic_test_csv, tmp_path):
    ws, result = titanic_run
    out = tmp_path / "preds.csv"
    run = cli(ws, "predict", "TitanicSurvivalInitial", str(titanic_test_csv), "--out", str(out))
    assert run.exit_code == 0, run.output
    assert re.search(r"Predicted Survived for 418 rows with model TitanicSurvivalInitial:1", run.stderr)
    assert "prepared by dataprep (dataprep_titanic)" in run.stderr
    preds = pd.read_csv(out)
    raw = pd.read_csv(titanic_test_csv)
    assert len(preds) == len(raw) == 418
    assert list(preds.columns) == [*raw.columns, "predicted_Survived", "proba_0", "proba_1"]
    assert preds["PassengerId"].tolist() == raw["PassengerId"].tolist()
    assert set(preds["predicted_Survived"]) <= {0, 1}
    assert (preds[["proba_0", "proba_1"]].sum(axis=1) - 1).abs().max() < 1e-5
    # women survive more often than men in any sensible Titanic model
    by_sex = preds.groupby("Sex")["proba_1"].mean()
    assert by_sex["female"] > by_sex["male"]


def test_matches_the_pipeline_models_own_predictions(cli, titanic_run, titanic_test_csv):
    ws, result = titanic_run
    prediction = predict(ws, get_plugin_manager(), "TitanicSurvivalInitial:1", titanic_test_csv, keep=["PassengerId"])
    import pickle

    from framework.execution import read_learned
    from plugins.dataprep_titanic import prepare

    with open(result.outputs["model_output"], "rb") as f:
        model = pickle.load(f)
    learned = read_learned(Path(result.step("dataprep").outputs["learned"]), "learned")
    expected = model.predict(prepare(pd.read_csv(titanic_test_csv), learned=learned))
    assert prediction.frame["predicted_Survived"].tolist() == list(expected)
    assert list(prediction.frame.columns) == ["PassengerId", "predicted_Survived", "proba_0", "proba_1"]
    assert prediction.replaced == "titanic_ds:1"


def test_stdout_carries_only_the_csv(cli, titanic_run, titanic_test_csv):
    ws, _ = titanic_run
    run = cli(ws, "predict", "TitanicSurvivalInitial", str(titanic_test_csv), "--keep", "PassengerId")
    assert run.exit_code == 0
    frame = pd.read_csv(io.StringIO(run.stdout))
    assert list(frame.columns) == ["PassengerId", "predicted_Survived", "proba_0", "proba_1"]
    assert "Prepared 418 rows" in run.stderr  # the step's own print went to stderr


def test_training_file_with_label_still_predicts(cli, titanic_run, titanic_csv):
    ws, _ = titanic_run
    prediction = predict(ws, get_plugin_manager(), "TitanicSurvivalInitial", titanic_csv)
    frame = prediction.frame
    assert (frame["predicted_Survived"] == frame["Survived"]).mean() > 0.75


@pytest.mark.parametrize("ref, message", [
    ("TitanicSurvivalInitial:7", "version 7 of model 'TitanicSurvivalInitial' is not registered"),
    ("NoSuchModel", "model 'NoSuchModel' is not registered"),
    ("TitanicSurvivalInitia", "(did you mean 'TitanicSurvivalInitial'?); registered models: TitanicSurvivalInitial"),
    ("TitanicSurvivalInitial:x", "expected NAME or NAME:VERSION"),
])
def test_unknown_model_is_a_clear_error(cli, titanic_run, titanic_test_csv, ref, message):
    ws, _ = titanic_run
    run = cli(ws, "predict", ref, str(titanic_test_csv))
    assert run.exit_code == 2
    assert message in run.stderr


def test_reads_standard_input(cli, titanic_run, titanic_test_csv):
    ws, _ = titanic_run
    run = cli(ws, "predict", "TitanicSurvivalInitial", "-", "--keep", "PassengerId", input=titanic_test_csv.read_text())
    assert run.exit_code == 0, run.output
    frame = pd.read_csv(io.StringIO(run.stdout))
    assert frame["PassengerId"].tolist() == pd.read_csv(titanic_test_csv)["PassengerId"].tolist()
    assert "Predicted Survived for 418 rows" in run.stderr


def test_data_the_preparation_cannot_read_names_the_column(cli, titanic_run, tmp_path):
    ws, _ = titanic_run
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"Pclass": [1, 2], "Sex": ["male", "female"]}).to_csv(bad, index=False)
    run = cli(ws, "predict", "TitanicSurvivalInitial", str(bad))
    assert run.exit_code == 2
    assert "preparation step 'dataprep' (dataprep_titanic) failed on bad.csv" in run.stderr
    assert "'Age'" in run.stderr


def test_keep_names_unknown_columns(cli, titanic_run, titanic_test_csv):
    ws, _ = titanic_run
    with pytest.raises(WorkspaceError, match=re.escape("--keep names unknown column(s) 'Nope'")):
        predict(ws, get_plugin_manager(), "TitanicSurvivalInitial", titanic_test_csv, keep=["Nope"])


def test_a_rows_prediction_does_not_depend_on_the_other_rows(cli, titanic_run, titanic_test_csv, tmp_path):
    """Passenger 896 gets the same probability in the whole test file, in a 10-row file and alone."""
    ws, _ = titanic_run
    raw = pd.read_csv(titanic_test_csv)
    whole = predict(ws, get_plugin_manager(), "TitanicSurvivalInitial", titanic_test_csv).frame
    ten, one = tmp_path / "ten.csv", tmp_path / "one.csv"
    raw.head(10).to_csv(ten, index=False)
    raw[raw["PassengerId"] == 896].to_csv(one, index=False)
    columns = ["PassengerId", "predicted_Survived", "proba_0", "proba_1"]
    tenth = predict(ws, get_plugin_manager(), "TitanicSurvivalInitial", ten).frame
    pd.testing.assert_frame_equal(tenth[columns], whole.head(10)[columns])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        alone = predict(ws, get_plugin_manager(), "TitanicSurvivalInitial", one)
    assert alone.notes == []
    expected = whole[whole["PassengerId"] == 896].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone.frame[columns], expected[columns])


def test_a_one_row_file_predicts_without_warnings(cli, titanic_run, titanic_test_csv, tmp_path):
    ws, _ = titanic_run
    one = tmp_path / "one.csv"
    pd.read_csv(titanic_test_csv).head(1).to_csv(one, index=False)
    run = cli(ws, "predict", "TitanicSurvivalInitial", str(one), "--out", str(tmp_path / "p.csv"))
    assert run.exit_code == 0, run.output
    assert "Warning" not in run.stderr and "empty" not in run.stderr, run.stderr
    assert len(pd.read_csv(tmp_path / "p.csv")) == 1


# -- predictors come from plugins (the model_predictor hook) ---------------------------------------------
class MeanPredictor:
    """A third-party step kind's predictor: the toy ``fit`` step's model predicts the mean of x for every row."""

    task = "mean"

    def __init__(self, lineage, step):
        self.lineage, self.step = lineage, step

    def training(self):
        return self.lineage.inputs(self.step)["table"], "y"

    def predict(self, model, rows, *, model_id, file_name, notes):
        notes.append(f"{model_id} predicts one value for the {len(rows)} rows of {file_name}")
        return Predictions(columns={"predicted_y": [model["mean"]] * len(rows)}, rows=rows)


class ToyPredictors:
    @hookimpl
    def model_predictor(self, lineage, step):
        return MeanPredictor(lineage, step) if step.properties.get("plugin") == "fit" else None


def test_a_plugin_predicts_with_the_models_its_steps_train(workspace, tmp_path):
    training = tmp_path / "toy.csv"
    pd.DataFrame({"x": [1, 2, 3, 6], "y": [0, 1, 0, 1]}).to_csv(training, index=False)
    workspace.register_dataset("toy_ds", [str(training)])
    plugins = get_plugin_manager(plugins=[ToySteps(), ToyPredictors()])
    pipeline = Pipeline(experiment="toy", steps=[
        Step("double", inputs={"table": Dataset("toy_ds")}),
        Step("fit", inputs={"table": "doubled"}),
        Step("register_model", inputs={"model": "model"}, params={"model_name": "ToyMean"})])
    assert run_pipeline(pipeline, workspace=workspace, plugins=plugins).succeeded
    new = tmp_path / "new.csv"
    pd.DataFrame({"x": [10, 20], "y": [1, 1]}).to_csv(new, index=False)
    prediction = predict(workspace, plugins, "ToyMean", new, keep=["x"])
    assert prediction.frame.to_dict("list") == {"x": [10, 20], "predicted_y": [6.0, 6.0]}  # mean of the doubled x
    assert (prediction.label, prediction.task, prediction.steps, prediction.replaced) == \
        ("y", "mean", ["double (double)"], "toy_ds:1")
    assert prediction.notes == ["ToyMean:1 predicts one value for the 2 rows of new.csv"]
    unknown = get_plugin_manager(plugins=[ToySteps()])  # no plugin knows the fit step
    with pytest.raises(WorkspaceError, match=re.escape("no AutoML step of that run produced it")):
        predict(workspace, unknown, "ToyMean", new)


def drop_unlabelled(table):
    return {"doubled": table.dropna(subset=["y"]).reset_index(drop=True)}


class RowDropping:
    @hookimpl
    def register_steps(self, register):
        from framework import Input, Output, StepSpec

        register(StepSpec("drop_unlabelled", drop_unlabelled, inputs=[Input("table")], outputs=[Output("doubled")]))

    @hookimpl
    def model_predictor(self, lineage, step):
        return FeaturesPredictor(lineage, step) if step.properties.get("plugin") == "fit" else None


class FeaturesPredictor(MeanPredictor):
    """Like the AutoML predictor: the rows it returns are the features the model saw, without the label."""

    def predict(self, model, rows, *, model_id, file_name, notes):
        return Predictions(columns={"predicted_y": [model["mean"]] * len(rows)}, rows=rows.drop(columns=["y"]))


def test_when_the_preparation_drops_rows_the_output_keeps_the_label(workspace, tmp_path):
    """A preparation that drops the unlabelled rows: the output holds the prepared rows, the label column too;
    --keep, which copies input columns row by row, cannot be honoured and says why."""
    training = tmp_path / "toy.csv"
    pd.DataFrame({"x": [1, 2, 3, 6], "y": [0, 1, None, 1]}).to_csv(training, index=False)
    workspace.register_dataset("toy_ds", [str(training)])
    plugins = get_plugin_manager(plugins=[ToySteps(), RowDropping()])
    pipeline = Pipeline(experiment="toy", steps=[
        Step("drop_unlabelled", inputs={"table": Dataset("toy_ds")}),
        Step("fit", inputs={"table": "doubled"}),
        Step("register_model", inputs={"model": "model"}, params={"model_name": "ToyMean"})])
    assert run_pipeline(pipeline, workspace=workspace, plugins=plugins).succeeded
    new = tmp_path / "new.csv"
    pd.DataFrame({"x": [10, 20, 30], "y": [1, None, 0]}).to_csv(new, index=False)
    prediction = predict(workspace, plugins, "ToyMean", new)
    assert prediction.frame.to_dict("list") == {"x": [10, 30], "y": [1.0, 0.0], "predicted_y": [3.0, 3.0]}
    assert prediction.notes == ["the preparation changed the number of rows (3 -> 2); the output holds the prepared "
                                "rows"]
    with pytest.raises(WorkspaceError, match=re.escape(
            "--keep copies input columns row by row, but the preparation turned the 3 rows of new.csv into 2; "
            "without --keep the output holds the prepared rows, the label column included")):
        predict(workspace, plugins, "ToyMean", new, keep=["x"])


def centre(table, learned=None):
    """Centre x on the training rows' mean (a toy preparation that learns)."""
    mean = float(table["x"].mean()) if learned is None else learned["mean"]
    return {"doubled": table.assign(x=table["x"] - mean), "learned": {"mean": mean}}


class Centring:
    @hookimpl
    def register_steps(self, register):
        from framework import DataType, Input, Output, StepSpec

        register(StepSpec("centre", centre, inputs=[Input("table")],
                          outputs=[Output("doubled"), Output("learned", DataType.LEARNED)]))

    @hookimpl
    def model_predictor(self, lineage, step):
        return RowPredictor(lineage, step) if step.properties.get("plugin") == "fit" else None


class RowPredictor(MeanPredictor):
    """Predicts each row's prepared x: shows what the preparation applied."""

    def predict(self, model, rows, *, model_id, file_name, notes):
        return Predictions(columns={"predicted_y": rows["x"].tolist()}, rows=rows)


def centring_pipeline(workspace, tmp_path):
    """The plugins and pipeline centre -> fit -> register_model (model 'Centred'), on a registered toy dataset."""
    training = tmp_path / "toy.csv"
    pd.DataFrame({"x": [1, 2, 3, 6], "y": [0, 1, 0, 1]}).to_csv(training, index=False)
    workspace.register_dataset("toy_ds", [str(training)])
    plugins = get_plugin_manager(plugins=[ToySteps(), Centring()])
    pipeline = Pipeline(experiment="toy", steps=[
        Step("centre", inputs={"table": Dataset("toy_ds")}),
        Step("fit", inputs={"table": "doubled"}),
        Step("register_model", inputs={"model": "model"}, params={"model_name": "Centred"})])
    return plugins, pipeline


def test_a_registered_model_carries_what_its_preparation_learned(workspace, tmp_path):
    """The registered model carries the learned state (ModelVersion.learned_state, the documented way to
    prepare rows by hand); predict uses it even when the training run's outputs are gone, and refuses, saying
    why, a model that carries none and whose training run recorded none (instead of learning from the new rows)."""
    import shutil
    import sqlite3

    plugins, pipeline = centring_pipeline(workspace, tmp_path)
    result = run_pipeline(pipeline, workspace=workspace, plugins=plugins)
    assert result.succeeded, result.error
    model = workspace.get_model("Centred")
    assert model.learned == {"centre": {"learned": {"mean": 3.0}}}
    assert model.learned_state() == model.learned_state("centre", "learned") == {"mean": 3.0}
    with pytest.raises(WorkspaceError, match=re.escape("model Centred:1 carries no learned state of step 'centr' "
                                                       "(did you mean 'centre'?); it carries: centre")):
        model.learned_state("centr")

    new = tmp_path / "new.csv"
    pd.DataFrame({"x": [10]}).to_csv(new, index=False)
    shutil.rmtree(Path(result.step("centre").outputs["learned"]))  # the training run's copy is gone
    assert predict(workspace, plugins, "Centred", new).frame["predicted_y"].tolist() == [7.0]  # 10 - 3, not 10 - 10

    conn = sqlite3.connect(workspace.db_path)  # a model registered before models carried their learned state
    conn.execute("UPDATE models SET properties=json_remove(properties, '$.learned')")
    conn.commit()
    conn.close()
    with pytest.raises(WorkspaceError, match=re.escape("is no longer in the datastore")):
        predict(workspace, plugins, "Centred", new)
    conn = sqlite3.connect(workspace.db_path)  # ... and whose training run recorded no learned output
    conn.execute("UPDATE runs SET outputs=json_remove(outputs, '$.learned') WHERE name='centre'")
    conn.commit()
    conn.close()
    with pytest.raises(WorkspaceError, match=re.escape(
            "model Centred:1 carries no learned output 'learned' of step 'centre', and the run that trained it "
            "recorded none (an older version of plugin 'centre'); without it the preparation would learn from the "
            "new rows instead of the training rows")):
        predict(workspace, plugins, "Centred", new)


def test_a_model_registered_by_a_partial_run_is_the_one_the_taken_step_trained(workspace, tmp_path):
    """A partial run that runs only register_model takes the model from the run that trained it: the model carries
    that run's learned state, and its trainer is that run's step run (not the partial run, which trained nothing)."""
    import sqlite3

    from framework.commands.lineage import trainer_of

    plugins, pipeline = centring_pipeline(workspace, tmp_path)
    full = run_pipeline(pipeline, workspace=workspace, plugins=plugins)
    partial = run_pipeline(pipeline, workspace=workspace, plugins=plugins, only=["register_model"])
    assert partial.succeeded, partial.error
    assert partial.step("centre").status == "NotStarted" and partial.step("fit").reused_from == full.step("fit").run_id
    model = workspace.get_model("Centred", 2)
    assert model.run_id == partial.run_id
    assert model.learned == {"centre": {"learned": {"mean": 3.0}}}
    lineage, trainer, _ = trainer_of(workspace, model, lambda _, step: step.properties.get("plugin") == "fit" or None)
    assert (lineage.run.id, trainer.id) == (full.run_id, full.step("fit").run_id)

    new = tmp_path / "new.csv"
    pd.DataFrame({"x": [10]}).to_csv(new, index=False)
    assert predict(workspace, plugins, "Centred:2", new).frame["predicted_y"].tolist() == [7.0]
    conn = sqlite3.connect(workspace.db_path)  # registered before models carried their learned state
    conn.execute("UPDATE models SET properties=json_remove(properties, '$.learned')")
    conn.commit()
    conn.close()
    prediction = predict(workspace, plugins, "Centred:2", new)  # the training run's learned output
    assert (prediction.frame["predicted_y"].tolist(), prediction.run_id) == ([7.0], full.run_id)


# -- issue 24: what predict writes and what it loads --------------------------------------------------------
@pytest.fixture
def toy_model(workspace, tmp_path):
    """(invoke, rows.csv): the ToyMean model registered by a toy pipeline, and the CLI with a predictor for it."""
    from click.testing import CliRunner

    from tests.framework.commands.conftest import cli_with_commands

    training = tmp_path / "toy.csv"
    pd.DataFrame({"x": [1, 2, 3, 6], "y": [0, 1, 0, 1]}).to_csv(training, index=False)
    workspace.register_dataset("toy_ds", [str(training)])
    plugins = get_plugin_manager(plugins=[ToySteps(), ToyPredictors()])
    pipeline = Pipeline(experiment="toy", steps=[
        Step("double", inputs={"table": Dataset("toy_ds")}),
        Step("fit", inputs={"table": "doubled"}),
        Step("register_model", inputs={"model": "model"}, params={"model_name": "ToyMean"})])
    assert run_pipeline(pipeline, workspace=workspace, plugins=plugins).succeeded
    rows = tmp_path / "rows.csv"
    pd.DataFrame({"x": range(1000), "y": 1}).to_csv(rows, index=False)

    def invoke(*args):
        return CliRunner().invoke(cli_with_commands(plugins), ["--workspace", str(workspace.path), *args])

    return invoke, rows


def _to_csv_that_stops(error):
    """DataFrame.to_csv writing half of the table, then raising ``error`` (a kill, a full disk)."""
    original = pd.DataFrame.to_csv

    def to_csv(self, path_or_buf=None, **kwargs):
        if "predicted_y" not in self.columns:  # a preparation step's output: written as before
            return original(self, path_or_buf, **kwargs)
        text = original(self, None, **kwargs)
        half = text[:text.index("\n", len(text) // 2) + 1]  # ends on a complete row, as a killed write did
        if isinstance(path_or_buf, (str, Path)):
            Path(path_or_buf).write_text(half)
        else:
            path_or_buf.write(half)
            path_or_buf.flush()
        raise error
    return to_csv


@pytest.mark.parametrize("error", [KeyboardInterrupt(), OSError(28, "No space left on device")],
                         ids=["interrupted", "disk-full"])
def test_predict_out_replaces_the_file_only_once_the_new_one_is_complete(toy_model, tmp_path, monkeypatch, error):
    """predict -o wrote in place: a kill left a truncated file ending on a complete row, a full disk a 0-byte file
    and a traceback; both destroyed the complete file that was there."""
    invoke, rows = toy_model
    out = tmp_path / "out" / "preds.csv"
    assert invoke("predict", "ToyMean", str(rows), "-o", str(out)).exit_code == 0
    complete = out.read_bytes()
    assert len(complete.splitlines()) == 1001
    monkeypatch.setattr(pd.DataFrame, "to_csv", _to_csv_that_stops(error))
    result = invoke("predict", "ToyMean", str(rows), "-o", str(out))
    if isinstance(error, KeyboardInterrupt):
        assert result.exit_code == 1 and "Aborted" in result.output  # click turns Ctrl-C into Abort
    else:
        assert result.exit_code == 2, result.output
        assert result.stderr.endswith(f"Error: cannot write the predictions to {out}: no space left on the device "
                                      f"holding {out.parent}; {out} is unchanged\n"), result.stderr
    assert out.read_bytes() == complete
    assert sorted(p.name for p in out.parent.iterdir()) == ["preds.csv"]  # no temporary file left behind


def test_predict_out_keeps_the_permissions_of_the_file_it_replaces(toy_model, tmp_path):
    invoke, rows = toy_model
    out = tmp_path / "preds.csv"
    out.write_text("old\n")
    out.chmod(0o640)
    assert invoke("predict", "ToyMean", str(rows), "-o", str(out)).exit_code == 0
    assert (out.stat().st_mode & 0o777, len(out.read_text().splitlines())) == (0o640, 1001)


def test_predict_out_dev_full_is_one_line(toy_model):
    invoke, rows = toy_model
    result = invoke("predict", "ToyMean", str(rows), "-o", "/dev/full")
    assert result.exit_code == 2, result.output
    assert result.stderr.endswith("Error: cannot write the predictions to /dev/full: no space left on the device\n")
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert Path("/dev/full").is_char_device()  # written in place, never replaced by a file


def test_predict_refuses_a_model_changed_after_it_was_registered_before_loading_it(toy_model, workspace, tmp_path):
    """predict unpickled a registered model whose sha256 no longer matched the registry: the test's code ran."""
    import hashlib
    import pickle

    invoke, rows = toy_model
    model = workspace.get_model("ToyMean")
    file = model.path / model.files[0]
    marker = tmp_path / "the-pickle-ran"
    file.write_bytes(pickle.dumps(_WritesAMarker(str(marker))))
    now = hashlib.sha256(model.files[0].encode() + b"\0" + hashlib.sha256(file.read_bytes()).hexdigest().encode()).hexdigest()
    result = invoke("predict", "ToyMean", str(rows))
    assert result.exit_code == 2, result.output
    assert result.stderr.endswith(
        f"Error: model ToyMean:1 changed after it was registered ({file}): its files' sha256 is now {now}, the "
        f"registry recorded {model.sha256}; amlstep does not load it (loading a pickle runs its code). Run "
        f"`amlstep workspace check` to see what else changed; register the model again if the change is yours\n")
    assert not marker.exists()


class _WritesAMarker:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path(self.path).write_text, ("ran",))


def test_predict_on_a_fifo_is_refused_instead_of_waiting_for_a_writer(toy_model, tmp_path):
    import os
    import threading

    invoke, _ = toy_model
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)

    done = threading.Event()

    def unblock():  # what a writer would do, now and then: a predict that opens the FIFO goes on (and fails this test)
        while not done.wait(5):
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass

    watchdog = threading.Thread(target=unblock, daemon=True)
    watchdog.start()
    try:
        result = invoke("predict", "ToyMean", str(fifo))
    finally:
        done.set()
    assert result.exit_code == 2, result.output
    assert result.stderr == (f"Error: prediction data {str(fifo)!r}: fifo.csv is a named pipe (FIFO), not a file; "
                             f"give a CSV or Parquet file\n")


def test_a_model_trained_on_a_sample_says_so_when_it_predicts(workspace, tmp_path):
    """``amlstep run --sample``'s models are for the inner loop: predict warns, naming the sample."""
    from framework.sampling import Sample

    plugins, pipeline = centring_pipeline(workspace, tmp_path)
    assert run_pipeline(pipeline, workspace=workspace, plugins=plugins, sample=Sample.parse("2")).succeeded
    new = tmp_path / "new.csv"
    pd.DataFrame({"x": [10]}).to_csv(new, index=False)
    assert predict(workspace, plugins, "Centred", new).notes == [
        "model Centred:1 was trained on a sample of its data (2 rows, amlstep run --sample): retrain it on the full "
        "data before relying on its predictions"]
    assert run_pipeline(pipeline, workspace=workspace, plugins=plugins).succeeded
    assert predict(workspace, plugins, "Centred:2", new).notes == []


def test_a_model_only_an_azure_run_registered_is_listed_and_named_with_its_prefix(workspace, cli, tmp_path):
    """A model registered on Azure is azure:NAME here: `models list` lists it, predict NAME says to use the prefix."""
    run = workspace.create_run(run_type="pipeline", name="titanic", experiment="titanic", backend="azure",
                               status="Completed")
    workspace.create_run(run_type="step", name="register_model", experiment="titanic", parent_id=run.id,
                         backend="azure", status="Completed",
                         properties={"azure_registered_models": [{"name": "OnAzure", "version": 3}]})
    new = tmp_path / "new.csv"
    pd.DataFrame({"x": [1]}).to_csv(new, index=False)
    with pytest.raises(WorkspaceError, match=re.escape(
            "model 'OnAzure' is not registered in workspace ")) as refused:
        predict(workspace, get_plugin_manager(), "OnAzure:3", new)
    assert str(refused.value).endswith("; an Azure run of the run history registered model 'OnAzure' in its Azure "
                                       "workspace: use azure:OnAzure:3")
    listed = json.loads(cli(workspace, "models", "list", "--json").stdout)
    assert [(m["name"], m["version"], m["run_id"], m["registry"]) for m in listed] == [
        ("azure:OnAzure", 3, run.id, "azure")]
    assert "azure:OnAzure" in cli(workspace, "models", "list").stdout
