"""``--sdk v1``: the Azure ML SDK v1 (azureml-core, azureml-pipeline), the default. A plugin like any other SDK.

``compiler`` (validated graph -> ``PythonScriptStep``/``AutoMLStep``/``Pipeline``), ``plan`` (those
objects read back into the plan), ``sdk`` (importing the SDK), ``offline`` (the workspace it builds
against), ``backend`` (workspace, compute, datasets, submission), ``session`` (a submitted run, for
the follower), ``entry`` (a step on the cluster, with ``azureml.core.Run``). This module imports none
of them, nor the SDK: it registers :data:`COMPILER` through ``register_azure_sdks``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ....hookspecs import hookimpl
from .. import plans
from ..compiled import CompiledPipeline, Compiler, compute_name

if TYPE_CHECKING:
    from ....manager import Plugins
    from ....pipeline import ValidatedPipeline


class CompilerV1(Compiler):
    """Azure ML SDK v1: ``PythonScriptStep``, ``AutoMLConfig`` + ``AutoMLStep``, ``Pipeline``.

    ``target``: the workspace's ``offline.Resources`` (None: a dry run, against an offline workspace
    from the ``offline_azure_workspace`` hook).
    """

    name = "v1"
    label = "Azure ML SDK v1 (azureml-core, azureml-pipeline)"
    packages = "azureml-core"

    def compile_pipeline(self, validated: ValidatedPipeline, *, plugins: Plugins,
                         params: Mapping[str, Any] | None = None, compute: str | None = None, reuse: bool = True,
                         target: Any = None) -> CompiledPipeline:
        from .compiler import build
        from .plan import render

        if target is not None:
            compiled = build(validated, target, plugins=plugins, params=params, compute=compute, reuse=reuse)
            compiled.plan = render(compiled, workspace=target.workspace.name)
            return compiled
        from .offline import offline_import, offline_resources
        from .sdk import require_azureml

        with offline_import():
            require_azureml()
        computes = [compute_name(validated, b, compute) for b in validated.steps]
        with offline_resources(plugins, computes, validated.datasets()) as resources:
            compiled = build(validated, resources, plugins=plugins, params=params, compute=compute, reuse=reuse)
            compiled.plan = render(compiled, workspace=plans.DRY_RUN_WORKSPACE)
        return compiled

    def backend(self, **options: Any) -> Any:
        from .backend import AzureBackend

        return AzureBackend(**options)

    def entry(self, argv: Sequence[str], *, plugins: Plugins) -> None:
        from .entry import main

        main(argv, plugins=plugins)


COMPILER = CompilerV1()


@hookimpl
def register_azure_sdks(register: Callable[[Compiler], None]) -> None:
    register(COMPILER)
