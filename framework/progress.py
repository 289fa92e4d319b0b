"""Live progress in the terminal: a bundled observer plugin built on the lifecycle hooks.

While a ``ProgressDisplay`` is active, the hooks below feed it: pipeline steps with their status
and time, the AutoML leaderboard filling in iteration by iteration with the best score so far,
and the data guardrails. It renders with rich's ``Live`` only when its console is a terminal;
otherwise it stays quiet. Step output (what steps print) goes to the display's ``stream``, which
shows the last lines under the table instead of scrolling the terminal; the full log is in the
run history (``logs/<step run id>/std_log.txt``).

The ``run`` command activates it through ``progress_for_run``; nothing else needs to.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, TextIO

from .hookspecs import hookimpl
from .workspace.names import short_id

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from .pipeline import Pipeline, StepBinding
    from .results import PipelineRunResult, StepRunResult

LEADERBOARD_ROWS = 12
LOG_TAIL_LINES = 4
# what the AutoML step prints that the display shows as tables: the guardrails block, the leaderboard lines
AUTOML_ECHOED = ("DATA GUARDRAILS", "TYPE:", "STATUS:", "DESCRIPTION:", "DETAILS:")
LEADERBOARD_LINE = re.compile(r"^\s*(ITER\s+PIPELINE|\d+\s{2}\S)")
STATUS_STYLE = {"Completed": "green", "Running": "cyan", "Failed": "red", "NotStarted": "dim",
                "Waiting": "dim", "Canceled": "yellow", "Reused": "green"}
GUARDRAIL_STYLE = {"PASSED": "green", "DONE": "cyan", "ALERTED": "yellow", "FAILED": "red"}


@dataclass
class StepState:
    name: str
    plugin: str
    kind: str
    status: str = "Waiting"
    started: float | None = None
    ended: float | None = None
    reused: bool = False
    note: str = ""
    step_run_id: str | None = None
    iterations: int | None = None


@dataclass
class LeaderRow:
    iteration: int
    pipeline: str
    score: float
    best: float
    fit_time: float | None
    status: str


@dataclass
class AutoMLState:
    step: str
    metric: str = ""
    goal: str = ""
    rows: list[LeaderRow] = field(default_factory=list)
    best: LeaderRow | None = None
    guardrails: list[dict[str, Any]] = field(default_factory=list)

    @property
    def minimize(self) -> bool:
        return self.goal.endswith("_min")

    def better(self, a: float, b: float | None) -> bool:
        if math.isnan(a):
            return False
        if b is None or math.isnan(b):
            return True
        return a < b if self.minimize else a > b


class _LogSink(io.TextIOBase):
    """The ``echo`` stream handed to the backend: lines feed the display instead of the terminal."""

    def __init__(self, display: ProgressDisplay) -> None:
        self._display = display
        self._partial = ""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        data = self._partial + text
        *lines, self._partial = data.split("\n")
        for line in lines:
            self._display.feed_line(line)
        return len(text)

    def flush(self) -> None:
        pass


class ProgressDisplay:
    """Pipeline progress for one run, rendered live on ``console`` when it is a terminal.

    Args:
        console: where to render (default: a console on stderr). A console that is not a terminal
            makes the display quiet.
        workspace: the local workspace, to read the AutoML step's recorded guardrails and the
            leaderboard of reused steps (optional).
    """

    def __init__(self, console: Console | None = None, *, workspace: Any = None,
                 refresh_per_second: float = 4) -> None:
        from rich.console import Console

        self.console = console if console is not None else Console(file=sys.stderr, stderr=True)
        self.enabled = self.console.is_terminal
        self.workspace = workspace
        self.refresh_per_second = refresh_per_second
        self._lock = threading.RLock()
        self._live: Any = None
        self.run_id: str | None = None
        self.experiment = ""
        self.backend = ""
        self.params: dict[str, Any] = {}
        self.started: float | None = None
        self.ended: float | None = None
        self.status = "Starting"
        self.steps: dict[str, StepState] = {}
        self.automl: dict[str, AutoMLState] = {}
        self.current_step: str | None = None
        self.log_tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self._pending_guardrail: dict[str, Any] | None = None
        self.final = False  # the last frame: the whole story, sorted, whatever the terminal's height
        self.stream: TextIO = _LogSink(self)  # type: ignore[assignment]  # a TextIOBase used as a text stream

    # -- activation ---------------------------------------------------------------------------
    def __enter__(self) -> ProgressDisplay:
        _ACTIVE.append(self)
        if self.enabled:
            from rich.live import Live

            self._live = Live(get_renderable=self.render, console=self.console, auto_refresh=True,
                              refresh_per_second=self.refresh_per_second, transient=False,
                              redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        if self._live is not None:
            with self._lock:
                self.log_tail.clear()
                self.final = True  # rich prints the last frame whole (its overflow becomes "visible")
            self._live.stop()
            self._live = None

    def refresh(self) -> None:
        if self._live is not None:
            self._live.refresh()

    # -- events (called by the hook implementations below) -----------------------------------
    def _mine(self, run_id: str | None) -> bool:
        return self.run_id is None or run_id is None or run_id == self.run_id

    def before_pipeline_run(self, run_id: str, pipeline: Pipeline, params: dict[str, Any], backend: str) -> None:
        if self.run_id is not None:
            return
        with self._lock:
            self.run_id, self.experiment, self.backend = run_id, pipeline.experiment, backend
            self.params = dict(params)
            self.started, self.status = time.monotonic(), "Running"
            for step in pipeline.steps:
                self.steps[step.name] = StepState(step.name, step.plugin, "automl" if step.plugin == "automl" else "python")

    def before_step_run(self, run_id: str, step: StepBinding, step_run_id: str) -> None:
        if not self._mine(run_id):
            return
        with self._lock:
            state = self.steps.setdefault(step.name, StepState(step.name, step.plugin, step.spec.kind))
            state.kind = step.spec.kind
            state.status, state.started, state.step_run_id = "Running", time.monotonic(), step_run_id
            self.current_step = step.name
            self.log_tail.clear()
            if step.spec.kind == "automl":
                automl = self.automl.setdefault(step_run_id, AutoMLState(step.name))
                try:
                    settings = step.resolve_params(self.params)
                    automl.metric = str(settings.get("primary_metric") or "")
                    state.iterations = int(settings.get("iterations") or 0) or None
                except Exception:  # the backend reports bad settings; the display only shows progress
                    pass
        self.refresh()

    def after_step_run(self, run_id: str, step: StepBinding, step_run_id: str, result: StepRunResult) -> None:
        if not self._mine(run_id):
            return
        with self._lock:
            state = self.steps.setdefault(step.name, StepState(step.name, step.plugin, step.spec.kind))
            state.status, state.ended, state.reused = result.status, time.monotonic(), result.reused
            if result.duration is not None and state.started is not None:
                state.ended = state.started + result.duration
            if result.reused:
                state.note = f"reused {short_id(result.reused_from) if result.reused_from else ''}".strip()
            if step.spec.kind == "automl":
                self._load_recorded_automl(step.name, step_run_id, result)
            if self.current_step == step.name:
                self.current_step = None
        self.refresh()

    def on_step_error(self, run_id: str, step: StepBinding, step_run_id: str, error: BaseException) -> None:
        if not self._mine(run_id):
            return
        with self._lock:
            state = self.steps.setdefault(step.name, StepState(step.name, step.plugin, step.spec.kind))
            state.status, state.ended = "Failed", time.monotonic()
            state.note = f"{type(error).__name__}: {error}".splitlines()[0][:160]
        self.refresh()

    def after_child_run(self, run_id: str, step_run_id: str, child_run_id: str, status: str,
                        properties: dict[str, Any], metrics: dict[str, Any]) -> None:
        if not self._mine(run_id):
            return
        with self._lock:
            automl = self.automl.setdefault(step_run_id, AutoMLState(self.current_step or "AutoML"))
            self._add_child(automl, status, properties, metrics)
        self.refresh()

    def after_pipeline_run(self, run_id: str, pipeline: Pipeline, result: PipelineRunResult) -> None:
        if not self._mine(run_id):
            return
        with self._lock:
            self.status, self.ended = result.status, time.monotonic()
            for step_result in result.steps:
                state = self.steps.get(step_result.name)
                if state is not None and state.status in ("Waiting", "Running"):
                    state.status = step_result.status
                    if step_result.error and not state.note:
                        state.note = step_result.error[:160]
            if result.status != "Completed":  # no step goes on showing "Running" in the last frame
                for state in self.steps.values():
                    if state.status == "Running":
                        state.status, state.ended = ("Canceled" if result.status == "Canceled" else "Failed"), time.time()
                        state.note = state.note or (result.error or "")[:160]
                    elif state.status == "Waiting":
                        state.status = "NotStarted"
            self.current_step = None
            self.log_tail.clear()
        self.refresh()

    # -- helpers ------------------------------------------------------------------------------
    def _add_child(self, automl: AutoMLState, status: str, properties: dict[str, Any],
                   metrics: dict[str, Any]) -> None:
        metric = str(properties.get("primary_metric") or automl.metric)
        automl.metric = metric
        automl.goal = str(properties.get("goal") or automl.goal)
        score = _number(metrics.get(metric, properties.get("score")))
        if status != "Completed":
            score = float("nan")
        iteration = int(_number(properties.get("iteration", len(automl.rows)), len(automl.rows)))
        name = str(properties.get("display_name") or ", ".join(
            p for p in (properties.get("run_preprocessor"), properties.get("run_algorithm")) if p) or "?")
        row = LeaderRow(iteration, name, score, score, _number(properties.get("fit_time"), None), status)
        if automl.better(score, automl.best.score if automl.best else None):
            automl.best = row
        row.best = automl.best.score if automl.best else float("nan")
        automl.rows.append(row)

    def _load_recorded_automl(self, step_name: str, step_run_id: str, result: StepRunResult) -> None:
        """Guardrails from the step's properties; for a reused step, the earlier run's leaderboard."""
        if self.workspace is None:
            return
        automl = self.automl.setdefault(step_run_id, AutoMLState(step_name))
        try:
            record = self.workspace.get_run(result.reused_from or step_run_id)
            guardrails = record.properties.get("guardrails")
            if isinstance(guardrails, list) and guardrails:
                automl.guardrails = [g for g in guardrails if isinstance(g, dict)]
            automl.metric = str(record.properties.get("primary_metric") or automl.metric)
            if result.reused and not automl.rows:
                for child in self.workspace.get_children(record.id):
                    self._add_child(automl, child.status, child.properties, self.workspace.get_metrics(child.id))
        except Exception:  # a display never breaks a run
            return

    def feed_line(self, line: str) -> None:
        """One line of step output: kept as the log tail; guardrail blocks are parsed as they come."""
        text = line.rstrip()
        with self._lock:
            if text.strip() and not self._shown_elsewhere(text):
                self.log_tail.append(text)
            key, _, value = text.partition(":")
            value = value.strip()
            if key == "TYPE" and value:
                self._pending_guardrail = {"type": value, "status": "", "description": "", "columns": []}
            elif key == "STATUS" and self._pending_guardrail is not None:
                self._pending_guardrail["status"] = value
                automl = self._current_automl()
                if automl is not None and not any(g.get("type") == self._pending_guardrail["type"]
                                                  for g in automl.guardrails):
                    automl.guardrails.append(self._pending_guardrail)
            elif key == "DESCRIPTION" and self._pending_guardrail is not None:
                self._pending_guardrail["description"] = value

    def _shown_elsewhere(self, text: str) -> bool:
        """Lines of an AutoML step's output that the guardrails table and the leaderboard already show."""
        if set(text.strip()) <= {"*"}:
            return True
        if self._current_automl() is None:
            return False
        return text.startswith(AUTOML_ECHOED) or bool(LEADERBOARD_LINE.match(text))

    def _current_automl(self) -> AutoMLState | None:
        if self.current_step is None:
            return None
        state = self.steps.get(self.current_step)
        if state is None or state.step_run_id is None or state.kind != "automl":
            return None
        return self.automl.setdefault(state.step_run_id, AutoMLState(state.name))

    # -- rendering ----------------------------------------------------------------------------
    def render(self) -> RenderableType:
        """The frame to show: it fits the console's height while the run goes on (the leaderboard keeps
        the best row and the latest ones, the guardrails fold into one line, the log tail shrinks); the
        final frame shows the whole story (the leaderboard sorted by score)."""
        from rich.console import Group

        with self._lock:
            height = None if self.final else self.console.size.height
            tail = list(self.log_tail) if self.current_step and not self.final else []
            fixed = 1 + len(self.steps)
            boards = [a for a in self.automl.values() if a.rows or a.guardrails]
            if height is None:
                plan = [(a, True, LEADERBOARD_ROWS) for a in boards]
            else:
                plan = self._plan(boards, height - 1 - fixed, tail)
                spare = height - 1 - fixed - sum(self._board_height(a, full, rows) for a, full, rows in plan)
                tail = tail[-max(0, spare):] if spare > 0 else []
            parts: list[Any] = [self._header(), self._steps_table()]
            for automl, full_guardrails, rows in plan:
                if automl.guardrails:
                    parts.append(self._guardrails_table(automl) if full_guardrails else self._guardrails_line(automl))
                if automl.rows:
                    parts.extend(self._leaderboard(automl, rows))
            if tail:
                from rich.text import Text

                parts.append(Text("\n".join(f"  │ {line}" for line in tail), style="dim", no_wrap=True,
                                  overflow="ellipsis"))
            return Group(*parts)

    def _plan(self, boards: list[AutoMLState], room: int, tail: list[str]) -> list[tuple[AutoMLState, bool, int]]:
        """How much of each AutoML step fits in ``room`` lines: guardrails in full or folded, leaderboard rows."""
        for full in (True, False):  # the whole leaderboard matters more than the guardrails' details
            plan = [(a, full, LEADERBOARD_ROWS) for a in boards]
            if sum(self._board_height(*p) for p in plan) <= room:
                return plan
        rows = LEADERBOARD_ROWS
        while rows > 1 and sum(self._board_height(a, False, rows) for a in boards) > room:
            rows -= 1
        return [(a, False, rows) for a in boards]

    @staticmethod
    def _board_height(automl: AutoMLState, full_guardrails: bool, rows: int) -> int:
        height = (1 + len(automl.guardrails) if full_guardrails else 1) if automl.guardrails else 0
        if automl.rows:
            shown = min(rows, len(automl.rows))
            height += 2 + shown + (1 if shown < len(automl.rows) else 0)
        return height

    def _header(self) -> Any:
        from rich.text import Text

        elapsed = _clock((self.ended or time.monotonic()) - self.started) if self.started else "--:--"
        style = STATUS_STYLE.get(self.status, "bold")
        return Text.assemble(("● ", style), (self.experiment or "pipeline", "bold"),
                             f"  run {short_id(self.run_id) if self.run_id else '?'}  {self.backend}  ",
                             (self.status, style), f"  {elapsed}", no_wrap=True, overflow="ellipsis")

    def _steps_table(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        now = time.monotonic()
        steps = Table(box=None, show_header=False, padding=(0, 1), expand=False)
        steps.add_column(width=1)
        steps.add_column(style="bold", no_wrap=True)
        steps.add_column(no_wrap=True)
        steps.add_column(justify="right", no_wrap=True)
        steps.add_column()  # the one column that gives way on a narrow terminal (its text is cut, not wrapped)
        for state in self.steps.values():
            shown = "Reused" if state.reused else state.status
            icon = {"Completed": "✓", "Reused": "↺", "Running": "▶", "Failed": "✗",
                    "NotStarted": "·", "Waiting": "·", "Canceled": "!"}.get(shown, "·")
            duration = ""
            if state.started is not None:
                duration = _seconds((state.ended or now) - state.started)
            steps.add_row(Text(icon, STATUS_STYLE.get(shown, "")), state.name,
                          Text(shown, STATUS_STYLE.get(shown, "")), duration, _cut(self._note(state)))
        return steps

    def _note(self, state: StepState) -> str:
        if state.note:
            return state.note
        automl = self.automl.get(state.step_run_id or "")
        if automl is not None and automl.rows:
            total = f"/{state.iterations}" if state.iterations else ""
            best = f"best {automl.metric} {automl.best.score:.4f}" if automl.best else "no completed iteration"
            return f"iteration {len(automl.rows)}{total}, {best}"
        if state.status == "Running" and state.kind == "automl":
            return "featurizing, checking guardrails"
        return ""

    def _guardrails_table(self, automl: AutoMLState) -> Any:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"Data guardrails · {automl.step}", title_justify="left", box=None,
                      padding=(0, 1), show_header=False)
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(style="dim")  # gives way on a narrow terminal
        for check in automl.guardrails:
            status = str(check.get("status", "")).upper()
            table.add_row(Text(status or "?", GUARDRAIL_STYLE.get(status, "")), str(check.get("type", "")),
                          _cut(str(check.get("description", ""))))
        return table

    def _guardrails_line(self, automl: AutoMLState) -> Any:
        """The guardrails folded into one line when the terminal is short: counts, and what needs a look."""
        from rich.text import Text

        counts: dict[str, int] = {}
        for check in automl.guardrails:
            status = str(check.get("status", "")).upper() or "?"
            counts[status] = counts.get(status, 0) + 1
        line = Text(f"Data guardrails · {automl.step}: ", no_wrap=True, overflow="ellipsis")
        line.append(", ".join(f"{n} {status.lower()}" for status, n in counts.items()))
        flagged = [str(c.get("type")) for c in automl.guardrails if str(c.get("status", "")).upper()
                   in ("ALERTED", "FAILED")]
        if flagged:
            line.append(f" ({', '.join(flagged)})", GUARDRAIL_STYLE["ALERTED"])
        return line

    def _leaderboard(self, automl: AutoMLState, limit: int) -> list[Any]:
        """The leaderboard's title line and table: while running, the best row and the latest ones
        (``limit`` rows in all); in the final frame, the best ``limit`` rows sorted by score."""
        from rich.table import Table
        from rich.text import Text

        goal = "lower is better" if automl.minimize else "higher is better"
        title = Text(f"AutoML leaderboard · {automl.step} · {automl.metric} ({goal})", style="bold", no_wrap=True,
                     overflow="ellipsis")
        table = Table(box=None, padding=(0, 1), header_style="bold")
        table.add_column("iter", justify="right", no_wrap=True)
        table.add_column("pipeline")  # gives way on a narrow terminal
        table.add_column(automl.metric or "score", justify="right", no_wrap=True)
        table.add_column("best so far", justify="right", no_wrap=True)
        table.add_column("fit time", justify="right", no_wrap=True)
        limit = max(1, limit)
        items: list[LeaderRow | str]
        if self.final:
            ranked = sorted(automl.rows, key=lambda r: (math.isnan(r.score), r.score if automl.minimize else -r.score,
                                                        r.iteration))
            items = list(ranked[:limit])
            if len(automl.rows) > limit:
                items.append(f"{len(automl.rows) - limit} more iterations (`amlstep runs show` lists them all)")
        else:
            latest = automl.rows[-limit:]
            hidden = len(automl.rows) - len(latest)
            if automl.best is not None and automl.best not in latest:
                latest = automl.rows[-(limit - 1):] if limit > 1 else []
                hidden = len(automl.rows) - len(latest) - 1
                items = [automl.best, f"{hidden} other iterations", *latest]
            else:
                items = ([f"{hidden} earlier iterations"] if hidden else []) + list(latest)
        for item in items:
            if isinstance(item, str):
                table.add_row("…", _cut(item, "dim"), "", "", "")
                continue
            is_best = automl.best is item
            style = "bold green" if is_best else ("red" if item.status != "Completed" else "")
            score = "failed" if item.status != "Completed" else f"{item.score:.4f}"
            table.add_row(str(item.iteration), _cut(item.pipeline + (" ★" if is_best else ""), style),
                          Text(score, style), _fmt(item.best), _seconds(item.fit_time))
        return [title, table]


def _cut(text: str, style: str = "") -> Any:
    """A cell that is cut with an ellipsis when its column is narrow, never wrapped (one line per row)."""
    from rich.text import Text

    return Text(text, style, no_wrap=True, overflow="ellipsis")


def _number(value: Any, default: Any = float("nan")) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _fmt(value: float) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.4f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.1f}s" if value < 60 else _clock(value)


def _clock(value: float) -> str:
    value = max(0, int(value))
    return f"{value // 3600:d}:{value // 60 % 60:02d}:{value % 60:02d}" if value >= 3600 else \
        f"{value // 60:02d}:{value % 60:02d}"


_ACTIVE: list[ProgressDisplay] = []


@contextlib.contextmanager
def progress_for_run(*, quiet: bool, workspace: Any = None, console: Console | None = None
                     ) -> Iterator[TextIO | None]:
    """What the ``run`` command echoes step output to, with a live display when stderr is a terminal.

    Yields None with ``quiet``; the display's stream when the console is a terminal (the display
    shows the last lines); plain ``sys.stderr`` otherwise (no live display, no escape codes).
    """
    if quiet:
        yield None
        return
    from rich.console import Console

    console = console if console is not None else Console(file=sys.stderr, stderr=True)
    if not console.is_terminal:
        yield sys.stderr
        return
    with ProgressDisplay(console, workspace=workspace) as display:
        yield display.stream


# -- the hook implementations: forward to the active displays ---------------------------------
@hookimpl
def before_pipeline_run(run_id: str, pipeline: Pipeline, params: dict[str, Any], backend: str) -> None:
    for display in list(_ACTIVE):
        display.before_pipeline_run(run_id, pipeline, params, backend)


@hookimpl
def before_step_run(run_id: str, step: StepBinding, step_run_id: str) -> None:
    for display in list(_ACTIVE):
        display.before_step_run(run_id, step, step_run_id)


@hookimpl
def after_step_run(run_id: str, step: StepBinding, step_run_id: str, result: StepRunResult) -> None:
    for display in list(_ACTIVE):
        display.after_step_run(run_id, step, step_run_id, result)


@hookimpl
def on_step_error(run_id: str, step: StepBinding, step_run_id: str, error: BaseException) -> None:
    for display in list(_ACTIVE):
        display.on_step_error(run_id, step, step_run_id, error)


@hookimpl
def after_child_run(run_id: str, step_run_id: str, child_run_id: str, status: str, properties: dict[str, Any],
                    metrics: dict[str, Any]) -> None:
    for display in list(_ACTIVE):
        display.after_child_run(run_id, step_run_id, child_run_id, status, properties, metrics)


@hookimpl
def after_pipeline_run(run_id: str, pipeline: Pipeline, result: PipelineRunResult) -> None:
    for display in list(_ACTIVE):
        display.after_pipeline_run(run_id, pipeline, result)
