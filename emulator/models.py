"""Azure Automated ML's model and preprocessor names, mapped onto scikit-learn, xgboost and lightgbm.

``LightGBM`` is the lightgbm package, as on Azure (on small tables it fits ~15x faster than
scikit-learn's histogram gradient boosting, which stands in when lightgbm is not installed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
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


def make_estimator(task: str, algorithm: str, params: dict[str, Any], seed: int, threads: int = 1) -> Any:
    """A fresh estimator of ``task`` for Azure's ``algorithm`` name with hyperparameters ``params``.

    ``threads`` is ``max_cores_per_iteration`` (-1: all cores) for estimators that take a thread count.
    """
    from .task_types.registry import get_task

    return get_task(task).make_estimator(algorithm, params, seed, threads)


def classifier(algorithm: str, params: dict[str, Any], seed: int, threads: int = 1) -> Any:
    """Azure's classification ``algorithm``, answering in the original labels."""
    from sklearn import ensemble, linear_model, naive_bayes, neighbors, svm, tree

    p = dict(params)
    jobs = None if threads in (-1, 0) else threads
    factories: dict[str, Any] = {
        "LogisticRegression": lambda: linear_model.LogisticRegression(max_iter=2000, random_state=seed, **p),
        "SGD": lambda: linear_model.SGDClassifier(loss="modified_huber", random_state=seed, **p),
        "MultinomialNaiveBayes": lambda: naive_bayes.MultinomialNB(**p),
        "BernoulliNaiveBayes": lambda: naive_bayes.BernoulliNB(**p),
        "SVM": lambda: svm.SVC(probability=True, random_state=seed, **p),
        "LinearSVM": lambda: _calibrated(svm.LinearSVC(random_state=seed, **p)),
        "KNN": lambda: neighbors.KNeighborsClassifier(**p),
        "DecisionTree": lambda: tree.DecisionTreeClassifier(random_state=seed, **p),
        "RandomForest": lambda: ensemble.RandomForestClassifier(random_state=seed, n_jobs=jobs, **p),
        "ExtremeRandomTrees": lambda: ensemble.ExtraTreesClassifier(random_state=seed, n_jobs=jobs, **p),
        "LightGBM": lambda: _lightgbm(True, seed, p, threads),
        "GradientBoosting": lambda: ensemble.GradientBoostingClassifier(random_state=seed, **p),
        "XGBoostClassifier": lambda: _xgb_classifier(seed, p, threads),
    }
    return LabelEncodedClassifier(factories[algorithm]())


def regressor(algorithm: str, params: dict[str, Any], seed: int, threads: int = 1) -> Any:
    """Azure's regression ``algorithm`` (also the learners of forecasting's lag features).

    ``params["y_transformer"]`` (``"LogTransformer"``) wraps it as Azure's ``PipelineWithYTransformations``
    does: the estimator learns the transformed target and predictions are transformed back.
    """
    from sklearn import ensemble, linear_model, neighbors, tree

    p = dict(params)
    y_transformer = p.pop("y_transformer", None)
    if y_transformer is not None:
        if y_transformer != "LogTransformer":
            raise ValueError(f"unknown y_transformer {y_transformer!r}; the emulator has LogTransformer")
        return YTransformedRegressor(regressor(algorithm, p, seed, threads), y_transformer)
    jobs = None if threads in (-1, 0) else threads
    factories: dict[str, Any] = {
        "ElasticNet": lambda: linear_model.ElasticNet(random_state=seed, max_iter=5000, **p),
        "GradientBoosting": lambda: ensemble.GradientBoostingRegressor(random_state=seed, **p),
        "DecisionTree": lambda: tree.DecisionTreeRegressor(random_state=seed, **p),
        "KNN": lambda: neighbors.KNeighborsRegressor(**p),
        "LassoLars": lambda: linear_model.LassoLars(random_state=seed, **p),
        "SGD": lambda: linear_model.SGDRegressor(random_state=seed, **p),
        "RandomForest": lambda: ensemble.RandomForestRegressor(random_state=seed, n_jobs=jobs, **p),
        "ExtremeRandomTrees": lambda: ensemble.ExtraTreesRegressor(random_state=seed, n_jobs=jobs, **p),
        "LightGBM": lambda: _lightgbm(False, seed, p, threads),
        "XGBoostRegressor": lambda: _xgb_regressor(seed, p, threads),
    }
    return factories[algorithm]()


_HGB_NAMES = {"n_estimators": "max_iter", "num_leaves": "max_leaf_nodes", "min_child_samples": "min_samples_leaf",
              "reg_lambda": "l2_regularization", "learning_rate": "learning_rate"}


def _lightgbm(classification: bool, seed: int, params: dict[str, Any], threads: int) -> Any:
    """Azure's ``LightGBM``: the lightgbm package; scikit-learn's histogram gradient boosting without it."""
    try:
        import lightgbm
    except ImportError:  # same algorithm family, slower on small tables
        from sklearn import ensemble

        translated = {_HGB_NAMES[k]: v for k, v in params.items() if k in _HGB_NAMES}
        cls = ensemble.HistGradientBoostingClassifier if classification else ensemble.HistGradientBoostingRegressor
        return cls(random_state=seed, **translated)
    settings = {"verbose": -1, "random_state": seed, "n_jobs": -1 if threads in (-1, 0) else threads, **params}
    if settings.get("subsample", 1.0) < 1.0:
        settings.setdefault("subsample_freq", 1)
    cls = lightgbm.LGBMClassifier if classification else lightgbm.LGBMRegressor
    return cls(**settings)


def _calibrated(estimator: Any) -> Any:
    """Probabilities for a linear SVM: sigmoid calibration over 3 shuffled, stratified folds (not the rows'
    order: a table sorted by a column would calibrate each fold model on rows outside its range)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import StratifiedKFold

    return CalibratedClassifierCV(estimator, cv=StratifiedKFold(3, shuffle=True, random_state=estimator.random_state))


def _xgb_defaults(threads: int) -> dict[str, Any]:
    return {"n_estimators": 100, "tree_method": "hist", "n_jobs": None if threads in (-1, 0) else threads,
            "verbosity": 0}


def _xgb_classifier(seed: int, params: dict[str, Any], threads: int = 1) -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(random_state=seed, **{**_xgb_defaults(threads), **params})


def _xgb_regressor(seed: int, params: dict[str, Any], threads: int = 1) -> Any:
    from xgboost import XGBRegressor

    return XGBRegressor(random_state=seed, **{**_xgb_defaults(threads), **params})


class LogTransformer:
    """Azure's ``LogTransformer`` of regression targets: ``log(y)``, or, when the training targets reach
    down to ``1e-5`` or below, the log of ``y`` scaled linearly into ``[1e-5, 1]`` (targets below the training
    minimum are clipped to it)."""

    lower_range = 1e-5

    def fit(self, y: np.ndarray) -> LogTransformer:
        y = np.asarray(y, dtype=float)
        self.y_min_, self.y_max_ = float(np.min(y)), float(np.max(y))
        self.scaled_ = self.y_min_ <= self.lower_range
        return self

    def _scale(self, y: np.ndarray) -> np.ndarray:
        if not self.scaled_:
            return y
        span = max(self.y_max_ - self.y_min_, 1e-12)
        return self.lower_range + (np.maximum(y, self.y_min_) - self.y_min_) * (1 - self.lower_range) / span

    def transform(self, y: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(self._scale(np.asarray(y, dtype=float)), self.lower_range if self.scaled_ else 1e-300))

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        y = np.exp(np.asarray(z, dtype=float))
        if not self.scaled_:
            return y
        span = max(self.y_max_ - self.y_min_, 1e-12)
        return self.y_min_ + (y - self.lower_range) * span / (1 - self.lower_range)


class YTransformedRegressor(RegressorMixin, BaseEstimator):
    """A regressor that learns a transformed target (Azure's ``PipelineWithYTransformations``): ``y_transformer``
    names the transformer (``LogTransformer``), ``predict`` answers on the target's own scale."""

    def __init__(self, estimator: Any, y_transformer: str = "LogTransformer") -> None:
        self.estimator = estimator
        self.y_transformer = y_transformer

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> YTransformedRegressor:
        from sklearn.utils.validation import check_array, column_or_1d

        if y is None:
            raise ValueError("YTransformedRegressor requires y to be passed, but the target y is None")
        y = column_or_1d(check_array(y, ensure_2d=False, dtype=float), warn=True)
        if hasattr(X, "shape") and getattr(X, "ndim", 2) == 2:
            self.n_features_in_ = X.shape[1]
        self.transformer_ = LogTransformer().fit(y)
        self.estimator_ = clone(self.estimator)
        target = self.transformer_.transform(y)
        if sample_weight is not None:
            self.estimator_.fit(X, target, sample_weight=sample_weight)
        else:
            self.estimator_.fit(X, target)
        return self

    def predict(self, X: Any) -> np.ndarray:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        return self.transformer_.inverse_transform(self.estimator_.predict(X))

    @property
    def feature_importances_(self) -> np.ndarray:
        return self.estimator_.feature_importances_

    def __sklearn_tags__(self) -> Any:
        """The wrapped estimator's input tags (sparse input, missing values)."""
        from sklearn.utils import get_tags

        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        tags.input_tags.sparse, tags.input_tags.allow_nan = inner.input_tags.sparse, inner.input_tags.allow_nan
        return tags


class LabelEncodedClassifier(ClassifierMixin, BaseEstimator):
    """Fits ``estimator`` on labels encoded as 0..k-1 and answers in the original labels."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LabelEncodedClassifier:
        from sklearn.utils.multiclass import check_classification_targets

        if y is None:
            raise ValueError("LabelEncodedClassifier requires y to be passed, but the target y is None")
        check_classification_targets(y)
        if getattr(X, "ndim", 2) == 2 and hasattr(X, "shape"):
            self.n_features_in_ = X.shape[1]
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
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        proba = self.estimator_.predict_proba(X)
        if proba.shape[1] == len(self.classes_):
            return proba
        full = np.zeros((proba.shape[0], len(self.classes_)))
        full[:, self.estimator_.classes_] = proba
        return full

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    @property
    def feature_importances_(self) -> np.ndarray:
        return self.estimator_.feature_importances_

    def __sklearn_tags__(self) -> Any:
        """The wrapped estimator's input tags (sparse input, missing values), a classifier's output tags."""
        from sklearn.utils import get_tags

        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        tags.input_tags.sparse, tags.input_tags.allow_nan = inner.input_tags.sparse, inner.input_tags.allow_nan
        return tags


# The first iterations: a portfolio of fast, strong defaults (Azure also opens with LightGBM and
# XGBoost); later iterations sample the spaces below or perturb the best point found so far. On a
# 30-second budget only the first two to six children finish, so the first ones are the strongest
# per second measured on 14 real tables (benchmarks/README.md): a regularised LightGBM (scikit-style
# defaults overfit small or imbalanced tables), a linear model, a light XGBoost, extra trees.
_LGBM_FIRST = {"learning_rate": 0.05, "n_estimators": 200, "num_leaves": 15, "min_child_samples": 20,
               "subsample": 0.8, "colsample_bytree": 0.7, "reg_lambda": 1.0}
_LGBM_SLOW = {"learning_rate": 0.05, "n_estimators": 300, "num_leaves": 15, "min_child_samples": 10,
              "reg_lambda": 1.0, "subsample": 0.8, "colsample_bytree": 0.7}
_LGBM_SMALL = {"learning_rate": 0.03, "n_estimators": 400, "num_leaves": 7, "min_child_samples": 25,
               "reg_lambda": 3.0, "colsample_bytree": 0.5}
_XGB_LIGHT = {"n_estimators": 200, "learning_rate": 0.06, "max_depth": 5, "subsample": 0.8, "colsample_bytree": 0.7,
              "min_child_weight": 2}
_XGB = {"n_estimators": 300, "learning_rate": 0.05, "max_depth": 4, "subsample": 0.8, "colsample_bytree": 0.8}
_XGB_DEEP = {"n_estimators": 400, "learning_rate": 0.02, "max_depth": 6, "subsample": 0.7, "colsample_bytree": 0.6,
             "min_child_weight": 3}
_TREES = {"n_estimators": 150, "min_samples_leaf": 2, "max_features": "sqrt"}
_XGB_DEEPER = {"n_estimators": 400, "learning_rate": 0.05, "max_depth": 7, "subsample": 0.8, "colsample_bytree": 0.7,
               "min_child_weight": 3}
_LGBM_LARGE = {"learning_rate": 0.05, "n_estimators": 600, "num_leaves": 63, "min_child_samples": 20, "subsample": 0.8,
               "colsample_bytree": 0.7, "reg_lambda": 1.0}
_LGBM_MID = {"learning_rate": 0.05, "n_estimators": 400, "num_leaves": 31, "min_child_samples": 20, "subsample": 0.8,
             "colsample_bytree": 0.7, "reg_lambda": 1.0}
# the Gram matrix once (features x features), then coordinate descent costs nothing per row: 10x faster on tall tables
_ENET = {"alpha": 0.003, "l1_ratio": 0.5, "tol": 1e-3, "selection": "random", "precompute": True}
WARM_START: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
    "classification": [
        ("MaxAbsScaler", "LightGBM", _LGBM_FIRST),
        ("MaxAbsScaler", "LogisticRegression", {"C": 1.0}),
        ("MaxAbsScaler", "XGBoostClassifier", _XGB_LIGHT),
        ("MaxAbsScaler", "ExtremeRandomTrees", _TREES),
        ("MaxAbsScaler", "LightGBM", {}),
        ("MaxAbsScaler", "RandomForest", {"n_estimators": 200, "min_samples_leaf": 2, "max_features": "sqrt"}),
        ("StandardScalerWrapper", "LightGBM", _LGBM_SLOW),
        ("StandardScalerWrapper", "LogisticRegression", {"C": 0.03}),
        ("MaxAbsScaler", "XGBoostClassifier", _XGB_DEEP),
        ("MaxAbsScaler", "LightGBM", _LGBM_SMALL),
        ("MaxAbsScaler", "XGBoostClassifier", _XGB),
        ("MaxAbsScaler", "LogisticRegression", {"C": 10.0}),
        ("StandardScalerWrapper", "KNN", {"n_neighbors": 25, "weights": "distance"}),
        ("MinMaxScaler", "GradientBoosting", {}),
    ],
    "regression": [  # measured on 12 regressions (benchmarks/README.md): capacity pays from a few thousand rows
        ("MaxAbsScaler", "LightGBM", _LGBM_FIRST),
        ("MaxAbsScaler", "XGBoostRegressor", _XGB_DEEPER),
        ("StandardScalerWrapper", "ElasticNet", _ENET),
        ("MaxAbsScaler", "LightGBM", _LGBM_LARGE),
        ("MaxAbsScaler", "ExtremeRandomTrees", {**_TREES, "max_features": 0.5}),
        ("MaxAbsScaler", "XGBoostRegressor", _XGB_LIGHT),
        ("StandardScalerWrapper", "LightGBM", _LGBM_MID),
        ("MaxAbsScaler", "RandomForest", {"n_estimators": 200, "min_samples_leaf": 2, "max_features": 0.5}),
        ("MaxAbsScaler", "LightGBM", {}),
        ("StandardScalerWrapper", "ElasticNet", {"alpha": 0.05, "l1_ratio": 0.5, "precompute": True}),
        ("MaxAbsScaler", "XGBoostRegressor", _XGB_DEEP),
        ("MaxAbsScaler", "LightGBM", _LGBM_SMALL),
        ("MaxAbsScaler", "XGBoostRegressor", _XGB),
        ("StandardScalerWrapper", "KNN", {"n_neighbors": 15, "weights": "distance"}),
        ("MinMaxScaler", "GradientBoosting", {}),
        ("StandardScalerWrapper", "LassoLars", {"alpha": 0.001}),
    ],
}
_STATISTICAL_START: list[tuple[str, str, dict[str, Any]]] = [
    ("", "SeasonalNaive", {}), ("", "Naive", {}), ("", "ExponentialSmoothing", {}), ("", "AutoArima", {}),
    ("", "SeasonalAverage", {}), ("", "Average", {}), ("", "Arimax", {}), ("", "Prophet", {})]
WARM_START["forecasting"] = [  # the cheap, strong statistical models first, then the learners on lag features
    *_STATISTICAL_START[:3],
    ("StandardScalerWrapper", "ElasticNet", {"alpha": 0.001, "l1_ratio": 0.5}),
    ("StandardScalerWrapper", "LightGBM", {"n_estimators": 150, "learning_rate": 0.08, "num_leaves": 15,
                                           "min_child_samples": 10}),
    _STATISTICAL_START[3],
    ("MaxAbsScaler", "ExtremeRandomTrees", _TREES),
    *_STATISTICAL_START[4:],
    ("MaxAbsScaler", "XGBoostRegressor", _XGB),
    ("MaxAbsScaler", "LightGBM", _LGBM_SMALL),
    ("MaxAbsScaler", "RandomForest", {"n_estimators": 200, "min_samples_leaf": 2, "max_features": 0.5}),
]
# How often random search picks each family (families Azure names but that rarely win get less).
SEARCH_WEIGHTS = {"LightGBM": 4, "XGBoostClassifier": 4, "XGBoostRegressor": 4, "ExtremeRandomTrees": 2,
                  "RandomForest": 2, "LogisticRegression": 2, "ElasticNet": 2, "GradientBoosting": 1, "KNN": 1,
                  "SGD": 0.5, "LassoLars": 1, "DecisionTree": 0.5, "LinearSVM": 0.5, "SVM": 0.2,
                  "MultinomialNaiveBayes": 0.3, "BernoulliNaiveBayes": 0.3,
                  # forecasting's statistical models have no hyperparameters: the portfolio tries each once
                  "Naive": 1e-6, "SeasonalNaive": 1e-6, "Average": 1e-6, "SeasonalAverage": 1e-6,
                  "ExponentialSmoothing": 1e-6, "AutoArima": 1e-6, "Arimax": 1e-6, "Prophet": 1e-6}


def perturb(algorithm: str, params: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """A random neighbour of ``params``: numbers scaled by a log-normal factor, within the space's type."""
    out = dict(params)
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or rng.random() < 0.4:
            continue
        factor = float(np.exp(rng.normal(0, 0.35)))
        if isinstance(value, int):
            out[name] = max(2, int(round(value * factor)))
        else:
            new = value * factor
            out[name] = min(new, 1.0) if name in ("subsample", "colsample_bytree", "max_features", "l1_ratio") else new
    if out == params:
        return sample_params(algorithm, rng)
    return out


def sample_params(algorithm: str, rng: np.random.Generator) -> dict[str, Any]:
    """A random point of ``algorithm``'s hyperparameter space."""
    def log_uniform(low: float, high: float) -> float:
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))

    spaces: dict[str, Any] = {
        "LightGBM": lambda: {"learning_rate": log_uniform(0.01, 0.3), "num_leaves": int(rng.integers(4, 64)),
                             "min_child_samples": int(rng.integers(5, 60)), "reg_lambda": log_uniform(1e-3, 10),
                             "n_estimators": int(rng.integers(50, 500)), "subsample": float(rng.uniform(0.5, 1.0)),
                             "colsample_bytree": float(rng.uniform(0.3, 1.0))},
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
        "ElasticNet": lambda: {"alpha": log_uniform(1e-4, 1.0), "l1_ratio": float(rng.uniform(0.05, 0.95)),
                               "precompute": True},
        "LassoLars": lambda: {"alpha": log_uniform(1e-5, 1.0)},
        "SVM": lambda: {"C": log_uniform(0.1, 10)},
        "LinearSVM": lambda: {"C": log_uniform(0.01, 10)},
        "MultinomialNaiveBayes": lambda: {"alpha": log_uniform(0.01, 10)},
        "BernoulliNaiveBayes": lambda: {"alpha": log_uniform(0.01, 10)},
        **{name: dict for name in ("Naive", "SeasonalNaive", "Average", "SeasonalAverage", "ExponentialSmoothing",
                                   "AutoArima", "Arimax", "Prophet")},
    }
    return spaces[algorithm]()


def _xgb_space(rng: np.random.Generator, log_uniform: Any) -> dict[str, Any]:
    return {"learning_rate": log_uniform(0.02, 0.3), "max_depth": int(rng.integers(2, 9)),
            "n_estimators": int(rng.integers(50, 400)), "subsample": float(rng.uniform(0.6, 1.0)),
            "colsample_bytree": float(rng.uniform(0.5, 1.0)), "reg_lambda": log_uniform(1e-3, 10)}


def preprocessor_for(algorithm: str, rng: np.random.Generator) -> str:
    """A scaler that suits ``algorithm`` (naive Bayes needs non-negative features; statistical forecasters none)."""
    if algorithm == "MultinomialNaiveBayes":
        return "MinMaxScaler"
    if algorithm in ("Naive", "SeasonalNaive", "Average", "SeasonalAverage", "ExponentialSmoothing", "AutoArima",
                     "Arimax", "Prophet"):
        return ""
    return str(rng.choice(SCALERS))
