"""Shared pytest fixtures: every test gets a fresh workspace and a fresh plugin manager."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from framework import LocalWorkspace, Plugins, get_plugin_manager

REPO = Path(__file__).resolve().parent
SHARED_DATA = Path(os.environ.get("AMLSTEP_SHARED_DATA", REPO.parent / "shared" / "data"))

# Small AutoML budgets keep the suite fast; tests that need more say so.
FAST_AUTOML = {"iterations": "3", "experiment_timeout_minutes": "1"}


@pytest.fixture(scope="session", autouse=True)
def _temporary_files_under_pytest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Temporary files of the tests and of the processes they start go under pytest's own folder, which
    pytest prunes: a process a test kills on purpose leaves its temporary folder there, not in /tmp."""
    import tempfile

    folder = tmp_path_factory.getbasetemp() / "tmp"
    folder.mkdir(exist_ok=True)
    patch = pytest.MonkeyPatch()
    patch.setenv("TMPDIR", str(folder))
    patch.setattr(tempfile, "tempdir", str(folder))
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def _isolated_workspace_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test ever writes to the user's ~/.amlstep, nor to their MLflow server."""
    monkeypatch.setenv("AMLSTEP_WORKSPACE", str(tmp_path_factory.mktemp("default-ws")))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalWorkspace:
    """A fresh, empty local workspace (also set as $AMLSTEP_WORKSPACE)."""
    path = tmp_path / "workspace"
    monkeypatch.setenv("AMLSTEP_WORKSPACE", str(path))
    return LocalWorkspace(path)


@pytest.fixture
def plugins() -> Plugins:
    """A fresh plugin manager with the installed entry points."""
    return get_plugin_manager()


@pytest.fixture(scope="session")
def titanic_csv() -> Path:
    path = SHARED_DATA / "titanic.csv"
    if not path.is_file():
        pytest.fail(f"test data {path} is missing; set AMLSTEP_SHARED_DATA to the folder holding titanic.csv")
    return path


@pytest.fixture(scope="session")
def titanic_test_csv() -> Path:
    return SHARED_DATA / "titanic_test.csv"


@pytest.fixture
def titanic_workspace(workspace: LocalWorkspace, titanic_csv: Path) -> LocalWorkspace:
    """A workspace with titanic.csv registered as ``titanic_ds``."""
    workspace.register_dataset("titanic_ds", [str(titanic_csv)])
    return workspace


@pytest.fixture
def plugin_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Make an installed-looking distribution outside the repo: ``make(dist, module, source, entry_points)``.

    Writes ``module.py`` and a ``.dist-info`` with an ``amlstep`` entry point into a temporary
    folder on ``sys.path``, so ``importlib.metadata`` discovers it like a pip-installed plugin.
    """
    import importlib
    import sys
    import textwrap

    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    made: list[str] = []

    def make(dist: str, module: str, source: str, entry_points: dict[str, str] | None = None) -> Path:
        (root / f"{module}.py").write_text(textwrap.dedent(source))
        info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        lines = "\n".join(f"{name} = {target}" for name, target in (entry_points or {module: module}).items())
        (info / "entry_points.txt").write_text(f"[amlstep]\n{lines}\n")
        made.append(module)
        importlib.invalidate_caches()
        return root

    yield make
    for module in made:
        sys.modules.pop(module, None)
