"""``amlstep explain-reuse``: per step, would it be reused now, and if not, what changed."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import FAST_AUTOML
from framework import load_pipeline, run_pipeline
from framework.cli import make_cli

from .conftest import TITANIC


def explain(plugins, workspace, *args):
    result = CliRunner().invoke(make_cli(plugins), ["--workspace", str(workspace.path), "explain-reuse", str(TITANIC),
                                                    "--json", *args])
    assert result.exit_code == 0, result.output
    return {entry["step"]: entry for entry in json.loads(result.stdout)}


def fast(**extra):
    return [a for k, v in {**FAST_AUTOML, **extra}.items() for a in ("-p", f"{k}={v}")]


@pytest.mark.slow
def test_explains_reuse_before_and_after_a_run(plugins, titanic_workspace):
    before = explain(plugins, titanic_workspace, *fast())
    assert before["dataprep"]["reasons"] == ["no earlier run of this step in this pipeline"]
    assert before["AutoML_Classification"]["reasons"] == [
        "input 'training_data' changes: upstream step 'dataprep' re-runs, so 'prepped_data' is new data"]
    assert before["register_model"]["reasons"] == ["allow_reuse is False for this step"]

    run = run_pipeline(load_pipeline(TITANIC), workspace=titanic_workspace, plugins=plugins, params=FAST_AUTOML)
    after = explain(plugins, titanic_workspace, *fast())
    assert [after[s]["would_reuse"] for s in ("dataprep", "AutoML_Classification", "register_model")] == [
        True, True, False]
    assert after["dataprep"]["reused_from"] == run.step("dataprep").run_id

    changed = explain(plugins, titanic_workspace, *fast(iterations=4))
    assert changed["dataprep"]["would_reuse"] is True
    assert changed["AutoML_Classification"]["reasons"] == ["parameter 'iterations' changed: 3 -> 4"]

    # the next run does what explain-reuse said
    second = run_pipeline(load_pipeline(TITANIC), workspace=titanic_workspace, plugins=plugins,
                          params={**FAST_AUTOML, "iterations": "4"})
    assert [s.reused for s in second.steps] == [True, False, False]
    assert second.step("AutoML_Classification").reasons == changed["AutoML_Classification"]["reasons"]


def test_text_output(plugins, titanic_workspace):
    result = CliRunner().invoke(make_cli(plugins), ["--workspace", str(titanic_workspace.path), "explain-reuse",
                                                    str(TITANIC)])
    assert result.exit_code == 0, result.output
    assert "allow_reuse is False for this step" in result.stdout
