"""Submitting through the real SDK (v1 and v2) to the fake Azure ML service, which runs what it is given.

Each scenario runs once per SDK (``sdk``: v1, v2). One executing fake per SDK serves the module: Titanic
runs from Python with the fake's config.json (as ``amlstep fake-azure --config-out`` writes it), reuse is
explained, then Titanic runs again from the command line (dataprep and AutoML reused); the penguins
pipeline and a failing run use the same fake. Dataprep runs from the shipped wheel in its own venv,
AutoML service-side, register_model through the SDK's model registry; outputs are downloaded through the
SDK. Tests of the submission's shape use a fake that accepts and runs nothing (``execute=False``).
What only one SDK does is tested in test_submit_v1.py and test_submit_v2.py, or here for that SDK only.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import SHARED_DATA
from framework import BackendError, get_plugin_manager, load_pipeline, run_pipeline
from framework.backends.azure.backend import Provisioning
from framework.cli import make_cli
from emulator.azure_service.testing import open_fake_azure
from tests.toy_steps import Recorder

from .conftest import PENGUINS, TITANIC

TITANIC_CSV = str(SHARED_DATA / "titanic.csv")
LOG_NAME = {"v1": "azureml-logs/70_driver_log.txt", "v2": "user_logs/std_log.txt"}
SIGN_IN = {"v1": "sign in again (`az login`, or the service principal in AZUREML_* variables) and check that you can "
                 "access the workspace",
           "v2": "sign in again (`az login`) and check that you can access the workspace"}
pytestmark = pytest.mark.slow  # every test here starts a fake Azure ML service


def _requires(sdk: str) -> None:
    if sdk == "v2":
        pytest.importorskip("azure.ai.ml")
        pytest.importorskip("mlflow")


@pytest.fixture(scope="module", params=["v1", "v2"])
def on_fake(request, tmp_path_factory, _fake_azure_cache):
    """Titanic twice (Python, explain-reuse, then the command line) on one executing fake of SDK ``request.param``."""
    sdk = request.param
    _requires(sdk)
    folder = tmp_path_factory.mktemp(f"titanic-on-azure-{sdk}")
    with open_fake_azure(folder, _fake_azure_cache, sdk=sdk) as fake:
        config = fake.config(folder)
        local = fake.local_workspace
        local.register_dataset("titanic_ds", [TITANIC_CSV])
        first_recorder, second_recorder = Recorder(), Recorder()
        first = run_pipeline(load_pipeline(TITANIC), backend="azure", sdk=sdk, config=str(config), workspace=local,
                             plugins=get_plugin_manager(plugins=[first_recorder]), download_dir=fake.download_dir)
        first_steps = fake.step_runs(first.run_id)
        plugins = get_plugin_manager()
        explained = fake.backend().explain_reuse(load_pipeline(TITANIC).validate(plugins), plugins=plugins)
        cli = CliRunner().invoke(make_cli(get_plugin_manager(plugins=[second_recorder])), [
            "--workspace", str(local.path), "run", str(TITANIC), "--backend", "azure", "--sdk", sdk,
            "--config", str(config), "--json", "--quiet"])
        second = json.loads(cli.stdout) if cli.exit_code == 0 else {"error": cli.output}
        second_steps = fake.step_runs(second["run_id"]) if "run_id" in second else {}
        yield SimpleNamespace(sdk=sdk, fake=fake, config=config, first=first, second=second, first_steps=first_steps,
                              second_steps=second_steps, explained=explained, first_calls=first_recorder.calls,
                              second_calls=second_recorder.calls)


@pytest.fixture(scope="module")
def penguins_on_fake(on_fake):
    """The penguins pipeline (a third-party plugin, its own distribution) on the module's fake."""
    pytest.importorskip("amlstep_penguins")
    result = on_fake.fake.submit(PENGUINS, params={"model_name": "Penguins"})
    return SimpleNamespace(fake=on_fake.fake, sdk=on_fake.sdk, result=result)


def _load_model(sdk: str, path: str):
    if sdk == "v1":  # a pickled pipeline
        with open(path, "rb") as f:
            return pickle.load(f)
    import mlflow.pyfunc  # an MLflow model folder

    return mlflow.pyfunc.load_model(path)


# -- Titanic, twice -----------------------------------------------------------------------------------------
def test_titanic_runs_on_the_fake_from_the_shipped_wheel(on_fake):
    first, steps, fake = on_fake.first, on_fake.first_steps, on_fake.fake
    assert first.status == "Completed", first.error
    assert [(s.name, s.status, s.reused) for s in first.steps] == [
        ("dataprep", "Completed", False), ("AutoML_Classification", "Completed", False),
        ("register_model", "Completed", False)]
    assert "Prepared 891 rows" in fake.step_log(steps["dataprep"])
    assert fake.service.unhandled == []


def test_automl_ran_service_side_and_its_downloaded_outputs_predict(on_fake, titanic_test_csv):
    from plugins.dataprep_titanic import prepare

    first, fake = on_fake.first, on_fake.fake
    children = fake.service.engine.children(on_fake.first_steps["AutoML_Classification"].id)
    assert len(children) == 2 and all(c.status == "Completed" for c in children)  # the pipeline's iterations=2
    assert "AUC_weighted" in children[0].metric_values()
    frame = pd.DataFrame(json.loads(Path(first.outputs["metrics_output"]).read_text()))
    assert set(frame.columns) == {c.id for c in children} and "AUC_weighted" in frame.index
    rows = prepare(pd.read_csv(titanic_test_csv)).head(20)
    predictions = _load_model(on_fake.sdk, first.outputs["model_output"]).predict(rows)
    assert len(predictions) == 20 and set(predictions) <= {0, 1}


def test_register_model_reached_the_fakes_registry(on_fake):
    fake, first_steps, second_steps = on_fake.fake, on_fake.first_steps, on_fake.second_steps
    assert [v.version for v in fake.models["TitanicSurvivalInitial"]] == [1, 2]
    # run.log in the step reached the fake's run history through the step's own SDK
    assert fake.service.engine.run(first_steps["register_model"].id).metric_values() == {"registered_version": 1}
    assert fake.service.engine.run(second_steps["register_model"].id).metric_values() == {"registered_version": 2}
    assert "Registered version 2 of model TitanicSurvivalInitial" in fake.step_log(second_steps["register_model"])


def test_the_command_line_run_reuses_dataprep_and_automl(on_fake):
    second = on_fake.second
    assert second.get("status") == "Completed", second
    actual = {s["name"]: s["reused"] for s in second["steps"]}
    assert actual == {"dataprep": True, "AutoML_Classification": True, "register_model": False}
    assert [e["reasons"] for e in on_fake.explained][2] == ["allow_reuse is False for this step"]
    first_runs, second_runs = on_fake.first_steps, on_fake.second_steps
    assert second_runs["dataprep"].reused_from == first_runs["dataprep"].id
    assert second_runs["AutoML_Classification"].reused_from == first_runs["AutoML_Classification"].id
    assert Path(second["outputs"]["model_output"]).exists() and Path(second["outputs"]["metrics_output"]).is_file()
    local = on_fake.fake.local_workspace
    records = {r.name: r for r in local.get_children(second["run_id"])}
    first_dataprep = on_fake.first.step("dataprep")
    assert records["dataprep"].reused_from == first_dataprep.local_run_id
    # run_id is the Azure step run's id; the local record answers to it too
    assert first_dataprep.run_id == first_runs["dataprep"].id
    assert local.get_run(first_dataprep.run_id).id == first_dataprep.local_run_id
    assert local.get_run(second["run_id"]).status == "Completed"


def test_step_hooks_fire_as_the_service_reports_step_status(on_fake):
    calls = on_fake.first_calls
    names = [c for c in calls if c[0] != "after_child_run"]
    assert names == [("before_pipeline_run", "azure"),
                     ("before_step_run", "dataprep"), ("after_step_run", "dataprep", False),
                     ("before_step_run", "AutoML_Classification"), ("after_step_run", "AutoML_Classification", False),
                     ("before_step_run", "register_model"), ("after_step_run", "register_model", False),
                     ("after_pipeline_run", "Completed")]
    assert calls.count(("after_child_run", "Completed")) == 2
    iterations = [c for c in calls if c[0] == "after_child_run"]
    assert calls.index(iterations[0]) < calls.index(("after_step_run", "AutoML_Classification", False))
    assert ("after_step_run", "dataprep", True) in on_fake.second_calls


def test_a_plugin_that_raises_fails_the_run_naming_the_step_with_its_log(on_fake, tmp_path, titanic_csv):
    """By hand: a titanic_ds without Sex, submitted with the fake's config.json; exit 1, step and column named."""
    bad = tmp_path / "no_sex.csv"
    pd.read_csv(titanic_csv).drop(columns=["Sex"]).to_csv(bad, index=False)
    app = make_cli(get_plugin_manager())
    ws = str(tmp_path / "ws")
    assert CliRunner().invoke(app, ["--workspace", ws, "datasets", "register", "titanic_ds", str(bad)]).exit_code == 0
    result = CliRunner().invoke(app, ["--workspace", ws, "run", str(TITANIC), "--backend", "azure", "--sdk", on_fake.sdk,
                                      "--config", str(on_fake.config), "--json", "--quiet"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    first_line = data["error"].splitlines()[0]
    assert first_line.startswith("step 'dataprep' failed on Azure: User program failed with MissingColumnsError: "
                                 "Titanic data is missing column(s) 'Sex'"), data["error"]
    assert f"last lines of its log ({LOG_NAME[on_fake.sdk]}):" in data["error"]
    assert "MissingColumnsError" in data["error"].splitlines()[-1]
    assert [(s["name"], s["status"]) for s in data["steps"]] == [
        ("dataprep", "Failed"), ("AutoML_Classification", "NotStarted"), ("register_model", "NotStarted")]
    assert set(on_fake.fake.step_runs()) == {"dataprep"}   # downstream steps never started on the service
    listed = json.loads(CliRunner().invoke(app, ["--workspace", ws, "runs", "list", "--json"]).stdout)
    assert [(r["backend"], r["status"]) for r in listed] == [("azure", "Failed")]


def test_a_third_party_plugin_runs_on_the_fake_from_its_own_wheel(penguins_on_fake):
    fake, result = penguins_on_fake.fake, penguins_on_fake.result
    assert result.status == "Completed", result.error
    assert [s.status for s in result.steps] == ["Completed"] * 3
    pip = (fake.service.engine.pipelines[result.run_id].job.steps[0].environment.pip if penguins_on_fake.sdk == "v1"
           else fake.service.api_v2.submissions[-1]["steps"][0]["environment"]["pip"])
    assert any("amlstep_penguins-0.1.0-0sha" in line for line in pip), pip   # its own wheel, built here
    assert [v.version for v in fake.models["Penguins"]] == [1]
    frame = pd.DataFrame(json.loads(Path(result.outputs["metrics_output"]).read_text()))
    assert "AUC_weighted" in frame.index


# -- what one SDK does with the same runs -------------------------------------------------------------------
@pytest.mark.only_sdk("v1")
def test_v1_the_code_that_ran_is_the_shipped_wheel_as_the_step_log_says(on_fake, penguins_on_fake):
    """The entry script names where amlstep was imported from: the step environment's site-packages."""
    fake = on_fake.fake
    for log in (fake.step_log(on_fake.first_steps["dataprep"]),
                fake.step_log(fake.step_runs(penguins_on_fake.result.run_id)["dataprep"])):
        location = re.search(r"amlstep from (\S+)", log).group(1)
        assert "site-packages" in location and str(Path(__file__).parents[4]) not in location, log


@pytest.mark.only_sdk("v1")
def test_v1_steps_build_their_environments_and_outputs_land_at_their_datastore_path(on_fake):
    fake, first = on_fake.fake, on_fake.first
    assert {b["name"] for b in fake.service.compute.builds} >= {"amlstep-dataprep-titanic", "amlstep-register-model"}
    automl = on_fake.first_steps["AutoML_Classification"]
    # get_pipeline_output(name).download(): the files land at their path on the datastore, read as the seed does
    metrics_file = Path(first.outputs["metrics_output"])
    assert metrics_file.relative_to(fake.download_dir).as_posix() == f"azureml/{automl.id}/metrics_data"
    assert fake.models["TitanicSurvivalInitial"][0].url.startswith("aml://asset/")


def test_explain_reuse_said_what_the_second_run_reused(on_fake):
    """From Python before the second run, and from the command line, offline, from the run history (whose
    latest Azure run says which SDK compiled what the service compares)."""
    actual = {s["name"]: s["reused"] for s in on_fake.second["steps"]}
    assert {e["step"]: e["would_reuse"] for e in on_fake.explained} == actual
    local = on_fake.fake.local_workspace
    listed = CliRunner().invoke(make_cli(get_plugin_manager()), ["--workspace", str(local.path), "explain-reuse",
                                                                 str(TITANIC), "--backend", "azure", "--json"])
    assert listed.exit_code == 0, listed.output
    assert {e["step"]: e["would_reuse"] for e in json.loads(listed.stdout)} == actual


@pytest.mark.only_sdk("v2")
def test_v2_environment_ships_the_wheels_in_its_build_context_and_pins_from_here(on_fake):
    submitted = on_fake.fake.service.api_v2.submissions[0]
    dataprep, automl, register = submitted["steps"]
    wheels = [line for line in dataprep["environment"]["pip"] if line.endswith(".whl")]
    assert len(wheels) == 1 and re.search(r"/amlstep-0\.1\.0-[^/]*\.whl$", wheels[0]), dataprep["environment"]
    assert wheels[0].startswith("https://") and ".blob.core.windows.net/" in wheels[0]
    assert any(line.startswith("mlflow-skinny==") for line in dataprep["environment"]["pip"])
    assert dataprep["script"] == "amlstep_entry.py" and ["literal", "--amlstep-sdk"] in dataprep["arguments"]
    assert dataprep["inputs"]["titanic_ds"]["dataset"] == ["titanic_ds", 1]
    assert (automl["kind"], automl["automl"]["iterations"], automl["automl"]["primary_metric"]) == (
        "automl", 2, "AUC_weighted")
    assert register["identity"] == "UserIdentity" and register["allow_reuse"] is False


@pytest.mark.only_sdk("v2")
def test_v2_the_registered_model_is_the_mlflow_model_and_loads_with_sklearn(on_fake, titanic_test_csv):
    import mlflow.sklearn

    from plugins.dataprep_titanic import prepare

    fake, first = on_fake.fake, on_fake.first
    assert [(v.version, v.framework) for v in fake.models["TitanicSurvivalInitial"]][0] == (1, "mlflow_model")
    model_dir = Path(first.outputs["model_output"])
    assert (model_dir / "MLmodel").is_file() and (model_dir / "model.pkl").is_file()
    assert (Path(on_fake.second["outputs"]["model_output"]) / "MLmodel").is_file()
    rows = prepare(pd.read_csv(titanic_test_csv)).head(25)
    assert mlflow.sklearn.load_model(str(model_dir)).predict_proba(rows).shape == (25, 2)
    metrics = pd.DataFrame(json.load(open(first.outputs["metrics_output"])))
    assert 0.5 < metrics.loc["AUC_weighted"].map(lambda v: v[0]).max() <= 1


@pytest.mark.only_sdk("v2")
def test_v2_penguins_dataprep_writes_an_mltable_the_model_predicts_on(penguins_on_fake):
    import mlflow.pyfunc

    from framework.backends.azure import mltable

    fake, result = penguins_on_fake.fake, penguins_on_fake.result
    assert [m.framework for m in fake.models["Penguins"]] == ["mlflow_model"]
    datastore, path = fake.step_runs(result.run_id)["dataprep"].outputs["prepped_data"]
    prepped = mltable.read(fake.service.blob.path(fake.service.engine.datastores[datastore], path), "prepped")
    predicted = mlflow.pyfunc.load_model(result.outputs["model_output"]).predict(prepped.drop(columns=["species"]))
    assert set(predicted) <= set(prepped["species"]) and len(predicted) == len(prepped)


# -- refusals before anything runs (a fake per test) --------------------------------------------------------
@pytest.fixture(params=["v1", "v2"])
def fake(request):
    """The fake_azure fixture of SDK ``request.param`` (the test's fake_azure marker shapes it)."""
    _requires(request.param)
    return request.getfixturevalue("fake_azure" if request.param == "v1" else "fake_azure_v2")


def _computes_created(fake):
    return fake.created_computes if fake.sdk == "v1" else fake.service.api_v2.created_computes


def _submissions(fake):
    return fake.submissions if fake.sdk == "v1" else fake.service.api_v2.submissions


@pytest.mark.fake_azure(computes=(), execute=False)
def test_a_missing_compute_is_created_with_the_provisioning(fake, titanic_csv):
    fake.local_workspace.register_dataset("titanic_ds", [str(titanic_csv)])
    result = fake.submit(TITANIC, provisioning=Provisioning(vm_size="STANDARD_DS3_V2", max_nodes=2), download=False)
    assert result.status == "Completed", result.error
    created = [{k: c[k] for k in ("name", "vm_size", "min_nodes", "max_nodes")} for c in _computes_created(fake)]
    assert created == [{"name": "cpu-cluster", "vm_size": "STANDARD_DS3_V2", "min_nodes": 0, "max_nodes": 2}]


@pytest.mark.fake_azure(computes=(), compute_error="Quota exceeded for VM family standardDSv2Family")
def test_a_compute_that_cannot_be_created_is_a_clear_error(fake):
    with pytest.raises(BackendError, match=re.escape("could not create compute target 'cpu-cluster' (STANDARD_D2_V2, "
                                                     "0-1 nodes): ")) as raised:
        fake.submit(TITANIC)
    assert "Quota exceeded for VM family standardDSv2Family" in str(raised.value)
    assert _submissions(fake) == []


@pytest.mark.fake_azure(auth_error=True)
def test_an_expired_sign_in_says_to_sign_in_again(fake):
    with pytest.raises(BackendError, match=re.escape("Azure authentication failed while looking up compute target "
                                                     "'cpu-cluster': ")) as raised:
        fake.submit(TITANIC)
    assert str(raised.value).endswith(SIGN_IN[fake.sdk])


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
