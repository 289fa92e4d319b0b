"""Browsing the run history, the registries and the logs, the way Azure users look for them.

``runs list`` (pipeline runs and standalone AutoML runs, with their best metric), ``runs show``
(any run id, or a prefix of one: pipeline, step, child or AutoML run), ``runs logs`` (a step's
``std_log.txt``, ``--follow`` while it runs), ``experiments list``, ``models show`` and
``datasets show``. The commands are added to the groups of ``framework.cli``.

One definition per number, shown the same everywhere: a run's **duration** is its wall-clock
time from start to end (``RunRecord.duration``); an AutoML child's **fit time** is the time its
cross-validated training and scoring took (its ``fit_time`` property, the same number the live
display and the report show).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import click

from ..errors import WorkspaceError
from ..workspace.sources import resolved_sources  # noqa: F401 (re-exported)
from . import common

TOP_LEVEL = ("pipeline", "automl")


def _workspace(ctx: click.Context) -> Any:
    state: Any = ctx.find_object(common.State)
    return state.workspace


def _short(value: Any) -> str:
    """A metric as the run pages show it: 4 decimals, a whole number as one (MLflow keeps every metric as a float:
    SDK v2's ``registered_version`` 2 comes back as 2.0)."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.4f}"
    return str(value)


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def fit_time(child: Any) -> float | None:
    """The one definition of a child's fit time: its ``fit_time`` property (seconds of training and scoring)."""
    return _number(child.properties.get("fit_time"))


def best_metric(ws: Any, run: Any) -> tuple[str, float] | None:
    """The primary metric and best score of a standalone AutoML run, or of a pipeline run's AutoML step."""
    if run.run_type == "automl":
        records = [run]
    else:
        records = []
        for step in ws.get_children(run.id):
            if step.properties.get("kind") != "automl":
                continue
            if step.reused_from:
                try:
                    step = ws.get_run(step.reused_from)
                except WorkspaceError:
                    continue
            records.append(step)
    for record in records:
        metric, score = record.properties.get("primary_metric"), _number(record.properties.get("score"))
        if metric and score is not None:
            return str(metric), score
    return None


ACTIVE = ("Running", "NotStarted", "Queued", "Preparing", "Starting")


def top_level(ws: Any, record: Any) -> Any:
    """The pipeline run (or standalone AutoML run) a step or child run belongs to."""
    while record.parent_id and record.run_type in ("step", "child"):
        record = ws.get_run(record.parent_id)
    return record


def followed(ws: Any, run: Any) -> bool:
    """Whether a process on this machine follows the run now (it holds the run's lease)."""
    from ..workspace import liveness

    if not run.lease:
        return False
    try:
        return liveness.probe(ws.path, run.lease).state == liveness.ALIVE
    except Exception:
        return False


def stale(ws: Any, run: Any) -> bool:
    """A run of a remote backend (Azure) the history has as running that nobody here follows: its status is only what
    was last seen of it (``amlstep runs follow RUN_ID`` or ``runs refresh`` ask again)."""
    return run.backend != "local" and run.status in ACTIVE and not followed(ws, run)


def status_text(ws: Any, run: Any) -> str:
    """``Running`` while followed; ``Running (last seen 2026-05-01 12:03:04)`` when nobody follows it."""
    if not stale(ws, run):
        return str(run.status)
    return f"{run.status} (last seen {common.when(run.properties.get('last_seen') or run.created_at)})"


def top_level_runs(ws: Any, experiment: str | None = None, limit: int | None = None) -> list[Any]:
    """Pipeline runs and standalone AutoML runs (``Experiment.submit``), newest first."""
    runs = [r for kind in TOP_LEVEL for r in ws.list_runs(run_type=kind, experiment=experiment, limit=limit)]
    runs.sort(key=lambda r: r.created_at, reverse=True)
    return runs[:limit] if limit else runs


# -- runs list / show / logs ----------------------------------------------------------------------
@click.command("list")
@click.option("--experiment", "-e", help="Only this experiment.")
@click.option("--limit", "-n", default=20, show_default=True, help="How many runs to list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: one object per run.")
@click.pass_context
def runs_list(ctx: click.Context, experiment: str | None, limit: int, as_json: bool) -> None:
    """List pipeline runs and standalone AutoML runs, newest first."""
    with _errors():
        ws = _workspace(ctx)
        runs = top_level_runs(ws, experiment, limit)
        best = {r.id: best_metric(ws, r) for r in runs}
    if as_json:
        common.emit_json([{**r.to_dict(), "best_metric": _metric_json(best[r.id]), "stale": stale(ws, r)} for r in runs])
        return
    common.table(None, ["run id", "experiment", "type", "backend", "status", "best metric", "started", "duration"],
              [(r.id, r.experiment, r.run_type, r.backend, status_text(ws, r), _metric_text(best[r.id]),
                common.when(r.created_at), common.seconds(r.duration)) for r in runs])
    if any(stale(ws, r) for r in runs):
        click.echo(common.suggested("runs marked (last seen ...) are not followed: `amlstep runs refresh` asks Azure "
                                    "about them, `amlstep runs follow RUN_ID` follows one to its end"), err=True)


def _metric_json(best: tuple[str, float] | None) -> dict[str, Any] | None:
    return None if best is None else {"name": best[0], "value": best[1]}


def _metric_text(best: tuple[str, float] | None) -> str:
    return "" if best is None else f"{best[0]} {best[1]:.4f}"


@click.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the run, its metrics and its child runs.")
@click.pass_context
def runs_show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show a run: pipeline, step, AutoML or child run.

    RUN_ID may be any unique prefix of at least 4 characters, as git takes abbreviated hashes.
    """
    with _errors():
        ws = _workspace(ctx)
        run = ws.get_run(run_id)
        detail = describe(ws, run)
    if as_json:
        common.emit_json(detail)
        return
    if run.run_type == "pipeline":
        _show_pipeline(ws, detail)
    elif run.run_type == "child":
        _show_child(ws, detail)
    else:
        _show_step(ws, detail)


def describe(ws: Any, run: Any) -> dict[str, Any]:
    """A run as JSON: its record, metrics, log path, and its children (steps, or AutoML iterations)."""
    detail: dict[str, Any] = {**run.to_dict(), "metrics": ws.get_metrics(run.id), "log": _log_file(ws, run)}
    if run.run_type == "pipeline":
        detail["steps"] = [describe(ws, step) for step in ws.get_children(run.id)]
    elif run.run_type == "child":
        detail["fit_time"] = fit_time(run)
        detail["artifacts"] = ws.list_artifacts(run.id)
    else:
        detail["children"] = [{**c.to_dict(), "metrics": ws.get_metrics(c.id), "fit_time": fit_time(c)}
                              for c in ws.get_children(run.id)]
    return detail


def _log_file(ws: Any, run: Any) -> str | None:
    if not run.log_path:
        return None
    return str(ws.path / run.log_path)


def _show_pipeline(ws: Any, detail: dict[str, Any]) -> None:
    click.echo(f"Pipeline run {detail['id']}  experiment {detail['experiment']}  backend {detail['backend']}  "
               f"status {detail['status']}")
    click.echo(f"started {common.when(detail['created_at'])}  duration {common.seconds(detail['duration'])}")
    if detail["params"]:
        click.echo("parameters: " + ", ".join(f"{k}={v!r}" for k, v in detail["params"].items()))
    if detail["error"]:
        click.echo(f"error: {detail['error']}")
    common.table("steps", ["step", "status", "reused", "duration", "metrics", "children", "step run id"],
              [(s["name"], s["status"], "yes" if s["reused_from"] else "no", common.seconds(s["duration"]),
                ", ".join(f"{k}={_short(v)}" for k, v in s["metrics"].items()), len(s["children"]), s["id"])
               for s in detail["steps"]])
    for step in detail["steps"]:
        if step["error"]:
            click.echo(f"{step['name']}: {step['error']}")
    logs = [(s["name"], s["log"] or (f"(reused: the log of step run {s['reused_from'][:8]})" if s["reused_from"]
                                     else "(no log: the step did not run)")) for s in detail["steps"]]
    click.echo("logs (amlstep runs logs RUN_ID STEP):")
    for name, log in logs:
        click.echo(f"  {name}: {log}")
    for step in detail["steps"]:
        if step["children"]:
            _children_table(step)
    for name, path in detail["outputs"].items():
        click.echo(f"output {name}: {ws.path / path}")


def _show_step(ws: Any, detail: dict[str, Any]) -> None:
    if detail["run_type"] == "automl":
        click.echo(f"AutoML run {detail['id']}  experiment {detail['experiment']}  status {detail['status']}")
    else:
        plugin = detail["properties"].get("plugin", "?")
        click.echo(f"Step run {detail['id']}  step {detail['name']} ({plugin})  of pipeline run "
                   f"{detail['parent_id']}  status {detail['status']}")
    click.echo(f"started {common.when(detail['created_at'])}  duration {common.seconds(detail['duration'])}")
    if detail["reused_from"]:
        click.echo(f"reused the outputs of step run {detail['reused_from']}")
    reasons = detail["properties"].get("reuse_reasons")
    if reasons:
        click.echo(("why: " if not detail["reused_from"] else "") + "; ".join(reasons))
    if detail["params"]:
        click.echo("parameters: " + ", ".join(f"{k}={v!r}" for k, v in detail["params"].items()))
    if detail["metrics"]:
        click.echo("metrics: " + ", ".join(f"{k}={_short(v)}" for k, v in detail["metrics"].items()))
    metric = detail["properties"].get("primary_metric")
    if metric and detail["properties"].get("score") is not None:
        click.echo(f"best: {metric} {_short(_number(detail['properties']['score']))} (child run "
                   f"{detail['properties'].get('best_child_run_id')})")
    if detail["error"]:
        click.echo(f"error: {detail['error']}")
    if detail["log"]:
        click.echo(f"log: {detail['log']}")
    outputs = [(port, r) for port, r in detail["outputs"].items() if isinstance(r, dict)]
    if outputs:
        common.table("outputs", ["output", "data", "type", "path", "sha256"],
                  [(port, r.get("data"), r.get("type"), str(ws.path / r["path"]), str(r.get("sha256", ""))[:12])
                   for port, r in outputs])
    if detail["children"]:
        _children_table(detail)


def _children_table(step: dict[str, Any]) -> None:
    metric = step["properties"].get("primary_metric")
    common.table(f"{step['name']} child runs", ["iteration", "pipeline", "status", metric or "score", "fit time",
                                              "duration", "child run id"],
              [(c["properties"].get("iteration"), c["display_name"] or c["name"], c["status"],
                _short(c["metrics"].get(metric)) if metric else c["properties"].get("score"),
                common.seconds(c["fit_time"]), common.seconds(c["duration"]), c["id"]) for c in step["children"]])


def _show_child(ws: Any, detail: dict[str, Any]) -> None:
    props = detail["properties"]
    click.echo(f"Child run {detail['id']}  {detail['display_name'] or detail['name']}  iteration "
               f"{props.get('iteration', '?')} of run {detail['parent_id']}  status {detail['status']}")
    click.echo(f"fit time {common.seconds(detail['fit_time'])}  duration {common.seconds(detail['duration'])}")
    shown = {k: v for k, v in props.items() if k not in ("pipeline_spec",)}
    if shown:
        click.echo("properties: " + ", ".join(f"{k}={v}" for k, v in sorted(shown.items())))
    if props.get("pipeline_spec"):
        click.echo(f"pipeline_spec: {props['pipeline_spec']}")
    if detail["error"]:
        click.echo(f"error: {detail['error']}")
    scalars = [(k, v) for k, v in sorted(detail["metrics"].items()) if isinstance(v, (int, float))]
    if scalars:
        common.table("metrics", ["metric", "value"], [(k, _short(v)) for k, v in scalars])
    if detail["artifacts"]:
        click.echo("artifacts: " + ", ".join(detail["artifacts"]))


@click.command("logs")
@click.argument("run_id")
@click.argument("step", required=False)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the run ends.")
@click.pass_context
def runs_logs(ctx: click.Context, run_id: str, step: str | None, follow: bool) -> None:
    """Print a run's logs: every step's, or STEP's only.

    The std_log.txt of each step, as Azure streams them; --follow waits for more until the run ends. An Azure
    run that no process follows is followed here (as `amlstep runs follow` does): each step's log shows as
    the step ends, and the run is read back when it ends.
    """
    out = sys.stdout  # held before the following thread starts: its SDK calls redirect sys.stdout while they run
    with _errors():
        ws = _workspace(ctx)
        run = ws.get_run(run_id)
        sources = log_sources(ws, run, step)
        following = _follow_here(ctx, ws, run) if follow else None
    try:
        _print_logs(ws, run, step, follow, sources, following, out)
    except KeyboardInterrupt:  # following here stops; the run goes on, as at Ctrl-C in `amlstep runs follow`
        if following is None:
            raise
        _interrupted(ws, following.record.id)


def _print_logs(ws: Any, run: Any, step: str | None, follow: bool, sources: list[tuple[str, Path | None]],
                following: _Following | None, out: Any) -> None:
    offsets: dict[str, int] = {}
    headers = len(sources) > 1 or run.run_type == "pipeline"
    gone: str | None = None
    while True:
        for label, path in log_sources(ws, run, step) if follow else sources:
            _print_new(label, path, offsets, headers, out)
        if not follow:
            break
        gone = _process_gone(ws, run.id)
        if gone is not None or ws.get_run(run.id).status not in ("Running", "NotStarted", "Queued"):
            break
        if following is not None and not following.is_alive():  # following stopped with the run still running
            break
        time.sleep(0.5)
    if follow:  # what was written between the last read and the end of the run
        for label, path in log_sources(ws, run, step):
            _print_new(label, path, offsets, headers, out)
        if following is not None:
            _followed(following)
        ended = ws.get_run(run.id)
        if ended.status != "Completed":
            click.echo(f"run {run.id} is {ended.status}" + (f": {ended.error}" if ended.error else "")
                       + (f" ({gone})" if gone else ""), err=True)


def _interrupted(ws: Any, run_id: str) -> None:
    """Ctrl-C while a remote run was followed here: it was not canceled; how to re-attach (exit code 3)."""
    from ..backends.azure.follower import LAST_SEEN, interrupted_text

    record = ws.get_run(run_id)
    noun = "pipeline job" if record.properties.get("sdk") == "v2" else "pipeline run"
    common.fail(interrupted_text(noun, record.id, record.properties.get(LAST_SEEN)), common.EXIT_UNKNOWN)


class _Following(threading.Thread):
    """A remote run followed to its end by its backend (``reattach``) while ``runs logs --follow`` prints its logs."""

    def __init__(self, backend: Any, record: Any, plugins: Any) -> None:
        super().__init__(name=f"amlstep-follow-{record.id}", daemon=True)
        self.backend, self.record, self.plugins = backend, record, plugins
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.backend.reattach(self.record, plugins=self.plugins)
        except BaseException as exc:  # said by the command, in the main thread
            self.error = exc


def _follow_here(ctx: click.Context, ws: Any, run: Any) -> _Following | None:
    """For a remote run nobody follows (``stale``): its backend follows it here, in a thread; else None."""

    record = top_level(ws, run)
    if not stale(ws, record):
        return None
    state: Any = ctx.find_object(common.State)
    sdk = {"sdk": record.properties["sdk"]} if record.properties.get("sdk") else {}
    backend = state.plugins.backend(record.backend, workspace=ws, config=record.properties.get("azure_config"),
                                    echo=sys.stderr, **sdk)
    if not hasattr(backend, "reattach"):
        raise WorkspaceError(f"run {record.id} runs on the {record.backend} backend, which cannot follow it from here; "
                             f"its logs come with it when it ends")
    following = _Following(backend, record, state.plugins)
    following.start()
    return following


def _followed(following: _Following) -> None:
    """The end of following a remote run here: exit codes as `amlstep runs follow` when it did not end there."""
    from ..errors import AmlStepError

    following.join()
    if following.error is not None:
        if isinstance(following.error, AmlStepError):  # one that says when the run was last seen: the service is away
            common.fail(f"{following.error}; the run stays as last seen. Try again later: `amlstep runs follow "
                        f"{following.record.id}`",
                        common.EXIT_UNKNOWN if hasattr(following.error, "last_seen") else common.EXIT_BAD_INPUT)
        raise following.error
    result = following.result
    if result is not None and result.details.get("state_unknown"):
        common.fail(str(result.error), common.EXIT_UNKNOWN)


def _process_gone(ws: Any, run_id: str) -> str | None:
    """While following: whether the process running the run died (``kill -9``). The run is then recorded
    Failed, as any command opening the workspace would; when that cannot be written now, say so."""
    from ..workspace.db import WorkspaceUnwritable

    try:
        ws.reconcile_interrupted_runs()
    except WorkspaceUnwritable as exc:
        if any(found == run_id for found, _, _ in ws.interrupted_runs()):
            return f"its process is gone, but that cannot be recorded now: {exc}"
    return None


def log_sources(ws: Any, run: Any, step: str | None) -> list[tuple[str, Path | None]]:
    """(label, log file) of what ``runs logs`` prints: every step of a pipeline run, or one run."""
    if run.run_type == "pipeline":
        steps = ws.get_children(run.id)
        if step is not None:
            chosen = [s for s in steps if s.name == step]
            if not chosen:
                from ..errors import did_you_mean

                raise WorkspaceError(f"pipeline run {run.id} has no step {step!r}{did_you_mean(step, [s.name for s in steps])}; "
                                     f"its steps: {', '.join(s.name for s in steps) or '(none)'}")
            steps = chosen
        return [_source(ws, s) for s in steps]
    if step is not None:
        raise WorkspaceError(f"STEP applies to a pipeline run; {run.id} is a {run.run_type} run")
    if run.run_type == "child":
        parent = ws.get_run(run.parent_id)
        label, path = _source(ws, parent)
        return [(f"{label} (child run {run.id} logs nothing of its own; its iteration is in its parent's log)", path)]
    return [_source(ws, run)]


def _source(ws: Any, run: Any) -> tuple[str, Path | None]:
    label = f"{run.name} (step run {run.id})" if run.run_type == "step" else f"{run.run_type} run {run.id}"
    if run.reused_from:
        try:
            origin = ws.get_run(run.reused_from)
        except WorkspaceError:
            return f"{label}: reused step run {run.reused_from}, which is gone", None
        return f"{label}: reused; the log of step run {origin.id}", (ws.path / origin.log_path if origin.log_path
                                                                     else None)
    if not run.log_path:
        return f"{label}: no log ({run.status}{': ' + run.error if run.error else ''})", None
    return label, ws.path / run.log_path


def _print_new(label: str, path: Path | None, offsets: dict[str, int], headers: bool, out: Any = None) -> None:
    key = f"{label}|{path}"
    first = key not in offsets
    if path is None or not path.is_file():
        if first and headers:
            click.echo(f"=== {label}", file=out)
        offsets.setdefault(key, 0)
        return
    with open(path, "rb") as f:
        f.seek(offsets.get(key, 0))
        data = f.read()
        offsets[key] = f.tell()
    if first and headers:
        click.echo(f"=== {label}: {path}", file=out)
    if data:
        (out or sys.stdout).write(data.decode("utf-8", errors="replace"))
        (out or sys.stdout).flush()


# -- experiments, models, datasets ------------------------------------------------------------------
@click.group("experiments")
def experiments_group() -> None:
    """List experiments and their latest runs."""


@experiments_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: one object per experiment.")
@click.pass_context
def experiments_list(ctx: click.Context, as_json: bool) -> None:
    """List experiments: runs, latest run, its status and best metric."""
    with _errors():
        ws = _workspace(ctx)
        found: dict[str, dict[str, Any]] = {}
        for run in top_level_runs(ws):
            entry = found.setdefault(run.experiment, {"name": run.experiment, "runs": 0, "latest_run": run.id,
                                                      "latest_status": run.status, "latest_at": run.created_at,
                                                      "best_metric": None})
            entry["runs"] += 1
            if entry["best_metric"] is None and run.status == "Completed":
                best = best_metric(ws, run)
                entry["best_metric"] = {"name": best[0], "value": best[1], "run": run.id} if best else None
    experiments = sorted(found.values(), key=lambda e: e["latest_at"], reverse=True)
    if as_json:
        common.emit_json(experiments)
        return
    common.table(None, ["experiment", "runs", "latest run", "status", "started", "latest best metric"],
              [(e["name"], e["runs"], e["latest_run"], e["latest_status"], common.when(e["latest_at"]),
                f"{e['best_metric']['name']} {e['best_metric']['value']:.4f}" if e["best_metric"] else "")
               for e in experiments])


@click.command("show")
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the model version and how it was trained.")
@click.pass_context
def models_show(ctx: click.Context, model: str, as_json: bool) -> None:
    """Show a registered model and how it was trained.

    MODEL is NAME or NAME:VERSION (default: the latest version); azure:NAME[:VERSION] for a model an Azure run
    of the run history registered in its Azure workspace.
    """
    from .lineage import AZURE_PREFIX, automl_for_model, azure_model, local_model

    with _errors():
        ws = _workspace(ctx)
        found = azure_model(ws, model) if model.startswith(AZURE_PREFIX) else local_model(ws, model)
        training: dict[str, Any] | None = None
        try:
            lineage, automl = automl_for_model(ws, found)
            origin = lineage.origin(automl)
            best = best_metric(ws, lineage.run)
            training = {"pipeline_run": lineage.run.id, "experiment": lineage.run.experiment,
                        "automl_step": automl.name, "automl_step_run": origin.id,
                        "label": automl.params.get("label_column_name"), "task": automl.params.get("task"),
                        "primary_metric": best[0] if best else None, "score": best[1] if best else None,
                        "best_child_run": origin.properties.get("best_child_run_id")}
        except WorkspaceError as exc:
            training = {"unknown": str(exc)}
    data = {**found.to_dict(), "training": training}
    if as_json:
        common.emit_json(data)
        return
    click.echo(f"Model {found.id}  registered {common.when(found.created_at)}")
    if found.description:
        click.echo(f"description: {found.description}")
    click.echo(f"path: {found.path}")
    click.echo(f"files: {', '.join(found.files)}  sha256 {found.sha256[:12]}")
    click.echo(f"source run: {found.run_id or '(none)'}")
    for label, values in (("properties", found.properties), ("tags", found.tags)):
        if values:
            click.echo(f"{label}: " + ", ".join(f"{k}={v}" for k, v in sorted(values.items())))
    if training and "unknown" not in training:
        score = f"{training['primary_metric']} {training['score']:.4f}" if training["score"] is not None else "?"
        click.echo(f"trained by: step {training['automl_step']} of pipeline run {training['pipeline_run']} "
                   f"(experiment {training['experiment']}), {training['task']} of {training['label']!r}, "
                   f"best {score} (child run {training['best_child_run']})")
    elif training:
        click.echo(f"trained by: unknown ({training['unknown']})")


@click.command("show")
@click.argument("name")
@click.option("--version", "-v", "version", type=int, help="A version (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the versions and the chosen version's columns.")
@click.pass_context
def datasets_show(ctx: click.Context, name: str, version: int | None, as_json: bool) -> None:
    """Show a dataset: versions, files, sources, columns."""
    from ..io import read_tabular

    with _errors():
        ws = _workspace(ctx)
        chosen = ws.get_dataset(name, version)
        versions = [d for d in ws.list_datasets() if d.name == name]
        frame = read_tabular(chosen.file_paths(), f"dataset {name!r} version {chosen.version}")
    columns = [{"name": str(c), "type": str(frame[c].dtype), "missing": int(frame[c].isna().sum()),
                "distinct": int(frame[c].nunique())} for c in frame.columns]
    if as_json:
        common.emit_json({**chosen.to_dict(), "rows": len(frame), "columns": columns,
                       "versions": [d.to_dict() for d in versions]})
        return
    click.echo(f"Dataset {name} version {chosen.version} of {len(versions)}  registered {common.when(chosen.created_at)}")
    if chosen.description:
        click.echo(f"description: {chosen.description}")
    click.echo(f"files: {', '.join(chosen.files)}  ({len(frame)} rows, {len(columns)} columns)  "
               f"sha256 {chosen.sha256[:12]}")
    click.echo(f"sources: {', '.join(chosen.sources)}")
    click.echo(f"path: {chosen.path}")
    common.table("columns", ["column", "type", "missing", "distinct"],
              [(c["name"], c["type"], c["missing"], c["distinct"]) for c in columns])
    if len(versions) > 1:
        common.table("versions", ["version", "registered", "files", "sha256"],
                  [(d.version, common.when(d.created_at), ", ".join(d.files), d.sha256[:12]) for d in versions])


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Turn amlstep errors into the CLI's one-line message and exit code 2."""
    from ..errors import AmlStepError

    try:
        yield
    except AmlStepError as exc:
        common.fail(str(exc))


__all__ = ["best_metric", "describe", "experiments_group", "fit_time", "log_sources", "models_show", "runs_list",
           "runs_logs", "runs_show", "datasets_show", "resolved_sources", "top_level_runs"]
