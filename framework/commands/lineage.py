"""Reading a pipeline run's data lineage back from the run history.

Every step run records ``plugin``, ``inputs`` (port -> data name, or ``dataset:NAME:VERSION``)
and ``outputs`` (port -> data name) in its properties, and where each output landed in its
``outputs`` record. From those, the report draws the pipeline graph and finds the AutoML step's
training data, and ``predict`` finds the preparation steps to re-run on new data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..errors import WorkspaceError
from ..workspace import LocalWorkspace, ModelVersion, RunRecord

DATASET_PREFIX = "dataset:"
T = TypeVar("T")


@dataclass(frozen=True)
class DatasetRef:
    name: str
    version: int

    @classmethod
    def parse(cls, source: str) -> DatasetRef | None:
        if not isinstance(source, str) or not source.startswith(DATASET_PREFIX):
            return None
        name, _, version = source[len(DATASET_PREFIX):].rpartition(":")
        return cls(name, int(version)) if name and version.isdigit() else None

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"


class Lineage:
    """The step runs of one pipeline run and the data flowing between them.

    A standalone AutoML run (``Experiment.submit``) reads as a pipeline of one step: the AutoML run
    itself (``standalone`` is True), so that the report shows it as it shows an AutoML step.
    """

    def __init__(self, workspace: LocalWorkspace, run_id: str) -> None:
        self.workspace = workspace
        self.run = workspace.get_run(run_id)
        self.standalone = False
        if self.run.run_type == "child" and self.run.parent_id:  # an AutoML iteration: its experiment's run
            experiment = workspace.get_run(self.run.parent_id)
            if experiment.run_type in ("automl", "step"):
                self.run = experiment
        if self.run.run_type == "automl":
            self.standalone = True
            self.steps = [self.run]
            return
        if self.run.run_type != "pipeline":
            parent = self.run.parent_id
            if self.run.run_type == "step" and parent:
                self.run = workspace.get_run(parent)
            else:
                raise WorkspaceError(f"run {run_id!r} is a {self.run.run_type} run, not a pipeline run or an AutoML "
                                     f"run")
        self.steps = workspace.get_children(self.run.id)

    def step(self, name: str) -> RunRecord:
        for step in self.steps:
            if step.name == name:
                return step
        raise WorkspaceError(f"pipeline run {self.run.id} has no step {name!r}")

    def inputs(self, step: RunRecord) -> dict[str, str]:
        return dict(step.properties.get("inputs") or {})

    def outputs(self, step: RunRecord) -> dict[str, str]:
        return dict(step.properties.get("outputs") or {})

    def producer(self, data_name: str) -> RunRecord | None:
        """The step run that produced ``data_name`` in this pipeline run."""
        for step in self.steps:
            if data_name in self.outputs(step).values():
                return step
        return None

    def consumers(self, data_name: str) -> list[RunRecord]:
        return [s for s in self.steps if data_name in self.inputs(s).values()]

    def location(self, source: str) -> Path | list[Path]:
        """Where the data ``source`` (a data name or ``dataset:NAME:VERSION``) is stored."""
        dataset = DatasetRef.parse(source)
        if dataset is not None:
            sampled = ((self.run.properties.get("sample") or {}).get("datasets") or {}).get(dataset.name) or {}
            if sampled.get("path") and (self.workspace.path / sampled["path"]).is_file():  # --sample: what the steps read
                return [self.workspace.path / sampled["path"]]
            return self.workspace.get_dataset(dataset.name, dataset.version).file_paths()
        step = self.producer(source)
        if step is None:
            raise WorkspaceError(f"no step of pipeline run {self.run.id} produced data {source!r}")
        for record in (step.outputs or {}).values():
            if isinstance(record, dict) and record.get("data") == source:
                path = self.workspace.path / record["path"]
                if not path.exists():
                    raise WorkspaceError(f"data {source!r} of step {step.name!r} is no longer in the datastore ({path})")
                return path
        raise WorkspaceError(f"step {step.name!r} of pipeline run {self.run.id} recorded no location for data "
                             f"{source!r} (status {step.status})")

    def chain(self, source: str) -> list[RunRecord]:
        """The step runs needed to produce ``source``, in dependency order (empty for a dataset)."""
        ordered: list[RunRecord] = []
        seen: set[str] = set()

        def visit(data: str) -> None:
            step = self.producer(data)
            if step is None or step.id in seen:
                return
            seen.add(step.id)
            for upstream in self.inputs(step).values():
                visit(upstream)
            ordered.append(step)

        visit(source)
        return ordered

    def origin(self, step: RunRecord) -> RunRecord:
        """The run that did the work: the earlier run for a reused step, else the step itself."""
        if step.reused_from:
            try:
                return self.workspace.get_run(step.reused_from)
            except WorkspaceError:
                return step
        return step

    def done_in(self, step: RunRecord) -> tuple[Lineage, RunRecord]:
        """The pipeline run whose step run did ``step``'s work, and that step run: the earlier run's for a step
        reused or taken from the run history (a partial run's), else this run and ``step``."""
        origin = self.origin(step)
        if origin.id == step.id or not origin.parent_id:
            return self, step
        try:
            return Lineage(self.workspace, origin.parent_id), origin
        except WorkspaceError:
            return self, step

    def automl_steps(self) -> list[RunRecord]:
        return [s for s in self.steps if _is_automl(s)]

    def learned_upstream(self, path: str | Path) -> dict[str, dict[str, Any]]:
        """What the steps upstream of the step output at ``path`` (a model, say) learned from their training rows:
        step name -> {learned output port -> the JSON object}; empty when ``path`` is no step output of this run."""
        from ..execution import read_learned

        target = Path(path).resolve()
        for step in self.steps:
            for record in (step.outputs or {}).values():
                if not isinstance(record, dict) or not record.get("path") or not record.get("data"):
                    continue
                location = (self.workspace.path / record["path"]).resolve()
                if target != location and location not in target.parents:
                    continue
                trained_in, _ = self.done_in(step)
                learned: dict[str, dict[str, Any]] = {}
                for upstream in trained_in.chain(str(record["data"])):
                    for port, output in (upstream.outputs or {}).items():
                        if isinstance(output, dict) and output.get("type") == "learned" and output.get("path"):
                            learned.setdefault(upstream.name, {})[port] = read_learned(
                                self.workspace.path / output["path"], f"learned output {port!r} of step {upstream.name!r}")
                return learned
        return {}


def parse_model_ref(ref: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME:VERSION``."""
    name, sep, version = ref.rpartition(":")
    if not sep:
        return ref, None
    if not version.isdigit():
        raise WorkspaceError(f"model {ref!r}: expected NAME or NAME:VERSION (a positive integer version)")
    return name, int(version)


def trainer_of(workspace: LocalWorkspace, model: ModelVersion,
               judge: Callable[[Lineage, RunRecord], T | None]) -> tuple[Lineage, RunRecord, T]:
    """The pipeline run that trained ``model``, its step run that trained it, and what ``judge`` said of that step.

    ``judge(lineage, step)`` is None for a step that trains no model it knows. The trainer is the
    step the registering step read the model from, else the one step of the run ``judge`` knows; a
    trainer the registering run reused or took from the run history is the earlier run's step run.
    """
    if not model.run_id:
        raise WorkspaceError(f"model {model.id} records no source run, so the preparation that trained it is unknown")
    lineage = Lineage(workspace, model.run_id)
    register_id = model.properties.get("step_run_id")
    found: tuple[Lineage, RunRecord, T] | None = None
    register = next((s for s in lineage.steps if s.id == register_id), None)
    if register is not None:
        for source in lineage.inputs(register).values():
            producer = lineage.producer(source)
            if producer is None:
                continue
            trained_in, trainer = lineage.done_in(producer)
            verdict = judge(trained_in, trainer)
            if verdict is not None:
                found = (trained_in, trainer, verdict)
    if found is None:
        candidates = [(trained_in, trainer, verdict) for trained_in, trainer in map(lineage.done_in, lineage.steps)
                      if (verdict := judge(trained_in, trainer)) is not None]
        if len(candidates) == 1:
            found = candidates[0]
    if found is None:
        raise WorkspaceError(
            f"model {model.id} was registered by pipeline run {lineage.run.id}, but no AutoML step of that run "
            f"produced it; predict needs the AutoML step to know the label and the training preparation")
    return found


def automl_for_model(workspace: LocalWorkspace, model: ModelVersion) -> tuple[Lineage, RunRecord]:
    """The pipeline run that trained ``model`` and its AutoML step that trained it."""
    lineage, step, _ = trainer_of(workspace, model, lambda _, step: True if _is_automl(step) else None)
    return lineage, step


def _is_automl(step: RunRecord) -> bool:
    return step.properties.get("kind") == "automl" or step.run_type == "automl"


def single_model_file(model: ModelVersion) -> Path:
    """The pickled model of a model version: its one file, or the pickle of an MLflow model folder (SDK v2's)."""
    files = [model.path / f for f in model.files]
    if len(files) != 1:
        pickled = mlflow_pickle(model.path, model.files)
        if pickled is not None:
            return pickled
        raise WorkspaceError(f"model {model.id} holds {len(files)} files ({', '.join(model.files)}); "
                             f"expected one pickled model")
    return files[0]


def mlflow_pickle(folder: Path, files: list[str]) -> Path | None:
    """The pickled scikit-learn model of an MLflow model folder (``MLmodel``: the ``sklearn`` flavor's
    ``pickled_model``), or None when ``files`` are not one."""
    import re

    mlmodel = next((f for f in files if Path(f).name == "MLmodel"), None)
    if mlmodel is None:
        return None
    text = (folder / mlmodel).read_text(errors="replace")
    found = re.search(r"^\s+pickled_model:\s*(\S+)\s*$", text, re.MULTILINE)
    path = (folder / mlmodel).parent / found.group(1) if found else None
    return path if path is not None and path.is_file() else None


AZURE_PREFIX = "azure:"


def azure_model(workspace: LocalWorkspace, ref: str) -> ModelVersion:
    """A model registered in an Azure workspace (``azure:NAME[:VERSION]``), as an Azure run read back into the
    local run history knows it: the step output the run registered, checked by hash before anything loads it.

    The step output was downloaded with its sha256, and the registry's copy of the model was hashed when the
    run was read back: the files here must still have the first, and hold the same bytes as the second.
    """
    from ..workspace.store import content_digest, sha256_tree

    name, version = parse_model_ref(ref[len(AZURE_PREFIX):])
    found = [(number, created, run, step, model) for number, created, run, step, model in azure_registrations(workspace)
             if model.get("name") == name and (version is None or number == version)]
    which = f"{name}:{version}" if version is not None else name
    if not found:
        raise WorkspaceError(
            f"model {which} of the Azure workspace was registered by no run of the local run history "
            f"({workspace.path}); read the run that registered it back with `amlstep runs follow RUN_ID`")
    number, _, run, step, model = max(found, key=lambda f: (f[0], f[1]))
    lineage = Lineage(workspace, run.id)
    sources = [s for s in lineage.inputs(step).values() if lineage.producer(s) is not None]
    if not sources:
        raise WorkspaceError(f"model {name}:{number} was registered by step {step.name!r} of Azure run {run.id}, "
                             f"which read no step output: the model's files are not in the local run history")
    producer = lineage.producer(sources[0])
    assert producer is not None
    record = next((r for r in (lineage.origin(producer).outputs or {}).values()
                   if isinstance(r, dict) and r.get("data") == sources[0]), None)
    if record is None:
        raise WorkspaceError(f"the files of model {name}:{number} (output {sources[0]!r} of step {producer.name!r} of "
                             f"Azure run {run.id}) were not downloaded; `amlstep runs follow {run.id}` reads them back")
    path = workspace.path / record["path"]
    if not path.exists():
        raise WorkspaceError(f"the files of model {name}:{number} are gone from {path}; `amlstep runs follow {run.id}` "
                             f"reads them back")
    if sha256_tree(path) != record.get("sha256"):
        raise WorkspaceError(f"the files of model {name}:{number} in {path} changed since they were downloaded from "
                             f"Azure (sha256 differs); refusing to load them. `amlstep runs follow {run.id}` reads "
                             f"them back")
    if model.get("sha256") and content_digest(path) != model["sha256"]:
        raise WorkspaceError(f"model {name}:{number} in the Azure workspace's registry does not hold the files step "
                             f"{producer.name!r} of run {run.id} produced (content hashes differ); refusing to load it")
    files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()) if path.is_dir() \
        else [path.name]
    # ModelVersion.read_verified hashes the files under its path again as it loads them: the folder's hash
    tree = str(record.get("sha256")) if path.is_dir() else sha256_tree(path.parent)
    return ModelVersion(name=f"{AZURE_PREFIX}{name}", version=number, path=path if path.is_dir() else path.parent,
                        files=files, sha256=tree, run_id=run.id,
                        description=f"registered in Azure workspace {run.properties.get('azure_workspace')}",
                        properties={"step_run_id": step.id, "azure_model": f"{name}:{number}"}, tags={},
                        created_at=step.ended_at or step.created_at)


def azure_registrations(workspace: LocalWorkspace) -> list[tuple[int, float, RunRecord, RunRecord, dict[str, Any]]]:
    """What the Azure runs of the local run history registered in their Azure workspace's model registry:
    ``(version, run created at, pipeline run, step run, the registration)``, newest run first."""
    found = []
    for run in workspace.list_runs(run_type="pipeline"):
        if run.backend != "azure":
            continue
        for step in workspace.get_children(run.id):
            for model in step.properties.get("azure_registered_models") or []:
                found.append((int(model.get("version", -1)), run.created_at, run, step, model))
    return found


def local_model(workspace: LocalWorkspace, ref: str) -> ModelVersion:
    """Model ``NAME[:VERSION]`` of the local registry; when there is none and an Azure run registered one of that
    name, the error says to use ``azure:NAME``."""
    name, version = parse_model_ref(ref)
    try:
        return workspace.get_model(name, version)
    except WorkspaceError as exc:
        if any(model.get("name") == name for *_, model in azure_registrations(workspace)):
            raise WorkspaceError(f"{exc}; an Azure run of the run history registered model {name!r} in its Azure "
                                 f"workspace: use {AZURE_PREFIX}{ref}") from None
        raise


def describe_source(source: Any) -> str:
    dataset = DatasetRef.parse(source) if isinstance(source, str) else None
    return f"dataset {dataset}" if dataset else str(source)
