"""Whether a run's process is alive is judged by its lease, a lock the kernel releases when it dies.

A run started in another PID namespace or container (its pid means nothing here) must not be
declared dead by a command run next to it; a killed one must be.
"""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from framework import LocalWorkspace
from framework.cli import make_cli
from framework.workspace import liveness

# A process that starts a run and stages a file, then waits for a line on stdin before finishing.
# With --foreign it rewrites its recorded pid, as a process in another PID namespace looks from here.
RUNNER = r"""
import sqlite3, sys
from framework import LocalWorkspace
ws = LocalWorkspace(sys.argv[1])
run = ws.create_run(run_type="pipeline", name="p", experiment="e", status="Running")
staging = ws.staging_dir()
(staging / "half.csv").write_text("x\n1\n")
if "--foreign" in sys.argv:
    conn = sqlite3.connect(ws.db_path)
    conn.execute("UPDATE runs SET pid=999999999, process_start='1' WHERE id=?", (run.id,))
    conn.commit()
    conn.close()
print(run.id, staging, flush=True)
sys.stdin.readline()
(staging / "half.csv").read_text()  # the live run still needs its staged files
ws.update_run(run.id, status="Completed")
print("done", flush=True)
"""


def start(command, tmp_path):
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=Path(__file__).resolve().parents[3])
    line = process.stdout.readline().split()
    if len(line) != 2:
        process.kill()
        pytest.fail(f"the runner did not start: {process.communicate()[1]}")
    return process, line[0], Path(line[1])


def look_from_here(ws_path):
    """What any other command does: open the workspace (reconciling) and list runs."""
    result = CliRunner().invoke(make_cli(), ["--workspace", str(ws_path), "runs", "list", "--json"])
    assert result.exit_code == 0, result.output
    return {r["id"]: r for r in json.loads(result.stdout)}


def test_a_run_whose_pid_means_nothing_here_is_alive_while_its_process_holds_the_lease(tmp_path):
    ws = tmp_path / "ws"
    process, run_id, staging = start([sys.executable, "-c", RUNNER, str(ws), "--foreign"], tmp_path)
    try:
        assert look_from_here(ws)[run_id]["status"] == "Running"
        assert (staging / "half.csv").is_file(), "another command deleted a live run's staged files"
        out, err = process.communicate("go\n", timeout=60)
        assert process.returncode == 0, err
    finally:
        process.kill()
    assert look_from_here(ws)[run_id]["status"] == "Completed"


def test_a_killed_run_is_failed_and_its_files_and_lease_removed(tmp_path):
    ws = tmp_path / "ws"
    process, run_id, staging = start([sys.executable, "-c", RUNNER, str(ws), "--foreign"], tmp_path)
    process.kill()
    process.communicate()
    run = look_from_here(ws)[run_id]
    assert (run["status"], run["error"]) == ("Failed", "interrupted: the process running it ended without finishing "
                                                       "(killed or crashed)")
    assert not staging.exists()
    assert liveness.lease_names(ws) == []


def test_a_run_in_another_pid_namespace(tmp_path):
    """The real thing: ``unshare --pid --fork --mount-proc``; skipped where namespaces are not permitted."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare is not installed")
    prefix = [unshare, "--pid", "--fork", "--mount-proc", "--kill-child"]
    if os.geteuid() != 0:
        prefix[1:1] = ["--user", "--map-root-user"]
    if subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("this machine does not permit new PID namespaces (unshare --pid failed)")
    ws = tmp_path / "ws"
    process, run_id, staging = start([*prefix, sys.executable, "-c", RUNNER, str(ws)], tmp_path)
    try:
        recorded = LocalWorkspace(ws).get_run(run_id)
        assert recorded.pid in (1, 2), "the run should see itself as pid 1 (or 2) of its own namespace"
        assert look_from_here(ws)[run_id]["status"] == "Running"
        assert (staging / "half.csv").is_file()
        out, err = process.communicate("go\n", timeout=60)
        assert process.returncode == 0 and "done" in out, err
    finally:
        process.kill()
    assert look_from_here(ws)[run_id]["status"] == "Completed"


FORKER = r"""
import os, sys, time
from framework import LocalWorkspace
ws = LocalWorkspace(sys.argv[1])
run = ws.create_run(run_type="pipeline", name="p", experiment="e", status="Running")
child = os.fork()
if child == 0:
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    time.sleep(30)
    os._exit(0)
print(run.id, child, flush=True)
os._exit(0)  # the parent dies without recording anything; its forked child lives on
"""


def test_a_forked_child_does_not_keep_its_dead_parents_run_alive(tmp_path):
    ws = tmp_path / "ws"
    done = subprocess.run([sys.executable, "-c", FORKER, str(ws)], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[3])
    run_id, child = done.stdout.split()
    try:
        assert look_from_here(ws)[run_id]["status"] == "Failed"
    finally:
        os.kill(int(child), signal.SIGKILL)


def test_runs_recorded_before_leases_are_judged_by_pid(workspace):
    """Rows from an older amlstep (no lease) keep the old rule: pid and start time on this host."""
    run = workspace.create_run(run_type="pipeline", name="p", experiment="e", status="Running")
    conn = sqlite3.connect(workspace.db_path)
    conn.execute("UPDATE runs SET pid=999999999, lease=NULL WHERE id=?", (run.id,))
    conn.commit()
    conn.close()
    assert LocalWorkspace(workspace.path).get_run(run.id).status == "Failed"


def test_own_runs_stay_alive_whatever_their_recorded_pid(workspace):
    run = workspace.create_run(run_type="pipeline", name="p", experiment="e", status="Running")
    conn = sqlite3.connect(workspace.db_path)
    conn.execute("UPDATE runs SET pid=999999999 WHERE id=?", (run.id,))
    conn.commit()
    conn.close()
    assert LocalWorkspace(workspace.path).get_run(run.id).status == "Running"


def test_a_lease_of_another_machine_is_not_judged(workspace, tmp_path):
    """Released on another kernel (seen over NFS): whether its locks are visible here is unknown."""
    lease = workspace.path / ".live" / "4242-feedfacecafe.lock"
    lease.write_text(json.dumps({"pid": 4242, "boot_id": "another-machine"}))
    assert liveness.probe(workspace.path, "4242-feedfacecafe").state == liveness.UNKNOWN
    run = workspace.create_run(run_type="pipeline", name="p", experiment="e", status="Running")
    conn = sqlite3.connect(workspace.db_path)
    conn.execute("UPDATE runs SET lease='4242-feedfacecafe', host='elsewhere' WHERE id=?", (run.id,))
    conn.commit()
    conn.close()
    assert LocalWorkspace(workspace.path).get_run(run.id).status == "Running"
    assert lease.exists()


# -- issue 24: when a killed run ended; following its logs ---------------------------------------------
def test_a_killed_run_ends_when_its_process_was_last_seen_not_when_someone_noticed(tmp_path):
    """93 s used to be recorded for a run killed after 7 s, because its end was when the next command looked."""
    import time

    ws = tmp_path / "ws"
    process, run_id, _ = start([sys.executable, "-c", RUNNER, str(ws)], tmp_path)
    process.kill()
    process.communicate()
    now = time.time()
    for lease in (ws / ".live").glob("*.lock"):  # the run's lease and the process's (for its staging)
        os.utime(lease, (now - 83, now - 83))  # their last heartbeat: 7 s after the run started, 83 s ago
    conn = sqlite3.connect(ws / "amlstep.db")
    conn.execute("UPDATE runs SET started_at=?, created_at=? WHERE id=?", (now - 90, now - 90, run_id))
    conn.commit()
    conn.close()
    run = LocalWorkspace(ws).get_run(run_id)
    assert run.status == "Failed"
    assert run.duration == pytest.approx(7, abs=1), run.duration


def test_a_lease_is_touched_while_held_so_that_its_time_says_when_the_process_was_last_seen(tmp_path):
    import threading

    lease = liveness.take_run_lease(tmp_path, "r")
    try:
        os.utime(lease.path, (1000, 1000))
        liveness._beat()
        assert lease.path.stat().st_mtime > 1000
        assert liveness.last_seen(tmp_path, lease.name) == lease.path.stat().st_mtime
        assert any(t.name == "amlstep-lease-heartbeat" and t.is_alive() for t in threading.enumerate())
    finally:
        liveness.release(tmp_path, "r")


LOGGING_RUNNER = r"""
import sys, time
from framework import LocalWorkspace
ws = LocalWorkspace(sys.argv[1])
run = ws.create_run(run_type="pipeline", name="p", experiment="e", status="Running")
step = ws.create_run(run_type="step", name="train", experiment="e", parent_id=run.id, status="Running")
log = ws.log_path(step.id)
log.write_text("epoch 1\n")
ws.update_run(step.id, log_path=ws.relative(log))
print(run.id, log, flush=True)
time.sleep(600)
"""


def test_runs_logs_follow_ends_when_the_run_process_is_killed(tmp_path, monkeypatch):
    from framework.commands import browse

    ws = tmp_path / "ws"
    process, run_id, log = start([sys.executable, "-c", LOGGING_RUNNER, str(ws)], tmp_path)
    naps = []

    def nap(seconds):
        naps.append(seconds)
        if len(naps) == 1:  # while amlstep follows: the process is killed
            with open(log, "a") as f:
                f.write("epoch 2\n")
            process.send_signal(signal.SIGKILL)
            process.wait()
        if len(naps) > 20:
            raise RuntimeError("runs logs --follow is still following a run whose process was killed")

    monkeypatch.setattr(browse.time, "sleep", nap)
    try:
        result = CliRunner().invoke(make_cli(), ["--workspace", str(ws), "runs", "logs", run_id, "--follow"])
    finally:
        process.kill()
        process.wait()
    assert result.exit_code == 0, result.output
    assert "epoch 1\nepoch 2\n" in result.stdout
    assert result.stderr == (f"run {run_id} is Failed: interrupted: the process running it ended without finishing "
                             f"(killed or crashed)\n")
    assert len(naps) == 1, "it ended at its first look after the kill"
