"""The generic entry script run on the cluster: the plugin by name, with an Azure run context."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from framework.backends.azure.compiler_v1 import SCRIPT_DIR, SCRIPT_NAME
from framework.backends.azure.entry import AzureRunContext, parse_arguments, run_step


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
    args = parse_arguments(["--amlstep-step", "dataprep", "--amlstep-plugin", "dataprep_titanic", "--amlstep-code",
                            "abc", "--param", "seed", "7", "--dataset", "titanic_ds", "titanic_ds",
                            "--output", "prepped_data", str(out), "--output", "learned", str(out.with_name("learned"))])
    run_step(args, run=run)
    prepped = pd.read_csv(out / "prepped_data.csv")
    assert len(prepped) == 891 and "Age_Group" in prepped.columns
    assert (out.with_name("learned") / "learned.json").is_file()  # what predict applies travels as a step output


def test_register_model_calls_model_register_on_the_runs_workspace(tmp_path, monkeypatch):
    from azureml.core.model import Model

    calls = []
    monkeypatch.setattr(Model, "register", staticmethod(
        lambda **kwargs: calls.append(kwargs) or SimpleNamespace(name=kwargs["model_name"], version=3)))
    model = tmp_path / "best_model_data"
    model.mkdir()
    (model / "model.pkl").write_bytes(b"pickled")
    run = RecordingRun()
    args = parse_arguments(["--amlstep-step", "register_model", "--amlstep-plugin", "register_model",
                            "--param", "model_name", "TitanicSurvivalInitial", "--input", "model", str(model)])
    run_step(args, run=run)
    assert calls == [{"workspace": "the-run-workspace", "model_path": str(model / "model.pkl"),
                      "model_name": "TitanicSurvivalInitial", "description": None, "tags": None, "properties": None}]
    assert run.logged == [("registered_version", 3)]


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
                           str(out), "--output", "learned", str(tmp_path / "learned")], cwd=SCRIPT_DIR, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Prepared 891 rows" in done.stdout
    assert (out / "prepped_data.csv").is_file()
