"""Submitting through the real SDK to the fake Azure ML service, which runs what it is given.

The Titanic pipeline runs twice on one fake (module fixture, shared by the tests that read it):
dataprep from the shipped wheel in its own venv, AutoML service-side, register_model through
``Model.register``; outputs downloaded through the SDK. Tests of the submission's shape use a
fake that accepts and runs nothing (``execute=False``), to stay fast.
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
from framework import BackendError, Dataset, get_plugin_manager, load_pipeline, run_pipeline
from framework.backends.azure.sdk_v1.backend import AzureBackend, Provisioning
from framework.cli import make_cli
from emulator.azure_service.testing import open_fake_azure
from tests.toy_steps import Recorder

from .conftest import PENGUINS, TITANIC

TITANIC_CSV = str(SHARED_DATA / "titanic.csv")
REGISTERED = {"titanic_ds": [TITANIC_CSV]}


@pytest.fixture(scope="module")
def titanic_twice(tmp_path_factory, _fake_azure_cache):
    """Titanic submitted twice to one executing fake; explain-reuse asked in between."""
    with open_fake_azure(tmp_path_factory.mktemp("titanic-on-azure"), _fake_azure_cache) as fake:
        fake.local_workspace.register_dataset("titanic_ds", [TITANIC_CSV])
        first_recorder, second_recorder = Recorder(), Recorder()
        first = fake.submit(TITANIC, plugins=get_plugin_manager(plugins=[first_recorder]))
        first_steps = fake.step_runs(first.run_id)
        plugins = get_plugin_manager()
        explained = fake.backend().explain_reuse(load_pipeline(TITANIC).validate(plugins), plugins=plugins)
        second = fake.submit(TITANIC, plugins=get_plugin_manager(plugins=[second_recorder]))
        yield SimpleNamespace(fake=fake, first=first, second=second, first_steps=first_steps,
                              second_steps=fake.step_runs(second.run_id), explained=explained,
                              first_calls=first_recorder.calls, second_calls=second_recorder.calls)


def test_titanic_runs_on_the_fake_from_the_shipped_wheel(titanic_twice):
    first, steps, fake = titanic_twice.first, titanic_twice.first_steps, titanic_twice.fake
    assert first.status == "Completed", first.error
    assert [(s.name, s.status, s.reused) for s in first.steps] == [
        ("dataprep", "Completed", False), ("AutoML_Classification", "Completed", False),
        ("register_model", "Completed", False)]
    log = fake.step_log(steps["dataprep"])
    # the code that ran is the wheel installed in the step's environment, not the developer's checkout
    location = re.search(r"amlstep from (\S+)", log).group(1)
    assert "site-packages" in location and str(Path(__file__).parents[4]) not in location, log
    assert "Prepared 891 rows" in log
    built = fake.service.compute.builds
    assert {b["name"] for b in built} >= {"amlstep-dataprep-titanic", "amlstep-register-model"}
    assert fake.service.unhandled == []


def test_automl_ran_service_side_and_outputs_read_the_seeds_way(titanic_twice, titanic_test_csv):
    from plugins.dataprep_titanic import prepare

    first, fake = titanic_twice.first, titanic_twice.fake
    automl = titanic_twice.first_steps["AutoML_Classification"]
    children = fake.service.engine.children(automl.id)
    assert len(children) >= 2 and all(c.status == "Completed" for c in children)
    assert "AUC_weighted" in children[0].metric_values()
    # get_pipeline_output(name).download(): the files land at their path on the datastore, read as the seed does
    metrics_file, model_file = Path(first.outputs["metrics_output"]), Path(first.outputs["model_output"])
    assert metrics_file.relative_to(fake.download_dir).as_posix() == f"azureml/{automl.id}/metrics_data"
    frame = pd.DataFrame(json.loads(metrics_file.read_text()))
    assert set(frame.columns) == {c.id for c in children} and "AUC_weighted" in frame.index
    with open(model_file, "rb") as f:
        model = pickle.load(f)
    rows = prepare(pd.read_csv(titanic_test_csv)).head(20)
    predictions = model.predict(rows)
    assert len(predictions) == 20 and set(predictions) <= {0, 1}


def test_register_model_reached_the_fakes_registry(titanic_twice):
    fake, first_steps, second_steps = titanic_twice.fake, titanic_twice.first_steps, titanic_twice.second_steps
    versions = fake.models["TitanicSurvivalInitial"]
    assert [v.version for v in versions] == [1, 2]
    assert versions[0].url.startswith("aml://asset/")
    # run.log in the step reached the fake's run history through the real Run.get_context()
    assert first_steps["register_model"].metric_values() == {"registered_version": 1}
    assert second_steps["register_model"].metric_values() == {"registered_version": 2}
    assert "Registered version 2 of model TitanicSurvivalInitial" in fake.step_log(second_steps["register_model"])


def test_a_second_submission_reuses_dataprep_and_automl_as_explain_reuse_said(titanic_twice):
    second, explained = titanic_twice.second, titanic_twice.explained
    assert second.status == "Completed", second.error
    actual = {s.name: s.reused for s in second.steps}
    assert actual == {"dataprep": True, "AutoML_Classification": True, "register_model": False}
    assert {e["step"]: e["would_reuse"] for e in explained} == actual
    assert [e["reasons"] for e in explained][2] == ["allow_reuse is False for this step"]
    first_runs = titanic_twice.first_steps
    assert titanic_twice.second_steps["dataprep"].reused_from == first_runs["dataprep"].id
    # the reused AutoML step's outputs are the first run's: same blobs, downloaded again
    assert second.outputs["model_output"] == titanic_twice.first.outputs["model_output"]
    local = titanic_twice.fake.local_workspace
    records = {r.name: r for r in local.get_children(second.run_id)}
    first_dataprep = titanic_twice.first.step("dataprep")
    assert records["dataprep"].reused_from == first_dataprep.local_run_id
    # run_id is the Azure step run's id; the local record answers to it too
    assert first_dataprep.run_id == first_runs["dataprep"].id
    assert local.get_run(first_dataprep.run_id).id == first_dataprep.local_run_id
    assert local.get_run(second.run_id).status == "Completed"
    # the command line says the same, offline, from the run history
    listed = CliRunner().invoke(make_cli(get_plugin_manager()), ["--workspace", str(local.path), "explain-reuse",
                                                                 str(TITANIC), "--backend", "azure", "--json"])
    assert listed.exit_code == 0, listed.output
    assert {e["step"]: e["would_reuse"] for e in json.loads(listed.stdout)} == actual


def test_step_hooks_fire_as_the_service_reports_step_status(titanic_twice):
    calls = titanic_twice.first_calls
    names = [c for c in calls if c[0] != "after_child_run"]
    assert names == [("before_pipeline_run", "azure"),
                     ("before_step_run", "dataprep"), ("after_step_run", "dataprep", False),
                     ("before_step_run", "AutoML_Classification"), ("after_step_run", "AutoML_Classification", False),
                     ("before_step_run", "register_model"), ("after_step_run", "register_model", False),
                     ("after_pipeline_run", "Completed")]
    iterations = [c for c in calls if c[0] == "after_child_run"]
    assert len(iterations) >= 2
    assert calls.index(iterations[0]) < calls.index(("after_step_run", "AutoML_Classification", False))
    assert ("after_step_run", "dataprep", True) in titanic_twice.second_calls


@pytest.mark.fake_azure()
def test_a_third_party_plugin_runs_on_the_fake_from_its_own_wheel(fake_azure):
    pytest.importorskip("amlstep_penguins")
    result = fake_azure.submit(PENGUINS, params={"model_name": "Penguins"})
    assert result.status == "Completed", result.error
    steps = fake_azure.step_runs()
    log = fake_azure.step_log(steps["dataprep"])
    assert "amlstep from " in log and "site-packages" in log
    environment = fake_azure.service.engine.pipelines[result.run_id].job.steps[0].environment
    assert any("amlstep_penguins-0.1.0-0sha" in line for line in environment.pip)
    assert [v.version for v in fake_azure.models["Penguins"]] == [1]
    frame = pd.DataFrame(json.loads(Path(result.outputs["metrics_output"]).read_text()))
    assert "AUC_weighted" in frame.index


def test_a_plugin_that_raises_fails_the_run_naming_the_step_with_its_log(tmp_path, titanic_csv, _fake_azure_cache):
    """By hand: a titanic_ds without Sex, submitted with the fake's config.json; exit 1, step and column named."""
    raw = pd.read_csv(titanic_csv).drop(columns=["Sex"])
    bad = tmp_path / "no_sex.csv"
    raw.to_csv(bad, index=False)
    with open_fake_azure(tmp_path / "fake", _fake_azure_cache) as fake:
        config = tmp_path / "c.json"
        config.write_text(json.dumps(fake.service.config()))
        app = make_cli(get_plugin_manager())
        ws = str(tmp_path / "ws")
        assert CliRunner().invoke(app, ["--workspace", ws, "datasets", "register", "titanic_ds", str(bad)]).exit_code == 0
        result = CliRunner().invoke(app, ["--workspace", ws, "run", str(TITANIC), "--backend", "azure", "--config",
                                          str(config), "--json", "--quiet"])
        assert result.exit_code == 1, result.output
        data = json.loads(result.stdout)
        first_line = data["error"].splitlines()[0]
        assert first_line.startswith("step 'dataprep' failed on Azure: User program failed with MissingColumnsError: "
                                     "Titanic data is missing column(s) 'Sex'")
        assert "last lines of its log (azureml-logs/70_driver_log.txt):" in data["error"]
        assert "MissingColumnsError" in data["error"].splitlines()[-1]
        assert [(s["name"], s["status"]) for s in data["steps"]] == [
            ("dataprep", "Failed"), ("AutoML_Classification", "NotStarted"), ("register_model", "NotStarted")]
        # downstream steps were never started on the service
        assert set(fake.step_runs()) == {"dataprep"}
        listed = json.loads(CliRunner().invoke(app, ["--workspace", ws, "runs", "list", "--json"]).stdout)
        assert [(r["backend"], r["status"]) for r in listed] == [("azure", "Failed")]


# -- the submission's shape (nothing runs) --------------------------------------------------------------
@pytest.mark.fake_azure(datasets=REGISTERED, execute=False)
def test_recorded_submission_matches_the_plan(fake_azure):
    plugins = get_plugin_manager()
    validated = load_pipeline(TITANIC).validate(plugins)
    plan = AzureBackend(dry_run=True).plan(validated, plugins=plugins)
    fake_azure.submit(TITANIC, plugins=plugins)
    submitted = fake_azure.submissions[-1]

    def short(cls: str) -> str:
        return cls.rsplit(".", 1)[1]

    planned = sorted((s["name"], short(s["sdk_class"]), s["compute_target"], s["script"], s["allow_reuse"])
                     for s in plan["steps"])
    recorded = sorted((s["name"], s["type"], s["compute_target"], s["script"], s["allow_reuse"])
                      for s in submitted["steps"])
    assert planned == recorded
    assert submitted["edges"] == plan["edges"]
    by_name = {s["name"]: s for s in submitted["steps"]}
    automl = by_name["AutoML_Classification"]["automl"]
    settings = plan["steps"][1]["automl_config"]["settings"]
    for key in ("task_type", "primary_metric", "iterations", "experiment_timeout_minutes", "label_column_name",
                "featurization", "n_cross_validations", "enable_early_stopping"):
        assert automl[key] == settings[key], key
    assert automl["compute_target"] == "cpu-cluster"
    # the plan's literal arguments are exactly the submitted literals; objects become Parameter/Input markers
    for step in plan["steps"]:
        sent = by_name[step["name"]]["arguments"]
        assert [v for kind, v in sent if kind == "Literal"] == [a for a in step["arguments"]
                                                                 if not re.fullmatch(r"\w+\(.*\)", a)]
        assert len(sent) == len(step["arguments"])
    assert ["Parameter", "model_name"] in by_name["register_model"]["arguments"]
    assert submitted["pipeline_parameters"] == {"model_name": "TitanicSurvivalInitial"}


@pytest.mark.fake_azure(datasets=REGISTERED, execute=False)
def test_submit_time_parameters_reach_the_pipeline_parameters(fake_azure):
    result = fake_azure.submit(TITANIC, params={"model_name": "Submitted", "iterations": "3"})
    submitted = fake_azure.submissions[-1]
    assert submitted["pipeline_parameters"] == {"model_name": "TitanicSurvivalInitial"}
    assert submitted["submitted_parameters"] == {"model_name": "Submitted"}
    automl = next(s for s in submitted["steps"] if s["type"] == "AutoMLStep")
    assert automl["automl"]["iterations"] == 3
    assert result.params == {"model_name": "Submitted", "iterations": 3, "experiment_timeout_minutes": 15}
    # the service resolved the Parameter argument of register_model from the submitted value
    job = fake_azure.service.engine.pipelines[result.run_id].job
    register = next(s for s in job.steps if s.name == "register_model")
    assert [t.value for t in register.argv if t.kind == "literal"].count("Submitted") == 1


@pytest.mark.fake_azure(datasets=REGISTERED, execute=False)
def test_no_wait_returns_once_submitted(fake_azure):
    result = fake_azure.submit(TITANIC, wait=False)
    assert result.status == "Running" and result.details["wait"] is False
    assert fake_azure.local_workspace.get_run(result.run_id).status == "Running"


@pytest.mark.fake_azure(computes=(), datasets=REGISTERED, execute=False)
def test_missing_compute_is_created_with_the_seed_provisioning(fake_azure):
    assert fake_azure.submit(TITANIC).status == "Completed"
    assert fake_azure.created_computes == [{"name": "cpu-cluster", "vm_size": "STANDARD_D2_V2", "min_nodes": 0,
                                            "max_nodes": 1, "idle_seconds_before_scaledown": "PT1800S",
                                            "vm_priority": "dedicated"}]


@pytest.mark.fake_azure(computes=(), datasets=REGISTERED, execute=False)
def test_provisioning_is_configurable(fake_azure):
    fake_azure.submit(TITANIC, compute="big", provisioning=Provisioning(vm_size="STANDARD_D4_V2", max_nodes=4))
    assert [(c["name"], c["vm_size"], c["max_nodes"]) for c in fake_azure.created_computes] == [
        ("big", "STANDARD_D4_V2", 4)]
    assert {s["compute_target"] for s in fake_azure.submissions[-1]["steps"]} == {"big"}


@pytest.mark.fake_azure(computes=(), datasets=REGISTERED, compute_error="Quota exceeded for STANDARD_D2_V2")
def test_compute_creation_failure_is_a_clear_error(fake_azure):
    with pytest.raises(BackendError, match=re.escape("could not create compute target 'cpu-cluster' "
                                                     "(STANDARD_D2_V2, 0-1 nodes)")) as caught:
        fake_azure.submit(TITANIC)
    assert "Quota exceeded" in str(caught.value)
    assert fake_azure.submissions == []


@pytest.mark.fake_azure(auth_error=True)
def test_authentication_failure_says_to_sign_in_again(fake_azure):
    with pytest.raises(BackendError, match="Azure authentication failed while looking up compute target "
                                           "'cpu-cluster'.*sign in again"):
        fake_azure.submit(TITANIC)


@pytest.mark.fake_azure(execute=False)
def test_a_dataset_without_sources_missing_from_the_workspace(fake_azure):
    pipeline = load_pipeline(TITANIC)
    pipeline.steps[0].inputs["titanic_ds"] = Dataset("titanic_ds")
    with pytest.raises(BackendError, match="dataset 'titanic_ds' is not registered in the workspace and the "
                                           "pipeline gives no sources"):
        fake_azure.submit(pipeline)


@pytest.mark.fake_azure(execute=False)
def test_a_local_dataset_is_uploaded_and_registered_with_its_content_hash(fake_azure, titanic_csv, tmp_path):
    local = fake_azure.local_workspace
    first, _ = local.register_dataset("titanic_ds", [str(titanic_csv)])
    backend = fake_azure.backend()
    datasets = [Dataset("titanic_ds")]
    backend.ensure_datasets(datasets)
    versions = fake_azure.service.engine.datasets["titanic_ds"]
    assert [(v.version, v.tags) for v in versions] == [(1, {"amlstep_sha256": first.sha256})]
    stored = fake_azure.service.engine.dataset_local_files(versions[0])
    assert [p.read_bytes() for p in stored] == [Path(titanic_csv).read_bytes()]
    backend.ensure_datasets(datasets)             # same content: nothing new registered
    assert len(fake_azure.service.engine.datasets["titanic_ds"]) == 1
    smaller = tmp_path / "head.csv"
    pd.read_csv(titanic_csv).head(100).to_csv(smaller, index=False)
    second, _ = local.register_dataset("titanic_ds", [str(smaller)])
    backend.ensure_datasets(datasets)             # new local content: a new version on Azure
    assert [v.tags["amlstep_sha256"] for v in fake_azure.service.engine.datasets["titanic_ds"]] == [
        first.sha256, second.sha256]
    # the column types come from the local file: the registered definition converts them
    assert "convert_column_types" in json.loads(versions[0].definition)["meta"]["RsDataflow"]


@pytest.mark.fake_azure(datasets=REGISTERED, execute=False)
def test_runs_list_shows_both_backends(fake_azure, titanic_workspace, plugins):
    from conftest import FAST_AUTOML

    run_pipeline(load_pipeline(TITANIC), workspace=titanic_workspace, plugins=plugins, params=FAST_AUTOML)
    AzureBackend(titanic_workspace, aml_workspace=fake_azure.workspace, download=False, poll_seconds=0.2).run(
        load_pipeline(TITANIC).validate(plugins), plugins=plugins)
    listed = CliRunner().invoke(make_cli(plugins), ["--workspace", str(titanic_workspace.path), "runs", "list",
                                                    "--json"])
    assert sorted(r["backend"] for r in json.loads(listed.stdout)) == ["azure", "local"]


@pytest.mark.fake_azure(datasets=REGISTERED, execute=False)
def test_no_reuse_submits_every_step_with_allow_reuse_false(fake_azure):
    plugins = get_plugin_manager()
    fake_azure.backend().run(load_pipeline(TITANIC).validate(plugins), plugins=plugins, reuse=False)
    assert {s["name"]: s["allow_reuse"] for s in fake_azure.submissions[-1]["steps"]} == {
        "dataprep": False, "AutoML_Classification": False, "register_model": False}


def test_pipeline_outputs_are_downloaded_by_name(tmp_path, workspace):
    """The seed's get_pipeline_output(name).download(path); a failed download is reported, not fatal."""
    from framework.results import PipelineRunResult

    class Port:
        def __init__(self, name):
            self.name = name

        def download(self, local_path, show_progress=False):
            if self.name == "model_output":
                raise RuntimeError("blob not found")
            target = tmp_path / "dl" / "azureml" / "run-1" / self.name
            target.mkdir(parents=True)
            (target / "metrics_data").write_text("{}")

    run = SimpleNamespace(id="run-1", get_pipeline_output=Port)
    compiled = SimpleNamespace(pipeline_outputs={"metrics_output": "metrics_data", "model_output": "best_model_data"})
    result = PipelineRunResult(run_id="run-1", experiment="e", status="Completed", backend="azure")
    outputs = AzureBackend(workspace, download_dir=tmp_path / "dl")._download(run, compiled, result)
    assert outputs == {"metrics_output": str(tmp_path / "dl" / "azureml" / "run-1" / "metrics_output")}
    assert result.details["download_errors"] == {
        "model_output": "could not download pipeline output 'model_output': RuntimeError: blob not found"}


@pytest.mark.fake_azure(datasets={"penguins_ds": [TITANIC_CSV]}, execute=False)
def test_a_third_party_plugin_pipeline_submits(fake_azure):
    pytest.importorskip("amlstep_penguins")
    fake_azure.submit(PENGUINS, params={"model_name": "Penguins"})
    submitted = fake_azure.submissions[-1]
    prep = next(s for s in submitted["steps"] if s["name"] == "dataprep")
    assert (prep["type"], prep["script"], prep["compute_target"]) == ("PythonScriptStep", "amlstep_entry.py",
                                                                      "cpu-cluster")
    assert ["Literal", "dataprep_penguins"] in prep["arguments"]
    assert ["dataset:penguins_ds", "dataprep.penguins_ds"] in submitted["edges"]
    automl = next(s for s in submitted["steps"] if s["type"] == "AutoMLStep")
    assert automl["automl"]["label_column_name"] == "species"
    assert submitted["submitted_parameters"] == {"model_name": "Penguins"}
