"""A run keeps the validation predictions of its best child and of its ensembles (what Azure draws a
child's charts from), and they are the predictions the leaderboard scored."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from emulator import AutoMLConfig, Experiment
from emulator.task_types import get_task
from emulator.task_types.base import VALIDATION_PREDICTIONS
from emulator.tasks import FoldData, score_predictions


@pytest.fixture(scope="module")
def run(titanic_csv, tmp_path_factory):
    from framework import LocalWorkspace

    frame = pd.read_csv(titanic_csv).drop(columns=["Name", "Ticket", "Cabin", "PassengerId"])
    frame["Survived"] = frame["Survived"].map({0: "died", 1: "lived"})
    config = AutoMLConfig(task="classification", training_data=frame, label_column_name="Survived", iterations=5,
                          n_cross_validations=3, primary_metric="AUC_weighted")
    return Experiment(LocalWorkspace(tmp_path_factory.mktemp("kept")), "kept_predictions").submit(config)


def read(child) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(child.workspace.artifacts_dir(child.id).joinpath(VALIDATION_PREDICTIONS).read_text()),
                       dtype={"y_true": str})


def test_best_child_and_ensembles_keep_their_validation_predictions(run):
    best = run.properties["best_child_run_id"]
    keeping = {c.properties["iteration"] for c in run.get_children() if VALIDATION_PREDICTIONS in c.get_file_names()}
    expected = {c.properties["iteration"] for c in run.get_children()
                if c.id == best or c.properties["run_algorithm"] in ("VotingEnsemble", "StackEnsemble")}
    assert keeping == expected and {"3", "4"} <= keeping


def test_kept_predictions_are_the_ones_the_leaderboard_scored(run):
    task = get_task("classification")
    for child in run.get_children():
        if VALIDATION_PREDICTIONS not in child.get_file_names():
            continue
        frame = read(child)
        assert list(frame.columns) == ["row", "fold", "y_true", "proba_died", "proba_lived"]
        assert sorted(frame["row"]) == list(range(891)) and set(frame["fold"]) == {0, 1, 2}
        y, proba, classes = task.read_validation_predictions(frame)
        assert classes.tolist() == ["died", "lived"] and np.allclose(proba.sum(axis=1), 1.0)
        splits = [(None, np.flatnonzero(frame["fold"].to_numpy() == k)) for k in range(3)]
        data = FoldData("classification", np.zeros((len(y), 0)), y, None, splits, np.arange(len(y)), classes, 0, 1, 0)
        logged = child.get_metrics()
        recomputed = score_predictions(data, proba)
        for metric in ("AUC_weighted", "accuracy", "log_loss", "f1_score_weighted"):
            assert recomputed[metric] == pytest.approx(logged[metric], abs=1e-9), metric


def test_regression_predictions_carry_weights(tmp_path_factory):
    from sklearn.datasets import load_diabetes

    from framework import LocalWorkspace

    frame = load_diabetes(as_frame=True).frame
    frame["w"] = np.where(frame["sex"] > 0, 2.0, 1.0)
    config = AutoMLConfig(task="regression", training_data=frame, label_column_name="target", weight_column_name="w",
                          iterations=3, n_cross_validations=3, allowed_models=["ElasticNet", "LightGBM"])
    run = Experiment(LocalWorkspace(tmp_path_factory.mktemp("kept-reg")), "kept_regression").submit(config)
    best = next(c for c in run.get_children() if c.id == run.properties["best_child_run_id"])
    kept = read(best)
    assert list(kept.columns) == ["row", "fold", "y_true", "weight", "predicted"]
    assert kept["weight"].tolist() == frame["w"].iloc[kept["row"]].tolist()
    y, predicted, classes = get_task("regression").read_validation_predictions(kept)
    assert classes is None and predicted.shape == (442, 1)
    assert y.tolist() == frame["target"].iloc[kept["row"]].tolist()
