"""Submitting with the Azure ML SDK v1: workspace, compute, datasets, compile, submit, download.

``AzureBackend(dry_run=True)`` compiles against an offline stand-in and never contacts Azure.
Otherwise the workspace is the one given (``aml_workspace=``), or ``Workspace.from_config()``
(``config=`` names the file or folder; a config written by ``amlstep fake-azure`` is recognised and
its service reached with its token); missing compute clusters are created with the provisioning
settings and waited for; datasets the workspace lacks are registered (a dataset of the local
workspace is uploaded with its content); the wheels steps ship are uploaded with the submission.
Following the run, the local record and the hooks are the SDK-neutral core's (``..backend``,
``..follower``, through ``session.V1Session``).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator, Mapping, TextIO

from ....errors import BackendError
from ....manager import Plugins
from ....pipeline import Dataset, ValidatedPipeline
from ....results import PipelineRunResult
from ....workspace import LocalWorkspace
from .. import endpoint
from ..backend import SHA256_TAG, AzureBackendBase, Provisioning, unregistered
from ..compiled import CompiledPipeline, CompiledStep, Compiler, compute_name
from ..errors import sdk_output
from ..provenance import no_local_checkout_v1
from ..reuse import azure_reuse_key, reuse_parts
from .sdk import INSTALL_HINT, require_azureml
from .session import V1Session, service_error, short


class AzureBackend(AzureBackendBase):
    """Compiles pipelines to Azure ML SDK v1 objects and submits them."""

    sdk = "v1"

    def __init__(self, workspace: LocalWorkspace | str | Path | None = None, *, echo: TextIO | None = None,
                 dry_run: bool = False, compute: str | None = None, config: str | Path | None = None,
                 aml_workspace: Any = None, wait: bool = True, download: bool = True,
                 download_dir: str | Path | None = None, provisioning: Provisioning | None = None,
                 show_output: bool = False, poll_seconds: float | None = None, **unknown: Any) -> None:
        super().__init__(workspace, echo=echo, dry_run=dry_run, compute=compute, config=config, wait=wait,
                         download=download, download_dir=download_dir, provisioning=provisioning,
                         poll_seconds=poll_seconds, **unknown)
        self.aml_workspace = aml_workspace
        self.show_output = show_output
        if aml_workspace is not None:
            self._service = None
        self._dataset_hashes: dict[str, str] = {}
        self.dataset_versions: dict[str, int] = {}  # name -> the Azure version a submission reads (pinned)

    @property
    def compiler(self) -> Compiler:
        from . import COMPILER

        return COMPILER

    # -- compile ------------------------------------------------------------------------------------
    def compile(self, pipeline: ValidatedPipeline, *, plugins: Plugins,
                params: Mapping[str, Any] | None = None, reuse: bool = True) -> CompiledPipeline:
        """Build the SDK v1 objects; offline (dry run) unless a workspace was given."""
        if self.dry_run or self.aml_workspace is None:
            return super().compile(pipeline, plugins=plugins, params=params, reuse=reuse)
        from ..shipping import WheelBuilder
        from .offline import workspace_resources

        wheels = WheelBuilder(self._wheel_cache())
        with sdk_output(self.echo):
            return self.compiler.compile_pipeline(pipeline, plugins=plugins, params=params, compute=self.compute,
                                                  reuse=reuse,
                                                  target=workspace_resources(self.aml_workspace, wheels=wheels,
                                                                             versions=self.dataset_versions))

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
    def submit_pipeline(self, pipeline: ValidatedPipeline, *, plugins: Plugins, params: Mapping[str, Any] | None,
                        reuse: bool) -> PipelineRunResult:
        """Reach the workspace, create what it lacks (compute, datasets), compile for it and submit."""
        self._local_workspace()  # resolved before HOME may point elsewhere for the SDK
        with endpoint.patched_environ(endpoint.environment(self._service) if self._service else {}), self._service_home():
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
            with sdk_output(self.echo), no_local_checkout_v1():
                run = Experiment(ws, compiled.experiment).submit(
                    compiled.pipeline, pipeline_parameters=submitted_params or None,
                    continue_on_step_failure=compiled.validated.pipeline.continue_on_step_failure)
        except Exception as exc:
            raise service_error(f"submitting experiment {compiled.experiment!r}", exc) from exc
        hashes = self._dataset_hashes

        def step_properties(step: CompiledStep) -> dict[str, Any]:
            return {"azure_reuse_key": azure_reuse_key(step, hashes), "azure_reuse_parts": reuse_parts(step, hashes),
                    "datasets": {k: v for k, v in hashes.items()
                                 if f"dataset:{k}:" in json.dumps(step.reuse.get("inputs"))},
                    "azure_outputs": dict(step.binding.outputs)}  # SDK v1 names each output by its data name

        return self.track(compiled, run.id, plugins=plugins, started=started, workspace_name=getattr(ws, "name", None),
                          portal_url=_portal_url(run), step_properties=step_properties,
                          session=V1Session(self.echo), run=run,
                          download=lambda result, following: self._download(run, compiled, result))

    @contextlib.contextmanager
    def _reached(self) -> Iterator[Any]:
        """The workspace, with the SDK's environment set for the whole block."""
        self._local_workspace()
        with endpoint.patched_environ(endpoint.environment(self._service) if self._service else {}), \
                self._service_home():
            require_azureml()
            self.aml_workspace = self.workspace()
            yield self.aml_workspace

    def _pipeline_run(self, ws: Any, record: Any) -> Any:
        from azureml.core import Experiment
        from azureml.pipeline.core import PipelineRun

        def look_up() -> Any:
            with sdk_output(self.echo):
                return PipelineRun(Experiment(ws, record.experiment), record.id)

        return self.reach(f"looking up pipeline run {record.id} in workspace {getattr(ws, 'name', '?')!r}", look_up,
                          on_error=service_error)

    def reattach(self, record: Any, *, plugins: Plugins | None = None) -> PipelineRunResult:
        """Follow a submitted pipeline run again from its local record (``amlstep runs follow``)."""
        with self._reached() as ws:
            run = self._pipeline_run(ws, record)
            outputs = SimpleNamespace(pipeline_outputs=dict(record.properties.get("pipeline_outputs") or {}))
            return self.follow_recorded(record, session=V1Session(self.echo), run=run,
                                        download=lambda result, following: self._download(run, outputs, result))

    def peek(self, record: Any) -> str:
        """The run's status on Azure now (one look: ``amlstep runs refresh``)."""
        with self._reached() as ws:
            run = self._pipeline_run(ws, record)
            return self.reach(f"reading the status of pipeline run {record.id}", V1Session(self.echo).status, run,
                              on_error=service_error)

    def _download(self, run: Any, compiled: Any, result: PipelineRunResult) -> dict[str, str]:
        target = self.download_dir or (self._local_workspace().path / "downloads")
        outputs: dict[str, str] = {}
        for name in sorted(compiled.pipeline_outputs):
            try:
                with sdk_output(self.echo):
                    port = run.get_pipeline_output(name)
                    port.download(str(target), show_progress=False)
                # the files land under target/<path on datastore> (azureml/<step run id>/<output name>)
                where = getattr(port, "path_on_datastore", None) or f"azureml/{run.id}/{name}"
                outputs[name] = str(target / where)
            except Exception as exc:
                result.details.setdefault("download_errors", {})[name] = (
                    f"could not download pipeline output {name!r}: {type(exc).__name__}: {short(exc)}")
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
            with sdk_output(self.echo):
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
                with sdk_output(self.echo):
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
                with sdk_output(self.echo):
                    target = ComputeTarget.create(ws, name, AmlCompute.provisioning_configuration(**options))
                    target.wait_for_completion(show_output=False, min_node_count=None,
                                               timeout_in_minutes=p.timeout_minutes)
            except Exception as exc:
                raise BackendError(f"could not create compute target {name!r} ({p.vm_size}, "
                                   f"{p.min_nodes}-{p.max_nodes} nodes): {short(exc)}") from exc
            state = getattr(getattr(target, "provisioning_state", None), "lower", lambda: "")()
            if state in ("failed", "canceled"):
                errors = getattr(target, "provisioning_errors", None)
                raise BackendError(f"could not create compute target {name!r}: provisioning {state}: {errors}")

    def ensure_datasets(self, datasets: list[Dataset]) -> None:
        """Make the workspace hold each dataset the pipeline reads, and pin the version the submission uses.

        A dataset registered in the local workspace is mirrored by content: its files are uploaded to the
        default datastore (under ``amlstep/datasets/<name>/<sha256 prefix>/``) and registered as a
        TabularDataset of the same name, tagged with the content hash, with ``create_new_version=True``. The
        same content again is the version that holds it: the latest when its tag matches, else the one the
        service names when it refuses an identical registration ("An identical dataset has been registered as
        NAME:VERSION"), whichever SDK or user registered first; new content is a new version. The submission
        reads the version found (``dataset_versions``), not "latest", which an SDK v2 data asset or another
        user may have moved. Otherwise a dataset the workspace lacks is registered from the pipeline's sources
        (URLs are read by the service; local files are uploaded first).
        """
        from azureml.core import Dataset as AzureDataset

        from ....workspace.sources import is_url

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
            existing = self._latest_dataset(dataset.name)
            if mine is not None:
                if existing is not None and (getattr(existing, "tags", None) or {}).get(SHA256_TAG) == mine.sha256:
                    self._pin(dataset.name, existing)
                    continue
                self._upload_local_dataset(dataset, mine)
                continue
            if existing is not None:
                if dataset.version:
                    self._check_version(dataset)
                else:
                    self._pin(dataset.name, existing)
                self._dataset_hashes[dataset.name] = ((getattr(existing, "tags", None) or {}).get(SHA256_TAG)
                                                      or f"azure:{getattr(existing, 'id', None)}")
                continue
            if not dataset.sources or dataset.version:
                raise unregistered(dataset)
            self._say(f"registering dataset {dataset.name!r} from {', '.join(dataset.sources)}")
            try:
                with sdk_output(self.echo):
                    paths = _dataset_paths(ws, dataset)
                    tabular = AzureDataset.Tabular.from_delimited_files(path=paths)
                self._register(tabular, dataset.name, description=dataset.description or None, tags=None)
            except BackendError:
                raise
            except Exception as exc:
                raise BackendError(f"could not register dataset {dataset.name!r} from "
                                   f"{', '.join(dataset.sources)}: {short(exc)}") from exc

    def _latest_dataset(self, name: str) -> Any:
        from azureml.core import Dataset as AzureDataset

        try:
            with sdk_output(self.echo):
                return AzureDataset.get_by_name(self.aml_workspace, name, version="latest")
        except Exception as exc:
            if "Cannot find dataset" not in str(exc) and "not found" not in str(exc).lower():
                raise service_error(f"looking up dataset {name!r}", exc) from exc
        return None

    def _pin(self, name: str, dataset: Any) -> None:
        version = getattr(dataset, "version", None)
        if version is not None:
            self.dataset_versions[name] = int(version)

    def _register(self, tabular: Any, name: str, *, description: str | None, tags: dict[str, str] | None) -> None:
        """Register ``tabular`` as a new version of ``name``: the same content is the version holding it.

        ``create_new_version=True`` also works when the name is new, so concurrent first registrations do not
        race each other into "already registered" (check-then-register); an identical definition is refused by
        the service naming the version that holds it, which is the version to use.
        """
        from azureml.core import Dataset as AzureDataset

        for attempt in range(3):
            try:
                with sdk_output(self.echo):
                    registered = tabular.register(workspace=self.aml_workspace, name=name, description=description,
                                                  tags=tags, create_new_version=True)
                self._pin(name, registered)
                return
            except Exception as exc:
                identical = re.search(r'registered[^"]*?name="?([^",]+)"?,\s*version=(\d+)', str(exc)) or \
                    re.search(r"has been registered as (.+?):(\d+) \(name:version\)", str(exc))
                if identical:
                    with sdk_output(self.echo):
                        found = AzureDataset.get_by_name(self.aml_workspace, name, version=int(identical.group(2)))
                    self._pin(name, found)
                    return
                if "already" in str(exc).lower() and attempt < 2:  # another client registered it meanwhile
                    continue
                raise

    def _check_version(self, dataset: Dataset) -> None:
        from azureml.core import Dataset as AzureDataset

        try:
            with sdk_output(self.echo):
                AzureDataset.get_by_name(self.aml_workspace, dataset.name, version=dataset.version)
        except Exception as exc:
            raise BackendError(f"dataset {dataset.name!r} version {dataset.version} is not registered in the "
                               f"workspace: {short(exc)}") from exc

    def _upload_local_dataset(self, dataset: Dataset, mine: Any) -> None:
        """Upload a local dataset version's files and register them as a TabularDataset, tagged by hash."""
        from azureml.core import Dataset as AzureDataset

        ws = self.aml_workspace
        target = f"amlstep/datasets/{dataset.name}/{mine.sha256[:16]}"
        files = [str(p) for p in mine.file_paths()]
        self._say(f"uploading dataset {dataset.name!r} version {mine.version} ({len(files)} file(s), sha256 "
                  f"{mine.sha256[:12]}) to the workspace's default datastore")
        try:
            with sdk_output(self.echo):
                datastore = ws.get_default_datastore()
                datastore.upload_files(files, target_path=target, overwrite=True, show_progress=False)
                paths = [(datastore, f"{target}/{Path(f).name}") for f in files]
                # the column types come from the local copy (the same bytes), so nothing is read back
                tabular = AzureDataset.Tabular.from_delimited_files(
                    path=paths, validate=False, infer_column_types=False, set_column_types=_column_types(files))
            self._register(tabular, dataset.name, description=mine.description or None,
                           tags={SHA256_TAG: mine.sha256})
        except Exception as exc:
            raise BackendError(f"could not upload dataset {dataset.name!r} to the workspace: {short(exc)}") from exc


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


def _dataset_paths(ws: Any, dataset: Dataset) -> list[Any]:
    """URLs stay URLs; local files are uploaded to the default datastore first."""
    from ....workspace.sources import is_url

    urls = [s for s in dataset.sources if is_url(s)]
    files = [s for s in dataset.sources if not is_url(s)]
    paths: list[Any] = list(urls)
    if files:
        datastore = ws.get_default_datastore()
        target = f"amlstep/datasets/{dataset.name}"
        datastore.upload_files(files, target_path=target, overwrite=True, show_progress=False)
        paths += [(datastore, f"{target}/{Path(f).name}") for f in files]
    return paths


def _portal_url(run: Any) -> str | None:
    try:
        return str(run.get_portal_url())
    except Exception:
        return None


__all__ = ["AzureBackend", "Provisioning", "INSTALL_HINT"]
