import re

import pytest

from framework import PluginLoadError, StepSpec, get_plugin_manager, hookimpl

GOOD_PLUGIN = """
from framework import DataType, Input, Output, StepSpec, hookimpl

def double(data):
    return {"doubled": data * 2}

@hookimpl
def register_steps(register):
    register(StepSpec("double_it", double, inputs=[Input("data")], outputs=[Output("doubled")]))
"""


def test_bundled_plugins_come_through_the_entry_point_group(plugins):
    assert {"automl", "dataprep_titanic", "register_model"} <= set(plugins.steps)
    assert "local" in plugins.backends
    assert plugins.owner("dataprep_titanic") == "dataprep_titanic (amlstep)"


def test_third_party_distribution_is_discovered_and_runs_in_a_pipeline(plugin_distribution, workspace, tmp_path):
    import pandas as pd

    from framework import Dataset, Pipeline, Step, run_pipeline

    plugin_distribution("amlstep-double", "amlstep_double", GOOD_PLUGIN)
    found = get_plugin_manager()
    assert "double_it" in found.steps
    assert found.owner("double_it") == "amlstep_double (amlstep-double)"
    pd.DataFrame({"x": [1, 2]}).to_csv(tmp_path / "x.csv", index=False)
    workspace.register_dataset("xs", [str(tmp_path / "x.csv")])
    result = run_pipeline(Pipeline([Step("double_it", inputs={"data": Dataset("xs")})], outputs={"out": "doubled"}),
                          workspace=workspace, plugins=found)
    assert result.status == "Completed"
    assert pd.read_csv(f"{result.outputs['out']}/doubled.csv")["x"].tolist() == [2, 4]


def test_plugin_that_fails_to_import_names_entry_point_and_distribution(plugin_distribution):
    plugin_distribution("amlstep-broken", "amlstep_broken", "import not_a_module_anywhere\n")
    with pytest.raises(PluginLoadError, match=re.escape(
            "plugin entry point 'amlstep_broken' = 'amlstep_broken' from distribution 'amlstep-broken' failed to "
            "import: ModuleNotFoundError: No module named 'not_a_module_anywhere'")):
        get_plugin_manager()


def test_an_entry_point_name_taken_by_another_distribution_is_an_error(plugin_distribution):
    plugin_distribution("amlstep-my-titanic", "my_titanic", GOOD_PLUGIN, {"dataprep_titanic": "my_titanic"})
    with pytest.raises(PluginLoadError, match=re.escape(
            "plugin entry point 'dataprep_titanic' is declared twice: 'plugins.dataprep_titanic' by distribution "
            "'amlstep' and 'my_titanic' by distribution 'amlstep-my-titanic'; uninstall one or rename its entry "
            "point and step")):
        get_plugin_manager()


def test_a_step_name_taken_by_another_distribution_is_an_error(plugin_distribution):
    plugin_distribution("amlstep-clash", "amlstep_clash", GOOD_PLUGIN.replace('"double_it"', '"dataprep_titanic"'))
    with pytest.raises(PluginLoadError, match=re.escape(
            "step plugin 'dataprep_titanic' is registered twice: by ")):
        get_plugin_manager()


def test_misspelled_hook_is_an_error():
    class Typo:
        @hookimpl
        def register_step(self, register):
            pass

    with pytest.raises(PluginLoadError, match=re.escape("implements an unknown hook")):
        get_plugin_manager(entry_points=False, plugins=[Typo()])


def test_invalid_declaration_fails_when_the_plugin_loads():
    class Bad:
        @hookimpl
        def register_steps(self, register):
            register(StepSpec("bad name", lambda: None))

    with pytest.raises(PluginLoadError, match=re.escape(
            "failed to register: step plugin name 'bad name' is not valid")):
        get_plugin_manager(entry_points=False, plugins=[Bad()])


def test_step_registered_twice_is_an_error():
    class Twice:
        @hookimpl
        def register_steps(self, register):
            spec = StepSpec("same", lambda: {})
            register(spec)
            register(spec)

    with pytest.raises(PluginLoadError, match=re.escape("step plugin 'same' is registered twice")):
        get_plugin_manager(entry_points=False, plugins=[Twice()])


def test_registering_something_else_than_a_stepspec():
    class Wrong:
        @hookimpl
        def register_steps(self, register):
            register({"name": "x"})

    with pytest.raises(PluginLoadError, match=re.escape("register_steps expects StepSpec objects")):
        get_plugin_manager(entry_points=False, plugins=[Wrong()])


def test_unknown_step_and_backend_suggest_close_names(plugins):
    with pytest.raises(PluginLoadError, match=re.escape(
            "unknown step plugin 'dataprep_titanc' (did you mean 'dataprep_titanic'")):
        plugins.step("dataprep_titanc")
    with pytest.raises(PluginLoadError, match=re.escape("unknown backend 'lokal' (did you mean 'local'?)")):
        plugins.backend("lokal")


def test_each_manager_is_fresh():
    class Extra:
        @hookimpl
        def register_steps(self, register):
            register(StepSpec("extra_step", lambda: {}))

    with_extra = get_plugin_manager(plugins=[Extra()])
    assert "extra_step" in with_extra.steps
    assert "extra_step" not in get_plugin_manager().steps
