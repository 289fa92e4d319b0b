"""Kill the Titanic pipeline with SIGKILL at random points, many times in a row, and check the workspace.

    python benchmarks/kill_loop.py [--kills 30] [--titanic ../shared/data/titanic.csv]

After every kill the workspace must open cleanly, pass SQLite's integrity check, show no run as
Running or wrongly Completed, hold no half-written files, and keep gap-free model versions.
A final run must complete. Prints one line per kill and a summary table.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def check(path: Path) -> dict[str, int]:
    from framework import LocalWorkspace

    workspace = LocalWorkspace(path)
    conn = sqlite3.connect(workspace.db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "integrity check failed"
    runs = workspace.list_runs(run_type=None)
    assert not [r for r in runs if r.status == "Running"], "a killed run still shows Running"
    for run in workspace.list_runs():
        if run.status == "Completed":
            steps = workspace.get_children(run.id)
            assert all(s.status == "Completed" for s in steps) and len(steps) == len(run.properties["steps"])
            assert all((workspace.path / p).exists() for p in run.outputs.values())
    for step in workspace.list_runs(run_type="step"):
        if step.status == "Completed":
            for output in step.outputs.values():
                assert (workspace.path / output["path"]).exists(), f"missing output of {step.id}"
            metrics_files = [workspace.path / o["path"] for o in step.outputs.values() if o["type"] == "metrics"]
            for folder in metrics_files:
                for file in folder.iterdir():
                    json.loads(file.read_text())
    versions = [m.version for m in workspace.list_models() if m.name == "TitanicSurvivalInitial"]
    assert versions == list(range(1, len(versions) + 1)), f"model versions have gaps: {versions}"
    assert not any((workspace.path / ".staging").iterdir()), "half-written files left behind"
    return Counter(r.status for r in workspace.list_runs())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--titanic", default=str(REPO.parent / "shared" / "data" / "titanic.csv"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    ws = Path(tempfile.mkdtemp(prefix="amlstep-kill-")) / "ws"
    cli = [sys.executable, "-m", "framework.cli", "--workspace", str(ws)]
    subprocess.run([*cli, "datasets", "register", "titanic_ds", args.titanic], check=True, capture_output=True)
    pipeline = ["run", str(REPO / "examples" / "titanic"), "--json", "--no-reuse",
                "--param", "iterations=4", "--param", "experiment_timeout_minutes=1"]
    started = time.time()
    for kill in range(args.kills):
        process = subprocess.Popen([*cli, *pipeline], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        delay = rng.uniform(0.3, 12.0)
        time.sleep(delay)
        finished_first = process.poll() is not None
        process.kill()
        process.wait()
        statuses = check(ws)
        print(f"kill {kill + 1:3d} after {delay:4.1f}s{' (already finished)' if finished_first else ''}: ok {dict(statuses)}",
              flush=True)
    final = subprocess.run([*cli, *pipeline], capture_output=True, text=True)
    assert final.returncode == 0 and json.loads(final.stdout)["status"] == "Completed", final.stderr
    statuses = check(ws)
    print()
    print("| kills | workspace checks passed | final re-run | pipeline runs by status | seconds |")
    print("|---|---|---|---|---|")
    print(f"| {args.kills} | {args.kills + 1}/{args.kills + 1} | Completed | {dict(statuses)} | {time.time() - started:.0f} |")


if __name__ == "__main__":
    main()
