"""Submitting with the Azure ML SDK v2: ``MLClient`` calls for compute, data, jobs, downloads and metrics.

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

import contextlib
import json
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from ....errors import BackendError
from ....pipeline import Dataset, StepBinding
from ....results import PipelineRunResult
from . import client as client_v2
from ..backend import AzureBackendBase, local_step_for, fire_step_events

TERMINAL = {"Completed": "Completed", "Finished": "Completed", "Failed": "Failed", "Canceled": "Canceled",
            "Cancelled": "Canceled", "NotResponding": "Failed"}
RUNNING = ("Running", "Preparing", "Queued", "Starting", "Provisioning", "Finalizing")
SHA256_TAG = "amlstep_sha256"
LOG_FILES = ("user_logs/std_log.txt", "azureml-logs/70_driver_log.txt", "azureml-logs/20_image_build_log.txt")
LOG_TAIL_LINES = 12


def _status(job: Any) -> str:
    raw = str(getattr(job, "status", "") or "")
    raw = raw.split(".")[-1].capitalize() if raw.startswith("JobStatus.") else raw
    return TERMINAL.get(raw, "Running" if raw in RUNNING else raw or "NotStarted")


class V2Session:
    """One workspace reached through ``MLClient``: what the backend asks of SDK v2."""

    def __init__(self, ml_client: Any, *, echo: Any = None) -> None:
        self.ml = ml_client
        self.echo = echo

    # -- compute and data --------------------------------------------------------------------------
    def ensure_compute(self, names: list[str], provisioning: Any) -> None:
        from azure.ai.ml.entities import AmlCompute
        from azure.core.exceptions import ResourceNotFoundError

        for name in names:
            try:
                self.ml.compute.get(name)
                continue
            except ResourceNotFoundError:
                pass
            except Exception as exc:
                raise service_error(f"looking up compute target {name!r}", exc) from exc
            p = provisioning
            say(self.echo, f"creating compute target {name!r} ({p.vm_size}, {p.min_nodes}-{p.max_nodes} nodes)")
            try:
                cluster = AmlCompute(name=name, size=p.vm_size, min_instances=p.min_nodes, max_instances=p.max_nodes,
                                     idle_time_before_scale_down=p.idle_seconds_before_scaledown)
                created = self.ml.compute.begin_create_or_update(cluster).result(timeout=p.timeout_minutes * 60)
            except Exception as exc:
                raise BackendError(f"could not create compute target {name!r} ({p.vm_size}, {p.min_nodes}-"
                                   f"{p.max_nodes} nodes): {short(exc)}") from exc
            state = str(getattr(created, "provisioning_state", "") or "").lower()
            if state in ("failed", "canceled"):
                errors = getattr(created, "provisioning_errors", None)
                raise BackendError(f"could not create compute target {name!r}: provisioning {state}: {errors}")

    def ensure_datasets(self, datasets: list[Dataset], local: Any) -> dict[str, str]:
        """Make the workspace hold each dataset as an ``mltable`` data asset; return name -> content hash."""
        from azure.ai.ml.entities import Data
        from azure.core.exceptions import ResourceNotFoundError

        from ....workspace.sources import is_url
        from .. import mltable

        hashes: dict[str, str] = {}
        for dataset in datasets:
            if not local.has_dataset(dataset.name) and dataset.sources and not dataset.version and \
                    not any(is_url(s) for s in dataset.sources):
                local.register_dataset(dataset.name, list(dataset.sources), description=dataset.description)
            mine = local.get_dataset(dataset.name, dataset.version) if local.has_dataset(dataset.name) else None
            existing = None
            try:
                existing = (self.ml.data.get(dataset.name, version=str(dataset.version)) if dataset.version
                            else self.ml.data.get(dataset.name, label="latest"))
            except (ResourceNotFoundError, Exception) as exc:
                if not _not_found(exc):
                    raise service_error(f"looking up data asset {dataset.name!r}", exc) from exc
            if mine is not None:
                hashes[dataset.name] = mine.sha256
                if existing is not None and (existing.tags or {}).get(SHA256_TAG) == mine.sha256:
                    continue
                files = [Path(p) for p in mine.file_paths()]
                description = mine.description or dataset.description or None
                sources = None
            else:
                if existing is not None:
                    hashes[dataset.name] = (existing.tags or {}).get(SHA256_TAG) or f"azure:{existing.id}"
                    continue
                if not dataset.sources or dataset.version:
                    raise BackendError(f"dataset {dataset.name!r}" + (f" version {dataset.version}" if dataset.version
                                       else "") + " is not registered in the workspace and the pipeline gives no "
                                       "sources to register it from")
                files, sources, description = [], list(dataset.sources), dataset.description or None
            with tempfile.TemporaryDirectory(prefix="amlstep-data-") as folder:
                target = Path(folder) / dataset.name
                target.mkdir()
                for file in files:
                    shutil.copyfile(file, target / file.name)
                mltable.write(target, sources if sources is not None else [f.name for f in files])
                what = (f"{len(files)} file(s), sha256 {mine.sha256[:12]}" if mine is not None
                        else ", ".join(sources or []))
                say(self.echo, f"registering data asset {dataset.name!r} (mltable: {what})")
                try:
                    self.ml.data.create_or_update(Data(name=dataset.name, type="mltable", path=str(target),
                                                       description=description,
                                                       tags={SHA256_TAG: mine.sha256} if mine is not None else None))
                except Exception as exc:
                    raise BackendError(f"could not register data asset {dataset.name!r}: {short(exc)}") from exc
        return hashes

    # -- jobs -------------------------------------------------------------------------------------
    def submit(self, job: Any, experiment: str) -> Any:
        try:
            return self.ml.jobs.create_or_update(job, experiment_name=experiment)
        except Exception as exc:
            raise service_error(f"submitting experiment {experiment!r}", exc) from exc

    def get(self, name: str) -> Any:
        return self.ml.jobs.get(name)

    def children(self, name: str) -> list[Any]:
        return list(self.ml.jobs.list(parent_job_name=name))

    def step_error(self, child: Any) -> str:
        """The error the service reports for a failed step job (``jobs.stream`` raises it)."""
        try:
            self.ml.jobs.stream(child.name)
        except Exception as exc:
            text = str(getattr(exc, "message", None) or exc)
            found = re.search(r'"message":\s*"((?:[^"\\]|\\.)*)"', text)
            if found:
                return json.loads(f'"{found.group(1)}"')
            return text.strip().splitlines()[-1] if text.strip() else type(exc).__name__
        return "no error reported"

    def log_tail(self, child: Any) -> tuple[str, list[str]] | None:
        """The last lines of a step job's log, downloaded with ``jobs.download`` (its default artifacts)."""
        with tempfile.TemporaryDirectory(prefix="amlstep-log-") as folder:
            try:
                self.ml.jobs.download(child.name, download_path=folder)
            except Exception:
                return None
            root = Path(folder) / "artifacts"
            for name in LOG_FILES:
                path = root / name
                if path.is_file():
                    lines = path.read_text(errors="replace").rstrip().splitlines()
                    return name, lines[-LOG_TAIL_LINES:]
        return None

    def download(self, name: str, output: str, target: Path) -> Path:
        """``jobs.download(name, output_name=output)``: the files land in ``target/named-outputs/<output>``."""
        client_v2.patch_model_output_download()
        self.ml.jobs.download(name, output_name=output, download_path=str(target))
        where = target / "named-outputs" / output
        if not where.exists():
            raise BackendError(f"pipeline output {output!r} of job {name} was not downloaded (the service has none)")
        return where

    # -- MLflow ------------------------------------------------------------------------------------
    def mlflow(self) -> tuple[Any, dict[str, str]]:
        """An ``MlflowClient`` for the workspace's tracking URI, and the environment its calls need (the
        bearer token plain mlflow sends: ``MLFLOW_TRACKING_TOKEN``, from the client's credential)."""
        from mlflow.tracking import MlflowClient

        from .entry import tracking_uri

        uri = tracking_uri({"MLFLOW_TRACKING_URI": self.ml.workspaces.get(self.ml.workspace_name).mlflow_tracking_uri})
        env = {}
        if uri and uri.startswith("https://"):
            env["MLFLOW_TRACKING_TOKEN"] = client_v2.mlflow_token(self.ml._credential)
        return MlflowClient(tracking_uri=uri), env

    def automl_children(self, step_job_name: str) -> list[Any]:
        """The child runs (trials) of an AutoML step job, as MLflow sees them."""
        from ..sdk_v1.offline import patched_environ

        client, env = self.mlflow()
        with patched_environ(env):
            parent = client.get_run(step_job_name)
            return list(client.search_runs([parent.info.experiment_id],
                                           filter_string=f"tags.mlflow.parentRunId = '{step_job_name}'"))

    def automl_metrics(self, step_job_name: str) -> dict[str, dict[str, list[Any]]]:
        """``{child_run_id: {metric: [value]}}`` from MLflow, the shape of SDK v1's ``TrainingOutput('Metrics')``."""
        return {run.info.run_id: {k: [v] for k, v in sorted(run.data.metrics.items())}
                for run in self.automl_children(step_job_name)}


@contextlib.contextmanager
def sdk_output(echo: Any) -> Iterator[None]:
    """What the SDK prints (upload progress, experimental-class notices) goes to ``echo`` or nowhere,
    never into ``--json`` output; its ERROR logs are silenced: amlstep reports the failures itself."""
    import io
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.ERROR)
    try:
        with contextlib.redirect_stdout(echo if echo is not None else io.StringIO()):
            yield
    finally:
        logging.disable(previous)


def say(echo: Any, message: str) -> None:
    if echo is not None:
        print(message, file=echo, flush=True)


def _not_found(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return "notfound" in text.replace(" ", "") or "not found" in text or "does not exist" in text \
        or "resourcenotfound" in text


def short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    for marker in ("Message: ", '"message": "'):
        if marker in text:
            text = text.split(marker, 1)[1]
            text = text.split(" Code:", 1)[0].split(" Additional Information:", 1)[0].split('"', 1)[0]
            break
    return text[:400] or type(exc).__name__


def service_error(doing: str, exc: BaseException) -> BackendError:
    """A BackendError for a failed SDK v2 call: sign-in problems say how to sign in."""
    kind = type(exc).__name__
    text = f"{kind}: {exc}".lower()
    answered = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    if answered is None and (kind in ("ClientAuthenticationError", "CredentialUnavailableError")
                             or "defaultazurecredential" in text):  # no token: the credential could not sign in
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else kind
        return BackendError(f"no Azure credential could sign in while {doing} (DefaultAzureCredential: {first}); "
                            f"sign in with `az login`, or set AZURE_CLIENT_ID, AZURE_TENANT_ID and "
                            f"AZURE_CLIENT_SECRET for a service principal")
    if any(s in text for s in ("401", "authenticationfailed", "invalidauthenticationtoken", "expired")):
        return BackendError(f"Azure authentication failed while {doing}: {short(exc)}; sign in again (`az login`) "
                            f"and check that you can access the workspace")
    if "resourcenotfound" in text and "workspaces/" in text:
        return BackendError(f"the Azure ML workspace was not found while {doing}: {short(exc)}; check "
                            f"subscription_id, resource_group and workspace_name in the config")
    return BackendError(f"Azure ML service error while {doing}: {short(exc)}")


class V2Follower:
    """Follows a submitted SDK v2 pipeline job: its steps' statuses become hook events and local records."""

    reused_what = "component, environment and inputs"

    def __init__(self, session: V2Session, job_name: str, bindings: Mapping[str, StepBinding],
                 records: Mapping[str, Any], local: Any, events: Any, poll: float) -> None:
        self.session, self.job_name = session, job_name
        self.bindings, self.records, self.local, self.events = bindings, records, local, events
        self.poll = poll
        self.steps: dict[str, dict[str, Any]] = {}
        self.children: dict[str, Any] = {}

    def follow(self) -> str:
        while True:
            try:
                status = _status(self.session.get(self.job_name))
            except Exception as exc:
                raise service_error(f"waiting for pipeline job {self.job_name}", exc) from exc
            self._poll_steps()
            if status in ("Completed", "Failed", "Canceled"):
                self._poll_steps()
                return status
            time.sleep(self.poll)

    def _poll_steps(self) -> None:
        try:
            children = self.session.children(self.job_name)
        except Exception:  # the step list is a nicety; the pipeline status is what counts
            return
        for child in children:
            name = child.display_name
            if name not in self.bindings:
                continue
            self.children[name] = child
            status = _status(child)
            binding = self.bindings[name]
            record = self.records[name]
            seen = self.steps.setdefault(name, {"status": "NotStarted", "reused": False, "azure_run_id": child.name})
            if status == "Running" and seen["status"] == "NotStarted":
                seen["status"], seen["started"] = "Running", time.time()
                self.local.update_run(record.id, status="Running",
                                      properties={**record.properties, "azure_step_run_id": child.name})
                if self.events is not None:
                    self.events.started(binding, record.id)
            if binding.spec.kind == "automl" and status in ("Running", "Completed") and self.events is not None:
                self._poll_trials(child, record.id)
            if status in ("Completed", "Failed", "Canceled") and seen["status"] in ("NotStarted", "Running"):
                self._ended(binding, child, record, status)

    def _poll_trials(self, child: Any, record_id: str) -> None:
        """AutoML's trials as they end (a reused AutoML step has none of its own: nothing ran)."""
        if (child.properties or {}).get("azureml.reusedrunid"):
            return
        try:
            trials = self.session.automl_children(child.name)
        except Exception:
            return
        for trial in trials:
            status = {"FINISHED": "Completed", "FAILED": "Failed", "KILLED": "Canceled"}.get(trial.info.status)
            if status is None:
                continue
            tags = dict(trial.data.tags)
            tags.setdefault("display_name", tags.get("mlflow.runName"))
            self.events.child_ended(record_id, trial.info.run_id, status, tags, dict(trial.data.metrics))

    def _ended(self, binding: StepBinding, child: Any, record: Any, status: str) -> None:
        seen = self.steps[binding.name]
        seen["status"] = status
        seen["duration"] = time.time() - seen["started"] if seen.get("started") else None
        reused_from = (child.properties or {}).get("azureml.reusedrunid")
        changes: dict[str, Any] = {"status": status, "properties": {**record.properties,
                                                                    "azure_step_run_id": child.name}}
        if reused_from:
            seen["reused"], seen["reused_from"] = True, reused_from
            original = local_step_for(self.local, reused_from)
            if original is not None:
                seen["reused_from_local"] = original.id
                changes["reused_from"] = original.id
            changes["properties"]["azure_reused_from"] = reused_from
        if status != "Completed":
            seen["error"] = f"step {binding.name!r} failed on Azure: {self.session.step_error(child)}"
            changes["error"] = seen["error"]
        self.local.update_run(record.id, **changes)
        fire_step_events(self.events, binding, record.id, status, seen)

    def failure_message(self, status: str) -> str:
        for name in self.bindings:
            seen = self.steps.get(name)
            if seen is None or seen["status"] not in ("Failed", "Canceled"):
                continue
            message = f"{seen.get('error')} (pipeline job {self.job_name})"
            tail = self.session.log_tail(self.children[name]) if name in self.children else None
            if tail:
                log_name, lines = tail
                message += f"\nlast lines of its log ({log_name}):\n" + "\n".join("  " + line for line in lines)
            return message
        return f"pipeline job {self.job_name} ended {status} on Azure"


def download_outputs(session: V2Session, job_name: str, compiled: Any, follower: V2Follower, target: Path,
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
                origin = (child.properties or {}).get("azureml.reusedrunid") or child.name
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
                 poll_seconds: float | None = None, yaml: str | Path | None = None, **_ignored: Any) -> None:
        super().__init__(workspace, echo=echo, dry_run=dry_run, compute=compute, config=config, wait=wait,
                         download=download, download_dir=download_dir, provisioning=provisioning,
                         poll_seconds=poll_seconds)
        self.ml_client = ml_client
        self.credential = credential
        self.yaml = Path(yaml) if yaml else None
        if ml_client is not None:
            self._service = None

    # -- compile / plan ----------------------------------------------------------------------------
    def compile(self, pipeline: Any, *, plugins: Any, params: Mapping[str, Any] | None = None,
                reuse: bool = True, assets: Path | None = None) -> Any:
        """The SDK v2 ``PipelineJob`` (in ``.pipeline``) and its plan (``.plan``); contacts nothing.

        ``assets`` receives the code folder and the environments' build contexts; without it a
        plan-only compilation writes them in a temporary folder (removed), or beside ``yaml``.
        """
        from . import plan as plan_v2

        if assets is None:
            if self.yaml is None:  # a plan only: the assets are written, described, then removed
                with tempfile.TemporaryDirectory(prefix="amlstep-v2-assets-") as folder:
                    return self.compile(pipeline, plugins=plugins, params=params, reuse=reuse, assets=Path(folder))
            assets = plan_v2.prepare_assets(self.yaml)
        with sdk_output(self.echo):
            compiled = self.compiler.compile_pipeline(pipeline, plugins=plugins, assets=assets, params=params,
                                                      compute=self.compute, reuse=reuse)
            workspace = "(not contacted: dry run)"
            if not self.dry_run and self.ml_client is not None:
                workspace = str(getattr(self.ml_client, "workspace_name", workspace))
            compiled.plan = plan_v2.render(compiled, workspace=workspace)
            if self.yaml is not None:
                compiled.plan["yaml"] = str(plan_v2.write_yaml(compiled, self.yaml))
        return compiled

    # -- run ---------------------------------------------------------------------------------------
    def run(self, pipeline: Any, *, plugins: Any, params: Mapping[str, Any] | None = None, reuse: bool = True,
            resume: str | None = None) -> PipelineRunResult:
        from ....errors import PipelineValidationError
        from ..compiled import compute_name
        from ..sdk_v1.offline import patched_environ

        if resume is not None:
            raise PipelineValidationError("--resume works with the local backend only; on Azure, resubmit: "
                                          "unchanged steps are reused by the service")
        if self.dry_run:
            return self.dry_run_result(self.compile(pipeline, plugins=plugins, params=params, reuse=reuse))
        client_v2.require_sdk()
        local = self._local_workspace()
        with patched_environ(client_v2.environment(self._service) if self._service else {}), \
                tempfile.TemporaryDirectory(prefix="amlstep-v2-assets-") as assets, sdk_output(self.echo):
            session = V2Session(self.client(), echo=self.echo)
            session.ensure_compute(sorted({compute_name(pipeline, b, self.compute) for b in pipeline.steps}),
                                   self.provisioning)
            hashes = session.ensure_datasets(pipeline.datasets(), local)
            compiled = self.compile(pipeline, plugins=plugins, params=params, reuse=reuse, assets=Path(assets))
            return self.submit(compiled, session, plugins=plugins, dataset_hashes=hashes)

    def client(self) -> Any:
        """The ``MLClient``: given, or built from ``config`` with the credential."""
        if self.ml_client is None:
            self.ml_client = client_v2.ml_client(self.config, self._service, self.credential)
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
                    "datasets": {k: v for k, v in datasets.items()
                                 if f"dataset:{k}:" in json.dumps(step.reuse.get("inputs"))}}

        def follower(records: Mapping[str, Any], events: Any) -> V2Follower:
            return V2Follower(session, job.name, {s.binding.name: s.binding for s in compiled.steps}, records,
                              self._local_workspace(), events, self._poll())

        def download(result: PipelineRunResult, following: V2Follower) -> dict[str, str]:
            target = self.download_dir or (self._local_workspace().path / "downloads")
            return download_outputs(session, job.name, compiled, following, target, result)

        return self.track(compiled, job.name, plugins=plugins, started=started,
                          workspace_name=getattr(session.ml, "workspace_name", None),
                          portal_url=getattr(studio, "endpoint", None), step_properties=step_properties,
                          follower=follower, download=download)
