"""``amlstep report RUN_ID``: a self-contained HTML page about one pipeline run.

The page holds the pipeline graph (inline SVG: step status, reuse, data between steps), the
steps with their durations and why each ran or was reused, the parameters, the sections plugins
add for their steps through the ``report_section`` hook (the AutoML plugin's: guardrails,
leaderboard, plots of the best model computed from out-of-fold predictions), the registered
models and the tail of each step's log. CSS is inline and images are base64 PNGs: the file opens
anywhere, offline, and can be mailed or attached to a ticket.
"""

from __future__ import annotations

import time
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import AmlStepError
from ..hookspecs import hookimpl
from ..reporting import badge, seconds, table, when
from ..sampling import counts_text
from ..workspace.names import short_id

if TYPE_CHECKING:
    from ..manager import Plugins
    from ..reporting import Progress, ReportSection
    from ..workspace import LocalWorkspace, RunRecord

LOG_TAIL = 60

CSS = """
:root { --fg:#24292f; --muted:#57606a; --line:#d0d7de; --bg:#f6f8fa; --ok:#1a7f37; --bad:#cf222e;
        --run:#0969da; --warn:#9a6700; --reused:#8250df; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color:var(--fg);
       background:#fff; }
header { background:#0d1117; color:#f0f6fc; padding:22px 32px 18px; }
header h1 { margin:0 0 4px; font-size:22px; font-weight:600; }
header .meta { color:#c9d1d9; font-size:13px; }
header .meta span { margin-right:18px; }
main { padding:8px 32px 40px; max-width:1280px; }
section { margin-top:28px; }
h2 { font-size:17px; margin:0 0 10px; padding-bottom:6px; border-bottom:1px solid var(--line); }
h3 { font-size:15px; margin:18px 0 8px; }
.cards { display:flex; flex-wrap:wrap; gap:12px; margin-top:20px; }
.card { border:1px solid var(--line); border-radius:8px; padding:10px 16px; min-width:150px; background:#fff; }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card .v { font-size:20px; font-weight:600; }
.card .s { color:var(--muted); font-size:12px; }
table { border-collapse:collapse; width:100%; font-size:13px; }
.table-wrap { overflow-x:auto; max-width:100%; }
th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:var(--bg); font-weight:600; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
tr.best td { background:#e8f5ec; font-weight:600; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600;
         color:#fff; background:var(--muted); }
.badge.Completed, .badge.Passed, .badge.PASSED { background:var(--ok); }
.badge.Failed, .badge.FAILED { background:var(--bad); }
.badge.Running, .badge.Done, .badge.DONE { background:var(--run); }
.badge.Alerted, .badge.ALERTED, .badge.Canceled { background:var(--warn); }
.badge.reused { background:var(--reused); }
.muted { color:var(--muted); }
.error { color:var(--bad); white-space:pre-wrap; }
.graph-wrap { overflow-x:auto; border:1px solid var(--line); border-radius:8px; padding:8px; background:#fff; }
.plots { display:grid; grid-template-columns:repeat(auto-fill, minmax(420px, 1fr)); gap:16px; }
figure { margin:0; border:1px solid var(--line); border-radius:8px; padding:10px; background:#fff; }
figure img { width:100%; height:auto; display:block; }
figcaption { color:var(--muted); font-size:12px; margin-top:4px; }
details { margin:6px 0; }
summary { cursor:pointer; font-weight:600; }
pre { background:var(--bg); border:1px solid var(--line); border-radius:6px; padding:10px; overflow-x:auto;
      font-size:12px; line-height:1.4; max-height:420px; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:12.5px; }
.note { background:#fff8c5; border:1px solid #d4a72c66; border-radius:6px; padding:8px 12px; margin:8px 0; }
code.params { font-size:11.5px; color:var(--muted); white-space:normal; word-break:break-word; }
footer { color:var(--muted); font-size:12px; padding:16px 32px; border-top:1px solid var(--line); }
"""


def build_report(workspace: LocalWorkspace, run_id: str, *, plots: bool = True, progress: Progress | None = None,
                 plugins: Plugins | None = None) -> str:
    """The HTML report of pipeline run ``run_id`` (a unique prefix works) as a string.

    ``plugins`` (default: the installed ones) add their sections through the ``report_section`` hook;
    ``progress(what, done, total)`` hears how far their slow parts are (the AutoML plugin's: feature
    importance, or a refit for runs that kept no validation predictions).
    """
    from ..manager import get_plugin_manager
    from .lineage import Lineage
    from .report_graph import render_svg

    lineage = Lineage(workspace, run_id)
    run = lineage.run
    steps = lineage.steps
    hook = (plugins or get_plugin_manager()).hook
    sections: list[ReportSection] = [section for step in steps for section in hook.report_section(
        lineage=lineage, step=step, plots=plots, progress=progress) if section is not None]
    models = [m for m in workspace.list_models() if m.run_id == run.id]
    completed = sum(1 for s in steps if s.status == "Completed")
    reused = sum(1 for s in steps if s.reused_from)
    failed = [s for s in steps if s.status == "Failed"]

    out: list[str] = []
    title = f"{run.experiment} · run {short_id(run.id)}"
    out.append(f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
               f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
               f"<title>{escape(title)} · amlstep report</title><style>{CSS}</style></head><body>")
    out.append(f"<header><h1>{escape(run.experiment)} {badge(run.status)}</h1><div class='meta'>"
               f"<span>run <code>{escape(run.id)}</code></span><span>backend {escape(run.backend)}</span>"
               f"<span>started {when(run.created_at)}</span><span>duration {seconds(run.duration)}</span>"
               f"</div></header><main>")

    # summary cards
    cards = [("Status", badge(run.status), "see below" if run.error else ""),
             ("Duration", escape(seconds(run.duration)), "standalone AutoML run" if lineage.standalone
              else f"{len(steps)} steps")]
    if not lineage.standalone:
        cards.append(("Steps", f"{completed}/{len(steps)}",
                      f"{reused} reused" + (f", {len(failed)} failed" if failed else "")))
    cards += [(c.title, c.value, c.note) for section in sections for c in section.cards]
    sample = run.properties.get("sample") or {}
    if sample:
        cards.append(("Sample", escape(str(sample.get("text") or "")), "of each dataset"))
    for model in models:
        cards.append(("Registered model", escape(model.id), escape(when(model.created_at))))
    out.append("<div class='cards' id='summary'>" + "".join(
        f"<div class='card'><div class='k'>{escape(k)}</div><div class='v'>{v}</div><div class='s'>{s}</div></div>"
        for k, v, s in cards) + "</div>")
    if run.error:
        out.append(f"<div class='note error'>{escape(run.error)}</div>")
    out.extend(_run_notes(run))

    if lineage.standalone:  # Experiment.submit: no graph, no steps; its settings, its AutoML section, its log
        out.append(_standalone_body(workspace, run, sections))
        return "".join(out)

    # graph
    out.append("<section id='graph'><h2>Pipeline</h2><div class='graph-wrap'>" + render_svg(lineage) + "</div>")
    out.append("<p class='muted'>Arrows carry the named data between steps; green completed, red failed, grey "
               "not started; <span class='badge reused'>reused</span> steps took the outputs of an earlier run "
               "whose code, parameters and inputs were the same.</p></section>")

    # steps
    rows = []
    for step in steps:
        status = badge(step.status) + (" " + badge("reused", "reused") if step.reused_from else "")
        reasons = step.properties.get("reuse_reasons") or []
        why = escape("; ".join(map(str, reasons))) if reasons else ""
        if step.error:
            why += f"<div class='error'>{escape(step.error)}</div>"
        rows.append([f"<b>{escape(step.name)}</b>", escape(str(step.properties.get("plugin_owner")
                                                                or step.properties.get("plugin") or "")),
                     status, escape(seconds(step.duration) if step.status != "NotStarted" else "—"), why])
    out.append("<section id='steps'><h2>Steps</h2>" + table(["step", "plugin", "status", "duration", "why"],
                                                                 rows, {3}) + "</section>")

    # parameters
    out.append("<section id='parameters'><h2>Parameters</h2>")
    if run.params:
        out.append(table(["pipeline parameter", "value"],
                          [[escape(k), f"<code>{escape(repr(v))}</code>"] for k, v in sorted(run.params.items())]))
    else:
        out.append("<p class='muted'>This pipeline has no pipeline parameters.</p>")
    for step in steps:
        if step.params:
            shown = {k: v for k, v in step.params.items() if v not in (None, [], {}, "")}
            unset = f", {len(step.params) - len(shown)} left empty" if len(shown) < len(step.params) else ""
            plural = "" if len(shown) == 1 else "s"
            out.append(f"<details><summary>{escape(step.name)}: {len(shown)} parameter{plural} set{unset}</summary>"
                       + table(["parameter", "value"], [[escape(k), f"<code>{escape(repr(v))}</code>"]
                                                         for k, v in sorted(shown.items())]) + "</details>")
    datasets = run.properties.get("datasets") or {}
    if datasets:
        out.append("<h3>Datasets</h3>" + table(["dataset", "version used"],
                                                [[escape(k), escape(str(v))] for k, v in datasets.items()]))
    out.append("</section>")

    # the plugins' sections (the AutoML step's)
    out.extend(section.html for section in sections)

    # outputs and models
    out.append("<section id='outputs'><h2>Outputs</h2>")
    pipeline_outputs = run.properties.get("pipeline_outputs") or {}
    if pipeline_outputs:
        rows = []
        for name, data in pipeline_outputs.items():
            try:
                location = lineage.location(data)
                where = f"<code>{escape(str(location))}</code>"
            except AmlStepError as exc:
                where = f"<span class='muted'>{escape(str(exc))}</span>"
            rows.append([escape(name), escape(data), where])
        out.append(table(["pipeline output", "data", "location"], rows))
    if models:
        out.append("<h3>Registered models</h3>" + table(
            ["model", "registered", "files"],
            [[f"<b>{escape(m.id)}</b>", escape(when(m.created_at)), escape(", ".join(m.files))] for m in models]))
        out.append(f"<p class='muted'>Predict with <code>amlstep predict {escape(models[-1].id)} new_rows.csv "
                   f"--out predictions.csv</code>.</p>")
    out.append("</section>")

    # logs
    out.append("<section id='logs'><h2>Logs</h2>")
    for step in steps:
        text = _log_tail(workspace, lineage.origin(step))
        if text is None:
            continue
        label = f"{step.name}" + (" (log of the reused run)" if step.reused_from else "")
        out.append(f"<details><summary>{escape(label)}</summary><pre>{escape(text)}</pre></details>")
    out.append("</section></main>")
    out.append(_footer(workspace, run))
    return "".join(out)


def _run_notes(run: RunRecord) -> list[str]:
    """Notes at the top of the page: a run on a sample of its data, a partial run."""
    notes = []
    sample = run.properties.get("sample") or {}
    if sample:
        counts = counts_text(sample.get("datasets") or {})
        notes.append(f"<div class='note' id='sample'>This run ran on a sample of its data (<code>--sample "
                     f"{escape(str(sample.get('text')))}</code>: {escape(counts)}): its scores are not those of the "
                     f"full data, and its outputs are reused only by runs on the same sample.</div>")
    partial = run.properties.get("partial") or {}
    if partial:
        notes.append(f"<div class='note' id='partial'>A partial run: it ran "
                     f"{escape(', '.join(partial.get('selected') or []))}; the steps it left out show where their "
                     f"outputs came from.</div>")
    return notes


def _footer(workspace: LocalWorkspace, run: RunRecord) -> str:
    return (f"<footer>amlstep report · generated {when(time.time())} · workspace {escape(str(workspace.path))}"
            f" · source {escape(str(run.properties.get('source') or '—'))}</footer></body></html>")


def _standalone_body(workspace: LocalWorkspace, run: RunRecord, sections: list[ReportSection]) -> str:
    """The page of a standalone AutoML run (``Experiment.submit``): its settings, the AutoML section, its log."""
    out = ["<section id='parameters'><h2>Settings</h2>"]
    if run.params:
        out.append(table(["AutoML setting", "value"],
                         [[escape(k), f"<code>{escape(repr(v))}</code>"] for k, v in sorted(run.params.items())]))
    out.append("<p class='muted'>A standalone AutoML run (<code>Experiment.submit</code>): its best model is "
               f"<code>AutoMLRun.from_id({escape(repr(run.id))}).get_output()</code>.</p></section>")
    out.extend(section.html for section in sections)
    out.append("<section id='logs'><h2>Logs</h2>")
    text = _log_tail(workspace, run)
    if text is not None:
        out.append(f"<details open><summary>{escape(run.name)}</summary><pre>{escape(text)}</pre></details>")
    out.append("</section></main>")
    out.append(_footer(workspace, run))
    return "".join(out)


def _log_tail(workspace: LocalWorkspace, step: RunRecord) -> str | None:
    if not step.log_path:
        return None
    path = workspace.path / step.log_path
    if not path.is_file():
        return None
    lines = path.read_text(errors="replace").splitlines()
    skipped = len(lines) - LOG_TAIL
    text = "\n".join(lines[-LOG_TAIL:])
    return (f"… {skipped} earlier lines in {path}\n" + text) if skipped > 0 else text


def write_report(workspace: LocalWorkspace, run_id: str, out: str | Path | None = None, *, plots: bool = True,
                 progress: Progress | None = None, plugins: Plugins | None = None) -> Path:
    """Write the report of ``run_id`` to ``out`` (default ``report-<run id prefix>.html``)."""
    html = build_report(workspace, run_id, plots=plots, progress=progress, plugins=plugins)
    run = workspace.get_run(run_id)
    target = Path(out) if out else Path(f"report-{short_id(run.id)}.html")
    from ..io import write_atomically

    return write_atomically(target, lambda f: f.write(html), "the report")  # the complete page or the old one


class _progress_bar:
    """A rich progress bar on stderr for the slow parts of the report (nothing when stderr is not a terminal)."""

    def __enter__(self) -> Progress:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn

        self.bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=Console(stderr=True), transient=True)
        self.tasks: dict[str, Any] = {}
        return self.update

    def update(self, what: str, done: int, total: int) -> None:
        """Show ``what`` at ``done`` of ``total`` (the bar starts with the first update: no blank line otherwise)."""
        key = what.split(" (")[0]
        if not self.tasks:
            self.bar.start()
        if key not in self.tasks:
            self.tasks[key] = self.bar.add_task(what, total=total)
        self.bar.update(self.tasks[key], description=what, completed=done, total=total)

    def __exit__(self, *exc: Any) -> None:
        if self.tasks:
            self.bar.stop()


@click.command("report")
@click.argument("run_id")
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="HTML file to write [default: report-<RUN_ID>.html].")
@click.option("--no-plots", is_flag=True, help="Skip the best-model plots and feature importance (faster).")
def report_command(run_id: str, out: str | None, no_plots: bool) -> None:
    """Write an HTML report of a pipeline or AutoML run.

    One self-contained page for RUN_ID (a pipeline run, or a standalone AutoML run): graph,
    steps, parameters, AutoML guardrails and leaderboard, best-model plots, logs. Opens offline
    in any browser."""
    from .common import State, fail

    state = click.get_current_context().find_object(State)
    assert state is not None
    try:
        with _progress_bar() as progress:
            target = write_report(state.workspace, run_id, out, plots=not no_plots, progress=progress,
                                  plugins=state.plugins)
    except AmlStepError as exc:
        fail(str(exc))
        return
    click.echo(f"Wrote {target} ({target.stat().st_size // 1024} KiB); open it in a browser: file://{target.resolve()}")


@hookimpl
def register_commands(cli: Any) -> None:
    cli.add_command(report_command)
