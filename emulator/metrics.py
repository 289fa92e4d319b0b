"""Azure Automated ML's scalar metrics, with Azure's definitions.

Classification metrics of binary problems are averaged over both classes. Regression metrics
named ``normalized_*`` are divided by the range of the *training* labels.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np

from framework.automl import CLASSIFICATION_METRICS, MINIMIZE, REGRESSION_METRICS  # noqa: E402,F401 (re-exported)


def goal(metric: str) -> str:
    """Azure's goal string, e.g. ``AUC_weighted_max``."""
    return f"{metric}_{'min' if metric in MINIMIZE else 'max'}"


def better(metric: str, a: float, b: float) -> bool:
    """Whether score ``a`` beats score ``b`` for ``metric`` (NaN never wins)."""
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return False
    if b is None or (isinstance(b, float) and math.isnan(b)):
        return True
    return a < b if metric in MINIMIZE else a > b


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[Any] | np.ndarray,
                           sample_weight: np.ndarray | None = None) -> dict[str, float]:
    """Every scalar classification metric, from true labels and class probabilities.

    ``classes`` orders the columns of ``proba``; predictions are the argmax.
    """
    from sklearn import metrics as skm

    classes = np.asarray(classes)
    y_true = np.asarray(y_true)
    proba = np.clip(np.asarray(proba, dtype=float), 0.0, 1.0)
    y_pred = classes[np.argmax(proba, axis=1)]
    onehot = (y_true[:, None] == classes[None, :]).astype(int)
    present = onehot.sum(axis=0) > 0
    result: dict[str, float] = {}
    w = sample_weight
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for average in ("macro", "micro", "weighted"):
            result[f"AUC_{average}"] = _safe(lambda: skm.roc_auc_score(
                onehot[:, present] if average != "micro" else onehot, proba[:, present] if average != "micro" else proba,
                average=average, sample_weight=w))
            result[f"average_precision_score_{average}"] = _safe(lambda: skm.average_precision_score(
                onehot[:, present] if average != "micro" else onehot, proba[:, present] if average != "micro" else proba,
                average=average, sample_weight=w))
        result.update(_confusion_scores(y_true, y_pred, classes, w))
        result["balanced_accuracy"] = result["recall_score_macro"]
        result["log_loss"] = _safe(lambda: skm.log_loss(y_true, proba, labels=classes, sample_weight=w))
    n_classes = len(classes)
    per_class_recall = [((y_pred == c) & (y_true == c)).sum() / max((y_true == c).sum(), 1)
                        for c, p in zip(classes, present) if p]
    macro_recall = float(np.mean(per_class_recall)) if per_class_recall else float("nan")
    result["norm_macro_recall"] = max(0.0, (macro_recall - 1 / n_classes) / (1 - 1 / n_classes)) \
        if n_classes > 1 else float("nan")
    result["weighted_accuracy"] = weighted_accuracy(y_true, y_pred, classes)
    return {k: float(v) for k, v in result.items()}


def _confusion_scores(y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray,
                      sample_weight: np.ndarray | None) -> dict[str, float]:
    """Precision, recall and F1 (macro, micro, weighted; zero_division=0 over every class), accuracy and
    Matthews correlation from one (weighted) confusion matrix: scikit-learn's definitions, computed once
    instead of once per metric (ensemble selection scores many predictions)."""
    index = {c: i for i, c in enumerate(classes.tolist())}
    k = len(classes)
    t = np.array([index.get(v, -1) for v in y_true.tolist()])
    p = np.array([index[v] for v in y_pred.tolist()])
    w = np.ones(len(t)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    keep = t >= 0
    matrix = np.zeros((k, k))
    np.add.at(matrix, (t[keep], p[keep]), w[keep])
    tp, support, predicted = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)

    def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.divide(a, b, out=np.zeros_like(a, dtype=float), where=b > 0)

    precision, recall = ratio(tp, predicted), ratio(tp, support)
    f1 = ratio(2 * tp, support + predicted)
    total = support.sum()
    out: dict[str, float] = {}
    for name, values in (("precision_score", precision), ("recall_score", recall), ("f1_score", f1)):
        out[f"{name}_macro"] = float(values.mean()) if k else float("nan")
        out[f"{name}_weighted"] = float((values * support).sum() / total) if total > 0 else 0.0
    micro_p = float(tp.sum() / predicted.sum()) if predicted.sum() > 0 else 0.0
    micro_r = float(tp.sum() / total) if total > 0 else 0.0
    out["precision_score_micro"], out["recall_score_micro"] = micro_p, micro_r
    out["f1_score_micro"] = 2 * micro_p * micro_r / (micro_p + micro_r) if micro_p + micro_r > 0 else 0.0
    n = w.sum()
    out["accuracy"] = float(np.sum(w * (np.asarray(y_true) == np.asarray(y_pred))) / n) if n > 0 else float("nan")
    cov_tp = tp.sum() * total - support @ predicted
    cov_pp = total ** 2 - predicted @ predicted
    cov_tt = total ** 2 - support @ support
    out["matthews_correlation"] = float(np.clip(cov_tp / np.sqrt(cov_tt * cov_pp), -1, 1)) if cov_tt * cov_pp > 0 else 0.0
    return out


def weighted_accuracy(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[Any] | np.ndarray) -> float:
    """Accuracy with each sample weighted by its class's share of the samples."""
    y_true = np.asarray(y_true)
    shares = {c: float(np.mean(y_true == c)) for c in classes}
    weights = np.array([shares[c] for c in y_true])
    if weights.sum() == 0:
        return float("nan")
    return float(np.sum(weights * (np.asarray(y_pred) == y_true)) / weights.sum())


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray, y_min: float, y_max: float,
                       sample_weight: np.ndarray | None = None) -> dict[str, float]:
    """Every scalar regression metric; ``y_min``/``y_max`` are the training labels' range."""
    from scipy import stats
    from sklearn import metrics as skm

    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    w = sample_weight
    span = abs(y_max - y_min) or 1.0
    result: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result["explained_variance"] = _safe(lambda: skm.explained_variance_score(y_true, y_pred, sample_weight=w))
        result["r2_score"] = _safe(lambda: max(-1.0, skm.r2_score(y_true, y_pred, sample_weight=w)))
        result["spearman_correlation"] = _safe(lambda: stats.spearmanr(y_true, y_pred).statistic)
        result["mean_absolute_error"] = _safe(lambda: skm.mean_absolute_error(y_true, y_pred, sample_weight=w))
        result["median_absolute_error"] = _safe(lambda: skm.median_absolute_error(y_true, y_pred))
        result["root_mean_squared_error"] = _safe(
            lambda: math.sqrt(skm.mean_squared_error(y_true, y_pred, sample_weight=w)))
        if (y_true < 0).any() or (y_pred < 0).any() or y_min < 0:
            result["root_mean_squared_log_error"] = float("nan")
            result["normalized_root_mean_squared_log_error"] = float("nan")
        else:
            rmsle = math.sqrt(skm.mean_squared_log_error(y_true, y_pred, sample_weight=w))
            result["root_mean_squared_log_error"] = rmsle
            log_span = abs(math.log1p(y_max) - math.log1p(y_min)) or 1.0
            result["normalized_root_mean_squared_log_error"] = rmsle / log_span
        nonzero = y_true != 0
        result["mean_absolute_percentage_error"] = float(
            np.mean(np.abs((y_true[nonzero] - y_pred[nonzero]) / y_true[nonzero])) * 100) if nonzero.any() else float("nan")
    result["normalized_mean_absolute_error"] = result["mean_absolute_error"] / span
    result["normalized_median_absolute_error"] = result["median_absolute_error"] / span
    result["normalized_root_mean_squared_error"] = result["root_mean_squared_error"] / span
    return {k: float(v) for k, v in result.items()}


def _safe(compute: Any) -> float:
    try:
        value = float(compute())
    except (ValueError, ZeroDivisionError, IndexError):
        return float("nan")
    return value


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[Any] | np.ndarray) -> dict[str, Any]:
    """Azure's ``confusion_matrix`` artifact: class labels and the matrix (rows true, columns predicted)."""
    from sklearn import metrics as skm

    matrix = skm.confusion_matrix(y_true, y_pred, labels=list(classes))
    return {"schema_type": "confusion_matrix", "schema_version": "1.0.0",
            "data": {"class_labels": [str(c) for c in classes], "matrix": matrix.tolist()}}


def accuracy_table(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[Any] | np.ndarray, n_thresholds: int = 101
                   ) -> dict[str, Any]:
    """Azure's ``accuracy_table`` artifact: TP/FP/TN/FN per class at probability and percentile thresholds."""
    y_true = np.asarray(y_true)
    thresholds = np.linspace(0, 1, n_thresholds)
    probability_tables: list[list[list[int]]] = []
    percentile_tables: list[list[list[int]]] = []
    for index, cls in enumerate(classes):
        positive = y_true == cls
        scores = np.asarray(proba)[:, index]
        percentile_cuts = np.percentile(scores, np.linspace(0, 100, n_thresholds)) if len(scores) else thresholds
        for cuts, tables in ((thresholds, probability_tables), (percentile_cuts, percentile_tables)):
            rows = []
            for cut in cuts:
                predicted = scores >= cut
                rows.append([int((predicted & positive).sum()), int((predicted & ~positive).sum()),
                             int((~predicted & ~positive).sum()), int((~predicted & positive).sum())])
            tables.append(rows)
    return {"schema_type": "accuracy_table", "schema_version": "1.0.1",
            "data": {"probability_tables": probability_tables, "percentile_tables": percentile_tables,
                     "probability_thresholds": thresholds.tolist(),
                     "percentile_thresholds": np.linspace(0, 100, n_thresholds).tolist(),
                     "class_labels": [str(c) for c in classes]}}


def primary_value(metric: str, y_true: np.ndarray, prediction: np.ndarray, classes: Sequence[Any] | np.ndarray | None,
                  y_min: float = 0.0, y_max: float = 1.0, sample_weight: np.ndarray | None = None) -> float:
    """One metric only (fast, for ensemble selection); same definitions as the full sets.

    ``prediction`` is class probabilities (classification) or a column of values (regression).
    """
    from sklearn import metrics as skm

    y_true = np.asarray(y_true)
    w = sample_weight
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if classes is None:
            pred = np.asarray(prediction, dtype=float).reshape(len(y_true), -1)[:, 0]
            span = abs(y_max - y_min) or 1.0
            if metric == "r2_score":
                return _safe(lambda: max(-1.0, skm.r2_score(y_true, pred, sample_weight=w)))
            if metric == "normalized_root_mean_squared_error":
                return _safe(lambda: math.sqrt(skm.mean_squared_error(y_true, pred, sample_weight=w)) / span)
            if metric == "normalized_mean_absolute_error":
                return _safe(lambda: skm.mean_absolute_error(y_true, pred, sample_weight=w) / span)
            return regression_metrics(y_true, pred, y_min, y_max, w)[metric]
        classes = np.asarray(classes)
        proba = np.clip(np.asarray(prediction, dtype=float), 0.0, 1.0)
        if metric == "AUC_weighted" and w is None:
            return auc_weighted(y_true, proba, classes)
        if metric == "AUC_weighted":
            onehot = (y_true[:, None] == classes[None, :]).astype(int)
            present = onehot.sum(axis=0) > 0
            return _safe(lambda: skm.roc_auc_score(onehot[:, present], proba[:, present], average="weighted",
                                                   sample_weight=w))
        if metric == "accuracy":
            return _safe(lambda: skm.accuracy_score(y_true, classes[np.argmax(proba, axis=1)], sample_weight=w))
        return classification_metrics(y_true, proba, classes, w)[metric]


def _binary_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties averaged: equal to sklearn's roc_auc_score."""
    from scipy.stats import rankdata

    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc_weighted(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[Any] | np.ndarray) -> float:
    """``AUC_weighted`` without sklearn's input checks (used thousands of times by ensemble selection)."""
    classes = np.asarray(classes)
    if len(classes) == 2:
        return _binary_auc(y_true == classes[1], proba[:, 1])
    total, weight = 0.0, 0
    for index, cls in enumerate(classes):
        positive = y_true == cls
        support = int(positive.sum())
        if support == 0 or support == len(y_true):
            continue
        total += support * _binary_auc(positive, proba[:, index])
        weight += support
    return total / weight if weight else float("nan")
