"""Backends refuse options they do not know, with "did you mean", before anything runs."""

from __future__ import annotations

import re

import pytest

from framework import BackendError, Pipeline, Step, run_pipeline
from framework.backends import accepted_options, check_options


@pytest.mark.parametrize("backend, options, message", [
    ("local", {"dry_run": True, "sdk": "v3", "compte": "x"},
     "backend 'local' does not take options 'dry_run', 'sdk', 'compte'; its options: echo, from_step, only, sample, "
     "to_step, workspace"),
    ("local", {"echoo": None}, "backend 'local' does not take option 'echoo' (did you mean 'echo'?)"),
    ("azure", {"compte": "cpu"}, "backend 'azure' does not take option 'compte' (did you mean 'compute'?); its options: "
                                 "aml_workspace, compute, config, "),
    ("azure", {"sdk": "v2", "show_output": True}, "backend 'azure' does not take option 'show_output'; its options: "),
])
def test_an_unknown_option_is_refused_and_nothing_runs(toy_plugins, workspace, backend, options, message):
    with pytest.raises(BackendError, match=re.escape(message)):
        run_pipeline(Pipeline([Step("make_table")]), backend=backend, workspace=workspace, plugins=toy_plugins,
                     **options)
    assert workspace.list_runs() == []


def test_known_options_are_taken(toy_plugins, workspace):
    assert toy_plugins.backend("local", workspace=workspace, echo=None).name == "local"
    azure = toy_plugins.backend("azure", workspace=workspace, sdk="v2", dry_run=True, yaml=None)
    assert type(azure.chosen(toy_plugins)).__name__ == "AzureBackendV2"  # the SDK is chosen once the plugins are known


def test_a_factory_taking_any_option_checks_them_itself():
    def anything(**options):
        return options

    def two(workspace=None, *, echo=None):
        return workspace

    assert accepted_options(anything) is None
    assert accepted_options(two) == ("workspace", "echo")
    check_options("two", ["echo"], ["workspace", "echo"])
