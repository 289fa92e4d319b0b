"""The Azure backend whatever the SDK: options, compiling, dry runs, the local run record, following a run, hooks.

:class:`AzureBackendBase` does what does not depend on the SDK. It compiles through its SDK's
:class:`~.compiled.Compiler` (``compilers``), answers ``--dry-run`` with the plan (``plans``), and
:meth:`~AzureBackendBase.track` records a submitted run in the local run history (backend ``azure``)
and follows it (``follower``): the step lifecycle hooks fire as the service reports step status.
Each SDK's backend (``sdk_v1.backend``, ``sdk_v2.backend``) reaches the workspace (compute,
datasets), submits and downloads; a compiler without one compiles only. :class:`AzureBackendChoice`
is what ``--backend azure`` builds: it finds the SDK by name once the plugins are known.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, TextIO

from ...errors import BackendError, PipelineValidationError
from ...events import PipelineEvents
from ...pipeline import Dataset, ValidatedPipeline
from ...results import PipelineRunResult, StepRunResult
from ...workspace import LocalWorkspace
from . import endpoint
from .follower import Follower, Session

if TYPE_CHECKING:
    from ...manager import Plugins
    from .compiled import CompiledPipeline, CompiledStep, Compiler

SHA256_TAG = "amlstep_sha256"  # a data asset's content hash, as amlstep tags what it uploads


def unregistered(dataset: Dataset) -> BackendError:
    """The error for a dataset the workspace lacks and the pipeline gives no sources to register it from."""
    return BackendError(f"dataset {dataset.name!r}" + (f" version {dataset.version}" if dataset.version else "")
                        + " is not registered in the workspace and the pipeline gives no sources to register it from")


@dataclass(frozen=True)
class Provisioning:
    """How a missing compute cluster is created (the seed's ``AmlCompute.provisioning_configuration``)."""

    vm_size: str = "STANDARD_D2_V2"
    min_nodes: int = 0
    max_nodes: int = 1
    idle_seconds_before_scaledown: int | None = None
    timeout_minutes: int = 20


class AzureBackendBase:
    """What the Azure backend does whatever the SDK: options, compiling, the local run record, following a run, hooks.

    ``compiler``: the SDK's :class:`~.compiled.Compiler` (an SDK's own backend class knows its own). A
    subclass per SDK reaches the workspace and submits (:meth:`submit_pipeline`); :meth:`track` records
    the submitted run locally, fires the pipeline and step hooks as the service reports progress
    (through the SDK's session), records statuses and downloads the outputs.
    """

    name = "azure"
    sdk = "v1"

    def __init__(self, workspace: LocalWorkspace | str | Path | None = None, *, echo: TextIO | None = None,
                 dry_run: bool = False, compute: str | None = None, config: str | Path | None = None,
                 wait: bool = True, download: bool = True, download_dir: str | Path | None = None,
                 provisioning: Provisioning | None = None, poll_seconds: float | None = None,
                 compiler: Compiler | None = None, **unknown: Any) -> None:
        if unknown:
            from ..options import check_options, named_options

            check_options("azure", unknown, [*named_options(type(self).__init__), "sdk"])
        self._local = workspace
        self.echo = echo
        self.dry_run = dry_run
        self.compute = compute
        self.config = config
        self.wait = wait
        self.download = download
        self.download_dir = Path(download_dir) if download_dir else None
        self.provisioning = provisioning or Provisioning()
        self.poll_seconds = poll_seconds
        self._service = None if dry_run else endpoint.fake_service(config)
        self._compiler = compiler
        if compiler is not None:
            self.sdk = compiler.name

    @property
    def compiler(self) -> Compiler:
        """This backend's SDK (its :class:`~.compiled.Compiler`)."""
        if self._compiler is None:
            raise BackendError(f"the azure backend of SDK {self.sdk!r} has no compiler")
        return self._compiler

    # -- compile / plan ----------------------------------------------------------------------------
    def compile(self, pipeline: ValidatedPipeline, *, plugins: Plugins, params: Mapping[str, Any] | None = None,
                reuse: bool = True) -> CompiledPipeline:
        """The SDK's objects and their plan (``.plan``), built offline: contacts nothing."""
        return self.compiler.compile_pipeline(pipeline, plugins=plugins, params=params, compute=self.compute,
                                              reuse=reuse)

    def plan(self, pipeline: ValidatedPipeline, *, plugins: Plugins,
             params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The compiled plan: every SDK object built, nothing contacted."""
        return self.compile(pipeline, plugins=plugins, params=params).plan

    def format_plan(self, plan: Mapping[str, Any]) -> str:
        """The plan for a terminal."""
        from .plans import format_text

        return format_text(plan, self.compiler.plan_notes(plan))

    def dry_run_result(self, compiled: CompiledPipeline) -> PipelineRunResult:
        return PipelineRunResult(run_id="dry-run", experiment=compiled.experiment, status="DryRun", backend=self.name,
                                 params=compiled.parameter_values, details={"plan": compiled.plan})

    # -- run ---------------------------------------------------------------------------------------
    def run(self, pipeline: ValidatedPipeline, *, plugins: Plugins, params: Mapping[str, Any] | None = None,
            reuse: bool = True, resume: str | None = None) -> PipelineRunResult:
        """Submit the pipeline, follow it and download its outputs; with ``dry_run``, only its plan."""
        if resume is not None:
            raise PipelineValidationError("--resume works with the local backend only; on Azure, resubmit: "
                                          "unchanged steps are reused by the service")
        if self.dry_run:
            return self.dry_run_result(self.compile(pipeline, plugins=plugins, params=params, reuse=reuse))
        return self.submit_pipeline(pipeline, plugins=plugins, params=params, reuse=reuse)

    def submit_pipeline(self, pipeline: ValidatedPipeline, *, plugins: Plugins, params: Mapping[str, Any] | None,
                        reuse: bool) -> PipelineRunResult:
        """Reach the workspace, compile for it and submit (each SDK's backend); here: a compiler only."""
        raise BackendError(f"--sdk {self.sdk} ({self.compiler.label}) compiles pipelines but cannot submit them; "
                           f"use --dry-run to see the plan")

    def track(self, compiled: CompiledPipeline, run_id: str, *, plugins: Plugins | None, started: float,
              workspace_name: str | None, portal_url: str | None, step_properties: Callable[[CompiledStep], Any],
              session: Session, run: Any, download: Callable[[PipelineRunResult, Follower], dict[str, str]],
              ) -> PipelineRunResult:
        """Record a submitted run locally, follow it to its end (hooks fire), download its outputs.

        ``step_properties(step)`` adds SDK-specific properties to a step's local record; the
        :class:`Follower` follows the run through the SDK's ``session`` (``run``: the SDK's handle of it);
        ``download(result, follower)`` fetches the pipeline outputs.
        """
        values = compiled.parameter_values
        local = self._local_workspace()
        record = local.create_run(
            run_type="pipeline", name=compiled.experiment, experiment=compiled.experiment, run_id=run_id,
            backend=self.name, status="Running", params=dict(values),
            properties={"steps": [s.binding.name for s in compiled.steps],
                        "pipeline_outputs": dict(compiled.pipeline_outputs),
                        "source": compiled.validated.pipeline.source, "azure_run_id": run_id,
                        "azure_workspace": workspace_name, "sdk": self.sdk, "portal_url": portal_url})
        step_records = {}
        for step in compiled.steps:
            step_records[step.binding.name] = local.create_run(
                run_type="step", name=step.binding.name, experiment=compiled.experiment, parent_id=record.id,
                backend=self.name, status="NotStarted",
                properties={"plugin": step.binding.plugin, "kind": step.binding.spec.kind,
                            "sdk_class": type(step.sdk_step).__name__, "compute_target": step.compute_target,
                            "reuse": step.reuse, "azure_workspace": workspace_name, "sdk": self.sdk,
                            **step_properties(step)})
        self._say(f"submitted pipeline run {run_id} to experiment {compiled.experiment!r}")
        hook = plugins.hook if plugins is not None else None
        pipeline_events = PipelineEvents(hook, run_id, compiled.validated.pipeline, values, self.name)
        pipeline_events.started()
        result = PipelineRunResult(run_id=run_id, experiment=compiled.experiment, status="Running",
                                   backend=self.name, params=dict(values),
                                   steps=[StepRunResult(name, r.id, "NotStarted") for name, r in step_records.items()],
                                   details={"azure_run_id": run_id, "portal_url": portal_url, "sdk": self.sdk})
        if not self.wait:
            result.details["wait"] = False
            return result
        events = pipeline_events.steps
        try:
            following = Follower(session, run, run_id, {s.binding.name: s.binding for s in compiled.steps},
                                 step_records, local, events, self._poll())
            status = following.follow()
            result.status = status
            result.duration = time.time() - started
            for step_result in result.steps:
                seen = following.steps.get(step_result.name)
                if seen is None:
                    step_result.status = "NotStarted" if status != "Completed" else "Completed"
                    local.update_run(step_records[step_result.name].id, status=step_result.status)
                    continue
                step_result.status = seen["status"]
                step_result.reused = seen["reused"]
                step_result.reused_from = seen.get("reused_from_local") or seen.get("reused_from")
                step_result.duration = seen.get("duration")
                if seen["reused"]:
                    step_result.reasons = [f"reused Azure step run {seen['reused_from']} (the service found the "
                                           f"same {getattr(following, 'reused_what', 'module and inputs')})"]
                step_result.error = seen.get("error")
            if status != "Completed":
                result.error = following.failure_message(status)
            if status == "Completed" and self.download:
                result.outputs = download(result, following)
            local.update_run(record.id, status=result.status, error=result.error, outputs=dict(result.outputs))
        except BaseException as exc:  # the Azure run goes on; say locally that amlstep stopped following it
            changes = {"error": f"amlstep stopped following Azure run {run_id} (it may still be running on Azure): "
                                f"{type(exc).__name__}: {exc}"}
            if not isinstance(exc, KeyboardInterrupt):
                changes["status"] = "Failed"
            local.update_run(record.id, **changes)
            pipeline_events.failed(exc)
            raise
        pipeline_events.ended(result)
        return result


    # -- reuse, explained --------------------------------------------------------------------------
    def explain_reuse(self, pipeline: ValidatedPipeline, *, plugins: Plugins, params: Mapping[str, Any] | None = None,
                      reuse: bool = True) -> list[dict[str, Any]]:
        """Whether Azure would reuse each step now, and if not, why: ``amlstep explain-reuse --backend azure``.

        The pipeline is compiled offline; its steps are compared with the Azure step runs recorded in
        the local run history (only those of the workspace ``--config`` names, when given): see ``reuse``.
        """
        from .reuse import config_workspace, explain

        offline = copy.copy(self)
        offline.dry_run = True
        compiled = offline.compile(pipeline, plugins=plugins, params=params, reuse=reuse)
        workspace_name = (self._service or {}).get("workspace_name") or config_workspace(self.config)
        return explain(compiled, pipeline, self._local_workspace(), workspace_name=workspace_name, reuse=reuse)

    # -- helpers ------------------------------------------------------------------------------------
    def _local_workspace(self) -> LocalWorkspace:
        if not isinstance(self._local, LocalWorkspace):
            self._local = LocalWorkspace(self._local)
        return self._local

    def _say(self, message: str) -> None:
        if self.echo is not None:
            print(message, file=self.echo, flush=True)

    def cancel(self, record: Any, *, plugins: Plugins | None = None) -> str | None:
        """``amlstep runs cancel``: ask the service to cancel the submitted run of local record ``record``; its
        status there afterwards (None when unknown)."""
        from .cancel import cancel

        return cancel(self, record)

    def _poll(self) -> float:
        if self.poll_seconds is not None:
            return self.poll_seconds
        return 0.25 if self._service is not None else 10.0


class AzureBackendChoice:
    """The azure backend as ``--backend azure`` builds it (``make_backend``), before its SDK is known.

    Backends are built from options alone; the SDKs are plugins (``register_azure_sdks``), known once
    the plugins are. The first call that receives them (compile, plan, run, explain reuse) finds the
    SDK by name (``sdk=``, default ``v1``; an unknown one lists those registered) and builds its
    backend with the options; that backend does the work.
    """

    name = "azure"

    def __init__(self, **options: Any) -> None:
        self.options = options
        self._chosen: AzureBackendBase | None = None

    def chosen(self, plugins: Plugins) -> AzureBackendBase:
        """The backend of the SDK these options name."""
        if self._chosen is None:
            from .compilers import get

            options = dict(self.options)
            compiler = get(plugins, options.pop("sdk", None))
            self._chosen = compiler.backend(**options) or AzureBackendBase(compiler=compiler, **options)
        return self._chosen

    def compile(self, pipeline: ValidatedPipeline, *, plugins: Plugins, params: Mapping[str, Any] | None = None,
                reuse: bool = True) -> CompiledPipeline:
        return self.chosen(plugins).compile(pipeline, plugins=plugins, params=params, reuse=reuse)

    def plan(self, pipeline: ValidatedPipeline, *, plugins: Plugins,
             params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.chosen(plugins).plan(pipeline, plugins=plugins, params=params)

    def format_plan(self, plan: Mapping[str, Any]) -> str:
        if self._chosen is None:
            from .plans import format_text

            return format_text(plan)
        return self._chosen.format_plan(plan)

    def run(self, pipeline: ValidatedPipeline, *, plugins: Plugins, params: Mapping[str, Any] | None = None,
            reuse: bool = True, resume: str | None = None) -> PipelineRunResult:
        return self.chosen(plugins).run(pipeline, plugins=plugins, params=params, reuse=reuse, resume=resume)

    def explain_reuse(self, pipeline: ValidatedPipeline, *, plugins: Plugins, params: Mapping[str, Any] | None = None,
                      reuse: bool = True) -> list[dict[str, Any]]:
        return self.chosen(plugins).explain_reuse(pipeline, plugins=plugins, params=params, reuse=reuse)

    def cancel(self, record: Any, *, plugins: Plugins) -> str | None:
        return self.chosen(plugins).cancel(record)
