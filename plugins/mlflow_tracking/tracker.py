"""One tracked pipeline run: what the lifecycle hooks report, written to MLflow with ``MlflowClient``.

Imported only when a run is tracked (it imports mlflow). Runs nest as MLflow nests them (the
``mlflow.parentRunId`` tag): pipeline run > step runs > AutoML child runs. Every MLflow run carries
``amlstep.run_id``, the id of the amlstep run it mirrors, so a reused step finds the MLflow run of
the step run it reuses and links to it (``amlstep.reused_from_mlflow_run``) instead of logging its
children or its model again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import pickle
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

if TYPE_CHECKING:
    from framework import Pipeline, StepRunResult
    from framework.backends import StepBinding
    from framework.workspace import ModelVersion

STATUS = {"Completed": "FINISHED", "Failed": "FAILED", "Canceled": "KILLED", "NotStarted": "KILLED",
          "Running": "RUNNING"}
MAX_PARAM = 6000
MAX_TAG = 5000
# what loading a pickled model needs, pinned to the versions that fitted it
RUNTIME_DISTRIBUTIONS = ("amlstep", "scikit-learn", "pandas", "numpy", "scipy", "xgboost-cpu", "lightgbm",
                         "joblib", "threadpoolctl")
# a tracking server that does not answer costs seconds, not MLflow's default minutes of retries
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
QUIET_LOGGERS = ("mlflow", "alembic", "urllib3", "sqlalchemy")


def now_ms() -> int:
    return int(time.time() * 1000)


class Tracker:
    """The MLflow side of one amlstep pipeline run. Its methods are called through :meth:`safely`."""

    def __init__(self, uri: str, warn: Callable[[str], None]) -> None:
        self.uri = uri
        self.warn = warn
        self.client: Any = None  # made in pipeline_started, where a failure is only a warning
        self.broken = False
        self.experiment_id: str | None = None
        self.pipeline_run: str | None = None
        self.params: dict[str, Any] = {}
        self.steps: dict[str, str] = {}          # amlstep step run id -> MLflow run id
        self.started: dict[str, int] = {}        # MLflow run id -> start time (ms)
        self.open: set[str] = set()              # MLflow step runs not terminated yet
        self.models: dict[str, str] = {}         # sha256 of a model file -> MLflow model id

    def safely(self, method: Callable[..., None], *args: Any) -> None:
        """Call ``method``; the first failure stops tracking this run with one warning line, and never raises."""
        if self.broken:
            return
        try:
            with quiet_mlflow():
                method(*args)
        except Exception as exc:
            self.broken = True
            detail = (str(exc).strip().splitlines() or [""])[0][:300]
            self.warn(f"MLflow tracking to {self.uri or 'the default store'} failed ({type(exc).__name__}: {detail}); "
                      f"this run goes on untracked")

    # -- the pipeline run ---------------------------------------------------------------------------
    def pipeline_started(self, run_id: str, pipeline: Pipeline, params: Mapping[str, Any], backend: str) -> None:
        self.uri = self.uri or str(mlflow.get_tracking_uri())
        self.client = MlflowClient(tracking_uri=self.uri)
        self.experiment_id = self._experiment(pipeline.experiment)
        self.params = dict(params)
        start = now_ms()
        run = self.client.create_run(self.experiment_id, start_time=start, run_name=run_id, tags={
            "amlstep.run_id": run_id, "amlstep.kind": "pipeline", "amlstep.backend": backend,
            "amlstep.steps": ", ".join(s.name for s in pipeline.steps), **({"mlflow.source.name": pipeline.source}
                                                                         if pipeline.source else {})})
        self.pipeline_run = run.info.run_id
        self.started[self.pipeline_run] = start
        self._log(self.pipeline_run, params=params)

    def pipeline_ended(self, status: str, error: str | None) -> None:
        if self.pipeline_run is None:
            return
        end = now_ms()
        for run in sorted(self.open):  # a step that never reported its end (Ctrl-C): killed with its pipeline
            self.client.set_terminated(run, "KILLED", end_time=end)
        self.open.clear()
        self._log(self.pipeline_run, tags={"amlstep.status": status, **({"amlstep.error": error} if error else {})})
        self.client.set_terminated(self.pipeline_run, STATUS.get(status, "FAILED"), end_time=end)

    # -- step runs ----------------------------------------------------------------------------------
    def step_started(self, step: StepBinding, step_run_id: str) -> None:
        if self.pipeline_run is None or self.experiment_id is None:
            return
        start = now_ms()
        run = self.client.create_run(self.experiment_id, start_time=start, run_name=step.name, tags={
            "mlflow.parentRunId": self.pipeline_run, "amlstep.run_id": step_run_id, "amlstep.kind": "step",
            "amlstep.plugin": step.plugin})
        mlflow_run = run.info.run_id
        self.steps[step_run_id] = mlflow_run
        self.started[mlflow_run] = start
        self.open.add(mlflow_run)
        self._log(mlflow_run, params=step.resolve_params(self.params))

    def step_logged(self, step_run_id: str, name: str, value: Any) -> None:
        run = self.steps.get(step_run_id)
        if run is not None:
            self._log(run, metrics={name: value})

    def step_finished(self, step: StepBinding, step_run_id: str, result: StepRunResult) -> None:
        run = self.steps.get(step_run_id)
        if run is None:
            return
        tags = {"amlstep.status": result.status, "amlstep.reused": str(result.reused).lower(),
                "amlstep.reasons": "; ".join(result.reasons)}
        earlier = self._find_run(result.reused_from) if result.reused and result.reused_from else None
        if result.reused_from:
            tags["amlstep.reused_from"] = result.reused_from
        if earlier is not None:
            tags["amlstep.reused_from_mlflow_run"] = earlier.info.run_id
        for port in step.spec.outputs:
            path = result.outputs.get(port.name)
            if port.type.value != "model" or not path or not Path(path).is_file():
                continue
            if earlier is not None:  # logged with the step run it reuses
                logged = earlier.data.tags.get(f"amlstep.model.{port.name}")
            else:  # a step that ran, or whose earlier run was never tracked: logged once, here
                logged = self._log_model(run, port.name, Path(path))
            if logged is not None:
                self.models[file_sha256(Path(path))] = logged
                tags[f"amlstep.model.{port.name}"] = logged
        self._log(run, tags=tags)
        start = self.started.get(run)
        end = start + int(result.duration * 1000) if start is not None and result.duration is not None else now_ms()
        self.client.set_terminated(run, STATUS.get(result.status, "FINISHED"), end_time=end)
        self.open.discard(run)

    def step_failed(self, step_run_id: str, error: BaseException) -> None:
        run = self.steps.get(step_run_id)
        if run is None:
            return
        self._log(run, tags={"amlstep.status": "Failed", "amlstep.error": f"{type(error).__name__}: {error}"})
        self.client.set_terminated(run, "FAILED", end_time=now_ms())
        self.open.discard(run)

    # -- AutoML child runs --------------------------------------------------------------------------
    def child_ended(self, step_run_id: str, child_run_id: str, status: str, properties: Mapping[str, Any],
                    metrics: Mapping[str, Any]) -> None:
        parent = self.steps.get(step_run_id)
        if parent is None or self.experiment_id is None:
            return
        end = now_ms()
        fit_time = _number(properties.get("fit_time"))
        start = end - int(fit_time * 1000) if fit_time is not None else end
        name = str(properties.get("display_name") or child_run_id)
        run = self.client.create_run(self.experiment_id, start_time=start, run_name=name, tags={
            "mlflow.parentRunId": parent, "amlstep.run_id": child_run_id, "amlstep.kind": "child",
            "amlstep.status": status, **{f"amlstep.{k}": str(properties[k]) for k in ("primary_metric", "goal")
                                         if k in properties}})
        spec = _json(properties.get("pipeline_spec"))
        params: dict[str, Any] = {k: properties[k] for k in ("iteration", "run_algorithm", "run_preprocessor",
                                                              "training_type") if k in properties}
        if isinstance(spec, dict):
            params.update(spec.get("params") or {})
        values = dict(metrics)
        if fit_time is not None:
            values["fit_time"] = fit_time
        self._log(run.info.run_id, params=params, metrics=values)
        self.client.set_terminated(run.info.run_id, STATUS.get(status, "FAILED"), end_time=end)

    # -- models -------------------------------------------------------------------------------------
    def model_registered(self, step_run_id: str, model: ModelVersion) -> None:
        run = self.steps.get(step_run_id)
        files = [model.path / f for f in model.files]
        model_id = self.models.get(file_sha256(files[0])) if len(files) == 1 else None
        if model_id is None and run is not None and len(files) == 1:
            model_id = self._log_model(run, "registered_model", files[0])
        if model_id is None:
            self.warn(f"MLflow: model {model.id} is not an MLflow model amlstep can log; not registered in MLflow")
            return
        try:
            self.client.create_registered_model(model.name)
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        version = self.client.create_model_version(
            model.name, f"models:/{model_id}", run_id=run, model_id=model_id, description=model.description or None,
            tags={"amlstep.version": str(model.version), "amlstep.run_id": str(model.run_id or "")})
        if str(version.version) != str(model.version):
            self.warn(f"MLflow's registry numbered amlstep's {model.id} as version {version.version} (it holds versions "
                      f"this workspace does not); its tag amlstep.version says {model.version}")

    def _log_model(self, run: str, name: str, path: Path) -> str | None:
        """Log the pickled model at ``path`` (from this workspace: trusted) as an MLflow model; its model id."""
        with open(path, "rb") as file:
            model = pickle.load(file)  # noqa: S301 - the workspace's own datastore or registry
        if not (hasattr(model, "fit") and hasattr(model, "predict") and hasattr(model, "get_params")):
            self.client.log_artifact(run, str(path), artifact_path=name)
            return None
        import mlflow.sklearn

        # start_run(run_id) resumes the step's run and ends it FINISHED; step_finished terminates it again
        with mlflow_tracking_uri(self.uri), mlflow.start_run(run_id=run, nested=True):
            info = mlflow.sklearn.log_model(model, name=name, pip_requirements=requirements(),
                                            serialization_format="pickle")
        return str(info.model_id)

    # -- helpers ------------------------------------------------------------------------------------
    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(self.client.create_experiment(name))
        except MlflowException:  # created meanwhile by a concurrent run
            again = self.client.get_experiment_by_name(name)
            if again is None:
                raise
            return str(again.experiment_id)

    def _find_run(self, amlstep_run_id: str) -> Any:
        """The MLflow run that mirrors amlstep run ``amlstep_run_id`` (reuse works across pipelines), or None."""
        experiments = [e.experiment_id for e in self.client.search_experiments()]
        found = self.client.search_runs(experiments, filter_string=f"tags.`amlstep.run_id` = '{amlstep_run_id}'",
                                        max_results=1) if experiments else []
        return found[0] if found else None

    def _log(self, run: str, *, params: Mapping[str, Any] | None = None, metrics: Mapping[str, Any] | None = None,
             tags: Mapping[str, Any] | None = None) -> None:
        stamp = now_ms()
        logged_params = [Param(str(k), _text(v, MAX_PARAM)) for k, v in (params or {}).items()]
        logged_metrics: list[Metric] = []
        logged_tags = [RunTag(str(k), _text(v, MAX_TAG)) for k, v in (tags or {}).items()]
        for name, value in (metrics or {}).items():
            series = value if isinstance(value, (list, tuple)) and all(_number(v) is not None for v in value) else [value]
            numbers = [_number(v) for v in series]
            if all(n is not None for n in numbers) and numbers:
                logged_metrics += [Metric(name, float(n), stamp, step) for step, n in enumerate(numbers)]  # type: ignore[arg-type]
            else:  # a table, a text: kept as a tag, as MLflow metrics are numbers
                logged_tags.append(RunTag(f"amlstep.metric.{name}", _text(value, MAX_TAG)))
        if logged_params or logged_metrics or logged_tags:
            self.client.log_batch(run, metrics=logged_metrics, params=logged_params, tags=logged_tags)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    try:  # numpy scalars
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _text(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def requirements() -> list[str]:
    pins = []
    for dist in RUNTIME_DISTRIBUTIONS:
        try:
            pins.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


@contextlib.contextmanager
def mlflow_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent API (``log_model``) pointed at ``uri`` for a moment, then back to what it was.

    ``mlflow.set_tracking_uri`` also sets (or, given None, deletes) ``$MLFLOW_TRACKING_URI``: it is put back too.
    """
    from mlflow.tracking._tracking_service import utils

    saved, env = utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved)
        if env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """No retry storms against a dead server, and no MLflow/alembic chatter on the user's terminal."""
    added = [name for name in HTTP_DEFAULTS if name not in os.environ]
    for name in added:
        os.environ[name] = HTTP_DEFAULTS[name]
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
