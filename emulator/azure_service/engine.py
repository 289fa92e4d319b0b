"""The execution engine behind the fake Azure ML service: state, run history, pipelines, reuse.

It knows nothing of any REST shape. An API in front of it (``v1`` today, the public ARM API of
SDK v2 next) translates what a client sends into :class:`PipelineJob` / :class:`StepJob` and
renders :class:`RunRecord` and friends back into its own shapes.

What the engine does with a pipeline job, in a background thread:

- steps run in dependency order, one at a time (every cluster the fake creates has one node);
- a step whose identity (what the API says the step is: for SDK v1 the module fingerprint and
  the node's resolved parameters) and whose inputs (dataset versions, or the upstream step runs
  that produced the data) match an earlier completed step run is reused, when ``allow_reuse`` is
  on: it gets a new step run that points at the earlier outputs;
- command steps run on the :class:`~.compute.Compute` (environment built from the declared pip
  requirements and shipped wheels, the snapshot's script, or the job's command line run by bash, as a
  process), each input staged as its mode says (a copy of exactly its files for ``ro_mount``/``download``,
  the store's folder for ``rw_mount``, the URI for ``direct``; public URLs fetched first), each output
  written to the store (``rw_mount``) or uploaded when the step ends (``upload``);
- steps of a pipeline node (a :class:`StepGroup`) run under a run of that node, which ends when its
  steps have ended and carries the outputs bound to them;
- other kinds of steps run by the runner given for their kind (AutoML steps: the project's AutoML
  emulator service-side, :mod:`.automl`);
- a failed step fails the pipeline run; downstream steps are not started (unless the job says
  ``continue_on_step_failure``, then only the steps that depend on the failed one are skipped);
- a canceled pipeline run (:meth:`Engine.cancel`) is ``CancelRequested`` until its running step has stopped
  (its process killed; an AutoML step starts no more trials), then ``Canceled``, with that step; the steps not
  started never start, the steps that ended keep their status.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from .blobstore import BlobStore
from .compute import Compute, ImageBuildError, StepProcess

TERMINAL = ("Completed", "Failed", "Canceled")


def now_iso(timestamp: float | None = None) -> str:
    stamp = time.time() if timestamp is None else timestamp
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp % 1 * 1000):03d}Z"


def new_id() -> str:
    return str(uuid.uuid4())


class ServiceError(Exception):
    """A request the service refuses: HTTP status, Azure error code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# -- state ---------------------------------------------------------------------------------------
@dataclass
class RunRecord:
    """One run in the run history (pipeline run, step run, AutoML child run)."""

    id: str
    experiment: str
    run_type: str
    name: str
    number: int
    parent_id: str | None = None
    root_id: str | None = None
    status: str = "NotStarted"
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    target: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, tuple[str, str]] = field(default_factory=dict)   # artifact name -> (container, blob)
    error: dict[str, Any] | None = None
    input_datasets: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, tuple[str, str]] = field(default_factory=dict)  # port -> (datastore, path)
    node_id: str | None = None
    reused_from: str | None = None
    description: str | None = None

    def metric_values(self) -> dict[str, Any]:
        """name -> value (a list when logged more than once), as ``Run.get_metrics()`` shows them."""
        values: dict[str, list[Any]] = {}
        for entry in self.metrics:
            values.setdefault(entry["name"], []).append(entry["value"])
        return {k: v[0] if len(v) == 1 else v for k, v in values.items()}


@dataclass
class DatasetVersion:
    name: str
    version: int
    id: str                      # the dataset's id (same for every version)
    saved_id: str                # this version's id
    definition: Any              # what the client posted (dataflow JSON), kept as given
    files: list[tuple[str, str]] = field(default_factory=list)       # (datastore, path) it reads, when known
    urls: list[str] = field(default_factory=list)                    # http(s) sources it reads
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    created: float = field(default_factory=time.time)


@dataclass
class ModelVersion:
    name: str
    version: int
    url: str                     # where the model files are (the artifact prefix)
    run_id: str | None
    experiment: str | None
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    framework: str | None = None

    @property
    def id(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass
class ComputeTarget:
    name: str
    vm_size: str
    min_nodes: int = 0
    max_nodes: int = 1
    state: str = "Succeeded"
    errors: list[dict[str, Any]] = field(default_factory=list)
    priority: str = "Dedicated"
    idle_seconds: int = 120
    kind: str = "AmlCompute"                     # AmlCompute (a cluster) | ComputeInstance


# -- jobs (what an API hands the engine) ---------------------------------------------------------
@dataclass(frozen=True)
class Token:
    """A piece of a command line or environment value: ``literal``, ``input_path``, ``output_path``,
    ``input_dataset_id`` (the value is the port name for the last three)."""

    kind: str
    value: str


@dataclass
class EnvironmentSpec:
    """What an environment declares (read by :mod:`.environments`): Python, pip lines, conda packages, image."""

    name: str
    python: str | None
    pip: list[str]
    conda: list[str] = field(default_factory=list)     # conda packages (not pip), as declared
    image: str | None = None                            # the Docker base image
    curated: str | None = None                          # a curated environment of the azureml registry: its name
    notes: list[str] = field(default_factory=list)      # what the fake does not honour as Azure would, for the log

    def definition(self) -> str:
        """The environment's definition as Azure's reuse compares it (the notes aside)."""
        return json.dumps({"name": self.name, "python": self.python, "pip": self.pip, "conda": self.conda,
                           "image": self.image, "curated": self.curated}, sort_keys=True)


# how a step sees an input: a read-only copy (Azure mounts read-only), a writable copy (a download),
# the storage folder itself (read-write mount), or the input's URI as text (direct)
READ_ONLY_MODES = ("mount", "ro_mount", "eval_mount")
COPY_MODES = ("download", "eval_download")


@dataclass
class InputBinding:
    port: str
    mode: str = "mount"                          # mount (= ro_mount) | ro_mount | download | rw_mount | direct |
    #                                              eval_mount | eval_download
    dataset: tuple[str, int] | None = None       # (name, version)
    producer: tuple[str, str] | None = None      # (node id, output port)
    location: tuple[str, str] | None = None      # (datastore, path): a datastore URI, a local upload
    url: str | None = None                       # a public http(s) URL: fetched when the step starts
    kind: str = "uri_folder"                     # uri_folder | uri_file | mltable | mlflow_model | custom_model ...

    def source(self) -> str:
        """What the input reads, for messages."""
        if self.dataset is not None:
            return f"dataset {self.dataset[0]}:{self.dataset[1]}"
        if self.producer is not None:
            return f"output {self.producer[1]!r} of {self.producer[0]!r}"
        if self.location is not None:
            return f"azureml://datastores/{self.location[0]}/paths/{self.location[1]}"
        return str(self.url)


@dataclass
class OutputSpec:
    port: str
    datastore: str
    path: str                                    # may hold {run-id} and {output-name}
    is_file: bool = False                        # TrainingOutputs are single blobs
    training_output: str | None = None           # "Metrics" | "Model" for an AutoML step's outputs
    mode: str = "rw_mount"                       # rw_mount (the storage folder) | upload (a local folder, uploaded
    #                                              when the step ends)
    kind: str = "uri_folder"                     # the output's type: uri_folder, uri_file, mltable, *_model


@dataclass
class StepGroup:
    """A pipeline node inside a pipeline (a pipeline component): its own run, parent of its steps' runs."""

    node_id: str
    name: str
    group: str | None = None                     # the group it sits in (nested pipelines)
    outputs: dict[str, tuple[str, str]] = field(default_factory=dict)   # port -> (inner node or group, port)


@dataclass
class StepJob:
    node_id: str
    name: str
    kind: str                                    # "command" | "automl"
    compute: str
    allow_reuse: bool
    identity: str
    inputs: dict[str, InputBinding] = field(default_factory=dict)
    outputs: dict[str, OutputSpec] = field(default_factory=dict)
    snapshot_id: str | None = None
    script: str | None = None
    argv: list[Token] = field(default_factory=list)
    env: dict[str, list[Token]] = field(default_factory=dict)
    environment: EnvironmentSpec | None = None
    automl_settings: dict[str, Any] = field(default_factory=dict)
    max_seconds: float | None = None
    shell: list[Token] | None = None             # a command line run by the shell (SDK v2), instead of script+argv
    after: list[str] = field(default_factory=list)   # node ids it runs after without reading their data (run_after)
    group: str | None = None                     # the pipeline node (StepGroup) it belongs to


@dataclass
class PipelineJob:
    experiment: str
    steps: list[StepJob]
    description: str | None = None
    continue_on_step_failure: bool = False
    parameters: dict[str, str] = field(default_factory=dict)
    groups: dict[str, StepGroup] = field(default_factory=dict)

    def upstream(self, step: StepJob) -> set[str]:
        return {b.producer[0] for b in step.inputs.values() if b.producer is not None} | set(step.after)

    def groups_of(self, step: StepJob) -> list[str]:
        """The groups a step sits in, innermost first."""
        found, group = [], step.group
        while group is not None:
            found.append(group)
            group = self.groups[group].group
        return found


@dataclass
class PipelineState:
    run_id: str
    job: PipelineJob
    step_runs: dict[str, str] = field(default_factory=dict)     # node id -> step run id
    thread: threading.Thread | None = None
    canceled: threading.Event = field(default_factory=threading.Event)   # set by Engine.cancel


# a runner of a kind of step: (engine, pipeline state, step, step run) -> None; raises StepFailure
StepRunner = Callable[["Engine", PipelineState, StepJob, RunRecord], None]


# -- the engine ----------------------------------------------------------------------------------
class Engine:
    """State and execution of one fake workspace."""

    def __init__(self, root: Path, blob: BlobStore, compute: Compute, *, datastores: Mapping[str, str],
                 runtime_env: Callable[[RunRecord], dict[str, str]], execute: bool = True,
                 runners: Mapping[str, StepRunner] | None = None, web_files: Mapping[str, Path] | None = None,
                 web_fetch: bool = True) -> None:
        self.root = Path(root)
        self.blob = blob
        self.compute = compute
        self.datastores = dict(datastores)            # datastore name -> container
        self.runtime_env = runtime_env                # what Azure's compute sets for a run (API-specific)
        self.execute = execute
        self.runners = dict(runners or {})            # step kind -> what runs it (command steps: the compute)
        self.lock = threading.RLock()
        self.runs: dict[str, RunRecord] = {}
        self.experiments: dict[str, dict[str, Any]] = {}
        self.datasets: dict[str, list[DatasetVersion]] = {}
        self.models: dict[str, list[ModelVersion]] = {}
        self.snapshots: dict[str, dict[str, tuple[str, str]]] = {}
        self.computes: dict[str, ComputeTarget] = {}
        self.pipelines: dict[str, PipelineState] = {}
        self.reuse_index: dict[str, str] = {}          # reuse key -> step run id that produced the outputs
        self.reuse_log: list[dict[str, Any]] = []      # what reuse decided, per step run (for tests and docs)
        self.web_files = {url: Path(path) for url, path in (web_files or {}).items()}   # URL -> local copy
        self.web_fetch = web_fetch                     # fetch other URLs from the network (as Azure does)
        self._numbers = 0

    # -- experiments and runs ----------------------------------------------------------------------
    def experiment(self, name: str) -> dict[str, Any]:
        with self.lock:
            return self.experiments.setdefault(name, {"id": new_id(), "name": name, "created": time.time()})

    def experiment_by_id(self, experiment_id: str) -> dict[str, Any] | None:
        return next((e for e in self.experiments.values() if e["id"] == experiment_id), None)

    def create_run(self, experiment: str, run_type: str, name: str, *, parent_id: str | None = None,
                   run_id: str | None = None, status: str = "NotStarted", target: str | None = None,
                   properties: Mapping[str, str] | None = None) -> RunRecord:
        with self.lock:
            self.experiment(experiment)
            self._numbers += 1
            parent = self.runs.get(parent_id) if parent_id else None
            record = RunRecord(id=run_id or new_id(), experiment=experiment, run_type=run_type, name=name,
                               number=self._numbers, parent_id=parent_id,
                               root_id=(parent.root_id or parent.id) if parent else None, status=status,
                               target=target, properties=dict(properties or {}))
            if status == "Running":
                record.started = time.time()
            self.runs[record.id] = record
            return record

    def run(self, run_id: str) -> RunRecord:
        found = self.runs.get(run_id)
        if found is None:
            raise ServiceError(404, "NotFound", f"Run {run_id} was not found")
        return found

    def children(self, run_id: str) -> list[RunRecord]:
        with self.lock:
            return sorted((r for r in self.runs.values() if r.parent_id == run_id), key=lambda r: r.number)

    def set_status(self, record: RunRecord, status: str, error: Mapping[str, Any] | None = None) -> None:
        with self.lock:
            if status == "Running" and record.started is None:
                record.started = time.time()
            if status in TERMINAL and record.ended is None:
                record.ended = time.time()
            record.status = status
            if error is not None:
                record.error = dict(error)

    def log_metric(self, run_id: str, name: str, value: Any, step: int | None = None) -> None:
        with self.lock:
            self.run(run_id).metrics.append({"name": name, "value": value, "step": step, "time": time.time()})

    def add_file(self, run_id: str, name: str, data: bytes, container: str = "azureml") -> None:
        """Keep a file with a run (a log, an artifact) in the artifact container."""
        record = self.run(run_id)
        blob = f"ExperimentRun/dcid.{run_id}/{name}"
        self.blob.put(container, blob, data)
        with self.lock:
            record.files[name] = (container, blob)

    def read_file(self, run_id: str, name: str) -> bytes:
        container, blob = self.run(run_id).files[name]
        return self.blob.get(container, blob)

    # -- datasets ----------------------------------------------------------------------------------
    def register_dataset(self, name: str, definition: Any, *, files: list[tuple[str, str]] | None = None,
                         urls: list[str] | None = None, description: str | None = None,
                         tags: Mapping[str, str] | None = None) -> DatasetVersion:
        with self.lock:
            versions = self.datasets.setdefault(name, [])
            dataset_id = versions[0].id if versions else new_id()
            entry = DatasetVersion(name=name, version=len(versions) + 1, id=dataset_id, saved_id=new_id(),
                                   definition=definition, files=list(files or []), urls=list(urls or []),
                                   description=description, tags=dict(tags or {}))
            versions.append(entry)
            return entry

    def dataset(self, name: str, version: int | None = None) -> DatasetVersion:
        versions = self.datasets.get(name)
        if not versions:
            raise ServiceError(404, "UserError", f"Cannot find dataset registered with name \"{name}\" in the "
                                                 f"workspace.")
        if version is None:
            return versions[-1]
        if not 1 <= version <= len(versions):
            raise ServiceError(404, "UserError", f"Cannot find dataset registered with name \"{name}\" (version: "
                                                 f"{version}) in the workspace.")
        return versions[version - 1]

    def dataset_by_id(self, any_id: str) -> DatasetVersion | None:
        for versions in self.datasets.values():
            for entry in versions:
                if any_id in (entry.saved_id, entry.id):
                    return entry if any_id == entry.saved_id else versions[-1]
        return None

    def dataset_local_files(self, entry: DatasetVersion) -> list[Path]:
        files = []
        for datastore, path in entry.files:
            container = self.datastores.get(datastore)
            if container is None:
                raise ServiceError(400, "UserError", f"dataset {entry.name!r} reads datastore {datastore!r}, "
                                                     f"which does not exist")
            target = self.blob.path(container, path)
            files += sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
        return files

    # -- models ------------------------------------------------------------------------------------
    def register_model(self, name: str, url: str, *, run_id: str | None, experiment: str | None,
                       description: str | None = None, tags: Mapping[str, str] | None = None,
                       properties: Mapping[str, str] | None = None, framework: str | None = None) -> ModelVersion:
        with self.lock:
            versions = self.models.setdefault(name, [])
            entry = ModelVersion(name=name, version=len(versions) + 1, url=url, run_id=run_id, experiment=experiment,
                                 description=description, tags=dict(tags or {}), properties=dict(properties or {}),
                                 framework=framework)
            versions.append(entry)
            return entry

    def model(self, model_id: str) -> ModelVersion:
        name, _, version = model_id.rpartition(":")
        versions = self.models.get(name) or []
        if not version.isdigit() or not 1 <= int(version) <= len(versions):
            raise ServiceError(404, "ModelNotFound", f"Model {model_id} not found")
        return versions[int(version) - 1]

    # -- snapshots ---------------------------------------------------------------------------------
    def add_snapshot(self, snapshot_id: str, files: Mapping[str, tuple[str, str]]) -> None:
        """A snapshot: relative file path -> the blob holding it (checked to exist)."""
        for relative, (container, blob) in files.items():
            if not self.blob.exists(container, blob):
                raise ServiceError(400, "UserError", f"snapshot file {relative!r} was never uploaded "
                                                     f"(no blob {container}/{blob})")
        with self.lock:
            self.snapshots[snapshot_id] = dict(files)

    def materialize_snapshot(self, snapshot_id: str, target: Path) -> None:
        files = self.snapshots.get(snapshot_id)
        if files is None:
            raise ServiceError(400, "UserError", f"snapshot {snapshot_id} does not exist")
        target.mkdir(parents=True, exist_ok=True)
        for relative, (container, blob) in files.items():
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(self.blob.get(container, blob))

    # -- pipelines ---------------------------------------------------------------------------------
    def submit(self, job: PipelineJob, run_id: str | None = None) -> RunRecord:
        """Create the pipeline run and its step runs (NotStarted), then execute in the background."""
        for step in job.steps:
            self.check_compute(step.compute, step.name)
        record = self.create_run(job.experiment, "azureml.PipelineRun", job.experiment, run_id=run_id,
                                 status="NotStarted")
        record.description = job.description
        record.properties.update({"azureml.runsource": "azureml.PipelineRun",
                                  "azureml.parameters": json.dumps(job.parameters)})
        state = PipelineState(record.id, job)
        with self.lock:
            self.pipelines[record.id] = state
        return record

    def start(self, run_id: str) -> None:
        state = self.pipelines[run_id]
        record = self.run(run_id)
        self.set_status(record, "Running")
        state.thread = threading.Thread(target=self._execute_pipeline, args=(state,), name=f"pipeline-{run_id[:8]}",
                                        daemon=True)
        state.thread.start()

    def cancel(self, run_id: str) -> RunRecord:
        """Cancel pipeline run ``run_id`` as Azure does: ``CancelRequested`` until its running step has stopped, then
        ``Canceled`` (see the module's docstring). A run that has ended stays as it ended; another kind of run ends
        ``Canceled`` at once."""
        record = self.run(run_id)
        state = self.pipelines.get(run_id)
        with self.lock:
            if record.status in TERMINAL:
                return record
            if state is None or state.thread is None:   # not a pipeline run, or one never started
                if state is not None:
                    state.canceled.set()
                self.set_status(record, "Canceled")
                return record
            state.canceled.set()
            self.set_status(record, "CancelRequested")
        return record

    def check_compute(self, name: str, step: str) -> ComputeTarget:
        target = self.computes.get(name)
        if target is None:
            raise ServiceError(400, "UserError", f"Compute target {name!r} of step {step!r} was not found in the "
                                                 f"workspace; existing compute targets: "
                                                 f"{', '.join(sorted(self.computes)) or '(none)'}")
        if target.state != "Succeeded":
            raise ServiceError(400, "UserError", f"Compute target {name!r} of step {step!r} is in state "
                                                 f"{target.state}, not Succeeded")
        return target

    def wait(self, run_id: str, timeout: float = 600) -> str:
        """Block until a pipeline run ends (for tests and the command line); returns its status."""
        state = self.pipelines[run_id]
        if state.thread is not None:
            state.thread.join(timeout)
        return self.run(run_id).status

    def _execute_pipeline(self, state: PipelineState) -> None:
        record = self.run(state.run_id)
        job = state.job
        failed: set[str] = set()
        by_id = {s.node_id: s for s in job.steps}
        try:
            for step in _topological(job):
                if state.canceled.is_set():   # the steps not started never start
                    break
                blocked = self._depends_on(job, by_id, step, failed)
                if failed and (blocked or not job.continue_on_step_failure):
                    continue
                step_run = self._run_step(record, state, step)
                if step_run.status != "Completed":
                    failed.add(step.node_id)
                self._update_groups(state, step)
            self._close_groups(state)
            if state.canceled.is_set():
                self.set_status(record, "Canceled")
            elif failed:
                first = next(self.run(state.step_runs[n]) for n in (s.node_id for s in job.steps) if n in failed)
                message = (first.error or {}).get("message") or "a step failed"
                self.set_status(record, "Failed", {"code": "UserError", "message": f"Step {first.name!r} failed: "
                                                                                   f"{message}"})
            else:
                self.set_status(record, "Completed")
        except Exception as exc:  # never leave a pipeline Running
            traceback.print_exc()
            self.set_status(record, "Failed", {"code": "ServiceError", "message": f"{type(exc).__name__}: {exc}"})

    @staticmethod
    def _depends_on(job: PipelineJob, by_id: Mapping[str, StepJob], step: StepJob, failed: set[str]) -> bool:
        seen, todo = set(), list(job.upstream(step))
        while todo:
            node = todo.pop()
            if node in failed:
                return True
            if node not in seen and node in by_id:
                seen.add(node)
                todo += list(job.upstream(by_id[node]))
        return False

    # -- pipeline nodes (pipeline components): a run of their own, parent of their steps' runs -----------
    def _parent_run(self, pipeline_run: RunRecord, state: PipelineState, group_id: str | None) -> RunRecord:
        if group_id is None:
            return pipeline_run
        with self.lock:
            existing = state.step_runs.get(group_id)
            if existing is not None:
                return self.run(existing)
            group = state.job.groups[group_id]
            parent = self._parent_run(pipeline_run, state, group.group)
            record = self.create_run(pipeline_run.experiment, "azureml.PipelineRun", group.name, parent_id=parent.id,
                                     status="Running")
            record.node_id = group_id
            record.properties.update({"azureml.nodeid": group_id, "azureml.pipelinerunid": pipeline_run.id,
                                      "azureml.runsource": "azureml.PipelineRun", "StepType": "PipelineStep"})
            record.tags.update({"azureml.nodeid": group_id, "azureml.pipeline": pipeline_run.id})
            state.step_runs[group_id] = record.id
            return record

    def _group_output(self, state: PipelineState, node: str, port: str) -> tuple[str, str] | None:
        run_id = state.step_runs.get(node)
        return self.run(run_id).outputs.get(port) if run_id else None

    def _update_groups(self, state: PipelineState, step: StepJob) -> None:
        """A group whose steps have all ended ends too: Completed, or Failed when one of them failed."""
        for group_id in state.job.groups_of(step):
            inside = [s for s in state.job.steps if group_id in state.job.groups_of(s)]
            runs = [self.runs.get(state.step_runs.get(s.node_id, "")) for s in inside]
            if any(r is None or r.status not in TERMINAL for r in runs):
                return
            self._end_group(state, group_id, "Failed" if any(r.status == "Failed" for r in runs if r) else "Completed")

    def _end_group(self, state: PipelineState, group_id: str, status: str) -> None:
        record = self.run(state.step_runs[group_id])
        if record.status in TERMINAL:
            return
        for port, (node, inner_port) in state.job.groups[group_id].outputs.items():
            where = self._group_output(state, node, inner_port)
            if where is not None:
                record.outputs[port] = where
        error = {"code": "UserError", "message": "a step of this pipeline failed"} if status == "Failed" else None
        self.set_status(record, status, error)

    def _close_groups(self, state: PipelineState) -> None:
        """Groups left open when the pipeline stopped early: Failed if a step of theirs failed, else Canceled."""
        for group_id in reversed(list(state.job.groups)):
            if group_id in state.step_runs:
                inside = [s for s in state.job.steps if group_id in state.job.groups_of(s)]
                failed = any(self.runs[state.step_runs[s.node_id]].status == "Failed" for s in inside
                             if s.node_id in state.step_runs)
                self._end_group(state, group_id, "Failed" if failed else "Canceled")

    # -- one step ----------------------------------------------------------------------------------
    def _input_identity(self, state: PipelineState, binding: InputBinding) -> str:
        how = f"{binding.kind}:{binding.mode}"
        if binding.dataset is not None:
            return f"dataset:{self.dataset(*binding.dataset).saved_id}:{how}"
        if binding.location is not None:
            return f"uri:{binding.location[0]}:{binding.location[1]}:{how}"
        if binding.url is not None:
            return f"url:{binding.url}:{how}"
        assert binding.producer is not None
        producer = self.run(state.step_runs[binding.producer[0]])
        origin = producer.reused_from or producer.id
        return f"output:{origin}:{binding.producer[1]}:{how}"

    def reuse_key(self, state: PipelineState, step: StepJob) -> str:
        import hashlib

        # Azure reuses a step when its "code, environment definition, inputs and parameters, output settings,
        # and run settings are all the same" (learn.microsoft.com, how-to-debug-pipeline-reuse-issues): the
        # environment's definition is part of the key, so a changed environment re-runs its step
        parts = {"identity": step.identity, "compute": step.compute,
                 "environment": step.environment.definition() if step.environment is not None else None,
                 "max_seconds": step.max_seconds,
                 "inputs": {p: self._input_identity(state, b) for p, b in sorted(step.inputs.items())},
                 "outputs": {p: [o.datastore, o.path] for p, o in sorted(step.outputs.items())}}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def _run_step(self, pipeline_run: RunRecord, state: PipelineState, step: StepJob) -> RunRecord:
        parent = self._parent_run(pipeline_run, state, step.group)
        step_run = self.create_run(pipeline_run.experiment, "azureml.StepRun", step.name, parent_id=parent.id,
                                   target=step.compute)
        step_run.node_id = step.node_id
        step_run.tags.update({"azureml.nodeid": step.node_id, "azureml.pipeline": pipeline_run.id})
        step_run.properties.update({"azureml.nodeid": step.node_id, "azureml.pipelinerunid": pipeline_run.id,
                                    "StepType": "AutoMLStep" if step.kind == "automl" else "PythonScriptStep"})
        with self.lock:
            state.step_runs[step.node_id] = step_run.id
        key = self.reuse_key(state, step)
        earlier = self.reuse_index.get(key) if step.allow_reuse else None
        self.reuse_log.append({"pipeline_run": pipeline_run.id, "step": step.name, "key": key,
                               "reused_from": earlier, "allow_reuse": step.allow_reuse})
        if earlier is not None:
            original = self.run(earlier)
            with self.lock:
                # as Azure shows a reused step: a run of type ReusedStepRun pointing at the original, flagged
                # azureml.isreused (what azure-ai-ml's jobs.download follows to the original's outputs)
                step_run.run_type = "azureml.ReusedStepRun"
                step_run.reused_from = earlier
                step_run.outputs = dict(original.outputs)
                reuse = {"azureml.reusedrunid": earlier, "azureml.reusednodeid": original.node_id or "",
                         "azureml.reusedpipeline": original.parent_id or ""}
                step_run.tags.update(reuse)
                step_run.properties.update({**reuse, "azureml.isreused": "true"})
                step_run.metrics = [dict(m) for m in original.metrics]
            self.set_status(step_run, "Running")
            self.set_status(step_run, "Completed")
            return step_run
        for port, spec in step.outputs.items():
            path = spec.path.replace("{run-id}", step_run.id).replace("{output-name}", port)
            step_run.outputs[port] = (spec.datastore, path)
        if not self.execute:
            self.set_status(step_run, "Completed")
            self.reuse_index[key] = step_run.id
            return step_run
        self.set_status(step_run, "Running")
        try:
            if step.kind == "command":
                self._run_command(state, step, step_run)
            elif step.kind in self.runners:
                self.runners[step.kind](self, state, step, step_run)
            else:
                raise StepFailure("SystemError", f"the fake service cannot run {step.kind} steps")
        except StepFailure as failure:
            if state.canceled.is_set():   # stopped by the cancel: Canceled, with its AutoML trials still running
                for child in self.children(step_run.id):
                    if child.status not in TERMINAL:
                        self.set_status(child, "Canceled")
                self.set_status(step_run, "Canceled")
                return step_run
            self.set_status(step_run, "Failed", {"code": failure.code, "message": failure.message})
            return step_run
        except Exception as exc:  # a bug of the fake, reported on the step like a system error
            trace = traceback.format_exc()
            self.add_file(step_run.id, "azureml-logs/70_driver_log.txt", trace.encode())
            self.set_status(step_run, "Failed", {"code": "SystemError",
                                                 "message": f"fake service error: {type(exc).__name__}: {exc}"})
            return step_run
        self.set_status(step_run, "Completed")
        with self.lock:
            self.reuse_index[key] = step_run.id
        return step_run

    # -- data --------------------------------------------------------------------------------------
    def input_location(self, state: PipelineState, binding: InputBinding) -> Path:
        """Where an input's data is in the store (a folder, or the file of a single-blob output or a URI)."""
        if binding.producer is not None:
            producer = self.run(state.step_runs[binding.producer[0]])
            datastore, path = producer.outputs[binding.producer[1]]
            return self.blob.path(self.datastores[datastore], path)
        if binding.location is not None:
            datastore, path = binding.location
            if datastore not in self.datastores:
                raise StepFailure("UserError", f"input {binding.port!r}: datastore {datastore!r} does not exist in "
                                               f"the workspace")
            target = self.blob.path(self.datastores[datastore], path) if path.strip("/") else \
                self.blob.container_dir(self.datastores[datastore])
            if not target.exists():
                raise StepFailure("UserError", f"input {binding.port!r}: {binding.source()} does not exist (no "
                                               f"blob or folder at that path of datastore {datastore!r})")
            return target
        if binding.url is not None:
            return self.fetch(binding.url, binding.port)
        assert binding.dataset is not None
        files = self.dataset_local_files(self.dataset(*binding.dataset))
        if len(files) == 1:
            return files[0].parent
        return Path(*_common_parts(files))

    def fetch(self, url: str, port: str = "") -> Path:
        """A public URL's content, as the job's data step downloads it (from ``web_files`` when given)."""
        import hashlib
        import shutil
        import urllib.request
        from urllib.parse import unquote, urlparse

        name = unquote(Path(urlparse(url).path).name) or "data"
        target = self.root / "web" / hashlib.sha256(url.encode()).hexdigest()[:16] / name
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        local = self.web_files.get(url)
        if local is not None:
            shutil.copyfile(local, target)
        elif not self.web_fetch:
            raise StepFailure("UserError", f"input {port!r}: cannot download {url}: this fake service does not reach "
                                           f"the network (give it a local copy: FakeAzureML(web_files={{url: path}}))")
        else:
            try:
                # straight to the URL: the service's process may hold a client's proxy settings (the fake itself)
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                with opener.open(url, timeout=60) as response:
                    target.write_bytes(response.read())
            except OSError as exc:
                raise StepFailure("UserError", f"input {port!r}: cannot download {url}: {exc}") from None
        return target

    def stage_input(self, state: PipelineState, binding: InputBinding, folder: Path) -> str:
        """What a step is given for an input: a path (a copy in ``folder``, or the storage folder for rw_mount),
        or the input's URI (direct)."""
        import shutil

        if binding.mode == "direct" and binding.dataset is None:
            return binding.url or binding.source()
        source = self.input_location(state, binding)
        if binding.mode not in READ_ONLY_MODES + COPY_MODES:   # rw_mount, and v1's direct datasets
            return str(source)
        target = folder / binding.port
        if binding.dataset is not None:   # only the dataset's files, not the rest of their folder
            target.mkdir(parents=True, exist_ok=True)
            for file in self.dataset_local_files(self.dataset(*binding.dataset)):
                relative = file.relative_to(source) if file.is_relative_to(source) else Path(file.name)
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file, target / relative)
            return str(target)
        if source.is_file():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target / source.name)
            return str(target / source.name)
        shutil.copytree(source, target, dirs_exist_ok=True)
        return str(target)

    def output_location(self, step_run: RunRecord, port: str, is_file: bool) -> Path:
        datastore, path = step_run.outputs[port]
        if datastore not in self.datastores:
            raise StepFailure("UserError", f"output {port!r}: datastore {datastore!r} does not exist in the workspace")
        target = self.blob.path(self.datastores[datastore], path)
        (target.parent if is_file else target).mkdir(parents=True, exist_ok=True)
        return target

    def _resolve(self, step: StepJob, tokens: list[Token], places: Mapping[tuple[str, str], str]) -> str:
        text = []
        for token in tokens:
            if token.kind == "literal":
                text.append(token.value)
            elif token.kind in ("input_path", "output_path"):
                text.append(places[(token.kind, token.value)])
            elif token.kind == "input_dataset_id":
                binding = step.inputs[token.value]
                text.append(self.dataset(*binding.dataset).saved_id if binding.dataset else "")
            else:
                raise ValueError(f"unknown token kind {token.kind!r}")
        return "".join(text)

    def _run_command(self, state: PipelineState, step: StepJob, step_run: RunRecord) -> None:
        import shutil

        workdir = self.root / "runs" / step_run.id
        workdir.mkdir(parents=True, exist_ok=True)

        def save_logs(text: str) -> None:
            data = text.encode()
            self.add_file(step_run.id, "azureml-logs/70_driver_log.txt", data)
            self.add_file(step_run.id, "user_logs/std_log.txt", data)

        assert step.environment is not None and step.snapshot_id is not None
        assert step.script is not None or step.shell is not None
        try:
            built = self.compute.build(step.environment, self.blob)
        except ImageBuildError as exc:
            self.add_file(step_run.id, "azureml-logs/20_image_build_log.txt", exc.log.encode())
            raise StepFailure("UserError", f"Image build failed for environment {step.environment.name!r}: "
                                           f"{exc}") from None
        self.add_file(step_run.id, "azureml-logs/20_image_build_log.txt", built.log.encode())
        python = built.python
        fidelity = "".join(f"[fake Azure ML] fidelity note: {note}\n" for note in built.notes)
        snapshot = workdir / "snapshot"
        self.materialize_snapshot(step.snapshot_id, snapshot)
        places: dict[tuple[str, str], str] = {}
        uploads: dict[str, tuple[Path, Path]] = {}
        for port, spec in step.outputs.items():
            stored = self.output_location(step_run, port, spec.is_file)
            if spec.mode == "upload" and not spec.is_file:
                local = workdir / "outputs" / port
                local.mkdir(parents=True, exist_ok=True)
                uploads[port] = (local, stored)
                places[("output_path", port)] = str(local)
            else:
                places[("output_path", port)] = str(stored)
        for port, binding in step.inputs.items():
            places[("input_path", port)] = self.stage_input(state, binding, workdir / "inputs")
        argv = [self._resolve(step, [t], places) for t in step.argv]
        env = {name: self._resolve(step, tokens, places) for name, tokens in step.env.items()}
        env.update(self.runtime_env(step_run))
        process = StepProcess(python=python, script=step.script or "", argv=argv, env=env, cwd=snapshot,
                              home=workdir / "home", timeout=step.max_seconds,
                              shell=None if step.shell is None else self._resolve(step, step.shell, places),
                              stop=state.canceled)
        try:
            code, output = process.run()
        finally:
            for local, stored in uploads.values():   # upload mode: what the step wrote goes to the store
                shutil.copytree(local, stored, dirs_exist_ok=True)
            shutil.rmtree(workdir / "inputs", ignore_errors=True)
        save_logs(fidelity + output)
        if code != 0:
            raise StepFailure("UserError", user_error(output, code, step.script or "the command"))


class StepFailure(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def user_error(output: str, code: int, script: str) -> str:
    """Azure's message for a script that failed: the exception line of its traceback, else the exit code."""
    import re

    lines = [line for line in output.rstrip().splitlines() if line.strip()]
    if lines and "can't open file" in lines[-1]:
        return f"User program failed: {lines[-1].split(': ', 1)[-1]}"
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if starts:
        for line in lines[starts[-1] + 1:]:
            match = re.match(r"^([A-Za-z_][\w.]*)(?:: (.*))?$", line)
            if match and not line.startswith((" ", "\t")):
                name, message = match.group(1).rsplit(".", 1)[-1], match.group(2)
                return f"User program failed with {name}: {message}" if message else f"User program failed with {name}"
    return f"User program exited with code {code} (script {script})"


def _topological(job: PipelineJob) -> Iterator[StepJob]:
    done: set[str] = set()
    remaining = list(job.steps)
    while remaining:
        ready = [s for s in remaining if job.upstream(s) <= done]
        if not ready:
            raise ServiceError(400, "UserError", "the pipeline graph has a cycle")
        for step in ready:
            remaining.remove(step)
            done.add(step.node_id)
            yield step


def _common_parts(files: list[Path]) -> tuple[str, ...]:
    parts = [p.parent.parts for p in files]
    common: list[str] = []
    for items in zip(*parts):
        if len(set(items)) != 1:
            break
        common.append(items[0])
    return tuple(common)
