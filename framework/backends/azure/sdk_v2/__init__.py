"""``--sdk v2``: the Azure ML SDK v2 (azure-ai-ml). A plugin like any other SDK.

``compiler`` (validated graph -> ``PipelineJob`` of command components and AutoML nodes), ``automl``
(AutoML settings in SDK v2's names), ``plan`` (the job read back into the plan; its YAML),
``client`` (credentials, ``MLClient``), ``session`` (compute, data assets, jobs, MLflow: the
workspace and a submitted job, for the follower), ``backend`` (submission, downloads), ``entry`` (a
step on the cluster, with MLflow). This module imports none of them, nor the SDK: it registers
:data:`COMPILER` through ``register_azure_sdks``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ....errors import BackendError
from ....hookspecs import hookimpl
from .. import plans
from ..compiled import CompiledPipeline, Compiler

if TYPE_CHECKING:
    import click

    from ....manager import Plugins
    from ....pipeline import ValidatedPipeline


@dataclass(frozen=True)
class Target:
    """Where an SDK v2 job is compiled for: the folder its code and environment build contexts are written into
    (it must live until the job is submitted), the workspace the plan names, and the data asset versions a
    submission reads (pinned when the datasets were made sure of; else ``name@latest``)."""

    assets: Path
    workspace: str = plans.DRY_RUN_WORKSPACE
    versions: Mapping[str, str] | None = None


class CompilerV2(Compiler):
    """Azure ML SDK v2: a ``PipelineJob`` of ``command`` components and ``automl`` nodes.

    ``target``: a :class:`Target` (None: the files go to a temporary folder, removed once the plan is read).
    """

    name = "v2"
    label = "Azure ML SDK v2 (azure-ai-ml)"
    packages = "azure-ai-ml"

    def compile_pipeline(self, validated: ValidatedPipeline, *, plugins: Plugins,
                         params: Mapping[str, Any] | None = None, compute: str | None = None, reuse: bool = True,
                         target: Any = None) -> CompiledPipeline:
        from .compiler import build
        from .plan import render

        if target is None:  # a plan only: the assets are written, described, then removed
            with tempfile.TemporaryDirectory(prefix="amlstep-v2-assets-") as folder:
                return self.compile_pipeline(validated, plugins=plugins, params=params, compute=compute, reuse=reuse,
                                             target=Target(Path(folder)))
        compiled = build(validated, plugins=plugins, assets=target.assets, params=params, compute=compute, reuse=reuse,
                         versions=target.versions)
        compiled.plan = render(compiled, workspace=target.workspace)
        return compiled

    def backend(self, **options: Any) -> Any:
        from .backend import AzureBackendV2

        return AzureBackendV2(**options)

    def run_options(self) -> Sequence[click.Parameter]:
        import click

        return [click.Option(["--yaml", "yaml_file"], metavar="FILE", type=click.Path(dir_okay=False),
                             help="azure --sdk v2 --dry-run: also write the pipeline job YAML (for az ml job create "
                                  "--file).")]

    def backend_options(self, values: Mapping[str, Any], sdk: str | None) -> dict[str, Any]:
        if not values.get("yaml_file"):
            return {}
        if sdk != self.name or not values.get("dry_run"):
            raise BackendError("--yaml writes the SDK v2 pipeline job YAML: use it with --dry-run --sdk v2")
        return {"yaml": values["yaml_file"]}

    def plan_notes(self, plan: Mapping[str, Any]) -> list[str]:
        from .plan import notes

        return notes(plan)

    def entry(self, argv: Sequence[str], *, plugins: Plugins) -> None:
        from .entry import main

        main(argv, plugins=plugins)


COMPILER = CompilerV2()


@hookimpl
def register_azure_sdks(register: Callable[[Compiler], None]) -> None:
    register(COMPILER)
