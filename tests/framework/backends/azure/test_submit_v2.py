"""``--sdk v2``: the same pipelines through ``azure-ai-ml`` to the fake service's public ARM API, which runs them.

One fake serves the module (its engine is the one the SDK v1 API uses). Titanic runs twice: first
from Python with the fake's config.json (as ``amlstep fake-azure --config-out`` writes it), then with
the command line, which reuses dataprep and AutoML; the penguins pipeline runs on the same fake.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import SHARED_DATA
from framework import BackendError, get_plugin_manager, load_pipeline, run_pipeline
from framework.cli import make_cli
from emulator.azure_service.testing import open_fake_azure
from tests.toy_steps import Recorder

from .conftest import PENGUINS, TITANIC

pytest.importorskip("azure.ai.ml")
pytest.importorskip("mlflow")
TITANIC_CSV = str(SHARED_DATA / "titanic.csv")


@pytest.fixture(scope="module")
def v2(tmp_path_factory, _fake_azure_cache):
    """Titanic twice (Python, then the command line) and penguins once, on one fake reached with SDK v2."""
    folder = tmp_path_factory.mktemp("v2-on-azure")
    with open_fake_azure(folder, _fake_azure_cache, sdk="v2") as fake:
        config = fake.config(folder)
        local = fake.local_workspace
        local.register_dataset("titanic_ds", [TITANIC_CSV])
        recorder = Recorder()
        started = time.time()
        first = run_pipeline(load_pipeline(TITANIC), backend="azure", sdk="v2", config=str(config), workspace=local,
                             plugins=get_plugin_manager(plugins=[recorder]), poll_seconds=0.5)
        first_seconds = time.time() - started
        first_steps = fake.step_runs(first.run_id)
        started = time.time()
        cli = CliRunner().invoke(make_cli(), ["--workspace", str(local.path), "run", str(TITANIC), "--backend", "azure",
                                              "--sdk", "v2", "--config", str(config), "--json", "--quiet"])
        second_seconds = time.time() - started
        second = json.loads(cli.stdout) if cli.exit_code == 0 else {"error": cli.output}
        yield SimpleNamespace(fake=fake, config=config, first=first, first_steps=first_steps, second=second,
                              calls=recorder.calls, seconds=(first_seconds, second_seconds))


def test_titanic_runs_from_the_shipped_wheels_with_automl_service_side(v2):
    first, fake = v2.first, v2.fake
    assert first.status == "Completed", first.error
    assert [(s.name, s.status, s.reused) for s in first.steps] == [
        ("dataprep", "Completed", False), ("AutoML_Classification", "Completed", False),
        ("register_model", "Completed", False)]
    submitted = fake.service.api_v2.submissions[0]
    dataprep, automl, register = submitted["steps"]
    # the environment the fake built: the wheels shipped in the build context, the pins from here
    wheels = [line for line in dataprep["environment"]["pip"] if line.endswith(".whl")]
    assert len(wheels) == 1 and re.search(r"/amlstep-0\.1\.0-[^/]*\.whl$", wheels[0]), dataprep["environment"]
    assert wheels[0].startswith("https://") and ".blob.core.windows.net/" in wheels[0]
    assert any(line.startswith("mlflow-skinny==") for line in dataprep["environment"]["pip"])
    assert dataprep["script"] == "amlstep_entry.py" and ["literal", "--amlstep-sdk"] in dataprep["arguments"]
    assert dataprep["inputs"]["titanic_ds"]["dataset"] == ["titanic_ds", 1]
    assert (automl["kind"], automl["automl"]["iterations"], automl["automl"]["primary_metric"]) == (
        "automl", 2, "AUC_weighted")
    assert register["identity"] == "UserIdentity" and register["allow_reuse"] is False
    # AutoML ran service-side: its trials are child runs of the step run
    trials = fake.service.engine.children(v2.first_steps["AutoML_Classification"].id)
    assert len(trials) == 2 and all(t.status == "Completed" for t in trials)


def test_the_registered_model_is_the_mlflow_model_and_loads_and_predicts(v2, titanic_test_csv):
    import mlflow.pyfunc
    import mlflow.sklearn

    from plugins.dataprep_titanic import prepare

    fake, first = v2.fake, v2.first
    version = fake.models["TitanicSurvivalInitial"][0]
    assert (version.version, version.framework) == (1, "mlflow_model")
    assert fake.service.engine.run(v2.first_steps["register_model"].id).metric_values()["registered_version"] == 1
    model_dir = Path(first.outputs["model_output"])
    assert (model_dir / "MLmodel").is_file() and (model_dir / "model.pkl").is_file()
    rows = prepare(pd.read_csv(titanic_test_csv)).head(25)
    predicted = mlflow.pyfunc.load_model(str(model_dir)).predict(rows)
    assert len(predicted) == 25 and set(predicted) <= {0, 1}
    assert mlflow.sklearn.load_model(str(model_dir)).predict_proba(rows).shape == (25, 2)
    metrics = pd.DataFrame(json.load(open(first.outputs["metrics_output"])))
    assert sorted(metrics.columns) == sorted(t.id for t in fake.service.engine.children(
        v2.first_steps["AutoML_Classification"].id))
    assert 0.5 < metrics.loc["AUC_weighted"].map(lambda v: v[0]).max() <= 1


def test_step_hooks_fire_as_the_service_reports_the_steps(v2):
    steps = [call[:2] for call in v2.calls if call[0] in ("before_step_run", "after_step_run")]
    assert steps == [("before_step_run", "dataprep"), ("after_step_run", "dataprep"),
                     ("before_step_run", "AutoML_Classification"), ("after_step_run", "AutoML_Classification"),
                     ("before_step_run", "register_model"), ("after_step_run", "register_model")]
    assert v2.calls[0] == ("before_pipeline_run", "azure") and v2.calls[-1] == ("after_pipeline_run", "Completed")
    assert v2.calls.count(("after_child_run", "Completed")) == 2


def test_the_command_line_run_reuses_dataprep_and_automl_and_registers_version_2(v2):
    second = v2.second
    assert second.get("status") == "Completed", second
    assert [(s["name"], s["reused"]) for s in second["steps"]] == [
        ("dataprep", True), ("AutoML_Classification", True), ("register_model", False)]
    assert [m.version for m in v2.fake.models["TitanicSurvivalInitial"]] == [1, 2]
    assert (Path(second["outputs"]["model_output"]) / "MLmodel").is_file()
    assert Path(second["outputs"]["metrics_output"]).is_file()


def test_penguins_runs_the_same_with_its_own_plugin_unchanged(v2):
    import mlflow.pyfunc

    from framework.backends.azure import mltable

    fake = v2.fake
    result = fake.submit(load_pipeline(PENGUINS))
    assert result.status == "Completed", result.error
    assert [s.status for s in result.steps] == ["Completed"] * 3
    submitted = fake.service.api_v2.submissions[-1]
    assert any(re.search(r"/amlstep_penguins-0\.1\.0-[^/]*\.whl$", line)
               for line in submitted["steps"][0]["environment"]["pip"])
    assert [(m.version, m.framework) for m in fake.models["PenguinSpecies"]] == [(1, "mlflow_model")]
    # what dataprep wrote on "Azure" is an MLTable; the model predicts species on it
    datastore, path = fake.step_runs(result.run_id)["dataprep"].outputs["prepped_data"]
    prepped = mltable.read(fake.service.blob.path(fake.service.engine.datastores[datastore], path), "prepped")
    predicted = mlflow.pyfunc.load_model(result.outputs["model_output"]).predict(prepped.drop(columns=["species"]))
    assert set(predicted) <= set(prepped["species"]) and len(predicted) == len(prepped)


def test_a_body_the_service_refuses_gets_the_services_error_shape(v2):
    from azure.core.exceptions import HttpResponseError

    ml = v2.fake.ml_client
    client = ml._service_client_01_2024_preview_arm
    body = {"properties": {"jobType": "Command", "environmentId": "azureml:env:1", "computeId": "cpu-cluster",
                           "experimentName": "refused", "inputs": {"n": {"jobInputType": "literal", "value": [1]}}}}
    with pytest.raises(HttpResponseError) as raised:
        client.jobs.create_or_update(resource_group_name=ml.resource_group_name, workspace_name=ml.workspace_name,
                                     id="refused_job", body=body)
    error = raised.value
    assert error.status_code == 400
    assert str(error).startswith("(UserError) The request is invalid: properties.command: required property is "
                                 "missing; properties.inputs.n.value: expected a string, got array [1]")
    payload = error.response.json()["error"]
    assert (payload["code"], payload["target"]) == ("UserError", "properties.command")
    assert payload["details"] == [
        {"code": "RequiredField", "target": "properties.command",
         "message": "properties.command: required property is missing"},
        {"code": "InvalidType", "target": "properties.inputs.n.value",
         "message": "properties.inputs.n.value: expected a string, got array [1]"}]
    assert {"type": "ComponentName", "info": {"value": "managementfrontend"}} in payload["additionalInfo"]
    assert {i["type"] for i in payload["additionalInfo"]} == {"ComponentName", "Correlation", "Environment",
                                                               "Location", "Time"}
    assert v2.fake.service.api_v2.refused[-1]["kind"] == "jobs"


def test_a_plugin_that_raises_fails_the_run_naming_the_step_with_its_log(v2, tmp_path, titanic_csv):
    """By hand, under SDK v2: a titanic_ds without Sex; exit 1, the step and the column named, the log's tail."""
    bad = tmp_path / "no_sex.csv"
    pd.read_csv(titanic_csv).drop(columns=["Sex"]).to_csv(bad, index=False)
    app = make_cli(get_plugin_manager())
    ws = str(tmp_path / "ws")
    assert CliRunner().invoke(app, ["--workspace", ws, "datasets", "register", "titanic_ds", str(bad)]).exit_code == 0
    result = CliRunner().invoke(app, ["--workspace", ws, "run", str(TITANIC), "--backend", "azure", "--sdk", "v2",
                                      "--config", str(v2.config), "--json", "--quiet"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    first_line = data["error"].splitlines()[0]
    assert first_line.startswith("step 'dataprep' failed on Azure: User program failed with MissingColumnsError: "
                                 "Titanic data is missing column(s) 'Sex'"), data["error"]
    assert "last lines of its log (user_logs/std_log.txt):" in data["error"]
    assert "MissingColumnsError" in data["error"].splitlines()[-1]
    assert [(s["name"], s["status"]) for s in data["steps"]] == [
        ("dataprep", "Failed"), ("AutoML_Classification", "NotStarted"), ("register_model", "NotStarted")]
    assert set(v2.fake.step_runs()) == {"dataprep"}   # downstream steps never started on the service


@pytest.mark.fake_azure(computes=(), execute=False)
def test_a_missing_compute_is_created_with_the_provisioning(fake_azure_v2, titanic_csv):
    from framework.backends.azure.backend import Provisioning

    fake_azure_v2.local_workspace.register_dataset("titanic_ds", [str(titanic_csv)])
    result = fake_azure_v2.submit(TITANIC, provisioning=Provisioning(vm_size="STANDARD_DS3_V2", max_nodes=2),
                                  download=False)
    assert result.status == "Completed", result.error
    assert fake_azure_v2.created_computes == []  # the SDK v1 API saw nothing
    assert fake_azure_v2.service.api_v2.created_computes == [
        {"name": "cpu-cluster", "vm_size": "STANDARD_DS3_V2", "min_nodes": 0, "max_nodes": 2}]


@pytest.mark.fake_azure(computes=(), compute_error="Quota exceeded for VM family standardDSv2Family")
def test_a_compute_that_cannot_be_created_is_a_clear_error(fake_azure_v2):
    with pytest.raises(BackendError, match=re.escape("could not create compute target 'cpu-cluster' (STANDARD_D2_V2, "
                                                     "0-1 nodes): ")) as raised:
        fake_azure_v2.submit(TITANIC)
    assert "Quota exceeded for VM family standardDSv2Family" in str(raised.value)


@pytest.mark.parametrize("sdk", ["v1", "v2"])
def test_an_expired_token_in_config_json_is_refused_by_both_sdks(sdk, tmp_path, _fake_azure_cache):
    """Both SDKs send the config's tokens (SDK v2 used to mint fresh ones and ignore an expired one)."""
    with open_fake_azure(tmp_path, _fake_azure_cache, sdk=sdk, execute=False) as fake:
        config = fake.config(tmp_path)
        data = json.loads(config.read_text())
        section = data["amlstep_fake_service"]
        section["token"] = fake.service.tokens.issue(lifetime=-60)
        section["tokens"] = {resource: fake.service.tokens.issue(audience=resource, lifetime=-60)
                             for resource in section.get("tokens") or {}}
        config.write_text(json.dumps(data))
        result = CliRunner().invoke(make_cli(), ["run", str(TITANIC), "--backend", "azure", "--sdk", sdk, "--config",
                                                 str(config)])
    assert result.exit_code == 2, result.output
    assert "Azure authentication failed while" in result.output and "sign in again" in result.output, result.output


@pytest.mark.fake_azure(auth_error=True)
def test_an_expired_sign_in_says_to_sign_in_again(fake_azure_v2):
    with pytest.raises(BackendError, match=re.escape("Azure authentication failed while looking up compute target "
                                                     "'cpu-cluster': ")) as raised:
        fake_azure_v2.submit(TITANIC)
    assert str(raised.value).endswith("sign in again (`az login`) and check that you can access the workspace")
