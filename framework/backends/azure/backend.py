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
from typing import TYPE_CHECKING, Any, Callable, Mapping, TextIO, cast

from ...echo import Echo
from ...errors import BackendError, PipelineValidationError
from ...events import PipelineEvents
from ...io import output_path
from ...pipeline import Dataset, ValidatedPipeline
from ...results import PipelineRunResult, StepRunResult
from ...steps import DataType
from ...workspace import LocalWorkspace, RunRecord
from . import endpoint
from .follower import LAST_SEEN, Follower, RetryPolicy, Session

if TYPE_CHECKING:
    from ...manager import Plugins
    from .compiled import CompiledPipeline, CompiledStep, Compiler

SHA256_TAG = "amlstep_sha256"  # a data asset's content hash, as amlstep tags what it uploads
OUTAGE_TIMEOUT = 900.0  # seconds following rides out a service that does not answer (--outage-timeout)


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
                 outage_timeout: float | None = None, retry: RetryPolicy | None = None,
                 compiler: Compiler | None = None, **unknown: Any) -> None:
        if unknown:
            from ..options import check_options, named_options

            check_options("azure", unknown, [*named_options(type(self).__init__), "sdk"])
        self._local = workspace
        self.echo: TextIO | None = cast(TextIO, Echo(echo)) if echo is not None else None
        self.dry_run = dry_run
        self.compute = compute
        self.config = config
        self.wait = wait
        self.download = download
        self.download_dir = Path(download_dir) if download_dir else None
        self.provisioning = provisioning or Provisioning()
        self.poll_seconds = poll_seconds
        self.outage_timeout = OUTAGE_TIMEOUT if outage_timeout is None else float(outage_timeout)
        self.retry = retry
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
        """Record a submitted run locally, follow it to its end (hooks fire), read it back, download its outputs.

        ``step_properties(step)`` adds SDK-specific properties to a step's local record (``azure_outputs``: the
        SDK's name of each output); the :class:`Follower` follows the run through the SDK's ``session`` (``run``:
        the SDK's handle of it); ``download(result, follower)`` fetches the pipeline outputs into ``download_dir``
        when one was given (else they are read from the local datastore, where the read-back put them).
        """
        values = compiled.parameter_values
        local = self._local_workspace()
        now = time.time()
        record = local.create_run(
            run_type="pipeline", name=compiled.experiment, experiment=compiled.experiment, run_id=run_id,
            backend=self.name, status="Running", params=dict(values),
            properties={"steps": [s.binding.name for s in compiled.steps],
                        "pipeline_outputs": dict(compiled.pipeline_outputs),
                        "source": compiled.validated.pipeline.source, "azure_run_id": run_id,
                        "azure_workspace": workspace_name, "sdk": self.sdk, "portal_url": portal_url,
                        "azure_config": self._config_file(), LAST_SEEN: now})
        step_records = {}
        for step in compiled.steps:
            binding = step.binding
            step_records[binding.name] = local.create_run(
                run_type="step", name=binding.name, experiment=compiled.experiment, parent_id=record.id,
                backend=self.name, status="NotStarted", params=_params(binding, values),
                properties={"plugin": binding.plugin, "kind": binding.spec.kind,
                            "plugin_owner": plugins.owner(binding.plugin) if plugins is not None else None,
                            "inputs": _inputs(binding, local), "outputs": dict(binding.outputs),
                            "output_types": {port: binding.output_type(port).value for port in binding.outputs},
                            "sdk_class": type(step.sdk_step).__name__, "compute_target": step.compute_target,
                            "reuse": step.reuse, "azure_workspace": workspace_name, "sdk": self.sdk,
                            **step_properties(step)})
            if step.reuse.get("code"):
                local.update_run(step_records[binding.name].id, reuse_components={"code": step.reuse["code"]})
        self._say(f"submitted pipeline run {run_id} to experiment {compiled.experiment!r}")
        hook = plugins.hook if plugins is not None else None
        pipeline_events = PipelineEvents(hook, run_id, compiled.validated.pipeline, values, self.name)
        pipeline_events.started()
        result = PipelineRunResult(run_id=run_id, experiment=compiled.experiment, status="Running",
                                   backend=self.name, params=dict(values),
                                   steps=[StepRunResult(name, r.id, "NotStarted", local_run_id=r.id)
                                          for name, r in step_records.items()],
                                   details={"azure_run_id": run_id, "portal_url": portal_url, "sdk": self.sdk})
        if not self.wait:
            result.details["wait"] = False
            result.details["follow"] = f"amlstep runs follow {run_id}"
            local.stop_following(record.id)  # nobody here follows it: `runs follow`, `runs cancel` may
            return result
        return self.follow_submitted(local.get_run(record.id), step_records, session=session, run=run,
                                     bindings={s.binding.name: s.binding for s in compiled.steps},
                                     events=pipeline_events, download=download, result=result, started=started)

    def follow_submitted(self, record: RunRecord, step_records: Mapping[str, RunRecord], *, session: Session,
                         run: Any, bindings: Mapping[str, Any], events: PipelineEvents | None,
                         download: Callable[[PipelineRunResult, Follower], dict[str, str]] | None,
                         result: PipelineRunResult, started: float) -> PipelineRunResult:
        """Follow a submitted run to its end, read it back and record it; the same at submit and on re-attach.

        A run amlstep cannot follow to its end (the service away longer than ``outage_timeout``, an answer it
        cannot read, Ctrl-C: only the client stops, the run is not canceled) stays ``Running`` in the local record,
        with when it was last seen: it was submitted and, as far as anyone here knows, it goes on. The result says
        so (``details["state_unknown"]``, exit code 3 from ``amlstep run``) and how to re-attach; ``Failed`` is only
        ever what the service says. Durations are the service's (its start and end times), whoever followed when.
        """
        local = self._local_workspace()
        following = Follower(session, run, record.id, bindings, step_records, local,
                             events.steps if events is not None else None, self._poll(), retry=self.retry_policy(),
                             echo=self.echo, pipeline_record=record)
        try:
            status = following.follow()
        except KeyboardInterrupt:  # Ctrl-C stops this client, not the run: left as after an outage, exit code 3
            return self._unknown(record, following, result, following.interrupted(), events)
        except Exception as exc:  # the Azure run goes on: say locally what is known, never that it failed
            return self._unknown(record, following, result, exc, events)
        result.status = status
        began, ended = following.times(run, f"{session.noun} {record.id}")
        times = {"started_at": began, "ended_at": ended} if began is not None and ended is not None else {}
        result.duration = ended - began if times else time.time() - started  # type: ignore[operator]
        for step_result in result.steps:
            seen = following.steps.get(step_result.name)
            step_record = step_records[step_result.name]
            step_result.local_run_id = step_record.id
            if seen is None:
                step_result.status = "NotStarted" if status != "Completed" else "Completed"
                local.update_run(step_record.id, status=step_result.status)
                continue
            step_result.run_id = seen.get("azure_run_id") or step_result.run_id
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
        problems = following.read_back(outputs=self.download)
        if problems:
            result.details["read_back_errors"] = problems
        if status == "Completed" and self.download:
            result.outputs = self._pipeline_outputs(record, result, following, download)
        for step_result in result.steps:
            found = local.get_run(step_records[step_result.name].id)
            step_result.outputs = {port: str(output_path(DataType(r["type"]), local.path / r["path"]))
                                   for port, r in (found.outputs or {}).items() if isinstance(r, dict)}
            if found.log_path:
                step_result.log_path = str(local.path / found.log_path)
        local.update_run(record.id, status=result.status, error=result.error, outputs=dict(result.outputs),
                         properties={**local.get_run(record.id).properties, LAST_SEEN: following.last_seen}, **times)
        if events is not None:
            events.ended(result)
        return result

    def reattach(self, record: RunRecord, *, plugins: Plugins | None = None) -> PipelineRunResult:
        """Follow a submitted run again from its local record, to its end (``amlstep runs follow``); each SDK's
        backend reaches the run its own way and hands it to :meth:`follow_recorded`."""
        raise BackendError(f"--sdk {self.sdk} ({self.compiler.label}) cannot follow submitted runs")

    def peek(self, record: RunRecord) -> str:
        """The run's status on Azure now, in one look (``amlstep runs refresh``)."""
        raise BackendError(f"--sdk {self.sdk} ({self.compiler.label}) cannot follow submitted runs")

    def follow_recorded(self, record: RunRecord, *, session: Session, run: Any,
                        download: Callable[[PipelineRunResult, Follower], dict[str, str]] | None = None
                        ) -> PipelineRunResult:
        """Follow the submitted run of local ``record`` (its steps' records are its children) to its end."""
        local = self._local_workspace()
        step_records = {child.name: child for child in local.get_children(record.id)}
        local.update_run(record.id, status="Running", started_at=record.started_at or time.time())  # followed here
        record = local.get_run(record.id)
        self._say(f"following {session.noun} {record.id} of experiment {record.experiment!r} ({self.sdk})")
        result = PipelineRunResult(run_id=record.id, experiment=record.experiment, status="Running", backend=self.name,
                                   params=dict(record.params),
                                   steps=[StepRunResult(name, r.properties.get("azure_step_run_id") or r.id, r.status,
                                                        local_run_id=r.id) for name, r in step_records.items()],
                                   details={"azure_run_id": record.id, "portal_url": record.properties.get("portal_url"),
                                            "sdk": self.sdk, "reattached": True})
        return self.follow_submitted(record, step_records, session=session, run=run, bindings={}, events=None,
                                     download=download if self.download_dir is not None else None, result=result,
                                     started=record.started_at or time.time())

    def _pipeline_outputs(self, record: RunRecord, result: PipelineRunResult, following: Follower,
                          download: Callable[[PipelineRunResult, Follower], dict[str, str]] | None) -> dict[str, str]:
        """Each pipeline output's local path: in ``download_dir`` when one was given, else in the local datastore."""
        if self.download_dir is not None and download is not None:
            try:
                return following.call("downloading the pipeline outputs", download, result, following)
            except Exception as exc:
                result.details.setdefault("download_errors", {})["*"] = f"could not download the pipeline outputs: {exc}"
                return {}
        from ...runs import Run

        found: dict[str, str] = {}
        run = Run(self._local_workspace(), self._local_workspace().get_run(record.id))
        for name in sorted(record.properties.get("pipeline_outputs") or {}):
            try:
                found[name] = str(run.get_pipeline_output(name).path)
            except Exception as exc:
                result.details.setdefault("download_errors", {})[name] = f"could not download pipeline output {name!r}: {exc}"
        return found

    def _lost(self, record: RunRecord, following: Follower, why: str) -> None:
        seen = following.last_seen or record.properties.get(LAST_SEEN)
        self._local_workspace().merge_properties(record.id, {
            LAST_SEEN: seen, "azure_following": f"amlstep stopped following it: {why}"})

    def _unknown(self, record: RunRecord, following: Follower, result: PipelineRunResult, exc: Exception,
                 events: PipelineEvents | None) -> PipelineRunResult:
        """The run's state is unknown: the record stays Running (last seen at T); the result says how to re-attach."""
        from .follower import FollowingInterrupted, ServiceUnreachable, clock_text

        self._lost(record, following, str(exc).split(". Re-attach")[0])
        if isinstance(exc, (ServiceUnreachable, FollowingInterrupted)):
            message = str(exc)
        else:
            message = (f"amlstep stopped following {following.session.noun} {record.id}: {exc}. It was submitted and, "
                       f"as far as amlstep knows, still runs on Azure (last seen {clock_text(following.last_seen)}). "
                       f"Re-attach with `amlstep runs follow {record.id}`")
        result.status = "Running"
        result.error = message
        result.details.update({"state_unknown": True, "last_seen": following.last_seen,
                               "follow": f"amlstep runs follow {record.id}"})
        for step_result in result.steps:
            seen = following.steps.get(step_result.name)
            if seen is not None:
                step_result.status = seen["status"]
                step_result.run_id = seen.get("azure_run_id") or step_result.run_id
        if events is not None:
            events.failed(exc)
        return result

    def reach(self, doing: str, function: Callable[..., Any], *args: Any,
              on_error: Callable[[str, BaseException], BaseException] | None = None) -> Any:
        """A call made to reach a submitted run (``runs follow``), riding out an unreachable service like following."""
        from .follower import retrying

        return retrying(self.retry_policy(), doing, function, *args, echo=self.echo, on_error=on_error)

    def retry_policy(self) -> RetryPolicy:
        """How following rides out an unreachable service (``outage_timeout`` seconds; ``retry``: a test's policy)."""
        if self.retry is not None:
            return self.retry
        return RetryPolicy(window=self.outage_timeout)

    def _config_file(self) -> str | None:
        """The workspace config.json given (absolute), kept with the run so ``runs follow`` finds the workspace."""
        from .endpoint import config_path

        found = config_path(self.config)
        return str(found.resolve()) if found is not None else None

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

    def cancel(self, record: Any, *, plugins: Plugins | None = None, wait: bool = True) -> str | None:
        """``amlstep runs cancel``: ask the service to cancel the submitted run of local record ``record``; its
        status there afterwards (None when unknown); ``wait``: once followed to its end and read back."""
        from .cancel import cancel

        return cancel(self, record, plugins=plugins, wait=wait)

    def _poll(self) -> float:
        if self.poll_seconds is not None:
            return self.poll_seconds
        return 0.25 if self._service is not None else 10.0


def _params(binding: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """A step's parameters with the pipeline parameters' values, as the local backend records them."""
    try:
        return dict(binding.resolve_params(values))
    except Exception:
        return {}


def _inputs(binding: Any, local: LocalWorkspace) -> dict[str, str]:
    """A step's inputs as the local backend records them: data names, or ``dataset:NAME:VERSION`` (the local version)."""
    found = {}
    for port, source in binding.inputs.items():
        if isinstance(source, Dataset):
            version = source.version
            if version is None and local.has_dataset(source.name):
                try:
                    version = local.get_dataset(source.name).version
                except Exception:
                    version = None
            found[port] = f"dataset:{source.name}:{version or 'latest'}"
        else:
            found[port] = str(source)
    return found


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
        """Without ``sdk=``, the SDK of the latest Azure run in the local history: reuse is judged on the steps that
        SDK compiles, as the service compares what that SDK submitted."""
        if self._chosen is None and not self.options.get("sdk"):
            latest = _latest_azure_sdk(self.options.get("workspace"))
            if latest:
                self.options = {**self.options, "sdk": latest}
        return self.chosen(plugins).explain_reuse(pipeline, plugins=plugins, params=params, reuse=reuse)

    def cancel(self, record: Any, *, plugins: Plugins, wait: bool = True) -> str | None:
        """Through the SDK ``record`` was submitted with, in the workspace of ``config``, else the one it was
        submitted with (as ``runs follow``: ``attach.backend_for``)."""
        from .attach import backend_for

        options = {k: v for k, v in self.options.items() if k not in ("sdk", "workspace", "config", "echo")}
        backend = backend_for(plugins, self.options["workspace"], record, config=self.options.get("config"),
                              echo=self.options.get("echo"), **options)
        return backend.cancel(record, plugins=plugins, wait=wait)

    def reattach(self, record: RunRecord, *, plugins: Plugins) -> PipelineRunResult:
        """Follow submitted run ``record`` to its end (``runs logs --follow`` on a run nobody follows)."""
        return self.chosen(plugins).reattach(record, plugins=plugins)


def _latest_azure_sdk(workspace: Any) -> str | None:
    """The SDK of the newest Azure pipeline run in local ``workspace``'s history (None: none, or no history)."""
    try:
        local = workspace if isinstance(workspace, LocalWorkspace) else LocalWorkspace(workspace)
        for record in local.list_runs(run_type="pipeline", limit=200):
            if record.backend == "azure" and record.properties.get("sdk"):
                return str(record.properties["sdk"])
    except Exception:  # no readable history: the default SDK, as before
        return None
    return None
