"""Every estimator the emulator builds fits the same model whatever the order of its training rows.

Each model family, each ensemble (``clone()`` + ``fit()``, as docs/emulator.md promises) and the
featurizer are fitted on rows sorted by one column and on the same rows shuffled; the two models
must score alike on the same held-out rows. Before the fix the StackEnsemble's internal folds
followed the row order: on rows sorted by ``Fare`` its holdout AUC fell from 0.86 to 0.59.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from emulator import metrics as M
from emulator.ensemble import (PreFittedSoftVotingClassifier, PreFittedSoftVotingRegressor, StackEnsembleClassifier,
                               StackEnsembleRegressor)
from emulator.featurize import AutoFeaturizer
from emulator.models import make_scaler
from emulator.task_types import get_task

CLASSIFICATION, REGRESSION = get_task("classification"), get_task("regression")
SMALL = {"n_estimators": 40}  # tree ensembles: fewer trees keep the test fast; the order question is the same
SIZED = {"RandomForest", "ExtremeRandomTrees", "LightGBM", "GradientBoosting", "XGBoostClassifier", "XGBoostRegressor"}
TOLERANCE = {"classification": 0.03, "regression": 0.05}  # holdout AUC_weighted / r2_score


class Case:
    """Training rows in two orders (sorted by ``column``, shuffled) and held-out rows to score on."""

    def __init__(self, task: str, X: pd.DataFrame, y: np.ndarray, column: str) -> None:
        self.task, self.X, self.y = task, X, y
        stratify = y if task == "classification" else None
        train, self.test = train_test_split(np.arange(len(y)), test_size=0.3, random_state=0, stratify=stratify)
        self.sorted = train[np.argsort(X[column].to_numpy()[train], kind="stable")]
        self.shuffled = np.random.default_rng(1).permutation(train)
        self.classes = np.unique(y) if task == "classification" else None

    def score(self, model, rows: np.ndarray, X=None) -> float:
        X = self.X if X is None else X
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")
            fitted = clone(model).fit(X.iloc[rows] if hasattr(X, "iloc") else X[rows], self.y[rows])
            test = X.iloc[self.test] if hasattr(X, "iloc") else X[self.test]
            if self.task == "classification":
                return M.primary_value("AUC_weighted", self.y[self.test], fitted.predict_proba(test), self.classes,
                                       0, 1, None)
            return M.primary_value("r2_score", self.y[self.test], fitted.predict(test)[:, None], None,
                                   float(self.y.min()), float(self.y.max()), None)

    def assert_order_free(self, model, X=None) -> None:
        on_sorted, on_shuffled = self.score(model, self.sorted, X), self.score(model, self.shuffled, X)
        assert abs(on_sorted - on_shuffled) < TOLERANCE[self.task], (on_sorted, on_shuffled)


@pytest.fixture(scope="module")
def titanic(titanic_csv) -> Case:
    frame = pd.read_csv(titanic_csv)
    X = frame[["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]]
    return Case("classification", X, frame["Survived"].to_numpy(), "Fare")


@pytest.fixture(scope="module")
def diabetes() -> Case:
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    return Case("regression", data.data, data.target.to_numpy(dtype=float), "bmi")


@pytest.fixture(scope="module")
def featurized(titanic, diabetes):
    """Each case's featurized matrix (the featurizer fitted once): what a child's scaler and estimator see."""
    return {case.task: AutoFeaturizer().fit(case.X.iloc[case.shuffled]).transform(case.X) for case in (titanic, diabetes)}


def child(task, algorithm: str) -> Pipeline:
    """A child pipeline as the engine builds it: Azure's scaler, then the estimator."""
    params = dict(SMALL) if algorithm in SIZED else {}
    scaler = "MinMaxScaler" if algorithm == "MultinomialNaiveBayes" else "MaxAbsScaler"
    return Pipeline([(scaler, make_scaler(scaler)), (algorithm, task.make_estimator(algorithm, params, 0))])


@pytest.mark.parametrize("algorithm", CLASSIFICATION.models)
def test_classification_family_ignores_row_order(algorithm, titanic, featurized):
    titanic.assert_order_free(child(CLASSIFICATION, algorithm), featurized["classification"])


@pytest.mark.parametrize("algorithm", REGRESSION.models)
def test_regression_family_ignores_row_order(algorithm, diabetes, featurized):
    diabetes.assert_order_free(child(REGRESSION, algorithm), featurized["regression"])


def members(task) -> list[tuple[str, Pipeline]]:
    names = (["LogisticRegression", "LightGBM", "ExtremeRandomTrees"] if task is CLASSIFICATION
             else ["ElasticNet", "LightGBM", "ExtremeRandomTrees"])
    return [(f"{i}_{name}", child(task, name)) for i, name in enumerate(names)]


def model(last: tuple[str, object]) -> Pipeline:
    """The model pipeline the AutoML step outputs: the featurizer, then the ensemble."""
    return Pipeline([("datatransformer", AutoFeaturizer()), last])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["VotingEnsemble", "StackEnsemble"])
def test_classification_ensembles_refit_ignores_row_order(kind, titanic):
    if kind == "VotingEnsemble":
        last = ("prefittedsoftvotingclassifier", PreFittedSoftVotingClassifier(members(CLASSIFICATION), [0.4, 0.4, 0.2]))
    else:
        last = ("stackensembleclassifier", StackEnsembleClassifier(members(CLASSIFICATION), CLASSIFICATION.meta_learner(0)))
    titanic.assert_order_free(model(last))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["VotingEnsemble", "StackEnsemble"])
def test_regression_ensembles_refit_ignores_row_order(kind, diabetes):
    if kind == "VotingEnsemble":
        last = ("prefittedsoftvotingregressor", PreFittedSoftVotingRegressor(members(REGRESSION), [0.4, 0.4, 0.2]))
    else:
        last = ("stackensembleregressor", StackEnsembleRegressor(members(REGRESSION), REGRESSION.meta_learner(0)))
    diabetes.assert_order_free(model(last))


@pytest.mark.parametrize("kind", [PreFittedSoftVotingClassifier, StackEnsembleClassifier])
def test_refit_does_not_change_the_ensembles_parameters(kind, titanic):
    """``fit`` leaves ``__init__``'s parameters as given (scikit-learn's rule; ``classes`` used to be replaced)."""
    from sklearn.naive_bayes import GaussianNB

    learners = [("nb", GaussianNB()), ("tree", child(CLASSIFICATION, "DecisionTree"))]
    ensemble = kind(learners, [0.5, 0.5], ["died", "survived"]) if kind is PreFittedSoftVotingClassifier else \
        kind(learners, CLASSIFICATION.meta_learner(0), ["died", "survived"])
    before = ensemble.get_params(deep=False)
    Pipeline([("datatransformer", AutoFeaturizer()), ("ensemble", ensemble)]).fit(titanic.X, titanic.y)
    assert ensemble.get_params(deep=False) == before and ensemble.classes == ["died", "survived"]
    assert ensemble.classes_.tolist() == [0, 1]


def test_featurizer_detects_dates_whatever_the_row_order():
    """The date check reads a sample of the values chosen by content, not the first 200 rows."""
    dates = pd.date_range("2020-01-01", periods=400, freq="D").strftime("%Y-%m-%d").tolist()
    values = pd.Series(dates + ["unknown", "n/a"] * 50, name="when")
    frame = pd.DataFrame({"when": values, "x": np.arange(len(values)) % 7})
    purposes = []
    for order in (np.argsort(values.to_numpy())[::-1], np.random.default_rng(0).permutation(len(values))):
        featurizer = AutoFeaturizer().fit(frame.iloc[order].reset_index(drop=True))
        purposes.append({p["column"]: p["purpose"] for p in featurizer.summary()}["when"])
    assert purposes == ["DateTime", "DateTime"]
