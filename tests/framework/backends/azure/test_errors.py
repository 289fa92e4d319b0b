"""Clear errors: the azure extra missing, no config.json, and the harness compile check."""

from __future__ import annotations

import importlib
import re

import pytest
from click.testing import CliRunner

from framework import BackendError, get_plugin_manager, load_pipeline
from framework.backends.azure.sdk_v1 import sdk
from framework.backends.azure.sdk_v1.backend import AzureBackend
from framework.cli import make_cli
from framework.testing import check_compiles_for_azure

from .conftest import TITANIC


@pytest.fixture
def no_azureml(monkeypatch):
    """Make the azureml packages look uninstalled."""
    real = importlib.import_module

    def fake_import(name, *args, **kwargs):
        if name.startswith("azureml"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(sdk.importlib, "import_module", fake_import)


def test_missing_sdk_names_the_extra(no_azureml):
    with pytest.raises(BackendError, match=re.escape("install it with: pip install 'amlstep[azure]'")):
        sdk.require_azureml()


def test_dry_run_without_the_sdk_exits_2_naming_the_extra(no_azureml):
    result = CliRunner().invoke(make_cli(), ["run", str(TITANIC), "--backend", "azure", "--dry-run"])
    assert result.exit_code == 2
    assert "the azure backend needs the Azure ML SDK v1" in result.output and "amlstep[azure]" in result.output


def test_harness_compile_check_skips_naming_the_extra_without_the_sdk(no_azureml):
    """A plugin's tests pass on the base install: the Azure check skips, saying what to install (issue 26)."""
    with pytest.raises(pytest.skip.Exception, match=re.escape("the Azure compile check cannot run: the azure backend "
                                                              "needs the Azure ML SDK v1")) as skipped:
        check_compiles_for_azure("dataprep_titanic")
    assert "pip install 'amlstep[azure]'" in str(skipped.value)


def test_harness_compile_check_runs_the_real_dry_run_compile():
    compiled = check_compiles_for_azure("register_model", sample_params={"model_name": "M"})
    assert type(compiled.steps[0].sdk_step).__name__ == "PythonScriptStep"
    assert compiled.plan["steps"][0]["plugin"] == "register_model"


def test_no_config_json_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(BackendError, match=re.escape(f"no Azure ML workspace config.json found; looked in "
                                                     f"{tmp_path} and its parent folders")):
        AzureBackend().workspace()


def test_config_path_that_does_not_exist(tmp_path):
    result = CliRunner().invoke(make_cli(), ["--workspace", str(tmp_path / "ws"), "run", str(TITANIC), "--backend",
                                             "azure", "--config", str(tmp_path / "nope.json"), "--quiet"])
    assert result.exit_code == 2
    assert f"Azure ML workspace config {str(tmp_path / 'nope.json')!r} does not exist" in result.output


def test_azure_options_are_refused_for_the_local_backend():
    result = CliRunner().invoke(make_cli(), ["run", str(TITANIC), "--compute", "gpu"])
    assert result.exit_code == 2 and "--compute applies to --backend azure only" in result.output


def test_resume_is_local_only():
    from framework import PipelineValidationError

    plugins = get_plugin_manager()
    with pytest.raises(PipelineValidationError, match="--resume works with the local backend only"):
        AzureBackend(dry_run=True).run(load_pipeline(TITANIC).validate(plugins), plugins=plugins, resume="abc")


def test_a_service_nothing_answers_at_is_named_with_where_it_was_looked_for():
    import requests

    from framework.backends.azure.errors import ServiceErrors

    refused = requests.exceptions.ConnectionError(
        "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: /discovery (Caused by "
        "NewConnectionError('<urllib3.connection.HTTPConnection object>: Failed to establish a new connection: "
        "[Errno 111] Connection refused'))")
    error = ServiceErrors().error("looking up compute target 'cpu-cluster'", refused)
    assert str(error) == (
        "could not reach the Azure ML service at 127.0.0.1:1 while looking up compute target 'cpu-cluster' "
        "(connection refused); check the network and the workspace's config.json, or, for a local fake, that "
        "`amlstep fake-azure` is running")
    answered = ServiceErrors().error("submitting", RuntimeError('{"error": {"message": "Quota exceeded"}}'))
    assert str(answered) == "Azure ML service error while submitting: Quota exceeded"
