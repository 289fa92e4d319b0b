"""The interface every AutoML task implements: what changes between classification, regression and
forecasting, in one object per task.

The engine, the worker code (``emulator.tasks``), the ensembles, the settings, ``amlstep predict``
and ``amlstep report`` ask the task object; none of them compares task names. Module-level
imports stay light (no numpy, pandas or scikit-learn): ``emulator.settings`` reads the names,
metrics and models when a pipeline is defined, and ``amlstep --help`` must stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..artifacts import VALIDATION_PREDICTIONS  # noqa: F401 (the artifact of ``Task.validation_predictions``)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ..tasks import FoldData

#: Its columns before the task's prediction columns (``weight`` only with a weight column).
PREDICTION_KEYS = ("row", "fold", "y_true", "weight")


class Task:
    """One Automated ML task: its settings, data rules, models, metrics, ensembles, guardrails and plots.

    Subclasses set the class attributes and override the hooks whose behaviour differs. Instances
    hold no state: one per task, shared (see ``emulator.task_types.get_task``).
    """

    name: str = ""
    #: Azure's valid ``primary_metric`` values, and the default.
    primary_metrics: tuple[str, ...] = ()
    default_primary_metric: str = ""
    #: Azure's model names for ``allowed_models`` / ``blocked_models``, in Azure's order.
    models: tuple[str, ...] = ()
    #: Every scalar metric a child logs (the rows of the metrics JSON).
    metrics: tuple[str, ...] = ()
    #: Extra leaderboard columns of the report, in order.
    leader_metrics: tuple[str, ...] = ()
    #: Default of ``enable_stack_ensemble`` (Azure turns it off for forecasting).
    stack_ensemble_default: bool = True
    #: Labels must be numbers (and finite).
    numeric_label: bool = True
    #: Extra AutoMLConfig settings this task accepts, name -> default (forecasting's parameters).
    extra_settings: Mapping[str, Any] = {}
    #: The VotingEnsemble's weights are Caruana selection bagged over the folds (``ensemble.bagged_caruana``):
    #: the mean of the weights chosen on every fold and with each fold left out, not those on every fold alone.
    bagged_voting: bool = False
    #: ``amlstep report`` draws the best child's kept validation predictions (``report_figures``) instead of
    #: calling ``report_evaluation`` (which may refit the model).
    reads_validation_predictions: bool = False

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    def __reduce__(self) -> Any:  # one instance per task, also after unpickling
        from .registry import get_task

        return get_task, (self.name,)

    # -- settings (pure Python) ------------------------------------------------------------------
    def validate_settings(self, settings: dict[str, Any], given: Sequence[str], where: str) -> None:
        """Task-specific checks of validated settings; may normalise values in ``settings``."""

    # -- data ------------------------------------------------------------------------------------
    def encode_labels(self, label: str, y: pd.Series) -> tuple[np.ndarray, np.ndarray | None]:
        """The label values the models learn from, and the classes (None when there are none)."""
        raise NotImplementedError

    def label_range(self, y: np.ndarray, n_train: int) -> tuple[float, float]:
        """``(y_min, y_max)`` that normalises the ``normalized_*`` metrics."""
        return 0.0, 1.0

    def stratify(self, y: np.ndarray, n_splits: int) -> bool:
        """Whether folds of ``n_splits`` keep the class shares of ``y``."""
        return False

    def prepare_data(self, settings: Mapping[str, Any], training: pd.DataFrame,
                     validation: pd.DataFrame | None) -> Any:
        """Check the data and build the splits: ``emulator.engine.PreparedData``."""
        from ..engine import prepare_tabular

        return prepare_tabular(self, settings, training, validation)

    def featurize(self, settings: Mapping[str, Any], data: Any) -> Any:
        """The fitted featurizer (the model's first step): Azure's featurization ``auto``/``off``/config."""
        from ..engine import AutoMLDataError
        from ..featurize import AutoFeaturizer

        try:
            featurizer = AutoFeaturizer(settings.get("featurization", "auto"), self.target_type(data.y[: data.n_train]))
            return featurizer.fit(data.X.iloc[: data.n_train], data.y[: data.n_train])
        except ValueError as exc:  # a column the featurization cannot use: before any child runs
            raise AutoMLDataError(str(exc)) from None

    def target_type(self, y: np.ndarray) -> str | None:
        """What Azure's ``CatTargetEncoder`` encodes for this task's labels (scikit-learn's ``TargetEncoder``
        target type: ``binary``, ``multiclass``, ``continuous``), or None for no target encoding."""
        return None

    def fold_data(self, settings: Mapping[str, Any], data: Any, featurizer: Any) -> FoldData:
        """What every child of the experiment is fitted and scored on."""
        import numpy as np

        from ..tasks import FoldData

        fit_rows = np.arange(len(data.y)) if data.training_type == "MeanCrossValidation" else np.arange(data.n_train)
        X = featurizer.training_matrix(data.X, data.n_train)
        return FoldData(self.name, X, data.y, data.weights, data.splits, fit_rows, data.classes, data.y_min, data.y_max,
                        int(settings.get("random_state", 0) or 0))

    def guardrails(self, data: Any) -> list[dict[str, Any]]:
        """Checks of this task added to the common data guardrails (Azure's form)."""
        return []

    # -- models ----------------------------------------------------------------------------------
    def unavailable_models(self) -> dict[str, str]:
        """Azure's model names this machine cannot run, with the reason (listed in the run output)."""
        return {}

    @property
    def warm_start(self) -> list[tuple[str, str, dict[str, Any]]]:
        """The first children (preprocessor, algorithm, params), tried in order."""
        from ..models import WARM_START

        return WARM_START[self.name]

    def portfolio(self, data: FoldData | None) -> list[tuple[str, str, dict[str, Any]]]:
        """The first children of an experiment on ``data`` (default: ``warm_start``, whatever the data)."""
        return self.warm_start

    def make_estimator(self, algorithm: str, params: dict[str, Any], seed: int, threads: int = 1) -> Any:
        """A fresh estimator for Azure's ``algorithm`` name."""
        raise NotImplementedError

    # -- what a worker does with one child -------------------------------------------------------
    def prediction_width(self, data: FoldData) -> int:
        """Columns of a prediction (class probabilities, or one column of values)."""
        return 1

    def predict(self, model: Any, X: Any, data: FoldData) -> np.ndarray:
        """Predictions as a 2-D array (see ``prediction_width``)."""
        import numpy as np

        return np.asarray(model.predict(X), dtype=float)[:, None]

    def fold_metrics(self, data: FoldData, valid: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
        """Every scalar metric of ``prediction`` for the rows ``valid``."""
        raise NotImplementedError

    def primary_value(self, data: FoldData, metric: str, valid: np.ndarray, prediction: np.ndarray) -> float:
        """One metric of ``prediction`` for the rows ``valid`` (fast: ensemble selection calls it often)."""
        from .. import metrics as M

        weights = data.weights[valid] if data.weights is not None else None
        return M.primary_value(metric, data.y[valid], prediction, data.classes, data.y_min, data.y_max, weights)

    def cross_validate(self, data: FoldData, spec: dict[str, Any], threads: int) -> dict[str, Any] | None:
        """A task's own cross-validation of one child, or None for the common one (``emulator.tasks``)."""
        return None

    def refit(self, data: FoldData, specs: list[dict[str, Any]], threads: int) -> list[Any] | None:
        """A task's own final refit, or None for the common one (``emulator.tasks``)."""
        return None

    def child_artifacts(self, data: FoldData, oof: np.ndarray) -> dict[str, Any]:
        """JSON artifacts a completed child keeps (Azure's ``confusion_matrix``...), from its out-of-fold predictions."""
        return {}

    # -- validation predictions a run keeps (what ``amlstep report`` reads) ----------------------
    def prediction_names(self, data: FoldData) -> list[str]:
        """Names of the columns of ``predict``'s output in the kept validation predictions."""
        return ["predicted"]

    def validation_predictions(self, data: FoldData, oof: np.ndarray) -> pd.DataFrame:
        """A completed child's validation predictions as a table: one row per training row a fold model predicted.

        Columns: ``row`` (the row's position among the training rows with a label, validation data after),
        ``fold`` (the split whose model predicted it), ``y_true``, ``weight`` (with a weight column), then
        ``prediction_names``. Azure computes a child's charts from these; the run keeps them for
        the best child and the ensembles (``VALIDATION_PREDICTIONS``).
        """
        import numpy as np
        import pandas as pd

        fold = np.full(len(data.y), -1)
        for k, (_, valid) in enumerate(data.splits):
            fold[valid] = k
        rows = np.flatnonzero(np.isfinite(oof).all(axis=1) & (fold >= 0))
        columns = {"row": rows, "fold": fold[rows], "y_true": data.y[rows]}
        if data.weights is not None:
            columns["weight"] = data.weights[rows]
        for j, name in enumerate(self.prediction_names(data)):
            columns[name] = oof[rows, j]
        return pd.DataFrame(columns)

    def read_validation_predictions(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(y_true, predictions, classes)`` from a kept table (the inverse of ``validation_predictions``)."""
        names = [c for c in frame.columns if c not in PREDICTION_KEYS]
        return frame["y_true"].to_numpy(dtype=float), frame[names].to_numpy(dtype=float), None

    # -- ensembles -------------------------------------------------------------------------------
    def meta_learner(self, seed: int) -> Any:
        """The StackEnsemble's meta-learner."""
        raise NotImplementedError

    def meta_features(self, predictions: Sequence[np.ndarray]) -> np.ndarray:
        """Stacked base predictions, the meta-learner's input."""
        import numpy as np

        return np.hstack(predictions)

    def voting_ensemble(self, named: list[tuple[str, Any]], weights: list[float], data: FoldData) -> tuple[str, Any]:
        """The fitted VotingEnsemble: (pipeline step name, estimator)."""
        raise NotImplementedError

    def stack_ensemble(self, named: list[tuple[str, Any]], meta: Any, data: FoldData) -> tuple[str, Any]:
        """The fitted StackEnsemble: (pipeline step name, estimator)."""
        raise NotImplementedError

    def assemble(self, data: FoldData, best: Any, members: list[Any], fitted: list[Any], featurizer: Any,
                 oofs: list[np.ndarray]) -> Any | None:
        """A task's own model object (what ``model_output`` holds), or None for the common pipeline."""
        return None

    # -- after training: predict and report ------------------------------------------------------
    def prediction_frame(self, model: Any, prepared: pd.DataFrame, label: str) -> pd.DataFrame | None:
        """``amlstep predict``'s whole output table when the task decides its rows (forecasting), else None."""
        return None

    def prediction_columns(self, model: Any, features: pd.DataFrame, label: str) -> dict[str, Any]:
        """``amlstep predict``'s output columns for prepared rows ``features``."""
        import numpy as np

        return {f"predicted_{label}": np.asarray(model.predict(features))}

    def report_evaluation(self, model: Any, X: pd.DataFrame, y: np.ndarray, settings: Mapping[str, Any],
                          notes: list[str]) -> Any:
        """``amlstep report``'s evaluation of the best model (``emulator.report_plots.Evaluation``)."""
        from ..report_plots import cross_validated_evaluation

        return cross_validated_evaluation(self, model, X, y, settings, notes)

    def report_cv(self, y: np.ndarray, n_splits: int, seed: int) -> tuple[np.ndarray, Any, int]:
        """The report's out-of-fold evaluation: (labels as the models see them, splitter, folds)."""
        raise NotImplementedError

    #: ``cross_val_predict``'s method for the report's out-of-fold predictions.
    report_predict_method: str = "predict"

    def report_figures(self, evaluation: Any, y: np.ndarray, oof: np.ndarray, classes: Any) -> None:
        """Add this task's metrics and figures to the report's ``evaluation``."""

    def report_predict(self, model: Any, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """A fitted model's predictions for raw rows ``X`` as the metrics take them (2-D), and the classes."""
        import numpy as np

        return np.asarray(model.predict(X), dtype=float).reshape(len(X), -1), None

    def report_labels(self, y: np.ndarray) -> np.ndarray:
        """Training labels read back from the data, as the model learned them."""
        import numpy as np

        return np.asarray(y, dtype=float)
