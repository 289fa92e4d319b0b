"""``amlstep fake-azure``: serves the executing fake on 127.0.0.1 and writes a config.json the backend recognises."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from framework.backends.azure import endpoint


def test_serves_until_stopped_and_writes_a_config_the_backend_recognises(tmp_path):
    config = tmp_path / "c.json"
    env = {**os.environ, "HOME": str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-c", "from framework.cli import main; main()", "fake-azure",
                                "--config-out", str(config)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not config.exists() and time.time() < deadline and process.poll() is None:
            time.sleep(0.2)
        assert config.exists(), process.communicate(timeout=5)
        data = json.loads(config.read_text())
        service = endpoint.fake_service(config)
        assert service is not None and service["endpoint"].startswith("http://127.0.0.1:")
        assert data["workspace_name"] == service["workspace_name"] and service["token"].count(".") == 2
        with urllib.request.urlopen(service["endpoint"] + "/discovery", timeout=5) as answer:
            assert json.loads(answer.read())["pipelines"] == service["endpoint"]
        assert endpoint.environment(service)["HTTPS_PROXY"] == service["endpoint"]
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "serving on http://127.0.0.1:" in out and "fake Azure ML service stopped" in err
    assert not config.exists()


def test_a_regular_config_is_not_taken_for_the_fake(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"subscription_id": "s", "resource_group": "r", "workspace_name": "w"}))
    assert endpoint.fake_service(config) is None and endpoint.fake_service(tmp_path) is None


def test_fake_azure_sdk_v2_serves_the_arm_api_over_tls_to_mlclient(tmp_path):
    pytest.importorskip("azure.ai.ml")
    from framework.backends.azure.sdk_v2 import client as client_v2
    from framework.backends.azure.sdk_v1.offline import patched_environ

    config = tmp_path / "c.json"
    env = {**os.environ, "HOME": str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-c", "from framework.cli import main; main()", "fake-azure", "--sdk",
                                "v2", "--config-out", str(config)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not config.exists() and time.time() < deadline and process.poll() is None:
            time.sleep(0.2)
        assert config.exists(), process.communicate(timeout=5)
        service = endpoint.fake_service(config)
        assert service["tls_endpoint"].startswith("https://127.0.0.1:")
        with patched_environ(client_v2.environment(service)):
            ml = client_v2.ml_client(config, service)  # what `amlstep run --sdk v2 --config c.json` builds
            assert ml.compute.get("cpu-cluster").size == "STANDARD_D2_V2"
            assert ml.workspaces.get(service["workspace_name"]).mlflow_tracking_uri.startswith("azureml://127.0.0.1:")
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "serving on https://127.0.0.1:" in out
    assert f"try: amlstep run examples/titanic --backend azure --sdk v2 --config {config}" in out


@pytest.fixture
def service_options(monkeypatch):
    """The options ``fake-azure`` starts its service with (the service itself is a stub that does not start)."""
    from emulator.azure_service import service

    seen = {}

    class Stub:
        def __init__(self, **options):
            seen.update(options)

        def start(self):
            raise OSError(98, "stub: not started")

    monkeypatch.setattr(service, "FakeAzureML", Stub)
    return seen


def test_web_files_and_no_web_fetch_reach_the_service(tmp_path, service_options):
    """``--web-file URL=PATH`` serves a local copy for a public URL; ``--no-web-fetch`` keeps the service offline."""
    from click.testing import CliRunner

    from emulator.azure_service import command

    seen = service_options
    copy = tmp_path / "titanic.csv"
    copy.write_text("a,b\n1,2\n")
    runner = CliRunner()
    result = runner.invoke(command.fake_azure_command, ["--web-file", f"https://x.example/t.csv={copy}",
                                                        "--no-web-fetch"])
    assert result.exit_code == 2 and "cannot listen" in result.output
    assert seen["web_files"] == {"https://x.example/t.csv": str(copy)} and seen["web_fetch"] is False

    result = runner.invoke(command.fake_azure_command, ["--web-file", "https://x.example/t.csv"])
    assert result.exit_code == 2 and "expected URL=PATH" in result.output
    result = runner.invoke(command.fake_azure_command, ["--web-file", f"https://x.example/t.csv={tmp_path / 'no'}"])
    assert result.exit_code == 2 and "is not a file" in result.output


def test_python_interpreters_given_and_found_reach_the_service(tmp_path, monkeypatch, service_options):
    """``--python VERSION=PATH`` names the interpreter an environment of that Python is built on, over those found."""
    from click.testing import CliRunner

    from emulator.azure_service import command, compute

    seen = service_options
    monkeypatch.setattr(compute, "find_pythons", lambda: {"3.9": "/found/python3.9"})
    runner = CliRunner()
    result = runner.invoke(command.fake_azure_command, ["--python", f"3.8={sys.executable}",
                                                        "--cache-dir", str(tmp_path / "envs")])
    assert result.exit_code == 2 and "cannot listen" in result.output
    assert seen["pythons"] == {"3.9": "/found/python3.9", "3.8": Path(sys.executable)}
    assert seen["cache_dir"] == str(tmp_path / "envs")

    result = runner.invoke(command.fake_azure_command, ["--python", "python3.8"])
    assert result.exit_code == 2 and "'python3.8': expected VERSION=PATH, e.g. 3.8=/usr/bin/python3.8" in result.output
    result = runner.invoke(command.fake_azure_command, ["--python", f"3.8={tmp_path / 'none'}"])
    assert result.exit_code == 2 and "is not an executable file" in result.output
