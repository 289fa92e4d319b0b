"""``--sdk v2`` without a service: choosing the SDK, the dry run and its YAML, and the errors before anything runs."""

from __future__ import annotations

import json
import re
import sys

import pytest
from click.testing import CliRunner

from framework import BackendError, load_pipeline, run_pipeline
from framework.backends.azure import compilers
from framework.cli import make_cli

from .conftest import TITANIC

pytest.importorskip("azure.ai.ml")


def test_the_sdk_is_chosen_by_name():
    from framework import get_plugin_manager
    from framework.backends.azure.sdk_v1.backend import AzureBackend
    from framework.backends.azure.sdk_v2.backend import AzureBackendV2

    plugins = get_plugin_manager()
    assert compilers.names(plugins) == ("v1", "v2")
    assert type(compilers.get(plugins, "v1").backend()) is AzureBackend
    assert type(compilers.get(plugins, None).backend()) is AzureBackend
    assert type(compilers.get(plugins, "v2").backend()) is AzureBackendV2
    assert compilers.get(plugins, "v2").name == "v2"
    with pytest.raises(BackendError, match=re.escape("unknown Azure SDK 'v3'; choose one of: v1 (Azure ML SDK v1")):
        compilers.get(plugins, "v3")
    with pytest.raises(BackendError, match=re.escape("unknown Azure SDK 'v3'; choose one of: v1 (Azure ML SDK v1")):
        run_pipeline(load_pipeline(TITANIC), backend="azure", sdk="v3", dry_run=True, plugins=plugins)


def test_dry_run_prints_the_v2_plan_and_writes_the_job_yaml(tmp_path):
    target = tmp_path / "job" / "titanic.yml"
    target.parent.mkdir()
    result = CliRunner().invoke(make_cli(), ["run", str(TITANIC), "--backend", "azure", "--sdk", "v2", "--dry-run",
                                             "--json", "--yaml", str(target)])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert (plan["sdk"], plan["sdk_version"], plan["yaml"]) == ("Azure ML SDK v2", "v2", str(target))
    assert [s["node"] for s in plan["steps"]] == ["dataprep", "automl_classification", "register_model"]
    assert plan["steps"][0]["environment"]["wheels"][0]["name"] == "amlstep"
    from framework.backends.azure.sdk_v2.plan import load_yaml

    loaded = load_yaml(target)
    assert sorted(loaded.jobs) == ["automl_classification", "dataprep", "register_model"]
    assert (target.parent / "titanic.assets" / "environments" / "amlstep" / "Dockerfile").is_file()
    text = CliRunner().invoke(make_cli(), ["run", str(TITANIC), "--backend", "azure", "--sdk", "v2", "--dry-run"])
    assert text.exit_code == 0 and text.output.startswith("Azure ML SDK v2 plan for experiment 'titanic_automl'")


@pytest.mark.parametrize("args, message", [
    (["--sdk", "v2"], "--sdk applies to --backend azure only"),
    (["--backend", "azure", "--dry-run", "--yaml", "x.yml"],
     "--yaml writes the SDK v2 pipeline job YAML: use it with --dry-run --sdk v2"),
    (["--backend", "azure", "--sdk", "v2", "--yaml", "x.yml"],
     "--yaml writes the SDK v2 pipeline job YAML: use it with --dry-run --sdk v2"),
])
def test_sdk_options_are_checked(args, message):
    result = CliRunner().invoke(make_cli(), ["run", str(TITANIC), *args])
    assert result.exit_code == 2 and message in result.output


def test_a_missing_azure_ai_ml_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "azure.ai.ml", None)
    with pytest.raises(BackendError, match=re.escape(
            "--sdk v2 needs the Azure ML SDK v2 (azure-ai-ml is not importable: ")) as raised:
        run_pipeline(load_pipeline(TITANIC), backend="azure", sdk="v2", dry_run=True)
    assert str(raised.value).endswith("install it with: pip install 'amlstep[azure]'")


def test_no_workspace_config_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BackendError, match=re.escape(f"no Azure ML workspace config.json found; looked in {tmp_path} "
                                                     f"and its parent folders")):
        run_pipeline(load_pipeline(TITANIC), backend="azure", sdk="v2")
    missing = tmp_path / "nowhere.json"
    with pytest.raises(BackendError, match=re.escape(f"Azure ML workspace config {str(missing)!r} does not exist")):
        run_pipeline(load_pipeline(TITANIC), backend="azure", sdk="v2", config=str(missing))


def test_no_credential_says_how_to_sign_in(tmp_path):
    from azure.identity import DefaultAzureCredential

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"subscription_id": "00000000-0000-0000-0000-00000000000a", "resource_group": "rg",
                                  "workspace_name": "ws"}))
    # every source DefaultAzureCredential tries, but the managed identity endpoint (a network call)
    credential = DefaultAzureCredential(exclude_managed_identity_credential=True,
                                        exclude_visual_studio_code_credential=True)
    with pytest.raises(BackendError, match=re.escape(
            "no Azure credential could sign in while looking up compute target 'cpu-cluster' "
            "(DefaultAzureCredential: DefaultAzureCredential failed to retrieve a token")) as raised:
        run_pipeline(load_pipeline(TITANIC), backend="azure", sdk="v2", config=str(config), credential=credential,
                     workspace=tmp_path / "ws")
    assert str(raised.value).endswith("sign in with `az login`, or set AZURE_CLIENT_ID, AZURE_TENANT_ID and "
                                      "AZURE_CLIENT_SECRET for a service principal")
