"""``amlstep workspace check [--repair]``: verify the whole local workspace; rebuild what can be rebuilt.

Checks the run history (SQLite integrity check, schema version), the sha256 of every step output,
registered model and dataset, version numbers without gaps, folders the history does not know,
runs recorded Running whose process is gone, and half-written files left in ``.staging/``. Exits
0 when everything is in order (after ``--repair``: when everything could be repaired), 1 when
something is wrong, 2 when the workspace cannot be checked at all.

``--repair`` rebuilds a damaged history (or one with rows that do not decode) on a copy, from the
rows SQLite can still read and from every copy kept by earlier repairs, keeps the old file under a
unique name and swaps the new one in atomically; it copies rows only kept copies hold back into
the history, moves folders set aside in ``lost+found/`` back when they hold what the history
misses, registers dataset and model folders the history does not know, moves step outputs of
unknown runs to ``lost+found/``, marks dead runs Failed and deletes stale staging. It refuses,
changing nothing, when it cannot finish (full disk, read-only, write lock held, other amlstep
processes running). It never deletes data it cannot rebuild, and cannot bring back rows unreadable
everywhere or files that were changed or deleted.
"""

from __future__ import annotations

from typing import Any

import click

from ..errors import AmlStepError
from ..hookspecs import hookimpl


@click.group("workspace")
def workspace_group() -> None:
    """Check the local workspace (and repair it)."""


@workspace_group.command("check")
@click.option("--repair", is_flag=True,
              help="Rebuild what can be rebuilt: the run history from readable rows and kept copies (on a copy, the "
                   "old one kept), registry entries from their folders; set unknown outputs aside in lost+found/; "
                   "mark dead runs Failed; delete stale staging. Refuses, changing nothing, when it cannot finish.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def check_command(repair: bool, as_json: bool) -> None:
    """Check the database, outputs, models and datasets.

    Verifies SQLite's integrity, the sha256 of every output, model and dataset, versions
    without gaps, orphan folders and leftover staging; exits 1 when something is wrong.
    --repair rebuilds what can be rebuilt.
    """
    from .common import EXIT_BAD_INPUT, EXIT_FAILED, State, emit_json, fail
    from ..workspace.check import check_workspace
    from ..workspace.store import default_workspace_path

    state = click.get_current_context().find_object(State)
    path = state.workspace_path if state is not None and state.workspace_path else default_workspace_path()
    try:
        report = check_workspace(path, repair=repair)
    except AmlStepError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
        return
    if as_json:
        emit_json(report.to_dict())
    else:
        _print(report, repair)
    if not report.ok:
        raise SystemExit(EXIT_FAILED)


def _print(report: Any, repair: bool) -> None:
    click.echo(f"workspace {report.workspace}")
    click.echo(f"  run history: {report.history}")
    if report.checked:
        click.echo("  checked: " + ", ".join(f"{n} {what}" for what, n in report.checked.items()))
    for finding in report.findings:
        if finding.repaired:
            label = "repaired"
        elif repair and finding.repair:
            label = "NOT REPAIRED"
        else:
            label = "PROBLEM"
        line = f"  {label:<12} {finding.problem}"
        if finding.repair and not finding.repaired and not repair:
            line += f"  [--repair: {finding.repair}]"
        click.echo(line)
    for note in report.notes:
        click.echo(f"  note: {note}")
    remaining = [f for f in report.findings if not f.repaired]
    if not report.findings:
        click.echo("everything is in order")
    elif remaining:
        fixable = [f for f in remaining if f.repair]
        hint = f"; {len(fixable)} can be repaired with `amlstep workspace check --repair`" if fixable and not repair else ""
        click.echo(f"{len(remaining)} problem(s){hint}", err=True)
    else:
        click.echo(f"repaired {len(report.findings)} problem(s)")


@hookimpl
def register_commands(cli: Any) -> None:
    cli.add_command(workspace_group)


__all__ = ["check_command", "workspace_group"]
