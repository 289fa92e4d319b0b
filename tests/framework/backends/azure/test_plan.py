"""``amlstep run ... --backend azure --dry-run``: the compiled plan, offline, checked against a reviewed golden file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REPO
from framework.cli import make_cli
from framework.testing.harness import no_network

from .conftest import TITANIC

GOLDEN = Path(__file__).with_name("titanic_plan.golden.json")


def normalize(plan: dict) -> dict:
    """Code and wheel hashes change with every edit; versions and paths with every install: mask them."""
    text = json.dumps(plan, indent=1, sort_keys=False)
    text = re.sub(r"\b[0-9a-f]{64}\b", "<sha256>", text)
    text = re.sub(r"\b[0-9a-f]{16}\b", "<code-sha256-prefix>", text)
    text = re.sub(r"-0sha[0-9a-f]{12}-", "-0sha<wheel-sha256-prefix>-", text)
    text = re.sub(r'"([A-Za-z0-9_.-]+)==[^"]+"', r'"\1==<installed version>"', text)
    data = json.loads(text)
    data["sdk_versions"] = {k: "<version>" for k in data["sdk_versions"]}
    for step in data["steps"]:
        if "environment" in step:
            step["environment"]["python"] = "<python>"
            for wheel in step["environment"]["wheels"]:
                wheel["built_from"] = "<installed distribution>"
    return data


def dry_run(*args: str) -> dict:
    result = CliRunner().invoke(make_cli(), ["run", str(TITANIC), "--backend", "azure", "--dry-run", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_titanic_plan_matches_the_reviewed_golden_file():
    plan = normalize(dry_run())
    if os.environ.get("AMLSTEP_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(plan, indent=1) + "\n")
    assert plan == json.loads(GOLDEN.read_text()), "plan changed; review and rerun with AMLSTEP_UPDATE_GOLDEN=1"


def test_titanic_plan_matches_the_seed_field_by_field():
    plan = dry_run()
    assert plan["experiment"] == "titanic_automl" and plan["compute_targets"] == ["cpu-cluster"]
    assert plan["datasets"] == [{"name": "titanic_ds", "version": "latest", "registered_from_sources_when_missing": True,
                                 "sources": ["https://dprepdata.blob.core.windows.net/demo/Titanic.csv",
                                             "https://dprepdata.blob.core.windows.net/demo/Titanic2.csv"]}]
    dataprep, automl, register = plan["steps"]
    assert (dataprep["name"], dataprep["sdk_class"], dataprep["allow_reuse"]) == (
        "dataprep", "azureml.pipeline.steps.PythonScriptStep", True)
    assert dataprep["inputs"] == ["DatasetConsumptionConfig(titanic_ds <- TabularDataset(titanic_ds))"]
    assert dataprep["outputs"] == ["OutputFileDatasetConfig(learned)", "OutputFileDatasetConfig(prepped_data)"]
    assert (automl["name"], automl["sdk_class"], automl["allow_reuse"]) == (
        "AutoML_Classification", "azureml.pipeline.steps.AutoMLStep", True)
    settings = automl["automl_config"]["settings"]
    assert {k: settings[k] for k in ("task_type", "primary_metric", "iterations", "experiment_timeout_minutes",
                                     "iteration_timeout_minutes", "featurization", "label_column_name")} == {
        "task_type": "classification", "primary_metric": "AUC_weighted", "iterations": 2,
        "experiment_timeout_minutes": 15, "iteration_timeout_minutes": 10, "featurization": "auto",
        "label_column_name": "Survived"}
    assert automl["automl_config"]["compute_target"] == "ComputeTarget(cpu-cluster)"
    assert automl["inputs"] == ["training_data: OutputTabularDatasetConfig(prepped_data).read_delimited_files()"]
    assert automl["outputs"] == [
        "PipelineData(metrics_data, training_output=Metrics, pipeline_output_name=metrics_output)",
        "PipelineData(best_model_data, training_output=Model, pipeline_output_name=model_output)"]
    assert (automl["enable_default_metrics_output"], automl["enable_default_model_output"]) == (False, False)
    assert (register["name"], register["sdk_class"], register["allow_reuse"]) == (
        "register_model", "azureml.pipeline.steps.PythonScriptStep", False)
    # what each step ships: wheels by name, version and content hash; third-party requirements pinned
    environment = dataprep["environment"]
    assert [(w["name"], w["version"]) for w in environment["wheels"]] == [("amlstep", "0.1.0")]
    assert re.fullmatch(r"[0-9a-f]{64}", environment["wheels"][0]["sha256"])
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==\S+", r) for r in environment["requirements"])
    assert {r.split("==")[0] for r in environment["requirements"]} >= {"pandas", "scikit-learn", "azureml-core"}
    assert "PipelineParameter(model_name, default='TitanicSurvivalInitial')" in register["arguments"]
    assert plan["pipeline_parameters"]["model_name"] == {"default": "TitanicSurvivalInitial",
                                                         "value": "TitanicSurvivalInitial", "azure": "PipelineParameter"}
    assert plan["edges"] == [
        ["AutoML_Classification.best_model_data", "pipeline_output:model_output"],
        ["AutoML_Classification.best_model_data", "register_model.best_model_data"],
        ["AutoML_Classification.metrics_data", "pipeline_output:metrics_output"],
        ["dataprep.prepped_data", "AutoML_Classification.training_data"],
        ["dataset:titanic_ds", "dataprep.titanic_ds"]]


@pytest.mark.slow
def test_plan_is_stable_and_shows_submit_time_values():
    first, second = dry_run("-p", "model_name=Other"), dry_run("-p", "model_name=Other")
    assert first == second
    assert first["pipeline_parameters"]["model_name"]["value"] == "Other"


def test_text_plan_lists_steps_and_edges():
    result = CliRunner().invoke(make_cli(), ["run", str(TITANIC), "--backend", "azure", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "step AutoML_Classification: azureml.pipeline.steps.AutoMLStep on cpu-cluster" in result.stdout
    assert "dataprep.prepped_data -> AutoML_Classification.training_data" in result.stdout


def test_dry_run_contacts_nothing_and_needs_no_config(tmp_path, monkeypatch):
    """No Azure config, no network (only the in-process stand-in on 127.0.0.1), no secrets printed."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    with no_network():
        plan = dry_run()
    text = json.dumps(plan)
    assert plan["workspace"] == "(not contacted: dry run)"
    for secret in ("subscription", "00000000-0000", "accountKey", "token", "127.0.0.1", "resourceGroup"):
        assert secret not in text, secret
    assert not (tmp_path / ".azureml").exists()


GUARDED_CLI = """
import socket, sys
looked_up = []
real = socket.getaddrinfo
def guarded(host, *args, **kwargs):
    looked_up.append(host)
    if host not in ("127.0.0.1", "localhost"):
        raise socket.gaierror("the test refuses DNS for " + str(host))
    return real(host, *args, **kwargs)
socket.getaddrinfo = guarded
from framework.cli import main
try:
    main(sys.argv[1:])
finally:
    print("LOOKED UP", sorted(set(looked_up)), file=sys.stderr)
"""


@pytest.mark.slow
def test_dry_run_from_a_fresh_process_resolves_no_host_and_writes_nothing_outside_temporary_folders(tmp_path):
    """Issue 15 item 17: no ./automl.log in the current folder, no ~/.azureml/.discovery in HOME."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HBI_WORKSPACE_JOB", "AZUREML_CURRENT_CLOUD", "AMLSTEP_WHEEL_CACHE", "AMLSTEP_WORKSPACE")}
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    done = subprocess.run([sys.executable, "-c", GUARDED_CLI, "run", str(TITANIC), "--backend", "azure",
                           "--dry-run", "--json"], capture_output=True, text=True, timeout=180, cwd=cwd,
                          env={**env, "HOME": str(home)})
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["steps"][1]["name"] == "AutoML_Classification"
    assert plan["steps"][0]["environment"]["wheels"][0]["name"] == "amlstep"
    assert "Traceback" not in done.stderr
    assert "LOOKED UP ['127.0.0.1']" in done.stderr
    assert sorted(p.name for p in cwd.rglob("*")) == [] and sorted(p.name for p in home.rglob("*")) == []


def test_dry_run_is_refused_for_the_local_backend():
    result = CliRunner().invoke(make_cli(), ["run", str(REPO / "examples" / "titanic"), "--dry-run"])
    assert result.exit_code == 2
    assert "--dry-run applies to --backend azure only" in result.output


@pytest.mark.parametrize("sdk", ["v1", "v2"])
def test_more_than_1000_iterations_are_refused_for_both_sdks(sdk):
    """Azure's AutoML runs at most 1000 iterations: refused at compile time, naming the step, with either SDK."""
    args = ["run", str(TITANIC), "--backend", "azure", "--sdk", sdk, "--dry-run"]
    refused = CliRunner().invoke(make_cli(), [*args, "-p", "iterations=1001"])
    assert refused.exit_code == 2, refused.output
    assert ("step 'AutoML_Classification': iterations=1001 is above Azure's maximum of 1000 iterations for an AutoML "
            "experiment") in refused.output
    assert CliRunner().invoke(make_cli(), [*args, "-p", "iterations=1000"]).exit_code == 0
