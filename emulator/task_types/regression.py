"""Regression: numeric labels, plain K-fold, Azure's regression metrics normalised by the training range."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from framework.automl import metric_names

from .base import Task

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ..tasks import FoldData


class Regression(Task):
    name = "regression"
    primary_metrics = ("spearman_correlation", "normalized_root_mean_squared_error", "r2_score",
                       "normalized_mean_absolute_error")
    default_primary_metric = "normalized_root_mean_squared_error"
    models = ("ElasticNet", "GradientBoosting", "DecisionTree", "KNN", "LassoLars", "SGD", "RandomForest",
              "ExtremeRandomTrees", "LightGBM", "XGBoostRegressor")
    metrics = metric_names.REGRESSION_METRICS
    leader_metrics = ("normalized_root_mean_squared_error", "r2_score", "spearman_correlation",
                      "normalized_mean_absolute_error")
    reads_validation_predictions = True

    def encode_labels(self, label: str, y: pd.Series) -> tuple[np.ndarray, np.ndarray | None]:
        import pandas as pd

        from ..engine import AutoMLDataError

        numeric = pd.to_numeric(y, errors="coerce")
        if numeric.isna().any():
            bad = y[numeric.isna()].astype(str).unique()[:3]
            raise AutoMLDataError(f"label column {label!r} must be numeric for {self.name}; found values like "
                                  f"{', '.join(map(repr, bad))}")
        return numeric.to_numpy(dtype=float), None

    def target_type(self, y: np.ndarray) -> str | None:
        return "continuous"

    def label_range(self, y: np.ndarray, n_train: int) -> tuple[float, float]:
        import numpy as np

        return float(np.min(y[:n_train])), float(np.max(y[:n_train]))

    def portfolio(self, data: FoldData | None) -> list[tuple[str, str, dict[str, Any]]]:
        """``warm_start``; for a positive target skewed to the right (prices), a LightGBM child that learns its log
        (Azure's ``LogTransformer``) joins the first children: measured on 12 regressions, it helps such targets
        and hurts counts and heavy-tailed wages, so it is tried only where it can win."""
        children = list(self.warm_start)
        if data is not None and _log_target_fits(data.y[data.fit_rows]):
            from ..models import _LGBM_MID

            children.insert(6, ("MaxAbsScaler", "LightGBM", {**_LGBM_MID, "y_transformer": "LogTransformer"}))
        return children

    def make_estimator(self, algorithm: str, params: dict[str, Any], seed: int, threads: int = 1) -> Any:
        from ..models import regressor

        return regressor(algorithm, params, seed, threads)

    def fold_metrics(self, data: FoldData, valid: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
        from .. import metrics as M

        weights = data.weights[valid] if data.weights is not None else None
        return M.regression_metrics(data.y[valid], prediction[:, 0], data.y_min, data.y_max, weights)

    def meta_learner(self, seed: int) -> Any:
        from sklearn.linear_model import RidgeCV

        return RidgeCV(alphas=(0.01, 0.1, 1.0, 10.0))

    def voting_ensemble(self, named: list[tuple[str, Any]], weights: list[float], data: FoldData) -> tuple[str, Any]:
        from ..ensemble import PreFittedSoftVotingRegressor

        return "prefittedsoftvotingregressor", PreFittedSoftVotingRegressor(named, weights)

    def stack_ensemble(self, named: list[tuple[str, Any]], meta: Any, data: FoldData) -> tuple[str, Any]:
        from ..ensemble import StackEnsembleRegressor

        return "stackensembleregressor", StackEnsembleRegressor(named, meta, random_state=data.seed)

    def report_cv(self, y: np.ndarray, n_splits: int, seed: int) -> tuple[np.ndarray, Any, int]:
        from sklearn.model_selection import KFold

        n_splits = max(2, min(n_splits, len(y) // 2))
        return y.astype(float), KFold(n_splits=n_splits, shuffle=True, random_state=seed), n_splits

    def report_figures(self, evaluation: Any, y: np.ndarray, oof: np.ndarray, classes: Any) -> None:
        from ..report_plots import regression_figures

        regression_figures(evaluation, y.astype(float), oof)


def _log_target_fits(y: np.ndarray) -> bool:
    """A target a log transform can help: positive, and skewed to the right but not heavy-tailed (skew 1 to 3)."""
    import numpy as np

    y = np.asarray(y, dtype=float)
    if len(y) < 50 or y.min() <= 0:
        return False
    centred = y - y.mean()
    spread = float(np.sqrt(np.mean(centred ** 2)))
    skew = float(np.mean(centred ** 3)) / spread ** 3 if spread > 0 else 0.0
    return 1.0 <= skew <= 3.0
