"""Names of the files an AutoML run keeps with its child runs: written by the engine, read by the report."""

from __future__ import annotations

#: A child run's validation predictions (``Task.validation_predictions``): what Azure draws a child's charts from.
VALIDATION_PREDICTIONS = "outputs/validation_predictions.csv"
