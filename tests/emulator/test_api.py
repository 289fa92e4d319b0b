"""The Python surface: AutoMLConfig, Experiment.submit, AutoMLRun, outputs as Azure writes them."""

import json
import pickle
import re

import numpy as np
import pandas as pd
import pytest

from emulator import AutoMLConfig, AutoMLRun, Experiment
from emulator.engine import AutoMLDataError
from framework.errors import StepDefinitionError

FAST = {"iterations": 5, "n_cross_validations": 3, "primary_metric": "AUC_weighted"}
PROPERTIES = ("iteration", "run_algorithm", "run_preprocessor", "score", "primary_metric", "goal", "training_type",
              "fit_time")


@pytest.fixture(scope="module")
def titanic(titanic_csv):
    return pd.read_csv(titanic_csv)


@pytest.fixture
def run(titanic, workspace):
    config = AutoMLConfig(task="classification", training_data=titanic, label_column_name="Survived", **FAST)
    return Experiment(workspace, "titanic_automl").submit(config)


def test_submit_records_children_with_azures_properties(run, workspace):
    assert isinstance(run, AutoMLRun) and run.status == "Completed"
    children = run.get_children()
    assert [c.properties["iteration"] for c in children] == ["0", "1", "2", "3", "4"]
    assert [c.properties["run_algorithm"] for c in children][-2:] == ["VotingEnsemble", "StackEnsemble"]
    for child in children:
        assert set(PROPERTIES) <= set(child.properties)
        assert child.properties["goal"] == "AUC_weighted_max"
        assert child.properties["training_type"] == "MeanCrossValidation"
        assert child.get_metrics()["AUC_weighted"] == pytest.approx(float(child.properties["score"]))
    assert children[0].display_name == "MaxAbsScaler, LightGBM"
    assert {"confusion_matrix", "accuracy_table"} <= set(children[0].get_file_names())
    matrix = children[0].get_artifact("confusion_matrix")["data"]["matrix"]
    assert np.sum(matrix) == 891  # out-of-fold predictions of every row
    assert workspace.get_run(run.id).run_type == "automl"


def test_get_output_returns_the_best_child_and_a_pipeline_on_raw_frames(run, titanic):
    best_run, model = run.get_output()
    scores = {c.id: float(c.properties["score"]) for c in run.get_children() if c.status == "Completed"}
    assert best_run.id == max(scores, key=scores.get) == run.properties["best_child_run_id"]
    assert model.steps[0][0] == "datatransformer"
    proba = model.predict_proba(titanic.drop(columns=["Survived"]).head(5))
    assert proba.shape == (5, 2)
    child, lightgbm = run.get_output(iteration=0)
    assert child.properties["run_algorithm"] == "LightGBM"
    assert [name for name, _ in lightgbm.steps] == ["datatransformer", "MaxAbsScaler", "LightGBM"]
    assert run.get_output(metric="accuracy")[0].status == "Completed"


def test_metrics_json_loads_into_a_dataframe_with_every_child(run):
    frame = pd.DataFrame(run.get_metrics_output())
    assert sorted(frame.columns) == sorted(c.id for c in run.get_children())
    assert "AUC_weighted" in frame.index and "norm_macro_recall" in frame.index
    assert all(isinstance(v, list) and len(v) == 1 for v in frame.loc["accuracy"])


def test_guardrails_and_featurization_are_recorded(run):
    kinds = [g["type"] for g in run.get_guardrails()]
    assert kinds[:4] == ["Missing feature values imputation", "High cardinality feature detection",
                         "Validation split handling", "Class balancing detection"]
    purposes = {f["column"]: f["purpose"] for f in run.properties["featurization"]}
    assert purposes["PassengerId"] == "Numeric" and purposes["Sex"] == "Categorical"  # a number, as on Azure


@pytest.mark.slow
def test_same_seed_without_time_limit_gives_the_same_leaderboard(titanic, workspace):
    def board():
        config = AutoMLConfig(task="classification", training_data=titanic, label_column_name="Survived", **FAST)
        run = Experiment(workspace, "repeat").submit(config)
        return [(c.properties["run_algorithm"], c.properties["pipeline_spec"], c.properties["score"])
                for c in run.get_children()]

    assert board() == board()


@pytest.mark.slow
def test_regression_with_validation_data(workspace):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.choice(["x", "y", "z"], 300)})
    frame["target"] = 3 * frame["a"] + (frame["b"] == "x") + rng.normal(scale=0.1, size=300)
    config = AutoMLConfig(task="regression", training_data=frame.iloc[:200], validation_data=frame.iloc[200:],
                          label_column_name="target", primary_metric="r2_score", iterations=4)
    run = Experiment(workspace, "reg").submit(config)
    assert run.get_children()[0].properties["training_type"] == "TrainValidateTest"
    _, model = run.get_output()
    assert model.predict(frame.drop(columns=["target"]).iloc[:3]).shape == (3,)
    assert float(run.properties["score"]) > 0.9


@pytest.mark.slow
def test_parallel_children_through_joblib(titanic, workspace):
    config = AutoMLConfig(task="classification", training_data=titanic, label_column_name="Survived",
                          max_concurrent_iterations=2, **FAST)
    run = Experiment(workspace, "parallel").submit(config)
    children = run.get_children()
    assert len(children) == 5 and all(c.status == "Completed" for c in children)


@pytest.mark.slow
def test_unhonoured_settings_are_printed_and_recorded(titanic, workspace, capsys):
    config = AutoMLConfig(task="classification", training_data=titanic, label_column_name="Survived",
                          compute_target="cpu-cluster", iterations=2, n_cross_validations=2)
    run = Experiment(workspace, "unhonoured").submit(config)
    assert "settings accepted but not honoured offline: compute_target" in capsys.readouterr().out
    assert run.properties["unhonoured_settings"] == ["compute_target"]


def test_bad_settings_and_data_fail_clearly(titanic, workspace):
    with pytest.raises(StepDefinitionError, match=re.escape("AutoMLConfig: primary_metric 'r2_score' is not valid")):
        AutoMLConfig(task="classification", training_data=titanic, label_column_name="Survived",
                     primary_metric="r2_score")
    config = AutoMLConfig(task="classification", training_data=titanic, label_column_name="survived", iterations=1)
    with pytest.raises(AutoMLDataError, match="label column 'survived' is not in the training data"):
        Experiment(workspace, "bad").submit(config)
    failed = workspace.list_runs(run_type="automl", experiment="bad")[0]
    assert failed.status == "Failed"


def test_model_pickle_round_trips(run, titanic, tmp_path):
    path = run.get_children()[0].download_file("confusion_matrix", tmp_path)
    assert json.loads(open(path).read())["schema_type"] == "confusion_matrix"
    _, model = run.get_output()
    again = pickle.loads(pickle.dumps(model))
    frame = titanic.drop(columns=["Survived"]).head(4)
    assert np.allclose(again.predict_proba(frame), model.predict_proba(frame))


def test_weights_custom_folds_and_nan_labels(workspace):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=120), "w": rng.uniform(0.5, 2, 120)})
    frame["y"] = (frame["a"] > 0).astype(float)
    frame.loc[:4, "y"] = np.nan
    frame["fold1"] = (np.arange(120) % 2).astype(int)
    frame["fold2"] = 1 - frame["fold1"]
    config = AutoMLConfig(task="classification", training_data=frame, label_column_name="y", weight_column_name="w",
                          cv_split_column_names=["fold1", "fold2"], iterations=2, allowed_models=["LogisticRegression"])
    run = Experiment(workspace, "weights").submit(config)
    purposes = {f["column"] for f in run.properties["featurization"]}
    assert purposes == {"a"}  # weight and fold columns are not features
    assert run.get_children()[0].properties["training_type"] == "MeanCrossValidation"
    best, model = run.get_output()
    assert model.predict(pd.DataFrame({"a": [-2.0, 2.0]})).tolist() == [0, 1]
