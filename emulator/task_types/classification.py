"""Classification: class probabilities, stratified folds, Azure's classification metrics and models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from framework.automl import metric_names

from .base import Task

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ..tasks import FoldData


class Classification(Task):
    name = "classification"
    primary_metrics = ("accuracy", "AUC_weighted", "average_precision_score_weighted", "norm_macro_recall",
                       "precision_score_weighted")
    default_primary_metric = "accuracy"
    models = ("LogisticRegression", "SGD", "MultinomialNaiveBayes", "BernoulliNaiveBayes", "SVM", "LinearSVM", "KNN",
              "DecisionTree", "RandomForest", "ExtremeRandomTrees", "LightGBM", "GradientBoosting",
              "XGBoostClassifier")
    metrics = metric_names.CLASSIFICATION_METRICS
    leader_metrics = ("AUC_weighted", "accuracy", "balanced_accuracy", "f1_score_weighted", "log_loss")
    numeric_label = False
    reads_validation_predictions = True
    report_predict_method = "predict_proba"

    # -- data ------------------------------------------------------------------------------------
    def encode_labels(self, label: str, y: pd.Series) -> tuple[np.ndarray, np.ndarray | None]:
        import numpy as np
        import pandas as pd

        from ..engine import AutoMLDataError

        values = y.to_numpy()
        if pd.api.types.is_float_dtype(y) and np.all(np.mod(values, 1) == 0):
            values = values.astype(int)
        if values.dtype == object and len({type(v) for v in values}) > 1:  # 1 beside "1" (files read apart): text
            values = np.array([str(v) for v in values], dtype=object)
        classes = np.unique(values)
        if len(classes) < 2:
            raise AutoMLDataError(f"label column {label!r} has a single class ({classes[0].item()!r}); classification "
                                  f"needs at least two")
        return values, classes

    def target_type(self, y: np.ndarray) -> str | None:
        import numpy as np

        return "binary" if len(np.unique(y)) == 2 else "multiclass"

    def stratify(self, y: np.ndarray, n_splits: int) -> bool:
        import numpy as np

        return int(np.unique(y, return_counts=True)[1].min()) >= n_splits

    def guardrails(self, data: Any) -> list[dict[str, Any]]:
        import numpy as np

        values, counts = np.unique(data.y, return_counts=True)
        # Azure alerts when the smallest class has under 20% of the samples of the largest
        balanced = counts.min() / counts.max() >= 0.2
        return [{"type": "Class balancing detection", "status": "Passed" if balanced else "Alerted",
                 "description": ("Your inputs were analyzed, and all classes are balanced in your training "
                                 "data." if balanced else "Imbalanced classes were detected in your inputs."),
                 "columns": [f"{v}: {c}" for v, c in zip(values.tolist(), counts.tolist())]}]

    # -- models ----------------------------------------------------------------------------------
    def portfolio(self, data: FoldData | None) -> list[tuple[str, str, dict[str, Any]]]:
        """``warm_start``; with more than two classes the boosted children take fewer, larger steps.

        Boosting grows one tree per class and round, so k classes cost k/2 times a binary model: the
        first children keep a binary model's time by ``n_estimators * 2/k`` rounds (at least 50) at a
        learning rate raised as much (at most 0.3)."""
        children = self.warm_start
        k = len(data.classes) if data is not None and data.classes is not None else 2
        if k <= 2:
            return children
        boosted = ("LightGBM", "XGBoostClassifier", "GradientBoosting")
        return [(p, a, _fewer_rounds(params, k) if a in boosted else params) for p, a, params in children]

    def make_estimator(self, algorithm: str, params: dict[str, Any], seed: int, threads: int = 1) -> Any:
        from ..models import classifier

        return classifier(algorithm, params, seed, threads)

    def prediction_width(self, data: FoldData) -> int:
        assert data.classes is not None
        return len(data.classes)

    def predict(self, model: Any, X: Any, data: FoldData) -> np.ndarray:
        """Class probabilities aligned with ``data.classes``."""
        from ..tasks import aligned_probabilities

        assert data.classes is not None
        return aligned_probabilities(model.predict_proba(X), model.classes_, data.classes)

    def fold_metrics(self, data: FoldData, valid: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
        from .. import metrics as M

        assert data.classes is not None
        weights = data.weights[valid] if data.weights is not None else None
        return M.classification_metrics(data.y[valid], prediction, data.classes, weights)

    def child_artifacts(self, data: FoldData, oof: np.ndarray) -> dict[str, Any]:
        import numpy as np

        from .. import metrics as M

        assert data.classes is not None
        rows = np.flatnonzero(np.isfinite(oof).all(axis=1))
        y, proba = data.y[rows], oof[rows]
        predicted = data.classes[np.argmax(proba, axis=1)]
        return {"confusion_matrix": M.confusion_matrix(y, predicted, data.classes),
                "accuracy_table": M.accuracy_table(y, proba, data.classes)}

    def prediction_names(self, data: FoldData) -> list[str]:
        assert data.classes is not None
        return [f"proba_{c}" for c in data.classes]

    def read_validation_predictions(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Labels as text (``y_true`` is read with ``dtype=str``), classes from the ``proba_<class>`` headers."""
        import numpy as np

        names = [c for c in frame.columns if c.startswith("proba_")]
        classes = np.array([c[len("proba_"):] for c in names], dtype=object)
        return frame["y_true"].astype(str).to_numpy(dtype=object), frame[names].to_numpy(dtype=float), classes

    # -- ensembles -------------------------------------------------------------------------------
    def meta_learner(self, seed: int) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=1.0, max_iter=2000, random_state=seed)

    def meta_features(self, predictions: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities side by side, one column less per model for binary problems."""
        import numpy as np

        return np.hstack([p[:, 1:] if p.shape[1] == 2 else p for p in predictions])

    def voting_ensemble(self, named: list[tuple[str, Any]], weights: list[float], data: FoldData) -> tuple[str, Any]:
        from ..ensemble import PreFittedSoftVotingClassifier

        return "prefittedsoftvotingclassifier", PreFittedSoftVotingClassifier(named, weights, data.classes)

    def stack_ensemble(self, named: list[tuple[str, Any]], meta: Any, data: FoldData) -> tuple[str, Any]:
        from ..ensemble import StackEnsembleClassifier

        return "stackensembleclassifier", StackEnsembleClassifier(named, meta, data.classes,
                                                                    random_state=data.seed)

    # -- predict and report ----------------------------------------------------------------------
    def prediction_columns(self, model: Any, features: pd.DataFrame, label: str) -> dict[str, Any]:
        import numpy as np

        columns: dict[str, Any] = {f"predicted_{label}": np.asarray(model.predict(features))}
        if hasattr(model, "predict_proba"):
            proba = model.predict_proba(features)
            classes = list(getattr(model, "classes_", range(proba.shape[1])))
            for j, cls in enumerate(classes):
                columns[f"proba_{cls}"] = np.round(proba[:, j], 6)
        return columns

    def report_labels(self, y: np.ndarray) -> np.ndarray:
        """Whole-number float labels as integers, as ``encode_labels`` gave them to the models."""
        import numpy as np

        if len(y) and isinstance(y[0], float) and np.all(np.mod(y.astype(float), 1) == 0):
            return y.astype(int)
        return y

    def report_predict(self, model: Any, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        import numpy as np

        return model.predict_proba(X), np.asarray(model.classes_)

    def report_cv(self, y: np.ndarray, n_splits: int, seed: int) -> tuple[np.ndarray, Any, int]:
        import numpy as np
        from sklearn.model_selection import StratifiedKFold

        y = self.report_labels(y)
        counts = np.unique(y, return_counts=True)[1]
        n_splits = max(2, min(n_splits, int(counts.min())))
        return y, StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed), n_splits

    def report_figures(self, evaluation: Any, y: np.ndarray, oof: np.ndarray, classes: Any) -> None:
        import numpy as np

        from ..report_plots import classification_figures

        classification_figures(evaluation, y, oof, np.unique(y) if classes is None else classes)


def _fewer_rounds(params: dict[str, Any], k: int) -> dict[str, Any]:
    rounds = int(params.get("n_estimators", 100))
    fewer = max(50, round(rounds * 2 / k))
    if fewer >= rounds:
        return params
    rate = float(params.get("learning_rate", 0.1))
    return {**params, "n_estimators": fewer, "learning_rate": min(0.3, rate * rounds / fewer)}
