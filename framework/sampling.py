"""A reproducible sample of each input dataset, for the inner loop: ``amlstep run --sample 200`` (or ``0.1``, ``10%``).

The local backend reads each dataset a step is bound to, takes the sample (seeded, rows in their
order) and hands the steps that file instead; the run records it (its ``sample`` property, and the
sampled files beside its outputs), says it in its output and its report, and every step's reuse
key carries the sample, so sampled and full runs never reuse each other's outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import PipelineValidationError

SAMPLE_SEED = 0


@dataclass(frozen=True)
class Sample:
    """A reproducible sample of each input dataset: ``rows`` rows, or a ``fraction`` of them (seeded, rows kept in
    their order). ``key`` goes into every step's reuse key: a sampled run never reuses a full run's outputs (nor
    the other way round), nor those of a run sampled otherwise."""

    rows: int | None = None
    fraction: float | None = None

    @classmethod
    def parse(cls, text: str | int | float) -> Sample:
        """``200`` (rows), ``0.1`` or ``10%`` (a fraction of the rows)."""
        raw = str(text).strip()
        problem = (f"--sample {raw!r}: expected a number of rows (200) or a fraction of the rows (0.1 or 10%), "
                   f"greater than 0")
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
        return f"rows={self.rows}" if self.rows is not None else f"fraction={self.fraction:g}"

    def __str__(self) -> str:
        if self.rows is not None:
            return f"{self.rows} row{'s' if self.rows != 1 else ''}"
        return f"{(self.fraction or 0) * 100:g}%"

    def take(self, frame: Any) -> Any:
        """The sample of ``frame``: the same rows for the same table every time, in the table's order."""
        if self.rows is not None:
            if self.rows >= len(frame):
                return frame
            picked = frame.sample(n=self.rows, random_state=SAMPLE_SEED)
        else:
            picked = frame.sample(frac=self.fraction, random_state=SAMPLE_SEED)
        return picked.sort_index().reset_index(drop=True)
