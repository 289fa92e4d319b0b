"""What a worker process does: cross-validate one child pipeline, or refit pipelines on all rows.

Functions here take the featurized ``FoldData`` first and return plain picklable values.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .models import make_scaler
from .task_types.registry import get_task

if TYPE_CHECKING:
    from .task_types.base import Task

FOLD_MODEL_MAX_BYTES = 64_000_000


@dataclass
class FoldData:
    """The featurized training rows and Azure's splits, shared by every child of an experiment."""

    task: str
    X: np.ndarray
    y: np.ndarray
    weights: np.ndarray | None
    splits: list[tuple[np.ndarray, np.ndarray]]
    fit_rows: np.ndarray
    classes: np.ndarray | None
    y_min: float
    y_max: float
    seed: int
    extra: Any = None
    """What a task needs beyond the matrix (forecasting: the series and their time axis)."""

    @property
    def kind(self) -> Task:
        """The task object (``emulator.task_types``)."""
        return get_task(self.task)


def child_pipeline(data: FoldData, spec: dict[str, Any], threads: int) -> Any:
    from sklearn.pipeline import Pipeline

    estimator = data.kind.make_estimator(spec["algorithm"], spec["params"], data.seed, threads=threads)
    return Pipeline([(spec["preprocessor"], make_scaler(spec["preprocessor"])), (spec["algorithm"], estimator)])


def _fit(model: Any, data: FoldData, rows: np.ndarray) -> Any:
    kwargs = {}
    if data.weights is not None:
        kwargs[f"{model.steps[-1][0]}__sample_weight"] = data.weights[rows]
    return model.fit(data.X[rows], data.y[rows], **kwargs)


def predict(model: Any, X: np.ndarray, data: FoldData) -> np.ndarray:
    """Class probabilities aligned with ``data.classes`` (classification) or a column of values."""
    return data.kind.predict(model, X, data)


def fold_metrics(data: FoldData, valid: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    return data.kind.fold_metrics(data, valid, prediction)


def average(per_fold: list[dict[str, float]]) -> dict[str, float]:
    """Fold-averaged metrics (NaN folds ignored, NaN when every fold is NaN)."""
    result = {}
    for name in per_fold[0]:
        values = [f[name] for f in per_fold if not math.isnan(f[name])]
        result[name] = float(np.mean(values)) if values else float("nan")
    return result


def score_predictions(data: FoldData, oof: np.ndarray) -> dict[str, float]:
    """Metrics of out-of-fold predictions, fold by fold then averaged (how every child is scored)."""
    return average([fold_metrics(data, valid, oof[valid]) for _, valid in data.splits])


def cross_validate(data: FoldData, spec: dict[str, Any], threads: int = 1, with_model: bool = False
                   ) -> dict[str, Any]:
    """Fit the child on each split; return fold-averaged metrics and out-of-fold predictions, and ``with_model``
    also the child's model: its pipeline fitted on every training row (``model``, ``refit_time``)."""
    result = _cross_validate(data, spec, threads)
    if with_model and result.get("model") is None:
        started = time.perf_counter()
        chosen = {**spec, "params": {**spec["params"], **(result.get("params") or {})}}
        result["model"] = refit(data, [chosen], threads)[0]
        result["refit_time"] = time.perf_counter() - started
    return result


def _cross_validate(data: FoldData, spec: dict[str, Any], threads: int) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    own = data.kind.cross_validate(data, spec, threads)
    if own is not None:
        return own
    started = time.perf_counter()
    oof = np.full((len(data.y), data.kind.prediction_width(data)), np.nan)
    per_fold = []
    with threadpool_limits(limits=threads if threads > 0 else None):
        for train, valid in data.splits:
            model = _fit(child_pipeline(data, spec, threads), data, train)
            oof[valid] = predict(model, data.X[valid], data)
            per_fold.append(fold_metrics(data, valid, oof[valid]))
    result = {"metrics": average(per_fold), "oof": oof, "fit_time": time.perf_counter() - started}
    if fold_is_model(data) and _small_enough(model):
        result["model"], result["refit_time"] = model, 0.0
    return result


def fold_is_model(data: FoldData) -> bool:
    """Whether the one fold learns from exactly the rows the final model does (explicit ``validation_data``, as
    Azure trains on ``training_data`` and validates on it): then the fold's pipeline is the child's model."""
    return len(data.splits) == 1 and np.array_equal(data.splits[0][0], data.fit_rows)


def _small_enough(model: Any) -> bool:
    """Whether the fold's model is cheap to send back with the child's answer (large forests are made again,
    when wanted, rather than sent for every child)."""
    import pickle

    return len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)) <= FOLD_MODEL_MAX_BYTES


def refit(data: FoldData, specs: list[dict[str, Any]], threads: int = 1) -> list[Any]:
    """Fit each child pipeline on all the rows the final model learns from."""
    from threadpoolctl import threadpool_limits

    own = data.kind.refit(data, specs, threads)
    if own is not None:
        return own
    with threadpool_limits(limits=threads if threads > 0 else None):
        return [_fit(child_pipeline(data, spec, threads), data, data.fit_rows) for spec in specs]


def sleep(data: FoldData, seconds: float) -> None:
    """A child that hangs (tests of ``iteration_timeout_minutes``)."""
    time.sleep(seconds)


def aligned_probabilities(proba: np.ndarray, fitted: Any, classes: np.ndarray) -> np.ndarray:
    """``proba``'s columns (in ``fitted`` class order) re-ordered to ``classes``, zeros for absent classes."""
    fitted = list(fitted)
    if fitted == list(classes):
        return proba
    aligned = np.zeros((proba.shape[0], len(classes)))
    for j, cls in enumerate(fitted):
        aligned[:, list(classes).index(cls)] = proba[:, j]
    return aligned
