"""What the service refuses through the SDK v1 API, as Azure refuses it: compute names and sizes the SDK sends,
unknown compute targets, snapshots without their files, environments that cannot be built, missing scripts
(the checks of every request, tokens, api-versions, workspaces, are tests/emulator/azure_service/test_api.py)."""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.request

import pytest

from emulator.azure_service import FakeAzureML
from emulator.azure_service.service import RESOURCE_GROUP, SUBSCRIPTION
from framework import BackendError
from framework.backends.azure.sdk_v1.backend import AzureBackend, Provisioning

from ...framework.backends.azure.conftest import TITANIC


def call(fake, method, path, body=None, token=""):
    token = fake.token if token == "" else token
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(fake.base_url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture(scope="module")
def fake():
    with FakeAzureML(execute=False) as service:
        yield service


def ws_path(fake, prefix=""):
    return (f"{prefix}/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.MachineLearningServices/"
            f"workspaces/{fake.workspace_name}")


@pytest.mark.fake_azure(computes=(), execute=False)
def test_a_compute_name_azure_refuses_is_a_clear_error(fake_azure):
    with pytest.raises(BackendError, match=re.escape("could not create compute target 'my_compute_cluster_with_33_"
                                                     "chars_' (STANDARD_D2_V2, 0-1 nodes): Compute name")):
        fake_azure.submit(TITANIC, compute="my_compute_cluster_with_33_chars_")
    assert fake_azure.submissions == []


@pytest.mark.fake_azure(computes=(), execute=False)
def test_an_unknown_vm_size_is_refused(fake_azure):
    with pytest.raises(BackendError, match=re.escape("could not create compute target 'cpu-cluster' (STANDARD_BOGUS, "
                                                     "0-1 nodes): The specified VM size 'STANDARD_BOGUS' is not "
                                                     "supported for AmlCompute in region 'westeurope'")):
        fake_azure.submit(TITANIC, provisioning=Provisioning(vm_size="STANDARD_BOGUS"))


@pytest.mark.fake_azure(execute=False)
def test_a_pipeline_naming_a_compute_that_does_not_exist_is_refused(fake_azure, titanic_csv):
    """ensure_compute would create it: compile without it. The SDK itself checks a script step's compute
    against the service's compute list when it builds the pipeline (the service also refuses it at
    submission: tests/emulator/azure_service/test_engine.py)."""
    from framework import Dataset, Pipeline, Step, get_plugin_manager

    fake_azure.local_workspace.register_dataset("titanic_ds", [str(titanic_csv)])
    plugins = get_plugin_manager()
    pipeline = Pipeline([Step("dataprep_titanic", name="dataprep", inputs={"titanic_ds": Dataset("titanic_ds")},
                              outputs={"prepped_data": "prepped_data"})], experiment="ghost")
    backend = AzureBackend(fake_azure.local_workspace, aml_workspace=fake_azure.workspace, compute="ghost-cluster")
    validated = pipeline.validate(plugins)
    backend.ensure_datasets(validated.datasets())
    with pytest.raises(BackendError, match=re.escape("the Azure ML SDK refused the pipeline: ValueError: Target "
                                                     "ghost-cluster does not exist in the workspace")):
        backend.compile(validated, plugins=plugins)
    assert fake_azure.submissions == []


def test_a_snapshot_whose_files_were_never_uploaded_is_refused(fake):
    content = ws_path(fake, "/content/v2.0")
    status, nodes = call(fake, "POST", content + "/snapshots/getblob", {"FileNames": ["train.py"]})
    assert status == 200 and nodes["fileNodes"][0]["fullName"] == "train.py"
    snapshot = {"ParentSnapshotId": None, "DirTreeNode": {"name": "", "type": "Directory", "children": {
        "train.py": {"name": "train.py", "type": "File", "children": {}}}},
        "FileRevisionList": {"FileNodes": [{"FullName": "train.py", "BlobUri": nodes["fileNodes"][0]["blobUri"],
                                            "FileSize": 10}]}}
    status, body = call(fake, "POST", content + "/snapshots/3f0ecb60-0e5c-4d1c-a0d4-d0a2b1c8b2a1", snapshot)
    assert status == 400 and "snapshot file 'train.py' was never uploaded" in body["error"]["message"]


def raw_pipeline(fake_azure, tmp_path, *, pip, script="train.py", ignore=None):
    """One PythonScriptStep written with the SDK directly (no amlstep), submitted and waited for."""
    from importlib import metadata

    from azureml.core import Experiment
    from azureml.core.conda_dependencies import CondaDependencies
    from azureml.core.runconfig import RunConfiguration
    from azureml.pipeline.core import Pipeline
    from azureml.pipeline.steps import PythonScriptStep

    source = tmp_path / "src"
    source.mkdir()
    (source / script).write_text("print('hello from the script')\n")
    if ignore:
        (source / ".amlignore").write_text(ignore + "\n")
    runconfig = RunConfiguration()
    # the Python the pins were resolved for (the SDK's default, 3.10, cannot take pandas 3: refused as on Azure)
    runconfig.environment.python.conda_dependencies = CondaDependencies.create(
        python_version=f"{sys.version_info[0]}.{sys.version_info[1]}",
        pip_packages=[p.format(pandas=metadata.version("pandas")) for p in pip], pin_sdk_version=False)
    step = PythonScriptStep(name="raw", script_name=script, source_directory=str(source), compute_target="cpu-cluster",
                            runconfig=runconfig, allow_reuse=False)
    run = Experiment(fake_azure.workspace, "raw").submit(Pipeline(fake_azure.workspace, [step]))
    run.wait_for_completion(show_output=False, raise_on_error=False)
    return fake_azure.step_runs(run.id)["raw"]


def test_a_requirement_no_index_has_fails_the_image_build_naming_it(fake_azure, tmp_path):
    step = raw_pipeline(fake_azure, tmp_path, pip=["pandas=={pandas}", "no-such-package==1.0"])
    assert step.status == "Failed"
    assert step.error["message"] == ("Image build failed for environment 'default-environment': No matching "
                                     "distribution found for no-such-package==1.0")
    log = fake_azure.service.engine.read_file(step.id, "azureml-logs/20_image_build_log.txt").decode()
    assert "ERROR: Could not find a version that satisfies the requirement no-such-package==1.0 (from versions: " \
           "none)" in log


def test_a_script_left_out_of_the_snapshot_fails_the_step(fake_azure, tmp_path):
    step = raw_pipeline(fake_azure, tmp_path, pip=["pandas=={pandas}"], ignore="train.py")
    assert step.status == "Failed"
    assert re.fullmatch(r"User program failed: can't open file '.*/snapshot/train.py': \[Errno 2\] No such file or "
                        r"directory", step.error["message"]), step.error


def test_a_script_in_the_snapshot_runs(fake_azure, tmp_path):
    step = raw_pipeline(fake_azure, tmp_path, pip=["pandas=={pandas}"])
    assert step.status == "Completed", step.error
    assert "hello from the script" in fake_azure.step_log(step)
