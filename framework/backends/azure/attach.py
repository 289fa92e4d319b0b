"""Re-attaching to submitted Azure runs: ``amlstep runs follow RUN_ID`` and ``amlstep runs refresh``.

A run submitted with ``--no-wait``, or whose following stopped (Ctrl-C, the service away longer than
``--outage-timeout``, the machine went to sleep), is still ``Running`` in the local run history, with
when it was last seen. ``runs follow`` finds the run by its id (the pipeline run's id is the same
locally and on Azure; an Azure step run id names its pipeline run), reaches its workspace (``--config``,
else the config.json it was submitted with, else the one found from the current folder), follows it
to its end through the SDK it was submitted with, reads it back and downloads its outputs, as
``amlstep run`` would have. ``runs refresh`` asks the service about every Azure run the local history
has as running and nobody follows: one status request each; a run that ended is read back.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ...commands.browse import stale, status_text
from ...errors import AmlStepError, WorkspaceError
from ...results import PipelineRunResult
from ...workspace import LocalWorkspace, RunRecord
from .follower import LAST_SEEN, ServiceUnreachable


def pipeline_record(ws: LocalWorkspace, run_id: str) -> RunRecord:
    """The local record of the Azure pipeline run ``run_id`` names (its own id or prefix, a step's, a child's)."""
    record = ws.get_run(run_id)
    while record.run_type != "pipeline" and record.parent_id:
        record = ws.get_run(record.parent_id)
    if record.run_type != "pipeline":
        raise WorkspaceError(f"run {run_id!r} is a {record.run_type} run, not part of a pipeline run")
    if record.backend != "azure":
        raise WorkspaceError(f"run {record.id} ran on the {record.backend} backend; only Azure runs can be followed "
                             f"(a local run is over when `amlstep run` returns)")
    return record


def backend_for(plugins: Any, ws: LocalWorkspace, record: RunRecord, *, config: str | None, echo: Any,
                outage_timeout: float | None = None, **options: Any) -> Any:
    """The Azure backend of the SDK ``record`` was submitted with, reaching its workspace."""
    chosen = config or record.properties.get("azure_config")
    return plugins.backend("azure", sdk=record.properties.get("sdk") or "v1", workspace=ws, config=chosen, echo=echo,
                           outage_timeout=outage_timeout, **options).chosen(plugins)


def follow(plugins: Any, ws: LocalWorkspace, run_id: str, *, config: str | None = None, echo: Any = None,
           outage_timeout: float | None = None, **options: Any) -> PipelineRunResult:
    """Re-attach to Azure run ``run_id``, follow it to its end, read it back, download its outputs."""
    record = pipeline_record(ws, run_id)
    backend = backend_for(plugins, ws, record, config=config, echo=echo, outage_timeout=outage_timeout, **options)
    return backend.reattach(record, plugins=plugins)


def refresh(plugins: Any, ws: LocalWorkspace, *, config: str | None = None, echo: Any = None,
            limit: int = 20) -> list[tuple[RunRecord, str]]:
    """Ask the service about each stale Azure run (``stale``); read back those that ended. Returns (run, what)."""
    found = []
    for record in ws.list_runs(run_type="pipeline", limit=limit):
        if not stale(ws, record):
            continue
        try:
            backend = backend_for(plugins, ws, record, config=config, echo=echo, outage_timeout=0)
            status = backend.peek(record)
            if status in ("Completed", "Failed", "Canceled"):
                result = backend.reattach(record, plugins=plugins)
                found.append((ws.get_run(record.id), f"ended {result.status}; read back"))
            else:
                import time

                ws.merge_properties(record.id, {LAST_SEEN: time.time(), "azure_status": status})
                found.append((ws.get_run(record.id), f"{status} on Azure"))
        except AmlStepError as exc:
            found.append((record, f"not refreshed: {exc}"))
    return found


@click.command("follow")
@click.argument("run_id")
@click.option("--config", "config", metavar="PATH", type=click.Path(),
              help="The workspace config.json (file or folder) [default: the one the run was submitted with, else "
                   "found from the current folder up].")
@click.option("--outage-timeout", type=float, default=None, metavar="SECONDS",
              help="How long to ride out a service that does not answer before giving up [900].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the result, as `amlstep run --json`.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the result.")
@click.pass_context
def runs_follow(ctx: click.Context, run_id: str, config: str | None, outage_timeout: float | None, as_json: bool,
                quiet: bool) -> None:
    """Re-attach to a submitted Azure run and follow it to its end.

    RUN_ID is the pipeline run's id (the same locally and on Azure, or a prefix), or one of its step runs'.
    The run is followed through the SDK it was submitted with; when it ends, its steps' metrics, logs,
    AutoML child runs and outputs are read back into the local run history and the pipeline outputs
    downloaded, as `amlstep run` does. Works for runs submitted with --no-wait, interrupted with Ctrl-C,
    or left behind by an outage. Exit codes as `amlstep run`: 0 Completed, 1 Failed or Canceled,
    3 still running on Azure but not followed to its end.
    """
    from ...commands import common

    state: Any = ctx.find_object(common.State)
    echo = None if quiet or as_json else sys.stderr
    try:
        result = follow(state.plugins, state.workspace, run_id, config=config, echo=echo, outage_timeout=outage_timeout)
    except ServiceUnreachable as exc:  # the workspace could not be reached: the run's state is still unknown
        common.fail(f"{exc}; the run stays as last seen. Try again later: `amlstep runs follow {run_id}`",
                    common.EXIT_UNKNOWN)
        return
    except AmlStepError as exc:
        common.fail(str(exc))
        return
    report(result, as_json)


def report(result: PipelineRunResult, as_json: bool) -> None:
    """Print a followed run's result and exit with ``amlstep run``'s codes."""
    from ...commands import common

    if as_json:
        common.emit_json(result.to_dict())
    else:
        common.table(f"Run {result.run_id} ({result.experiment}): {result.status}",
                     ["step", "status", "reused", "duration", "step run id"],
                     [(s.name, s.status, "yes" if s.reused else "no", common.seconds(s.duration), s.run_id)
                      for s in result.steps])
        for name, path in result.outputs.items():
            click.echo(f"output {name}: {path}")
        for problem in [*result.details.get("download_errors", {}).values(), *result.details.get("read_back_errors", [])]:
            click.echo(f"warning: {problem}", err=True)
        if result.error:
            click.echo(f"Error: {common.suggested(result.error)}", err=True)
    if result.details.get("state_unknown"):
        sys.exit(common.EXIT_UNKNOWN)
    if not result.succeeded:
        sys.exit(common.EXIT_FAILED)


@click.command("refresh")
@click.option("--config", "config", metavar="PATH", type=click.Path(),
              help="The workspace config.json [default: the one each run was submitted with].")
@click.option("--limit", "-n", default=20, show_default=True, help="How many of the latest runs to look at.")
@click.pass_context
def runs_refresh(ctx: click.Context, config: str | None, limit: int) -> None:
    """Ask Azure about Azure runs nobody follows now.

    Runs the local history has as running that no process follows: one status request per run; a run
    that ended is read back (metrics, logs, child runs, outputs).
    """
    from ...commands import common

    state: Any = ctx.find_object(common.State)
    try:
        found = refresh(state.plugins, state.workspace, config=config, echo=None, limit=limit)
    except AmlStepError as exc:
        common.fail(str(exc))
        return
    if not found:
        click.echo("no Azure run is waiting for news")
        return
    common.table(None, ["run id", "experiment", "status", "refreshed"],
                 [(r.id, r.experiment, status_text(state.workspace, r), what) for r, what in found])


def register(cli: Any) -> None:
    """``runs follow`` and ``runs refresh`` join the ``runs`` group."""
    group = getattr(cli, "commands", {}).get("runs")
    if group is not None:
        group.add_command(runs_follow)
        group.add_command(runs_refresh)
