"""A user who installed amlstep with pip (not a clone, not editable), with the base install only.

The wheel is built from this checkout and installed into a fresh venv, offline: amlstep's base
dependencies (and pytest, which the README says to install) come from this test venv's own
site-packages, through a folder of links that holds nothing else (no azure extra, no mlflow, no
editable amlstep). Then, from an empty folder, as the README says: ``amlstep init``, ``datasets
register``, ``amlstep run``; and ``new-plugin``, ``pip install -e``, ``pytest`` on what it wrote.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(*names: str) -> set[str]:
    """The installed distributions ``names`` need (base requirements, no extras), themselves included."""
    seen: set[str] = set()
    todo = [(name, ()) for name in names]
    while todo:
        name, extras = todo.pop()
        if (canonical(name), extras) in seen:
            continue
        seen.add((canonical(name), extras))  # type: ignore[arg-type]
        for text in metadata.distribution(name).requires or []:
            requirement = Requirement(text)
            environments = [{"extra": e} for e in extras] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(e) for e in environments):
                todo.append((requirement.name, tuple(sorted(requirement.extras))))
    return {name for name, _ in seen}  # type: ignore[misc]


def dependency_layer(folder: Path, distributions: set[str]) -> Path:
    """A folder of links to those distributions' files in this venv's site-packages, and nothing else."""
    site = Path(sysconfig.get_paths()["purelib"])
    folder.mkdir()
    for dist in metadata.distributions():
        if canonical(dist.metadata["Name"]) not in distributions:
            continue
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            if top.endswith(".pth") or top == "__pycache__" or not (site / top).exists():
                continue
            if not (folder / top).exists():
                (folder / top).symlink_to(site / top, target_is_directory=(site / top).is_dir())
    return folder


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> dict:
    """A fresh venv with amlstep installed from its wheel (non-editable); its bin folder and environment."""
    pytest.importorskip("setuptools", reason="building amlstep's wheel offline needs setuptools (the azure extra)")
    root = tmp_path_factory.mktemp("fresh-install")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv*", "__pycache__", "*.egg-info", "build",
                                                                "dist", ".pytest_cache", ".mypy_cache", ".ruff_cache"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    env.update({"PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "HOME": str(root / "home")})
    wheels = root / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                            "-w", str(wheels), str(source)], capture_output=True, text=True, env=env, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("amlstep-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=env, timeout=300)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True, env=env).stdout.strip()
    base = closure("amlstep") - {"amlstep"}
    layer = dependency_layer(root / "layer", base | closure("pytest") | closure("setuptools"))
    Path(purelib, "_base_dependencies.pth").write_text(f"{layer}\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-index", "--no-build-isolation"]
    installed = subprocess.run([*pip, str(wheel)], capture_output=True, text=True, env=env, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return {"bin": venv / "bin", "env": env, "pip": pip, "root": root, "layer": layer}


def run(fresh: dict, cwd: Path, *command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**fresh["env"], "AMLSTEP_WORKSPACE": str(fresh["root"] / "workspace"), "MPLBACKEND": "Agg",
           "PATH": f"{fresh['bin']}:{os.environ.get('PATH', '')}"}
    return subprocess.run(list(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_fresh_venv_has_the_base_install_only(fresh, tmp_path):
    done = run(fresh, tmp_path, str(fresh["bin"] / "python"), "-c",
               "import framework, importlib.util as u; print(framework.__file__); "
               "print([m for m in ('azureml', 'mlflow', 'amlstep_penguins') if u.find_spec(m)])")
    assert done.returncode == 0, done.stderr
    where, extras = done.stdout.splitlines()
    assert where.startswith(str(fresh["root"] / "venv")) and "site-packages" in where
    assert extras == "[]"


def test_init_then_run_from_an_empty_folder_offline(fresh, tmp_path, titanic_csv):
    amlstep = str(fresh["bin"] / "amlstep")
    written = run(fresh, tmp_path, amlstep, "init", "my-titanic", "--example", "titanic")
    assert written.returncode == 0, written.stderr
    assert (tmp_path / "my-titanic" / "pipeline.py").is_file()
    registered = run(fresh, tmp_path, amlstep, "datasets", "register", "titanic_ds", str(titanic_csv))
    assert registered.returncode == 0, registered.stderr
    done = run(fresh, tmp_path, amlstep, "run", "my-titanic", "-q", "-p", "iterations=2", "--json")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert '"status": "Completed"' in done.stdout
    tested = run(fresh, tmp_path, str(fresh["bin"] / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                 "my-titanic")
    assert tested.returncode == 0, tested.stdout[-3000:]
    # the plugin examples ship too, with their distribution
    penguins = run(fresh, tmp_path, amlstep, "init", "my-penguins", "--example", "penguins")
    assert penguins.returncode == 0, penguins.stderr
    assert (tmp_path / "my-penguins" / "amlstep-penguins" / "pyproject.toml").is_file()


def test_the_readme_own_dataset_in_minutes_on_the_base_install(fresh, tmp_path):
    """new-plugin, pip install -e, pytest: the generated tests pass; the Azure check skips, naming the extra."""
    amlstep = str(fresh["bin"] / "amlstep")
    written = run(fresh, tmp_path, amlstep, "new-plugin", "dataprep_wine", "plugins", "--label", "quality")
    assert written.returncode == 0, written.stderr
    installed = subprocess.run([*fresh["pip"], "--no-deps", "-e", str(tmp_path / "plugins" / "dataprep_wine")],
                               capture_output=True, text=True, env=fresh["env"], timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    tested = run(fresh, tmp_path, str(fresh["bin"] / "python"), "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                 "plugins/dataprep_wine/tests")
    assert tested.returncode == 0, tested.stdout[-3000:]
    assert "the Azure compile check cannot run" in tested.stdout and "amlstep[azure]" in tested.stdout
    assert re.search(r"\d+ passed, 1 skipped", tested.stdout), tested.stdout[-1000:]
