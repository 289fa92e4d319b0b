"""Kill the Titanic pipeline with SIGKILL at random points, many times in a row, and check the workspace.

    python benchmarks/kill_loop.py [--kills 30] [--repair-kills 20] [--titanic ../shared/data/titanic.csv]
                                   [--no-namespace]

After every kill the workspace must open cleanly and pass `amlstep workspace check`: SQLite's
integrity check, the sha256 of every recorded step output, registered model and dataset, version
numbers without gaps, no run left Running, no half-written file in `.staging/`. A folder left by a
kill between moving a new version into place and recording it is reported (`orphan`) and set
aside by the next registration; it is counted, not failed. Then one pass runs the pipeline in
another PID namespace (`unshare --pid --fork --mount-proc`, skipped with the reason where that is
not permitted): while it runs, `amlstep runs list` from outside must keep seeing it Running; after
its kill it must be Failed. A final run must complete.

Then `workspace check --repair` is killed at random points (`--repair-kills`): before each, the
history is damaged so that the repair must rebuild it (alternately a destroyed file header and a
row whose JSON does not decode; both lose no row to SQLite), the repair is started and killed
with SIGKILL after a random delay within the time a whole repair takes, and a second repair is
run to the end. Everything known before (every run and its status, every model with its sha256
and source run, every dataset, every recorded file's sha256) must still be there, and
`workspace check` must pass. Where each kill landed is told from what it left: nothing changed
yet, a kept copy made, no history (between keeping the old file and renaming the new one in), or
the new history in place. Prints one line per kill and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def check(path: Path) -> tuple[dict[str, int], dict[str, int], list[str]]:
    """Statuses of pipeline runs, what was verified by sha256, and orphans; raise on any other finding."""
    from framework import LocalWorkspace
    from framework.workspace.check import check_workspace

    workspace = LocalWorkspace(path)  # as any command would: marks the killed run Failed
    report = check_workspace(path)
    problems = [f"{f.kind}: {f.problem}" for f in report.findings if f.kind != "orphan"]
    assert not problems, "workspace check failed: " + "; ".join(problems)
    for run in workspace.list_runs():
        if run.status == "Completed":
            steps = workspace.get_children(run.id)
            assert all(s.status == "Completed" for s in steps) and len(steps) == len(run.properties["steps"])
    orphans = [f.path for f in report.findings if f.kind == "orphan"]
    return Counter(r.status for r in workspace.list_runs()), report.checked, orphans


def namespace_prefix() -> tuple[list[str] | None, str]:
    unshare = shutil.which("unshare")
    if unshare is None:
        return None, "unshare is not installed"
    prefix = [unshare, "--pid", "--fork", "--mount-proc", "--kill-child"]
    if os.geteuid() != 0:
        prefix[1:1] = ["--user", "--map-root-user"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return None, f"new PID namespaces are not permitted here ({probe.stderr.strip() or probe.returncode})"
    return prefix, ""


def namespace_pass(cli: list[str], pipeline: list[str], ws: Path) -> str:
    """Run the pipeline in another PID namespace; other commands must not declare it dead; then kill it."""
    prefix, reason = namespace_prefix()
    if prefix is None:
        return f"skipped: {reason}"
    process = subprocess.Popen([*prefix, *cli, *pipeline], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_id, looks = None, 0
    deadline = time.time() + 60
    while time.time() < deadline and process.poll() is None:
        listed = subprocess.run([*cli, "runs", "list", "--json", "-n", "1"], capture_output=True, text=True)
        latest = (json.loads(listed.stdout) or [None])[0] if listed.returncode == 0 else None
        if latest is not None and latest["status"] == "Running":
            run_id = run_id or latest["id"]
        if run_id is not None:
            status = next(r["status"] for r in json.loads(listed.stdout) if r["id"] == run_id) \
                if latest and latest["id"] == run_id else None
            if status != "Running" and process.poll() is None:
                process.kill()
                raise AssertionError(f"run {run_id} in another PID namespace was declared {status} while alive")
            looks += 1
            if looks >= 5:
                break
        time.sleep(0.3)
    process.kill()  # unshare --kill-child: the namespace's pid 1, then every process in it, die after unshare
    process.wait()
    if run_id is None:
        return "skipped: the run finished before it was seen Running"
    from framework import LocalWorkspace

    status, waited = "Running", time.time()
    while status == "Running" and time.time() - waited < 30:  # until the kernel has reaped the namespace
        time.sleep(0.2)
        status = LocalWorkspace(ws).get_run(run_id).status
    assert status == "Failed", f"killed run in another PID namespace is {status}"
    check(ws)
    return f"Running through {looks} looks from outside, Failed after its kill"


def known(path: Path) -> dict[str, set[Any]]:
    """What the workspace records: runs and their status, models with sha256 and source run, datasets, and the
    sha256 of every recorded file."""
    import hashlib

    from framework import LocalWorkspace

    workspace = LocalWorkspace(path)
    files = {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
             for folder in ("datasets", "models", "datastore") for p in (path / folder).rglob("*") if p.is_file()}
    return {"runs": {(r.id, r.status) for r in workspace.list_runs(run_type=None)},
            "models": {(m.name, m.version, m.sha256, m.run_id) for m in workspace.list_models()},
            "datasets": {(d.name, d.version, d.sha256) for d in workspace.list_datasets()},
            "files": set(files.items())}


def damage(path: Path, kind: str) -> None:
    """Damage that makes the repair rebuild the history but loses no row to SQLite."""
    import sqlite3

    db = path / "amlstep.db"
    if kind == "header":
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        with open(db, "r+b") as f:
            f.write(b"\x5a" * 100)
    else:
        conn = sqlite3.connect(db)
        conn.execute("UPDATE runs SET tags='not json' WHERE rowid=(SELECT max(rowid) FROM runs WHERE "
                     "run_type='pipeline')")
        conn.commit()
        conn.close()


def kept_count(path: Path) -> int:
    from framework.workspace.check import kept_copies

    return len(kept_copies(path))


def where_killed(path: Path, kept_before: int) -> str:
    """What a killed repair left, in words."""
    kept = kept_count(path)
    if not (path / "amlstep.db").exists():
        return "no history (between keeping the old and renaming the new)"
    if kept > kept_before:
        try:
            from framework.workspace.check import check_workspace

            report = check_workspace(path)
        except Exception:  # noqa: BLE001 - a damaged history is one of the states
            return "kept copy made, old history in place"
        return ("new history in place" if not any(f.kind in ("history", "row") for f in report.findings)
                else "kept copy made, old history in place")
    staging = [p for p in (path / ".staging").iterdir()] if (path / ".staging").is_dir() else []
    return "new history being built (staging)" if staging else "nothing changed yet"


def repair_passes(cli: list[str], ws: Path, kills: int, rng: random.Random) -> dict[str, Any]:
    """Kill `workspace check --repair` at random points; after each, a second repair must lose nothing."""
    repair = [*cli, "workspace", "check", "--repair"]
    def timed(path: Path) -> float:
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "framework.cli", "--workspace", str(path), "workspace", "check",
                        "--repair"], capture_output=True, cwd=REPO, check=False)
        return time.monotonic() - started

    empty = ws.parent / "empty-trial"
    empty.mkdir()
    startup = min(timed(empty) for _ in range(3))  # starting Python and amlstep: nothing is changed before that
    trials = []
    for _ in range(3):
        trial = ws.parent / "repair-trial"
        shutil.copytree(ws, trial, ignore=shutil.ignore_patterns(".live"))
        damage(trial, "header")
        trials.append(timed(trial))
        shutil.rmtree(trial)
    whole = max(trials)
    landed: Counter[str] = Counter()
    for kill in range(kills):
        before = known(ws)
        kind = ("header", "row")[kill % 2]
        damage(ws, kind)
        kept_before = kept_count(ws)
        process = subprocess.Popen(repair, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
        delay = rng.uniform(0.9 * startup, 1.05 * whole)
        time.sleep(delay)
        finished_first = process.poll() is not None
        process.kill()
        process.wait()
        where = "repair finished first" if finished_first else where_killed(ws, kept_before)
        landed[where] += 1
        second = subprocess.run(repair, capture_output=True, text=True, cwd=REPO)
        assert second.returncode == 0, f"the repair after kill {kill + 1} failed: {second.stdout}{second.stderr}"
        after = known(ws)
        for key, items in before.items():
            lost = items - after[key]
            assert not lost, f"kill {kill + 1} of a repair ({where}) lost {key}: {sorted(lost)[:3]}"
        checked = subprocess.run([*cli, "workspace", "check"], capture_output=True, text=True, cwd=REPO)
        assert checked.returncode == 0, f"workspace check after kill {kill + 1}: {checked.stdout}{checked.stderr}"
        print(f"repair kill {kill + 1:3d} ({kind} damage) after {delay:4.2f}s ({startup:.2f}s to start, {whole:.2f}s in "
              f"all): {where}; nothing lost "
              f"({len(after['runs'])} runs, {len(after['models'])} models, {len(after['datasets'])} datasets, "
              f"{len(after['files'])} files)", flush=True)
    return {"whole": whole, "startup": startup, "landed": landed, "kept": kept_count(ws)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--repair-kills", type=int, default=20, help="kills of `workspace check --repair`")
    parser.add_argument("--titanic", default=str(REPO.parent / "shared" / "data" / "titanic.csv"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-namespace", action="store_true", help="skip the pass in another PID namespace")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    ws = Path(tempfile.mkdtemp(prefix="amlstep-kill-")) / "ws"
    cli = [sys.executable, "-m", "framework.cli", "--workspace", str(ws)]
    subprocess.run([*cli, "datasets", "register", "titanic_ds", args.titanic], check=True, capture_output=True,
                   cwd=REPO)
    pipeline = ["run", str(REPO / "examples" / "titanic"), "--json", "--no-reuse", "--quiet",
                "--param", "iterations=4", "--param", "experiment_timeout_minutes=1"]
    started = time.time()
    verified: Counter[str] = Counter()
    orphans: list[str] = []
    for kill in range(args.kills):
        process = subprocess.Popen([*cli, *pipeline], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
        delay = rng.uniform(0.3, 12.0)
        time.sleep(delay)
        finished_first = process.poll() is not None
        process.kill()
        process.wait()
        statuses, checked, found = check(ws)
        verified.update(checked)
        orphans += found
        print(f"kill {kill + 1:3d} after {delay:4.1f}s{' (already finished)' if finished_first else ''}: ok "
              f"{dict(statuses)}; sha256 verified: {checked.get('step outputs', 0)} outputs, "
              f"{checked.get('model versions', 0)} models, {checked.get('dataset versions', 0)} datasets"
              + (f"; orphans: {found}" if found else ""), flush=True)
    namespace = "skipped (--no-namespace)" if args.no_namespace else namespace_pass(cli, pipeline, ws)
    print(f"PID namespace pass: {namespace}")
    final = subprocess.run([*cli, *pipeline], capture_output=True, text=True, cwd=REPO)
    assert final.returncode == 0 and json.loads(final.stdout)["status"] == "Completed", final.stderr
    statuses, checked, _ = check(ws)
    repairs = repair_passes(cli, ws, args.repair_kills, rng) if args.repair_kills else None
    print()
    print("| kills | workspace checks passed | sha256 checks (outputs / models / datasets) | orphans set aside | "
          "PID namespace pass | final re-run | pipeline runs by status | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {args.kills} | {args.kills + 1}/{args.kills + 1} | {verified['step outputs']} / "
          f"{verified['model versions']} / {verified['dataset versions']} | {len(orphans)} | {namespace} | Completed | "
          f"{dict(statuses)} | {time.time() - started:.0f} |")
    if repairs is not None:
        print()
        print("| repair kills | where the kills landed | second repair completed, nothing lost | kept copies | "
              "one repair takes |")
        print("|---|---|---|---|---|")
        print(f"| {args.repair_kills} | {'; '.join(f'{n} {w}' for w, n in repairs['landed'].most_common())} | "
              f"{args.repair_kills}/{args.repair_kills} | {repairs['kept']} | {repairs['whole']:.2f} s "
              f"({repairs['startup']:.2f} s of it starting) |")
    shutil.rmtree(ws.parent, ignore_errors=True)  # kept when a check above fails, to look at


if __name__ == "__main__":
    main()
