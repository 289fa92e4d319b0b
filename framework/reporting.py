"""For plugins that add to ``amlstep report`` and ``amlstep predict``.

``amlstep report`` draws what every run has (the pipeline graph, the steps, parameters, outputs
and logs) and asks the plugins for the rest through the ``report_section`` hook: the AutoML
step's guardrails, leaderboard and plots come from the AutoML plugin that way, and a plugin with
a step kind of its own can add its section the same way. ``amlstep predict`` finds the step run
that trained a registered model, asks the ``model_predictor`` hook how to predict with it, re-runs
the preparation on the new rows and hands them to the predictor.

Both hooks get the run's :class:`Lineage` (its step runs and the data between them) and a step
run (a ``RunRecord``: ``name``, ``params``, ``properties``, ``outputs``...). The HTML helpers
below are the ones the page itself uses, so sections look alike.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any, Callable, Protocol

from .commands.lineage import DatasetRef, Lineage
from .io import read_tabular, single_file

if TYPE_CHECKING:
    import pandas as pd

#: ``progress(what, done, total)``: how far a slow part of the report is (``amlstep report`` draws a bar).
Progress = Callable[[str, int, int], None]


@dataclass
class Card:
    """A summary card at the top of the report: a title, a value and a note (both HTML, escaped by the plugin)."""

    title: str
    value: str
    note: str = ""


@dataclass
class ReportSection:
    """A plugin's part of the report page for one step run (what ``report_section`` returns)."""

    html: str
    """A ``<section id='...'>`` with an ``<h2>`` title (the page's CSS styles tables, figures, notes)."""
    cards: list[Card] = field(default_factory=list)
    """Summary cards shown at the top of the page, after the run's own."""


@dataclass
class Predictions:
    """What a predictor returns for the prepared rows.

    Either ``columns`` (name -> one value per row of ``rows``, the prepared features the model saw),
    which ``amlstep predict`` writes beside the input columns; or ``table``: the whole output, when
    the predictor decides its rows (a forecast of the periods after the history).
    """

    columns: dict[str, Any] = field(default_factory=dict)
    rows: pd.DataFrame | None = None
    table: pd.DataFrame | None = None


class Predictor(Protocol):
    """How ``amlstep predict`` uses the model a step run trained (what ``model_predictor`` returns)."""

    #: What the model does (``classification``...), for the result; may be empty.
    task: str

    def training(self) -> tuple[str, str]:
        """``(source, label)``: the data the model learned from (a data name, or ``dataset:NAME:VERSION``;
        the preparation steps that produced it re-run on the new rows) and the column it predicts.
        Raises ``WorkspaceError`` when the step run records neither."""
        ...

    def predict(self, model: Any, rows: pd.DataFrame, *, model_id: str, file_name: str,
                notes: list[str]) -> Predictions:
        """Predict the prepared ``rows`` with the unpickled registered ``model``; append warnings to ``notes``."""
        ...


# -- the page's HTML helpers ---------------------------------------------------------------------------
def fmt(value: Any) -> str:
    """A number as the report shows it (4 decimals, ``—`` for none or NaN)."""
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:.4f}" if abs(value) < 1e5 else f"{value:.4g}"
    if value is None:
        return "—"
    return str(value)


def seconds(value: float | None) -> str:
    """A duration: ``12.3s``, ``4m 05s``, ``—``."""
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(int(value), 60)
    return f"{minutes}m {secs:02d}s"


def when(timestamp: float | None) -> str:
    """A local date and time, ``—`` for none."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "—"


def badge(text: str, kind: str | None = None) -> str:
    """A coloured badge; ``kind`` (default: ``text``) picks the colour (``Completed``, ``Failed``, ``reused``...)."""
    return f'<span class="badge {escape(kind or text)}">{escape(text)}</span>'


def number(value: Any) -> float:
    """``value`` as a float, NaN when it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None,
          row_classes: list[str] | None = None) -> str:
    """An HTML table: ``headers`` escaped here, cells already HTML; ``numeric`` columns right-aligned."""
    numeric = numeric or set()
    # a long metric name may wrap after its underscores rather than widen the page
    shown = [escape(h).replace("_", "_<wbr>") for h in headers]
    head = "".join(f'<th class="num">{h}</th>' if i in numeric else f"<th>{h}</th>" for i, h in enumerate(shown))
    body = []
    for index, row in enumerate(rows):
        cls = f' class="{row_classes[index]}"' if row_classes and row_classes[index] else ""
        cells = "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


__all__ = ["Card", "DatasetRef", "Lineage", "Predictions", "Predictor", "Progress", "ReportSection", "badge", "escape",
           "fmt", "number", "read_tabular", "seconds", "single_file", "table", "when"]
