"""The best model's explanation, computed in the run as Azure does with ``model_explainability``."""

import json

import pandas as pd
import pytest

from emulator import AutoMLConfig, Experiment
from emulator.explain import EXPLANATION


def _explanation(workspace, run):
    path = workspace.artifacts_dir(run.properties["best_child_run_id"]) / EXPLANATION
    return json.loads(path.read_text()) if path.is_file() else None


@pytest.mark.slow
def test_the_run_keeps_the_best_models_permutation_importance(workspace, titanic_csv):
    frame = pd.read_csv(titanic_csv)[["Survived", "Pclass", "Sex", "Age", "Fare", "PassengerId"]]
    config = AutoMLConfig(task="classification", training_data=frame, label_column_name="Survived", iterations=2,
                          n_cross_validations=3, primary_metric="AUC_weighted", allowed_models=["LightGBM"])
    run = Experiment(workspace, "explained").submit(config)
    explanation = _explanation(workspace, run)
    assert explanation["metric"] == "AUC_weighted" and explanation["repeats"] == 3
    assert explanation["columns"] == ["Pclass", "Sex", "Age", "Fare", "PassengerId"]
    assert explanation["where"].endswith("891 training rows the model learned from")  # all, or a sample if slow
    importance = dict(zip(explanation["columns"], explanation["mean"]))
    assert max(importance, key=importance.get) == "Sex"
    assert importance["Sex"] > 0.1 > abs(importance["PassengerId"])
    assert "model_explainability" not in run.properties.get("unhonoured_settings", "")


def test_validation_data_is_what_the_explanation_scores(workspace, titanic_csv):
    frame = pd.read_csv(titanic_csv)[["Survived", "Pclass", "Sex", "Fare"]]
    config = AutoMLConfig(task="regression", training_data=frame.iloc[:600], validation_data=frame.iloc[600:],
                          label_column_name="Fare", iterations=2, allowed_models=["DecisionTree"])
    run = Experiment(workspace, "explained-validation").submit(config)
    explanation = _explanation(workspace, run)
    assert explanation["metric"] == "normalized_root_mean_squared_error"  # Azure's default for regression
    assert explanation["where"] == "291 validation rows the model did not learn from"
    assert explanation["columns"] == ["Survived", "Pclass", "Sex"]
    importance = dict(zip(explanation["columns"], explanation["mean"]))
    assert importance["Pclass"] > 0  # a positive number: the rise of an error metric when Pclass is shuffled


def test_model_explainability_false_keeps_none(workspace, titanic_csv):
    frame = pd.read_csv(titanic_csv)[["Survived", "Pclass", "Sex"]]
    config = AutoMLConfig(task="classification", training_data=frame, label_column_name="Survived", iterations=1,
                          n_cross_validations=2, allowed_models=["LogisticRegression"], model_explainability=False)
    run = Experiment(workspace, "unexplained").submit(config)
    assert _explanation(workspace, run) is None


class _SlowModel:
    """Predicts the mean after a pause longer than the time an explanation is given below."""

    def predict(self, X):
        import time

        time.sleep(0.05)
        return [2.0] * len(X)


def test_an_explanation_that_cannot_finish_in_what_is_left_of_the_budget_is_not_started():
    from emulator.explain import permutation_importance
    from emulator.task_types.registry import get_task

    X = pd.DataFrame({"a": range(300), "b": range(300)})
    y = [float(v % 7) for v in range(300)]
    task = get_task("regression")
    assert permutation_importance(task, _SlowModel(), X, y, "r2_score", "rows", seconds=0.01, within=True) is None
    explained = permutation_importance(task, _SlowModel(), X, y, "r2_score", "rows", seconds=0.01)  # amlstep report
    assert explained["columns"] == ["a", "b"] and explained["rows"] == 200  # slow: the fewest rows, but measured
