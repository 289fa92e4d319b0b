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
    from framework.backends.azure.backend import AzureBackend

    plugins = get_plugin_manager()
    validated = load_pipeline(TITANIC).validate(plugins)
    return AzureBackend(dry_run=True).compile(validated, plugins=plugins, params={"model_name": "Submitted"})
