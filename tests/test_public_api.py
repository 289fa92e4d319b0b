"""The public API is one module per audience, documented name by name in docs/api.md; the bundled plugins,
the examples, the AutoML emulator and the scaffold's plugin import nothing else of ``framework``."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from framework.commands.scaffold import plugin_files

from tests.test_imports import imported_names, module_name, package_files

REPO = Path(__file__).resolve().parents[1]
PUBLIC = ("framework", "framework.testing", "framework.backends", "framework.reporting", "framework.automl",
          "framework.workspace")


def documented() -> dict[str, list[str]]:
    """docs/api.md: module heading -> the names listed under it (``- `Name```)."""
    text = (REPO / "docs" / "api.md").read_text()
    found = {}
    for chunk in re.split(r"^(?=## )", text, flags=re.M)[1:]:
        heading, _, body = chunk.partition("\n")
        found[heading[3:].strip()] = re.findall(r"^- `(\w+)`", body, flags=re.M)
    return found


def test_every_public_module_is_documented_name_by_name():
    assert list(documented()) == list(PUBLIC)
    for module, names in documented().items():
        public = importlib.import_module(module)
        assert sorted(names) == sorted(public.__all__), module
        assert all(hasattr(public, name) for name in public.__all__), module


def framework_imports(source: str, module: str) -> list[str]:
    return [name for _, name in imported_names(source, module) if name.split(".")[0] == "framework"]


def not_public(names: list[str]) -> list[str]:
    """The imported names that are neither a public module nor a public name of one (``framework.pipeline``,
    ``framework.io.read_tabular``, ``framework.backends.local``)."""
    def public(name: str) -> bool:
        parent, _, last = name.rpartition(".")
        return name in PUBLIC or (parent in PUBLIC and last in importlib.import_module(parent).__all__)

    return [name for name in names if not public(name)]


def bundled_sources() -> dict[str, Path]:
    files = {**package_files("plugins"), **package_files("emulator")}
    # the fake Azure ML service still reads a few framework internals (its client-side contract constants, the
    # tabular reader): issue 22 gives it readers of its own
    files = {m: p for m, p in files.items() if not m.startswith("emulator.azure_service")}
    for path in sorted((REPO / "examples").rglob("*.py")):
        files[f"examples:{path.relative_to(REPO)}"] = path
    return files


@pytest.mark.parametrize("module", sorted(bundled_sources()))
def test_bundled_plugins_and_examples_import_only_the_public_api(module):
    path = bundled_sources()[module]
    name = module if not module.startswith("examples:") else module_name(path).replace("/", ".")
    assert not_public(framework_imports(path.read_text(), name)) == []


def test_the_scaffolds_plugin_imports_only_the_public_api():
    for relative, content in plugin_files("dataprep_wine", label="quality").items():
        if relative.endswith(".py"):
            assert not_public(framework_imports(content, "dataprep_wine")) == [], relative


def test_the_check_catches_an_internal_import():
    assert not_public(["framework", "framework.Pipeline", "framework.reporting.Lineage", "framework.automl"]) == []
    assert not_public(["framework.pipeline", "framework.pipeline.Pipeline", "framework.io.read_tabular",
                       "framework.backends.local.LocalBackend", "framework.commands.lineage"]) == [
        "framework.pipeline", "framework.pipeline.Pipeline", "framework.io.read_tabular",
        "framework.backends.local.LocalBackend", "framework.commands.lineage"]
