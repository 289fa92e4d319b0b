"""The generic entry script run on the cluster: the plugin by name, with an Azure run context."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from framework.backends.azure.sdk_v1.compiler import SCRIPT_DIR, SCRIPT_NAME
from framework.backends.azure.sdk_v1.entry import AzureRunContext, parse_arguments, run_step


class RecordingRun:
    """Stands in for ``azureml.core.Run`` inside a pipeline step."""

    def __init__(self, input_datasets=None):
        self.id = "step-run-1"
        self.input_datasets = input_datasets or {}
        self.logged, self.properties = [], {}
        self.experiment = SimpleNamespace(name="titanic_automl", workspace="the-run-workspace")
        self.parent = SimpleNamespace(id="pipeline-run-1")

    def log(self, name, value, description=""):
        self.logged.append((name, value))

    def add_properties(self, properties):
        self.properties.update(properties)


class FakeTabularDataset:
    def __init__(self, frame):
        self.frame = frame

    def to_pandas_dataframe(self):
        return self.frame


def test_dataprep_runs_from_a_named_input_dataset(titanic_csv, tmp_path):
    out = tmp_path / "mnt" / "prepped_data"
    run = RecordingRun({"titanic_ds": FakeTabularDataset(pd.read_csv(titanic_csv))})
    from framework import get_plugin_manager
    from framework.reuse import code_hash

    code = code_hash(get_plugin_manager().step("dataprep_titanic"))
    args = parse_arguments(["--amlstep-step", "dataprep", "--amlstep-plugin", "dataprep_titanic", "--amlstep-code",
                            code, "--param", "seed", "7", "--dataset", "titanic_ds", "titanic_ds",
                            "--output", "prepped_data", str(out), "--output", "learned", str(out.with_name("learned"))])
    run_step(args, run=run)
    prepped = pd.read_csv(out / "prepped_data.csv")
    assert len(prepped) == 891 and "Age_Group" in prepped.columns
    assert (out.with_name("learned") / "learned.json").is_file()  # what predict applies travels as a step output


def test_register_model_calls_model_register_on_the_runs_workspace(tmp_path, monkeypatch):
    """Model.register (azureml-core 1.61) refuses paths outside the working folder, where Azure mounts inputs:
    the entry registers a copy made under it."""
    from azureml.core.model import Model

    calls = []

    def register(**kwargs):
        Model._validate_model_path(kwargs["model_path"])   # the SDK's own check, kept
        calls.append({**kwargs, "content": Path(kwargs["model_path"]).read_bytes()})
        return SimpleNamespace(name=kwargs["model_name"], version=3)

    monkeypatch.setattr(Model, "register", staticmethod(register))
    model = tmp_path / "mnt" / "best_model_data"
    model.parent.mkdir()
    model.write_bytes(b"pickled")
    work = tmp_path / "wd"
    work.mkdir()
    monkeypatch.chdir(work)
    run = RecordingRun()
    args = parse_arguments(["--amlstep-step", "register_model", "--amlstep-plugin", "register_model",
                            "--param", "model_name", "TitanicSurvivalInitial", "--input", "model", str(model)])
    run_step(args, run=run)
    assert calls == [{"workspace": "the-run-workspace",
                      "model_path": "amlstep_registered_models/TitanicSurvivalInitial/best_model_data",
                      "model_name": "TitanicSurvivalInitial", "description": None, "tags": None, "properties": None,
                      "content": b"pickled"}]
    assert run.logged == [("registered_version", 3)]


def test_the_sdk_refuses_to_register_a_model_outside_the_working_folder(tmp_path, monkeypatch):
    from azureml.core.model import Model

    monkeypatch.chdir(tmp_path)
    outside = tmp_path.parent / "outside.pkl"
    outside.write_bytes(b"x")
    with pytest.raises(PermissionError, match="Path outside current working directory"):
        Model._validate_model_path(str(outside))


def test_code_other_than_the_compiled_code_is_refused_naming_both_hashes():
    from framework.errors import StepExecutionError
    from framework.reuse import code_hash
    from framework import get_plugin_manager

    actual = code_hash(get_plugin_manager().step("dataprep_titanic"))
    args = parse_arguments(["--amlstep-step", "dataprep", "--amlstep-plugin", "dataprep_titanic", "--amlstep-code",
                            "0" * 64])
    message = (f"step 'dataprep': the code of plugin 'dataprep_titanic' here has source hash {actual[:16]}, but the "
               f"submission was compiled from source hash 0000000000000000: the wheel of amlstep shipped with the "
               f"step was not built from the code amlstep loaded when it compiled the pipeline")
    with pytest.raises(StepExecutionError, match=re.escape(message)):
        run_step(args, run=RecordingRun())


def test_offline_run_registers_in_the_local_workspace(workspace, tmp_path):
    from azureml.core import Run

    model = tmp_path / "model.pkl"
    model.write_bytes(b"pickled")
    context = AzureRunContext(Run.get_context(allow_offline=True), step_name="register_model", params={},
                              output_dirs={}, local_workspace=workspace)
    assert context.offline
    registered = context.register_model("OfflineModel", model)
    assert (registered.name, registered.version) == ("OfflineModel", 1)
    assert [m.name for m in workspace.list_models()] == ["OfflineModel"]


def test_unknown_parameter_names_the_step():
    from framework.errors import StepExecutionError

    args = parse_arguments(["--amlstep-step", "prep", "--amlstep-plugin", "dataprep_titanic", "--param", "sed", "1"])
    with pytest.raises(StepExecutionError, match="step 'prep': plugin 'dataprep_titanic' has no parameter 'sed'"):
        run_step(args, run=RecordingRun())


def test_the_script_runs_as_a_script(titanic_csv, tmp_path, workspace):
    """What the cluster does: ``python amlstep_entry.py ...`` from the snapshot folder (offline run)."""
    source = tmp_path / "raw"
    source.mkdir()
    (source / "titanic.csv").write_bytes(Path(titanic_csv).read_bytes())
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, SCRIPT_NAME, "--amlstep-step", "dataprep", "--amlstep-plugin",
                           "dataprep_titanic", "--input", "titanic_ds", str(source), "--output", "prepped_data",
                           str(out), "--output", "learned", str(tmp_path / "learned")],
                          cwd=SCRIPT_DIR, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Prepared 891 rows" in done.stdout
    assert (out / "prepped_data.csv").is_file()
