"""``amlstep predict`` with a model an AutoML step trained (the ``model_predictor`` hook of the AutoML plugin).

The step's settings say what is predicted (``label_column_name``) from which rows
(``training_data``) and how (the task: class labels and probabilities, values, or a forecast).
``amlstep predict`` re-runs the preparation on the new rows and hands them here; the task object
(``task_types``) turns them into the output's columns.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from framework import WorkspaceError
from framework.reporting import Predictions, read_tabular

if TYPE_CHECKING:
    import pandas as pd

    from framework.reporting import Lineage
    from framework.workspace import RunRecord


class AutoMLPredictor:
    """Predicts with the model of AutoML step run ``step`` of ``lineage``'s pipeline run."""

    def __init__(self, lineage: Lineage, step: RunRecord) -> None:
        self.lineage = lineage
        self.step = step
        self.task = str(step.params.get("task", "classification"))

    def training(self) -> tuple[str, str]:
        label = self.step.params.get("label_column_name")
        source = self.lineage.inputs(self.step).get("training_data")
        if not label or not source:
            raise WorkspaceError(f"AutoML step {self.step.name!r} of run {self.lineage.run.id} records no label column or "
                                 f"training data")
        return source, str(label)

    def predict(self, model: Any, rows: pd.DataFrame, *, model_id: str, file_name: str,
                notes: list[str]) -> Predictions:
        from .task_types.registry import get_task

        source, label = self.training()
        settings = self.step.params
        kind = get_task(self.task)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                table = kind.prediction_frame(model, rows, label)  # forecasting: the task picks the rows
            except ValueError as exc:
                raise WorkspaceError(f"model {model_id} cannot forecast {file_name}: {exc}") from None
        if table is not None:
            return Predictions(table=table)
        dropped = [c for c in [label, settings.get("weight_column_name"), *(settings.get("cv_split_column_names") or [])]
                   if c and c in rows.columns]
        features = rows.drop(columns=dropped)
        expected = _input_columns(model)
        if expected is not None:
            missing = [c for c in expected if c not in features.columns]
            if missing:
                raise WorkspaceError(
                    f"after preparation, {file_name} lacks column(s) {', '.join(map(repr, missing))} that model "
                    f"{model_id} was trained on; prepared columns: {', '.join(map(str, features.columns))}")
        trained_on = read_tabular(self.lineage.location(source), f"training data {source!r}")
        notes.extend(_type_changes(trained_on, features, file_name))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predicted = kind.prediction_columns(model, features, label)
        return Predictions(columns=dict(predicted), rows=features)


def _type_changes(trained_on: pd.DataFrame, features: pd.DataFrame, file_name: str) -> list[str]:
    """Notes for numeric training columns that are empty or hold text in the new rows."""
    import pandas as pd

    notes = []
    for column in features.columns:
        if column not in trained_on.columns or not pd.api.types.is_numeric_dtype(trained_on[column]):
            continue
        values = features[column]
        if values.isna().all() and trained_on[column].notna().any():
            notes.append(f"column {column!r} is empty in all {len(values)} rows of {file_name}; the model imputes it")
            continue
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        text = values[values.notna() & pd.to_numeric(values, errors="coerce").isna()]
        if len(text):
            notes.append(f"column {column!r} was numeric in training but holds text in {len(text)} of {len(values)} "
                         f"rows of {file_name} (e.g. {text.iloc[0]!r}); those values count as missing")
    return notes


def _input_columns(model: Any) -> list[str] | None:
    steps = getattr(model, "steps", None)
    if steps:
        columns = getattr(steps[0][1], "input_columns_", None)
        if columns is not None:
            return list(columns)
    names = getattr(model, "feature_names_in_", None)
    return list(names) if names is not None else None
