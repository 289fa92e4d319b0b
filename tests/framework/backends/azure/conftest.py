"""Fixtures for the Azure backend tests: compiled Titanic objects, offline."""

from __future__ import annotations

import pytest

from conftest import REPO
from framework import get_plugin_manager, load_pipeline

TITANIC = REPO / "examples" / "titanic"
PENGUINS = REPO / "examples" / "penguins"


@pytest.fixture(scope="module")
def titanic_compiled():
    """The Titanic pipeline compiled offline (dry run), with model_name given at submit time."""
    from framework.backends.azure.sdk_v1.backend import AzureBackend

    plugins = get_plugin_manager()
    validated = load_pipeline(TITANIC).validate(plugins)
    return AzureBackend(dry_run=True).compile(validated, plugins=plugins, params={"model_name": "Submitted"})


@pytest.fixture
def toy_distribution(tmp_path, monkeypatch):
    """The toy steps as an installed distribution ``amlstep-toys`` (a dist-info without RECORD), loaded by entry point."""
    import shutil
    import sys
    from pathlib import Path

    site = tmp_path / "toy-site"
    site.mkdir()
    shutil.copy(Path(__file__).parents[3] / "toy_steps.py", site / "amlstep_toys.py")
    info = site / "amlstep_toys-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: amlstep-toys\nVersion: 0.1\nRequires-Dist: pandas\n")
    (info / "entry_points.txt").write_text("[amlstep]\namlstep_toys = amlstep_toys\n")
    monkeypatch.syspath_prepend(str(site))
    import importlib

    importlib.invalidate_caches()
    yield get_plugin_manager()
    sys.modules.pop("amlstep_toys", None)
