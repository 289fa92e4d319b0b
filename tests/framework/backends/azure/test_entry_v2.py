"""The SDK v2 entry: MLTable inputs and outputs, MLflow metrics, registration through MLClient."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest

from framework.backends.azure import mltable
from framework.backends.azure.sdk_v2.entry import MlflowRunContext, parse_arguments, run_step, tracking_uri

pytest.importorskip("mlflow")


@pytest.fixture
def mlflow_run(tmp_path, monkeypatch):
    """A run in a file-backed MLflow store, and the environment a job would see."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("entry"))
    return client, {"MLFLOW_TRACKING_URI": uri, "MLFLOW_RUN_ID": run.info.run_id}


def test_azureml_tracking_uri_becomes_https_without_the_plugin():
    uri = "azureml://westeurope.api.azureml.ms/mlflow/v1.0/subscriptions/s/resourceGroups/r/providers/x/workspaces/w"
    assert tracking_uri({"MLFLOW_TRACKING_URI": uri}) == "https://" + uri[len("azureml://"):]
    # what Azure sets in a job: the workspace path then a trailing "?"; the API path must follow the workspace path
    assert tracking_uri({"MLFLOW_TRACKING_URI": uri + "?"}) == "https://" + uri[len("azureml://"):]
    assert tracking_uri({"MLFLOW_TRACKING_URI": "https://h/mlflow"}) == "https://h/mlflow"
    assert tracking_uri({}) is None


def test_mltable_input_is_read_and_tabular_outputs_get_an_mltable(tmp_path, titanic_csv, mlflow_run):
    client, environ = mlflow_run
    data = tmp_path / "titanic_ds"
    data.mkdir()
    shutil.copy(titanic_csv, data / "part.csv")
    mltable.write(data)
    out, learned = tmp_path / "prepped", tmp_path / "learned"
    args = parse_arguments(["--amlstep-sdk", "v2", "--amlstep-step", "dataprep", "--amlstep-plugin", "dataprep_titanic",
                            "--input", "titanic_ds", str(data), "--output", "prepped_data", str(out),
                            "--output", "learned", str(learned)])
    run_step(args, environ=environ)
    assert sorted(p.name for p in out.iterdir()) == ["MLTable", "prepped_data.csv"]
    assert sorted(p.name for p in learned.iterdir()) == ["learned.json"]  # a folder output, no MLTable
    prepped = mltable.read(out, "prepped")
    assert len(prepped) == 891 and "Survived" in prepped.columns


def test_metrics_go_to_the_mlflow_run_and_models_to_mlclient(tmp_path, mlflow_run):
    client, environ = mlflow_run
    registered = []

    class Models:
        def create_or_update(self, model):
            registered.append(model)
            return SimpleNamespace(name=model.name, version="3", id=f"azureml:{model.name}:3")

    context = MlflowRunContext(step_name="register", params={}, output_dirs={}, environ=environ,
                               ml_client=SimpleNamespace(models=Models()))
    context.log("rows", 891)
    context.log("rows", 890)
    context.log("registered_version", "3")
    context.log("note", "not a number")
    assert context.get_metrics() == {"rows": 890.0, "registered_version": 3.0}
    history = client.get_metric_history(environ["MLFLOW_RUN_ID"], "rows")
    assert [(m.step, m.value) for m in history] == [(0, 891.0), (1, 890.0)]
    assert client.get_run(environ["MLFLOW_RUN_ID"]).data.tags["note"] == "not a number"

    folder = tmp_path / "best_model"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors: {}\n")
    model = context.register_model("Titanic", folder, description="d", tags={"k": 1})
    assert (model.name, model.version, model.type) == ("Titanic", 3, "mlflow_model")
    sent = registered[-1]
    assert (sent.type, sent.path, sent.tags) == ("mlflow_model", str(folder), {"k": "1"})
    assert sent.properties["azureml.sourceRunId"] == environ["MLFLOW_RUN_ID"]
    (tmp_path / "m.pkl").write_bytes(b"x")
    assert context.register_model("Other", tmp_path / "m.pkl").type == "custom_model"
