"""SDK v2's session: a workspace reached through ``MLClient`` (compute, data assets, jobs, MLflow), and a
submitted pipeline job as the follower (``..follower``) asks about it. Nothing imports ``azure.ai.ml`` at
module level.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ....errors import BackendError
from ....pipeline import Dataset
from ..backend import SHA256_TAG, unregistered
from ..errors import ServiceErrors, say
from ..follower import RUNNING, TERMINAL, StepReport, StepRun, Trial, epoch, tail
from . import client

STATUSES = {**TERMINAL, "NotResponding": "Failed"}  # a v2 job that stops answering has failed
LOG_FILES = ("user_logs/std_log.txt", "azureml-logs/70_driver_log.txt", "azureml-logs/20_image_build_log.txt")


def _status(job: Any) -> str:
    raw = str(getattr(job, "status", "") or "")
    raw = raw.split(".")[-1].capitalize() if raw.startswith("JobStatus.") else raw
    return STATUSES.get(raw, "Running" if raw in RUNNING else raw or "NotStarted")


class V2Errors(ServiceErrors):
    """azure-core's exceptions: ``Message:``/``Code:`` lines, a credential that could not sign in, a missing workspace."""

    def sign_in_error(self, doing: str, exc: BaseException) -> BackendError | None:
        kind = type(exc).__name__
        text = f"{kind}: {exc}".lower()
        answered = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
        if answered is None and (kind in ("ClientAuthenticationError", "CredentialUnavailableError")
                                 or "defaultazurecredential" in text):  # no token: the credential could not sign in
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else kind
            return BackendError(f"no Azure credential could sign in while {doing} (DefaultAzureCredential: {first}); "
                                f"sign in with `az login`, or set AZURE_CLIENT_ID, AZURE_TENANT_ID and "
                                f"AZURE_CLIENT_SECRET for a service principal")
        return None

    def other_error(self, doing: str, exc: BaseException) -> BackendError | None:
        text = f"{type(exc).__name__}: {exc}".lower()
        if "resourcenotfound" in text and "workspaces/" in text:
            return BackendError(f"the Azure ML workspace was not found while {doing}: {self.short(exc)}; check "
                                f"subscription_id, resource_group and workspace_name in the config")
        return None


ERRORS = V2Errors(markers=("Message: ", '"message": "'), stops=(" Code:", " Additional Information:"),
                  auth_words=("401", "authenticationfailed", "invalidauthenticationtoken", "expired"),
                  sign_in="`az login`")


short = ERRORS.short  # the service's message inside an SDK v2 exception
service_error = ERRORS.error  # a BackendError for a failed SDK v2 call: sign-in problems say how to sign in


class V2Session:
    """One workspace reached through ``MLClient``: what the backend asks of SDK v2, and what the follower asks
    of a submitted pipeline job (``run``: the job's name; :class:`~..follower.Session`)."""

    noun = "pipeline job"
    reused_what = "component, environment and inputs"

    def __init__(self, ml_client: Any, *, echo: Any = None) -> None:
        self.ml = ml_client
        self.echo = echo
        self.versions: dict[str, str] = {}  # data asset name -> the version a submission reads (pinned)

    def service_error(self, doing: str, exc: BaseException) -> BackendError:
        return service_error(doing, exc)

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
        """Make the workspace hold each dataset as an ``mltable`` data asset; return name -> content hash.

        Idempotent by content, whoever registered first: a local dataset's content (its sha256, the asset's
        ``amlstep_sha256`` tag) already in a version of the asset is that version, new content is a new version;
        a registration that loses a race with another client's (the same version number taken meanwhile)
        looks again, then tries the next version. The version found is the one the submission reads
        (``versions``), not ``@latest``, which another SDK or user may move.
        """
        from ....workspace.sources import is_url

        hashes: dict[str, str] = {}
        for dataset in datasets:
            if not local.has_dataset(dataset.name) and dataset.sources and not dataset.version and \
                    not any(is_url(s) for s in dataset.sources):
                local.register_dataset(dataset.name, list(dataset.sources), description=dataset.description)
            mine = local.get_dataset(dataset.name, dataset.version) if local.has_dataset(dataset.name) else None
            if mine is not None:
                hashes[dataset.name] = mine.sha256
                self._register_data(dataset, files=[Path(p) for p in mine.file_paths()], sources=None,
                                    description=mine.description or dataset.description or None, sha256=mine.sha256)
                continue
            existing = self._data(dataset.name, dataset.version)
            if existing is not None:
                hashes[dataset.name] = (existing.tags or {}).get(SHA256_TAG) or f"azure:{existing.id}"
                if dataset.version is None:
                    self.versions[dataset.name] = str(existing.version)
                continue
            if not dataset.sources or dataset.version:
                raise unregistered(dataset)
            self._register_data(dataset, files=[], sources=list(dataset.sources),
                                description=dataset.description or None, sha256=None)
        return hashes

    def _data(self, name: str, version: Any = None) -> Any:
        try:
            return (self.ml.data.get(name, version=str(version)) if version
                    else self.ml.data.get(name, label="latest"))
        except Exception as exc:
            if not _not_found(exc):
                raise service_error(f"looking up data asset {name!r}", exc) from exc
        return None

    def _version_holding(self, name: str, sha256: str) -> Any:
        """The version of data asset ``name`` tagged with content ``sha256`` (the latest such), if any."""
        try:
            versions = list(self.ml.data.list(name=name))
        except Exception as exc:
            if not _not_found(exc):
                raise service_error(f"listing the versions of data asset {name!r}", exc) from exc
            return None
        holding = [v for v in versions if (v.tags or {}).get(SHA256_TAG) == sha256]
        return max(holding, key=lambda v: int(v.version) if str(v.version).isdigit() else -1) if holding else None

    def _register_data(self, dataset: Dataset, *, files: list[Path], sources: list[str] | None,
                       description: str | None, sha256: str | None) -> None:
        from azure.ai.ml.entities import Data

        from .. import mltable

        with tempfile.TemporaryDirectory(prefix="amlstep-data-") as folder:
            target = Path(folder) / dataset.name
            target.mkdir()
            for file in files:
                shutil.copyfile(file, target / file.name)
            mltable.write(target, sources if sources is not None else [f.name for f in files])
            what = (f"{len(files)} file(s), sha256 {sha256[:12]}" if sha256 is not None else ", ".join(sources or []))
            say(self.echo, f"registering data asset {dataset.name!r} (mltable: {what})")
            for attempt in range(5):
                # the next version, named explicitly: two clients registering at once ask for the same number, the
                # service creates it once, and the other one finds it holds its content (or takes the next number)
                if sha256 is not None:
                    found = self._version_holding(dataset.name, sha256)
                    if found is not None:
                        self.versions[dataset.name] = str(found.version)
                        return
                version = str(self._last_number(dataset.name) + 1)
                try:
                    created = self.ml.data.create_or_update(Data(
                        name=dataset.name, version=version, type="mltable", path=str(target), description=description,
                        tags={SHA256_TAG: sha256} if sha256 is not None else None))
                    self.versions[dataset.name] = str(created.version)
                    return
                except Exception as exc:
                    conflict = "already exists" in str(exc).lower() or "conflict" in type(exc).__name__.lower() \
                        or getattr(exc, "status_code", None) == 409
                    if conflict and attempt < 4:  # another client took the version number meanwhile
                        continue
                    raise BackendError(f"could not register data asset {dataset.name!r}: {short(exc)}") from exc

    def _last_number(self, name: str) -> int:
        """The highest numeric version of data asset ``name`` (0 when it has none)."""
        try:
            versions = list(self.ml.data.list(name=name))
        except Exception as exc:
            if not _not_found(exc):
                raise service_error(f"listing the versions of data asset {name!r}", exc) from exc
            return 0
        return max((int(v.version) for v in versions if str(v.version).isdigit()), default=0)

    # -- jobs -------------------------------------------------------------------------------------
    def submit(self, job: Any, experiment: str) -> Any:
        from ..provenance import no_local_checkout_v2

        try:
            with no_local_checkout_v2():
                return self.ml.jobs.create_or_update(job, experiment_name=experiment)
        except Exception as exc:
            raise service_error(f"submitting experiment {experiment!r}", exc) from exc

    def get(self, name: str) -> Any:
        return self.ml.jobs.get(name)

    def children(self, name: str) -> list[Any]:
        return list(self.ml.jobs.list(parent_job_name=name))

    # -- a submitted job, for the follower ---------------------------------------------------------
    def status(self, run: str) -> str:
        return _status(self.get(run))

    def steps(self, run: str) -> list[StepRun]:
        return [StepRun(child.display_name, child.name, _status(child),
                        (child.properties or {}).get("azureml.reusedrunid"), child) for child in self.children(run)]

    def step_error(self, step: StepRun) -> str:
        """The error the service reports for a failed step job (``jobs.stream`` raises it)."""
        try:
            self.ml.jobs.stream(step.id)
        except Exception as exc:
            text = str(getattr(exc, "message", None) or exc)
            found = re.search(r'"message":\s*"((?:[^"\\]|\\.)*)"', text)
            if found:
                return str(json.loads(f'"{found.group(1)}"'))
            return text.strip().splitlines()[-1] if text.strip() else type(exc).__name__
        return "no error reported"

    def log(self, step: StepRun) -> tuple[str, str] | None:
        """The step run's whole log, as the service keeps it."""
        return self._log(step.id)

    def log_tail(self, step: StepRun) -> tuple[str, list[str]] | None:
        """The last lines of a step job's log, downloaded with ``jobs.download`` (its default artifacts)."""
        found = self._log(step.id)
        return (found[0], tail(found[1])) if found else None

    def trials(self, step: StepRun, known: set[str]) -> list[Trial]:
        """AutoML's trials that ended and are not ``known``, from one MLflow search (their tags and final metrics
        come with it: nothing is read per trial). A reused AutoML step has none of its own: nothing ran."""
        if step.reused_from:
            return []
        trials = []
        for trial in self.automl_children(step.id):
            status = {"FINISHED": "Completed", "FAILED": "Failed", "KILLED": "Canceled"}.get(trial.info.status)
            if status is None or trial.info.run_id in known:
                continue
            tags = {k: v for k, v in dict(trial.data.tags).items() if k != "mlflow.parentRunId"}  # text, as locally
            tags.setdefault("display_name", tags.get("mlflow.runName"))
            trials.append(Trial(trial.info.run_id, status, tags, dict(trial.data.metrics), handle=trial,
                                error=str(tags.get("error")) if status != "Completed" and tags.get("error") else None,
                                started=epoch(trial.info.start_time), ended=epoch(trial.info.end_time)))
        return trials

    def report(self, step: StepRun, log: bool = True) -> StepReport:
        """The step job's properties (and its MLflow tags), its final metrics (MLflow), its log (``jobs.download``)."""
        from ..endpoint import patched_environ

        properties = dict(getattr(step.handle, "properties", None) or {})
        metrics: dict[str, Any] = {}
        client, env = self.mlflow()
        with patched_environ(env):
            try:
                found = client.get_run(step.id)
            except Exception as exc:
                if not _not_found(exc):
                    raise
                found = None
        if found is not None:
            metrics = dict(found.data.metrics)
            properties.update({k: v for k, v in dict(found.data.tags).items() if not k.startswith("mlflow.")})
        return StepReport(metrics, properties, self._log(step.id) if log else None)

    def _log(self, job_name: str) -> tuple[str, str] | None:
        with tempfile.TemporaryDirectory(prefix="amlstep-log-") as folder:
            try:
                self.ml.jobs.download(job_name, download_path=folder)
            except Exception:
                return None
            root = Path(folder) / "artifacts"
            for name in LOG_FILES:
                path = root / name
                if path.is_file():
                    return name, path.read_text(errors="replace")
        return None

    def download_output(self, step: StepRun, name: str, target: Path) -> None:
        """``jobs.download(step job, output_name=name)``; ``metrics:PORT`` is AutoML's metrics, read from its trials
        through MLflow (SDK v2 AutoML has no metrics output) and written as SDK v1's ``TrainingOutput('Metrics')``."""
        if name.startswith("metrics:"):
            target.mkdir(parents=True, exist_ok=True)
            (target / target.name).write_text(json.dumps(self.automl_metrics(step.reused_from or step.id), indent=1))
            return
        with tempfile.TemporaryDirectory(prefix="amlstep-output-") as folder:
            where = self.download(step.id, name, Path(folder))
            target.mkdir(parents=True, exist_ok=True)
            for item in where.iterdir():
                shutil.move(str(item), str(target / item.name))

    def trial_files(self, trial_id: str, names: tuple[str, ...], target: Path) -> list[str]:
        """A trial's kept files, when the service hands them out as a job's artifacts (else none)."""
        with tempfile.TemporaryDirectory(prefix="amlstep-trial-") as folder:
            try:
                self.ml.jobs.download(trial_id, download_path=folder)
            except Exception:
                return []
            found = []
            for name in names:
                path = Path(folder) / "artifacts" / name
                if path.is_file():
                    (target / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target / name)
                    found.append(name)
            return found

    def model_digest(self, name: str, version: int) -> str:
        """The content digest of model ``name:version`` as the workspace's registry holds it (downloaded)."""
        from ....workspace.store import content_digest

        with tempfile.TemporaryDirectory(prefix="amlstep-model-") as folder:
            self.ml.models.download(name, version=str(version), download_path=folder)
            return content_digest(Path(folder))

    def times(self, target: Any) -> tuple[float | None, float | None]:
        """The job's MLflow run's ``start_time`` and ``end_time`` (the job entity says only when it was created)."""
        from ..endpoint import patched_environ

        client, env = self.mlflow()
        with patched_environ(env):
            info = client.get_run(target.id if isinstance(target, StepRun) else str(target)).info
        return epoch(info.start_time), epoch(info.end_time)

    def ended(self, run: str, status: str) -> str:
        return f"pipeline job {run} ended {status} on Azure"

    def download(self, name: str, output: str, target: Path) -> Path:
        """``jobs.download(name, output_name=output)``: the files land in ``target/named-outputs/<output>``."""
        client.patch_model_output_download()
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
            env["MLFLOW_TRACKING_TOKEN"] = client.mlflow_token(self.ml._credential)
        return MlflowClient(tracking_uri=uri), env

    def automl_children(self, step_job_name: str) -> list[Any]:
        """The child runs (trials) of an AutoML step job, as MLflow sees them."""
        from ..endpoint import patched_environ

        client, env = self.mlflow()
        with patched_environ(env):
            parent = client.get_run(step_job_name)
            return list(client.search_runs([parent.info.experiment_id],
                                           filter_string=f"tags.mlflow.parentRunId = '{step_job_name}'"))

    def automl_metrics(self, step_job_name: str) -> dict[str, dict[str, list[Any]]]:
        """``{child_run_id: {metric: [value]}}`` from MLflow, the shape of SDK v1's ``TrainingOutput('Metrics')``."""
        return {run.info.run_id: {k: [v] for k, v in sorted(run.data.metrics.items())}
                for run in self.automl_children(step_job_name)}


def _not_found(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return "notfound" in text.replace(" ", "") or "not found" in text or "does not exist" in text \
        or "resourcenotfound" in text

