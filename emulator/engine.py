"""The AutoML loop: validate the data, split it as Azure would, try child pipelines, refit the best."""

from __future__ import annotations

import json
import math
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

import numpy as np
import pandas as pd

from framework import did_you_mean

from . import metrics as M
from . import tasks
from .featurize import AutoFeaturizer
from .models import SEARCH_WEIGHTS, perturb, preprocessor_for, sample_params
from .settings import experiment_timeout_seconds, iteration_timeout_seconds
from .task_types.registry import get_task
from .tasks import FoldData
from .worker import POOL, TaskOutcome, call, run_guarded

if TYPE_CHECKING:
    from .task_types.base import Task


class AutoMLError(ValueError):
    """An AutoML experiment could not produce a model (the base of the emulator's run errors)."""


class AutoMLDataError(AutoMLError):
    """The training data cannot be used as configured (names the column at fault)."""


class AutoMLTimeoutError(AutoMLError):
    """No child run completed within the experiment's or the iterations' time limit."""


class AutoMLCanceled(AutoMLError):
    """The experiment was canceled (its ``stop`` said so): no more children start, and it makes no model."""


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
    timed_out: bool = False
    oof: np.ndarray | None = field(default=None, repr=False)
    members: list[tuple[int, float]] = field(default_factory=list)
    model: Any = field(default=None, repr=False)
    """The child's pipeline fitted on every training row (Azure's ``outputs/model.pkl``), once it is made."""
    refit_time: float = 0.0
    model_bytes: int = 0
    """The model's size, pickled, as it came from its worker (what saving it will write)."""

    @property
    def spec(self) -> dict[str, Any]:
        return {"preprocessor": self.preprocessor, "algorithm": self.algorithm, "params": self.params}

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
    featurization: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = ""
    loop: Any = field(default=None, repr=False)
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent per phase: prepare, featurize, children, ensembles, refit."""
    model_pickle: bytes | None = field(default=None, repr=False)
    """The model pickled, once it is saved (``api.execute``)."""

    def refit_child(self, iteration: int) -> Any:
        """The model pipeline of any completed child, refitted on the training rows (for ``get_output``)."""
        loop = self.loop
        child = next(c for c in loop.children if c.iteration == iteration)
        members = loop.members_of(child)
        fitted = [m.model for m in members]
        if any(model is None for model in fitted):
            outcome = loop.runner(call(tasks.refit), {"specs": [m.spec for m in members], "threads": loop.threads},
                                  None)
            if not outcome.ok:
                raise AutoMLDataError(f"refitting iteration {iteration} failed: {short_error(outcome.error)}")
            fitted = outcome.value
        return assemble(loop.fold, child, members, fitted, loop.featurizer)

    def metrics_json(self) -> dict[str, dict[str, list[Any]]]:
        """``{child_run_id: {metric: [value]}}`` for every child, as AutoMLStep's metrics output holds it.

        Children that failed or timed out have every metric as ``[null]``.
        """
        names = get_task(self.settings["task"]).metrics
        out: dict[str, dict[str, list[Any]]] = {}
        for c in self.children:
            values = c.metrics if c.status == "Completed" else {}
            out[c.run_id] = {k: [_json_number(values.get(k))] for k in names}
        return out


def _json_number(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


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
    extra: Any = None
    """What a task's own preparation adds (forecasting: the regular series)."""
    missing_labels: tuple[str, int, int] | None = None
    """``(label column, rows dropped for a missing label, rows given)`` when rows were dropped for one."""


def prepare_data(settings: Mapping[str, Any], training: pd.DataFrame, validation: pd.DataFrame | None
                 ) -> PreparedData:
    """Check the label, weight and split columns and build the train/validation splits (the task's rules)."""
    return get_task(settings["task"]).prepare_data(settings, training, validation)


def _check_validation_matches(task: Task, label: str, training: pd.DataFrame, validation: pd.DataFrame,
                              cv_columns: Sequence[str]) -> None:
    """validation_data holds the training data's columns, and for classification only classes it holds."""
    def listed(columns: Sequence[Any]) -> str:
        return ", ".join(map(repr, map(str, columns)))

    expected = [c for c in training.columns if c not in cv_columns]
    missing = [c for c in expected if c not in validation.columns]
    extra = [c for c in validation.columns if c not in training.columns]
    if missing or extra:
        problems = ([f"lacks column(s) {listed(missing)}"] if missing else []) + (
            [f"has column(s) {listed(extra)} the training data does not"] if extra else [])
        raise AutoMLDataError(f"the validation data {' and '.join(problems)}: validation_data must hold the training "
                              f"data's columns ({listed(expected)})")
    if not task.numeric_label:  # classes
        seen = set(training[label].dropna().astype(str))
        unseen = sorted(set(validation[label].dropna().astype(str)) - seen)
        if unseen:
            raise AutoMLDataError(f"label column {label!r}: the validation data holds class(es) {listed(unseen[:5])} "
                                  f"that the training data does not; a model cannot predict a class it never saw")


def prepare_tabular(task: Task, settings: Mapping[str, Any], training: pd.DataFrame, validation: pd.DataFrame | None
                    ) -> PreparedData:
    """Rows as independent samples (classification, regression): check the columns, encode the labels, split."""
    label = settings["label_column_name"]
    frames = [("training data", training)] + ([("validation data", validation)] if validation is not None else [])
    for what, frame in frames:
        if frame is None or len(frame.columns) == 0 or len(frame) == 0:
            raise AutoMLDataError(f"the {what} is empty")
        duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        if duplicated:
            raise AutoMLDataError(f"the {what} has duplicate column names: {', '.join(map(repr, duplicated))}")
        if label not in frame.columns:
            raise AutoMLDataError(f"label column {label!r} is not in the {what}{did_you_mean(label, frame.columns)}; "
                                  f"columns: {', '.join(map(repr, map(str, frame.columns)))}")
        weight = settings.get("weight_column_name")
        if weight and weight not in frame.columns:
            raise AutoMLDataError(f"weight column {weight!r} is not in the {what}")
    for column in settings.get("cv_split_column_names") or []:
        if column not in training.columns:
            raise AutoMLDataError(f"cv_split_column_names column {column!r} is not in the training data")
    for what, frame in frames:
        _check_finite_label(label, task, frame[label], "" if what == "training data" else f" in the {what}")
    if validation is not None:
        _check_validation_matches(task, label, training, validation, settings.get("cv_split_column_names") or [])
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
    y_values, classes = task.encode_labels(label, data[label])
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
    splits, training_type = make_splits(settings, y_values, n_train, len(data), data[cv_columns] if cv_columns else None,
                                        dropped=int((~keep).sum()))
    y_min, y_max = task.label_range(y_values, n_train)
    dropped = int((~keep).sum())
    return PreparedData(X, y_values, weights, splits, training_type, classes, y_min, y_max, n_train,
                        missing_labels=(str(label), dropped, len(keep)) if dropped else None)


def _check_finite_label(label: str, task: Task, column: pd.Series, where: str) -> None:
    """Infinite labels cannot be trained on or scored: reject them before any child runs."""
    if not task.numeric_label and not pd.api.types.is_numeric_dtype(column):
        return
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    rows = np.flatnonzero(np.isinf(values))
    if len(rows):
        shown = ", ".join(map(str, rows[:5].tolist())) + (", ..." if len(rows) > 5 else "")
        raise AutoMLDataError(f"label column {label!r} has {len(rows)} infinite value{'s' if len(rows) > 1 else ''}"
                              f"{where} (row{'s' if len(rows) > 1 else ''} {shown}); remove them or replace them "
                              f"with NaN (exclude_nan_labels drops NaN labels)")


def _check_fold_rows(n_cv: int, n_rows: int, automatic: bool, dropped: int) -> None:
    """K-fold cross-validation needs at least k rows: say so before any child runs."""
    if n_rows >= n_cv:
        return
    rows = f"training data has {n_rows} row{'s' if n_rows != 1 else ''}"
    if dropped:
        rows += f" after dropping {dropped} with a missing label"
    rule = "Azure's automatic rule below 1,000 rows" if automatic else f"n_cross_validations={n_cv}"
    fewer = (f"set n_cross_validations (at most {n_rows})" if automatic
             else f"lower n_cross_validations to at most {n_rows}")
    fix = f"give more rows or {fewer}" if n_rows >= 2 else "give more rows"
    raise AutoMLDataError(f"{rows}; {n_cv}-fold cross-validation ({rule}) needs at least {n_cv}; {fix}")


def make_splits(settings: Mapping[str, Any], y: np.ndarray, n_train: int, n_rows: int,
                cv_columns: pd.DataFrame | None, dropped: int = 0) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """Azure's validation rule: explicit data, custom columns, a size, folds, or the automatic choice.

    ``dropped``: how many rows were removed for a missing label (named in the error for too few rows).
    """
    from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold, StratifiedShuffleSplit

    seed = settings.get("random_state", 0)
    task = get_task(settings["task"])
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
    automatic = n_cv is None
    size = settings.get("validation_size")
    stratify = task.stratify(y, max(n_cv or 3, 2))
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
            splitter = (StratifiedShuffleSplit if task.stratify(y, 2) else ShuffleSplit)(
                n_splits=1, test_size=0.1, random_state=seed)
            return list(splitter.split(index, y)), "TrainValidateTest"
    _check_fold_rows(n_cv, n_rows, automatic, dropped)
    stratify = task.stratify(y, n_cv)
    folds = (StratifiedKFold if stratify else KFold)(n_splits=n_cv, shuffle=True, random_state=seed)
    return list(folds.split(index, y)), "MeanCrossValidation"


class Search:
    """Which child pipeline to try next: the portfolio first, then random search that perturbs the best
    point of a family half of the time. Deterministic for a seed and the results seen so far."""

    def __init__(self, settings: Mapping[str, Any], n_features: int, data: FoldData | None = None) -> None:
        task = get_task(settings["task"])
        allowed = set(settings.get("allowed_models") or []) or None
        blocked = set(settings.get("blocked_models") or [])
        unavailable = task.unavailable_models()
        self.auto_blocked = auto_blocked(settings, data)
        self.usable = [m for m in task.models if (allowed is None or m in allowed) and m not in blocked
                       and m not in unavailable and m not in self.auto_blocked]
        self.portfolio = [(p, a, dict(params)) for p, a, params in task.portfolio(data) if a in self.usable]
        self.metric = settings["primary_metric"]
        self.rng = np.random.default_rng(settings.get("random_state", 0))
        self.best_of: dict[str, ChildResult] = {}
        self.durations: dict[str, list[float]] = {}
        self.issued = 0

    def observe(self, child: ChildResult) -> None:
        if child.algorithm in ENSEMBLES:
            return
        self.durations.setdefault(child.algorithm, []).append(child.fit_time)
        if child.status != "Completed":
            return
        current = self.best_of.get(child.algorithm)
        if current is None or M.better(self.metric, child.score, current.score):
            self.best_of[child.algorithm] = child

    def next(self, seconds_left: float | None = None) -> tuple[str, str, dict[str, Any]]:
        """The next child; with ``seconds_left``, skip families whose children took longer than that so far."""
        for _ in range(20):
            candidate = self._next()
            durations = self.durations.get(candidate[1])
            if seconds_left is None or not durations or float(np.median(durations)) < seconds_left:
                return candidate
        return candidate

    def _next(self) -> tuple[str, str, dict[str, Any]]:
        self.issued += 1
        if self.issued <= len(self.portfolio):
            return self.portfolio[self.issued - 1]
        weights = np.array([SEARCH_WEIGHTS.get(m, 1.0) for m in self.usable], dtype=float)
        # families that did well get more tries: rank the families seen so far
        ranked = sorted(self.best_of.values(), key=lambda c: c.score, reverse=self.metric not in M.MINIMIZE)
        for rank, child in enumerate(ranked):
            weights[self.usable.index(child.algorithm)] *= max(0.3, 2.0 - 0.4 * rank)
        algorithm = str(self.rng.choice(self.usable, p=weights / weights.sum()))
        anchor = self.best_of.get(algorithm)
        if anchor is not None and self.rng.random() < 0.6:
            return anchor.preprocessor, algorithm, perturb(algorithm, anchor.params, self.rng)
        return preprocessor_for(algorithm, self.rng), algorithm, sample_params(algorithm, self.rng)


#: Azure's auto-block: above this many training rows (or with sparse data), unless ``allowed_models`` is given,
#: the models below are blocked (azureml ``MAX_SAMPLES_AUTOBLOCK`` and ``MAX_SAMPLES_AUTOBLOCKED_ALGOS``).
MAX_SAMPLES_AUTOBLOCK = 5000
AUTOBLOCKED_MODELS = ("KNN", "SVM")


def auto_blocked(settings: Mapping[str, Any], data: FoldData | None) -> tuple[str, ...]:
    """The models Azure blocks by itself for ``data``: KNN and SVM above 5,000 rows, when no allowed_models is set."""
    if data is None or settings.get("allowed_models") or len(data.y) <= MAX_SAMPLES_AUTOBLOCK:
        return ()
    return tuple(m for m in AUTOBLOCKED_MODELS if m in get_task(settings["task"]).models)


def candidates(settings: Mapping[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Child pipelines in the order they are tried when no result is fed back (the portfolio, then random)."""
    search = Search(settings, 0)
    while True:
        yield search.next()


class Runner(Protocol):
    """Runs ``target(data, **kwargs)`` for the experiment and returns its outcome, stopped after ``timeout`` seconds."""

    def __call__(self, target: str, kwargs: dict[str, Any], timeout: float | None,
                 count_startup: bool = True) -> TaskOutcome: ...


@dataclass
class GuardedRunner:
    """The experiment's tasks in worker processes of this machine (``worker.run_guarded``): a task past its
    timeout is stopped with its process. Picklable, so it runs wherever joblib's backend sends a child."""

    key: str
    data: FoldData

    def __call__(self, target: str, kwargs: dict[str, Any], timeout: float | None,
                 count_startup: bool = True) -> TaskOutcome:
        return run_guarded(self.key, self.data, target, kwargs, timeout, count_startup)


@dataclass(frozen=True)
class Deadline:
    """When a task must end, on the experiment's clock: read when the task starts, not when it was queued (a job
    can wait in joblib's queue for a free worker). In another process (loky, Dask, Ray) the experiment's clock
    is not there: the seconds that were left when the deadline was made are used instead."""

    at: float | None
    clock: Callable[[], float]
    seconds: float | None = None
    pid: int = field(default_factory=os.getpid)

    @classmethod
    def of(cls, at: float | None, clock: Callable[[], float]) -> Deadline:
        return cls(at, clock, None if at is None else at - clock())

    def left(self) -> float | None:
        if self.at is None:
            return None
        return self.at - self.clock() if os.getpid() == self.pid else self.seconds


def _child_task(runner: Runner, spec: dict[str, Any], threads: int, deadline: Deadline,
                iteration_timeout: float | None, model_deadline: Deadline | None = None,
                model_share: float = 1.0) -> tuple[TaskOutcome, str]:
    """Cross-validate one child in a worker process; the limit is the nearer of its own and the search's
    ``deadline``. With a ``model_deadline``, then fit it on every training row (its model) before that, when it
    leaves 1.3 times the expected time (``model_share`` of the folds' seconds); a model not made in time leaves
    the child's folds."""
    limits = []
    if iteration_timeout is not None:
        limits.append((iteration_timeout, "iteration"))
    seconds_left = deadline.left()
    if seconds_left is not None:
        limits.append((max(0.0, seconds_left), "experiment"))
    timeout, which = min(limits) if limits else (None, "")
    if timeout is not None and timeout <= 0:
        return TaskOutcome(False, error="experiment timeout reached before the child started", timed_out=True), which
    outcome = runner(call(tasks.cross_validate), {"spec": spec, "threads": threads}, timeout)
    if model_deadline is not None and outcome.ok and outcome.value.get("model") is None:
        chosen = {**spec, "params": {**spec["params"], **(outcome.value.get("params") or {})}}
        left = model_deadline.left()
        if iteration_timeout is not None:
            left = min(left if left is not None else iteration_timeout, iteration_timeout - outcome.seconds)
        expected = model_share * float(outcome.value.get("fit_time") or outcome.seconds)
        made = _refit_task(runner, [chosen], threads, left) if left is None or left > 1.3 * expected else None
        if made is not None and made.ok:
            outcome.value["model"], outcome.value["refit_time"] = made.value[0], made.seconds
            outcome.value["model_bytes"] = made.nbytes
    return outcome, which


def _refit_task(runner: Runner, specs: list[dict[str, Any]], threads: int, timeout: float | Deadline | None
                ) -> TaskOutcome:
    """Fit child pipelines on every training row in a worker process (their models), within ``timeout`` seconds
    (or before a ``Deadline``, read when the task starts)."""
    if isinstance(timeout, Deadline):
        timeout = timeout.left()
        if timeout is not None and timeout <= 0:
            return TaskOutcome(False, error="no time left for the model", timed_out=True)
    return runner(call(tasks.refit), {"specs": specs, "threads": threads}, timeout)


ENSEMBLES = ("VotingEnsemble", "StackEnsemble")
ENSEMBLE_POOL = 12  # the best children ensemble selection chooses from


def guardrails(settings: Mapping[str, Any], data: PreparedData, featurizer: Any) -> list[dict[str, Any]]:
    """Azure's data guardrails: each Passed, Done or Alerted, with the columns concerned."""
    summary = featurizer.summary()
    imputed = [s["column"] for s in summary if s["had_missing"] and s["purpose"] != "Ignore"]
    infinite = [f"{s['column']} ({s['infinite']})" for s in summary if s.get("infinite") and s["purpose"] != "Ignore"]
    high_card = [s["column"] for s in summary if s["purpose"] == "CategoricalHash"]
    checks: list[dict[str, Any]] = [
        {"type": "Missing feature values imputation", "status": "Done" if imputed else "Passed",
         "description": ("Missing feature values were detected in the training data and imputed."
                         if imputed else "No missing feature values were detected in the training data.")
                        + (f" Infinite values were treated as missing: {', '.join(infinite)}." if infinite else ""),
         "columns": imputed},
        {"type": "High cardinality feature detection", "status": "Done" if high_card else "Passed",
         "description": ("High cardinality features were detected and hash-encoded." if high_card else
                         "Your inputs were analyzed, and no high cardinality features were detected."),
         "columns": high_card},
        {"type": "Validation split handling", "status": "Done",
         "description": (f"The validation configuration was set to {data.training_type} with "
                         f"{len(data.splits)} split(s)."), "columns": []},
    ]
    if data.missing_labels is not None:
        checks.append(missing_labels_check(*data.missing_labels))
    checks += get_task(settings["task"]).guardrails(data)
    dropped = [f"{s['column']} ({s['reason']})" for s in summary if s["purpose"] == "Ignore"]
    if dropped:
        checks.append({"type": "Dropped columns", "status": "Done",
                       "description": "Columns with no usable signal were dropped.", "columns": dropped})
    return checks


def missing_labels_check(label: str, dropped: int, rows: int) -> dict[str, Any]:
    """The guardrail for rows left out of training because their label is missing (``exclude_nan_labels``)."""
    return {"type": "Missing label values", "status": "Alerted",
            "description": (f"{missing_labels_text(label, dropped, rows)}; AutoML trains on the other "
                            f"{rows - dropped} (exclude_nan_labels)."),
            "columns": [f"{label} ({dropped} missing)"]}


def missing_labels_text(label: str, dropped: int, rows: int) -> str:
    share = f"{100 * dropped / rows:.0f}%" if rows else "?"
    return (f"{dropped} of {rows} rows ({share}) have no value in label column {label!r} and were dropped")


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
               log: Callable[[str], None] = print, started: float | None = None,
               clock: Callable[[], float] | None = None,
               runner: Callable[[str, FoldData], Runner] | None = None,
               stop: Callable[[], bool] | None = None) -> AutoMLResult:
    """Run an AutoML experiment with validated ``settings`` and return the best fitted pipeline.

    Both ``Experiment.submit`` and the pipeline's ``automl`` step come here. ``started`` (default:
    now) is when the experiment began, on ``clock`` (default ``time.monotonic``: a deadline never moves
    with the wall clock): ``experiment_timeout_minutes`` counts from it. ``runner(key, data)`` makes what
    runs the children and refits (default: worker processes, ``GuardedRunner``); tests give a clock and
    a runner of their own to script how long each child takes. Once ``stop()`` is true (the run was canceled)
    no further child starts, and AutoMLCanceled is raised when those running have ended.
    """
    clock = clock or time.monotonic
    started = clock() if started is None else started
    concurrency = int(settings.get("max_concurrent_iterations") or 1)
    if runner is None:
        POOL.warm(concurrency + 1)  # workers import scikit-learn while we featurize; one spare for the final refit
    timings: dict[str, float] = {}
    lapped = clock()

    def lap(phase: str) -> None:
        nonlocal lapped
        now = clock()
        timings[phase] = timings.get(phase, 0.0) + now - lapped
        lapped = now

    data = prepare_data(settings, training, validation)
    lap("prepare")
    metric = settings["primary_metric"]
    task = get_task(settings["task"])
    budget = experiment_timeout_seconds(settings)
    iteration_timeout = iteration_timeout_seconds(settings)
    threads = int(settings.get("max_cores_per_iteration") or 1)
    featurizer = task.featurize(settings, data)
    checks = guardrails(settings, data, featurizer)
    log(format_guardrails(checks))
    if data.missing_labels is not None:
        log(f"Warning: {missing_labels_text(*data.missing_labels)} (exclude_nan_labels)")
    if settings.get("unhonoured"):
        log("Settings accepted but not honoured by the offline emulator: " + ", ".join(settings["unhonoured"]))
    for model, why in task.unavailable_models().items():
        log(f"Model {model} is {why}")
    fold = task.fold_data(settings, data, featurizer)
    lap("featurize")
    key = uuid.uuid4().hex
    state = _Loop(settings, fold, key, started, budget, iteration_timeout, threads, recorder, parent_run_id, log,
                  data.training_type, concurrency, clock=clock, runner=None if runner is None else runner(key, fold),
                  stop=stop)
    if state.search.auto_blocked:
        blocked = state.search.auto_blocked
        log(f"{'Models' if len(blocked) > 1 else 'Model'} {' and '.join(blocked)} {'are' if len(blocked) > 1 else 'is'} "
            f"blocked above {MAX_SAMPLES_AUTOBLOCK:,} rows (Azure's auto-block; name {'them' if len(blocked) > 1 else 'it'} "
            f"in allowed_models to try {'them' if len(blocked) > 1 else 'it'})")
    log(f"{'ITER':>5}  {'PIPELINE':<45} {'DURATION':>9} {'METRIC':>8} {'BEST':>8}")
    state.run_base(concurrency)
    if runner is None:  # one worker for the models still to make; the others stopped at the deadline are replaced
        POOL.warm(1)  # when the next experiment starts: starting them now (imports) would slow the end of this one
    lap("children")
    state.check_canceled()
    state.run_ensembles()
    lap("ensembles")
    state.check_canceled()
    if state.best is None:
        raise state.no_child_error()
    model = state.final_model(featurizer)
    lap("refit")
    state.check_canceled()
    state.keep_predictions()
    best = state.best  # when a model is missing at the end, the best child that has its model
    assert best is not None
    state.explain(model, data)
    lap("explain")
    log(f"Best: iteration {best.iteration} {best.display_name} {metric}={best.score:.4f}")
    state.featurizer = featurizer
    return AutoMLResult(dict(settings), state.children, best, model, checks, data.training_type,
                        clock() - started, featurizer.summary(), state.stop_reason, state, timings)


#: Completed base children whose model (the pipeline refitted on every training row) is made during the search,
#: as soon as they rank among these best: the final model is then ready when the budget ends.
REFIT_TOP = 3
#: Seconds kept at the end of the budget for what follows the final model (recording it, its explanation's minimum).
FINISH_SECONDS = 1.0
#: How fast the final model is saved (pickled once, written to the best child's and the parent's ``model.pkl``),
#: counted from its members' sizes as they came from the workers; a 300 MB forest takes about 1 s here.
SAVE_BYTES_PER_SECOND = 250e6


class _Loop:
    """One experiment's children: scheduling, budget, recording, ensembles and the final model.

    Every child is cross-validated in a worker process; the best ones also get their model, the
    pipeline fitted on every training row (on Azure each child run ends with its ``model.pkl``), while
    the search goes on. So the final model is assembled from models already made, the budget covers
    ensembles and the final model, and a child still running when the budget ends is canceled.
    """

    def __init__(self, settings: Mapping[str, Any], fold: FoldData, key: str, started: float, budget: float | None,
                 iteration_timeout: float | None, threads: int, recorder: Recorder | None, parent_run_id: str,
                 log: Callable[[str], None], training_type: str, concurrency: int = 1,
                 clock: Callable[[], float] | None = None, runner: Runner | None = None,
                 stop: Callable[[], bool] | None = None) -> None:
        self.settings, self.fold, self.key, self.started = settings, fold, key, started
        self.stop = stop
        self.concurrency = max(1, concurrency)
        self.budget, self.iteration_timeout, self.threads = budget, iteration_timeout, threads
        self.recorder, self.parent_run_id, self.log, self.training_type = recorder, parent_run_id, log, training_type
        self.clock: Callable[[], float] = clock or time.monotonic
        self.runner: Runner = runner or GuardedRunner(key, fold)
        self.metric = settings["primary_metric"]
        self.search = Search(settings, fold.X.shape[1], fold)
        self.children: list[ChildResult] = []
        self.best: ChildResult | None = None
        self.featurizer: AutoFeaturizer | None = None
        self.stop_reason = ""
        self.lock = threading.Lock()
        self._score_seconds: float | None = None
        self.records: dict[int, Any] = {}  # iteration -> its child run record (where artifacts go)
        self.refitting: set[int] = set()  # children whose model is being made
        self.carrying: set[int] = set()  # children in flight that make their model in the same job
        ensembles = [n for n, on in (("VotingEnsemble", settings.get("enable_voting_ensemble", True)),
                                     ("StackEnsemble", settings.get("enable_stack_ensemble", True))) if on]
        total = int(settings["iterations"])
        self.ensembles = ensembles[: max(0, total - 2)]
        self.n_base = total - len(self.ensembles)

    # -- time ---------------------------------------------------------------------------------
    def reserve(self) -> float:
        """Seconds kept back for ensemble selection and the models of the best children not made yet (those that
        can still be made in the time left: for the others the search goes on, with children that can end with one)."""
        done = self.base_pool(5)
        left = self.left()
        unmade = [c for c in done if c.model is None and (left is None or 1.3 * self.refit_seconds([c], 1) < left)]
        return 1.0 + self.finish_seconds() + 0.03 * (self.budget or 0) + 1.3 * self.refit_seconds(unmade) + \
            self.ensemble_cost(done)

    def model_time_left(self) -> float | None:
        """Seconds a model made during the search may take: what is left less the ensembles and the finish."""
        left = self.left()
        return None if left is None else left - self.finish_seconds() - self.ensemble_cost(self.base_pool(5))

    def model_deadline(self) -> Deadline:
        """When a model made during the search must be done (``model_time_left`` from now)."""
        left = self.model_time_left()
        return Deadline.of(None if left is None else self.clock() + left, self.clock)

    def finish_seconds(self, members: list[ChildResult] | None = None) -> float:
        """Seconds kept for what follows the final model: ``FINISH_SECONDS`` and saving the model, which holds
        ``members`` (default: the children ensemble selection may choose, whose models are kept)."""
        members = self.base_pool() if members is None else members
        return FINISH_SECONDS + sum(c.model_bytes for c in members) / SAVE_BYTES_PER_SECOND

    def end(self) -> float | None:
        """When the experiment must be over: its start plus the budget (featurization and the final model included)."""
        return None if self.budget is None else self.started + self.budget

    def left(self) -> float | None:
        """Seconds left of the budget (None without one)."""
        end = self.end()
        return None if end is None else end - self.clock()

    def ensemble_cost(self, done: list[ChildResult]) -> float:
        """Seconds ensemble selection will take: one scoring of out-of-fold predictions, times the rounds."""
        if not self.ensembles or not done:
            return 0.0
        if self._score_seconds is None:
            from . import ensemble as E

            oof = done[0].oof
            assert oof is not None
            begun = self.clock()  # the experiment's clock: a test's fake one measures no time here
            E.fold_score(self.fold, self.metric, oof)
            self._score_seconds = self.clock() - begun
        rounds = int(self.settings.get("ensemble_iterations") or 15) + 1
        # bagged selection (``bagged_voting``) runs once more per fold, each time on the other folds' rows
        selections = len(self.fold.splits) if self.fold.kind.bagged_voting and len(self.fold.splits) > 1 else 1
        return self._score_seconds * (ENSEMBLE_POOL * rounds + 40) * selections

    def typical_child_seconds(self) -> float:
        """The median time of the base children completed so far (0 before two have)."""
        times = [c.fit_time for c in self.children if c.status == "Completed" and c.algorithm not in ENSEMBLES]
        return float(np.median(times)) if len(times) >= 2 else 0.0

    def deadline(self) -> float | None:
        """When the search ends: the budget's end less what ensembles and the best children's models need."""
        return None if self.budget is None else self.started + self.budget - self.reserve()

    def should_stop(self) -> bool:
        if self.stop_reason:
            return True
        if self.stop is not None and self.stop():
            self.stop_reason = "the run was canceled"
            return True
        if len(self.children) >= self.n_base:
            return True
        deadline = self.deadline()
        now = self.clock()
        if deadline is not None and now >= deadline:
            assert self.budget is not None
            self.stop_reason = f"experiment timeout of {self.budget / 60:g} minutes reached"
        elif deadline is not None and deadline - now < self.typical_child_seconds():
            assert self.budget is not None  # a child started now would be cancelled at the deadline: start none
            self.stop_reason = (f"experiment timeout of {self.budget / 60:g} minutes reached (no further child "
                                f"would finish in time)")
        elif _early_stop(self.settings, self.children, self.metric):
            self.stop_reason = "no improvement over the last 10 iterations (early stopping)"
        exit_score = self.settings.get("experiment_exit_score")
        if exit_score is not None and self.best is not None and not M.better(self.metric, exit_score, self.best.score):
            self.stop_reason = f"experiment_exit_score {exit_score} reached"
        return bool(self.stop_reason)

    def check_canceled(self) -> None:
        """Raise AutoMLCanceled once ``stop()`` is true."""
        if self.stop is not None and self.stop():
            raise AutoMLCanceled(f"AutoML run {self.parent_run_id} was canceled")

    # -- base children ------------------------------------------------------------------------
    def _start(self, iteration: int) -> tuple[ChildResult, Any]:
        deadline = self.deadline()
        prep, algorithm, params = self.search.next(None if deadline is None else deadline - self.clock())
        child = ChildResult(iteration, f"{self.parent_run_id}_{iteration}", prep, algorithm, params)
        record = self.recorder.child_run(child.display_name, run_id=child.run_id) if self.recorder else None
        self.records[iteration] = record
        return child, record

    def _finish(self, child: ChildResult, record: Any, outcome: TaskOutcome, which: str) -> None:
        if outcome.ok:
            child.metrics, child.oof = outcome.value["metrics"], outcome.value["oof"]
            child.params.update(outcome.value.get("params") or {})  # what the child chose (forecasting's forms)
            child.fit_time = outcome.value["fit_time"]
            child.score = child.metrics.get(self.metric, float("nan"))
            child.model = outcome.value.get("model")
            child.refit_time = float(outcome.value.get("refit_time") or 0.0)
            if child.model is not None:  # made in the same job: its answer's size bounds the model's
                child.model_bytes = int(outcome.value.get("model_bytes") or outcome.nbytes)
        else:
            child.fit_time = outcome.seconds
            if outcome.timed_out and which == "iteration":
                child.status = "Failed"
                child.error = (f"TimeoutError: iteration_timeout_minutes ({self.settings['iteration_timeout_minutes']:g})"
                               f" reached; the worker process was stopped after {outcome.seconds:.1f} s")
            elif outcome.timed_out:
                child.status = "Canceled"
                child.error = "experiment timeout reached; the worker process was stopped"
            else:
                child.status, child.error = "Failed", outcome.error
            child.timed_out = outcome.timed_out
        with self.lock:
            self.carrying.discard(child.iteration)
            self.children.append(child)
            self.children.sort(key=lambda c: c.iteration)
            self.search.observe(child)
            if child.status == "Completed" and (self.best is None or M.better(self.metric, child.score, self.best.score)):
                self.best = child
            self._drop_models()
        self._record(child, record)
        best = self.best.score if self.best else float("nan")
        self.log(f"{child.iteration:>5}  {child.display_name:<45} {_clock(child.fit_time):>9} "
                 f"{child.score:>8.4f} {best:>8.4f}" + (f"  {child.status}: {child.error.splitlines()[0]}"
                                                        if child.error else ""))
        if outcome.traceback:  # the whole story goes to the log; error messages keep the first line
            self.log("       " + outcome.traceback.rstrip().replace("\n", "\n       "))

    def _refitted(self, iteration: int, outcome: TaskOutcome) -> None:
        """A child's model arrived (or could not be made in time: the end makes it, or does without it)."""
        with self.lock:
            self.refitting.discard(iteration)
            child = next(c for c in self.children if c.iteration == iteration)
            if outcome.ok:
                child.model, child.refit_time, child.model_bytes = outcome.value[0], outcome.seconds, outcome.nbytes
                self._drop_models()
        if not outcome.ok:
            self.log(f"       iteration {iteration} {child.display_name}: its model was not made "
                     f"({short_error(outcome.error)})")

    def _drop_models(self) -> None:
        """Keep the models of the children an ensemble may choose (the pool) only: forests can be large."""
        pool = {c.iteration for c in self.base_pool()}
        for child in self.children:
            if child.model is not None and child.iteration not in pool and child.algorithm not in ENSEMBLES:
                child.model = None

    def _wanted_model(self) -> ChildResult | None:
        """The best completed base child among the ``REFIT_TOP`` best still without its model, when making it
        should end before the budget does."""
        left = self.model_time_left()
        for child in self.base_pool(REFIT_TOP):
            if child.model is not None or child.iteration in self.refitting:
                continue
            if left is None or 1.5 * self.refit_seconds([child], 1) < left:
                return child
        return None

    def carries_model(self) -> bool:
        """Whether the next child makes its model right after its folds, in the same job: while no child has a
        model nor is making one. On a loaded machine the first child can take most of the budget; its model made
        at once, before other children take the workers, is what keeps the experiment within the budget."""
        return not any(c.model is not None for c in self.children) and not self.refitting and not self.carrying

    def no_child_error(self) -> AutoMLError:
        """Why no child completed: the time limits (an ``AutoMLTimeoutError``) or the children's own errors."""
        children = [c for c in self.children if c.algorithm not in ENSEMBLES]
        started = len(children)
        timed_out = [c for c in children if c.timed_out]
        stopped_by_experiment = "experiment timeout" in self.stop_reason or any(
            c.status == "Canceled" for c in timed_out)
        if children and len(timed_out) == len(children) and not stopped_by_experiment:
            minutes = self.settings["iteration_timeout_minutes"]
            return AutoMLTimeoutError(
                f"no child run completed within iteration_timeout_minutes={minutes:g} ({started} started, each "
                f"stopped by the iteration timeout); raise iteration_timeout_minutes")
        if len(timed_out) == len(children) and stopped_by_experiment:
            hours = self.settings.get("experiment_timeout_hours")
            setting = ("experiment_timeout_hours", hours) if hours is not None and \
                self.settings.get("experiment_timeout_minutes") is None else \
                ("experiment_timeout_minutes", (self.budget or 0) / 60)
            by_iteration = sum(1 for c in timed_out if c.status != "Canceled")
            if not started:
                return AutoMLTimeoutError(
                    f"no child run started within {setting[0]}={setting[1]:g} (preparing and featurizing the data "
                    f"took {self.clock() - self.started:.0f} s); raise {setting[0]}")
            stopped = (f"{started} started, stopped by the timeout" if not by_iteration else
                       f"{started} started: {started - by_iteration} stopped by the experiment timeout, "
                       f"{by_iteration} by iteration_timeout_minutes="
                       f"{self.settings['iteration_timeout_minutes']:g}")
            return AutoMLTimeoutError(f"no child run completed within {setting[0]}={setting[1]:g} ({stopped}); "
                                      f"raise {setting[0]}")
        failed = [c for c in children if not c.timed_out]
        errors = "; ".join(f"{c.display_name}: {short_error(c.error)}" for c in failed[:3]) or "no iteration ran"
        more = f"; {len(failed) - 3} more failed" if len(failed) > 3 else ""
        timeouts = f"; {len(timed_out)} more stopped by a timeout" if timed_out else ""
        return AutoMLDataError(f"no child run completed ({errors}{more}{timeouts})")

    def _record(self, child: ChildResult, record: Any) -> None:
        if record is None:
            return
        record.add_properties(child_properties(child, self.settings, self.training_type))
        if child.status == "Completed":
            record.log_metrics(child.metrics)
            write = getattr(record, "write_artifact", None)
            if write is not None and child.oof is not None:
                for name, artifact in self.fold.kind.child_artifacts(self.fold, child.oof).items():
                    write(name, json.dumps(artifact))
            record.complete()
        else:
            record.fail(child.error or "failed", status=child.status)

    def run_base(self, concurrency: int) -> None:
        """The children, ``concurrency`` at a time, through joblib: threads that each drive a worker process by
        default; inside ``joblib.parallel_config(backend="dask")`` (or ray) the tasks go to that cluster. Between
        children, the best ones get their models (``REFIT_TOP``)."""
        from joblib import Parallel

        pending: dict[int, tuple[ChildResult, Any]] = {}
        runner = Parallel(n_jobs=max(1, concurrency), prefer="threads", return_as="generator_unordered",
                          pre_dispatch="n_jobs")
        for (kind, iteration), result in runner(self._jobs(pending)):
            if kind == "child":
                child, record = pending.pop(iteration)
                self._finish(child, record, *result)
            else:
                self._refitted(iteration, result)
        if self.stop_reason:
            self.log(f"Stopping: {self.stop_reason}")

    def _jobs(self, pending: dict[int, tuple[ChildResult, Any]]) -> Iterator[Any]:
        """The next job whenever a worker is free: a wanted model first, else the next child (until the search stops)."""
        from joblib import delayed

        iteration = 0
        while True:
            with self.lock:
                wanted = self._wanted_model()
                if wanted is not None:
                    self.refitting.add(wanted.iteration)
                    job = delayed(_tagged)(("refit", wanted.iteration), _refit_task, self.runner, [wanted.spec],
                                           self.threads, self.model_deadline())
                else:
                    if len(self.children) + len(pending) >= self.n_base or self.should_stop():
                        return
                    child, record = self._start(iteration)
                    pending[iteration] = (child, record)
                    carry = self.carries_model()
                    if carry:
                        self.carrying.add(iteration)
                    job = delayed(_tagged)(("child", iteration), _child_task, self.runner, child.spec, self.threads,
                                           Deadline.of(self.deadline(), self.clock), self.iteration_timeout,
                                           self.model_deadline() if carry else None,
                                           self.refit_seconds([ChildResult(0, "", "", "", {}, fit_time=1.0)], 1))
                    iteration += 1
            yield job

    # -- ensembles ----------------------------------------------------------------------------
    def base_pool(self, limit: int | None = None) -> list[ChildResult]:
        limit = limit or ENSEMBLE_POOL
        done = [c for c in self.children if c.status == "Completed" and c.algorithm not in ENSEMBLES
                and c.oof is not None and not np.isnan(c.score)]
        return sorted(done, key=lambda c: (c.score, -c.iteration), reverse=self.metric not in M.MINIMIZE)[:limit]

    def members_of(self, child: ChildResult) -> list[ChildResult]:
        """The base children whose models make up ``child``'s (an ensemble's members, else itself)."""
        if child.algorithm not in ENSEMBLES:
            return [child]
        by_iteration = {c.iteration: c for c in self.children}
        return [by_iteration[i] for i, _ in child.members]

    def run_ensembles(self) -> None:
        """Azure's last iterations: a VotingEnsemble (Caruana selection) and a StackEnsemble over the best children,
        chosen from their out-of-fold predictions within what is left of the budget."""
        from . import ensemble as E

        pool = self.base_pool()
        end = self.end()
        if end is not None and pool:  # members are children with their model, or whose model can still be made
            spare = end - self.clock() - self.finish_seconds() - self.ensemble_cost(pool[:5])
            kept: list[ChildResult] = []
            for child in pool:  # the best first: an unmade model joins while all of them can be made in time
                unmade = [c for c in kept + [child] if c.model is None]
                if child.model is not None or 1.3 * self.refit_seconds(unmade, self.refit_groups(unmade)) <= spare:
                    kept.append(child)
            pool = kept
        if len(pool) < 2 or not self.ensembles:
            return
        if end is not None and self.clock() + self.ensemble_cost(pool[:5]) + self.finish_seconds() >= end:
            self.log(f"Skipping {' and '.join(self.ensembles)}: the experiment timeout leaves no time for them")
            return
        assert self.best is not None
        iteration = max(c.iteration for c in self.children) + 1
        oofs = _oofs(pool)

        def out_of_time() -> bool:  # the pool's models are kept for saving as they are made
            return end is not None and self.clock() + self.finish_seconds(pool) >= end

        select = E.bagged_caruana if self.fold.kind.bagged_voting else E.caruana
        weights = select(self.fold, self.metric, oofs, [c.score for c in pool],
                         iterations=int(self.settings.get("ensemble_iterations") or 15), stop=out_of_time)
        members = [(c, w) for c, w in zip(pool, weights) if w > 0]
        for name in self.ensembles:
            if name == "StackEnsemble":  # its members are the VotingEnsemble's: their models come first
                self.make_models([c for c, _ in members])
            if out_of_time():
                self.log(f"Skipping {name}: the experiment timeout leaves no time for it")
                break
            child = ChildResult(iteration, f"{self.parent_run_id}_{iteration}", "", name, {})
            record = self.recorder.child_run(name, run_id=child.run_id) if self.recorder else None
            self.records[iteration] = record
            begun = self.clock()
            try:
                if name == "VotingEnsemble":
                    child.members = [(c.iteration, w) for c, w in members]
                    child.oof = E.blend(_oofs(c for c, _ in members), [w for _, w in members])
                else:
                    chosen = [c for c, _ in members] if len(members) >= 2 else pool[:2]
                    child.members = [(c.iteration, 1.0 / len(chosen)) for c in chosen]
                    child.oof = E.stack_oof(self.fold, _oofs(chosen), out_of_time=lambda seconds: end is not None
                                            and self.clock() + seconds + self.finish_seconds(pool) >= end)
                child.metrics = E.score_all(self.fold, child.oof)
                child.score = child.metrics[self.metric]
                child.params = {"ensembled_iterations": [i for i, _ in child.members],
                                "ensemble_weights": [round(w, 6) for _, w in child.members]}
            except E.OutOfTime as exc:  # canceled, as a child running at the experiment timeout is
                child.status, child.error = "Canceled", f"experiment timeout reached: {exc}"
            except Exception as exc:  # an ensemble that fails is recorded like any child
                child.status, child.error = "Failed", f"{type(exc).__name__}: {exc}"
            child.fit_time = self.clock() - begun
            with self.lock:
                self.children.append(child)
                best = self.best  # an ensemble is the best child only when it validates better than its best member
                if child.status == "Completed" and M.better(self.metric, child.score, self.best.score):
                    self.best = child
            self._record(child, record)
            self.log(f"{child.iteration:>5}  {child.display_name:<45} {_clock(child.fit_time):>9} "
                     f"{child.score:>8.4f} {self.best.score:>8.4f}" + (f"  {child.status}: {child.error}"
                                                                       if child.error else ""))
            if child.status == "Completed" and self.best is best:
                self.log(f"       {name} is not better than iteration {best.iteration} {best.display_name} on "
                         f"validation: that child stays the best")
            iteration += 1

    def keep_predictions(self) -> None:
        """Keep the validation predictions of the best child and of the ensembles with their runs
        (``VALIDATION_PREDICTIONS``): what Azure draws a child's charts from, and what ``amlstep report`` reads."""
        from .artifacts import VALIDATION_PREDICTIONS

        kept = [c for c in self.children if c.status == "Completed" and c.oof is not None
                and (c is self.best or c.algorithm in ENSEMBLES)]
        for child in kept:
            write = getattr(self.records.get(child.iteration), "write_artifact", None)
            if write is None:
                continue
            assert child.oof is not None
            try:
                frame = self.fold.kind.validation_predictions(self.fold, child.oof)
                write(VALIDATION_PREDICTIONS, frame.to_csv(index=False))
            except Exception as exc:  # the charts' data, never a reason to fail the run
                self.log(f"Iteration {child.iteration} keeps no validation predictions: {type(exc).__name__}: {exc}")

    def explain(self, model: Any, data: PreparedData) -> None:
        """Azure's model explanation (``model_explainability``, on by default): the best model's permutation
        importance on the validation data it did not learn from, else on its training rows, kept with the best
        child (``explain.EXPLANATION``); within what is left of the budget, else left to ``amlstep report``."""
        from . import explain

        task = self.fold.kind
        if not self.settings.get("model_explainability", True) or not task.reads_validation_predictions:
            return
        assert self.best is not None
        write = getattr(self.records.get(self.best.iteration), "write_artifact", None)
        if write is None:
            return
        left = self.left()
        if left is not None:  # the model is saved after its explanation, within the budget
            left -= self.finish_seconds(self.members_of(self.best)) - FINISH_SECONDS
        seconds = explain.IMPORTANCE_SECONDS if left is None else min(explain.IMPORTANCE_SECONDS, left / 3)
        if seconds < 1.0:
            self.log("Model explanation skipped: the budget is spent (amlstep report computes it)")
            return
        X, y = data.X, data.y
        if data.n_train < len(X):
            X, y = X.iloc[data.n_train:].reset_index(drop=True), y[data.n_train:]
            where = f"{len(X)} validation rows the model did not learn from"
        else:
            where = f"{len(X)} training rows the model learned from"
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                explanation = explain.permutation_importance(task, model, X, y, self.metric, where, seconds,
                                                             within=left is not None)
            if explanation is None:
                self.log(f"Model explanation skipped: the best model predicts too slowly for the {seconds:.1f} s "
                         f"left for it (amlstep report computes it)")
                return
            write(explain.EXPLANATION, json.dumps(explanation))
        except Exception as exc:  # an explanation is never a reason to fail the run
            self.log(f"Model explanation skipped: {type(exc).__name__}: {exc}")

    # -- the final model ----------------------------------------------------------------------
    def final_model(self, featurizer: AutoFeaturizer) -> Any:
        """The best child's model behind the fitted featurizer, assembled from the models made during the search.

        A member still without its model is fitted now, within what is left of the budget. When that cannot
        be done, the run ends with the best child whose models are all made (and says so); only a run in
        which no child has its model fits the best base child past the budget.
        """
        best = self.best
        assert best is not None
        members = self.members_of(best)
        error = self.make_models(members)
        if error:
            self.log(f"The model of {best.display_name} was not made ({error})")
        if any(m.model is None for m in members):
            fallback = self.fallback()
            if fallback is None:  # no child has its model: the best base child gets one, past the budget if need be
                fallback = self.base_pool(1)[0]
                self.log(f"No child has its model: refitting iteration {fallback.iteration} {fallback.display_name}")
                outcome = self.refit([fallback], None)
                if not outcome.ok:
                    raise AutoMLDataError(f"the final refit failed: {short_error(outcome.error)}")
                fallback.model = outcome.value[0]
            else:
                self.log(f"Using iteration {fallback.iteration} {fallback.display_name}, the best child with its model")
            self.best = best = fallback
            members = self.members_of(best)
        return assemble(self.fold, best, members, [m.model for m in members], featurizer)

    def make_models(self, members: list[ChildResult]) -> str | None:
        """Make the models ``members`` lack, within what is left of the budget; the reason when they could not be."""
        missing = [m for m in members if m.model is None]
        if not missing:
            return None
        left = self.left()
        timeout = None if left is None else left - self.finish_seconds(members)
        needed = self.refit_seconds(missing, self.refit_groups(missing))
        if timeout is not None and timeout < 1.3 * needed:
            return f"{max(0.0, timeout):.1f} s left of the budget; it needs about {needed:.1f} s"
        outcome = self.refit(missing, timeout)
        if not outcome.ok:
            return short_error(outcome.error)
        for member, model in zip(missing, outcome.value):
            member.model, member.model_bytes = model, outcome.nbytes // len(missing)
        return None

    def fallback(self) -> ChildResult | None:
        """The best completed child whose models are all made (an ensemble's members, else its own), if any."""
        done = [c for c in self.children if c.status == "Completed" and not np.isnan(c.score)]
        ranked = sorted(done, key=lambda c: (c.score, -c.iteration), reverse=self.metric not in M.MINIMIZE)
        return next((c for c in ranked if all(m.model is not None for m in self.members_of(c))), None)

    def refit_seconds(self, members: list[ChildResult], groups: int | None = None) -> float:
        """Expected seconds to fit ``members`` on all rows (measured, else a fold's fit scaled to every row), over
        ``groups`` workers (default: one per concurrent iteration)."""
        n_splits = max(1, len(self.fold.splits))
        train_share = float(np.mean([len(t) for t, _ in self.fold.splits])) / max(len(self.fold.fit_rows), 1)
        total = sum(c.refit_time or c.fit_time / n_splits / max(train_share, 0.3) for c in members)
        return total / max(1, min(groups or self.concurrency, len(members) or 1))

    def refit_groups(self, members: list[ChildResult]) -> int:
        """Workers the refit of ``members`` is spread over: the ready idle ones (one at least), one per member."""
        return max(1, min(self.concurrency, len(members), POOL.ready_count()))

    def refit(self, members: list[ChildResult], timeout: float | None) -> TaskOutcome:
        """Fit ``members`` on all the training rows, spread over the idle workers (longest first)."""
        groups = self.refit_groups(members)  # never wait for a starting worker
        bins: list[list[int]] = [[] for _ in range(groups)]
        loads = [0.0] * groups
        for i in sorted(range(len(members)), key=lambda i: -members[i].fit_time):
            j = loads.index(min(loads))
            bins[j].append(i)
            loads[j] += members[i].fit_time

        def fit(rows: list[int]) -> TaskOutcome:
            return _refit_task(self.runner, [members[i].spec for i in rows], self.threads, timeout)

        if groups == 1:
            return fit(bins[0])
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(groups) as pool:
            outcomes = list(pool.map(fit, bins))
        failed = next((o for o in outcomes if not o.ok), None)
        if failed is not None:
            return failed
        fitted: list[Any] = [None] * len(members)
        for rows, outcome in zip(bins, outcomes):
            for i, model in zip(rows, outcome.value):
                fitted[i] = model
        return TaskOutcome(True, value=fitted, seconds=max(o.seconds for o in outcomes), nbytes=sum(o.nbytes for o in outcomes))


def assemble(fold: FoldData, best: ChildResult, members: list[ChildResult], fitted: list[Any],
             featurizer: AutoFeaturizer) -> Any:
    """The model pipeline Azure outputs: datatransformer, then scaler and estimator, or an ensemble."""
    from sklearn.pipeline import Pipeline

    task = fold.kind
    own = task.assemble(fold, best, members, fitted, featurizer, _oofs(members))
    if own is not None:
        return own
    if best.algorithm not in ENSEMBLES:
        return Pipeline([("datatransformer", featurizer), *fitted[0].steps])
    named = [(f"{m.iteration}_{m.algorithm}", f) for m, f in zip(members, fitted)]
    weights = [w for _, w in best.members]
    if best.algorithm == "VotingEnsemble":
        last = task.voting_ensemble(named, weights, fold)
    else:
        features = task.meta_features(_oofs(members))
        known = np.isfinite(features).all(axis=1)
        meta = task.meta_learner(fold.seed).fit(features[known], fold.y[known])
        last = task.stack_ensemble(named, meta, fold)
    return Pipeline([("datatransformer", featurizer), last])


def _oofs(children: Iterable[ChildResult]) -> list[np.ndarray]:
    """The out-of-fold predictions of completed base children, which always have them."""
    oofs = []
    for child in children:
        assert child.oof is not None
        oofs.append(child.oof)
    return oofs


def short_error(error: str | None, limit: int = 300) -> str:
    """The first line of a child's error, for messages (the traceback stays in the log)."""
    lines = (error or "failed").strip().splitlines()
    line = lines[0] if lines else "failed"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _tagged(tag: Any, fn: Callable[..., Any], *args: Any) -> tuple[Any, Any]:
    return tag, fn(*args)


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
