"""Plots of the best AutoML model, from the validation predictions its run kept.

As on Azure, a child's charts come from its validation predictions: every row predicted by the
fold model that did not see it. The run keeps them for its best child and its ensembles
(``outputs/validation_predictions.csv``), so the report reads them instead of fitting anything.
Runs made before runs kept them (and tasks that draw their own views) are evaluated by
cross-validating an unfitted clone of the best pipeline, fold by fold. Feature importance is
the permutation importance of the fitted model over the raw columns, measured with the run's
primary metric: on the validation data when the model did not learn from it, else on training rows.
Figures are matplotlib (Agg backend) PNGs, returned base64-encoded for inlining.
"""

from __future__ import annotations

import base64
import io
import math
import pickle
import warnings
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from framework.reporting import Progress, read_tabular, single_file

if TYPE_CHECKING:
    from framework.reporting import Lineage
    from framework.workspace import RunRecord

MAX_ROWS = 20_000
SEED = 0

_PROGRESS: ContextVar[Progress | None] = ContextVar("report_progress", default=None)


def _tick(what: str, done: int, total: int) -> None:
    progress = _PROGRESS.get()
    if progress is not None:
        progress(what, done, total)
BLUE, ORANGE, GREEN, RED, GREY = "#0969da", "#bc4c00", "#1a7f37", "#cf222e", "#8c959f"
PALETTE = ["#0969da", "#bc4c00", "#1a7f37", "#8250df", "#cf222e", "#0a7c86", "#9a6700", "#6e7781"]


class PlotsUnavailable(Exception):
    """The best model cannot be evaluated (data gone, model missing...); the message says why."""


@dataclass
class Figure:
    key: str
    title: str
    caption: str
    png: str  # base64


@dataclass
class Evaluation:
    task: str
    label: str
    n_rows: int
    n_splits: int
    algorithm: str
    metrics: dict[str, float] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    intro: str = ""  # what the evaluation shows, when it is not the out-of-fold cross-validation


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    if not getattr(fig, "amlstep_margins", False):  # figures from ``_axes`` have their margins set already
        fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110, facecolor="white")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _axes(title: str, xlabel: str, ylabel: str, size: tuple[float, float] = (5.2, 4.2),
          left: float = 0.9) -> tuple[Any, Any]:
    """One titled axes with margins fixed in inches (``left``: room for the tick labels and the y label).

    Fixed margins spare ``tight_layout``'s extra text layout pass, a third of the time of drawing a figure.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    width, height = size
    fig.subplots_adjust(left=min(left, 0.6 * width) / width, right=1 - 0.2 / width, top=1 - 0.4 / height,
                        bottom=0.6 / height)
    fig.amlstep_margins = True  # type: ignore[attr-defined]
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.25)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def load_training(lineage: Lineage, automl: RunRecord) -> tuple[Any, Any, dict[str, Any]]:
    """The AutoML step's training rows as (X, y, settings), label-less rows dropped."""
    X, y, settings, _ = load_training_rows(lineage, automl)
    return X, y, settings


def load_training_rows(lineage: Lineage, automl: RunRecord) -> tuple[Any, Any, dict[str, Any], int]:
    """(X, y, settings, n_train): the rows the run learned from, in its order (label-less rows dropped,
    validation data after the ``n_train`` training rows): the ``row`` of its kept predictions."""
    settings = automl.params
    label = settings.get("label_column_name")
    source = lineage.inputs(automl).get("training_data")
    if not label or not source:
        raise PlotsUnavailable("the AutoML step records no label column or training data")
    try:
        location = lineage.location(source)
        frame = read_tabular(location, f"training data {source!r}")
    except Exception as exc:
        raise PlotsUnavailable(f"the training data is not available: {exc}") from None
    if label not in frame.columns:
        raise PlotsUnavailable(f"label column {label!r} is not in the training data")
    n_train = int(frame[label].notna().sum())
    validation = lineage.inputs(automl).get("validation_data")
    if validation:
        try:
            import pandas as pd

            frame = pd.concat([frame, read_tabular(lineage.location(validation), "validation data")],
                              ignore_index=True)
        except Exception:
            pass
    frame = frame[frame[label].notna()].reset_index(drop=True)
    drop = [c for c in [label, settings.get("weight_column_name"), *(settings.get("cv_split_column_names") or [])]
            if c and c in frame.columns]
    return frame.drop(columns=drop), frame[label].to_numpy(), settings, n_train


def load_model(lineage: Lineage, automl: RunRecord) -> Any:
    record = next((r for r in (automl.outputs or {}).values() if isinstance(r, dict) and r.get("type") == "model"), None)
    if record is None:
        raise PlotsUnavailable("the AutoML step recorded no model output")
    path = lineage.workspace.path / record["path"]
    try:
        with open(single_file(path, "model output"), "rb") as f:
            return pickle.load(f)  # noqa: S301 - the workspace's own datastore
    except Exception as exc:
        raise PlotsUnavailable(f"the best model cannot be loaded: {exc}") from None


def kept_predictions(lineage: Lineage, child_id: str | None) -> Any | None:
    """The validation predictions a child run kept (a DataFrame), or None when it kept none."""
    import pandas as pd

    from .artifacts import VALIDATION_PREDICTIONS

    if not child_id:
        return None
    path = lineage.workspace.artifacts_dir(child_id) / VALIDATION_PREDICTIONS
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path, dtype={"y_true": str})
    except Exception as exc:
        raise PlotsUnavailable(f"the validation predictions of run {child_id} cannot be read: {exc}") from None


def evaluate(lineage: Lineage, automl: RunRecord, progress: Progress | None = None) -> Evaluation:
    """The AutoML step's best model: its kept validation predictions with the task's figures and feature
    importance, or (runs that kept none) the out-of-fold evaluation of a refitted clone."""
    import numpy as np

    from .task_types.registry import get_task

    settings = automl.params
    try:
        task = get_task(str(settings.get("task") or "classification"))
    except KeyError as exc:
        raise PlotsUnavailable(str(exc).strip("'\"")) from None
    origin = lineage.origin(automl)
    kept = kept_predictions(lineage, origin.properties.get("best_child_run_id"))
    token = _PROGRESS.set(progress)
    try:
        if kept is not None and task.reads_validation_predictions:
            evaluation = predictions_evaluation(task, kept, settings)
            _add_importance(lineage, automl, task, evaluation, kept, str(origin.properties.get("primary_metric")
                                                                          or settings.get("primary_metric")),
                            origin.properties.get("best_child_run_id"))
            return evaluation
        X, y, settings = load_training(lineage, automl)
        model = load_model(lineage, automl)
        notes = []
        if len(X) > MAX_ROWS:
            rng = np.random.default_rng(SEED)
            keep = np.sort(rng.choice(len(X), MAX_ROWS, replace=False))
            X, y = X.iloc[keep].reset_index(drop=True), y[keep]
            notes.append(f"plots use a random sample of {MAX_ROWS} training rows")
        if settings.get("weight_column_name"):
            notes.append("sample weights are not applied in these plots")
        if kept is None and task.reads_validation_predictions:
            notes.append("this run kept no validation predictions (it predates amlstep keeping them): the best "
                         "pipeline was cross-validated again for these plots")
        return task.report_evaluation(model, X, y, settings, notes)
    finally:
        _PROGRESS.reset(token)


def predictions_evaluation(task: Any, frame: Any, settings: Mapping[str, Any]) -> Evaluation:
    """Metrics and figures of kept validation predictions: no model is fitted or even loaded."""
    y, prediction, classes = task.read_validation_predictions(frame)
    folds = frame["fold"].to_numpy()
    weights = frame["weight"].to_numpy(dtype=float) if "weight" in frame.columns else None
    n_splits = len(set(folds.tolist()))
    evaluation = Evaluation(task.name, str(settings.get("label_column_name")), len(y), n_splits, "",
                            notes=[], metrics=pooled_metrics(task, y, prediction, classes, weights))
    how = (f"the {len(y)} validation rows" if n_splits == 1 else
           f"the {len(y)} training rows of {n_splits} cross-validation folds")
    evaluation.intro = (f"the validation predictions its run kept, for {how}: every point below is a prediction for "
                        f"a row by a model that did not learn from it, as the leaderboard scored them.")
    if weights is not None:
        evaluation.notes.append("the metrics apply the sample weights; the plots count every row once")
    _tick("plotting", 0, 1)
    task.report_figures(evaluation, y, prediction, classes)
    _tick("plotting", 1, 1)
    return evaluation


def pooled_metrics(task: Any, y: Any, prediction: Any, classes: Any, weights: Any = None) -> dict[str, float]:
    """The task's metrics (Azure's definitions) over every out-of-fold row at once."""
    import numpy as np

    from .tasks import FoldData

    rows = np.arange(len(y))
    y_min, y_max = task.label_range(y, len(y))
    data = FoldData(task.name, np.zeros((len(y), 0)), y, weights, [(rows, rows)], rows, classes, y_min, y_max, SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return task.fold_metrics(data, rows, prediction)


def cross_validated_evaluation(task: Any, model: Any, X: Any, y: Any, settings: Mapping[str, Any],
                               notes: list[str]) -> Evaluation:
    """Rows as independent samples: an unfitted clone of ``model`` fitted fold by fold, the task's figures, importance."""
    import numpy as np
    from sklearn.base import clone

    from .tasks import aligned_probabilities

    n_splits = int(settings.get("n_cross_validations") or 5)
    algorithm = model.steps[-1][0] if hasattr(model, "steps") else type(model).__name__
    y, cv, n_splits = task.report_cv(y, n_splits, SEED)
    classes = np.unique(y) if task.report_predict_method == "predict_proba" else None  # class probabilities
    oof: Any = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k, (train, valid) in enumerate(cv.split(X, y)):
            _tick(f"refitting the best pipeline (fold {k + 1} of {n_splits})", k, n_splits)
            try:
                fitted = clone(model).fit(X.iloc[train], y[train])
                prediction, fitted_classes = task.report_predict(fitted, X.iloc[valid])
            except Exception as exc:
                raise PlotsUnavailable(f"cross-validating the best pipeline failed: {type(exc).__name__}: {exc}") \
                    from None
            if classes is not None:
                prediction = aligned_probabilities(prediction, fitted_classes, classes)
            if oof is None:
                oof = np.zeros((len(y), prediction.shape[1]))
            oof[valid] = prediction
        _tick(f"refitting the best pipeline (fold {n_splits} of {n_splits})", n_splits, n_splits)
    evaluation = Evaluation(task.name, str(settings.get("label_column_name")), len(X), n_splits, algorithm, notes=notes,
                            metrics=pooled_metrics(task, y, oof, classes))
    task.report_figures(evaluation, y, oof, classes)
    metric = str(settings.get("primary_metric") or "")
    figure = importance_figure(task, model, X, y, metric, f"{len(X)} training rows the model learned from",
                               evaluation.notes)
    if figure is not None:
        evaluation.figures.append(figure)
    return evaluation


def _add_importance(lineage: Lineage, automl: RunRecord, task: Any, evaluation: Evaluation, kept: Any,
                    metric: str, best_child_id: str | None) -> None:
    """Permutation importance of the fitted best model: the explanation the run kept with its best child, else
    computed here, on the validation data the model did not learn from, else on a sample of its training rows
    (a note says why when the data or the model is gone)."""
    import numpy as np

    explanation = kept_explanation(lineage, best_child_id)
    if explanation is not None:
        figure = explanation_figure(explanation)
        if figure is not None:
            evaluation.figures.append(figure)
        return
    try:
        X, y, _, n_train = load_training_rows(lineage, automl)
        model = load_model(lineage, automl)
    except PlotsUnavailable as exc:
        evaluation.notes.append(f"feature importance needs the model and the training data: {exc}")
        return
    held_out = kept["row"].to_numpy()
    held_out = held_out[held_out >= n_train] if len(X) > n_train else held_out[:0]
    if len(held_out):
        rows, where = held_out, "validation rows the model did not learn from"
    else:
        rows, where = np.arange(len(X)), "training rows the model learned from"
    figure = importance_figure(task, model, X.iloc[rows].reset_index(drop=True), y[rows], metric,
                               f"{len(rows)} {where}", evaluation.notes)
    if figure is not None:
        evaluation.figures.append(figure)


def kept_explanation(lineage: Lineage, child_id: str | None) -> dict[str, Any] | None:
    """The explanation (permutation importance) a run kept with its best child, or None."""
    import json

    from .explain import EXPLANATION

    if not child_id:
        return None
    path = lineage.workspace.artifacts_dir(child_id) / EXPLANATION
    try:
        explanation = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    wanted = {"metric", "where", "repeats", "columns", "mean", "std"}
    if not isinstance(explanation, dict) or not wanted <= explanation.keys():
        return None
    lengths = {len(explanation[k]) if isinstance(explanation[k], list) else -1 for k in ("columns", "mean", "std")}
    return explanation if len(lengths) == 1 and -1 not in lengths else None


def importance_figure(task: Any, model: Any, X: Any, y: Any, metric: str, where: str,
                      notes: list[str]) -> Figure | None:
    """Permutation importance of each raw column, measured with ``metric`` (the run's primary metric); when it
    cannot be measured, a note in ``notes`` says why."""
    from .explain import permutation_importance

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            explanation = permutation_importance(task, model, X, y, metric, where,
                                                 tick=lambda done, total: _tick("feature importance", done, total))
    except Exception as exc:
        notes.append(f"feature importance could not be measured: {type(exc).__name__}: {exc}")
        return None
    return explanation_figure(explanation)


def explanation_figure(explanation: Mapping[str, Any]) -> Figure | None:
    """The bar chart of an explanation (``explain.permutation_importance``'s result)."""
    import numpy as np

    from . import metrics as M

    metric = str(explanation["metric"])
    means, spreads = np.asarray(explanation["mean"], dtype=float), np.asarray(explanation["std"], dtype=float)
    if not len(means):
        return None
    order = np.argsort(means)[::-1][:15][::-1]
    names = [str(explanation["columns"][i]) for i in order]
    change = "Rise" if metric in M.MINIMIZE else "Drop"
    fig, ax = _axes("Feature importance", f"{change} in {metric} when the column is shuffled", "",
                    size=(5.2, max(4.2, 0.9 + 0.3 * len(names))), left=0.25 + 0.085 * max(map(len, names)))
    ax.barh(names, means[order], xerr=spreads[order], color=BLUE, alpha=0.85, error_kw={"ecolor": GREY, "lw": 1})
    ax.axvline(0, color=GREY, lw=1)
    ax.grid(axis="y", alpha=0)
    return Figure("feature_importance", "Feature importance",
                  f"Permutation importance of each raw column for the fitted model: the {change.lower()} in {metric} "
                  f"when its values are shuffled, on {explanation['where']} ({explanation['repeats']} repeats).",
                  _png(fig))


def classification_figures(evaluation: Evaluation, y: Any, proba: Any, classes: Any) -> None:
    """ROC, precision-recall, confusion matrix and calibration of out-of-fold class probabilities."""
    import numpy as np
    from sklearn import metrics

    classes = np.asarray(classes)
    predicted = classes[np.argmax(proba, axis=1)]
    onehot = (y[:, None] == classes[None, :]).astype(int)
    binary = len(classes) == 2
    shown = [(1, classes[1])] if binary else [(j, c) for j, c in enumerate(classes) if 0 < onehot[:, j].sum() < len(y)]

    fig, ax = _axes("ROC curve", "False positive rate", "True positive rate")
    for j, cls in shown:
        fpr, tpr, _ = metrics.roc_curve(onehot[:, j], proba[:, j])
        ax.plot(fpr, tpr, lw=2, color=PALETTE[j % len(PALETTE)],
                label=f"class {cls}: AUC {metrics.auc(fpr, tpr):.3f}")
    if not binary:
        fpr, tpr, _ = metrics.roc_curve(onehot.ravel(), proba.ravel())
        ax.plot(fpr, tpr, lw=1.5, ls=":", color="#24292f", label=f"micro-average: AUC {metrics.auc(fpr, tpr):.3f}")
    ax.plot([0, 1], [0, 1], ls="--", color=GREY, lw=1, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right", fontsize=9, frameon=False)
    evaluation.figures.append(Figure("roc", "ROC curve", "Out-of-fold predicted probabilities"
                                     + ("" if binary else ", one class against the rest") + ".", _png(fig)))

    fig, ax = _axes("Precision-recall curve", "Recall", "Precision")
    for j, cls in shown:
        precision, recall, _ = metrics.precision_recall_curve(onehot[:, j], proba[:, j])
        ap = metrics.average_precision_score(onehot[:, j], proba[:, j])
        colour = PALETTE[j % len(PALETTE)]
        ax.plot(recall, precision, lw=2, color=colour, label=f"class {cls}: AP {ap:.3f}")
        ax.axhline(onehot[:, j].mean(), ls="--", lw=1, color=colour, alpha=0.5)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left", fontsize=9, frameon=False)
    evaluation.figures.append(Figure("precision_recall", "Precision-recall curve",
                                     "Dashed lines: the share of each class (a random model's precision).", _png(fig)))

    matrix = metrics.confusion_matrix(y, predicted, labels=classes)
    fig, ax = _axes("Confusion matrix", "Predicted label", "True label")
    ax.grid(False)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{matrix[i, j]}\n{shares[i, j]:.0%}", ha="center", va="center", fontsize=10,
                    color="white" if shares[i, j] > 0.55 else "#24292f")
    ax.set_xticks(range(len(classes)), [str(c) for c in classes])
    ax.set_yticks(range(len(classes)), [str(c) for c in classes])
    evaluation.figures.append(Figure("confusion_matrix", "Confusion matrix",
                                     "Counts and share of each true class, from out-of-fold predictions.", _png(fig)))

    from sklearn.calibration import calibration_curve

    fig, ax = _axes("Calibration", "Mean predicted probability", "Observed frequency")
    for j, cls in shown:
        bins = 10 if len(y) >= 200 else 5
        observed, predicted_mean = calibration_curve(onehot[:, j], proba[:, j], n_bins=bins, strategy="quantile")
        ax.plot(predicted_mean, observed, marker="o", lw=2, color=PALETTE[j % len(PALETTE)],
                label=f"class {cls}")
    ax.plot([0, 1], [0, 1], ls="--", color=GREY, lw=1, label="perfectly calibrated")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper left", fontsize=9, frameon=False)
    evaluation.figures.append(Figure("calibration", "Calibration",
                                     "Predicted probability against the observed share, in quantile bins.", _png(fig)))


def regression_figures(evaluation: Evaluation, y: Any, predicted: Any) -> None:
    """Predicted against true values and the residuals of out-of-fold predictions."""
    import numpy as np
    from sklearn import metrics

    y, predicted = np.asarray(y, dtype=float), np.asarray(predicted, dtype=float).ravel()
    residuals = y - predicted
    r2 = float(metrics.r2_score(y, predicted))
    rmse = float(math.sqrt(metrics.mean_squared_error(y, predicted)))

    fig, ax = _axes("Predicted vs true", "True value", "Predicted value")
    ax.scatter(y, predicted, s=12, alpha=0.55, color=BLUE, edgecolors="none")
    low, high = float(min(np.min(y), np.min(predicted))), float(max(np.max(y), np.max(predicted)))
    ax.plot([low, high], [low, high], ls="--", color=GREY, lw=1, label="ideal")
    ax.legend(loc="upper left", fontsize=9, frameon=False)
    evaluation.figures.append(Figure("predicted_vs_true", "Predicted vs true",
                                     f"Out-of-fold predictions; R² {r2:.3f}.", _png(fig)))

    fig, ax = _axes("Residuals", "Predicted value", "Residual (true − predicted)")
    ax.scatter(predicted, residuals, s=12, alpha=0.55, color=ORANGE, edgecolors="none")
    ax.axhline(0, ls="--", color=GREY, lw=1)
    evaluation.figures.append(Figure("residuals", "Residuals", "Residuals should scatter evenly around zero.",
                                     _png(fig)))

    fig, ax = _axes("Residual distribution", "Residual", "Rows")
    ax.hist(residuals, bins=min(40, max(10, len(y) // 20)), color=ORANGE, alpha=0.8)
    ax.axvline(0, ls="--", color=GREY, lw=1)
    evaluation.figures.append(Figure("residual_histogram", "Residual distribution",
                                     f"RMSE {rmse:.4g}.", _png(fig)))


def metric_bounds(metric: str) -> tuple[float, float]:
    """The values ``metric`` can take (AUC and accuracy never exceed 1, errors never fall below 0)."""
    from framework.automl import CLASSIFICATION_METRICS

    if metric in ("r2_score", "explained_variance"):
        return -math.inf, 1.0
    if metric in ("spearman_correlation", "matthews_correlation"):
        return -1.0, 1.0
    if metric == "log_loss" or "error" in metric:
        return 0.0, math.inf
    if metric in CLASSIFICATION_METRICS:
        return 0.0, 1.0
    return -math.inf, math.inf


def score_limits(scores: list[float], metric: str) -> tuple[float, float]:
    """The score axis: the scores with a margin, never past the values ``metric`` can take."""
    low, high = min(scores), max(scores)
    margin = max((high - low) * 0.12, 0.002)
    floor, ceiling = metric_bounds(metric)
    bottom, top = max(low - margin, floor), min(high + margin, ceiling)
    return (bottom, top) if bottom < top else (low - margin, high + margin)


def leaderboard_figure(rows: list[dict[str, Any]], metric: str, minimize: bool) -> Figure | None:
    """Score of each iteration, with the best score so far."""
    points = [(r["iteration"], r["score"]) for r in rows if r.get("score") is not None
              and not (isinstance(r["score"], float) and math.isnan(r["score"]))]
    if not points:
        return None
    points.sort()
    fig, ax = _axes("Score by iteration", "Iteration", metric)
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    best, running = [], None
    for value in ys:
        running = value if running is None else (min(running, value) if minimize else max(running, value))
        best.append(running)
    ax.scatter(xs, ys, color=BLUE, s=28, zorder=3, label="iteration")
    ax.step(xs, best, where="post", color=GREEN, lw=2, label="best so far")
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    ax.set_ylim(*score_limits(ys, metric))
    ax.legend(loc="lower right" if not minimize else "upper right", fontsize=9, frameon=False)
    if len(xs) < 15:
        ax.set_xticks(xs)
    return Figure("leaderboard", "Score by iteration", f"{metric} of each child run.", _png(fig))


def forecasting_evaluation(model: Any, X: Any, y: Any, settings: Mapping[str, Any], notes: list[str]) -> Evaluation:
    """The forecaster's own view: history and the next horizon with a 5%-95% band per series, and the
    rolling-origin cross-validation error by horizon (no refit: the model keeps both)."""
    import numpy as np

    from .forecasting import future_rows

    if not hasattr(model, "forecast_quantiles"):
        raise PlotsUnavailable("the best model is not a forecaster (no forecast_quantiles)")
    t = model.transformer
    keys = list(t.history)[:6]
    evaluation = Evaluation("forecasting", str(settings.get("label_column_name")), len(X), t.n_folds,
                            model.algorithm or "forecaster", notes=list(notes),
                            intro=f"the next forecast horizon of each series with its 5%-95% band, and the error by "
                                  f"horizon of its {t.n_folds} rolling-origin cross-validation folds.")
    if len(t.history) > len(keys):
        evaluation.notes.append(f"the forecast plot shows {len(keys)} of {len(t.history)} series")
    try:
        bands = model.forecast_quantiles(future_rows(model, X, t.horizon, keys), quantiles=[0.05, 0.5, 0.95])
    except ValueError as exc:  # AutoMLDataError included
        evaluation.notes.append(f"the forecast plot is left out: {exc}")
    else:
        evaluation.figures.append(_forecast_figure(t, keys, bands, evaluation.label))
    errors = model.cv_error_by_horizon.get("mean_absolute_scaled_error") or []
    if errors:
        fig, ax = _axes("Error by horizon", "Horizon (periods after the origin)", "MASE")
        horizons = list(range(1, len(errors) + 1))
        ax.bar(horizons, errors, color=BLUE, alpha=0.85)
        ax.axhline(1.0, ls="--", color=GREY, lw=1, label="in-sample seasonal naive")
        ax.legend(fontsize=9, frameon=False)
        if len(horizons) <= 24:
            ax.set_xticks(horizons)
        evaluation.figures.append(Figure("error_by_horizon", "Error by horizon",
                                         f"Mean absolute scaled error of the rolling-origin folds ({t.n_folds} "
                                         f"origins), by periods ahead.", _png(fig)))
        evaluation.metrics["mean_absolute_scaled_error"] = float(np.nanmean(errors))
        mae = model.cv_error_by_horizon.get("mean_absolute_error") or []
        if mae:
            evaluation.metrics["mean_absolute_error"] = float(np.nanmean(mae))
    return evaluation


def _forecast_figure(t: Any, keys: list[tuple[Any, ...]], bands: Any, label: str) -> Figure:
    """The last points of each series in ``keys`` and its forecast ``bands`` (quantiles 0.05, 0.5, 0.95); columns
    known in the future are held at their last known values (``future_rows``), which the caption says."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    columns = 2 if len(keys) > 1 else 1
    rows = math.ceil(len(keys) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 2.8 * rows), squeeze=False)
    for index, key in enumerate(keys):
        ax = axes[index // columns][index % columns]
        times, values, _ = t.history[key]
        shown = max(4 * t.horizon, 3 * max(t.seasonality, 1), 24)
        ax.plot(times[-shown:], values[-shown:], color=BLUE, lw=1.6, label="history")
        mask = np.ones(len(bands), dtype=bool)
        for column, value in zip(t.id_columns, key):
            mask &= (bands[column].astype(str) == str(value)).to_numpy()
        part = bands[mask]
        ax.fill_between(part[t.time_column], part[0.05], part[0.95], color=ORANGE, alpha=0.2, label="5%-95%")
        ax.plot(part[t.time_column], part[0.5], color=ORANGE, lw=1.8, label="forecast")
        ax.set_title(", ".join(map(str, key)) if key else label, fontsize=10, loc="left")
        ax.grid(alpha=0.25)
        ax.tick_params(axis="x", labelsize=8, rotation=30)
        if index == 0:
            ax.legend(fontsize=8, frameon=False, loc="upper left")
    for index in range(len(keys), rows * columns):
        axes[index // columns][index % columns].axis("off")
    held = ""
    if t.exog_columns:
        held = (f" {', '.join(map(repr, t.exog_columns))} {'is' if len(t.exog_columns) == 1 else 'are'} held at each "
                f"series' last known value: the model forecasts with {'it' if len(t.exog_columns) == 1 else 'them'}, "
                f"and the training data holds no future values.")
    return Figure("forecast", "Forecast", f"The last points of each series and the next {t.horizon} periods, with the "
                                          f"5%-95% band from the cross-validation errors.{held}", _png(fig))
