"""Submitting with the Azure ML SDK v2: ``MLClient`` calls for compute, data, jobs, downloads and metrics.

The calls themselves are ``session.V2Session``'s; following the job, the local record and the hooks
are the SDK-neutral core's (``..backend``, ``..follower``).

What the backend does under ``--sdk v2``, with ``azure-ai-ml`` only:

- compute: ``ml_client.compute.get``; a missing cluster is created with
  ``ml_client.compute.begin_create_or_update(AmlCompute(...)).result()``;
- datasets: a ``Dataset`` the pipeline reads is an ``mltable`` data asset of the same name. One
  registered in the local workspace is mirrored by content (its files and an ``MLTable`` uploaded with
  ``ml_client.data.create_or_update``, tagged ``amlstep_sha256``); one with URL sources becomes an
  MLTable that reads the URLs;
- submission: ``ml_client.jobs.create_or_update(pipeline_job, experiment_name=...)``;
- following: ``ml_client.jobs.get`` for the pipeline, ``ml_client.jobs.list(parent_job_name=...)``
  for its steps (the step lifecycle hooks fire as they end), MLflow for AutoML's child runs; a failed
  step's error comes from ``ml_client.jobs.stream`` and its log from ``ml_client.jobs.download``;
- results: ``ml_client.jobs.download(name, output_name=...)`` for each pipeline output; a pipeline
  output bound to AutoML's metrics (SDK v2 AutoML has no such output) is read from the AutoML job's
  child runs through MLflow and written as the same JSON SDK v1's ``TrainingOutput('Metrics')`` holds
  (``{child_run_id: {metric: [value]}}``).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

from ....errors import BackendError
from ....results import PipelineRunResult
from ..backend import AzureBackendBase
from ..compiled import Compiler, compute_name
from ..endpoint import patched_environ
from ..errors import sdk_output
from ..follower import Follower
from ..plans import DRY_RUN_WORKSPACE
from ..reuse import azure_reuse_key, reuse_parts
from . import client
from .compiler import AUTOML_MODEL
from .session import V2Session, service_error, short


def download_outputs(session: V2Session, job_name: str, compiled: Any, follower: Follower, target: Path,
                     result: PipelineRunResult) -> dict[str, str]:
    """Each pipeline output, downloaded into ``target/<job>/<output>``; metrics read from the AutoML trials."""
    outputs: dict[str, str] = {}
    for name in sorted(compiled.pipeline_outputs):
        where = target / job_name
        try:
            if name in compiled.run_history_outputs:
                step = compiled.run_history_outputs[name]
                child = follower.children.get(step)
                if child is None:
                    raise BackendError(f"step {step!r} is not among the job's children")
                origin = child.reused_from or child.id
                metrics = session.automl_metrics(origin)
                folder = where / "named-outputs" / name
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / compiled.pipeline_outputs[name]
                path.write_text(json.dumps(metrics, indent=1))
                outputs[name] = str(path)
            else:
                outputs[name] = str(session.download(job_name, name, where))
        except Exception as exc:
            result.details.setdefault("download_errors", {})[name] = (
                f"could not download pipeline output {name!r}: {type(exc).__name__}: {short(exc)}")
    return outputs


def output_names(step: Any) -> dict[str, str | None]:
    """Each output port of a compiled step -> the node's output to download (None: AutoML's metrics, read from
    its trials through MLflow: SDK v2 AutoML has no metrics output)."""
    if step.kind == "automl":
        return {port: (AUTOML_MODEL if port == "model" else None) for port in step.binding.outputs}
    return {port: port for port in step.binding.outputs}


class AzureBackendV2(AzureBackendBase):
    """Compiles pipelines to Azure ML SDK v2 entities and submits them with ``MLClient``.

    Options beyond the shared ones: ``ml_client`` (an ``MLClient`` to use; else one from ``config``),
    ``credential`` (else ``DefaultAzureCredential``, or the fake's for a config of ``amlstep fake-azure``),
    ``yaml`` (a dry run also writes the pipeline job YAML there).
    """

    sdk = "v2"

    def __init__(self, workspace: Any = None, *, echo: Any = None, dry_run: bool = False, compute: str | None = None,
                 config: str | Path | None = None, ml_client: Any = None, credential: Any = None, wait: bool = True,
                 download: bool = True, download_dir: str | Path | None = None, provisioning: Any = None,
                 poll_seconds: float | None = None, yaml: str | Path | None = None, **unknown: Any) -> None:
        super().__init__(workspace, echo=echo, dry_run=dry_run, compute=compute, config=config, wait=wait,
                         download=download, download_dir=download_dir, provisioning=provisioning,
                         poll_seconds=poll_seconds, **unknown)
        self.ml_client = ml_client
        self.credential = credential
        self.yaml = Path(yaml) if yaml else None
        self._session: V2Session | None = None
        if ml_client is not None:
            self._service = None

    @property
    def compiler(self) -> Compiler:
        from . import COMPILER

        return COMPILER

    # -- compile -----------------------------------------------------------------------------------
    def compile(self, pipeline: Any, *, plugins: Any, params: Mapping[str, Any] | None = None,
                reuse: bool = True, assets: Path | None = None) -> Any:
        """The SDK v2 ``PipelineJob`` (in ``.pipeline``) and its plan (``.plan``); contacts nothing.

        ``assets`` receives the code folder and the environments' build contexts; without it a
        plan-only compilation writes them in a temporary folder (removed), or beside ``yaml``.
        """
        from . import Target
        from . import plan as plan_v2

        if assets is None:
            if self.yaml is None:  # a plan only: the assets are written, described, then removed
                with tempfile.TemporaryDirectory(prefix="amlstep-v2-assets-") as folder:
                    return self.compile(pipeline, plugins=plugins, params=params, reuse=reuse, assets=Path(folder))
            assets = plan_v2.prepare_assets(self.yaml)
        with sdk_output(self.echo):
            workspace = DRY_RUN_WORKSPACE
            if not self.dry_run and self.ml_client is not None:
                workspace = str(getattr(self.ml_client, "workspace_name", workspace))
            versions = self._session.versions if self._session is not None else None
            compiled = self.compiler.compile_pipeline(pipeline, plugins=plugins, params=params, compute=self.compute,
                                                      reuse=reuse, target=Target(assets, workspace, versions))
            if self.yaml is not None:
                compiled.plan["yaml"] = str(plan_v2.write_yaml(compiled, self.yaml))  # type: ignore[arg-type]
        return compiled

    # -- run ---------------------------------------------------------------------------------------
    def submit_pipeline(self, pipeline: Any, *, plugins: Any, params: Mapping[str, Any] | None,
                        reuse: bool) -> PipelineRunResult:
        """Reach the workspace, create what it lacks (compute, data assets), compile for it and submit."""
        client.require_sdk()
        local = self._local_workspace()
        with patched_environ(client.environment(self._service) if self._service else {}), \
                tempfile.TemporaryDirectory(prefix="amlstep-v2-assets-") as assets, sdk_output(self.echo):
            session = self._session = V2Session(self.client(), echo=self.echo)
            session.ensure_compute(sorted({compute_name(pipeline, b, self.compute) for b in pipeline.steps}),
                                   self.provisioning)
            hashes = session.ensure_datasets(pipeline.datasets(), local)
            compiled = self.compile(pipeline, plugins=plugins, params=params, reuse=reuse, assets=Path(assets))
            return self.submit(compiled, session, plugins=plugins, dataset_hashes=hashes)

    def reattach(self, record: Any, *, plugins: Any = None) -> PipelineRunResult:
        """Follow a submitted pipeline job again from its local record (``amlstep runs follow``)."""
        client.require_sdk()
        self._local_workspace()
        with patched_environ(client.environment(self._service) if self._service else {}), sdk_output(self.echo):
            session = self._reached_session()
            self.reach(f"looking up pipeline job {record.id}", session.get, record.id, on_error=service_error)
            return self.follow_recorded(record, session=session, run=record.id)

    def _reached_session(self) -> V2Session:
        """A session on the workspace (``MLClient`` reads the cloud's endpoints from the service: it may be away)."""
        return V2Session(self.reach("reaching the workspace", self.client, on_error=service_error), echo=self.echo)

    def peek(self, record: Any) -> str:
        """The job's status on Azure now (one look: ``amlstep runs refresh``)."""
        client.require_sdk()
        with patched_environ(client.environment(self._service) if self._service else {}), sdk_output(self.echo):
            session = self._reached_session()
            return self.reach(f"reading the status of pipeline job {record.id}", session.status, record.id,
                              on_error=service_error)

    def client(self) -> Any:
        """The ``MLClient``: given, or built from ``config`` with the credential."""
        if self.ml_client is None:
            self.ml_client = client.ml_client(self.config, self._service, self.credential)
        return self.ml_client

    def submit(self, compiled: Any, session: V2Session, *, plugins: Any = None,
               dataset_hashes: Mapping[str, str] | None = None) -> PipelineRunResult:
        """Submit the job, record it locally, follow it and download its outputs unless told not to."""
        started = time.time()
        job = session.submit(compiled.pipeline, compiled.experiment)
        studio = (getattr(job, "services", None) or {}).get("Studio")
        datasets = dict(dataset_hashes or {})

        def step_properties(step: Any) -> dict[str, Any]:
            return {"node": compiled.node_names[step.binding.name],
                    "azure_reuse_key": azure_reuse_key(step, datasets), "azure_reuse_parts": reuse_parts(step, datasets),
                    "datasets": {k: v for k, v in datasets.items()
                                 if f"dataset:{k}:" in json.dumps(step.reuse.get("inputs"))},
                    "azure_outputs": output_names(step)}

        def download(result: PipelineRunResult, following: Follower) -> dict[str, str]:
            target = self.download_dir or (self._local_workspace().path / "downloads")
            return download_outputs(session, job.name, compiled, following, target, result)

        return self.track(compiled, job.name, plugins=plugins, started=started,
                          workspace_name=getattr(session.ml, "workspace_name", None),
                          portal_url=getattr(studio, "endpoint", None), step_properties=step_properties,
                          session=session, run=job.name, download=download)
