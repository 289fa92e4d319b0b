"""``amlstep report RUN_ID``: a self-contained HTML page about one pipeline run.

The page holds the pipeline graph (inline SVG: step status, reuse, data between steps), the
steps with their durations and why each ran or was reused, the parameters, each AutoML step's
guardrails and leaderboard, plots of the best model computed from out-of-fold predictions, the
registered models and the tail of each step's log. CSS is inline and images are base64 PNGs:
the file opens anywhere, offline, and can be mailed or attached to a ticket.
"""

from __future__ import annotations

import math
import time
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import AmlStepError
from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from ..workspace import LocalWorkspace, RunRecord
    from .lineage import Lineage
    from .report_plots import Progress

LOG_TAIL = 60
MINIMIZE_HINTS = ("error", "loss")

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


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:.4f}" if abs(value) < 1e5 else f"{value:.4g}"
    if value is None:
        return "—"
    return str(value)


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(int(value), 60)
    return f"{minutes}m {secs:02d}s"


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "—"


def _badge(text: str, kind: str | None = None) -> str:
    return f'<span class="badge {escape(kind or text)}">{escape(text)}</span>'


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None,
           row_classes: list[str] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f'<th class="num">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for index, row in enumerate(rows):
        cls = f' class="{row_classes[index]}"' if row_classes and row_classes[index] else ""
        cells = "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _spec_params(spec: Any) -> dict[str, Any]:
    """A child's hyperparameters from its ``pipeline_spec`` property (JSON), or {}."""
    import json

    try:
        params = json.loads(spec).get("params") if isinstance(spec, str) else None
    except (ValueError, AttributeError):
        return {}
    return params if isinstance(params, dict) else {}


def _hyperparameters(params: dict[str, Any]) -> str:
    """``name=value`` pairs, numbers to 4 significant digits (ensembles: their members, shown apart)."""
    shown = []
    for name, value in sorted(params.items()):
        if name in ("ensembled_iterations", "ensemble_weights"):
            continue
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        shown.append(f"{name}={text}")
    if "ensembled_iterations" in params:
        shown.insert(0, "iterations " + ", ".join(map(str, params["ensembled_iterations"])))
    return ", ".join(shown) or "defaults"


class AutoMLSummary:
    """One AutoML step's record: guardrails, child runs ranked, best child."""

    def __init__(self, lineage: Lineage, step: RunRecord) -> None:
        ws = lineage.workspace
        self.step = step
        self.origin = lineage.origin(step)
        props = self.origin.properties
        self.metric = str(props.get("primary_metric") or step.params.get("primary_metric") or "")
        self.task = str(step.params.get("task") or "classification")
        self.guardrails = [g for g in props.get("guardrails") or [] if isinstance(g, dict)]
        self.best_id = props.get("best_child_run_id")
        self.training_type = props.get("training_type")
        self.unhonoured = props.get("unhonoured_settings") or []
        self.featurization = [f for f in props.get("featurization") or [] if isinstance(f, dict)]
        self.children: list[dict[str, Any]] = []
        goal = ""
        for child in ws.get_children(self.origin.id):
            metrics = ws.get_metrics(child.id)
            goal = goal or str(child.properties.get("goal") or "")
            self.children.append({
                "id": child.id, "iteration": int(_number(child.properties.get("iteration", len(self.children)))),
                "pipeline": child.display_name or child.properties.get("display_name") or child.name,
                "algorithm": child.properties.get("run_algorithm", ""),
                "status": child.status, "error": child.error, "metrics": metrics,
                "score": _number(metrics.get(self.metric, child.properties.get("score"))),
                "fit_time": _number(child.properties.get("fit_time")) if child.properties.get("fit_time") else child.duration,
                "params": _spec_params(child.properties.get("pipeline_spec")),
            })
        self.minimize = goal.endswith("_min") if goal else any(h in self.metric for h in MINIMIZE_HINTS)

    def ranked(self) -> list[dict[str, Any]]:
        def key(child: dict[str, Any]) -> tuple[int, float]:
            score = child["score"]
            if child["status"] != "Completed" or math.isnan(score):
                return (1, 0.0)
            return (0, score if self.minimize else -score)

        return sorted(self.children, key=key)

    @property
    def best(self) -> dict[str, Any] | None:
        for child in self.children:
            if child["id"] == self.best_id:
                return child
        ranked = [c for c in self.ranked() if c["status"] == "Completed"]
        return ranked[0] if ranked else None


def build_report(workspace: LocalWorkspace, run_id: str, *, plots: bool = True, progress: Progress | None = None) -> str:
    """The HTML report of pipeline run ``run_id`` (a unique prefix works) as a string.

    ``progress(what, done, total)`` hears how far the slow parts are (feature importance, or a refit for
    runs that kept no validation predictions).
    """
    from .lineage import Lineage
    from .report_graph import render_svg

    lineage = Lineage(workspace, run_id)
    run = lineage.run
    steps = lineage.steps
    automl = [AutoMLSummary(lineage, s) for s in lineage.automl_steps()]
    models = [m for m in workspace.list_models() if m.run_id == run.id]
    completed = sum(1 for s in steps if s.status == "Completed")
    reused = sum(1 for s in steps if s.reused_from)
    failed = [s for s in steps if s.status == "Failed"]

    out: list[str] = []
    title = f"{run.experiment} · run {run.id[:8]}"
    out.append(f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
               f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
               f"<title>{escape(title)} · amlstep report</title><style>{CSS}</style></head><body>")
    out.append(f"<header><h1>{escape(run.experiment)} {_badge(run.status)}</h1><div class='meta'>"
               f"<span>run <code>{escape(run.id)}</code></span><span>backend {escape(run.backend)}</span>"
               f"<span>started {_when(run.created_at)}</span><span>duration {_seconds(run.duration)}</span>"
               f"</div></header><main>")

    # summary cards
    cards = [("Status", _badge(run.status), "see below" if run.error else ""),
             ("Duration", escape(_seconds(run.duration)), f"{len(steps)} steps"),
             ("Steps", f"{completed}/{len(steps)}", f"{reused} reused" + (f", {len(failed)} failed" if failed else ""))]
    for summary in automl:
        best = summary.best
        if best is not None:
            cards.append((f"Best {summary.metric}", escape(_fmt(best["score"])),
                          escape(f"{best['pipeline']} (iteration {best['iteration']})")))
    for model in models:
        cards.append(("Registered model", escape(model.id), escape(_when(model.created_at))))
    out.append("<div class='cards' id='summary'>" + "".join(
        f"<div class='card'><div class='k'>{escape(k)}</div><div class='v'>{v}</div><div class='s'>{s}</div></div>"
        for k, v, s in cards) + "</div>")
    if run.error:
        out.append(f"<div class='note error'>{escape(run.error)}</div>")

    # graph
    out.append("<section id='graph'><h2>Pipeline</h2><div class='graph-wrap'>" + render_svg(lineage) + "</div>")
    out.append("<p class='muted'>Arrows carry the named data between steps; green completed, red failed, grey "
               "not started; <span class='badge reused'>reused</span> steps took the outputs of an earlier run "
               "whose code, parameters and inputs were the same.</p></section>")

    # steps
    rows = []
    for step in steps:
        status = _badge(step.status) + (" " + _badge("reused", "reused") if step.reused_from else "")
        reasons = step.properties.get("reuse_reasons") or []
        why = escape("; ".join(map(str, reasons))) if reasons else ""
        if step.error:
            why += f"<div class='error'>{escape(step.error)}</div>"
        rows.append([f"<b>{escape(step.name)}</b>", escape(str(step.properties.get("plugin_owner")
                                                                or step.properties.get("plugin") or "")),
                     status, escape(_seconds(step.duration) if step.status != "NotStarted" else "—"), why])
    out.append("<section id='steps'><h2>Steps</h2>" + _table(["step", "plugin", "status", "duration", "why"],
                                                                 rows, {3}) + "</section>")

    # parameters
    out.append("<section id='parameters'><h2>Parameters</h2>")
    if run.params:
        out.append(_table(["pipeline parameter", "value"],
                          [[escape(k), f"<code>{escape(repr(v))}</code>"] for k, v in sorted(run.params.items())]))
    else:
        out.append("<p class='muted'>This pipeline has no pipeline parameters.</p>")
    for step in steps:
        if step.params:
            shown = {k: v for k, v in step.params.items() if v not in (None, [], {}, "")}
            unset = f", {len(step.params) - len(shown)} left empty" if len(shown) < len(step.params) else ""
            out.append(f"<details><summary>{escape(step.name)}: {len(shown)} parameters set{unset}</summary>"
                       + _table(["parameter", "value"], [[escape(k), f"<code>{escape(repr(v))}</code>"]
                                                         for k, v in sorted(shown.items())]) + "</details>")
    datasets = run.properties.get("datasets") or {}
    if datasets:
        out.append("<h3>Datasets</h3>" + _table(["dataset", "version used"],
                                                [[escape(k), escape(str(v))] for k, v in datasets.items()]))
    out.append("</section>")

    # AutoML
    for summary in automl:
        out.append(_automl_section(lineage, summary, plots, progress))

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
        out.append(_table(["pipeline output", "data", "location"], rows))
    if models:
        out.append("<h3>Registered models</h3>" + _table(
            ["model", "registered", "files"],
            [[f"<b>{escape(m.id)}</b>", escape(_when(m.created_at)), escape(", ".join(m.files))] for m in models]))
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
    out.append(f"<footer>amlstep report · generated {_when(time.time())} · workspace {escape(str(workspace.path))}"
               f" · source {escape(str(run.properties.get('source') or '—'))}</footer></body></html>")
    return "".join(out)


def _automl_section(lineage: Lineage, summary: AutoMLSummary, plots: bool, progress: Progress | None = None) -> str:
    from .report_plots import PlotsUnavailable, evaluate, leaderboard_figure

    step = summary.step
    out = [f"<section class='automl' id='automl-{escape(step.name)}'><h2>AutoML · {escape(step.name)}</h2>"]
    facts = [f"task <b>{escape(summary.task)}</b>", f"primary metric <b>{escape(summary.metric)}</b> "
             f"({'lower' if summary.minimize else 'higher'} is better)",
             f"label <b>{escape(str(step.params.get('label_column_name')))}</b>",
             f"{len(summary.children)} iterations"]
    if summary.training_type:
        facts.append(f"validation {escape(str(summary.training_type))}")
    if step.reused_from:
        facts.append(f"reused from step run <code>{escape(step.reused_from[:8])}</code>")
    out.append("<p>" + " · ".join(facts) + "</p>")
    if summary.unhonoured:
        out.append(f"<div class='note'>Settings accepted but not honoured offline: "
                   f"{escape(', '.join(map(str, summary.unhonoured)))}</div>")

    out.append("<h3 id='guardrails'>Data guardrails</h3>")
    if summary.guardrails:
        out.append(_table(["check", "status", "description", "details"],
                          [[escape(str(g.get("type", ""))), _badge(str(g.get("status", "")).capitalize()),
                            escape(str(g.get("description", ""))),
                            escape(", ".join(map(str, g.get("columns") or [])))] for g in summary.guardrails]))
    else:
        out.append("<p class='muted'>No guardrails recorded.</p>")
    out.append(_featurization_section(summary))

    out.append("<h3 id='leaderboard'>Leaderboard</h3>")
    ranked = summary.ranked()
    if ranked:
        extra = [m for m in _leader_metrics(summary.task) if m != summary.metric
                 and any(m in c["metrics"] for c in ranked)][:4]
        headers = ["rank", "iteration", "pipeline", summary.metric, *extra, "fit time", "status", "hyperparameters"]
        rows, classes = [], []
        best = summary.best
        for rank, child in enumerate(ranked, 1):
            rows.append([str(rank), str(child["iteration"]), escape(str(child["pipeline"]))
                         + (" ★" if best is child else ""), escape(_fmt(child["score"])),
                         *[escape(_fmt(child["metrics"].get(m))) for m in extra],
                         escape(_seconds(child["fit_time"])), _badge(child["status"]),
                         f"<code class='params'>{escape(_hyperparameters(child['params']))}</code>"])
            classes.append("best" if best is child else "")
        numeric = {0, 1, 3, *range(4, 4 + len(extra)), 4 + len(extra)}
        out.append(_table(headers, rows, numeric, classes))
        out.append(_ensembles_section(summary))
    else:
        out.append("<p class='muted'>No child runs recorded.</p>")

    figures: list[Any] = []
    board = leaderboard_figure(summary.children, summary.metric, summary.minimize) if plots and ranked else None
    out.append("<h3 id='best-model'>Best model</h3>")
    if not plots:
        out.append("<p class='muted'>Plots were not requested (--no-plots).</p>")
    elif step.status != "Completed":
        out.append(f"<p class='muted'>The step did not complete ({escape(step.status)}); no model to evaluate.</p>")
    else:
        try:
            evaluation = evaluate(lineage, step, progress)
        except PlotsUnavailable as exc:
            out.append(f"<div class='note'>Plots unavailable: {escape(str(exc))}</div>")
        else:
            best = summary.best
            name = f"{best['pipeline']} (iteration {best['iteration']})" if best else evaluation.algorithm
            if evaluation.intro:  # the task's own evaluation says what it shows
                out.append(f"<p>{escape(name)}: {escape(evaluation.intro)}</p>")
            else:
                out.append(f"<p>{escape(name)}, evaluated with {evaluation.n_splits}-fold "
                           f"cross-validation of an unfitted copy of the best pipeline on the step's "
                           f"{evaluation.n_rows} training rows: every point below is a prediction for a row "
                           f"the model did not see.</p>")
            for note in evaluation.notes:
                out.append(f"<div class='note'>{escape(note)}</div>")
            out.append(_metrics_table(summary, evaluation))
            figures.extend(evaluation.figures)
    if board is not None:
        figures.insert(0, board)
    if figures:
        out.append("<div class='plots'>" + "".join(
            f"<figure id='plot-{escape(f.key)}'><img alt='{escape(f.title)}' src='data:image/png;base64,{f.png}'>"
            f"<figcaption><b>{escape(f.title)}.</b> {escape(f.caption)}</figcaption></figure>" for f in figures)
            + "</div>")
    out.append("</section>")
    return "".join(out)


def _leader_metrics(task: str) -> tuple[str, ...]:
    """The task's extra leaderboard columns (none for a task this amlstep does not know)."""
    from emulator.task_types import get_task

    try:
        return get_task(task).leader_metrics
    except KeyError:
        return ()


def _metrics_table(summary: AutoMLSummary, evaluation: Any) -> str:
    """The best model's out-of-fold metrics over all rows at once, beside the leaderboard's (mean over folds)."""
    leaderboard = (summary.best or {}).get("metrics") or {}
    names = [summary.metric, *_leader_metrics(summary.task)]
    names = [m for m in dict.fromkeys(names) if m in evaluation.metrics] or list(evaluation.metrics)
    names += [m for m in evaluation.metrics if m not in names and m not in _azure_metrics(summary.task)]
    rows = [[escape(m) + (" (primary)" if m == summary.metric else ""), escape(_fmt(evaluation.metrics.get(m))),
             escape(_fmt(_number(leaderboard.get(m)) if m in leaderboard else None))] for m in names]
    return _table(["out-of-fold metric", "all out-of-fold rows", "leaderboard (mean over folds)"], rows, {1, 2})


def _azure_metrics(task: str) -> tuple[str, ...]:
    from emulator.task_types import get_task

    try:
        return get_task(task).metrics
    except KeyError:
        return ()


def _featurization_section(summary: AutoMLSummary) -> str:
    """Per raw column: the type detected and what featurization did to it (Azure's featurization summary)."""
    if not summary.featurization:
        return ""
    rows = []
    for column in summary.featurization:
        dropped = column.get("purpose") == "Ignore"
        steps = column.get("transformations")
        rows.append([f"<b>{escape(str(column.get('column')))}</b>", escape(str(column.get("purpose") or "")),
                     escape("Yes" if dropped else "No"), escape(str(column.get("features", "—"))),
                     escape(", ".join(map(str, steps)) if steps else ("—" if steps is None or dropped else "none")),
                     escape(str(column.get("reason") or ""))])
    return ("<h3 id='featurization'>Featurization</h3>"
            + _table(["column", "type detected", "dropped", "engineered features", "transformations", "why"], rows, {3}))


def _ensembles_section(summary: AutoMLSummary) -> str:
    """Each ensemble's members: for the VotingEnsemble their weights, for the StackEnsemble its meta-learner."""
    by_iteration = {c["iteration"]: c for c in summary.children}
    parts = []
    for child in summary.children:
        members = child["params"].get("ensembled_iterations")
        if child["algorithm"] not in ("VotingEnsemble", "StackEnsemble") or not members:
            continue
        weights = child["params"].get("ensemble_weights") or [None] * len(members)
        rows = []
        for iteration, weight in zip(members, weights):
            member = by_iteration.get(iteration, {})
            rows.append([str(iteration), escape(str(member.get("pipeline", "?"))),
                         escape(_fmt(member.get("score"))),
                         escape(f"{weight:.4g}" if isinstance(weight, (int, float)) and child["algorithm"] ==
                                "VotingEnsemble" else "—")])
        how = ("the weighted average of its members' predictions (weights from ensemble selection)"
               if child["algorithm"] == "VotingEnsemble" else "a meta-learner over its members' predictions")
        parts.append(f"<p><b>{escape(child['algorithm'])}</b> (iteration {child['iteration']}, "
                     f"{escape(summary.metric)} {escape(_fmt(child['score']))}): {how}.</p>"
                     + _table(["member iteration", "pipeline", summary.metric, "weight"], rows, {0, 2, 3}))
    return ("<h3 id='ensembles'>Ensembles</h3>" + "".join(parts)) if parts else ""


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
                 progress: Progress | None = None) -> Path:
    """Write the report of ``run_id`` to ``out`` (default ``report-<run id prefix>.html``)."""
    html = build_report(workspace, run_id, plots=plots, progress=progress)
    run = workspace.get_run(run_id)
    target = Path(out) if out else Path(f"report-{run.id[:8]}.html")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(html, encoding="utf-8")
    return target


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
    """Write an HTML report of a pipeline run.

    One self-contained page for RUN_ID: graph, steps, parameters, AutoML guardrails and
    leaderboard, best-model plots, logs. Opens offline in any browser."""
    from .common import State, fail

    state = click.get_current_context().find_object(State)
    assert state is not None
    try:
        with _progress_bar() as progress:
            target = write_report(state.workspace, run_id, out, plots=not no_plots, progress=progress)
    except AmlStepError as exc:
        fail(str(exc))
        return
    click.echo(f"Wrote {target} ({target.stat().st_size // 1024} KiB); open it in a browser: file://{target.resolve()}")


@hookimpl
def register_commands(cli: Any) -> None:
    cli.add_command(report_command)
