"""The local backend: runs steps in dependency order against the local workspace."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TextIO

from .. import reuse as reuse_rule
from ..context import RunContext
from ..errors import AmlStepError, PipelineValidationError, RunCanceled, WorkspaceError
from ..events import PipelineEvents, StepEvents
from ..hookspecs import hookimpl
from ..execution import execute_step, load_inputs
from ..io import output_path
from ..manager import Plugins
from ..pipeline import Dataset, StepBinding, ValidatedPipeline
from ..results import PipelineRunResult, StepRunResult
from ..steps import DataType
from ..workspace import DatasetVersion, LocalChildRun, LocalWorkspace, ModelVersion, RunRecord
from ..workspace.db import WorkspaceUnwritable, is_disk_full, no_space_message
from ..workspace.store import sha256_tree


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    register("local", LocalBackend)


class LocalBackend:
    """Runs a pipeline on this machine. Step outputs land in the workspace datastore."""

    name = "local"

    def __init__(self, workspace: LocalWorkspace | str | Path | None = None, *, echo: TextIO | None = None) -> None:
        self.workspace = workspace if isinstance(workspace, LocalWorkspace) else LocalWorkspace(workspace)
        self.echo = echo
        self._events: StepEvents | None = None

    def run(self, pipeline: ValidatedPipeline, *, plugins: Plugins, params: Mapping[str, Any] | None = None,
            reuse: bool = True, resume: str | None = None) -> PipelineRunResult:
        ws = self.workspace
        resumed: dict[str, RunRecord] = {}
        if resume is not None:
            earlier, resumed = self._resumable(pipeline, resume)
            if params:
                raise PipelineValidationError(
                    f"--resume {earlier.id} reuses that run's parameters; do not pass --param with it")
            params = earlier.params
        values = pipeline.resolve_parameters(params)
        datasets = {d.name: resolve_dataset(ws, d) for d in pipeline.datasets()}
        run = ws.create_run(
            run_type="pipeline", name=pipeline.experiment, experiment=pipeline.experiment, status="Running",
            params=values, properties={
                "steps": [s.name for s in pipeline.steps],
                "pipeline_outputs": dict(pipeline.pipeline.outputs),
                "source": pipeline.pipeline.source,
                "datasets": {n: f"{d.name}:{d.version}" for n, d in datasets.items()},
                "continue_on_step_failure": pipeline.pipeline.continue_on_step_failure,
                **({"resumed_from": resume} if resume else {}),
            })
        started = time.monotonic()
        result = PipelineRunResult(run_id=run.id, experiment=pipeline.experiment, status="Running",
                                   backend=self.name, params=values)
        data: dict[str, tuple[Path, str, DataType]] = {}
        failed: set[str] = set()
        with PipelineEvents(plugins.hook, run.id, pipeline.pipeline, values, self.name) as events:
            try:
                events.started()
                for binding in pipeline.steps:
                    blocked = pipeline_blockers(pipeline, binding, failed)
                    if failed and (blocked or not pipeline.pipeline.continue_on_step_failure):
                        reason = (f"not run: upstream step {sorted(blocked)[0]!r} failed" if blocked
                                  else f"not run: step {sorted(failed)[0]!r} failed and continue_on_step_failure is off")
                        skipped = ws.create_run(run_type="step", name=binding.name, experiment=pipeline.experiment,
                                                parent_id=run.id, status="NotStarted",
                                                properties=_binding_properties(binding, datasets, plugins))
                        ws.update_run(skipped.id, error=reason)
                        result.steps.append(StepRunResult(binding.name, skipped.id, "NotStarted", error=reason))
                        continue
                    step_result = self._run_step(pipeline, binding, run, values, datasets, data, plugins, reuse,
                                                 events.steps, resumed.get(binding.name))
                    result.steps.append(step_result)
                    if step_result.status != "Completed":
                        failed.add(binding.name)
            except (KeyboardInterrupt, RunCanceled) as exc:
                try:
                    ws.end_unfinished(run.id, "Canceled", "canceled by the user")
                except WorkspaceError as unrecorded:
                    ws.note_unrecorded(run.id, "canceled by the user; the cancellation could not be recorded: "
                                               f"{unrecorded}")
                    raise unrecorded from None
                result.status, result.error = "Canceled", "canceled by the user"
                result.duration = time.monotonic() - started
                events.ended(result)
                raise RunCanceled(f"pipeline run {run.id} was canceled") from exc
            except BaseException as exc:
                reason = (str(exc) if isinstance(exc, AmlStepError)
                          else f"amlstep failed while running the pipeline: {type(exc).__name__}: {exc}")
                try:
                    ws.end_unfinished(run.id, "Failed", reason)
                except WorkspaceError:
                    ws.note_unrecorded(run.id, reason)  # recorded by the next process that opens the workspace
                raise  # on_pipeline_error fires as it leaves the ``with``
            for out, data_name in pipeline.pipeline.outputs.items():
                if data_name in data:
                    location, _, kind = data[data_name]
                    result.outputs[out] = str(output_path(kind, location))
            if failed:
                first = next(s for s in result.steps if s.status == "Failed")
                result.status, result.error = "Failed", first.error
            else:
                result.status = "Completed"
            result.duration = time.monotonic() - started
            try:
                ws.update_run(run.id, status=result.status, error=result.error,
                              outputs={k: ws.relative(Path(v)) for k, v in result.outputs.items()})
            except WorkspaceError as exc:
                ws.note_unrecorded(run.id, f"the run ended {result.status} but that could not be recorded: {exc}")
                raise
            events.ended(result)
        return result

    def _run_step(self, pipeline: ValidatedPipeline, binding: StepBinding, run: RunRecord,
                  values: Mapping[str, Any], datasets: Mapping[str, DatasetVersion],
                  data: dict[str, tuple[Path, str, DataType]], plugins: Plugins, reuse: bool,
                  events: StepEvents | None, resumed: RunRecord | None = None) -> StepRunResult:
        ws = self.workspace
        self._events = events
        params = binding.resolve_params(values)
        step_run = ws.create_run(run_type="step", name=binding.name, experiment=pipeline.experiment,
                                 parent_id=run.id, status="Running", params=params,
                                 properties=_binding_properties(binding, datasets, plugins))
        if events is not None:
            events.started(binding, step_run.id)
        input_hashes: dict[str, str] = {}
        input_locations: dict[str, Path | list[Path]] = {}
        for port, source in binding.inputs.items():
            if isinstance(source, Dataset):
                dataset = datasets[source.name]
                input_hashes[port] = f"dataset:{dataset.sha256}"
                input_locations[port] = dataset.file_paths()
            else:
                location, digest, _ = data[source]
                input_hashes[port] = digest
                input_locations[port] = location
        parts = reuse_rule.components(binding.spec, params, input_hashes, binding.allow_reuse)
        key = reuse_rule.key(parts)
        previous = ws.last_step_run(binding.name, binding.plugin, experiment=pipeline.experiment)
        earlier, problem = reuse_rule.find_reusable(ws, key) if (reuse and binding.allow_reuse) else (None, None)
        if resumed is not None and resumed.reuse_key == key:
            done = ws.get_run(resumed.reused_from) if resumed.reused_from else resumed
            problem = reuse_rule.integrity_problem(ws, done)
            earlier = done if problem is None else None
        if earlier is not None:
            for record in earlier.outputs.values():
                data[record["data"]] = (ws.path / record["path"], record["sha256"], DataType(record["type"]))
            reasons = ([f"completed in resumed run {resumed.parent_id}"] if resumed is not None and resumed.reuse_key == key
                       else [f"reused step run {earlier.id[:8]}: code, parameters and inputs unchanged"])
            ws.update_run(step_run.id, status="Completed", reused_from=earlier.id, outputs=earlier.outputs,
                          reuse_key=key, reuse_components=parts, properties={
                              **step_run.properties, "reuse_reasons": reasons})
            result = StepRunResult(binding.name, step_run.id, "Completed", reused=True, reused_from=earlier.id,
                                   reasons=reasons, duration=0.0, outputs=_output_paths(ws, earlier.outputs))
            self._say(f"[{binding.name}] reused outputs of step run {earlier.id}")
            if events is not None:
                events.finished(binding, step_run.id, result)
            return result
        if not binding.allow_reuse:
            reasons = ["allow_reuse is False for this step"]
        elif not reuse:
            reasons = ["reuse disabled for this run (--no-reuse)"]
        else:
            reasons = reuse_rule.explain(parts, previous.reuse_components if previous else None, problem=problem,
                                         previous_status=previous.status if previous else None,
                                         previous_id=previous.id if previous else None)
        ws.update_run(step_run.id, reuse_key=key, reuse_components=parts,
                      properties={**step_run.properties, "reuse_reasons": reasons})
        self._say(f"[{binding.name}] running: " + "; ".join(reasons))
        staging = ws.staging_dir()
        log_path = ws.log_path(step_run.id)
        ws.update_run(step_run.id, log_path=ws.relative(log_path))
        started = time.monotonic()
        try:
            with capture_output(log_path, self.echo):
                self._execute(binding, step_run, run, params, input_locations, staging)
            final = ws.commit_outputs(staging, step_run.id)
            records = {}
            for port, data_name in binding.outputs.items():
                kind = binding.output_type(port)
                location = final / data_name
                records[port] = {"data": data_name, "type": kind.value, "path": ws.relative(location),
                                 "sha256": sha256_tree(location)}
                data[data_name] = (location, records[port]["sha256"], kind)
            ws.update_run(step_run.id, status="Completed", outputs=records)
            result = StepRunResult(binding.name, step_run.id, "Completed", reasons=reasons,
                                   duration=time.monotonic() - started, outputs=_output_paths(ws, records),
                                   log_path=str(log_path))
            if events is not None:
                events.finished(binding, step_run.id, result)
            return result
        except (KeyboardInterrupt, RunCanceled):
            shutil.rmtree(staging, ignore_errors=True)
            ws.update_run(step_run.id, status="Canceled", error="canceled by the user")
            raise
        except Exception as exc:
            shutil.rmtree(staging, ignore_errors=True)
            message = error_message(binding, exc, ws.path)
            try:
                with open(log_path, "a") as log:
                    log.write("\n" + "".join(traceback.format_exception(exc)))
            except OSError:
                pass  # a full disk: the error is still recorded in the run history
            try:
                ws.update_run(step_run.id, status="Failed", error=message)
            except WorkspaceUnwritable:
                raise WorkspaceUnwritable(message) from None  # the pipeline run leaves it in its lease
            self._say(f"[{binding.name}] failed: {message}")
            if events is not None:
                events.failed(binding, step_run.id, exc)
            return StepRunResult(binding.name, step_run.id, "Failed", reasons=reasons,
                                 duration=time.monotonic() - started, error=message, log_path=str(log_path),
                                 traceback=traceback_tail(exc, binding))

    def _resumable(self, pipeline: ValidatedPipeline, run_id: str) -> tuple[RunRecord, dict[str, RunRecord]]:
        """The failed run to resume and its completed step runs, by step name."""
        earlier = self.workspace.get_run(run_id)
        if earlier.run_type != "pipeline":
            raise PipelineValidationError(f"--resume needs a pipeline run id; {earlier.id} is a {earlier.run_type} run")
        if earlier.status not in ("Failed", "Canceled"):
            raise PipelineValidationError(
                f"run {earlier.id} is {earlier.status}; only a Failed or Canceled run can be resumed")
        if earlier.experiment != pipeline.experiment or earlier.properties.get("steps") != [s.name for s in pipeline.steps]:
            raise PipelineValidationError(
                f"run {earlier.id} ran another pipeline (experiment {earlier.experiment!r}, steps "
                f"{earlier.properties.get('steps')}); resume it with the same pipeline")
        done = {r.name: r for r in self.workspace.get_children(earlier.id) if r.status == "Completed"}
        return earlier, done

    def _execute(self, binding: StepBinding, step_run: RunRecord, run: RunRecord, params: Mapping[str, Any],
                 input_locations: Mapping[str, Path | list[Path]], staging: Path) -> None:
        output_dirs = {}
        for port, data_name in binding.outputs.items():
            output_dirs[port] = staging / data_name
            output_dirs[port].mkdir()
        inputs = load_inputs(binding.spec, binding.name, input_locations)
        context = LocalRunContext(self.workspace, step_run, run.id, binding, params, output_dirs,
                                  dict(input_locations), events=self._events)
        execute_step(binding.spec, binding.name, inputs, params, context, output_dirs)

    def _say(self, message: str) -> None:
        if self.echo is not None:
            print(message, file=self.echo, flush=True)


def _binding_properties(binding: StepBinding, datasets: Mapping[str, DatasetVersion], plugins: Plugins
                        ) -> dict[str, Any]:
    """What a step run records about its plugin and its data bindings (also for steps that never ran)."""
    return {"plugin": binding.plugin, "kind": binding.spec.kind, "plugin_owner": plugins.owner(binding.plugin),
            "inputs": {port: (f"dataset:{src.name}:{datasets[src.name].version}" if isinstance(src, Dataset) else src)
                       for port, src in binding.inputs.items()},
            "outputs": dict(binding.outputs)}


def pipeline_blockers(pipeline: ValidatedPipeline, binding: StepBinding, failed: set[str]) -> set[str]:
    """The failed steps that ``binding`` depends on, directly or not."""
    return {name for name in failed if binding.name in pipeline.downstream_of(name)}


def error_message(binding: StepBinding, exc: BaseException, workspace: Path | None = None) -> str:
    if is_disk_full(exc):
        filename = getattr(exc, "filename", None)
        if workspace is not None and (filename is None or Path(filename).resolve().is_relative_to(workspace)):
            return f"step {binding.name!r}: {no_space_message(workspace)}"
        return f"step {binding.name!r} ({binding.plugin}): no space left on the device holding {filename}"
    if isinstance(exc, AmlStepError):
        text = str(exc)
        return text if f"{binding.name!r}" in text else f"step {binding.name!r}: {text}"
    return f"step {binding.name!r} ({binding.plugin}) raised {type(exc).__name__}: {exc}"


def traceback_tail(exc: BaseException, binding: StepBinding, frames: int = 3) -> str | None:
    """The last lines of a failed step's traceback: its plugin's own frames (and the deepest one), then the
    error; the whole traceback is in the step's log. None for amlstep's own errors, which say it all."""
    if isinstance(exc, AmlStepError) or exc.__traceback__ is None:
        return None
    stack = traceback.extract_tb(exc.__traceback__)
    roots = tuple(str(Path(p)) for p in reuse_rule.source_paths(binding.spec))
    mine = [f for f in stack if roots and f.filename.startswith(roots)]
    shown = mine[-(frames - 1):] if mine else []
    if not shown or shown[-1] is not stack[-1]:
        shown.append(stack[-1])
    lines = traceback.format_list(shown)
    if len(shown) < len(stack):
        lines.insert(0, "  ...\n")
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines).rstrip()


def resolve_dataset(ws: LocalWorkspace, dataset: Dataset) -> DatasetVersion:
    """The registered dataset, registered first from its sources when the workspace lacks it."""
    if ws.has_dataset(dataset.name) or not dataset.sources:
        found = ws.get_dataset(dataset.name, dataset.version)
        found.check_files()
        return found
    from ..workspace.sources import resolved_sources

    problems = []
    for sources in (dataset.sources, *((s,) for s in dataset.fallback_sources)):
        try:
            version, _ = ws.register_dataset(dataset.name, resolved_sources(sources), description=dataset.description)
            return version
        except WorkspaceError as exc:
            problems.append(str(exc))
    raise WorkspaceError(
        f"dataset {dataset.name!r} is not registered and could not be fetched from its sources "
        f"({'; '.join(problems)}). Offline? Register a local copy: "
        f"`amlstep datasets register {dataset.name} path/to/file.csv`"
    )


def _output_paths(ws: LocalWorkspace, records: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    return {port: str(output_path(DataType(r["type"]), ws.path / r["path"])) for port, r in records.items()}


class LocalRunContext(RunContext):
    """The offline run context: like ``_OfflineRun``, but everything lands in the run history."""

    backend = "local"

    def __init__(self, workspace: LocalWorkspace, record: RunRecord, pipeline_run_id: str | None,
                 binding: StepBinding, params: Mapping[str, Any], output_dirs: Mapping[str, Path],
                 input_datasets: Mapping[str, Any], events: StepEvents | None = None) -> None:
        super().__init__(run_id=record.id, step_name=binding.name, experiment_name=record.experiment,
                         pipeline_run_id=pipeline_run_id, params=params, input_datasets=input_datasets,
                         output_dirs=output_dirs, output_names=binding.outputs)
        self.workspace = workspace
        self._events = events

    def log(self, name: str, value: Any, description: str = "") -> None:
        self.workspace.log_metric(self.id, name, value)
        if self._events is not None:
            self._events.logged(self.id, name, value)

    def get_metrics(self) -> dict[str, Any]:
        return self.workspace.get_metrics(self.id)

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        self.workspace.merge_properties(self.id, dict(properties))

    def register_model(self, model_name: str, model_path: str | Path, *, description: str = "",
                       tags: Mapping[str, Any] | None = None,
                       properties: Mapping[str, Any] | None = None) -> ModelVersion:
        model = self.workspace.register_model(
            model_name, model_path, run_id=self.pipeline_run_id or self.id, description=description,
            tags=dict(tags or {}), properties={**(properties or {}), "step_run_id": self.id})
        if self._events is not None:
            self._events.registered(self.id, model)
        return model

    def child_run(self, name: str, *, run_id: str | None = None,
                  properties: Mapping[str, Any] | None = None) -> LocalChildRun:
        record = self.workspace.create_run(run_type="child", name=name, experiment=self.experiment_name,
                                           parent_id=self.id, run_id=run_id, status="Running",
                                           properties=dict(properties or {}), display_name=name)
        return LocalChildRun(self.workspace, record.id, on_end=self._child_ended)

    def _child_ended(self, child_run_id: str, status: str) -> None:
        if self._events is None:
            return
        record = self.workspace.get_run(child_run_id)
        self._events.child_ended(self.id, child_run_id, status, record.properties,
                                 self.workspace.get_metrics(child_run_id))


class _Tee(io.TextIOBase):
    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


@contextlib.contextmanager
def capture_output(log_path: Path, echo: TextIO | None) -> Iterator[None]:
    """Send a step's prints and log records to its log file (and to ``echo`` when given)."""
    with open(log_path, "a", buffering=1) as log:
        streams = (log,) if echo is None else (log, echo)
        tee = _Tee(*streams)
        handler = logging.StreamHandler(tee)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        previous_level = root.level
        root.addHandler(handler)
        root.setLevel(min(previous_level, logging.INFO) if previous_level else logging.INFO)
        try:
            with contextlib.redirect_stdout(tee), contextlib.redirect_stderr(tee):
                yield
        finally:
            root.removeHandler(handler)
            root.setLevel(previous_level)
            sys.stdout.flush()
