"""A run keeps the validation predictions of its best child and of its ensembles (what Azure draws a
child's charts from), and they are the predictions the leaderboard scored."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emulator import AutoMLConfig, Experiment
from emulator.task_types import get_task
from emulator.task_types.base import VALIDATION_PREDICTIONS
from emulator.tasks import FoldData, score_predictions


def children(sorted_fair_run):
    workspace, result = sorted_fair_run
    step = workspace.get_run(result.step("AutoML").run_id)
    return workspace, step, workspace.get_children(step.id)


def read(workspace, child_id: str) -> pd.DataFrame:
    return pd.read_csv(workspace.artifacts_dir(child_id) / VALIDATION_PREDICTIONS, dtype={"y_true": str})


def test_best_child_and_ensembles_keep_their_validation_predictions(sorted_fair_run):
    workspace, step, kids = children(sorted_fair_run)
    best = step.properties["best_child_run_id"]
    keeping = {c.id for c in kids if (workspace.artifacts_dir(c.id) / VALIDATION_PREDICTIONS).is_file()}
    expected = {c.id for c in kids if c.id == best or c.properties["run_algorithm"] in ("VotingEnsemble", "StackEnsemble")}
    assert keeping == expected and len(kids) == 4


def test_kept_predictions_are_the_ones_the_leaderboard_scored(sorted_fair_run):
    workspace, _, kids = children(sorted_fair_run)
    task = get_task("classification")
    for child in kids:
        if not (workspace.artifacts_dir(child.id) / VALIDATION_PREDICTIONS).is_file():
            continue
        frame = read(workspace, child.id)
        assert list(frame.columns) == ["row", "fold", "y_true", *(f"proba_{c}" for c in range(1, 7))]
        assert sorted(frame["row"]) == list(range(1500)) and set(frame["fold"]) == {0, 1, 2}
        y, proba, classes = task.read_validation_predictions(frame)
        assert classes.tolist() == ["1", "2", "3", "4", "5", "6"] and np.allclose(proba.sum(axis=1), 1.0)
        splits = [(None, np.flatnonzero(frame["fold"].to_numpy() == k)) for k in range(3)]
        data = FoldData("classification", np.zeros((len(y), 0)), y, None, splits, np.arange(len(y)), classes, 0, 1, 0)
        logged = workspace.get_metrics(child.id)
        recomputed = score_predictions(data, proba)
        for metric in ("AUC_weighted", "accuracy", "log_loss", "f1_score_weighted"):
            assert recomputed[metric] == pytest.approx(logged[metric], abs=1e-9), metric


@pytest.mark.slow
def test_regression_predictions_carry_weights(tmp_path_factory):
    from sklearn.datasets import load_diabetes

    from framework import LocalWorkspace

    frame = load_diabetes(as_frame=True).frame
    frame["w"] = np.where(frame["sex"] > 0, 2.0, 1.0)
    config = AutoMLConfig(task="regression", training_data=frame, label_column_name="target", weight_column_name="w",
                          iterations=3, n_cross_validations=3, allowed_models=["ElasticNet", "LightGBM"])
    run = Experiment(LocalWorkspace(tmp_path_factory.mktemp("kept-reg")), "kept_regression").submit(config)
    kept = read(run.workspace, run.properties["best_child_run_id"])
    assert list(kept.columns) == ["row", "fold", "y_true", "weight", "predicted"]
    assert kept["weight"].tolist() == frame["w"].iloc[kept["row"]].tolist()
    y, predicted, classes = get_task("regression").read_validation_predictions(kept)
    assert classes is None and predicted.shape == (442, 1)
    assert y.tolist() == frame["target"].iloc[kept["row"]].tolist()


def test_many_classes_make_one_table_without_pandas_fragmentation_warnings():
    """A label with hundreds of values (a continuous column taken for classes) is one table, built at once."""
    import warnings

    rows, classes = 400, np.arange(200)
    y = np.resize(classes, rows)
    data = FoldData(task="classification", X=np.zeros((rows, 1)), y=y, weights=None,
                    splits=[(np.arange(200, 400), np.arange(200)), (np.arange(200), np.arange(200, 400))],
                    fit_rows=np.arange(rows), classes=classes, y_min=0.0, y_max=199.0, seed=0)
    oof = np.full((rows, len(classes)), 1 / len(classes))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = get_task("classification").validation_predictions(data, oof)
    assert frame.shape == (rows, 3 + len(classes)) and frame["fold"].tolist() == [0] * 200 + [1] * 200
