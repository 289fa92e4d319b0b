"""A reproducible sample of each input dataset, for the inner loop: ``amlstep run --sample 200`` (or ``0.1``, ``10%``).

The local backend reads each dataset a step is bound to, takes the sample (seeded, rows in their
order) and hands the steps that file instead; the run records it (its ``sample`` property, and the
sampled files beside its outputs), says it in its output and its report, and every step's reuse
key carries the sample, so sampled and full runs never reuse each other's outputs.

``--sample-by COLUMN[,COLUMN]`` samples whole groups instead of rows (``--sample 5 --sample-by store``: every row
of 5 stores): what time series need, whose rows sampled one by one leave gaps in every series. A dataset without
those columns (a calendar, a lookup table) is kept whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import PipelineValidationError

SAMPLE_SEED = 0


@dataclass(frozen=True)
class Sample:
    """A reproducible sample of each input dataset: ``rows`` rows, or a ``fraction`` of them (seeded, rows kept in
    their order); with ``by`` (column names), that many groups of rows sharing their values, or that fraction of
    the groups. ``key`` goes into every step's reuse key: a sampled run never reuses a full run's outputs (nor
    the other way round), nor those of a run sampled otherwise."""

    rows: int | None = None
    fraction: float | None = None
    by: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str | int | float, by: str | tuple[str, ...] | list[str] | None = None) -> Sample:
        """``200`` (rows), ``0.1`` or ``10%`` (a fraction of the rows); ``by``: ``"store"`` or ``"store,item"``."""
        columns = tuple(c.strip() for c in (by.split(",") if isinstance(by, str) else by or ()) if c.strip())
        if by is not None and not columns:
            raise PipelineValidationError(f"--sample-by {by!r}: expected column names (store, or store,item)")
        sample = cls._parse(text)
        return cls(sample.rows, sample.fraction, columns)

    @classmethod
    def from_key(cls, key: str) -> Sample:
        """The sample whose ``key`` this is (a run's record)."""
        amount, _, by = str(key).partition(";by=")
        kind, _, value = amount.partition("=")
        base = cls(rows=int(value)) if kind == "rows" else cls(fraction=float(value))
        return cls(base.rows, base.fraction, tuple(by.split(",")) if by else ())

    @classmethod
    def _parse(cls, text: str | int | float) -> Sample:
        raw = str(text).strip()
        problem = (f"--sample {raw!r}: expected a number of rows (200, at least 1) or a fraction of the rows "
                   f"above 0 and below 1 (0.1), or a percentage above 0 up to 100 (10%)")
        try:
            if raw.endswith("%"):
                fraction = float(raw[:-1]) / 100
                if not 0 < fraction <= 1 or math.isnan(fraction):
                    raise ValueError(raw)
                return cls(fraction=fraction)
            if raw.isdigit():
                rows = int(raw)
                if rows < 1:
                    raise ValueError(raw)
                return cls(rows=rows)
            fraction = float(raw)
        except ValueError:
            raise PipelineValidationError(problem) from None
        if not 0 < fraction < 1 or math.isnan(fraction):
            raise PipelineValidationError(problem)
        return cls(fraction=fraction)

    @property
    def key(self) -> str:
        amount = f"rows={self.rows}" if self.rows is not None else f"fraction={self.fraction:g}"
        return amount + (f";by={','.join(self.by)}" if self.by else "")

    def __str__(self) -> str:
        unit = "group" if self.by else "row"
        if self.rows is not None:
            text = f"{self.rows} {unit}{'s' if self.rows != 1 else ''}"
        else:
            text = f"{(self.fraction or 0) * 100:g}%" + (" of the groups" if self.by else "")
        return text + (f" by {', '.join(self.by)}" if self.by else "")

    def groups_in(self, frame: Any) -> bool:
        """Whether ``frame`` holds the ``by`` columns (a frame without them is kept whole)."""
        return all(column in frame.columns for column in self.by)

    def take(self, frame: Any) -> Any:
        """The sample of ``frame``: the same rows for the same table every time, in the table's order."""
        if self.by:
            return self.take_groups(frame)[0]
        if self.rows is not None:
            if self.rows >= len(frame):
                return frame
            picked = frame.sample(n=self.rows, random_state=SAMPLE_SEED)
        else:
            picked = frame.sample(frac=self.fraction, random_state=SAMPLE_SEED)
        return picked.sort_index().reset_index(drop=True)

    def take_groups(self, frame: Any) -> tuple[Any, int | None, int | None]:
        """The sample of ``frame`` by ``by``, the groups it holds and the groups ``frame`` holds (None, None: it
        lacks the ``by`` columns and is kept whole)."""
        import numpy as np

        if not self.groups_in(frame):
            return frame, None, None
        group = frame.groupby(list(self.by), sort=True, dropna=False).ngroup().to_numpy()
        count = int(group.max()) + 1 if len(group) else 0
        wanted = self.rows if self.rows is not None else max(1, round(count * (self.fraction or 0)))
        if wanted >= count:
            return frame, count, count
        picked = np.random.RandomState(SAMPLE_SEED).choice(count, size=wanted, replace=False)
        return frame[np.isin(group, picked)].reset_index(drop=True), wanted, count


def counts_text(datasets: Mapping[str, Mapping[str, Any]]) -> str:
    """What a run's record says of each sampled dataset: ``sales: 240 of 2,880 rows (5 of 60 groups)``."""
    parts = []
    for name, entry in datasets.items():
        text = f"{name}: {entry.get('rows')} of {entry.get('of')} rows"
        if entry.get("groups") is not None:
            text += f" ({entry['groups']} of {entry['of_groups']} groups)"
        elif entry.get("kept_whole"):
            text += f" (kept whole: {entry['kept_whole']})"
        parts.append(text)
    return ", ".join(parts)
