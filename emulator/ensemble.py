"""Azure's final iterations: VotingEnsemble (Caruana ensemble selection) and StackEnsemble.

Both are chosen and scored from the children's out-of-fold predictions, so they are scored on the
same folds as every other child without fitting anything again. The fitted ensembles (the last
step of the model pipeline) keep Azure's class names.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from . import metrics as M
from .task_types import get_task
from .tasks import FoldData, average, fold_metrics


def fold_score(data: FoldData, metric: str, prediction: np.ndarray) -> float:
    """The primary metric of out-of-fold predictions, averaged over the folds."""
    values = []
    for _, valid in data.splits:
        values.append(data.kind.primary_value(data, metric, valid, prediction[valid]))
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def caruana(data: FoldData, metric: str, oofs: Sequence[np.ndarray], scores: Sequence[float], *,
            iterations: int = 15, init_size: int = 5) -> list[float]:
    """Ensemble selection with replacement (Caruana et al. 2004), as Azure does it.

    Starts from up to ``init_size`` of the best models within 5% of the best score, then adds, for
    ``iterations`` rounds, the model that most improves the averaged prediction. Returns one weight
    per model, multiples of 1/k.
    """
    order = sorted(range(len(oofs)), key=lambda i: scores[i], reverse=metric not in M.MINIMIZE)
    best = scores[order[0]]
    tolerance = abs(best) * 0.05
    start = [i for i in order[:init_size]
             if (scores[i] >= best - tolerance if metric not in M.MINIMIZE else scores[i] <= best + tolerance)]
    counts = np.zeros(len(oofs))
    total = np.zeros_like(oofs[0])
    for i in start:
        counts[i] += 1
        total += oofs[i]
    current = fold_score(data, metric, total / counts.sum())
    if not M.better(metric, current, best) and len(start) > 1:  # the averaged start is worse: start from the best
        counts[:] = 0
        counts[order[0]] = 1
        total = oofs[order[0]].copy()
        current = best
    best_counts, best_score = counts.copy(), current
    for _ in range(iterations):
        n = counts.sum()
        candidates = [fold_score(data, metric, (total + oofs[i]) / (n + 1)) for i in order]
        pick = 0
        for j in range(1, len(order)):
            if M.better(metric, candidates[j], candidates[pick]):
                pick = j
        counts[order[pick]] += 1
        total += oofs[order[pick]]
        current = candidates[pick]
        if M.better(metric, current, best_score):
            best_counts, best_score = counts.copy(), current
    counts = best_counts
    return (counts / counts.sum()).tolist()


def blend(oofs: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    total = sum(w * o for w, o in zip(weights, oofs) if w > 0)
    assert isinstance(total, np.ndarray)
    return total


def meta_learner(task: str, seed: int) -> Any:
    """The StackEnsemble meta-learner of ``task``."""
    return get_task(task).meta_learner(seed)


def meta_features(task: str, predictions: Sequence[np.ndarray]) -> np.ndarray:
    """Stacked base predictions: logit-free probabilities (one column less for binary) or values."""
    return get_task(task).meta_features(predictions)


def stack_oof(data: FoldData, oofs: Sequence[np.ndarray], train_percentage: float = 0.2) -> np.ndarray:
    """Out-of-fold predictions of a stack: the meta-learner of each fold learns from the other folds."""
    from sklearn.model_selection import KFold

    features = meta_features(data.task, oofs)
    out = np.full_like(oofs[0], np.nan)
    splits = data.splits
    if len(splits) == 1:  # one validation set: cross-validate the meta-learner inside it
        valid = splits[0][1]
        inner = KFold(n_splits=min(5, len(valid)), shuffle=True, random_state=data.seed)
        splits = [(valid[a], valid[b]) for a, b in inner.split(valid)]
    known = np.isfinite(features).all(axis=1)
    for train, valid in splits:
        train = train[known[train]]
        learner = meta_learner(data.task, data.seed).fit(features[train], data.y[train])
        out[valid] = _meta_predict(learner, features[valid], data)
    return out


def _meta_predict(learner: Any, features: np.ndarray, data: FoldData) -> np.ndarray:
    return data.kind.predict(learner, features, data)


def score_all(data: FoldData, prediction: np.ndarray) -> dict[str, float]:
    """Every metric of an ensemble's out-of-fold predictions (fold by fold, averaged)."""
    rows = [valid for _, valid in data.splits]
    return average([fold_metrics(data, valid, prediction[valid]) for valid in rows])


# -- the fitted ensembles (last step of the model pipeline) -----------------------------------------
class PreFittedSoftVotingClassifier(ClassifierMixin, BaseEstimator):
    """Weighted average of fitted pipelines' class probabilities (Azure's VotingEnsemble)."""

    def __init__(self, estimators: list[tuple[str, Any]], weights: list[float], classes: Any = None) -> None:
        self.estimators = estimators
        self.weights = weights
        self.classes = classes

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> PreFittedSoftVotingClassifier:
        """Refit every member on ``X``, ``y`` (the weights stay): what ``clone`` + ``fit`` expect."""
        self.fitted_ = [(name, _refit(e, X, y, sample_weight)) for name, e in self.estimators]
        self.classes = np.unique(y)
        return self

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classes)

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def predict_proba(self, X: Any) -> np.ndarray:
        members = getattr(self, "fitted_", self.estimators)
        total = sum(w * _proba(e, X, self.classes_) for (_, e), w in zip(members, self.weights))
        assert isinstance(total, np.ndarray)
        return total / float(sum(self.weights))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class PreFittedSoftVotingRegressor(RegressorMixin, BaseEstimator):
    """Weighted average of fitted pipelines' predictions (Azure's VotingEnsemble for regression)."""

    def __init__(self, estimators: list[tuple[str, Any]], weights: list[float]) -> None:
        self.estimators = estimators
        self.weights = weights

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> PreFittedSoftVotingRegressor:
        self.fitted_ = [(name, _refit(e, X, y, sample_weight)) for name, e in self.estimators]
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def predict(self, X: Any) -> np.ndarray:
        members = getattr(self, "fitted_", self.estimators)
        total = sum(w * np.asarray(e.predict(X), dtype=float) for (_, e), w in zip(members, self.weights))
        assert isinstance(total, np.ndarray)
        return total / float(sum(self.weights))


class StackEnsembleClassifier(ClassifierMixin, BaseEstimator):
    """Fitted base pipelines and a meta-learner over their probabilities (Azure's StackEnsemble)."""

    def __init__(self, base_learners: list[tuple[str, Any]], meta_learner: Any, classes: Any = None) -> None:
        self.base_learners = base_learners
        self.meta_learner = meta_learner
        self.classes = classes

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> StackEnsembleClassifier:
        """Refit the base learners on all rows and the meta-learner on their 3-fold predictions."""
        from sklearn.base import clone
        from sklearn.model_selection import cross_val_predict

        self.classes = np.unique(y)
        oof = [cross_val_predict(clone(e), X, y, cv=3, method="predict_proba") for _, e in self.base_learners]
        self.meta_ = clone(self.meta_learner).fit(meta_features("classification", oof), y)
        self.fitted_ = [(name, _refit(e, X, y, sample_weight)) for name, e in self.base_learners]
        return self

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classes)

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def predict_proba(self, X: Any) -> np.ndarray:
        members = getattr(self, "fitted_", self.base_learners)
        meta = getattr(self, "meta_", self.meta_learner)
        features = meta_features("classification", [_proba(e, X, self.classes_) for _, e in members])
        proba = meta.predict_proba(features)
        aligned = np.zeros((len(features), len(self.classes_)))
        for j, cls in enumerate(meta.classes_):
            aligned[:, list(self.classes_).index(cls)] = proba[:, j]
        return aligned

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class StackEnsembleRegressor(RegressorMixin, BaseEstimator):
    """Fitted base pipelines and a meta-learner over their predictions (Azure's StackEnsemble)."""

    def __init__(self, base_learners: list[tuple[str, Any]], meta_learner: Any) -> None:
        self.base_learners = base_learners
        self.meta_learner = meta_learner

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> StackEnsembleRegressor:
        from sklearn.base import clone
        from sklearn.model_selection import cross_val_predict

        oof = [np.asarray(cross_val_predict(clone(e), X, y, cv=3), dtype=float)[:, None] for _, e in self.base_learners]
        self.meta_ = clone(self.meta_learner).fit(meta_features("regression", oof), y)
        self.fitted_ = [(name, _refit(e, X, y, sample_weight)) for name, e in self.base_learners]
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def predict(self, X: Any) -> np.ndarray:
        members = getattr(self, "fitted_", self.base_learners)
        meta = getattr(self, "meta_", self.meta_learner)
        features = meta_features("regression", [np.asarray(e.predict(X), dtype=float)[:, None] for _, e in members])
        return meta.predict(features)


def _refit(estimator: Any, X: Any, y: Any, sample_weight: Any) -> Any:
    from sklearn.base import clone

    fresh = clone(estimator)
    if sample_weight is not None and hasattr(fresh, "steps"):
        return fresh.fit(X, y, **{f"{fresh.steps[-1][0]}__sample_weight": sample_weight})
    return fresh.fit(X, y)


def _proba(estimator: Any, X: Any, classes: np.ndarray) -> np.ndarray:
    proba = estimator.predict_proba(X)
    fitted = list(estimator.classes_)
    if fitted == list(classes):
        return proba
    aligned = np.zeros((proba.shape[0], len(classes)))
    for j, cls in enumerate(fitted):
        aligned[:, list(classes).index(cls)] = proba[:, j]
    return aligned
