"""AutoML steps run service-side: Azure AutoML's limits checked by the service, whatever the client checked."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from emulator.azure_service.automl import limit_problems, run_automl_step
from emulator.azure_service.blobstore import BlobStore
from emulator.azure_service.compute import Compute, PackageIndex
from emulator.azure_service.engine import (Engine, EnvironmentSpec, PipelineJob, PipelineState, StepFailure,
                                           StepJob)


@pytest.mark.parametrize("settings, message", [
    ({"experiment_timeout_minutes": 5}, "Value for argument [experiment_timeout_minutes] is out of range "
                                        "(Range: [15 - 525600])."),
    ({"iterations": 1001}, "Value for argument [iterations] is out of range (Range: [1 - 1000])."),
    ({"iterations": 0}, "Value for argument [iterations] is out of range (Range: [1 - 1000])."),
    ({"validation_size": 1.5}, "Value for argument [validation_size] is out of range (Range: [0 - 1])."),
    ({"n_cross_validations": 5, "validation_size": 0.1}, "Conflicting or duplicate values are provided for "
                                                         "arguments: [n_cross_validations, validation_size]"),
])
def test_azure_automls_limits(settings, message):
    assert [m for _, _, m in limit_problems(settings)] == [message]


def test_what_the_sdk_fills_in_is_within_the_limits():
    """AutoMLConfig's defaults, as aml_settings_json_string carries them, pass."""
    settings = {"iterations": 1000, "experiment_timeout_minutes": 15, "validation_size": 0.0,
                "n_cross_validations": None, "max_concurrent_iterations": 1, "iteration_timeout_minutes": None}
    assert limit_problems(settings) == []


def test_a_v1_automl_step_outside_the_limits_fails_before_training(tmp_path):
    engine = Engine(tmp_path, BlobStore(tmp_path / "blobs", "acct"),
                    Compute(tmp_path / "cache", index=PackageIndex(offline=True)),
                    datastores={"workspaceblobstore": "store"}, runtime_env=lambda record: {})
    step = StepJob(node_id="n", name="AutoML", kind="automl", compute="cpu-cluster", allow_reuse=True, identity="i",
                   automl_settings={"task_type": "classification", "experiment_timeout_minutes": 5})
    state = PipelineState("p", PipelineJob(experiment="e", steps=[step]))
    step_run = engine.create_run("e", "azureml.StepRun", "AutoML")
    with pytest.raises(StepFailure, match=r"^Value for argument \[experiment_timeout_minutes\] is out of range"):
        run_automl_step(engine, state, step, step_run)


# -- outputs in Azure's shape: nothing of amlstep needed to load them -------------------------------------
@pytest.fixture(scope="module")
def automl_outputs(tmp_path_factory, titanic_csv):
    """An AutoML step run by the fake (SDK v1's Model and Metrics training outputs, SDK v2's best_model)."""
    import json

    from emulator.azure_service.engine import InputBinding, OutputSpec

    root = tmp_path_factory.mktemp("automl-outputs")
    engine = Engine(root, BlobStore(root / "blobs", "acct"), Compute(root / "cache", index=PackageIndex(offline=True)),
                    datastores={"workspaceblobstore": "store"}, runtime_env=lambda record: {})
    engine.blob.put("store", "data/titanic.csv", titanic_csv.read_bytes())
    engine.register_dataset("titanic", {}, files=[("workspaceblobstore", "data/titanic.csv")])
    outputs = {name: OutputSpec(name, "workspaceblobstore", "azureml/{run-id}/{output-name}", is_file=kind != "MLflowModel",
                                training_output=kind)
               for name, kind in (("metrics_data", "Metrics"), ("model_data", "Model"), ("best_model", "MLflowModel"))}
    step = StepJob(node_id="n", name="AutoML", kind="automl", compute="cpu-cluster", allow_reuse=True, identity="i",
                   inputs={"training_data": InputBinding("training_data", dataset=("titanic", 1))}, outputs=outputs,
                   automl_settings={"task_type": "classification", "primary_metric": "AUC_weighted",
                                    "label_column_name": "Survived", "iterations": 2, "experiment_timeout_minutes": 15,
                                    "n_cross_validations": 3, "enable_ensembling": False,
                                    "enable_stack_ensembling": False})
    state = PipelineState("p", PipelineJob(experiment="e", steps=[step]))
    step_run = engine.create_run("e", "azureml.StepRun", "AutoML")
    for port, spec in outputs.items():
        step_run.outputs[port] = ("workspaceblobstore", spec.path.replace("{run-id}", step_run.id)
                                  .replace("{output-name}", port))
    run_automl_step(engine, state, step, step_run)
    where = {port: engine.output_location(step_run, port, spec.is_file) for port, spec in outputs.items()}
    fresh = engine.compute.environment(EnvironmentSpec("downstream", None, ["pandas", "scikit-learn", "mlflow-skinny"]),
                                       engine.blob)
    return SimpleNamespace(engine=engine, step_run=step_run, where=where, fresh=fresh,
                           metrics=json.loads(where["metrics_data"].read_text()))


def downstream(python, code, cwd):
    """``code`` run by a step's python, in a folder of its own: amlstep is not importable there."""
    import subprocess

    return subprocess.run([str(python), "-c", "import importlib.util, sys\n"
                           "assert importlib.util.find_spec('emulator') is None, 'amlstep is importable'\n" + code],
                          capture_output=True, text=True, cwd=cwd, env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)})


@pytest.mark.slow
def test_the_v1_model_output_loads_in_a_step_without_amlstep(automl_outputs, titanic_csv, tmp_path):
    """What the seed's downstream code does: ``pickle.load`` the Model output and predict."""
    done = downstream(automl_outputs.fresh, f"""
import pickle, pandas as pd
with open({str(automl_outputs.where['model_data'])!r}, 'rb') as f:
    model = pickle.load(f)
rows = pd.read_csv({str(titanic_csv)!r}).drop(columns=['Survived']).head(10)
print(type(model).__module__, type(model).__name__, list(model.predict(rows)))
""", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("sklearn.pipeline Pipeline [")


@pytest.mark.slow
def test_the_v2_best_model_loads_with_mlflow_without_amlstep(automl_outputs, titanic_csv, tmp_path):
    done = downstream(automl_outputs.fresh, f"""
import mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model({str(automl_outputs.where['best_model'])!r})
rows = pd.read_csv({str(titanic_csv)!r}).drop(columns=['Survived']).head(10)
print(list(model.predict(rows)))
""", tmp_path)
    assert done.returncode == 0, done.stderr
    requirements = (automl_outputs.where["best_model"] / "requirements.txt").read_text()
    assert "amlstep" not in requirements and "cloudpickle==" in requirements


@pytest.mark.slow
def test_the_metrics_output_has_azures_shape(automl_outputs):
    """``{child_run_id: {metric: [value]}}``: one column per child run in ``pd.DataFrame(json.load(f))``."""
    import pandas as pd

    children = automl_outputs.engine.children(automl_outputs.step_run.id)
    frame = pd.DataFrame(automl_outputs.metrics)
    assert set(frame.columns) == {c.id for c in children}
    assert {"AUC_weighted", "accuracy", "log_loss", "f1_score_weighted"} <= set(frame.index)
    assert all(isinstance(v, list) and len(v) == 1 for metrics in automl_outputs.metrics.values()
               for v in metrics.values())
