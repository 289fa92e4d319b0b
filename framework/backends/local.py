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
from typing import Any, Callable, Iterator, Mapping, Sequence, TextIO

from .. import reuse as reuse_rule
from ..cancel import Watcher, cancellable
from ..context import RunContext
from ..echo import Echo
from ..errors import AmlStepError, PipelineValidationError, RunCanceled, WorkspaceError, did_you_mean
from ..events import PipelineEvents, StepEvents
from ..hookspecs import hookimpl
from ..execution import execute_step, load_inputs
from ..io import output_path
from ..manager import Plugins
from ..pipeline import Dataset, StepBinding, ValidatedPipeline
from ..results import PipelineRunResult, StepRunResult
from ..sampling import Sample, counts_text
from ..steps import DataType
from ..workspace import DatasetVersion, LocalChildRun, LocalWorkspace, ModelVersion, RunRecord
from ..workspace.db import WorkspaceUnwritable, is_disk_full, no_space_message
from ..workspace.store import sha256_tree


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    register("local", LocalBackend)


@hookimpl
def register_run_options(register: Callable[..., None]) -> None:
    register("local", *run_options())


def run_options() -> tuple[list[Any], Callable[[Mapping[str, Any]], dict[str, Any]]]:
    """The local backend's ``amlstep run`` options (partial runs, ``--sample``) and their values -> its options."""
    import click

    params = [
        click.Option(["--only", "only"], multiple=True, metavar="STEP",
                     help="local: run only this step (repeat, or STEP,STEP); the others' outputs come from the run "
                          "history."),
        click.Option(["--from", "from_step"], metavar="STEP",
                     help="local: run this step and the steps downstream of it; upstream outputs come from the run "
                          "history."),
        click.Option(["--to", "to_step"], metavar="STEP", help="local: run this step and the steps upstream of it."),
        click.Option(["--sample"], metavar="N|FRACTION",
                     help="local: run on a reproducible sample of each input dataset: N rows, or a fraction (0.1, "
                          "10%)."),
        click.Option(["--sample-by", "sample_by"], metavar="COLUMN[,COLUMN]",
                     help="local: with --sample, sample whole groups of rows sharing these columns' values (time "
                          "series: their id columns); a dataset without them is kept whole."),
    ]

    def convert(values: Mapping[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {}
        steps = [name.strip() for item in values.get("only") or () for name in item.split(",") if name.strip()]
        if steps:
            options["only"] = steps
        for name in ("from_step", "to_step"):
            if values.get(name):
                options[name] = values[name]
        if values.get("sample_by") is not None and values.get("sample") is None:
            raise PipelineValidationError("--sample-by needs --sample: how many groups (5) or what fraction of "
                                          "them (10%)")
        if values.get("sample") is not None:
            options["sample"] = Sample.parse(values["sample"], values.get("sample_by"))
        return options

    return params, convert


class LocalBackend:
    """Runs a pipeline on this machine. Step outputs land in the workspace datastore."""

    name = "local"

    def __init__(self, workspace: LocalWorkspace | str | Path | None = None, *, echo: TextIO | None = None,
                 only: Sequence[str] = (), from_step: str | None = None, to_step: str | None = None,
                 sample: Sample | str | int | float | None = None) -> None:
        """Options: ``only`` / ``from_step`` / ``to_step`` run part of the pipeline (``--only``, ``--from``,
        ``--to``: the other steps' outputs come from the run history); ``sample`` runs it on a reproducible
        sample of each input dataset (``--sample``: rows, or a fraction)."""
        self.workspace = workspace if isinstance(workspace, LocalWorkspace) else LocalWorkspace(workspace)
        self.echo = Echo(echo) if echo is not None else None
        self.only = [only] if isinstance(only, str) else list(only)
        self.from_step, self.to_step = from_step, to_step
        self.sample = sample if isinstance(sample, Sample) or sample is None else Sample.parse(sample)
        self._events: StepEvents | None = None
        self._current: tuple[StepBinding, str] | None = None  # the step running now, and its step run id
        self._sampled: dict[str, Path] = {}  # dataset name -> its sample, in this run
        self._sampled_columns: dict[str, set[str]] = {}  # dataset name -> its columns
        self._watcher: Watcher | None = None  # watches for `amlstep runs cancel` while a run runs

    def run(self, pipeline: ValidatedPipeline, *, plugins: Plugins, params: Mapping[str, Any] | None = None,
            reuse: bool = True, resume: str | None = None) -> PipelineRunResult:
        ws = self.workspace
        resumed: dict[str, RunRecord] = {}
        if resume is not None:
            earlier, resumed = self._resumable(pipeline, resume)
            if params:
                raise PipelineValidationError(
                    f"--resume {earlier.id} reuses that run's parameters; do not pass --param with it")
            if self.only or self.from_step or self.to_step:
                raise PipelineValidationError(f"--resume {earlier.id} continues that whole run; do not pass --only, "
                                              f"--from or --to with it")
            params = earlier.params
            self._resume_sample(earlier)
        values = pipeline.resolve_parameters(params)
        selected = pipeline.select(self.only, self.from_step, self.to_step)
        running = [b for b in pipeline.steps if selected is None or b.name in selected]
        needed = self._taken_steps(pipeline, selected) if selected is not None else {}
        read = {s.name: s for b in running for s in b.inputs.values() if isinstance(s, Dataset)}
        datasets = {d.name: resolve_dataset(ws, d) for d in pipeline.datasets() if d.name in read}
        datasets.update({d.name: ws.get_dataset(d.name, d.version) for d in pipeline.datasets()
                         if d.name not in datasets and ws.has_dataset(d.name)})  # for the taken steps' reuse keys
        self._sampled = {}
        partial = None
        if selected is not None:
            partial = {"selected": selected, **({"only": self.only} if self.only else {}),
                       **({"from": self.from_step} if self.from_step else {}),
                       **({"to": self.to_step} if self.to_step else {})}
        run = ws.create_run(
            run_type="pipeline", name=pipeline.experiment, experiment=pipeline.experiment, status="Running",
            params=values, properties={
                "steps": [s.name for s in pipeline.steps],
                "pipeline_outputs": dict(pipeline.pipeline.outputs),
                "source": pipeline.pipeline.source,
                "datasets": {n: f"{d.name}:{d.version}" for n, d in datasets.items()},
                "continue_on_step_failure": pipeline.pipeline.continue_on_step_failure,
                **({"resumed_from": resume} if resume else {}),
                **({"partial": partial} if partial else {}),
                **({"sample": {"key": self.sample.key, "text": str(self.sample)}} if self.sample else {}),
            })
        started = time.monotonic()
        result = PipelineRunResult(run_id=run.id, experiment=pipeline.experiment, status="Running",
                                   backend=self.name, params=values)
        data: dict[str, tuple[Path, str, DataType]] = {}
        failed: set[str] = set()
        with cancellable(ws, run.id) as watcher, \
                PipelineEvents(plugins.hook, run.id, pipeline.pipeline, values, self.name) as events:
            self._watcher = watcher
            try:
                events.started()
                if partial is not None:
                    self._say(f"[partial run] running {', '.join(map(repr, selected or []))}"
                              + (f"; taking the outputs of {', '.join(map(repr, needed))} from the run history"
                                 if needed else ""))
                if self.sample is not None:
                    self._take_samples(run, {n: datasets[n] for n in read})
                    self._warn_scattered_series(pipeline, values)
                for binding in pipeline.steps:
                    watcher.check()  # a cancel request, for runs outside the main thread (it interrupts the main one)
                    if selected is not None and binding.name not in selected:
                        if binding.name in needed:
                            result.steps.append(self._take(pipeline, binding, run, values, datasets, data, plugins,
                                                           events.steps, needed[binding.name]))
                        else:
                            reason = f"not run: not selected ({_selection_text(self.only, self.from_step, self.to_step)})"
                            skipped = ws.create_run(run_type="step", name=binding.name, experiment=pipeline.experiment,
                                                    parent_id=run.id, status="NotStarted",
                                                    properties=_binding_properties(binding, datasets, plugins))
                            ws.update_run(skipped.id, error=reason)
                            result.steps.append(StepRunResult(binding.name, skipped.id, "NotStarted", error=reason))
                        continue
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
                why = watcher.reason or "canceled by the user"
                try:
                    ws.end_unfinished(run.id, "Canceled", why)
                except WorkspaceError as unrecorded:
                    ws.note_unrecorded(run.id, f"{why}; the cancellation could not be recorded: {unrecorded}")
                    raise unrecorded from None
                result.status, result.error = "Canceled", why
                result.duration = time.monotonic() - started
                if self._current is not None:  # the step that was running ends too: observers hear it
                    binding, step_run_id = self._current
                    canceled = StepRunResult(binding.name, step_run_id, "Canceled", error=why)
                    result.steps.append(canceled)
                    if events.steps is not None:
                        events.steps.finished(binding, step_run_id, canceled)
                events.ended(result)
                raise RunCanceled(f"pipeline run {run.id} was {watcher.reason or 'canceled'}", result) from exc
            except BaseException as exc:
                reason = (str(exc) if isinstance(exc, AmlStepError)
                          else f"amlstep failed while running the pipeline: {type(exc).__name__}: {exc}")
                try:
                    ws.end_unfinished(run.id, "Failed", reason)
                except WorkspaceError:
                    ws.note_unrecorded(run.id, reason)  # recorded by the next process that opens the workspace
                raise  # on_pipeline_error fires as it leaves the ``with``
            if partial is not None:
                result.details["partial"] = {**partial, "taken": {
                    r.name: r.reused_from for r in result.steps if r.name in needed and r.reused_from}}
            if self.sample is not None:
                result.details["sample"] = (ws.get_run(run.id).properties.get("sample") or {})
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
        self._current = (binding, step_run.id)
        if events is not None:
            events.started(binding, step_run.id)
        input_hashes: dict[str, str] = {}
        input_locations: dict[str, Path | list[Path]] = {}
        sample = self.sample.key if self.sample is not None else None
        for port, source in binding.inputs.items():
            if isinstance(source, Dataset):
                dataset = datasets[source.name]
                input_hashes[port] = reuse_rule.dataset_hash(dataset.sha256, sample)
                input_locations[port] = [self._sampled[source.name]] if source.name in self._sampled \
                    else dataset.file_paths()
            else:
                location, digest, _ = data[source]
                input_hashes[port] = digest
                input_locations[port] = location
        parts = reuse_rule.components(binding.spec, params, input_hashes, binding.allow_reuse, sample)
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
            self._current = None
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
            self._current = None
            result = StepRunResult(binding.name, step_run.id, "Completed", reasons=reasons,
                                   duration=time.monotonic() - started, outputs=_output_paths(ws, records),
                                   log_path=str(log_path))
            if events is not None:
                events.finished(binding, step_run.id, result)
            return result
        except (KeyboardInterrupt, RunCanceled):
            shutil.rmtree(staging, ignore_errors=True)
            watcher = self._watcher
            ws.update_run(step_run.id, status="Canceled",
                          error=(watcher.reason if watcher is not None else None) or "canceled by the user")
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
            self._current = None
            if events is not None:
                events.failed(binding, step_run.id, exc)
            return StepRunResult(binding.name, step_run.id, "Failed", reasons=reasons,
                                 duration=time.monotonic() - started, error=message, log_path=str(log_path),
                                 traceback=traceback_tail(exc, binding))

    # -- partial runs (--only, --from, --to) --------------------------------------------------------------
    def _taken_steps(self, pipeline: ValidatedPipeline, selected: list[str]) -> dict[str, list[RunRecord]]:
        """The steps left out whose outputs a selected step reads, each with its completed earlier runs (newest
        first, outputs intact, on the same data: sampled alike). Raises before anything runs when one has none."""
        ws = self.workspace
        sample = self.sample.key if self.sample is not None else None
        producers = {data: pipeline.step(step) for data, (step, _) in pipeline.producers.items()}
        needed: dict[str, list[RunRecord]] = {}
        for binding in pipeline.steps:
            if binding.name not in selected:
                continue
            for port, source in binding.inputs.items():
                if isinstance(source, Dataset) or producers[source].name in selected:
                    continue
                producer = producers[source]
                if producer.name in needed:
                    continue
                found = [r for r in ws.completed_step_runs(producer.name, producer.plugin, pipeline.experiment)
                         if (r.reuse_components or {}).get("sample") == sample
                         and reuse_rule.integrity_problem(ws, r) is None]
                if not found:
                    what = (f"with --sample {self.sample}" if self.sample is not None else "")
                    elsewhere = _produced_on_other_data(
                        [r for r in ws.completed_step_runs(producer.name, producer.plugin, pipeline.experiment)
                         if reuse_rule.integrity_problem(ws, r) is None], sample)
                    raise PipelineValidationError(
                        f"step {binding.name!r}: input {port!r} reads data {source!r} of step {producer.name!r}, which "
                        f"is not selected ({_selection_text(self.only, self.from_step, self.to_step)}), and no "
                        f"completed run of {producer.name!r} in experiment {pipeline.experiment!r}{' ' + what if what else ''} "
                        f"has produced it (with its outputs intact); run {producer.name!r} too{elsewhere}")
                needed[producer.name] = found
        return needed

    def _take(self, pipeline: ValidatedPipeline, binding: StepBinding, run: RunRecord, values: Mapping[str, Any],
              datasets: Mapping[str, DatasetVersion], data: dict[str, tuple[Path, str, DataType]], plugins: Plugins,
              events: StepEvents | None, candidates: list[RunRecord]) -> StepRunResult:
        """A step left out of a partial run whose outputs a selected step reads: its outputs are those of the run
        that would be reused now (same code, parameters and inputs), else of its latest completed run, and the
        step run records which, and why."""
        ws = self.workspace
        params = binding.resolve_params(values)
        sample = self.sample.key if self.sample is not None else None
        hashes: dict[str, str] = {}
        for port, source in binding.inputs.items():
            if isinstance(source, Dataset):
                if source.name in datasets:
                    hashes[port] = reuse_rule.dataset_hash(datasets[source.name].sha256, sample)
            elif source in data:
                hashes[port] = data[source][1]
        parts = reuse_rule.components(binding.spec, params, hashes, binding.allow_reuse, sample)
        complete = len(hashes) == len(binding.inputs)
        earlier = reuse_rule.find_reusable(ws, reuse_rule.key(parts))[0] if complete else None
        selection = _selection_text(self.only, self.from_step, self.to_step)
        if earlier is not None:
            reasons = [f"not selected ({selection}): took the outputs of step run {earlier.id[:8]} (code, parameters "
                       f"and inputs unchanged)"]
        else:
            earlier = candidates[0]
            latest = ws.get_run(earlier.reused_from) if earlier.reused_from else earlier
            differences = [r for r in reuse_rule.explain(parts, latest.reuse_components) if complete
                           or not r.startswith("input ")] if latest.reuse_components else []
            same = "" if complete or not latest.reuse_components else " (code and parameters unchanged)"
            reasons = [f"not selected ({selection}): took the outputs of its latest run, step run {latest.id[:8]} of "
                       f"pipeline run {(latest.parent_id or '?')[:8]}"
                       + (f", though since then {'; '.join(differences)}" if differences else same)]
        origin = ws.get_run(earlier.reused_from) if earlier.reused_from else earlier
        step_run = ws.create_run(run_type="step", name=binding.name, experiment=pipeline.experiment,
                                 parent_id=run.id, status="Running", params=params,
                                 properties=_binding_properties(binding, datasets, plugins))
        if events is not None:
            events.started(binding, step_run.id)
        for record in origin.outputs.values():
            data[record["data"]] = (ws.path / record["path"], record["sha256"], DataType(record["type"]))
        exact = reasons[0].endswith("(code, parameters and inputs unchanged)")  # only then is the key its own
        own_key = {"reuse_key": reuse_rule.key(parts), "reuse_components": parts} if exact else {}
        ws.update_run(step_run.id, status="Completed", reused_from=origin.id, outputs=origin.outputs, **own_key,
                      properties={**step_run.properties, "reuse_reasons": reasons, "taken": True})
        self._say(f"[{binding.name}] {reasons[0]}")
        result = StepRunResult(binding.name, step_run.id, "Completed", reused=True, reused_from=origin.id,
                               reasons=reasons, duration=0.0, outputs=_output_paths(ws, origin.outputs))
        if events is not None:
            events.finished(binding, step_run.id, result)
        return result

    # -- --sample -------------------------------------------------------------------------------------
    def _take_samples(self, run: RunRecord, datasets: Mapping[str, DatasetVersion]) -> None:
        """Write the sample of each dataset the run reads beside the run's outputs and record it in the run."""
        from ..io import read_tabular

        assert self.sample is not None
        ws = self.workspace
        staging = ws.staging_dir()
        recorded: dict[str, Any] = {}
        try:
            frames = {name: read_tabular(dataset.file_paths(), f"dataset {name!r}")
                      for name, dataset in sorted(datasets.items())}
            by = self.sample.by
            if by and frames and not any(self.sample.groups_in(frame) for frame in frames.values()):
                held = "; ".join(f"{name}: {', '.join(map(str, frame.columns))}" for name, frame in frames.items())
                raise PipelineValidationError(f"--sample-by {','.join(by)}: no input dataset has the column"
                                              f"{'s' if len(by) > 1 else ''} {', '.join(map(repr, by))} ({held})"
                                              + "".join(did_you_mean(c, {c for f in frames.values() for c in f.columns})
                                                        for c in by))
            self._sampled_columns = {name: {str(c) for c in frame.columns} for name, frame in frames.items()}
            for name, frame in frames.items():
                sampled, groups, of_groups = (self.sample.take_groups(frame) if by
                                              else (self.sample.take(frame), None, None))
                folder = staging / "samples" / name
                folder.mkdir(parents=True)
                sampled.to_csv(folder / f"{name}.csv", index=False)
                recorded[name] = {"version": datasets[name].version, "rows": len(sampled), "of": len(frame),
                                  "path": f"samples/{name}/{name}.csv"}
                if groups is not None:
                    recorded[name].update(groups=groups, of_groups=of_groups)
                elif by:
                    missing = [c for c in by if c not in frame.columns]
                    recorded[name]["kept_whole"] = f"no column {', '.join(map(repr, missing))}"
            final = ws.commit_outputs(staging, run.id)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        for name, entry in recorded.items():
            entry["path"] = ws.relative(final / entry["path"])
            self._sampled[name] = ws.path / entry["path"]
            self._say(f"[sample] dataset {counts_text({name: entry})} (--sample {self.sample}; "
                      f"the same rows every time)")
        ws.merge_properties(run.id, {"sample": {"key": self.sample.key, "text": str(self.sample), "datasets": recorded}})

    def _warn_scattered_series(self, pipeline: ValidatedPipeline, values: Mapping[str, Any]) -> None:
        """Rows sampled one by one leave gaps in every series a forecasting AutoML step reads: say so, and how to
        sample whole series."""
        assert self.sample is not None
        if self.sample.by:
            return
        for name, ids in _forecasting_steps(pipeline, values):
            having = [n for n, columns in self._sampled_columns.items() if ids and set(ids) <= columns]
            how = (f"--sample {self.sample} --sample-by {','.join(ids)} samples whole series" if having else
                   "sample whole series in the preparation step, or run without --sample")
            self._say(f"[sample] warning: AutoML step {name!r} forecasts, and a sample of rows (--sample "
                      f"{self.sample}) leaves gaps in every series it reads: forecasting fills them as missing "
                      f"periods, or fails when the series no longer share a frequency; {how}")

    def _resume_sample(self, earlier: RunRecord) -> None:
        """A resumed run keeps the sample of the run it continues."""
        before = (earlier.properties.get("sample") or {}).get("key")
        now = self.sample.key if self.sample is not None else None
        if before and now is None:
            self.sample = Sample.from_key(before)
        elif now != before:
            raise PipelineValidationError(f"--resume {earlier.id}: that run ran on "
                                          f"{'a sample (' + str(before) + ')' if before else 'the full data'}; resume "
                                          f"it without --sample")

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


def _produced_on_other_data(runs: Sequence[RunRecord], sample: str | None) -> str:
    """``; runs with --sample 100 rows have produced it`` when ``runs`` (outputs intact) on other data than
    ``sample``'s did, else ``""``."""
    keys = {(r.reuse_components or {}).get("sample") for r in runs} - {sample}
    if not keys:
        return ""
    texts = sorted("on the full data" if key is None else f"with --sample {Sample.from_key(key)}" for key in keys)
    return f"; runs {' and '.join(texts)} have produced it, and a partial run takes outputs made from the same data"


def _forecasting_steps(pipeline: ValidatedPipeline, values: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """The AutoML steps of ``pipeline`` that forecast, each with its time series id columns (none for one series)."""
    from ..automl import parameters_of

    found = []
    for binding in pipeline.steps:
        if binding.spec.kind != "automl":
            continue
        try:
            settings = binding.resolve_params(values)
            if settings.get("task") != "forecasting":
                continue
            parameters = {**parameters_of(settings.get("forecasting_parameters")),
                          **parameters_of({k: v for k, v in settings.items()
                                           if k in ("time_series_id_column_names", "grain_column_names",
                                                    "group_column_names")})}
        except AmlStepError:  # the step reports its own settings
            continue
        ids = parameters.get("time_series_id_column_names") or []
        found.append((binding.name, [ids] if isinstance(ids, str) else [str(c) for c in ids]))
    return found


def _binding_properties(binding: StepBinding, datasets: Mapping[str, DatasetVersion], plugins: Plugins
                        ) -> dict[str, Any]:
    """What a step run records about its plugin and its data bindings (also for steps that never ran)."""
    def dataset(src: Dataset) -> str:
        return f"dataset:{src.name}:{datasets[src.name].version}" if src.name in datasets else f"dataset:{src.name}"

    return {"plugin": binding.plugin, "kind": binding.spec.kind, "plugin_owner": plugins.owner(binding.plugin),
            "inputs": {port: (dataset(src) if isinstance(src, Dataset) else src) for port, src in binding.inputs.items()},
            "outputs": dict(binding.outputs)}


def _selection_text(only: Sequence[str], from_step: str | None, to_step: str | None) -> str:
    """``--only AutoML``, ``--from AutoML --to register_model``: what a partial run selected."""
    parts = [f"--only {','.join(only)}"] if only else []
    parts += [f"--from {from_step}"] if from_step else []
    parts += [f"--to {to_step}"] if to_step else []
    return " ".join(parts)


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
        """Register ``model_path``; a model a step of this pipeline run produced carries what the steps upstream of
        it learned from the training rows (``ModelVersion.learned``), so predictions need nothing else."""
        carried = {**(properties or {}), "step_run_id": self.id}
        learned = self._learned_upstream(model_path)
        if learned:
            carried["learned"] = learned
        if self.pipeline_run_id is not None:  # a model trained on a sample (--sample) says so
            sample = self.workspace.get_run(self.pipeline_run_id).properties.get("sample")
            if sample:
                carried["sample"] = sample.get("text")
        model = self.workspace.register_model(
            model_name, model_path, run_id=self.pipeline_run_id or self.id, description=description,
            tags=dict(tags or {}), properties=carried)
        if self._events is not None:
            self._events.registered(self.id, model)
        return model

    def _learned_upstream(self, model_path: str | Path) -> dict[str, Any]:
        if self.pipeline_run_id is None:
            return {}
        from ..commands.lineage import Lineage

        try:
            return Lineage(self.workspace, self.pipeline_run_id).learned_upstream(model_path)
        except AmlStepError:  # unreadable: predict falls back to the training run's outputs, or says what is missing
            return {}

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
    def __init__(self, *streams: TextIO | Echo) -> None:
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
def capture_output(log_path: Path, echo: TextIO | Echo | None) -> Iterator[None]:
    """Send a step's prints and log records to its log file (and to ``echo`` when given, while it takes them)."""
    with open(log_path, "a", buffering=1) as log:
        tee = _Tee(log) if echo is None else _Tee(log, echo if isinstance(echo, Echo) else Echo(echo))
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
