"""Azure Automated ML's metric names and goals, without numpy: the AutoML settings and the task objects read them at
definition time."""

from __future__ import annotations

CLASSIFICATION_METRICS = (
    "AUC_macro", "AUC_micro", "AUC_weighted", "accuracy", "average_precision_score_macro",
    "average_precision_score_micro", "average_precision_score_weighted", "balanced_accuracy",
    "f1_score_macro", "f1_score_micro", "f1_score_weighted", "log_loss", "matthews_correlation",
    "norm_macro_recall", "precision_score_macro", "precision_score_micro", "precision_score_weighted",
    "recall_score_macro", "recall_score_micro", "recall_score_weighted", "weighted_accuracy",
)
REGRESSION_METRICS = (
    "explained_variance", "mean_absolute_error", "mean_absolute_percentage_error", "median_absolute_error",
    "normalized_mean_absolute_error", "normalized_median_absolute_error", "normalized_root_mean_squared_error",
    "normalized_root_mean_squared_log_error", "r2_score", "root_mean_squared_error",
    "root_mean_squared_log_error", "spearman_correlation",
)
# forecasting adds scale-free errors (reported; Azure's primary metrics stay those of regression)
FORECASTING_METRICS = REGRESSION_METRICS + ("symmetric_mean_absolute_percentage_error", "mean_absolute_scaled_error")
MINIMIZE = {"symmetric_mean_absolute_percentage_error", "mean_absolute_scaled_error", "log_loss",
            "mean_absolute_error", "mean_absolute_percentage_error", "median_absolute_error",
            "normalized_mean_absolute_error", "normalized_median_absolute_error",
            "normalized_root_mean_squared_error", "normalized_root_mean_squared_log_error",
            "root_mean_squared_error", "root_mean_squared_log_error"}
