"""Azure's final iterations: VotingEnsemble (Caruana ensemble selection) and StackEnsemble.

Both are chosen and scored from the children's out-of-fold predictions, so they are scored on the
same folds as every other child without fitting anything again. The fitted ensembles (the last
step of the model pipeline) keep Azure's class names.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from . import metrics as M
from .task_types.registry import get_task
from .tasks import FoldData, aligned_probabilities, average, fold_metrics


def fold_score(data: FoldData, metric: str, prediction: np.ndarray) -> float:
    """The primary metric of out-of-fold predictions, averaged over the folds."""
    values = []
    for _, valid in data.splits:
        values.append(data.kind.primary_value(data, metric, valid, prediction[valid]))
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def caruana(data: FoldData, metric: str, oofs: Sequence[np.ndarray], scores: Sequence[float], *,
            iterations: int = 15, init_size: int = 5, stop: Callable[[], bool] | None = None) -> list[float]:
    """Ensemble selection with replacement (Caruana et al. 2004), as Azure does it.

    Starts from up to ``init_size`` of the best models within 5% of the best score, then adds, for
    ``iterations`` rounds, the model that most improves the averaged prediction (fewer rounds when
    ``stop()`` says the time is up). Returns one weight per model, multiples of 1/k.
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
        if stop is not None and stop():
            break
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


def bagged_caruana(data: FoldData, metric: str, oofs: Sequence[np.ndarray], scores: Sequence[float], *,
                   iterations: int = 15, init_size: int = 5, stop: Callable[[], bool] | None = None) -> list[float]:
    """Caruana selection bagged over the folds (after Caruana et al. 2006, "Getting the most out of ensemble
    selection"): the mean of the weights ``caruana`` chooses on every fold and with each fold left out in turn.

    With 3 folds, a member that helps on one fold only keeps a quarter of the weight selection on every fold gives
    it. The blend is never worse than its best member on the folds: when the averaged weights score worse, the
    weights chosen on every fold are returned (``caruana``'s, which start from the best member). With fewer than
    two folds this is ``caruana``. When ``stop()`` says the time is up, the weights chosen so far are averaged.
    """
    from dataclasses import replace

    chosen = [caruana(data, metric, oofs, scores, iterations=iterations, init_size=init_size, stop=stop)]
    if len(data.splits) < 2:
        return chosen[0]
    for k in range(len(data.splits)):
        if stop is not None and stop():
            break
        others = replace(data, splits=[s for j, s in enumerate(data.splits) if j != k])
        chosen.append(caruana(others, metric, oofs, [fold_score(others, metric, o) for o in oofs],
                              iterations=iterations, init_size=init_size, stop=stop))
    bagged = np.mean(chosen, axis=0)
    best = min(scores) if metric in M.MINIMIZE else max(scores)
    if M.better(metric, best, fold_score(data, metric, blend(oofs, bagged))):
        return chosen[0]
    return bagged.tolist()


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


class OutOfTime(Exception):
    """An ensemble could not be finished within what is left of the budget."""


def stack_oof(data: FoldData, oofs: Sequence[np.ndarray], train_percentage: float = 0.2,
              out_of_time: Callable[[float], bool] | None = None) -> np.ndarray:
    """Out-of-fold predictions of a stack: the meta-learner of each fold learns from the other folds.

    After each fold, ``out_of_time(seconds)`` is asked whether the folds left and the final meta-learner (as long
    as the folds so far took each) still fit in the budget; when they do not, ``OutOfTime`` is raised."""
    import time

    from sklearn.model_selection import KFold

    features = meta_features(data.task, oofs)
    out = np.full_like(oofs[0], np.nan)
    splits = data.splits
    if len(splits) == 1:  # one validation set: cross-validate the meta-learner inside it
        valid = splits[0][1]
        inner = KFold(n_splits=min(5, len(valid)), shuffle=True, random_state=data.seed)
        splits = [(valid[a], valid[b]) for a, b in inner.split(valid)]
    known = np.isfinite(features).all(axis=1)
    started = time.perf_counter()
    for done, (train, valid) in enumerate(splits, start=1):
        train = train[known[train]]
        learner = meta_learner(data.task, data.seed).fit(features[train], data.y[train])
        out[valid] = _meta_predict(learner, features[valid], data)
        per_fold = (time.perf_counter() - started) / done
        if out_of_time is not None and done < len(splits) and out_of_time(per_fold * (len(splits) - done + 1)):
            raise OutOfTime(f"its meta-learner takes {per_fold:.1f} s per fold; {len(splits) - done} folds and the "
                            f"final fit would end past the experiment timeout")
    return out


def _meta_predict(learner: Any, features: np.ndarray, data: FoldData) -> np.ndarray:
    return data.kind.predict(learner, features, data)


def score_all(data: FoldData, prediction: np.ndarray) -> dict[str, float]:
    """Every metric of an ensemble's out-of-fold predictions (fold by fold, averaged)."""
    rows = [valid for _, valid in data.splits]
    return average([fold_metrics(data, valid, prediction[valid]) for valid in rows])


# -- the fitted ensembles (last step of the model pipeline) -----------------------------------------
# The engine builds them from members it already fitted (``assemble``); ``clone()`` + ``fit()`` refits
# them from scratch, and that refit does not depend on the order of the rows: the StackEnsemble's
# internal folds are shuffled (seeded by ``random_state``) and stratified for classification. Azure's
# own StackEnsemble uses ``StratifiedKFold(training_cv_folds)`` without shuffling, which on a table
# sorted by a column trains the meta-learner on predictions for rows outside each fold model's range.
class _Ensemble(BaseEstimator):
    """What both ensembles share: fitted when their members are, refitted on clones of them."""

    def _base(self) -> list[tuple[str, Any]]:
        """The members as given (fitted when the engine assembled the ensemble, unfitted after ``clone``)."""
        raise NotImplementedError

    def _given(self) -> list[Any]:
        """Every estimator given to ``__init__`` that must be fitted before ``predict`` without ``fit``."""
        return [e for _, e in self._base()]

    def __sklearn_is_fitted__(self) -> bool:
        if hasattr(self, "fitted_"):
            return True
        given = self._given()
        return bool(given) and all(_is_fitted(e) for e in given)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Models pickled before ``training_cv_folds`` and ``random_state`` existed load with their defaults."""
        if "base_learners" in state:
            state.setdefault("training_cv_folds", 5)
            state.setdefault("random_state", 0)
        super().__setstate__(state)

    def _fitted_members(self) -> list[tuple[str, Any]]:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        return getattr(self, "fitted_", None) or list(self._base())


class _EnsembleClassifier(ClassifierMixin, _Ensemble):
    classes: Any

    @property
    def classes_(self) -> np.ndarray:
        """The classes seen by ``fit``, else the ones the ensemble was assembled with."""
        fitted = self.__dict__.get("_fit_classes")
        return np.asarray(self.classes if fitted is None else fitted)

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)  # type: ignore[attr-defined]
        return self.classes_[np.argmax(proba, axis=1)]


class PreFittedSoftVotingClassifier(_EnsembleClassifier):
    """Weighted average of fitted pipelines' class probabilities (Azure's VotingEnsemble)."""

    def __init__(self, estimators: list[tuple[str, Any]], weights: list[float], classes: Any = None) -> None:
        self.estimators = estimators
        self.weights = weights
        self.classes = classes

    def _base(self) -> list[tuple[str, Any]]:
        return list(self.estimators)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> PreFittedSoftVotingClassifier:
        """Refit every member on ``X``, ``y`` (the weights stay): what ``clone`` + ``fit`` expect."""
        X, y = _checked(self, X, y)
        self._fit_classes = np.unique(y)
        self.fitted_ = [(name, _refit(e, X, y, sample_weight)) for name, e in self.estimators]
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        members = self._fitted_members()
        X = _rows_checked(self, X)
        total = sum(w * _proba(e, X, self.classes_) for (_, e), w in zip(members, self.weights))
        assert isinstance(total, np.ndarray)
        return total / float(sum(self.weights))


class PreFittedSoftVotingRegressor(RegressorMixin, _Ensemble):
    """Weighted average of fitted pipelines' predictions (Azure's VotingEnsemble for regression)."""

    def __init__(self, estimators: list[tuple[str, Any]], weights: list[float]) -> None:
        self.estimators = estimators
        self.weights = weights

    def _base(self) -> list[tuple[str, Any]]:
        return list(self.estimators)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> PreFittedSoftVotingRegressor:
        """Refit every member on ``X``, ``y`` (the weights stay)."""
        X, y = _checked(self, X, y)
        self.fitted_ = [(name, _refit(e, X, y, sample_weight)) for name, e in self.estimators]
        return self

    def predict(self, X: Any) -> np.ndarray:
        members = self._fitted_members()
        X = _rows_checked(self, X)
        total = sum(w * np.asarray(e.predict(X), dtype=float) for (_, e), w in zip(members, self.weights))
        assert isinstance(total, np.ndarray)
        return total / float(sum(self.weights))


class StackEnsembleClassifier(_EnsembleClassifier):
    """Fitted base pipelines and a meta-learner over their probabilities (Azure's StackEnsemble).

    ``fit`` refits it as Azure's does: the meta-learner learns from the base learners' predictions
    over ``training_cv_folds`` folds, then the base learners are refitted on every row. The folds
    are stratified and shuffled with ``random_state``, so the result does not depend on row order.
    """

    def __init__(self, base_learners: list[tuple[str, Any]], meta_learner: Any, classes: Any = None,
                 training_cv_folds: int = 5, random_state: int | None = 0) -> None:
        self.base_learners = base_learners
        self.meta_learner = meta_learner
        self.classes = classes
        self.training_cv_folds = training_cv_folds
        self.random_state = random_state

    def _base(self) -> list[tuple[str, Any]]:
        return list(self.base_learners)

    def _given(self) -> list[Any]:
        return [e for _, e in self.base_learners] + [self.meta_learner]

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> StackEnsembleClassifier:
        """Refit the meta-learner on the base learners' out-of-fold probabilities, then the base learners."""
        from sklearn.base import clone

        X, y = _checked(self, X, y)
        classes, counts = np.unique(y, return_counts=True)
        self._fit_classes = classes
        splits = _folds(y, self.training_cv_folds, self.random_state, stratify=int(counts.min()))
        oof = [_out_of_fold(e, X, y, sample_weight, splits, lambda m, rows: _proba(m, rows, classes))
               for _, e in self.base_learners]
        self.meta_ = clone(self.meta_learner).fit(meta_features("classification", oof), y)
        self.fitted_ = [(name, _refit(e, X, y, sample_weight)) for name, e in self.base_learners]
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        members = self._fitted_members()
        X = _rows_checked(self, X)
        meta = getattr(self, "meta_", self.meta_learner)
        features = meta_features("classification", [_proba(e, X, self.classes_) for _, e in members])
        return _proba(meta, features, self.classes_)


class StackEnsembleRegressor(RegressorMixin, _Ensemble):
    """Fitted base pipelines and a meta-learner over their predictions (Azure's StackEnsemble).

    ``fit`` works as the classifier's, with shuffled (unstratified) folds.
    """

    def __init__(self, base_learners: list[tuple[str, Any]], meta_learner: Any, training_cv_folds: int = 5,
                 random_state: int | None = 0) -> None:
        self.base_learners = base_learners
        self.meta_learner = meta_learner
        self.training_cv_folds = training_cv_folds
        self.random_state = random_state

    def _base(self) -> list[tuple[str, Any]]:
        return list(self.base_learners)

    def _given(self) -> list[Any]:
        return [e for _, e in self.base_learners] + [self.meta_learner]

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> StackEnsembleRegressor:
        """Refit the meta-learner on the base learners' out-of-fold predictions, then the base learners."""
        from sklearn.base import clone

        X, y = _checked(self, X, y)
        y = np.asarray(y, dtype=float)
        splits = _folds(y, self.training_cv_folds, self.random_state, stratify=0)
        oof = [_out_of_fold(e, X, y, sample_weight, splits,
                            lambda m, rows: np.asarray(m.predict(rows), dtype=float).reshape(-1, 1))
               for _, e in self.base_learners]
        self.meta_ = clone(self.meta_learner).fit(meta_features("regression", oof), y)
        self.fitted_ = [(name, _refit(e, X, y, sample_weight)) for name, e in self.base_learners]
        return self

    def predict(self, X: Any) -> np.ndarray:
        members = self._fitted_members()
        X = _rows_checked(self, X)
        meta = getattr(self, "meta_", self.meta_learner)
        features = meta_features("regression", [np.asarray(e.predict(X), dtype=float).reshape(-1, 1)
                                                for _, e in members])
        return np.asarray(meta.predict(features), dtype=float)


def _folds(y: np.ndarray, n_splits: int, seed: int | None, *, stratify: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The StackEnsemble's internal folds, shuffled; stratified when ``stratify`` (the smallest class's
    row count, 0 for regression) leaves a row of every class in each fold (the engine's rule)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    n_rows = len(y)
    n_splits = max(2, min(int(n_splits), n_rows))
    if stratify >= n_splits:
        return list(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(np.zeros(n_rows), y))
    return list(KFold(n_splits, shuffle=True, random_state=seed).split(np.zeros(n_rows)))


def _out_of_fold(estimator: Any, X: Any, y: np.ndarray, sample_weight: Any, splits: list[tuple[np.ndarray, np.ndarray]],
                 predict: Any) -> np.ndarray:
    """Predictions for every row by a clone of ``estimator`` fitted without the row's fold."""
    out: np.ndarray | None = None
    for train, valid in splits:
        weights = None if sample_weight is None else np.asarray(sample_weight)[train]
        model = _refit(estimator, _rows(X, train), y[train], weights)
        prediction = predict(model, _rows(X, valid))
        if out is None:
            out = np.zeros((len(y), prediction.shape[1]))
        out[valid] = prediction
    assert out is not None
    return out


def _rows(X: Any, index: np.ndarray) -> Any:
    return X.iloc[index] if hasattr(X, "iloc") else X[index]


def _checked(estimator: Any, X: Any, y: Any) -> tuple[Any, np.ndarray]:
    """``fit``'s inputs validated as scikit-learn does (frames stay frames: the members may be whole pipelines)."""
    from sklearn.utils.validation import check_X_y

    if y is None:
        raise ValueError(f"{type(estimator).__name__} requires y to be passed, but the target y is None")
    if hasattr(X, "iloc"):
        y = np.asarray(y)
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
        estimator.n_features_in_ = X.shape[1]
    else:
        X, y = check_X_y(X, y, ensure_all_finite=False, y_numeric=isinstance(estimator, RegressorMixin))
        estimator.n_features_in_ = X.shape[1]
    if isinstance(estimator, ClassifierMixin):
        from sklearn.utils.multiclass import check_classification_targets

        check_classification_targets(y)
    return X, y


def _rows_checked(estimator: Any, X: Any) -> Any:
    """``predict``'s input: an array with the columns ``fit`` saw (frames go to the members as they are)."""
    from sklearn.utils.validation import check_array

    if hasattr(X, "iloc"):
        return X
    X = check_array(X, ensure_all_finite=False)
    expected = getattr(estimator, "n_features_in_", None)
    if expected is not None and X.shape[1] != expected:
        raise ValueError(f"X has {X.shape[1]} features, but {type(estimator).__name__} is expecting "
                         f"{expected} features as input")
    return X


def _is_fitted(estimator: Any) -> bool:
    """Whether a member is fitted (anything without ``fit`` is taken as given, i.e. fitted)."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    except TypeError:  # not a scikit-learn estimator: nothing to fit
        return True
    return True


def _refit(estimator: Any, X: Any, y: Any, sample_weight: Any) -> Any:
    from sklearn.base import clone
    from sklearn.utils.validation import has_fit_parameter

    fresh = clone(estimator)
    if sample_weight is not None and hasattr(fresh, "steps"):
        return fresh.fit(X, y, **{f"{fresh.steps[-1][0]}__sample_weight": sample_weight})
    if sample_weight is not None and has_fit_parameter(fresh, "sample_weight"):
        return fresh.fit(X, y, sample_weight=sample_weight)
    return fresh.fit(X, y)


def _proba(estimator: Any, X: Any, classes: np.ndarray) -> np.ndarray:
    return aligned_probabilities(estimator.predict_proba(X), estimator.classes_, classes)
