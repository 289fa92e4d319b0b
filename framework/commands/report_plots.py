"""Plots of the best AutoML model, computed honestly from out-of-fold predictions.

An unfitted clone of the best pipeline (featurizer included) is cross-validated on the AutoML
step's training data with ``cross_val_predict``: every row is predicted by a model that never
saw it. Feature importance is permutation importance on a held-out fold, over the raw columns.
Figures are matplotlib (Agg backend) PNGs, returned base64-encoded for inlining.
"""

from __future__ import annotations

import base64
import io
import math
import pickle
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..workspace import RunRecord
from .lineage import Lineage

MAX_ROWS = 20_000
SEED = 0
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
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110, facecolor="white")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _axes(title: str, xlabel: str, ylabel: str, size: tuple[float, float] = (5.2, 4.2)) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.25)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def load_training(lineage: Lineage, automl: RunRecord) -> tuple[Any, Any, dict[str, Any]]:
    """The AutoML step's training rows as (X, y, settings), label-less rows dropped."""
    from ..io import read_tabular

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
    return frame.drop(columns=drop), frame[label].to_numpy(), settings


def load_model(lineage: Lineage, automl: RunRecord) -> Any:
    from ..io import single_file

    record = next((r for r in (automl.outputs or {}).values() if isinstance(r, dict) and r.get("type") == "model"), None)
    if record is None:
        raise PlotsUnavailable("the AutoML step recorded no model output")
    path = lineage.workspace.path / record["path"]
    try:
        with open(single_file(path, "model output"), "rb") as f:
            return pickle.load(f)  # noqa: S301 - the workspace's own datastore
    except Exception as exc:
        raise PlotsUnavailable(f"the best model cannot be loaded: {exc}") from None


def evaluate(lineage: Lineage, automl: RunRecord) -> Evaluation:
    """Out-of-fold evaluation of the AutoML step's best model, with its figures (the task's own)."""
    import numpy as np

    from emulator.task_types import get_task

    X, y, settings = load_training(lineage, automl)
    model = load_model(lineage, automl)
    try:
        task = get_task(str(settings.get("task") or "classification"))
    except KeyError as exc:
        raise PlotsUnavailable(str(exc).strip("'\"")) from None
    notes = []
    if len(X) > MAX_ROWS:
        rng = np.random.default_rng(SEED)
        keep = np.sort(rng.choice(len(X), MAX_ROWS, replace=False))
        X, y = X.iloc[keep].reset_index(drop=True), y[keep]
        notes.append(f"plots use a random sample of {MAX_ROWS} training rows")
    if settings.get("weight_column_name"):
        notes.append("sample weights are not applied in these plots")
    return task.report_evaluation(model, X, y, settings, notes)


def cross_validated_evaluation(task: Any, model: Any, X: Any, y: Any, settings: Mapping[str, Any],
                               notes: list[str]) -> Evaluation:
    """Rows as independent samples: ``cross_val_predict`` of an unfitted clone, the task's figures, importance."""
    from sklearn.base import clone
    from sklearn.model_selection import cross_val_predict

    n_splits = int(settings.get("n_cross_validations") or 5)
    algorithm = model.steps[-1][0] if hasattr(model, "steps") else type(model).__name__
    y, cv, n_splits = task.report_cv(y, n_splits, SEED)
    estimator = clone(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            oof = cross_val_predict(estimator, X, y, cv=cv, method=task.report_predict_method)
        except Exception as exc:
            raise PlotsUnavailable(f"cross-validating the best pipeline failed: {type(exc).__name__}: {exc}") from None
    evaluation = Evaluation(task.name, str(settings.get("label_column_name")), len(X), n_splits, algorithm, notes=notes)
    task.report_figures(evaluation, y, oof, None)
    importance = _permutation_importance(model, X, y, cv, task.importance_scoring(y))
    if importance is not None:
        evaluation.figures.append(importance)
    return evaluation


def classification_figures(evaluation: Evaluation, y: Any, proba: Any, classes: Any) -> None:
    import numpy as np
    from sklearn import metrics

    predicted = classes[np.argmax(proba, axis=1)]
    onehot = (y[:, None] == classes[None, :]).astype(int)
    binary = len(classes) == 2
    evaluation.metrics["accuracy"] = float(metrics.accuracy_score(y, predicted))
    evaluation.metrics["balanced_accuracy"] = float(metrics.balanced_accuracy_score(y, predicted))
    try:
        evaluation.metrics["AUC_weighted"] = float(
            metrics.roc_auc_score(y, proba[:, 1]) if binary else
            metrics.roc_auc_score(onehot, proba, average="weighted", multi_class="ovr"))
    except ValueError:
        pass
    evaluation.metrics["f1_score_weighted"] = float(metrics.f1_score(y, predicted, average="weighted"))
    evaluation.metrics["log_loss"] = float(metrics.log_loss(y, np.clip(proba, 1e-15, 1), labels=classes))
    shown = [(1, classes[1])] if binary else list(enumerate(classes))

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
    import numpy as np
    from sklearn import metrics

    residuals = y - predicted
    evaluation.metrics["r2_score"] = float(metrics.r2_score(y, predicted))
    evaluation.metrics["root_mean_squared_error"] = float(math.sqrt(metrics.mean_squared_error(y, predicted)))
    evaluation.metrics["mean_absolute_error"] = float(metrics.mean_absolute_error(y, predicted))
    span = float(np.max(y) - np.min(y)) or 1.0
    evaluation.metrics["normalized_root_mean_squared_error"] = evaluation.metrics["root_mean_squared_error"] / span

    fig, ax = _axes("Predicted vs true", "True value", "Predicted value")
    ax.scatter(y, predicted, s=12, alpha=0.55, color=BLUE, edgecolors="none")
    low, high = float(min(np.min(y), np.min(predicted))), float(max(np.max(y), np.max(predicted)))
    ax.plot([low, high], [low, high], ls="--", color=GREY, lw=1, label="ideal")
    ax.legend(loc="upper left", fontsize=9, frameon=False)
    evaluation.figures.append(Figure("predicted_vs_true", "Predicted vs true",
                                     f"Out-of-fold predictions; R² {evaluation.metrics['r2_score']:.3f}.", _png(fig)))

    fig, ax = _axes("Residuals", "Predicted value", "Residual (true − predicted)")
    ax.scatter(predicted, residuals, s=12, alpha=0.55, color=ORANGE, edgecolors="none")
    ax.axhline(0, ls="--", color=GREY, lw=1)
    evaluation.figures.append(Figure("residuals", "Residuals", "Residuals should scatter evenly around zero.",
                                     _png(fig)))

    fig, ax = _axes("Residual distribution", "Residual", "Rows")
    ax.hist(residuals, bins=min(40, max(10, len(y) // 20)), color=ORANGE, alpha=0.8)
    ax.axvline(0, ls="--", color=GREY, lw=1)
    evaluation.figures.append(Figure("residual_histogram", "Residual distribution",
                                     f"RMSE {evaluation.metrics['root_mean_squared_error']:.4g}.", _png(fig)))


def _permutation_importance(model: Any, X: Any, y: Any, cv: Any, scoring: str) -> Figure | None:
    import numpy as np
    from sklearn.base import clone
    from sklearn.inspection import permutation_importance

    try:
        train, valid = next(iter(cv.split(X, y)))
        fitted = clone(model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted.fit(X.iloc[train], y[train])
            result = permutation_importance(fitted, X.iloc[valid], y[valid], scoring=scoring, n_repeats=5,
                                            random_state=SEED, n_jobs=1)
    except Exception:
        return None
    order = np.argsort(result.importances_mean)[::-1][:15][::-1]
    names = [str(X.columns[i]) for i in order]
    fig, ax = _axes("Feature importance", f"Drop in {scoring} when shuffled", "",
                    size=(5.2, max(4.2, 0.9 + 0.3 * len(names))))
    ax.barh(names, result.importances_mean[order], xerr=result.importances_std[order], color=BLUE, alpha=0.85,
            error_kw={"ecolor": GREY, "lw": 1})
    ax.axvline(0, color=GREY, lw=1)
    ax.grid(axis="y", alpha=0)
    return Figure("feature_importance", "Feature importance",
                  f"Permutation importance of each raw column on a held-out fold ({len(valid)} rows, 5 repeats).",
                  _png(fig))


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
    low, high = min(ys), max(ys)
    margin = max((high - low) * 0.12, 0.002)
    ax.set_ylim(low - margin, high + margin)
    ax.legend(loc="lower right" if not minimize else "upper right", fontsize=9, frameon=False)
    if len(xs) < 15:
        ax.set_xticks(xs)
    return Figure("leaderboard", "Score by iteration", f"{metric} of each child run.", _png(fig))


def forecasting_evaluation(model: Any, X: Any, y: Any, settings: Mapping[str, Any], notes: list[str]) -> Evaluation:
    """The forecaster's own view: history and the next horizon with a 5%-95% band per series, and the
    rolling-origin cross-validation error by horizon (no refit: the model keeps both)."""
    import numpy as np
    import pandas as pd

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
    future = []
    for key in keys:
        block = pd.DataFrame({t.time_column: t.future_times(t.history[key][0][-1], t.horizon)})
        for column, value in zip(t.id_columns, key):
            block[column] = value
        future.append(block)
    frame = pd.concat(future, ignore_index=True)
    bands = model.forecast_quantiles(frame, quantiles=[0.05, 0.5, 0.95])
    import matplotlib

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
        ax.set_title(", ".join(map(str, key)) if key else evaluation.label, fontsize=10, loc="left")
        ax.grid(alpha=0.25)
        ax.tick_params(axis="x", labelsize=8, rotation=30)
        if index == 0:
            ax.legend(fontsize=8, frameon=False, loc="upper left")
    for index in range(len(keys), rows * columns):
        axes[index // columns][index % columns].axis("off")
    evaluation.figures.append(Figure("forecast", "Forecast",
                                     f"The last points of each series and the next {t.horizon} periods, with the "
                                     f"5%-95% band from the cross-validation errors.", _png(fig)))
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
