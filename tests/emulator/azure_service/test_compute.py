"""Environments built from what a job declares: the base layer, shipped wheels, requirements nobody has."""

from __future__ import annotations

import subprocess

import pytest

from emulator.azure_service.blobstore import BlobStore
from emulator.azure_service.compute import Compute, ImageBuildError, PackageIndex
from emulator.azure_service.engine import EnvironmentSpec

OFFLINE = PackageIndex(offline=True)


def test_the_base_layer_hides_editable_installs_and_amlstep_plugins(tmp_path):
    base = Compute(tmp_path).base_layer()
    names = {p.name for p in base.iterdir()}
    assert "pandas" in names and "sklearn" in names
    assert not any(n.startswith("__editable__") or n.endswith(".pth") for n in names)
    assert not any(n.startswith(("amlstep-", "amlstep_penguins")) for n in names)
    distributions = Compute(tmp_path).base_distributions()
    assert "pandas" in distributions and "amlstep" not in distributions


def test_an_environment_runs_its_shipped_wheel_not_the_checkout(tmp_path):
    from framework.backends.azure.shipping import WheelBuilder

    wheel = WheelBuilder(tmp_path / "wheels").wheel("amlstep")
    blob = BlobStore(tmp_path / "blobs", "acct")
    blob.put("azureml", f"pkgs/{wheel.filename}", wheel.path.read_bytes())
    compute = Compute(tmp_path / "cache", index=OFFLINE)
    spec = EnvironmentSpec("env", "3.11", ["--extra-index-url https://pypi.python.org/simple",
                                           f"https://acct.blob.core.windows.net/azureml/pkgs/{wheel.filename}"])
    python = compute.environment(spec, blob)
    done = subprocess.run([str(python), "-c", "import framework, pandas; print(framework.__file__)"],
                          capture_output=True, text=True, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert str(python.parent.parent) in done.stdout and "site-packages" in done.stdout
    assert compute.environment(spec, blob) == python and [b["built"] for b in compute.builds] == [True, False]


def test_a_wheel_that_is_not_in_the_blob_store_fails_the_build(tmp_path):
    blob = BlobStore(tmp_path / "blobs", "acct")
    spec = EnvironmentSpec("env", "3.11", ["https://acct.blob.core.windows.net/azureml/pkgs/gone-1.0-py3-none-any.whl"])
    with pytest.raises(ImageBuildError, match="could not fetch .*gone-1.0-py3-none-any.whl: no such blob"):
        Compute(tmp_path / "cache", index=OFFLINE).environment(spec, blob)


def test_a_version_the_base_does_not_have_fails_the_build(tmp_path):
    spec = EnvironmentSpec("env", "3.11", ["pandas==0.0.1"])
    with pytest.raises(ImageBuildError, match=r"No matching distribution found for pandas==0\.0\.1") as caught:
        Compute(tmp_path / "cache", index=OFFLINE).environment(spec, BlobStore(tmp_path / "blobs", "acct"))
    assert "(from versions: " in caught.value.log


def test_builds_leave_out_the_proxy_and_ca_a_client_in_the_same_process_set_for_the_fake(tmp_path, monkeypatch):
    """A test or script that talks to the fake from its own process has HTTPS_PROXY pointing at the fake: pip
    must reach the package index straight (or through the user's own proxy), not through the fake."""
    from emulator.azure_service.compute import _tool_env
    from emulator.azure_service.service import FakeAzureML

    with FakeAzureML(root=tmp_path / "service") as fake:
        for name, value in fake.environment_v2().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("HTTP_PROXY", "http://proxy.corp.example:3128")
        env = _tool_env(tmp_path / "home", drop=fake.compute.client_settings)
    assert "HTTPS_PROXY" not in env and "https_proxy" not in env and "REQUESTS_CA_BUNDLE" not in env
    assert env["HTTP_PROXY"] == "http://proxy.corp.example:3128"
