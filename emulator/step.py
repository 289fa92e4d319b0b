"""The built-in AutoML step: offline it runs the emulator; on Azure it compiles to ``AutoMLStep``.

The plugin also answers ``amlstep report`` (its section for each AutoML step run: guardrails,
leaderboard, plots of the best model) and ``amlstep predict`` (predictions with a model an AutoML
step trained), through the ``report_section`` and ``model_predictor`` hooks.
"""

from __future__ import annotations

import json
import pickle
from typing import TYPE_CHECKING, Any, Callable

from framework import REQUIRED, DataType, Input, Output, Param, RunContext, StepSpec, hookimpl

from .settings import validate_settings
from .task_types import task_names

if TYPE_CHECKING:
    from framework.reporting import Lineage, Predictor, Progress, ReportSection
    from framework.workspace import RunRecord


def run(context: RunContext, training_data: Any, validation_data: Any = None, **settings: Any) -> None:
    from .api import execute, parent_properties

    result = execute(settings, training_data, validation_data, recorder=context, parent_run_id=context.id)
    metric = settings["primary_metric"]
    context.add_properties(parent_properties(result))
    context.log(metric, result.best.score)
    metrics_file = context.output_dir("metrics") / context.output_data_name("metrics")
    metrics_file.write_text(json.dumps(result.metrics_json(), indent=1))
    model_file = context.output_dir("model") / context.output_data_name("model")
    model_file.write_bytes(result.model_pickle or pickle.dumps(result.model))


STEP = StepSpec(
    name="automl",
    kind="automl",
    description="Automated ML: tries featurized model pipelines with cross-validation, outputs metrics and the best model",
    run=run,
    inputs=[Input("training_data", DataType.TABULAR, "training rows, label column included"),
            Input("validation_data", DataType.TABULAR, "explicit validation rows", optional=True)],
    outputs=[Output("metrics", DataType.METRICS, "{child_run_id: {metric: [value]}} (TrainingOutput 'Metrics')"),
             Output("model", DataType.MODEL, "pickled fitted scikit-learn Pipeline (TrainingOutput 'Model')")],
    params=[Param("task", str, REQUIRED, " or ".join(task_names()), task_names()),
            Param("label_column_name", str, REQUIRED, "the column to predict"),
            Param("primary_metric", str, "accuracy",
                  "metric that ranks child runs; regression default: normalized_root_mean_squared_error"),
            Param("iterations", int, 1000, "maximum number of child runs"),
            Param("experiment_timeout_minutes", float, 8640.0, "budget for the whole experiment"),
            Param("iteration_timeout_minutes", float, 43200.0, "budget for one child run"),
            Param("featurization", str, "auto", "'auto', 'off' or a FeaturizationConfig")],
    settings_validator=validate_settings,
    source_modules=("emulator",),
)


@hookimpl
def register_steps(register: Callable[[StepSpec], None]) -> None:
    register(STEP)


def _is_automl(step: RunRecord) -> bool:
    """An AutoML step run of a pipeline, or a standalone AutoML run (``Experiment.submit``)."""
    return step.properties.get("kind") == STEP.kind or step.run_type == "automl"


@hookimpl
def report_section(lineage: Lineage, step: RunRecord, plots: bool, progress: Progress | None) -> ReportSection | None:
    if not _is_automl(step):
        return None
    from .report import automl_section

    return automl_section(lineage, step, plots, progress)


@hookimpl
def model_predictor(lineage: Lineage, step: RunRecord) -> Predictor | None:
    if not _is_automl(step):
        return None
    from .predict import AutoMLPredictor

    return AutoMLPredictor(lineage, step)
