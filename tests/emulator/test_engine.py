"""The AutoML loop: Azure's validation and early-stopping rules, real timeouts, ensembles."""

import time

import numpy as np
import pandas as pd
import pytest

from emulator import AutoMLConfig, Experiment
from emulator.engine import AutoMLDataError, ChildResult, _early_stop, candidates, make_splits
from emulator.settings import validate_settings

SETTINGS = validate_settings({"task": "classification", "label_column_name": "y", "primary_metric": "accuracy"})


def children(scores):
    return [ChildResult(i, f"r_{i}", "MaxAbsScaler", "LightGBM", {}, score=s) for i, s in enumerate(scores)]


def test_early_stopping_never_in_the_first_20_then_a_10_iteration_window():
    flat_after_5 = [0.5] * 5 + [0.6] + [0.6] * 13
    assert not _early_stop(SETTINGS, children(flat_after_5), "accuracy")  # 19 iterations
    assert _early_stop(SETTINGS, children(flat_after_5 + [0.6] * 6), "accuracy")
    improving = [0.5] * 20 + [0.7]
    assert not _early_stop(SETTINGS, children(improving), "accuracy")
    assert not _early_stop({**SETTINGS, "enable_early_stopping": False}, children([0.5] * 40), "accuracy")


@pytest.mark.parametrize("rows, folds, kind", [(999, 10, "MeanCrossValidation"), (1000, 3, "MeanCrossValidation"),
                                               (19999, 3, "MeanCrossValidation"), (20000, 1, "TrainValidateTest")])
def test_automatic_cross_validation_rule(rows, folds, kind):
    y = np.arange(rows) % 2
    splits, training_type = make_splits(SETTINGS, y, rows, rows, None)
    assert (len(splits), training_type) == (folds, kind)
    if kind == "TrainValidateTest":
        assert len(splits[0][1]) == rows // 10


def test_custom_cv_split_columns():
    columns = pd.DataFrame({"f1": [1, 1, 0, 0], "f2": [0, 0, 1, 1]})
    splits, kind = make_splits(SETTINGS, np.array([0, 1, 0, 1]), 4, 4, columns)
    assert kind == "MeanCrossValidation" and [list(v) for _, v in splits] == [[2, 3], [0, 1]]


def test_portfolio_opens_like_azure_and_respects_allowed_models():
    first = next(candidates(SETTINGS))
    assert first[:2] == ("MaxAbsScaler", "LightGBM")
    allowed = validate_settings({**{"task": "classification", "label_column_name": "y"},
                                 "allowed_models": ["RandomForest"]})
    gen = candidates(allowed)
    assert {next(gen)[1] for _ in range(10)} == {"RandomForest"}


def test_a_child_past_iteration_timeout_is_stopped_and_recorded(workspace):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(6000, 12)), columns=[f"x{i}" for i in range(12)])
    frame["y"] = (frame["x0"] + rng.normal(size=6000) > 0).astype(int)
    # SVC with probability estimates on 4,000 rows takes far longer than 0.6 s per fold
    config = AutoMLConfig(task="classification", training_data=frame, label_column_name="y", allowed_models=["SVM"],
                          iterations=2, iteration_timeout_minutes=0.01, n_cross_validations=3)
    started = time.perf_counter()
    with pytest.raises(AutoMLDataError, match="no child run completed.*TimeoutError: iteration_timeout_minutes"):
        Experiment(workspace, "hang").submit(config)
    assert time.perf_counter() - started < 30
    run = workspace.list_runs(run_type="automl", experiment="hang")[0]
    kids = workspace.get_children(run.id)
    assert len(kids) == 2 and all(k.status == "Failed" and "worker process was stopped" in k.error for k in kids)


def test_experiment_ends_near_its_budget(workspace, titanic_csv):
    frame = pd.read_csv(titanic_csv)
    config = AutoMLConfig(task="classification", training_data=frame, label_column_name="Survived",
                          experiment_timeout_minutes=0.15, n_cross_validations=3, enable_early_stopping=False)
    started = time.perf_counter()
    run = Experiment(workspace, "budget").submit(config)
    assert time.perf_counter() - started < 0.15 * 60 * 3 + 20  # generous: loaded machines; 1000 iterations otherwise
    assert "experiment timeout" in run.properties["stop_reason"]
    assert run.get_children()[-1].properties["run_algorithm"] in ("VotingEnsemble", "StackEnsemble")


def test_ensembles_count_within_iterations_and_weights_are_multiples_of_one_kth(workspace, titanic_csv):
    frame = pd.read_csv(titanic_csv)
    config = AutoMLConfig(task="classification", training_data=frame, label_column_name="Survived", iterations=5,
                          n_cross_validations=3, enable_stack_ensemble=False)
    run = Experiment(workspace, "ens").submit(config)
    kids = run.get_children()
    assert [k.properties["run_algorithm"] for k in kids][-1] == "VotingEnsemble" and len(kids) == 5
    import json

    spec = json.loads(kids[-1].properties["pipeline_spec"])["params"]
    weights = np.array(spec["ensemble_weights"])
    assert weights.sum() == pytest.approx(1.0, abs=1e-4)


def test_children_go_wherever_the_joblib_backend_sends_them(workspace, titanic_csv):
    """Under loky (as under Dask or Ray) each task is pickled to another process, which drives its own worker."""
    from joblib import parallel_config

    frame = pd.read_csv(titanic_csv)
    config = AutoMLConfig(task="classification", training_data=frame, label_column_name="Survived", iterations=4,
                          n_cross_validations=3, max_concurrent_iterations=2)
    with parallel_config(backend="loky"):
        run = Experiment(workspace, "loky").submit(config)
    assert [c.status for c in run.get_children()] == ["Completed"] * 4
