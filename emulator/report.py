"""The AutoML step's section of ``amlstep report`` (the ``report_section`` hook of the AutoML plugin).

For each AutoML step run: the task and primary metric, Azure's data guardrails, the featurization
summary, the leaderboard of child runs with their hyperparameters, the ensembles' members, and
the best model: its out-of-fold metrics and plots (``report_plots``), with a summary card of its
score at the top of the page.
"""

from __future__ import annotations

import math
from html import escape
from typing import TYPE_CHECKING, Any

from framework.reporting import Card, ReportSection, badge, fmt, number, seconds, table

if TYPE_CHECKING:
    from framework.reporting import Lineage, Progress
    from framework.workspace import RunRecord

MINIMIZE_HINTS = ("error", "loss")


def automl_section(lineage: Lineage, step: RunRecord, plots: bool, progress: Progress | None = None) -> ReportSection:
    """The section of AutoML step run ``step`` and its summary card (the best child's score)."""
    summary = AutoMLSummary(lineage, step)
    cards = []
    best = summary.best
    if best is not None:
        cards.append(Card(f"Best {summary.metric}", escape(fmt(best["score"])),
                          escape(f"{best['pipeline']} (iteration {best['iteration']})")))
    return ReportSection(_automl_section(lineage, summary, plots, progress), cards)


def _spec_params(spec: Any) -> dict[str, Any]:
    """A child's hyperparameters from its ``pipeline_spec`` property (JSON), or {}."""
    import json

    try:
        params = json.loads(spec).get("params") if isinstance(spec, str) else None
    except (ValueError, AttributeError):
        return {}
    return params if isinstance(params, dict) else {}


def _hyperparameters(params: dict[str, Any], series: list[str] | None = None, algorithm: str = "") -> str:
    """``name=value`` pairs, numbers to 4 significant digits (ensembles: their members, shown apart; a
    forecasting model's form per series: grouped by form, the series by name)."""
    shown = []
    for name, value in sorted(params.items()):
        if name in ("ensembled_iterations", "ensemble_weights"):
            continue
        if name == "forms" and isinstance(value, dict):
            shown.append(_forms(value, series, algorithm))
            continue
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        shown.append(f"{name}={text}")
    if "ensembled_iterations" in params:
        shown.insert(0, "iterations " + ", ".join(map(str, params["ensembled_iterations"])))
    return ", ".join(shown) or "defaults"


ETS_FORM = ("trend", "damped", "seasonal")


def _forms(forms: dict[str, Any], series: list[str] | None, algorithm: str) -> str:
    """A statistical model's form in each series (keyed by series code), one entry per distinct form:
    ``trend=add, damped=True, seasonal=add (all 6 series)``; ``order=(1, 1, 1) (realgdp, realcons); ...``."""
    def name(code: str) -> str:
        index = int(code) if str(code).isdigit() else -1
        return series[index] if series and 0 <= index < len(series) else f"series {code}"

    def text(form: Any) -> str:
        if isinstance(form, dict):
            return ", ".join(f"{k}={tuple(v) if isinstance(v, list) else v}" for k, v in form.items())
        if isinstance(form, (list, tuple)) and algorithm == "ExponentialSmoothing" and len(form) == len(ETS_FORM):
            return ", ".join(f"{k}={v}" for k, v in zip(ETS_FORM, form))
        return str(tuple(form) if isinstance(form, list) else form)

    groups: dict[str, list[str]] = {}
    for code in sorted(forms, key=lambda c: (not str(c).isdigit(), int(c) if str(c).isdigit() else 0, str(c))):
        groups.setdefault(text(forms[code]), []).append(name(code))
    if len(groups) == 1 and len(forms) > 1:
        return f"{next(iter(groups))} (all {len(forms)} series)"
    return "; ".join(f"{form} ({', '.join(names)})" for form, names in groups.items())


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
        series = props.get("series")
        self.series = [str(s) for s in series] if isinstance(series, list) else None
        self.children: list[dict[str, Any]] = []
        goal = ""
        for child in ws.get_children(self.origin.id):
            metrics = ws.get_metrics(child.id)
            goal = goal or str(child.properties.get("goal") or "")
            self.children.append({
                "id": child.id, "iteration": int(number(child.properties.get("iteration", len(self.children)))),
                "pipeline": child.display_name or child.properties.get("display_name") or child.name,
                "algorithm": child.properties.get("run_algorithm", ""),
                "status": child.status, "error": child.error, "metrics": metrics,
                "score": number(metrics.get(self.metric, child.properties.get("score"))),
                "fit_time": number(child.properties.get("fit_time")) if child.properties.get("fit_time") else child.duration,
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


def _automl_section(lineage: Lineage, summary: AutoMLSummary, plots: bool, progress: Progress | None = None) -> str:
    from .report_plots import PlotsUnavailable, evaluate, leaderboard_figure

    step = summary.step
    out = [f"<section class='automl' id='automl-{escape(step.name)}'><h2>AutoML · {escape(step.name)}</h2>"]
    if step.status == "NotStarted" and not summary.children:
        why = f": {step.error}" if step.error else ""
        out.append(f"<p class='muted'>This step did not start{escape(why)}; it has no guardrails, leaderboard or "
                   f"model.</p></section>")
        return "".join(out)
    label = step.params.get("label_column_name")
    facts = [f"task <b>{escape(summary.task)}</b>", f"primary metric <b>{escape(summary.metric)}</b> "
             f"({'lower' if summary.minimize else 'higher'} is better)",
             *([f"label <b>{escape(str(label))}</b>"] if label else []),
             f"{len(summary.children)} iteration{'s' if len(summary.children) != 1 else ''}"]
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
        out.append(table(["check", "status", "description", "details"],
                          [[escape(str(g.get("type", ""))), badge(str(g.get("status", "")).capitalize()),
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
                         + (" ★" if best is child else ""), escape(fmt(child["score"])),
                         *[escape(fmt(child["metrics"].get(m))) for m in extra],
                         escape(seconds(child["fit_time"])), badge(child["status"]),
                         "<code class='params'>"
                         f"{escape(_hyperparameters(child['params'], summary.series, child['algorithm']))}</code>"])
            classes.append("best" if best is child else "")
        numeric = {0, 1, 3, *range(4, 4 + len(extra)), 4 + len(extra)}
        out.append("<div class='table-wrap'>" + table(headers, rows, numeric, classes) + "</div>")
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
            out.append(_metricstable(summary, evaluation))
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
    from .task_types.registry import get_task

    try:
        return get_task(task).leader_metrics
    except KeyError:
        return ()


def _metricstable(summary: AutoMLSummary, evaluation: Any) -> str:
    """The best model's out-of-fold metrics over all rows at once, beside the leaderboard's (mean over folds)."""
    leaderboard = (summary.best or {}).get("metrics") or {}
    names = [summary.metric, *_leader_metrics(summary.task)]
    names = [m for m in dict.fromkeys(names) if m in evaluation.metrics] or list(evaluation.metrics)
    names += [m for m in evaluation.metrics if m not in names and m not in _azure_metrics(summary.task)]
    rows = [[escape(m) + (" (primary)" if m == summary.metric else ""), escape(fmt(evaluation.metrics.get(m))),
             escape(fmt(number(leaderboard.get(m)) if m in leaderboard else None))] for m in names]
    return table(["out-of-fold metric", "all out-of-fold rows", "leaderboard (mean over folds)"], rows, {1, 2})


def _azure_metrics(task: str) -> tuple[str, ...]:
    from .task_types.registry import get_task

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
            + table(["column", "type detected", "dropped", "engineered features", "transformations", "why"], rows, {3}))


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
                         escape(fmt(member.get("score"))),
                         escape(f"{weight:.4g}" if isinstance(weight, (int, float)) and child["algorithm"] ==
                                "VotingEnsemble" else "—")])
        how = ("the weighted average of its members' predictions (weights from ensemble selection)"
               if child["algorithm"] == "VotingEnsemble" else "a meta-learner over its members' predictions")
        parts.append(f"<p><b>{escape(child['algorithm'])}</b> (iteration {child['iteration']}, "
                     f"{escape(summary.metric)} {escape(fmt(child['score']))}): {how}.</p>"
                     + table(["member iteration", "pipeline", summary.metric, "weight"], rows, {0, 2, 3}))
    return ("<h3 id='ensembles'>Ensembles</h3>" + "".join(parts)) if parts else ""
