"""Shipping code to the cluster: wheels built here (never fetched by name), pinned requirements, the hash check."""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import sys
import textwrap
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from conftest import REPO
from framework import BackendError, Pipeline, Step, get_plugin_manager
from framework.backends.azure.shipping import WheelBuilder, pinned_requirements


def wheel_files(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_an_editable_install_ships_its_project_folder_as_it_is_on_disk(tmp_path):
    before = sorted(p.name for p in REPO.iterdir())
    wheel = WheelBuilder(tmp_path / "a").wheel("amlstep")
    files = wheel_files(wheel.path)
    assert files["framework/backends/azure/entry.py"] == (REPO / "framework/backends/azure/entry.py").read_bytes()
    assert "plugins/dataprep_titanic/__init__.py" in files and "emulator/azure_service/engine.py" in files
    assert wheel.path.name == f"amlstep-{metadata.version('amlstep')}-0sha{wheel.sha256[:12]}-py3-none-any.whl"
    assert hashlib.sha256(wheel.path.read_bytes()).hexdigest() == wheel.sha256
    assert wheel.source == f"project folder {REPO}"
    assert sorted(p.name for p in REPO.iterdir()) == before          # built from a copy: no build/ left behind
    # reproducible: another cache, another build, the same bytes
    assert WheelBuilder(tmp_path / "b").wheel("amlstep").sha256 == wheel.sha256


def make_installed(site: Path, name: str, module: str, source: str, *, record: bool,
                   requires: tuple[str, ...] = ()) -> Path:
    """A distribution installed the way pip leaves it (dist-info, optionally RECORD), plugin ``module``."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n"
                                   + "".join(f"Requires-Dist: {r}\n" for r in requires))
    (info / "entry_points.txt").write_text(f"[amlstep]\n{module} = {module}\n")
    (info / "INSTALLER").write_text("pip\n")
    if record:
        (info / "RECORD").write_text(f"{module}.py,,\n{info.name}/METADATA,,\n{info.name}/entry_points.txt,,\n"
                                     f"{info.name}/INSTALLER,,\n{info.name}/RECORD,,\n../../bin/tool,,\n")
    return info


PLUGIN = '''
    from framework import DataType, Output, StepSpec, hookimpl

    MARKER = "{marker}"


    def run(context):
        import pandas as pd

        print("toy plugin says", MARKER)
        return {{"out": pd.DataFrame({{"marker": [MARKER]}})}}


    @hookimpl
    def register_steps(register):
        register(StepSpec(name="{name}", run=run, outputs=[Output("out", DataType.TABULAR)]))
'''


@pytest.fixture
def installed(tmp_path, monkeypatch):
    made = []

    def install(name, module, marker, *, record=True, requires=()):
        site = tmp_path / f"site-{module}"
        info = make_installed(site, name, module, PLUGIN.format(marker=marker, name=module), record=record,
                              requires=requires)
        monkeypatch.syspath_prepend(str(site))
        importlib.invalidate_caches()
        made.append(module)
        return site, info

    yield install
    for module in made:
        sys.modules.pop(module, None)


def test_a_regular_install_is_repacked_from_its_recorded_files(installed, tmp_path):
    site, info = installed("toy-repack", "toy_repack", "v1")
    wheel = WheelBuilder(tmp_path / "cache").wheel("toy-repack")
    files = wheel_files(wheel.path)
    assert sorted(files) == ["toy_repack-0.1.dist-info/METADATA",
                             "toy_repack-0.1.dist-info/RECORD", "toy_repack-0.1.dist-info/WHEEL",
                             "toy_repack-0.1.dist-info/entry_points.txt", "toy_repack.py"]
    assert files["toy_repack.py"] == (site / "toy_repack.py").read_bytes()
    record = files["toy_repack-0.1.dist-info/RECORD"].decode()
    digest = hashlib.sha256(files["toy_repack.py"]).digest()
    import base64

    assert f"toy_repack.py,sha256={base64.urlsafe_b64encode(digest).decode().rstrip('=')}," in record
    assert WheelBuilder(tmp_path / "other").wheel("toy-repack").sha256 == wheel.sha256


def test_a_dist_info_without_record_ships_the_modules_its_entry_points_name(installed, tmp_path):
    installed("toy-norecord", "toy_norecord", "v1", record=False)
    files = wheel_files(WheelBuilder(tmp_path / "cache").wheel("toy-norecord").path)
    assert "toy_norecord.py" in files and "toy_norecord-0.1.dist-info/entry_points.txt" in files


def test_requirements_are_pinned_to_the_installed_versions(installed):
    installed("toy-pins", "toy_pins", "v1", requires=("pandas>=1", "amlstep", "numpy; python_version < '3'"))
    pins = pinned_requirements(["amlstep", "toy-pins"])
    assert f"pandas=={metadata.version('pandas')}" in pins
    assert f"azureml-core=={metadata.version('azureml-core')}" in pins         # the step runtime
    assert not any(p.startswith("amlstep==") for p in pins)                      # shipped as a wheel instead
    assert pins == sorted(pins, key=str.lower) and len(pins) == len(set(pins))


def test_a_requirement_that_is_not_installed_cannot_be_pinned(installed):
    installed("toy-missing", "toy_missing", "v1", requires=("no-such-package-anywhere>=1",))
    with pytest.raises(BackendError, match=re.escape("distribution 'toy-missing' requires 'no-such-package-anywhere', "
                                                     "which is not installed here, so its version cannot be pinned for "
                                                     "Azure; pip install no-such-package-anywhere")):
        pinned_requirements(["toy-missing"])


def make_editable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, marker: str,
                  backend: str = "setuptools.build_meta") -> Path:
    """A plugin project installed in editable mode (``pip install -e`` leaves a dist-info with direct_url.json)."""
    project = tmp_path / f"project-{module}"
    project.mkdir()
    (project / f"{module}.py").write_text(textwrap.dedent(PLUGIN.format(marker=marker, name=module)))
    (project / "pyproject.toml").write_text(textwrap.dedent(f'''
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "{backend}"

        [project]
        name = "{module.replace('_', '-')}"
        version = "0.1"
        dependencies = ["pandas"]

        [project.entry-points.amlstep]
        {module} = "{module}"

        [tool.setuptools]
        py-modules = ["{module}"]
    '''))
    site = tmp_path / f"site-{module}"
    info = site / f"{module}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n"
                                   f"Requires-Dist: pandas\n")
    (info / "entry_points.txt").write_text(f"[amlstep]\n{module} = {module}\n")
    (info / "direct_url.json").write_text(json.dumps({"url": project.as_uri(), "dir_info": {"editable": True}}))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(project))                       # what the editable .pth does
    importlib.invalidate_caches()
    return project


def test_a_missing_build_backend_is_named(tmp_path, monkeypatch):
    make_editable(tmp_path, monkeypatch, "toy_nobackend", "v1", backend="no_such_backend_module")
    with pytest.raises(BackendError, match=re.escape("its build backend 'no_such_backend_module' is not installed "
                                                     "here: pip install no_such_backend_module")):
        WheelBuilder(tmp_path / "cache").wheel("toy-nobackend")


def test_a_setuptools_that_cannot_build_wheels_says_which_one_can(tmp_path, monkeypatch):
    """setuptools before 70.1 builds wheels only with the ``wheel`` package beside it (a bare venv's setuptools 65)."""
    project = make_editable(tmp_path, monkeypatch, "toy_oldtools", "v1", backend="old_setuptools")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('build-backend = "old_setuptools"',
                                                       'build-backend = "old_setuptools"\nbackend-path = ["."]'))
    (project / "old_setuptools.py").write_text(
        "import sys\n"
        "def build_wheel(directory, *args, **kwargs):\n"
        "    sys.stderr.write(\"usage: setup.py [options]\\nerror: invalid command 'bdist_wheel'\\n\")\n"
        "    raise SystemExit(1)\n")
    with pytest.raises(BackendError, match=re.escape("the setuptools installed here builds no wheel on its own: "
                                                     "pip install 'setuptools>=70.1'")):
        WheelBuilder(tmp_path / "cache").wheel("toy-oldtools")


def one_step(module: str) -> Pipeline:
    return Pipeline([Step(module, outputs={"out": f"{module}_out"})], experiment=module, compute_target="cpu-cluster")


@pytest.mark.fake_azure()
def test_a_plugin_edited_after_install_ships_the_edited_code(fake_azure, tmp_path, monkeypatch):
    project = make_editable(tmp_path, monkeypatch, "toy_edited", "before the edit")
    try:
        first = fake_azure.submit(one_step("toy_edited"), plugins=get_plugin_manager())
        assert first.status == "Completed", first.error
        assert "toy plugin says before the edit" in fake_azure.step_log(fake_azure.step_runs()["toy_edited"])
        source = project / "toy_edited.py"
        source.write_text(source.read_text().replace("before the edit", "after the edit"))
        # not reinstalled, and this process still holds the old module: the code on disk is what ships
        second = fake_azure.submit(one_step("toy_edited"), plugins=get_plugin_manager())
        assert second.status == "Completed", second.error
        assert [s.reused for s in second.steps] == [False]
        assert "toy plugin says after the edit" in fake_azure.step_log(fake_azure.step_runs()["toy_edited"])
    finally:
        sys.modules.pop("toy_edited", None)


@pytest.mark.fake_azure()
def test_a_plugin_shadowing_its_installed_distribution_fails_with_the_hash_error(fake_azure, installed, tmp_path,
                                                                                monkeypatch):
    installed("toy-shadowed", "toy_shadowed", "installed copy")
    shadow = tmp_path / "checkout"
    shadow.mkdir()
    (shadow / "toy_shadowed.py").write_text(textwrap.dedent(PLUGIN.format(marker="edited checkout",
                                                                          name="toy_shadowed")))
    monkeypatch.syspath_prepend(str(shadow))           # the developer's copy wins the import; pip's copy ships
    importlib.invalidate_caches()
    sys.modules.pop("toy_shadowed", None)
    result = fake_azure.submit(one_step("toy_shadowed"), plugins=get_plugin_manager())
    assert result.status == "Failed"
    assert re.search(r"step 'toy_shadowed' failed on Azure: User program failed with StepExecutionError: step "
                     r"'toy_shadowed': the code of plugin 'toy_shadowed' here has source hash [0-9a-f]{16}, but the "
                     r"submission was compiled from source hash [0-9a-f]{16}", result.error), result.error
    assert "toy plugin says" not in fake_azure.step_log(fake_azure.step_runs()["toy_shadowed"])
