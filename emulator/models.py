"""Azure Automated ML's model and preprocessor names, mapped onto scikit-learn and xgboost.

``LightGBM`` maps to scikit-learn's histogram gradient boosting (the same leaf-wise, binned
algorithm family), so no extra dependency is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.preprocessing import LabelEncoder

SCALERS = ("MaxAbsScaler", "StandardScalerWrapper", "MinMaxScaler", "RobustScaler", "SparseNormalizer")


def make_scaler(name: str) -> Any:
    from sklearn import preprocessing

    return {
        "MaxAbsScaler": lambda: preprocessing.MaxAbsScaler(),
        "StandardScalerWrapper": lambda: preprocessing.StandardScaler(),
        "MinMaxScaler": lambda: preprocessing.MinMaxScaler(),
        "RobustScaler": lambda: preprocessing.RobustScaler(quantile_range=(10, 90)),
        "SparseNormalizer": lambda: preprocessing.Normalizer(norm="l2"),
    }[name]()


def make_estimator(task: str, algorithm: str, params: dict[str, Any], seed: int) -> Any:
    """A fresh estimator for Azure's ``algorithm`` name with hyperparameters ``params``."""
    from sklearn import ensemble, linear_model, naive_bayes, neighbors, svm, tree

    p = dict(params)
    if task == "classification":
        factories: dict[str, Any] = {
            "LogisticRegression": lambda: linear_model.LogisticRegression(max_iter=2000, random_state=seed, **p),
            "SGD": lambda: linear_model.SGDClassifier(loss="modified_huber", random_state=seed, **p),
            "MultinomialNaiveBayes": lambda: naive_bayes.MultinomialNB(**p),
            "BernoulliNaiveBayes": lambda: naive_bayes.BernoulliNB(**p),
            "SVM": lambda: svm.SVC(probability=True, random_state=seed, **p),
            "LinearSVM": lambda: _calibrated(svm.LinearSVC(random_state=seed, **p)),
            "KNN": lambda: neighbors.KNeighborsClassifier(**p),
            "DecisionTree": lambda: tree.DecisionTreeClassifier(random_state=seed, **p),
            "RandomForest": lambda: ensemble.RandomForestClassifier(random_state=seed, n_jobs=1, **p),
            "ExtremeRandomTrees": lambda: ensemble.ExtraTreesClassifier(random_state=seed, n_jobs=1, **p),
            "LightGBM": lambda: ensemble.HistGradientBoostingClassifier(random_state=seed, **p),
            "GradientBoosting": lambda: ensemble.GradientBoostingClassifier(random_state=seed, **p),
            "XGBoostClassifier": lambda: _xgb_classifier(seed, p),
        }
        return LabelEncodedClassifier(factories[algorithm]())
    factories = {
        "ElasticNet": lambda: linear_model.ElasticNet(random_state=seed, max_iter=5000, **p),
        "GradientBoosting": lambda: ensemble.GradientBoostingRegressor(random_state=seed, **p),
        "DecisionTree": lambda: tree.DecisionTreeRegressor(random_state=seed, **p),
        "KNN": lambda: neighbors.KNeighborsRegressor(**p),
        "LassoLars": lambda: linear_model.LassoLars(random_state=seed, **p),
        "SGD": lambda: linear_model.SGDRegressor(random_state=seed, **p),
        "RandomForest": lambda: ensemble.RandomForestRegressor(random_state=seed, n_jobs=1, **p),
        "ExtremeRandomTrees": lambda: ensemble.ExtraTreesRegressor(random_state=seed, n_jobs=1, **p),
        "LightGBM": lambda: ensemble.HistGradientBoostingRegressor(random_state=seed, **p),
        "XGBoostRegressor": lambda: _xgb_regressor(seed, p),
    }
    return factories[algorithm]()


def _calibrated(estimator: Any) -> Any:
    from sklearn.calibration import CalibratedClassifierCV

    return CalibratedClassifierCV(estimator, cv=3)


def _xgb_classifier(seed: int, params: dict[str, Any]) -> Any:
    from xgboost import XGBClassifier

    defaults = {"n_estimators": 100, "tree_method": "hist", "n_jobs": 1, "verbosity": 0}
    return XGBClassifier(random_state=seed, **{**defaults, **params})


def _xgb_regressor(seed: int, params: dict[str, Any]) -> Any:
    from xgboost import XGBRegressor

    defaults = {"n_estimators": 100, "tree_method": "hist", "n_jobs": 1, "verbosity": 0}
    return XGBRegressor(random_state=seed, **{**defaults, **params})


class LabelEncodedClassifier(ClassifierMixin, BaseEstimator):
    """Fits ``estimator`` on labels encoded as 0..k-1 and answers in the original labels."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LabelEncodedClassifier:
        self.encoder_ = LabelEncoder().fit(y)
        self.classes_ = self.encoder_.classes_
        self.estimator_ = clone(self.estimator)
        encoded = self.encoder_.transform(y)
        if sample_weight is not None:
            try:
                self.estimator_.fit(X, encoded, sample_weight=sample_weight)
                return self
            except TypeError:
                pass
        self.estimator_.fit(X, encoded)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        proba = self.estimator_.predict_proba(X)
        if proba.shape[1] == len(self.classes_):
            return proba
        full = np.zeros((proba.shape[0], len(self.classes_)))
        full[:, self.estimator_.classes_] = proba
        return full

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    @property
    def feature_importances_(self) -> np.ndarray:
        return self.estimator_.feature_importances_


# The first iterations, in Azure's usual order; later iterations sample the spaces below.
WARM_START = {
    "classification": [
        ("MaxAbsScaler", "LightGBM", {}),
        ("MaxAbsScaler", "XGBoostClassifier", {}),
        ("MaxAbsScaler", "ExtremeRandomTrees", {"n_estimators": 200, "min_samples_leaf": 2}),
        ("StandardScalerWrapper", "LogisticRegression", {"C": 1.0}),
        ("MaxAbsScaler", "RandomForest", {"n_estimators": 200, "min_samples_leaf": 2}),
        ("SparseNormalizer", "XGBoostClassifier", {"max_depth": 3, "learning_rate": 0.1, "n_estimators": 200}),
        ("StandardScalerWrapper", "KNN", {"n_neighbors": 15}),
        ("MinMaxScaler", "GradientBoosting", {}),
    ],
    "regression": [
        ("MaxAbsScaler", "LightGBM", {}),
        ("MaxAbsScaler", "XGBoostRegressor", {}),
        ("MaxAbsScaler", "ExtremeRandomTrees", {"n_estimators": 200, "min_samples_leaf": 2}),
        ("StandardScalerWrapper", "ElasticNet", {"alpha": 0.01, "l1_ratio": 0.5}),
        ("MaxAbsScaler", "RandomForest", {"n_estimators": 200, "min_samples_leaf": 2}),
        ("StandardScalerWrapper", "KNN", {"n_neighbors": 10}),
        ("MinMaxScaler", "GradientBoosting", {}),
        ("StandardScalerWrapper", "LassoLars", {"alpha": 0.001}),
    ],
}


def sample_params(algorithm: str, rng: np.random.Generator) -> dict[str, Any]:
    """A random point of ``algorithm``'s hyperparameter space."""
    def log_uniform(low: float, high: float) -> float:
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))

    spaces: dict[str, Any] = {
        "LightGBM": lambda: {"learning_rate": log_uniform(0.02, 0.3), "max_leaf_nodes": int(rng.integers(4, 64)),
                             "min_samples_leaf": int(rng.integers(5, 60)), "l2_regularization": log_uniform(1e-4, 10),
                             "max_iter": int(rng.integers(50, 400))},
        "XGBoostClassifier": lambda: _xgb_space(rng, log_uniform),
        "XGBoostRegressor": lambda: _xgb_space(rng, log_uniform),
        "RandomForest": lambda: {"n_estimators": int(rng.integers(50, 300)), "max_features": float(rng.uniform(0.2, 1.0)),
                                 "min_samples_leaf": int(rng.integers(1, 10))},
        "ExtremeRandomTrees": lambda: {"n_estimators": int(rng.integers(50, 300)),
                                       "max_features": float(rng.uniform(0.2, 1.0)),
                                       "min_samples_leaf": int(rng.integers(1, 10))},
        "LogisticRegression": lambda: {"C": log_uniform(1e-3, 100)},
        "GradientBoosting": lambda: {"learning_rate": log_uniform(0.02, 0.3), "max_depth": int(rng.integers(2, 6)),
                                     "n_estimators": int(rng.integers(50, 300)), "subsample": float(rng.uniform(0.6, 1.0))},
        "DecisionTree": lambda: {"max_depth": int(rng.integers(2, 12)), "min_samples_leaf": int(rng.integers(1, 20))},
        "KNN": lambda: {"n_neighbors": int(rng.integers(3, 50)), "weights": str(rng.choice(["uniform", "distance"]))},
        "SGD": lambda: {"alpha": log_uniform(1e-6, 1e-2)},
        "ElasticNet": lambda: {"alpha": log_uniform(1e-4, 1.0), "l1_ratio": float(rng.uniform(0.05, 0.95))},
        "LassoLars": lambda: {"alpha": log_uniform(1e-5, 1.0)},
        "SVM": lambda: {"C": log_uniform(0.1, 10)},
        "LinearSVM": lambda: {"C": log_uniform(0.01, 10)},
        "MultinomialNaiveBayes": lambda: {"alpha": log_uniform(0.01, 10)},
        "BernoulliNaiveBayes": lambda: {"alpha": log_uniform(0.01, 10)},
    }
    return spaces[algorithm]()


def _xgb_space(rng: np.random.Generator, log_uniform: Any) -> dict[str, Any]:
    return {"learning_rate": log_uniform(0.02, 0.3), "max_depth": int(rng.integers(2, 9)),
            "n_estimators": int(rng.integers(50, 400)), "subsample": float(rng.uniform(0.6, 1.0)),
            "colsample_bytree": float(rng.uniform(0.5, 1.0)), "reg_lambda": log_uniform(1e-3, 10)}


def preprocessor_for(algorithm: str, rng: np.random.Generator) -> str:
    """A scaler that suits ``algorithm`` (naive Bayes needs non-negative features)."""
    if algorithm == "MultinomialNaiveBayes":
        return "MinMaxScaler"
    return str(rng.choice(SCALERS))
