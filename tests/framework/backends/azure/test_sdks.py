"""The Azure SDKs are plugins: a third one, registered by a plugin distribution, compiles the Titanic pipeline
through ``amlstep run --backend azure --sdk NAME --dry-run`` with no edit outside the plugin."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from framework import BackendError, PluginLoadError, get_plugin_manager, hookimpl, load_pipeline, run_pipeline
from framework.backends.azure import Compiler, compilers
from framework.cli import make_cli

from .conftest import TITANIC

# A third SDK, as a plugin author writes it: each step compiles to a plain dict, the plan is the one format.
TOY_SDK = '''
from framework import Dataset, hookimpl
from framework.backends.azure import CompiledPipeline, CompiledStep, Compiler, compile_steps, plans


class DictCompiler(Compiler):
    name = "toy"
    label = "Toy SDK (plain dicts)"
    packages = "toy-sdk"

    def compile_pipeline(self, validated, *, plugins, params=None, compute=None, reuse=True, target=None):
        values = validated.resolve_parameters(params)
        steps = []
        for binding, where in compile_steps(validated, compute=compute, reuse=reuse):
            step = {"step": binding.name, "plugin": binding.plugin, "compute": where,
                    "params": {k: str(v) for k, v in sorted(binding.resolve_params(values).items())}}
            steps.append(CompiledStep(binding, step, where, binding.spec.kind))
        compiled = CompiledPipeline(
            validated=validated, pipeline={"steps": [s.sdk_step for s in steps]}, steps=steps, parameters={},
            parameter_values=values, baked_parameters={}, pipeline_outputs=dict(validated.pipeline.outputs),
            datasets=validated.datasets(), experiment=validated.experiment, sdk_version=self.name)
        producers = {data: b.name for b in validated.steps for data in b.outputs.values()}
        edges = sorted([f"dataset:{source.name}" if isinstance(source, Dataset) else f"{producers[source]}.{source}",
                        f"{binding.name}.{port}"] for binding in validated.steps
                       for port, source in binding.inputs.items())
        compiled.plan = plans.plan(
            compiled, sdk=self.label, version=self.name, versions={"toy-sdk": "0.1"},
            workspace=plans.DRY_RUN_WORKSPACE, edges=edges,
            parameters=plans.pipeline_parameters(compiled, lambda name: "a value in the dict"),
            steps=[{"name": s.binding.name, "sdk_class": "dict", "plugin": s.binding.plugin,
                    "compute_target": s.compute_target, "allow_reuse": s.binding.allow_reuse,
                    "outputs": sorted(s.binding.outputs.values()), "toy": s.sdk_step} for s in compiled.steps])
        return compiled


@hookimpl
def register_azure_sdks(register):
    register(DictCompiler())
'''


@pytest.fixture
def toy_sdk(plugin_distribution):
    """The toy SDK, installed as a plugin distribution (discovered by its entry point)."""
    return plugin_distribution("amlstep-toy-sdk", "amlstep_toy_sdk", TOY_SDK)


def test_a_third_sdk_from_a_plugin_compiles_the_titanic_pipeline(toy_sdk):
    plugins = get_plugin_manager()
    assert compilers.names(plugins) == ("v1", "v2", "toy")
    cli = make_cli(plugins)
    args = ["run", str(TITANIC), "--backend", "azure", "--sdk", "toy", "--dry-run", "--compute", "gpu-cluster",
            "-p", "model_name=Toy"]
    shown = CliRunner().invoke(cli, args)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[0] == "Toy SDK (plain dicts) plan for experiment 'titanic_automl' (workspace: " \
                                           "(not contacted: dry run))"
    assert "  model_name = 'Toy' (default 'TitanicSurvivalInitial'; a value in the dict)" in shown.stdout
    assert "step AutoML_Classification: dict on gpu-cluster (plugin automl, allow_reuse=True)" in shown.stdout
    assert "  output     prepped_data" in shown.stdout
    assert "  dataprep.prepped_data -> AutoML_Classification.training_data" in shown.stdout
    plan = json.loads(CliRunner().invoke(cli, [*args, "--json"]).stdout)
    assert (plan["sdk"], plan["sdk_version"], plan["compute_targets"]) == ("Toy SDK (plain dicts)", "toy",
                                                                           ["gpu-cluster"])
    assert [s["toy"]["step"] for s in plan["steps"]] == ["dataprep", "AutoML_Classification", "register_model"]
    assert plan["steps"][2]["toy"]["params"]["model_name"] == "Toy"
    assert plan["datasets"][0]["name"] == "titanic_ds"


def test_the_sdk_choices_and_their_help_come_from_the_registered_sdks(toy_sdk):
    from framework.cli import backend_options

    plugins = get_plugin_manager()
    cli = make_cli(plugins)
    shown = CliRunner().invoke(cli, ["run", "--help"]).stdout
    assert "--sdk [v1|v2|toy]" in shown
    sdk = next(p for p in backend_options(plugins).params if p.name == "sdk")
    assert sdk.help == "azure: the Azure ML SDK to compile to: v1 (azureml-core), v2 (azure-ai-ml) or toy (toy-sdk) [v1]."
    refused = CliRunner().invoke(cli, ["run", str(TITANIC), "--backend", "azure", "--sdk", "v3", "--dry-run"])
    assert refused.exit_code == 2 and "'v3' is not one of 'v1', 'v2', 'toy'" in refused.output


def test_a_compiler_without_a_backend_compiles_but_does_not_submit(toy_sdk, tmp_path):
    with pytest.raises(BackendError, match=re.escape(
            "--sdk toy (Toy SDK (plain dicts)) compiles pipelines but cannot submit them; use --dry-run to see the plan")):
        run_pipeline(TITANIC, backend="azure", sdk="toy", workspace=tmp_path / "ws", plugins=get_plugin_manager())
    result = run_pipeline(TITANIC, backend="azure", sdk="toy", dry_run=True, workspace=tmp_path / "ws",
                          plugins=get_plugin_manager())
    assert result.status == "DryRun" and result.details["plan"]["sdk_version"] == "toy"


def test_the_amlstep_command_finds_the_sdk_by_its_entry_point(toy_sdk):
    """The installed console script, in a fresh process: nothing but the plugin's distribution on the path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(toy_sdk), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "framework.cli", "run", str(TITANIC), "--backend", "azure", "--sdk",
                           "toy", "--dry-run", "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sdk"] == "Toy SDK (plain dicts)"


def test_the_documented_sdk_example_is_a_working_plugin():
    from conftest import REPO

    body = (REPO / "docs" / "hooks.md").read_text().split("## register_azure_sdks(register)", 1)[1]
    example = re.search(r"```python\n(.*?)```", body, flags=re.S).group(1)
    namespace: dict = {}
    exec(compile(example, "hooks.md", "exec"), namespace)
    plugins = get_plugin_manager(plugins=[type("Example", (), {"register_azure_sdks": namespace["register_azure_sdks"]})])
    plan = plugins.backend("azure", sdk="dicts", dry_run=True).plan(load_pipeline(TITANIC).validate(plugins),
                                                                    plugins=plugins)
    assert [s["name"] for s in plan["steps"]] == ["dataprep", "AutoML_Classification", "register_model"]


@pytest.mark.parametrize("registered, message", [
    (lambda register: register(object()),
     "register_azure_sdks expects a named framework.backends.azure.Compiler"),
    (lambda register: register(type("V2Again", (Compiler,), {"name": "v2"})()),
     "Azure SDK 'v2' is registered twice: by plugin 'azure_sdk_v2' and by plugin 'again'"),
])
def test_what_a_plugin_registers_is_checked(registered, message):
    class Again:
        @hookimpl
        def register_azure_sdks(self, register):
            registered(register)

    plugins = get_plugin_manager()
    plugins.pm.register(Again(), name="again")
    with pytest.raises(PluginLoadError, match=re.escape(message)):
        compilers.registered(plugins)


def test_a_v1_dry_run_without_an_offline_workspace_says_so():
    from framework.backends.azure.sdk_v1.backend import AzureBackend

    plugins = get_plugin_manager()
    plugins.pm.unregister(name="azure_offline_workspace")  # the emulator's answer to offline_azure_workspace
    with pytest.raises(BackendError, match=re.escape(
            "--dry-run with --sdk v1 builds the SDK v1 objects against an offline Azure ML workspace, and no installed "
            "plugin provides one (the offline_azure_workspace hook")):
        AzureBackend(dry_run=True).compile(load_pipeline(TITANIC).validate(plugins), plugins=plugins)
