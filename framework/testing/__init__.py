"""Testing helpers for plugin authors: the step contract harness and the ``run_step`` fixture.

``framework.testing.harness`` is also a pytest plugin (entry point ``pytest11``), so the
``run_step`` fixture is available in every test once amlstep is installed.
"""

from .harness import (
    RecordingRunContext,
    StepOutputs,
    check_compiles_for_azure,
    check_declaration,
    check_deterministic,
    check_keeps_label,
    check_params_round_trip,
    check_rows_independent,
    check_runs_locally,
    parametrize_with_checks,
    run_step,
)

__all__ = [
    "RecordingRunContext",
    "StepOutputs",
    "check_compiles_for_azure",
    "check_declaration",
    "check_deterministic",
    "check_keeps_label",
    "check_params_round_trip",
    "check_rows_independent",
    "check_runs_locally",
    "parametrize_with_checks",
    "run_step",
]
