"""``amlstep runs cancel RUN_ID``: stop a running run, local (in another process) or on Azure ML.

A local run (a pipeline run, or a standalone AutoML run) is asked to stop through the run history
(``framework.cancel``): the process running it stops as Ctrl-C stops it, and the command waits until
the run is recorded ``Canceled``. A run submitted to Azure ML is canceled through the SDK by its
backend (``cancel``), in the workspace of ``--config`` (else the one it was submitted with), then read back
as ``runs follow`` reads it (``--no-wait``: not).
"""

from __future__ import annotations

import time
from typing import Any

import click

from ..errors import AmlStepError, WorkspaceError
from . import common

TERMINAL = ("Completed", "Failed", "Canceled")


@click.command("cancel")
@click.argument("run_id")
@click.option("--timeout", default=60.0, show_default=True, metavar="SECONDS",
              help="How long to wait for a local run to stop.")
@click.option("--no-wait", is_flag=True, help="Ask the run to stop and return at once (an Azure run is not read back).")
@click.option("--config", "config", metavar="PATH", type=click.Path(),
              help="azure: the workspace config.json (file or folder) [default: the one the run was submitted with, "
                   "else found from the current folder up].")
@click.pass_context
def runs_cancel(ctx: click.Context, run_id: str, timeout: float, no_wait: bool, config: str | None) -> None:
    """Cancel a running run, local or on Azure ML.

    A local run stops as Ctrl-C stops it, in whatever process runs it.

    RUN_ID is a pipeline run, a standalone AutoML run, or one of their step runs (a unique prefix
    works). Exit code 0 once the run is canceled, 1 if it ended otherwise or still runs at the timeout.
    """
    from ..cancel import request_cancel
    from .browse import top_level

    state: Any = ctx.find_object(common.State)
    try:
        ws = state.workspace
        given = ws.get_run(run_id)
        record = top_level(ws, given)
        if record.id != given.id:
            click.echo(f"{given.id} is a {given.run_type} run of {record.run_type} run {record.id}: canceling that run",
                       err=True)
        if record.status in TERMINAL:
            raise WorkspaceError(f"{record.run_type} run {record.id} is {record.status}; only a running run can be "
                                 f"canceled")
        if record.backend != "local":
            _cancel_remote(state, ws, record, config, wait=not no_wait)
            return
        if config:
            raise WorkspaceError(f"--config applies to runs on Azure ML; run {record.id} is a local run")
        request_cancel(ws, record.id)
    except AmlStepError as exc:  # one whose run goes on, state unknown here (Ctrl-C while waiting): as runs follow
        common.fail(str(exc), common.EXIT_UNKNOWN if getattr(exc, "state_unknown", False) else common.EXIT_BAD_INPUT)
        return
    where = f"pid {record.pid} on {record.host}" if record.pid else "its process"
    if no_wait:
        click.echo(f"Asked {record.run_type} run {record.id} ({where}) to stop")
        return
    deadline = time.monotonic() + timeout
    while True:
        ws.reconcile_interrupted_runs()  # a process that died instead of stopping
        now = ws.get_run(record.id)
        if now.status in TERMINAL or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if now.status == "Canceled":
        running = [s.name for s in ws.get_children(record.id) if s.status == "Canceled"]
        click.echo(f"Canceled {record.run_type} run {record.id}" + (f" (step {running[0]!r} was running)"
                                                                    if running else ""))
        return
    if now.status in TERMINAL:
        common.fail(f"{record.run_type} run {record.id} ended {now.status} before it could be canceled"
                    + (f": {now.error}" if now.error else ""), common.EXIT_FAILED)
    common.fail(f"asked {record.run_type} run {record.id} to stop, but it still runs after {timeout:g} s ({where}); "
                f"a run started by an amlstep older than `runs cancel` does not look for the request: stop its "
                f"process (Ctrl-C, or `kill -INT {record.pid}` on {record.host})", common.EXIT_FAILED)


def _cancel_remote(state: Any, ws: Any, record: Any, config: str | None, *, wait: bool) -> None:
    """A run on another backend (Azure ML): its backend cancels it (``wait``: and reads back how it ended); the
    local record follows."""
    backend = state.plugins.backend(record.backend, workspace=ws, config=config,
                                    **({"sdk": record.properties["sdk"]} if record.properties.get("sdk") else {}))
    if not hasattr(backend, "cancel"):
        raise WorkspaceError(f"backend {record.backend!r} cannot cancel its runs; cancel run {record.id} where it runs")
    from .browse import followed

    if followed(ws, record):  # another process follows it and records how it ends: the cancel only, never a 2nd follower
        status = backend.cancel(record, plugins=state.plugins, wait=False)
        said = status or "in an unknown state"
        click.echo(f"Asked {record.backend} to cancel {record.run_type} run {record.id}; it is {said} there. The "
                   f"amlstep process following it (pid {record.pid} on {record.host}) records how it ends")
        return
    status = backend.cancel(record, plugins=state.plugins, wait=wait)
    if status in ("Completed", "Failed"):
        ws.end_unfinished(record.id, status, f"ended {status} on {record.backend} before it could be canceled")
        common.fail(f"{record.run_type} run {record.id} ended {status} on {record.backend} before it could be canceled",
                    common.EXIT_FAILED)
    if status in (None, "Canceled", "CancelRequested"):
        ws.end_unfinished(record.id, "Canceled", "canceled with amlstep runs cancel")
        click.echo(f"Canceled {record.run_type} run {record.id} on {record.backend}"
                   + (" (the service is stopping it)" if status == "CancelRequested" else ""))
        return
    click.echo(f"Asked {record.backend} to cancel {record.run_type} run {record.id}; it is {status} there")
