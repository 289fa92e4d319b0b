"""How long ``amlstep report`` takes beside the AutoML step it reports on, per dataset.

    pip install -e '.[bench]'
    python benchmarks/report.py                                  # every dataset, 120 s AutoML budget
    python benchmarks/report.py --datasets fair_sorted --refit   # also time the old refitting report
    python benchmarks/report.py --table                          # the table of the results so far

For each dataset: one pipeline with one AutoML step (Azure's defaults, ``--budget`` seconds,
``max_concurrent_iterations=2``) in a fresh local workspace; then ``amlstep report RUN_ID`` in a new
process, timed from start to exit (imports included), as a user runs it; its CPU time is measured
too (wall-clock time stretches on a loaded machine, the AutoML step's budget does not). The table
puts the AutoML step's duration beside the report's, with their ratio, and the best model's out-of-fold primary
metric as the report computes it from the kept validation predictions beside the leaderboard's.
``--refit`` also times, in this process, the report as it was before runs kept their validation
predictions (a cross-validated refit of the best pipeline). Every finished dataset is appended to
``benchmarks/report_results.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
RESULTS = REPO / "benchmarks" / "report_results.jsonl"
DATASETS = ("fair_sorted", "titanic_raw", "titanic_prepped", "fair", "anes96", "diabetes", "randhie", "penguins")


def load(name: str, titanic: Path) -> tuple[pd.DataFrame, str, str]:
    """(frame, label, task). ``fair_sorted``: issue 16's case, 4,000 rows of statsmodels' ``fair`` predicting
    ``occupation`` (6 classes), sorted by ``educ``; the others are ``benchmarks/automl.py``'s datasets."""
    if name == "fair_sorted":
        from statsmodels.datasets import fair

        frame = fair.load_pandas().data.sample(4000, random_state=0)
        frame["occupation"] = frame["occupation"].astype(int)
        return frame.sort_values("educ", kind="stable").reset_index(drop=True), "occupation", "classification"
    from automl import load as automl_load  # benchmarks/automl.py

    return automl_load(name, titanic)


def run_one(name: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from framework import AutoMLStep, Dataset, LocalWorkspace, Pipeline, run_pipeline

    frame, label, task = load(name, args.titanic)
    metric = "AUC_weighted" if task == "classification" else "r2_score"
    frame.to_csv(root / f"{name}.csv", index=False)
    workspace = LocalWorkspace(root / "workspace")
    workspace.register_dataset(name, [str(root / f"{name}.csv")])
    pipeline = Pipeline(experiment=f"report_{name}", steps=[
        AutoMLStep(name="AutoML", training_data=Dataset(name), task=task, label_column_name=label,
                   primary_metric=metric, experiment_timeout_minutes=args.budget / 60,
                   max_concurrent_iterations=args.concurrency)])
    result = run_pipeline(pipeline, workspace=workspace)
    if not result.succeeded:
        raise SystemExit(f"{name}: the AutoML step failed: {result.error}")
    step = workspace.get_run(result.step("AutoML").run_id)
    best = workspace.get_run(step.properties["best_child_run_id"])
    out = root / "report.html"
    command = [amlstep(), "--workspace", str(workspace.path), "report", result.run_id, "--out", str(out)]
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    report_seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    report_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    pooled, leaderboard = best_metric(out.read_text(), metric)
    row = {"dataset": name, "rows": len(frame), "task": task, "classes": int(frame[label].nunique())
           if task == "classification" else None, "metric": metric, "budget": args.budget,
           "best": best.properties.get("run_algorithm"), "automl_seconds": round(step.duration or 0.0, 2),
           "report_seconds": round(report_seconds, 2), "report_cpu_seconds": round(report_cpu, 2),
           "load_average": round(os.getloadavg()[0], 1), "report_oof": pooled, "leaderboard": leaderboard,
           "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    if args.refit:
        row["refit_report_seconds"] = round(refit_report(workspace, result.run_id), 2)
    return row


def amlstep() -> str:
    """The ``amlstep`` console script of this Python (the one a user runs)."""
    import shutil

    beside = Path(sys.executable).parent / "amlstep"
    found = str(beside) if beside.is_file() else shutil.which("amlstep")
    if not found:
        raise SystemExit("the amlstep command is not installed: pip install -e '.[bench]'")
    return found


def best_metric(html: str, metric: str) -> tuple[float | None, float | None]:
    """The report's (all out-of-fold rows, leaderboard) values of ``metric`` for the best model."""
    section = html.split("id='best-model'")[1] if "id='best-model'" in html else ""
    found = re.search(rf"<td>{re.escape(metric)} \(primary\)</td><td class=\"num\">([-\d.]+)</td>"
                      rf"<td class=\"num\">([-\d.]+)</td>", section)
    return (float(found.group(1)), float(found.group(2))) if found else (None, None)


def refit_report(workspace: Any, run_id: str) -> float:
    """Seconds the report takes when it cross-validates the best pipeline again (no kept predictions)."""
    from emulator import report_plots
    from framework.commands.report import build_report

    kept = report_plots.kept_predictions
    report_plots.kept_predictions = lambda lineage, child_id: None  # type: ignore[assignment]
    try:
        started = time.perf_counter()
        build_report(workspace, run_id)
        return time.perf_counter() - started
    finally:
        report_plots.kept_predictions = kept  # type: ignore[assignment]


def read_results(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def table(rows: list[dict[str, Any]]) -> str:
    """The latest result of each dataset as a markdown table."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        latest[row["dataset"]] = row
    refit = any("refit_report_seconds" in r for r in latest.values())
    head = ["dataset", "rows", "task", "best model", "AutoML step", "report", "report CPU", "report / AutoML",
            "out-of-fold primary metric (report)", "leaderboard"] + (["report with a refit (before)"] if refit else [])
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in latest.values():
        task = row["task"] + (f" ({row['classes']} classes)" if row.get("classes") else "")
        cells = [row["dataset"], f"{row['rows']:,}", task, row["best"], f"{row['automl_seconds']:.1f} s",
                 f"{row['report_seconds']:.1f} s", f"{row['report_cpu_seconds']:.1f} s",
                 f"{row['report_seconds'] / row['automl_seconds']:.3f}",
                 f"{row['metric']} {row['report_oof']:.4f}" if row["report_oof"] is not None else "—",
                 f"{row['leaderboard']:.4f}" if row["leaderboard"] is not None else "—"]
        if refit:
            seconds = row.get("refit_report_seconds")
            cells.append(f"{seconds:.1f} s" if seconds is not None else "—")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--budget", type=int, default=120, help="the AutoML step's experiment timeout, seconds")
    parser.add_argument("--concurrency", type=int, default=2, help="max_concurrent_iterations")
    parser.add_argument("--refit", action="store_true", help="also time the report that refits the best pipeline")
    parser.add_argument("--titanic", type=Path, default=REPO.parent / "shared" / "data" / "titanic.csv")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--table", action="store_true", help="print the table of the results so far")
    args = parser.parse_args(argv)
    if not args.table:
        os.environ.setdefault("PYTHONWARNINGS", "ignore")
        for name in args.datasets:
            with tempfile.TemporaryDirectory(prefix=f"report-bench-{name}-") as root:
                row = run_one(name, args, Path(root))
            with open(args.results, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    print(table(read_results(args.results)))


if __name__ == "__main__":
    main()
