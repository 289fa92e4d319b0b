"""The AutoML loop: validate the data, split it as Azure would, try child pipelines, refit the best."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Protocol

import numpy as np
import pandas as pd

from . import metrics as M
from .featurize import AutoFeaturizer
from .models import WARM_START, make_estimator, make_scaler, preprocessor_for, sample_params
from .settings import experiment_timeout_seconds


class AutoMLDataError(ValueError):
    """The training data cannot be used as configured (names the column at fault)."""


class Recorder(Protocol):
    """Where child runs are recorded (a RunContext's ``child_run``)."""

    def child_run(self, name: str, *, run_id: str | None = None, properties: Mapping[str, Any] | None = None) -> Any: ...


@dataclass
class ChildResult:
    iteration: int
    run_id: str
    preprocessor: str
    algorithm: str
    params: dict[str, Any]
    status: str = "Completed"
    metrics: dict[str, float] = field(default_factory=dict)
    score: float = float("nan")
    fit_time: float = 0.0
    error: str | None = None

    @property
    def display_name(self) -> str:
        return f"{self.preprocessor}, {self.algorithm}" if self.preprocessor else self.algorithm


@dataclass
class AutoMLResult:
    settings: dict[str, Any]
    children: list[ChildResult]
    best: ChildResult
    model: Any
    guardrails: list[dict[str, Any]]
    training_type: str
    duration: float

    def metrics_json(self) -> dict[str, dict[str, list[Any]]]:
        """``{child_run_id: {metric: [value]}}``, as AutoMLStep's metrics output holds it."""
        return {c.run_id: {k: [None if isinstance(v, float) and math.isnan(v) else v] for k, v in c.metrics.items()}
                for c in self.children if c.status == "Completed"}


@dataclass
class PreparedData:
    X: pd.DataFrame
    y: np.ndarray
    weights: np.ndarray | None
    splits: list[tuple[np.ndarray, np.ndarray]]
    training_type: str
    classes: np.ndarray | None
    y_min: float
    y_max: float
    n_train: int


def prepare_data(settings: Mapping[str, Any], training: pd.DataFrame, validation: pd.DataFrame | None
                 ) -> PreparedData:
    """Check the label, weight and split columns and build the train/validation splits."""
    label = settings["label_column_name"]
    task = settings["task"]
    frames = [("training data", training)] + ([("validation data", validation)] if validation is not None else [])
    for what, frame in frames:
        if frame is None or len(frame.columns) == 0 or len(frame) == 0:
            raise AutoMLDataError(f"the {what} is empty")
        duplicated = sorted({str(c) for c in frame.columns if list(frame.columns).count(c) > 1})
        if duplicated:
            raise AutoMLDataError(f"the {what} has duplicate column names: {', '.join(map(repr, duplicated))}")
        if label not in frame.columns:
            raise AutoMLDataError(
                f"label column {label!r} is not in the {what}; columns: {', '.join(map(str, frame.columns))}")
        weight = settings.get("weight_column_name")
        if weight and weight not in frame.columns:
            raise AutoMLDataError(f"weight column {weight!r} is not in the {what}")
    for column in settings.get("cv_split_column_names") or []:
        if column not in training.columns:
            raise AutoMLDataError(f"cv_split_column_names column {column!r} is not in the training data")
    data = pd.concat([training, validation], ignore_index=True) if validation is not None else training.reset_index(drop=True)
    n_train = len(training)
    y_raw = data[label]
    if y_raw.isna().all():
        raise AutoMLDataError(f"label column {label!r} has no values (every row is missing)")
    keep = y_raw.notna().to_numpy()
    if not keep.all():
        if not settings.get("exclude_nan_labels", True):
            raise AutoMLDataError(f"label column {label!r} has {int((~keep).sum())} missing values and "
                                  f"exclude_nan_labels is False")
        n_train = int(keep[:n_train].sum())
        data = data[keep].reset_index(drop=True)
    y = data[label]
    if task == "regression":
        numeric = pd.to_numeric(y, errors="coerce")
        if numeric.isna().any():
            bad = y[numeric.isna()].astype(str).unique()[:3]
            raise AutoMLDataError(f"label column {label!r} must be numeric for regression; found values like "
                                  f"{', '.join(map(repr, bad))}")
        y_values = numeric.to_numpy(dtype=float)
        classes = None
    else:
        y_values = y.to_numpy()
        if pd.api.types.is_float_dtype(y) and np.all(np.mod(y_values, 1) == 0):
            y_values = y_values.astype(int)
        classes = np.unique(y_values)
        if len(classes) < 2:
            raise AutoMLDataError(f"label column {label!r} has a single class ({classes[0].item()!r}); classification "
                                  f"needs at least two")
    weights = None
    weight = settings.get("weight_column_name")
    if weight:
        weights = pd.to_numeric(data[weight], errors="coerce").to_numpy(dtype=float)
        if np.isnan(weights).any() or (weights < 0).any():
            raise AutoMLDataError(f"weight column {weight!r} must hold non-negative numbers")
    cv_columns = settings.get("cv_split_column_names") or []
    drop = [label] + ([weight] if weight else []) + list(cv_columns)
    X = data.drop(columns=drop)
    if X.shape[1] == 0:
        raise AutoMLDataError(f"no feature columns left besides label column {label!r}")
    splits, training_type = make_splits(settings, y_values, n_train, len(data), data[cv_columns] if cv_columns else None)
    train_y = y_values[:n_train] if task == "regression" else y_values
    y_min, y_max = (float(np.min(train_y)), float(np.max(train_y))) if task == "regression" else (0.0, 1.0)
    return PreparedData(X, y_values, weights, splits, training_type, classes, y_min, y_max, n_train)


def make_splits(settings: Mapping[str, Any], y: np.ndarray, n_train: int, n_rows: int,
                cv_columns: pd.DataFrame | None) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """Azure's validation rule: explicit data, custom columns, a size, folds, or the automatic choice."""
    from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold, StratifiedShuffleSplit

    seed = settings.get("random_state", 0)
    classification = settings["task"] == "classification"
    index = np.arange(n_rows)
    if n_train < n_rows:
        return [(index[:n_train], index[n_train:])], "TrainValidateTest"
    if cv_columns is not None:
        splits = []
        for column in cv_columns.columns:
            flags = pd.to_numeric(cv_columns[column], errors="coerce").to_numpy()
            if not np.isin(flags, (0, 1)).all():
                raise AutoMLDataError(f"cv split column {column!r} must hold only 1 (train) and 0 (validate)")
            splits.append((index[flags == 1], index[flags == 0]))
        return splits, "MeanCrossValidation"
    n_cv = settings.get("n_cross_validations")
    size = settings.get("validation_size")
    stratify = classification and _min_class_count(y) >= max(n_cv or 3, 2)
    if size is not None:
        n_splits = n_cv or 1
        splitter = (StratifiedShuffleSplit if stratify else ShuffleSplit)(n_splits=n_splits, test_size=size,
                                                                          random_state=seed)
        return list(splitter.split(index, y)), "MeanCrossValidation" if n_cv else "TrainValidateTest"
    if n_cv is None:
        if n_rows < 1000:
            n_cv = 10
        elif n_rows < 20000:
            n_cv = 3
        else:
            splitter = (StratifiedShuffleSplit if classification and _min_class_count(y) >= 2 else ShuffleSplit)(
                n_splits=1, test_size=0.1, random_state=seed)
            return list(splitter.split(index, y)), "TrainValidateTest"
    stratify = classification and _min_class_count(y) >= n_cv
    folds = (StratifiedKFold if stratify else KFold)(n_splits=n_cv, shuffle=True, random_state=seed)
    return list(folds.split(index, y)), "MeanCrossValidation"


def _min_class_count(y: np.ndarray) -> int:
    return int(np.unique(y, return_counts=True)[1].min())


def candidates(settings: Mapping[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Child pipelines to try, in order: Azure's usual opening, then random points of each space."""
    task = settings["task"]
    allowed = set(settings.get("allowed_models") or []) or None
    blocked = set(settings.get("blocked_models") or [])

    def usable(algorithm: str) -> bool:
        return (allowed is None or algorithm in allowed) and algorithm not in blocked

    for prep, algorithm, params in WARM_START[task]:
        if usable(algorithm):
            yield prep, algorithm, dict(params)
    from .settings import MODELS

    pool = [m for m in MODELS[task] if usable(m) and m not in ("SVM",)] or [m for m in MODELS[task] if usable(m)]
    rng = np.random.default_rng(settings.get("random_state", 0))
    while True:
        algorithm = str(rng.choice(pool))
        yield preprocessor_for(algorithm, rng), algorithm, sample_params(algorithm, rng)


class FoldCache:
    """Featurized folds, computed once and shared by every child."""

    def __init__(self, data: PreparedData, featurization: Any) -> None:
        self.data = data
        self.folds = []
        for train, valid in data.splits:
            featurizer = AutoFeaturizer(featurization).fit(data.X.iloc[train], data.y[train])
            self.folds.append((train, valid, featurizer.transform(data.X.iloc[train]),
                               featurizer.transform(data.X.iloc[valid])))


def evaluate(settings: Mapping[str, Any], cache: FoldCache, prep: str, algorithm: str, params: dict[str, Any]
             ) -> tuple[dict[str, float], np.ndarray]:
    """Fit the child on each fold; return fold-averaged metrics and its out-of-fold predictions."""
    from sklearn.pipeline import make_pipeline

    data = cache.data
    seed = settings.get("random_state", 0)
    task = settings["task"]
    per_fold = []
    width = len(data.classes) if data.classes is not None else 1
    oof = np.full((len(data.y), width), np.nan)
    for train, valid, x_train, x_valid in cache.folds:
        model = make_pipeline(make_scaler(prep), make_estimator(task, algorithm, params, seed))
        fit_kwargs = {}
        if data.weights is not None:
            fit_kwargs[f"{model.steps[-1][0]}__sample_weight"] = data.weights[train]
        model.fit(x_train, data.y[train], **fit_kwargs)
        weights = data.weights[valid] if data.weights is not None else None
        if task == "classification":
            proba = _aligned_proba(model, x_valid, data.classes)
            oof[valid] = proba
            per_fold.append(M.classification_metrics(data.y[valid], proba, data.classes, weights))
        else:
            prediction = model.predict(x_valid)
            oof[valid, 0] = prediction
            per_fold.append(M.regression_metrics(data.y[valid], prediction, data.y_min, data.y_max, weights))
    averaged = {name: float(np.nanmean([f[name] for f in per_fold])) if any(not math.isnan(f[name]) for f in per_fold)
                else float("nan") for name in per_fold[0]}
    return averaged, oof


def _aligned_proba(model: Any, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    proba = model.predict_proba(X)
    fitted = list(model.classes_)
    if fitted == list(classes):
        return proba
    aligned = np.zeros((len(X), len(classes)))
    for j, cls in enumerate(fitted):
        aligned[:, list(classes).index(cls)] = proba[:, j]
    return aligned


def guardrails(settings: Mapping[str, Any], data: PreparedData, featurizer: AutoFeaturizer) -> list[dict[str, Any]]:
    """Azure's data guardrails: each Passed, Done or Alerted, with the columns concerned."""
    summary = featurizer.summary()
    imputed = [s["column"] for s in summary if s["had_missing"] and s["purpose"] != "Ignore"]
    high_card = [s["column"] for s in summary if s["purpose"] == "CategoricalHash"]
    checks = [
        {"type": "Missing feature values imputation", "status": "Done" if imputed else "Passed",
         "description": ("Missing feature values were detected in the training data and imputed."
                         if imputed else "No missing feature values were detected in the training data."),
         "columns": imputed},
        {"type": "High cardinality feature detection", "status": "Done" if high_card else "Passed",
         "description": ("High cardinality features were detected and hash-encoded." if high_card else
                         "Your inputs were analyzed, and no high cardinality features were detected."),
         "columns": high_card},
        {"type": "Validation split handling", "status": "Done",
         "description": (f"The validation configuration was set to {data.training_type} with "
                         f"{len(data.splits)} split(s)."), "columns": []},
    ]
    if settings["task"] == "classification":
        values, counts = np.unique(data.y, return_counts=True)
        smallest = counts.min() / counts.sum()
        balanced = smallest >= 0.2 * (1 / len(values)) * len(values) / 2 if len(values) else True
        checks.append({"type": "Class balancing detection", "status": "Passed" if balanced else "Alerted",
                       "description": ("Your inputs were analyzed, and all classes are balanced in your training "
                                       "data." if balanced else "Imbalanced classes were detected in your inputs."),
                       "columns": [f"{v}: {c}" for v, c in zip(values.tolist(), counts.tolist())]})
    dropped = [f"{s['column']} ({s['reason']})" for s in summary if s["purpose"] == "Ignore"]
    if dropped:
        checks.append({"type": "Dropped columns", "status": "Done",
                       "description": "Columns with no usable signal were dropped.", "columns": dropped})
    return checks


def format_guardrails(checks: list[dict[str, Any]]) -> str:
    """The console form Azure prints for guardrails."""
    lines = ["DATA GUARDRAILS:", ""]
    for check in checks:
        lines += [f"TYPE:         {check['type']}", f"STATUS:       {check['status'].upper()}",
                  f"DESCRIPTION:  {check['description']}"]
        if check["columns"]:
            lines.append("DETAILS:      " + ", ".join(map(str, check["columns"])))
        lines += ["*" * 80, ""]
    return "\n".join(lines)


def run_automl(settings: Mapping[str, Any], training: pd.DataFrame, validation: pd.DataFrame | None = None, *,
               recorder: Recorder | None = None, parent_run_id: str = "AutoML",
               log: Callable[[str], None] = print) -> AutoMLResult:
    """Run an AutoML experiment with validated ``settings`` and return the best fitted pipeline."""
    from sklearn.pipeline import Pipeline

    started = time.time()
    data = prepare_data(settings, training, validation)
    metric = settings["primary_metric"]
    budget = experiment_timeout_seconds(settings)
    featurization = settings.get("featurization", "auto")
    full_featurizer = AutoFeaturizer(featurization).fit(data.X.iloc[: data.n_train], data.y[: data.n_train])
    checks = guardrails(settings, data, full_featurizer)
    log(format_guardrails(checks))
    if settings.get("unhonoured"):
        log("Settings accepted but not honoured by the offline emulator: " + ", ".join(settings["unhonoured"]))
    cache = FoldCache(data, featurization)
    children: list[ChildResult] = []
    best: ChildResult | None = None
    exit_score = settings.get("experiment_exit_score")
    log(f"{'ITER':>5}  {'PIPELINE':<45} {'DURATION':>9} {'METRIC':>8} {'BEST':>8}")
    for iteration, (prep, algorithm, params) in enumerate(candidates(settings)):
        if iteration >= settings["iterations"]:
            break
        if budget is not None and time.time() - started > budget:
            log(f"Stopping: experiment timeout of {budget / 60:g} minutes reached")
            break
        if _early_stop(settings, children, metric):
            log("Stopping: no improvement over the last 10 iterations (early stopping)")
            break
        child = ChildResult(iteration, f"{parent_run_id}_{iteration}", prep, algorithm, params)
        record = recorder.child_run(child.display_name, run_id=child.run_id) if recorder else None
        begun = time.time()
        try:
            child.metrics, _ = evaluate(settings, cache, prep, algorithm, params)
            child.score = child.metrics[metric]
        except Exception as exc:  # a child that fails is recorded, the experiment goes on
            child.status, child.error = "Failed", f"{type(exc).__name__}: {exc}"
        child.fit_time = time.time() - begun
        children.append(child)
        if record is not None:
            record.add_properties(child_properties(child, settings, data.training_type))
            if child.status == "Completed":
                record.log_metrics(child.metrics)
                record.complete()
            else:
                record.fail(child.error or "failed")
        if child.status == "Completed" and (best is None or M.better(metric, child.score, best.score)):
            best = child
        log(f"{iteration:>5}  {child.display_name:<45} {_clock(child.fit_time):>9} "
            f"{child.score:>8.4f} {best.score if best else float('nan'):>8.4f}")
        if exit_score is not None and best is not None and not M.better(metric, exit_score, best.score):
            log(f"Stopping: experiment_exit_score {exit_score} reached")
            break
    if best is None:
        errors = "; ".join(f"{c.display_name}: {c.error}" for c in children[:3]) or "no iteration ran"
        raise AutoMLDataError(f"no child run completed ({errors})")
    scaler = make_scaler(best.preprocessor)
    estimator = make_estimator(settings["task"], best.algorithm, best.params, settings.get("random_state", 0))
    model = Pipeline([("datatransformer", AutoFeaturizer(featurization)), (best.preprocessor, scaler),
                      (best.algorithm, estimator)])
    fit_rows = np.arange(len(data.y)) if data.training_type == "MeanCrossValidation" else np.arange(data.n_train)
    fit_kwargs = {f"{best.algorithm}__sample_weight": data.weights[fit_rows]} if data.weights is not None else {}
    model.fit(data.X.iloc[fit_rows], data.y[fit_rows], **fit_kwargs)
    log(f"Best: iteration {best.iteration} {best.display_name} {metric}={best.score:.4f}")
    return AutoMLResult(dict(settings), children, best, model, checks, data.training_type, time.time() - started)


def child_properties(child: ChildResult, settings: Mapping[str, Any], training_type: str) -> dict[str, Any]:
    """Child run properties under Azure's names."""
    return {"iteration": str(child.iteration), "run_algorithm": child.algorithm,
            "run_preprocessor": child.preprocessor, "score": str(child.score),
            "primary_metric": settings["primary_metric"], "goal": M.goal(settings["primary_metric"]),
            "training_type": training_type, "fit_time": str(round(child.fit_time, 3)),
            "pipeline_spec": json.dumps({"preprocessor": child.preprocessor, "algorithm": child.algorithm,
                                         "params": child.params}, default=str),
            "display_name": child.display_name}


def _early_stop(settings: Mapping[str, Any], children: list[ChildResult], metric: str) -> bool:
    """Azure's rule: never in the first 20 iterations, then stop after 10 without improvement."""
    if not settings.get("enable_early_stopping", True) or len(children) < 20:
        return False
    scores = [c.score for c in children if c.status == "Completed"]
    if len(scores) <= 10:
        return False
    before = scores[:-10]
    best_before = before[0]
    for score in before[1:]:
        if M.better(metric, score, best_before):
            best_before = score
    return not any(M.better(metric, s, best_before) for s in scores[-10:])


def _clock(seconds: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(seconds))
