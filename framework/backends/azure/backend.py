"""The Azure backend: workspace, compute, datasets, compile, submit, follow, download, record.

``AzureBackend(dry_run=True)`` compiles against an offline stand-in and never contacts Azure.
Otherwise the workspace is the one given (``aml_workspace=``), or ``Workspace.from_config()``
(``config=`` names the file or folder; a config written by ``amlstep fake-azure`` is recognised and
its service reached with its token); missing compute clusters are created with the provisioning
settings and waited for; datasets the workspace lacks are registered (a dataset of the local
workspace is uploaded with its content); the wheels steps ship are uploaded with the submission.
While the pipeline runs, the step lifecycle hooks fire as the service reports step status; the
submitted run is recorded in the local run history (backend ``azure``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, TextIO

from ...errors import BackendError, PipelineValidationError, StepExecutionError
from ...events import PipelineEvents, StepEvents
from ...manager import Plugins
from ...pipeline import Dataset, StepBinding, ValidatedPipeline
from ...results import PipelineRunResult, StepRunResult
from ...workspace import LocalWorkspace
from . import endpoint
from .compiled import CompiledPipeline, CompiledStep, compute_name
from .sdk import INSTALL_HINT, require_azureml

TERMINAL = {"Completed": "Completed", "Finished": "Completed", "Failed": "Failed", "Canceled": "Canceled",
            "Cancelled": "Canceled"}
LOG_FILES = ("azureml-logs/70_driver_log.txt", "user_logs/std_log.txt", "azureml-logs/20_image_build_log.txt")
LOG_TAIL_LINES = 12
SHA256_TAG = "amlstep_sha256"


@dataclass(frozen=True)
class Provisioning:
    """How a missing compute cluster is created (the seed's ``AmlCompute.provisioning_configuration``)."""

    vm_size: str = "STANDARD_D2_V2"
    min_nodes: int = 0
    max_nodes: int = 1
    idle_seconds_before_scaledown: int | None = None
    timeout_minutes: int = 20


def fire_step_events(events: Any, binding: Any, record_id: str, status: str, seen: Mapping[str, Any]) -> None:
    """The step hooks for a step run the service reports ended (``seen``: what the follower recorded of it)."""
    if events is None:
        return
    events.started(binding, record_id)
    if status == "Completed":
        result = StepRunResult(binding.name, record_id, "Completed", reused=seen["reused"],
                               reused_from=seen.get("reused_from_local") or seen.get("reused_from"),
                               duration=seen.get("duration"))
        events.finished(binding, record_id, result)
    else:
        events.failed(binding, record_id, StepExecutionError(seen["error"], step=binding.name))


class AzureBackendBase:
    """What the Azure backend does whatever the SDK: options, the local run record, following a run, hooks.

    A subclass per SDK (``sdk``, the name ``compilers`` knows it by) compiles, reaches the
    workspace and submits; :meth:`track` records the submitted run locally, fires the pipeline and
    step hooks as the service reports progress (through the SDK's follower), records statuses and
    downloads the outputs.
    """

    name = "azure"
    sdk = "v1"

    def __init__(self, workspace: LocalWorkspace | str | Path | None = None, *, echo: TextIO | None = None,
                 dry_run: bool = False, compute: str | None = None, config: str | Path | None = None,
                 wait: bool = True, download: bool = True, download_dir: str | Path | None = None,
                 provisioning: Provisioning | None = None, poll_seconds: float | None = None) -> None:
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

    @property
    def compiler(self) -> Any:
        """The compiler module of this backend's SDK (``compilers.compiler``)."""
        from .compilers import compiler

        return compiler(self.sdk)

    def plan(self, pipeline: ValidatedPipeline, *, plugins: Plugins,
             params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The compiled plan: every SDK object built, nothing contacted."""
        return self.compile(pipeline, plugins=plugins, params=params).plan

    def format_plan(self, plan: Mapping[str, Any]) -> str:
        """The plan for a terminal."""
        from .compilers import plan_module

        return str(plan_module(self.sdk).format_text(plan))

    def compile(self, pipeline: ValidatedPipeline, *, plugins: Plugins, params: Mapping[str, Any] | None = None,
                reuse: bool = True) -> CompiledPipeline:
        raise NotImplementedError

    def dry_run_result(self, compiled: CompiledPipeline) -> PipelineRunResult:
        return PipelineRunResult(run_id="dry-run", experiment=compiled.experiment, status="DryRun", backend=self.name,
                                 params=compiled.parameter_values, details={"plan": compiled.plan})

    def track(self, compiled: CompiledPipeline, run_id: str, *, plugins: Plugins | None, started: float,
              workspace_name: str | None, portal_url: str | None, step_properties: Any, follower: Any,
              download: Any) -> PipelineRunResult:
        """Record a submitted run locally, follow it to its end (hooks fire), download its outputs.

        ``step_properties(step)`` adds SDK-specific properties to a step's local record;
        ``follower(step_records, events)`` follows the run (``follow() -> status``, ``steps``,
        ``failure_message(status)``); ``download(result, follower)`` fetches the pipeline outputs.
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
            following = follower(step_records, events)
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

    # -- helpers ------------------------------------------------------------------------------------
    def _local_workspace(self) -> LocalWorkspace:
        if not isinstance(self._local, LocalWorkspace):
            self._local = LocalWorkspace(self._local)
        return self._local

    def _say(self, message: str) -> None:
        if self.echo is not None:
            print(message, file=self.echo, flush=True)

    def cancel(self, record: Any) -> str | None:
        """``amlstep runs cancel``: ask the service to cancel the submitted run of local record ``record``; its
        status there afterwards (None when unknown)."""
        from .cancel import cancel

        return cancel(self, record)

    def _poll(self) -> float:
        if self.poll_seconds is not None:
            return self.poll_seconds
        return 0.25 if self._service is not None else 10.0


class AzureBackend(AzureBackendBase):
    """Compiles pipelines to Azure ML SDK v1 objects and submits them."""

    sdk = "v1"

    def __init__(self, workspace: LocalWorkspace | str | Path | None = None, *, echo: TextIO | None = None,
                 dry_run: bool = False, compute: str | None = None, config: str | Path | None = None,
                 aml_workspace: Any = None, wait: bool = True, download: bool = True,
                 download_dir: str | Path | None = None, provisioning: Provisioning | None = None,
                 show_output: bool = False, poll_seconds: float | None = None) -> None:
        super().__init__(workspace, echo=echo, dry_run=dry_run, compute=compute, config=config, wait=wait,
                         download=download, download_dir=download_dir, provisioning=provisioning,
                         poll_seconds=poll_seconds)
        self.aml_workspace = aml_workspace
        self.show_output = show_output
        if aml_workspace is not None:
            self._service = None
        self._dataset_hashes: dict[str, str] = {}

    # -- compile / plan ---------------------------------------------------------------------------
    def compile(self, pipeline: ValidatedPipeline, *, plugins: Plugins,
                params: Mapping[str, Any] | None = None, reuse: bool = True) -> CompiledPipeline:
        """Build the SDK v1 objects; offline (dry run) unless a workspace was given."""
        from . import plan as plan_module
        from .offline import offline_import

        compile_pipeline = self.compiler.compile_pipeline
        if self.dry_run or self.aml_workspace is None:
            with offline_import():
                require_azureml()
            with self._offline(pipeline) as resources:
                compiled = compile_pipeline(pipeline, resources, plugins=plugins, params=params, compute=self.compute,
                                            reuse=reuse)
                compiled.plan = plan_module.render(compiled)
            return compiled
        from .offline import workspace_resources
        from .shipping import WheelBuilder

        wheels = WheelBuilder(self._wheel_cache())
        with _sdk_output(self.echo):
            compiled = compile_pipeline(pipeline, workspace_resources(self.aml_workspace, wheels=wheels),
                                        plugins=plugins, params=params, compute=self.compute, reuse=reuse)
        compiled.plan = plan_module.render(compiled, workspace=self.aml_workspace.name)
        return compiled

    @contextlib.contextmanager
    def _offline(self, pipeline: ValidatedPipeline) -> Iterator[Any]:
        from .offline import offline_resources

        computes = [compute_name(pipeline, b, self.compute) for b in pipeline.steps]
        with offline_resources(computes, pipeline.datasets()) as resources:
            yield resources

    @contextlib.contextmanager
    def _service_home(self) -> Iterator[None]:
        """Against a fake service, the SDK's per-user files (discovery cache...) go to a temporary HOME."""
        if self._service is None:
            yield
            return
        import tempfile

        from .offline import sdk_home

        with tempfile.TemporaryDirectory(prefix="amlstep-sdk-home-") as home, sdk_home(home):
            yield

    def _wheel_cache(self) -> Path | None:
        import os

        if os.environ.get("AMLSTEP_WHEEL_CACHE"):
            return None
        return self._local_workspace().path / "cache" / "wheels"

    # -- run ----------------------------------------------------------------------------------------
    def run(self, pipeline: ValidatedPipeline, *, plugins: Plugins, params: Mapping[str, Any] | None = None,
            reuse: bool = True, resume: str | None = None) -> PipelineRunResult:
        if resume is not None:
            raise PipelineValidationError("--resume works with the local backend only; on Azure, resubmit: "
                                          "unchanged steps are reused by the service")
        if self.dry_run:
            return self.dry_run_result(self.compile(pipeline, plugins=plugins, params=params, reuse=reuse))
        from .offline import patched_environ

        self._local_workspace()  # resolved before HOME may point elsewhere for the SDK
        with patched_environ(endpoint.environment(self._service) if self._service else {}), self._service_home():
            require_azureml()
            ws = self.workspace()
            self.aml_workspace = ws
            self.ensure_compute(sorted({compute_name(pipeline, b, self.compute) for b in pipeline.steps}))
            self.ensure_datasets(pipeline.datasets())
            compiled = self.compile(pipeline, plugins=plugins, params=params, reuse=reuse)
            return self.submit(compiled, plugins=plugins)

    def submit(self, compiled: CompiledPipeline, *, plugins: Plugins | None = None) -> PipelineRunResult:
        """Submit compiled objects, record the run locally, follow it and download unless told not to."""
        from azureml.core import Experiment

        ws = self.aml_workspace
        values = compiled.parameter_values
        submitted_params = {name: values[name] for name in compiled.parameters}
        started = time.time()
        try:
            with _sdk_output(self.echo):
                run = Experiment(ws, compiled.experiment).submit(
                    compiled.pipeline, pipeline_parameters=submitted_params or None,
                    continue_on_step_failure=compiled.validated.pipeline.continue_on_step_failure)
        except Exception as exc:
            raise service_error(f"submitting experiment {compiled.experiment!r}", exc) from exc
        hashes = self._dataset_hashes

        def step_properties(step: CompiledStep) -> dict[str, Any]:
            return {"azure_reuse_key": azure_reuse_key(step, hashes), "azure_reuse_parts": reuse_parts(step, hashes),
                    "datasets": {k: v for k, v in hashes.items()
                                 if f"dataset:{k}:" in json.dumps(step.reuse.get("inputs"))}}

        return self.track(compiled, run.id, plugins=plugins, started=started, workspace_name=getattr(ws, "name", None),
                          portal_url=_portal_url(run), step_properties=step_properties,
                          follower=lambda records, events: _Follower(self, run, compiled, records, events),
                          download=lambda result, following: self._download(run, compiled, result))

    def _download(self, run: Any, compiled: CompiledPipeline, result: PipelineRunResult) -> dict[str, str]:
        target = self.download_dir or (self._local_workspace().path / "downloads")
        outputs: dict[str, str] = {}
        for name in sorted(compiled.pipeline_outputs):
            try:
                with _sdk_output(self.echo):
                    port = run.get_pipeline_output(name)
                    port.download(str(target), show_progress=False)
                # the files land under target/<path on datastore> (azureml/<step run id>/<output name>)
                where = getattr(port, "path_on_datastore", None) or f"azureml/{run.id}/{name}"
                outputs[name] = str(target / where)
            except Exception as exc:
                result.details.setdefault("download_errors", {})[name] = (
                    f"could not download pipeline output {name!r}: {type(exc).__name__}: {_short(exc)}")
        return outputs

    # -- workspace, compute, datasets --------------------------------------------------------------
    def workspace(self) -> Any:
        """The azureml Workspace: given, or from config.json (``config=`` file or folder)."""
        if self.aml_workspace is not None:
            return self.aml_workspace
        from azureml.core import Workspace
        from azureml.exceptions import UserErrorException

        if self._service is not None:
            try:
                return endpoint.workspace(self._service)
            except Exception as exc:
                raise service_error("opening the workspace of the fake service", exc) from exc
        path = Path(self.config).expanduser() if self.config else None
        if path is not None and not path.exists():
            raise BackendError(f"Azure ML workspace config {str(path)!r} does not exist; download config.json "
                               f"from the workspace's page in the Azure portal")
        where = (str(path) if path is not None else f"{Path.cwd()} and its parent folders "
                 "(also .azureml/ and aml_config/ in each)")
        try:
            with _sdk_output(self.echo):
                if path is not None and path.is_file():
                    return Workspace.from_config(path=str(path.parent), _file_name=path.name)
                return Workspace.from_config(path=str(path) if path else None)
        except UserErrorException as exc:
            if "config" in str(exc).lower() and ("not found" in str(exc).lower() or "could not" in str(exc).lower()):
                raise BackendError(
                    f"no Azure ML workspace config.json found; looked in {where}. Download it from the "
                    f"workspace's page in the Azure portal, or pass --config PATH") from exc
            raise service_error("opening the workspace", exc) from exc
        except Exception as exc:
            raise service_error("opening the workspace", exc) from exc
    def ensure_compute(self, names: list[str]) -> None:
        """Create the compute clusters the workspace lacks, and wait for them."""
        from azureml.core.compute import AmlCompute, ComputeTarget
        from azureml.exceptions import ComputeTargetException

        ws = self.aml_workspace
        for name in names:
            try:
                with _sdk_output(self.echo):
                    ComputeTarget(workspace=ws, name=name)
                continue
            except ComputeTargetException as exc:
                if "NotFound" not in str(exc) and "not found" not in str(exc):
                    raise service_error(f"looking up compute target {name!r}", exc) from exc
            except Exception as exc:
                raise service_error(f"looking up compute target {name!r}", exc) from exc
            p = self.provisioning
            self._say(f"creating compute cluster {name!r} ({p.vm_size}, {p.min_nodes}-{p.max_nodes} nodes)")
            options: dict[str, Any] = {"vm_size": p.vm_size, "min_nodes": p.min_nodes, "max_nodes": p.max_nodes}
            if p.idle_seconds_before_scaledown is not None:
                options["idle_seconds_before_scaledown"] = p.idle_seconds_before_scaledown
            try:
                with _sdk_output(self.echo):
                    target = ComputeTarget.create(ws, name, AmlCompute.provisioning_configuration(**options))
                    target.wait_for_completion(show_output=False, min_node_count=None,
                                               timeout_in_minutes=p.timeout_minutes)
            except Exception as exc:
                raise BackendError(f"could not create compute target {name!r} ({p.vm_size}, "
                                   f"{p.min_nodes}-{p.max_nodes} nodes): {_short(exc)}") from exc
            state = getattr(getattr(target, "provisioning_state", None), "lower", lambda: "")()
            if state in ("failed", "canceled"):
                errors = getattr(target, "provisioning_errors", None)
                raise BackendError(f"could not create compute target {name!r}: provisioning {state}: {errors}")

    def ensure_datasets(self, datasets: list[Dataset]) -> None:
        """Make the workspace hold each dataset the pipeline reads.

        A dataset registered in the local workspace is mirrored: when the Azure workspace lacks it,
        or holds other content (its ``amlstep_sha256`` tag differs), the local files are uploaded to
        the default datastore and registered as a new version of a TabularDataset of the same name,
        tagged with the content hash. Otherwise a dataset the workspace lacks is registered from the
        pipeline's sources (URLs are read by the service; local files are uploaded first).
        """
        from azureml.core import Dataset as AzureDataset

        from ...workspace.sources import is_url

        ws = self.aml_workspace
        local = self._local_workspace()
        for dataset in datasets:
            mine = None
            if not local.has_dataset(dataset.name) and dataset.sources and not dataset.version and \
                    not any(is_url(s) for s in dataset.sources):
                # local files: register them here first, as the local backend does, then mirror them
                local.register_dataset(dataset.name, list(dataset.sources), description=dataset.description)
            if local.has_dataset(dataset.name):
                try:
                    mine = local.get_dataset(dataset.name, dataset.version)
                except Exception:
                    mine = None
            if mine is not None:
                self._dataset_hashes[dataset.name] = mine.sha256
            existing = None
            try:
                with _sdk_output(self.echo):
                    existing = AzureDataset.get_by_name(ws, dataset.name, version="latest")
            except Exception as exc:
                if "Cannot find dataset" not in str(exc) and "not found" not in str(exc).lower():
                    raise service_error(f"looking up dataset {dataset.name!r}", exc) from exc
            if mine is not None:
                if existing is not None and (getattr(existing, "tags", None) or {}).get(SHA256_TAG) == mine.sha256:
                    continue
                self._upload_local_dataset(dataset, mine, existing is not None)
                continue
            if existing is not None:
                if dataset.version:
                    self._check_version(dataset)
                self._dataset_hashes[dataset.name] = ((getattr(existing, "tags", None) or {}).get(SHA256_TAG)
                                                      or f"azure:{getattr(existing, 'id', None)}")
                continue
            if not dataset.sources or dataset.version:
                raise BackendError(f"dataset {dataset.name!r}" + (f" version {dataset.version}" if dataset.version
                                   else "") + " is not registered in the workspace and the pipeline gives no "
                                   "sources to register it from")
            self._say(f"registering dataset {dataset.name!r} from {', '.join(dataset.sources)}")
            try:
                with _sdk_output(self.echo):
                    paths = _dataset_paths(ws, dataset)
                    tabular = AzureDataset.Tabular.from_delimited_files(path=paths)
                    tabular.register(workspace=ws, name=dataset.name, description=dataset.description or None,
                                     create_new_version=True)
            except Exception as exc:
                raise BackendError(f"could not register dataset {dataset.name!r} from "
                                   f"{', '.join(dataset.sources)}: {_short(exc)}") from exc

    def _check_version(self, dataset: Dataset) -> None:
        from azureml.core import Dataset as AzureDataset

        try:
            with _sdk_output(self.echo):
                AzureDataset.get_by_name(self.aml_workspace, dataset.name, version=dataset.version)
        except Exception as exc:
            raise BackendError(f"dataset {dataset.name!r} version {dataset.version} is not registered in the "
                               f"workspace: {_short(exc)}") from exc

    def _upload_local_dataset(self, dataset: Dataset, mine: Any, exists: bool) -> None:
        """Upload a local dataset version's files and register them as a TabularDataset, tagged by hash."""
        from azureml.core import Dataset as AzureDataset

        ws = self.aml_workspace
        target = f"amlstep/datasets/{dataset.name}/{mine.sha256[:16]}"
        files = [str(p) for p in mine.file_paths()]
        self._say(f"uploading dataset {dataset.name!r} version {mine.version} ({len(files)} file(s), sha256 "
                  f"{mine.sha256[:12]}) to the workspace's default datastore")
        try:
            with _sdk_output(self.echo):
                datastore = ws.get_default_datastore()
                datastore.upload_files(files, target_path=target, overwrite=True, show_progress=False)
                paths = [(datastore, f"{target}/{Path(f).name}") for f in files]
                # the column types come from the local copy (the same bytes), so nothing is read back
                tabular = AzureDataset.Tabular.from_delimited_files(
                    path=paths, validate=False, infer_column_types=False, set_column_types=_column_types(files))
                tabular.register(workspace=ws, name=dataset.name, description=mine.description or None,
                                 tags={SHA256_TAG: mine.sha256}, create_new_version=exists)
        except Exception as exc:
            raise BackendError(f"could not upload dataset {dataset.name!r} to the workspace: {_short(exc)}") from exc

    # -- reuse, explained -------------------------------------------------------------------------------
    def explain_reuse(self, pipeline: ValidatedPipeline, *, plugins: Plugins, params: Mapping[str, Any] | None = None,
                      reuse: bool = True) -> list[dict[str, Any]]:
        """Whether Azure would reuse each step now, and if not, why: ``amlstep explain-reuse --backend azure``.

        Azure reuses a step when an earlier completed step run in the workspace has the same module
        (script, arguments, environment) and the same inputs, and ``allow_reuse`` is on. amlstep
        compiles the pipeline offline (the same wheels, code hashes and parameters a submission
        would carry) and compares with the Azure step runs it recorded in the local run history
        (only those of the workspace ``--config`` names, when given). Datasets count by content: a
        dataset registered locally is what a submission uploads.
        """
        compiled = AzureBackend(self._local, dry_run=True, compute=self.compute).compile(
            pipeline, plugins=plugins, params=params, reuse=reuse)
        local = self._local_workspace()
        workspace_name = (self._service or {}).get("workspace_name") or _config_workspace(self.config)
        history = _azure_step_records(local, workspace_name)
        hashes = {d.name: local.get_dataset(d.name, d.version).sha256 for d in pipeline.datasets()
                  if local.has_dataset(d.name)}
        producers = {data: b.name for b in pipeline.steps for data in b.outputs.values()}
        rerun: set[str] = set()
        found = []
        for step in compiled.steps:
            binding = step.binding
            parts = reuse_parts(step, hashes)
            key = azure_reuse_key(step, hashes)
            entry: dict[str, Any] = {"step": binding.name, "plugin": binding.plugin, "allow_reuse": binding.allow_reuse,
                                     "code": str(step.reuse.get("code"))[:16], "would_reuse": False,
                                     "reused_from": None, "key": key, "backend": "azure"}
            upstream = [f"input {port!r} changes: upstream step {producers[src]!r} re-runs, so {src!r} is new data"
                        for port, src in sorted(binding.inputs.items())
                        if not isinstance(src, Dataset) and src in rerun]
            unknown = [f"input {port!r}: dataset {src.name!r} is not registered locally, so its content is unknown "
                       f"here; the service decides" for port, src in sorted(binding.inputs.items())
                       if isinstance(src, Dataset) and src.name not in hashes]
            if not binding.allow_reuse:
                entry["reasons"] = ["allow_reuse is False for this step"]
            elif not reuse:
                entry["reasons"] = ["reuse disabled for this run (--no-reuse)"]
            elif upstream or unknown:
                entry["reasons"] = upstream + unknown
            else:
                earlier = next((r for r in history if r.status == "Completed"
                                and r.properties.get("azure_reuse_key") == key), None)
                if earlier is not None:
                    origin = earlier.properties.get("azure_reused_from") or earlier.properties.get("azure_step_run_id")
                    entry.update(would_reuse=True, reused_from=origin,
                                 reasons=[f"would reuse Azure step run {origin}: module (code, arguments, "
                                          f"environment) and inputs unchanged"])
                else:
                    previous = next((r for r in history if r.name == binding.name
                                     and r.properties.get("azure_reuse_parts")), None)
                    entry["reasons"] = explain_parts(parts, previous.properties["azure_reuse_parts"]
                                                     if previous else None)
            if not entry["would_reuse"]:
                rerun.update(binding.outputs.values())
            found.append(entry)
        return found



def reuse_parts(step: CompiledStep, datasets: Mapping[str, str]) -> dict[str, Any]:
    """What Azure's reuse compares, in amlstep's terms: code, parameters, inputs (datasets by content),
    environment (wheels by content, pinned requirements), compute target."""
    inputs = {}
    for port, bound in (step.reuse.get("inputs") or {}).items():
        if bound.startswith("dataset:"):
            name = bound.split(":")[1]
            inputs[port] = f"dataset:{name}:{datasets.get(name, 'unknown')}"
        else:
            inputs[port] = bound
    return {"plugin": step.binding.plugin, "code": step.reuse.get("code"), "params": step.reuse.get("params"),
            "inputs": inputs, "compute": step.compute_target,
            "environment": {"wheels": sorted(w["sha256"] for w in step.environment.get("wheels", [])),
                            "requirements": step.environment.get("requirements", []),
                            "python": step.environment.get("python")}}


def azure_reuse_key(step: CompiledStep, datasets: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(reuse_parts(step, datasets), sort_keys=True, default=str).encode()).hexdigest()


def explain_parts(current: Mapping[str, Any], previous: Mapping[str, Any] | None) -> list[str]:
    """Why a step whose ingredients match no earlier Azure step run re-runs, against its latest run."""
    if previous is None:
        return ["no earlier run of this step on Azure (in the local run history)"]
    reasons = []
    if previous.get("code") != current.get("code"):
        reasons.append("code changed (the plugin's source is different)")
    old_params, new_params = previous.get("params") or {}, current.get("params") or {}
    for name in sorted(set(old_params) | set(new_params)):
        if old_params.get(name, "<unset>") != new_params.get(name, "<unset>"):
            reasons.append(f"parameter {name!r} changed: {old_params.get(name, '<unset>')!r} -> "
                           f"{new_params.get(name, '<unset>')!r}")
    old_inputs, new_inputs = previous.get("inputs") or {}, current.get("inputs") or {}
    for name in sorted(set(old_inputs) | set(new_inputs)):
        if old_inputs.get(name) != new_inputs.get(name):
            reasons.append(f"input {name!r} changed (different content)")
    if previous.get("environment") != current.get("environment"):
        reasons.append("environment changed (shipped wheels or pinned requirements differ)")
    if previous.get("compute") != current.get("compute"):
        reasons.append(f"compute target changed: {previous.get('compute')!r} -> {current.get('compute')!r}")
    return reasons or ["the earlier step run with these ingredients did not complete"]


def _config_workspace(config: str | Path | None) -> str | None:
    path = endpoint.config_path(config)
    if path is None:
        return None
    try:
        return str(json.loads(path.read_text()).get("workspace_name") or "") or None
    except (OSError, ValueError):
        return None


def _azure_step_records(local: LocalWorkspace, workspace_name: str | None) -> list[Any]:
    """Azure step runs in the local history, newest first (of one Azure workspace when named)."""
    found = []
    for pipeline_run in local.list_runs(run_type="pipeline", limit=500):
        if pipeline_run.backend != "azure":
            continue
        if workspace_name and pipeline_run.properties.get("azure_workspace") != workspace_name:
            continue
        found += list(reversed(local.get_children(pipeline_run.id)))
    return found


def _column_types(files: list[str]) -> dict[str, Any]:
    """Column types of delimited files, as pandas reads them, for ``set_column_types``."""
    import pandas as pd
    from azureml.data.dataset_factory import DataType

    frame = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    types: dict[str, Any] = {}
    for column, dtype in frame.dtypes.items():
        kind = getattr(dtype, "kind", "O")
        types[str(column)] = (DataType.to_long() if kind in "iu" else DataType.to_float() if kind == "f"
                              else DataType.to_bool() if kind == "b" else DataType.to_string())
    return types


class _Follower:
    """Follows a submitted pipeline run: step statuses become hook events, AutoML iterations too."""

    def __init__(self, backend: AzureBackend, run: Any, compiled: CompiledPipeline, step_records: Mapping[str, Any],
                 events: StepEvents | None) -> None:
        self.backend = backend
        self.run = run
        self.compiled = compiled
        self.records = step_records
        self.events = events
        self.bindings: dict[str, StepBinding] = {s.binding.name: s.binding for s in compiled.steps}
        self.steps: dict[str, dict[str, Any]] = {}
        self._runs: dict[str, Any] = {}

    def follow(self) -> str:
        local = self.backend._local_workspace()
        while True:
            try:
                with _sdk_output(self.backend.echo):
                    raw = self.run.get_status()
            except Exception as exc:
                raise service_error(f"waiting for pipeline run {self.run.id}", exc) from exc
            status = TERMINAL.get(str(raw))
            self._poll_steps(local)
            if status is not None:
                self._poll_steps(local)
                return status
            time.sleep(self.backend._poll())

    def _poll_steps(self, local: LocalWorkspace) -> None:
        try:
            with _sdk_output(self.backend.echo):
                children = list(self.run.get_steps())
        except Exception:  # the step list is a nicety; the pipeline status is what counts
            return
        for step_run in children:
            name = step_run.name
            if name not in self.bindings:
                continue
            self._runs[name] = step_run
            try:
                with _sdk_output(self.backend.echo):
                    raw = step_run.get_status()
                    properties = step_run.get_properties() if raw in TERMINAL else {}
            except Exception:
                continue
            status = TERMINAL.get(raw, "Running" if raw in ("Running", "Queued", "Preparing", "Starting",
                                                            "Finalizing") else None)
            if status is None:
                continue
            seen = self.steps.setdefault(name, {"status": "NotStarted", "reused": False, "azure_run_id": step_run.id})
            record = self.records[name]
            binding = self.bindings[name]
            if status == "Running" and seen["status"] == "NotStarted":
                seen["status"], seen["started"] = "Running", time.time()
                local.update_run(record.id, status="Running", properties={**record.properties,
                                                                            "azure_step_run_id": step_run.id})
                if self.events is not None:
                    self.events.started(binding, record.id)
            if binding.spec.kind == "automl" and status in ("Running", "Completed"):
                self._poll_children(step_run, record.id)
            if status in ("Completed", "Failed", "Canceled") and seen["status"] in ("NotStarted", "Running"):
                self._ended(binding, step_run, record, status, properties or {}, local)

    def _ended(self, binding: StepBinding, step_run: Any, record: Any, status: str, properties: Mapping[str, Any],
               local: LocalWorkspace) -> None:
        seen = self.steps[binding.name]
        seen["status"] = status
        seen["duration"] = time.time() - seen["started"] if seen.get("started") else None
        reused_from = (step_run.id if getattr(step_run, "_is_reused", False) else None) \
            or properties.get("azureml.reusedrunid")
        changes: dict[str, Any] = {"status": status, "properties": {**record.properties,
                                                                    "azure_step_run_id": step_run.id}}
        if reused_from:
            seen["reused"], seen["reused_from"] = True, reused_from
            original = local_step_for(local, reused_from)
            if original is not None:
                seen["reused_from_local"] = original.id
                changes["reused_from"] = original.id
            changes["properties"]["azure_reused_from"] = reused_from
            changes["properties"]["reuse_reasons"] = [f"reused Azure step run {reused_from}"]
        if status != "Completed":
            seen["error"] = self._step_error(step_run)
            changes["error"] = seen["error"]
        local.update_run(record.id, **changes)
        fire_step_events(self.events, binding, record.id, status, seen)

    def _poll_children(self, step_run: Any, record_id: str) -> None:
        if self.events is None:
            return
        try:
            with _sdk_output(self.backend.echo):
                children = list(step_run.get_children())
        except Exception:
            return
        for child in children:
            try:
                with _sdk_output(self.backend.echo):
                    status = TERMINAL.get(child.get_status())
                    if status is None or self.events is None:
                        continue
                    properties = dict(child.get_properties())
                    metrics = dict(child.get_metrics())
            except Exception:
                continue
            decoded = {k: _decode(v) for k, v in properties.items()}
            decoded.setdefault("display_name", getattr(child, "name", None))
            self.events.child_ended(record_id, child.id, status, decoded, metrics)

    def _step_error(self, step_run: Any) -> str:
        try:
            with _sdk_output(self.backend.echo):
                details = step_run.get_details()
            message = ((details.get("error") or {}).get("error") or {}).get("message") or "no message"
        except Exception as exc:
            message = f"(could not read the step's error: {_short(exc)})"
        return f"step {step_run.name!r} failed on Azure: {message}"

    def log_tail(self, step_run: Any) -> tuple[str, list[str]] | None:
        """The last lines of a step run's log, as the service keeps it."""
        try:
            with _sdk_output(self.backend.echo):
                names = list(step_run.get_file_names())
        except Exception:
            return None
        for name in LOG_FILES:
            if name not in names:
                continue
            try:
                import tempfile

                with tempfile.TemporaryDirectory(prefix="amlstep-log-") as folder, _sdk_output(self.backend.echo):
                    target = Path(folder) / "log.txt"
                    step_run.download_file(name, output_file_path=str(target))
                    lines = target.read_text(errors="replace").rstrip().splitlines()
                return name, lines[-LOG_TAIL_LINES:]
            except Exception:
                continue
        return None

    def failure_message(self, status: str) -> str:
        for name in self.bindings:
            seen = self.steps.get(name)
            if seen is None or seen["status"] not in ("Failed", "Canceled"):
                continue
            message = f"{seen.get('error')} (pipeline run {self.run.id})"
            tail = self.log_tail(self._runs[name]) if name in self._runs else None
            if tail:
                log_name, lines = tail
                message += f"\nlast lines of its log ({log_name}):\n" + "\n".join("  " + line for line in lines)
            return message
        return failure_message(self.run, status)


def _decode(value: Any) -> Any:
    if isinstance(value, str) and (value[:1] in ("[", "{") or value in ("true", "false", "null")):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def local_step_for(local: LocalWorkspace, azure_step_run_id: str) -> Any:
    """The local record of an Azure step run (found by the id the service gave it)."""
    for pipeline_run in local.list_runs(run_type="pipeline", limit=200):
        if pipeline_run.backend != "azure":
            continue
        for step in local.get_children(pipeline_run.id):
            if step.properties.get("azure_step_run_id") == azure_step_run_id:
                return step
    return None


def _dataset_paths(ws: Any, dataset: Dataset) -> list[Any]:
    """URLs stay URLs; local files are uploaded to the default datastore first."""
    from ...workspace.sources import is_url

    urls = [s for s in dataset.sources if is_url(s)]
    files = [s for s in dataset.sources if not is_url(s)]
    paths: list[Any] = list(urls)
    if files:
        datastore = ws.get_default_datastore()
        target = f"amlstep/datasets/{dataset.name}"
        datastore.upload_files(files, target_path=target, overwrite=True, show_progress=False)
        paths += [(datastore, f"{target}/{Path(f).name}") for f in files]
    return paths


@contextlib.contextmanager
def _sdk_output(echo: TextIO | None) -> Iterator[None]:
    """Send what the SDK prints to ``echo`` (or nowhere), never into --json output; silence its error
    logs (a dataset looked up before it is registered logs a 404 at ERROR level): amlstep reports the
    failures that matter itself."""
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.ERROR)
    try:
        with contextlib.redirect_stdout(echo if echo is not None else io.StringIO()):
            yield
    finally:
        logging.disable(previous)


def _short(exc: BaseException) -> str:
    """The service's message inside an SDK exception (which quotes it in a JSON dump, escaped)."""
    import re

    text = " ".join(str(exc).split())
    for marker in ('"message": "', "Message: "):
        if marker in text:
            rest = text.split(marker, 1)[1]
            text = re.split(r'(?<!\\)"', rest, maxsplit=1)[0] if marker.startswith('"') else rest.split('"', 1)[0]
            break
    text = text.replace("\\'", "'").replace('\\"', '"')
    return text[:400] or type(exc).__name__


def _portal_url(run: Any) -> str | None:
    try:
        return str(run.get_portal_url())
    except Exception:
        return None


def service_error(doing: str, exc: BaseException) -> BackendError:
    """A BackendError for a failed service call; authentication failures say how to log in again."""
    text = f"{type(exc).__name__}: {exc}"
    lowered = text.lower()
    if any(s in lowered for s in ("401", "authenticationfailed", "authentication", "unauthorized", "expired",
                                  "invalid_grant", "az login")):
        return BackendError(f"Azure authentication failed while {doing}: {_short(exc)}; sign in again "
                            f"(`az login`, or the service principal in AZUREML_* variables) and check that you can "
                            f"access the workspace")
    return BackendError(f"Azure ML service error while {doing}: {_short(exc)}")


def failure_message(run: Any, status: str) -> str:
    """'step NAME failed on Azure: MESSAGE' from the first failed step run, else the pipeline run's error."""
    try:
        for step_run in run.get_steps():
            if step_run.get_status() in ("Failed", "Canceled"):
                details = step_run.get_details()
                message = ((details.get("error") or {}).get("error") or {}).get("message") or "no message"
                return f"step {step_run.name!r} failed on Azure: {message} (pipeline run {run.id})"
    except Exception:
        pass
    try:
        details = run.get_details()
        message = ((details.get("error") or {}).get("error") or {}).get("message")
    except Exception:
        message = None
    return f"pipeline run {run.id} ended {status} on Azure" + (f": {message}" if message else "")


__all__ = ["AzureBackend", "Provisioning", "INSTALL_HINT"]
