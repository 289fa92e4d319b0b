"""The Azure backend: workspace, compute, datasets, compile, submit, wait, download, record.

``AzureBackend(dry_run=True)`` compiles against an offline stand-in and never contacts Azure.
Otherwise the workspace is the one given (``aml_workspace=``), or ``Workspace.from_config()``
(``config=`` names the file or folder); missing compute clusters are created with the
provisioning settings and waited for; datasets the workspace lacks are registered from their
sources; the submitted run is recorded in the local run history (backend ``azure``).
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, TextIO

from ...errors import BackendError, PipelineValidationError
from ...manager import Plugins
from ...pipeline import Dataset, ValidatedPipeline
from ...results import PipelineRunResult, StepRunResult
from ...workspace import LocalWorkspace
from .compiler_v1 import CompiledPipeline, compile_pipeline, compute_name
from .sdk import INSTALL_HINT, require_azureml

TERMINAL = {"Completed": "Completed", "Finished": "Completed", "Failed": "Failed", "Canceled": "Canceled",
            "Cancelled": "Canceled"}


@dataclass(frozen=True)
class Provisioning:
    """How a missing compute cluster is created (the seed's ``AmlCompute.provisioning_configuration``)."""

    vm_size: str = "STANDARD_D2_V2"
    min_nodes: int = 0
    max_nodes: int = 1
    idle_seconds_before_scaledown: int | None = None
    timeout_minutes: int = 20


class AzureBackend:
    """Compiles pipelines to Azure ML SDK v1 objects and submits them."""

    name = "azure"

    def __init__(self, workspace: LocalWorkspace | str | Path | None = None, *, echo: TextIO | None = None,
                 dry_run: bool = False, compute: str | None = None, config: str | Path | None = None,
                 aml_workspace: Any = None, wait: bool = True, download: bool = True,
                 download_dir: str | Path | None = None, provisioning: Provisioning | None = None,
                 show_output: bool = False, **_ignored: Any) -> None:
        self._local = workspace
        self.echo = echo
        self.dry_run = dry_run
        self.compute = compute
        self.config = config
        self.aml_workspace = aml_workspace
        self.wait = wait
        self.download = download
        self.download_dir = Path(download_dir) if download_dir else None
        self.provisioning = provisioning or Provisioning()
        self.show_output = show_output

    # -- compile / plan ---------------------------------------------------------------------------
    def compile(self, pipeline: ValidatedPipeline, *, plugins: Plugins,
                params: Mapping[str, Any] | None = None, reuse: bool = True) -> CompiledPipeline:
        """Build the SDK v1 objects; offline (dry run) unless a workspace was given."""
        from . import plan as plan_module
        from .offline import offline_import

        if self.dry_run or self.aml_workspace is None:
            with offline_import():
                require_azureml()
            with self._offline(pipeline) as resources:
                compiled = compile_pipeline(pipeline, resources, plugins=plugins, params=params, compute=self.compute,
                                            reuse=reuse)
                compiled.plan = plan_module.render(compiled)  # type: ignore[attr-defined]
            return compiled
        from .offline import workspace_resources

        with _sdk_output(self.echo):
            compiled = compile_pipeline(pipeline, workspace_resources(self.aml_workspace), plugins=plugins,
                                        params=params, compute=self.compute, reuse=reuse)
        compiled.plan = plan_module.render(compiled, workspace=self.aml_workspace.name)  # type: ignore[attr-defined]
        return compiled

    def plan(self, pipeline: ValidatedPipeline, *, plugins: Plugins,
             params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The compiled plan (offline): every SDK object built, nothing contacted."""
        return self.compile(pipeline, plugins=plugins, params=params).plan  # type: ignore[attr-defined,no-any-return]

    @contextlib.contextmanager
    def _offline(self, pipeline: ValidatedPipeline) -> Iterator[Any]:
        from .offline import offline_resources

        computes = [compute_name(pipeline, b, self.compute) for b in pipeline.steps]
        with offline_resources(computes, pipeline.datasets()) as resources:
            yield resources

    # -- run ----------------------------------------------------------------------------------------
    def run(self, pipeline: ValidatedPipeline, *, plugins: Plugins, params: Mapping[str, Any] | None = None,
            reuse: bool = True, resume: str | None = None) -> PipelineRunResult:
        if resume is not None:
            raise PipelineValidationError("--resume works with the local backend only; on Azure, resubmit: "
                                          "unchanged steps are reused by the service")
        if self.dry_run:
            compiled = self.compile(pipeline, plugins=plugins, params=params, reuse=reuse)
            return PipelineRunResult(run_id="dry-run", experiment=pipeline.experiment, status="DryRun",
                                     backend=self.name, params=compiled.parameter_values,
                                     details={"plan": compiled.plan})  # type: ignore[attr-defined]
        require_azureml()
        ws = self.workspace()
        self.aml_workspace = ws
        self.ensure_compute(sorted({compute_name(pipeline, b, self.compute) for b in pipeline.steps}))
        self.ensure_datasets(pipeline.datasets())
        compiled = self.compile(pipeline, plugins=plugins, params=params, reuse=reuse)
        return self.submit(compiled, plugins=plugins)

    def submit(self, compiled: CompiledPipeline, *, plugins: Plugins | None = None) -> PipelineRunResult:
        """Submit compiled objects, record the run locally, wait and download unless told not to."""
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
        local = self._local_workspace()
        record = local.create_run(
            run_type="pipeline", name=compiled.experiment, experiment=compiled.experiment, run_id=run.id,
            backend=self.name, status="Running", params=dict(values),
            properties={"steps": [s.binding.name for s in compiled.steps],
                        "pipeline_outputs": dict(compiled.pipeline_outputs),
                        "source": compiled.validated.pipeline.source, "azure_run_id": run.id,
                        "azure_workspace": getattr(ws, "name", None), "sdk": "v1",
                        "portal_url": _portal_url(run)})
        step_records = {}
        for step in compiled.steps:
            step_records[step.binding.name] = local.create_run(
                run_type="step", name=step.binding.name, experiment=compiled.experiment, parent_id=record.id,
                backend=self.name, status="NotStarted",
                properties={"plugin": step.binding.plugin, "kind": step.binding.spec.kind,
                            "sdk_class": type(step.sdk_step).__name__, "compute_target": step.compute_target,
                            "reuse": step.reuse})
        self._say(f"submitted pipeline run {run.id} to experiment {compiled.experiment!r}")
        hook = plugins.hook if plugins is not None else None
        if hook is not None:
            hook.before_pipeline_run(run_id=run.id, pipeline=compiled.validated.pipeline, params=dict(values),
                                     backend=self.name)
        result = PipelineRunResult(run_id=run.id, experiment=compiled.experiment, status="Running",
                                   backend=self.name, params=dict(values),
                                   steps=[StepRunResult(name, r.id, "NotStarted") for name, r in step_records.items()],
                                   details={"azure_run_id": run.id, "portal_url": _portal_url(run)})
        if not self.wait:
            result.details["wait"] = False
            return result
        try:
            self._finish(run, compiled, result, record.id, step_records, started)
        except BaseException as exc:  # the Azure run goes on; say locally that amlstep stopped following it
            changes = {"error": f"amlstep stopped following Azure run {run.id} (it may still be running on Azure): "
                                f"{type(exc).__name__}: {exc}"}
            if not isinstance(exc, KeyboardInterrupt):
                changes["status"] = "Failed"
            local.update_run(record.id, **changes)
            raise
        if hook is not None:
            hook.after_pipeline_run(run_id=run.id, pipeline=compiled.validated.pipeline, result=result)
        return result

    def _finish(self, run: Any, compiled: CompiledPipeline, result: PipelineRunResult, record_id: str,
                step_records: dict[str, Any], started: float) -> None:
        """Wait for the run, record step and pipeline statuses, download the outputs."""
        local = self._local_workspace()
        status = self._wait(run)
        result.status = status
        result.duration = time.time() - started
        if status != "Completed":
            result.error = failure_message(run, status)
        step_status = self._step_statuses(run, status)
        for step_result in result.steps:
            step_result.status = step_status.get(step_result.name, status if status != "Completed" else "Completed")
            local.update_run(step_records[step_result.name].id, status=step_result.status)
        if status == "Completed" and self.download:
            result.outputs = self._download(run, compiled, result)
        local.update_run(record_id, status=result.status, error=result.error, outputs=dict(result.outputs))

    def _wait(self, run: Any) -> str:
        try:
            with _sdk_output(self.echo):
                raw = run.wait_for_completion(show_output=self.show_output, raise_on_error=False)
        except Exception as exc:
            raise service_error(f"waiting for pipeline run {run.id}", exc) from exc
        if isinstance(raw, dict):
            raw = raw.get("status", "Failed")
        return TERMINAL.get(str(raw), str(raw))

    def _step_statuses(self, run: Any, status: str) -> dict[str, str]:
        found: dict[str, str] = {}
        try:
            for step_run in run.get_steps():
                found[step_run.name] = TERMINAL.get(step_run.get_status(), step_run.get_status())
        except Exception:  # the step list is a nicety; the pipeline status is what counts
            return {}
        return found

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
        """Register the datasets the workspace lacks from their sources (the seed's pattern)."""
        from azureml.core import Dataset as AzureDataset

        ws = self.aml_workspace
        for dataset in datasets:
            try:
                with _sdk_output(self.echo):
                    AzureDataset.get_by_name(ws, dataset.name, version=dataset.version or "latest")
                continue
            except Exception as exc:
                if "Cannot find dataset" not in str(exc) and "not found" not in str(exc).lower():
                    raise service_error(f"looking up dataset {dataset.name!r}", exc) from exc
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

    # -- helpers ------------------------------------------------------------------------------------
    def _local_workspace(self) -> LocalWorkspace:
        if not isinstance(self._local, LocalWorkspace):
            self._local = LocalWorkspace(self._local)
        return self._local

    def _say(self, message: str) -> None:
        if self.echo is not None:
            print(message, file=self.echo, flush=True)


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
    """Send what the SDK prints to ``echo`` (or nowhere), never into --json output."""
    with contextlib.redirect_stdout(echo if echo is not None else io.StringIO()):
        yield


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    for marker in ('"message": "', "Message: "):
        if marker in text:
            text = text.split(marker, 1)[1].split('"', 1)[0]
            break
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
