"""The ``fake_azure`` pytest fixture (a pytest plugin of amlstep's, entry point ``amlstep_azure``): a real workspace
on the fake, an isolated home, a marker that shapes the service, and the backend and config it hands out."""

from __future__ import annotations

import json
import os

import pytest


def test_fixture_gives_a_real_workspace_and_isolates_home(fake_azure, tmp_path):
    from azureml._base_sdk_common.service_discovery import CachedServiceDiscovery
    from azureml.core import Workspace

    assert isinstance(fake_azure.workspace, Workspace)
    assert os.environ["HOME"].startswith(str(tmp_path))
    # the SDK fixed its discovery cache file when azureml was first imported: the fixture moves it too
    assert CachedServiceDiscovery.__init__.__defaults__[0].startswith(str(tmp_path))
    assert os.environ["AZUREML_DISCOVERY_SERVICE_ENDPOINT"].startswith("http://127.0.0.1:")
    assert fake_azure.workspace.get_default_datastore().name == "workspaceblobstore"
    assert fake_azure.submissions == [] and fake_azure.options == {}
    assert fake_azure.service.engine.execute is True          # submissions run by default


@pytest.mark.fake_azure(computes=("gpu-cluster",))
def test_marker_shapes_the_service(fake_azure):
    from azureml.core.compute import ComputeTarget

    assert ComputeTarget(workspace=fake_azure.workspace, name="gpu-cluster").vm_size == "STANDARD_D2_V2"
    assert fake_azure.options == {"computes": ("gpu-cluster",)}


def test_the_fixture_is_a_pytest_plugin_of_the_installed_distribution():
    from importlib import metadata

    plugins = {ep.name: ep for ep in metadata.entry_points(group="pytest11")}
    assert plugins["amlstep_azure"].load().fake_azure is not None
    assert plugins["amlstep_azure"].dist.name == "amlstep"


@pytest.mark.fake_azure(execute=False)
def test_backend_and_config_reach_the_fake(fake_azure, tmp_path):
    backend = fake_azure.backend(poll_seconds=2.0)
    assert (type(backend).__name__, backend.aml_workspace, backend.poll_seconds) == ("AzureBackend", fake_azure.workspace, 2.0)
    config = json.loads(fake_azure.config(tmp_path).read_text())
    assert config["workspace_name"] == fake_azure.service.workspace_name
    assert config["amlstep_fake_service"]["endpoint"] == fake_azure.service.base_url


def test_the_v2_fixture_gives_a_real_mlclient(fake_azure_v2):
    pytest.importorskip("azure.ai.ml")
    from azure.ai.ml import MLClient

    assert isinstance(fake_azure_v2.ml_client, MLClient) and fake_azure_v2.workspace is None
    assert fake_azure_v2.ml_client.compute.get("cpu-cluster").size == "STANDARD_D2_V2"
    backend = fake_azure_v2.backend()
    assert (type(backend).__name__, backend.sdk) == ("AzureBackendV2", "v2")
