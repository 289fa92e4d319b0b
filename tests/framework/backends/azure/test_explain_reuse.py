"""``amlstep explain-reuse``: per step, would it be reused now, and if not, what changed."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import FAST_AUTOML, SHARED_DATA
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


@pytest.mark.fake_azure(execute=False)
def test_azure_explains_a_step_against_its_own_plugins_runs_not_a_namesakes(fake_azure, plugins):
    """Another pipeline's step of the same name (another plugin) is not this step's earlier run; a run of the same
    plugin in another experiment is (Azure reuses a module across pipelines)."""
    local = fake_azure.local_workspace
    local.register_dataset("titanic_ds", [str(SHARED_DATA / "titanic.csv")])
    parts = {"plugin": "dataprep_wine", "code": "0" * 64, "params": {"seed": 42}, "inputs": {}, "environment": "e",
             "compute": "my-cluster"}
    wine = local.create_run(run_type="pipeline", name="wine", experiment="wine", backend="azure", status="Completed")
    local.create_run(run_type="step", name="dataprep", experiment="wine", parent_id=wine.id, backend="azure",
                     status="Completed", properties={"plugin": "dataprep_wine", "azure_reuse_parts": parts})
    validated = load_pipeline(TITANIC).validate(plugins)
    explained = {e["step"]: e for e in fake_azure.backend().explain_reuse(validated, plugins=plugins)}
    assert explained["dataprep"]["reasons"] == ["no earlier run of this step on Azure (in the local run history)"]

    other = local.create_run(run_type="pipeline", name="titanic_too", experiment="titanic_too", backend="azure",
                             status="Completed")
    local.create_run(run_type="step", name="dataprep", experiment="titanic_too", parent_id=other.id, backend="azure",
                     status="Completed", properties={"plugin": "dataprep_titanic",
                                                     "azure_reuse_parts": {**parts, "plugin": "dataprep_titanic"}})
    explained = {e["step"]: e for e in fake_azure.backend().explain_reuse(validated, plugins=plugins)}
    assert "compute target changed: 'my-cluster' -> 'cpu-cluster'" in explained["dataprep"]["reasons"]


@pytest.mark.fake_azure(execute=False)
def test_azure_explains_for_the_sdk_it_is_told(fake_azure, plugins):
    def explain_with(*args):
        return CliRunner().invoke(make_cli(plugins), ["--workspace", str(fake_azure.local_workspace.path),
                                                      "explain-reuse", str(TITANIC), "--json", *args])

    fake_azure.local_workspace.register_dataset("titanic_ds", [str(SHARED_DATA / "titanic.csv")])
    told = explain_with("--backend", "azure", "--sdk", "v2")
    assert told.exit_code == 0, told.output
    assert [e["step"] for e in json.loads(told.stdout)] == ["dataprep", "AutoML_Classification", "register_model"]
    unknown = explain_with("--backend", "azure", "--sdk", "v3")
    assert unknown.exit_code != 0 and "unknown Azure SDK 'v3'; choose one of: " in unknown.output
    local = explain_with("--sdk", "v2")
    assert local.exit_code == 2 and "--sdk applies to --backend azure only" in local.output
