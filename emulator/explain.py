"""The best model's explanation, as Azure computes it during the run (``model_explainability=True``):
the permutation importance of each raw column, measured with the run's primary metric.

The run keeps it with its best child (``EXPLANATION``); ``amlstep report`` draws it from there, and
computes it the same way for runs that kept none.
"""

from __future__ import annotations

import time
from typing import Any, Callable

EXPLANATION = "outputs/feature_importance.json"
IMPORTANCE_ROWS = 1_000  # rows permutation importance scores on (a random sample above)
IMPORTANCE_REPEATS = 3
IMPORTANCE_SECONDS = 5.0  # fewer rows (at least IMPORTANCE_MIN_ROWS) when the model predicts slower than this allows
IMPORTANCE_MIN_ROWS = 200
SEED = 0


def permutation_importance(task: Any, model: Any, X: Any, y: Any, metric: str, where: str,
                           seconds: float = IMPORTANCE_SECONDS,
                           tick: Callable[[int, int], None] | None = None,
                           within: bool = False) -> dict[str, Any] | None:
    """Each raw column's change in ``metric`` when its values are shuffled, on up to ``IMPORTANCE_ROWS``
    rows of ``X`` (fewer when the model predicts too slowly for about ``seconds`` of predictions).

    The result is JSON-ready: ``columns``, ``mean`` and ``std`` of the drop (a rise for metrics to
    minimise is reported as a positive number too), ``metric``, ``where``, ``rows``, ``repeats``.
    ``within``: ``seconds`` is a hard limit (what is left of a run's budget): None, computing nothing
    more, when even ``IMPORTANCE_MIN_ROWS`` rows would take longer.
    """
    import numpy as np

    from . import metrics as M

    rows = min(len(X), IMPORTANCE_ROWS)
    if within or rows > IMPORTANCE_MIN_ROWS:  # a slow model (many members, many trees) gets fewer rows, not more time
        started = time.perf_counter()
        task.report_predict(model, X.iloc[:rows])
        spent = time.perf_counter() - started
        per_pass = spent / rows * (X.shape[1] * IMPORTANCE_REPEATS + 1)  # a row: its shuffled copies and the baseline
        affordable = int((seconds - spent if within else seconds) / max(per_pass, 1e-9))
        if within and affordable < min(rows, IMPORTANCE_MIN_ROWS):
            return None
        rows = max(min(rows, IMPORTANCE_MIN_ROWS), min(rows, affordable))
    if rows < len(X):
        keep = np.sort(np.random.default_rng(SEED).choice(len(X), rows, replace=False))
        X, y = X.iloc[keep].reset_index(drop=True), np.asarray(y)[keep]
        where = f"a random sample of {rows} of the {where}"
    y = task.report_labels(np.asarray(y))
    y_min, y_max = task.label_range(y, len(y))
    sign = -1.0 if metric in M.MINIMIZE else 1.0

    def score(prediction: Any, classes: Any) -> float:
        return sign * M.primary_value(metric, y, prediction, classes, y_min, y_max, None)

    drops = permutation_drops(task, model, X, score, tick=tick)
    return {"metric": metric, "where": where, "rows": int(len(X)), "repeats": IMPORTANCE_REPEATS,
            "columns": [str(c) for c in X.columns], "mean": [float(v) for v in drops.mean(axis=1)],
            "std": [float(v) for v in drops.std(axis=1)]}


def permutation_drops(task: Any, model: Any, X: Any, score: Callable[[Any, Any], float],
                      batch_rows: int = 20_000, tick: Callable[[int, int], None] | None = None) -> Any:
    """``(columns, repeats)`` drops of ``score`` when each column of ``X`` is shuffled (permutation importance).

    The shuffled copies are predicted in batches of about ``batch_rows`` rows rather than one call per
    copy: an ensemble of forests pays its per-call cost a few times instead of columns x repeats times.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(SEED)
    n, columns = len(X), list(X.columns)
    baseline = score(*task.report_predict(model, X))
    drops = np.zeros((len(columns), IMPORTANCE_REPEATS))
    per_batch = max(1, batch_rows // max(1, n * IMPORTANCE_REPEATS))
    for start in range(0, len(columns), per_batch):
        chosen = columns[start:start + per_batch]
        copies = []
        for column in chosen:
            for _ in range(IMPORTANCE_REPEATS):
                copy = X.copy()
                copy[column] = X[column].to_numpy()[rng.permutation(n)]
                copies.append(copy)
        prediction, classes = task.report_predict(model, pd.concat(copies, ignore_index=True))
        for k in range(len(chosen) * IMPORTANCE_REPEATS):
            drops[start + k // IMPORTANCE_REPEATS, k % IMPORTANCE_REPEATS] = \
                baseline - score(prediction[k * n:(k + 1) * n], classes)
        if tick is not None:
            tick(min(start + per_batch, len(columns)), len(columns))
    return drops
