"""SDK v1 only: the submission's shape as the fake records it, datasets, parameters and downloads.

The scenarios both SDKs share (Titanic and penguins run on the fake, reuse, failures, computes, sign-in)
are in test_submit.py, once per SDK. These fakes accept and run nothing (``execute=False``), to stay fast.
"""

from __future__ import annotations

import json
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

from .conftest import PENGUINS, TITANIC

TITANIC_CSV = str(SHARED_DATA / "titanic.csv")
REGISTERED = {"titanic_ds": [TITANIC_CSV]}


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
def test_an_echo_stream_that_closes_fails_no_azure_run(fake_azure):
    """``amlstep run --backend azure ... | head -1``: echoing stops at the first refused write; the run is followed to
    its end and recorded as it ended."""
    import io

    class ReaderGone(io.StringIO):
        def write(self, text):
            if self.getvalue():
                raise BrokenPipeError(32, "Broken pipe")
            return super().write(text)

    plugins = get_plugin_manager()
    echo = ReaderGone()
    result = fake_azure.backend(echo=echo).run(load_pipeline(TITANIC).validate(plugins), plugins=plugins)
    assert result.status == "Completed", result.error
    assert echo.getvalue() and "\n" not in echo.getvalue().rstrip("\n")  # one line got through, then nothing


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
