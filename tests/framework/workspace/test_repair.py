"""``workspace check --repair`` never makes things worse (issue 24).

It tells "cannot read or write now" (full disk, read-only, lock held) from "damaged", refuses to
start when it cannot finish, works on a copy and swaps it in atomically, keeps every earlier copy
under a unique name and reads them all, and survives a kill at any point.

The full-disk and read-only cases run on a small tmpfs in a private mount namespace (skipped where
the machine does not permit that), like ``test_disk_full.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from framework import LocalWorkspace, Pipeline, Step, WorkspaceError, run_pipeline
from framework.cli import make_cli
from framework.workspace import check as check_module
from framework.workspace.check import check_workspace
from tests.framework.commands.conftest import cli_with_commands
from tests.framework.workspace.test_disk_full import _namespace_prefix

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def filled(workspace, toy_plugins, tmp_path):
    """Two pipeline runs (two versions of model Toy, each knowing its run) and a registered dataset."""
    for _ in range(2):
        result = run_pipeline(Pipeline([Step("make_table", allow_reuse=False), Step("fit", inputs={"table": "table"}),
                                        Step("register_model", inputs={"model": "model"}, params={"model_name": "Toy"})],
                                       outputs={"model": "model"}), workspace=workspace, plugins=toy_plugins)
        assert result.status == "Completed"
    source = tmp_path / "numbers.csv"
    source.write_text("x,y\n1,2\n3,4\n")
    workspace.register_dataset("numbers", [str(source)])
    return workspace


def kept_copies(path: Path) -> list[Path]:
    return sorted(p for p in path.glob("amlstep.db.damaged-*") if not p.name.endswith(("-wal", "-shm", "-journal")))


def invoke(path, *args):
    return CliRunner().invoke(cli_with_commands(), ["--workspace", str(path), *args])


def known(path: Path) -> dict[str, set]:
    """What the history records, by key: every run's status, every model's run and sha256, every dataset."""
    ws = LocalWorkspace(path)
    return {"runs": {(r.id, r.status) for r in ws.list_runs(run_type=None)},
            "models": {(m.name, m.version, m.sha256, m.run_id) for m in ws.list_models()},
            "datasets": {(d.name, d.version, d.sha256) for d in ws.list_datasets()}}


def garbage_header(db: Path) -> None:
    with open(db, "r+b") as f:
        f.write(b"\x5a" * 100)


# -- kept copies: unique names, always read ------------------------------------------------------
def test_two_repairs_in_one_second_keep_two_copies(filled, monkeypatch):
    monkeypatch.setattr(check_module.time, "strftime", lambda *a: "20240101-000000")
    for _ in range(2):
        garbage_header(filled.db_path)
        assert check_workspace(filled.path, repair=True).ok
    copies = kept_copies(filled.path)
    assert len(copies) == 2 and len({p.name for p in copies}) == 2, copies


def test_a_history_started_anew_is_refilled_from_the_kept_copy(filled):
    """What a repair interrupted after moving the history aside used to leave: an empty history beside the
    kept copy, and a check saying "everything is in order"."""
    before = known(filled.path)
    db = filled.db_path
    for suffix in ("", "-wal"):
        if Path(f"{db}{suffix}").exists():
            os.link(f"{db}{suffix}", filled.path / f"amlstep.db.damaged-20240101-000000{suffix}")
            os.unlink(f"{db}{suffix}")
    Path(f"{db}-shm").unlink(missing_ok=True)
    conn = sqlite3.connect(db)
    conn.close()  # a 0-byte file: what a repair stopped by a full disk left
    result = invoke(filled.path, "workspace", "check")
    assert result.exit_code == 1, result.output
    assert "1 kept copy of it (amlstep.db.damaged-20240101-000000)" in result.stdout, result.stdout
    repaired = invoke(filled.path, "workspace", "check", "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert known(filled.path) == before
    assert not any((filled.path / "lost+found").glob("datastore_*")), "no output of a known run was set aside"


def test_a_check_reports_rows_that_only_a_kept_copy_holds(filled):
    before = known(filled.path)
    shutil.copyfile(filled.db_path, filled.path / "amlstep.db.damaged-20240101-000000")
    conn = sqlite3.connect(filled.db_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    shutil.copyfile(filled.db_path, filled.path / "amlstep.db.damaged-20240101-000000")
    conn = sqlite3.connect(filled.db_path)
    conn.execute("DELETE FROM models WHERE version=2")
    conn.execute("DELETE FROM runs WHERE run_type='pipeline' AND rowid=(SELECT max(rowid) FROM runs WHERE "
                 "run_type='pipeline')")
    conn.commit()
    conn.close()
    result = invoke(filled.path, "workspace", "check")
    assert result.exit_code == 1
    assert ("the kept copy amlstep.db.damaged-20240101-000000 holds rows the run history lacks (1 run, 1 model)"
            in result.stdout), result.stdout
    assert invoke(filled.path, "workspace", "check", "--repair").exit_code == 0
    assert known(filled.path) == before
    assert invoke(filled.path, "workspace", "check").exit_code == 0


def test_outputs_set_aside_by_an_earlier_repair_are_moved_back(filled):
    """An earlier repair that lost the runs moved their outputs to lost+found/; they come back with the runs."""
    step = next(r for r in filled.list_runs(run_type="step") if r.name == "fit" and not r.reused_from)
    filled.move_aside(filled.output_root(step.id))
    shutil.copyfile(filled.db_path, filled.path / "amlstep.db.damaged-20240101-000000")
    garbage_header(filled.db_path)
    filled.db_path.write_bytes(b"")
    for suffix in ("-wal", "-shm"):
        Path(f"{filled.db_path}{suffix}").unlink(missing_ok=True)
    result = invoke(filled.path, "workspace", "check", "--repair")
    assert result.exit_code == 0, result.output
    assert filled.output_root(step.id).is_dir()
    assert f"back from lost+found/ to datastore/azureml/{step.id}" in result.stdout


# -- never worse: refuse when it cannot finish, survive a kill anywhere -----------------------------
def test_repair_refuses_while_another_amlstep_process_uses_the_workspace(filled, tmp_path):
    garbage_header(filled.db_path)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from framework.workspace import liveness; "
                               "from pathlib import Path; liveness.process_lease(Path(sys.argv[1])); "
                               "print('held', flush=True); time.sleep(60)", str(filled.path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        files = sorted(p.name for p in filled.path.iterdir())
        result = invoke(filled.path, "workspace", "check", "--repair")
        assert result.exit_code == 2
        assert result.stderr == (f"Error: cannot repair the workspace {filled.path} while other amlstep processes use "
                                 f"it (process {holder.pid}); nothing was changed: run `amlstep workspace check "
                                 f"--repair` once they ended\n")
        assert sorted(p.name for p in filled.path.iterdir()) == files
    finally:
        holder.kill()
        holder.wait()


def _repair_killed_at(path: Path, step: int) -> bool:
    """Run the repair in a forked child that dies (``os._exit``, like kill -9: no cleanup) at its ``step``-th
    file system change; True when the repair finished before that."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        calls = [0]

        def dying(function):
            def wrapper(*args, **kwargs):
                calls[0] += 1
                if calls[0] == step:
                    os._exit(137)
                return function(*args, **kwargs)
            return wrapper

        for name in ("link", "replace", "rename", "unlink", "mkdir", "rmdir"):
            setattr(os, name, dying(getattr(os, name)))
        try:
            check_workspace(path, repair=True)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def test_a_repair_killed_at_any_step_loses_nothing(filled, tmp_path):
    template = tmp_path / "template"
    shutil.copytree(filled.path, template, ignore=shutil.ignore_patterns(".live"))
    expected = known(filled.path)
    garbage_header(template / "amlstep.db")
    step = 1
    while True:
        path = tmp_path / f"killed-{step}"
        shutil.copytree(template, path)
        finished = _repair_killed_at(path, step)
        if check_workspace(path).ok:
            assert known(path) == expected, f"after a kill at step {step}, check says all is well but runs are missing"
        assert check_workspace(path, repair=True).ok, f"the repair after a kill at step {step} did not finish"
        assert known(path) == expected, f"a kill at step {step} lost something"
        assert kept_copies(path), "the damaged history was not kept"
        shutil.rmtree(path)
        if finished:
            break
        step += 1
    assert step > 5, "the kill points did not reach into the repair"


# -- full disk and read-only: "cannot write now" is not "damaged" ------------------------------------
SMALL_DISK = r"""
import hashlib, json, sys
from pathlib import Path
from click.testing import CliRunner
from framework import LocalWorkspace, Pipeline, Step, get_plugin_manager, run_pipeline
from tests.framework.commands.conftest import cli_with_commands
from tests.toy_steps import ToySteps

mount, phase = Path(sys.argv[1]), sys.argv[2]
ws = mount / "ws"


def amlstep(*args):
    done = CliRunner().invoke(cli_with_commands(), ["--workspace", str(ws), *args])
    return {"code": done.exit_code, "out": done.stdout, "err": done.stderr}


def files():
    return {str(p.relative_to(ws)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(ws.rglob("*")) if ".live" not in p.parts}


def known():
    w = LocalWorkspace(ws)
    return {"runs": sorted(r.id for r in w.list_runs()), "models": sorted([m.version, m.run_id] for m in w.list_models())}


report = {}
if phase == "setup":
    plugins = get_plugin_manager(plugins=[ToySteps()])
    for _ in range(3):
        run_pipeline(Pipeline([Step("make_table", allow_reuse=False), Step("fit", inputs={"table": "table"}),
                               Step("register_model", inputs={"model": "model"}, params={"model_name": "Toy"})],
                              outputs={"model": "model"}), workspace=ws, plugins=plugins)
    report["known"] = known()
    import sqlite3  # something to repair: a run recorded Running whose process is gone
    conn = sqlite3.connect(ws / "amlstep.db")
    conn.execute("UPDATE runs SET status='Running', lease='999-deadbeef0000', pid=999999999 WHERE run_type='pipeline' "
                 "AND rowid=1")
    conn.commit()
    conn.close()
elif phase == "full":
    hog = mount / "hog"
    try:
        with open(hog, "wb") as f:
            while True:
                f.write(b"x" * 65536)
                f.flush()
    except OSError:
        pass
    report["list"] = amlstep("runs", "list", "--json")
    report["check"] = amlstep("workspace", "check")
    before = files()
    report["repair"] = amlstep("workspace", "check", "--repair")
    report["unchanged"] = files() == before
    with open(ws / "amlstep.db", "r+b") as f:  # now damage it, in place: still no room to rebuild it
        f.write(b"\x5a" * 100)
    report["check_damaged"] = amlstep("workspace", "check")
    before = files()
    report["repair_damaged"] = amlstep("workspace", "check", "--repair")
    report["unchanged_damaged"] = files() == before
    hog.unlink()
    report["repair_after"] = amlstep("workspace", "check", "--repair")
    report["check_after"] = amlstep("workspace", "check")
    report["known"] = known()
elif phase == "read-only":
    report["check"] = amlstep("workspace", "check")
    report["repair"] = amlstep("workspace", "check", "--repair")
print(json.dumps(report))
"""


def _small_disk(tmp_path: Path, *phases: str) -> list[dict]:
    """Run the scenario's phases on a 4 MB tmpfs; ``ro`` between phases remounts it read-only."""
    prefix = _namespace_prefix()
    mount = tmp_path / "small-disk"
    mount.mkdir()
    (tmp_path / "scenario.py").write_text(SMALL_DISK)
    steps = [f"mount -t tmpfs -o size=4m tmpfs {mount}"]
    for phase in phases:
        if phase == "ro":
            steps.append(f"mount -o remount,ro {mount}")
        else:
            steps.append(f"{sys.executable} {tmp_path / 'scenario.py'} {mount} {phase}")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([*prefix, "sh", "-c", " && ".join(steps)], capture_output=True, text=True, cwd=REPO,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_a_full_disk_is_not_damage_and_repair_never_makes_it_worse(tmp_path):
    setup, full = _small_disk(tmp_path, "setup", "full")
    ws = tmp_path / "small-disk" / "ws"
    assert full["list"]["code"] == 0
    check = full["check"]
    assert check["code"] == 1, check  # the dead run recorded Running is a problem; the history is not
    assert "run history: ok (integrity check passed" in check["out"], check["out"]
    assert "damaged" not in check["out"]
    assert "the workspace cannot be written now: no space left on the device holding it (0 bytes free)" in check["out"]
    for key in ("repair", "repair_damaged"):
        refused = full[key]
        assert refused["code"] == 2, refused
        assert refused["err"].startswith(f"Error: cannot repair the workspace {ws} now: no space left on the device "
                                         f"holding it (0 bytes free"), refused["err"]
        assert refused["err"].endswith("; nothing was changed (`amlstep workspace check` shows what is wrong)\n")
    assert full["unchanged"] and full["unchanged_damaged"]
    assert "the run history is damaged (SQLite: file is not a database)" in full["check_damaged"]["out"]
    assert full["repair_after"]["code"] == 0, full["repair_after"]
    assert full["check_after"]["code"] == 0, full["check_after"]
    assert full["known"] == setup["known"], "runs or models were lost, or models lost their source run"


def test_a_read_only_workspace_is_not_damage_and_repair_says_why_it_cannot_start(tmp_path):
    _, read_only = _small_disk(tmp_path, "setup", "ro", "read-only")
    ws = tmp_path / "small-disk" / "ws"
    check = read_only["check"]
    assert check["code"] == 1 and "run history: ok (integrity check passed" in check["out"], check
    assert f"the workspace cannot be written now: it is on a read-only file system ({ws})" in check["out"]
    repair = read_only["repair"]
    assert repair["code"] == 2 and repair["err"] == (
        f"Error: cannot repair the workspace {ws} now: it is on a read-only file system ({ws}); nothing was changed "
        f"(`amlstep workspace check` shows what is wrong)\n"), repair


# -- undecodable rows: check and readers agree ----------------------------------------------------
@pytest.mark.parametrize("column, value, says", [
    ("properties", "not json", "column 'properties' is not JSON ('not json')"),
    ("created_at", "yesterday", "column 'created_at' is not a number ('yesterday')"),
    ("params", "[1, 2]", "column 'params' is JSON but not an object ('[1, 2]')"),
])
def test_check_and_readers_agree_on_a_row_that_does_not_decode(filled, column, value, says):
    run = filled.list_runs()[0]
    conn = sqlite3.connect(filled.db_path)
    conn.execute(f"UPDATE runs SET {column}=? WHERE id=?", (value, run.id))
    conn.commit()
    conn.close()
    for command in (["runs", "list"], ["runs", "show", run.id], ["models", "show", "Toy:1"]):
        result = CliRunner().invoke(make_cli(), ["--workspace", str(filled.path), *command])
        if command[0] == "models" and result.exit_code == 0:
            continue  # the model's lineage may not reach that run
        assert result.exit_code == 2, (command, result.output)
        assert result.stderr == (f"Error: the run history {filled.db_path} holds a row amlstep cannot read (run "
                                 f"{run.id}: {says}); run `amlstep workspace check` to list such rows and `amlstep "
                                 f"workspace check --repair` to mend them (the original is kept)\n"), result.stderr
    checked = invoke(filled.path, "workspace", "check")
    assert checked.exit_code == 1 and f"run {run.id}: {says}: commands that read it fail" in checked.stdout
    repaired = invoke(filled.path, "workspace", "check", "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert f"mended 1 undecodable value(s): run {run.id}: {says}" in repaired.stdout
    assert LocalWorkspace(filled.path).get_run(run.id).status == run.status
    kept = kept_copies(filled.path)
    assert len(kept) == 1
    original = sqlite3.connect(kept[0]).execute(f"SELECT {column} FROM runs WHERE id=?", (run.id,)).fetchone()[0]
    assert original == value, "the original value is kept"


def test_a_metric_that_does_not_decode_is_named(filled):
    run = filled.list_runs(run_type="step")[0]
    conn = sqlite3.connect(filled.db_path)
    conn.execute("INSERT INTO metrics(run_id, name, value, seq, logged_at) VALUES (?, 'rows', '{oops', 1, 0)", (run.id,))
    conn.commit()
    conn.close()
    with pytest.raises(WorkspaceError, match=f"metric 'rows' of run {run.id}: column 'value' is not JSON"):
        LocalWorkspace(filled.path).get_metrics(run.id)
    assert check_workspace(filled.path, repair=True).ok


def test_a_mended_row_is_not_found_again_in_the_kept_copy(filled):
    """A metric whose time is text is mended to 0; the kept copy's original must not count as a row the history
    lacks (or every repair would copy it in again)."""
    run = filled.list_runs(run_type="step")[0]
    conn = sqlite3.connect(filled.db_path)
    conn.execute("INSERT INTO metrics(run_id, name, value, seq, logged_at) VALUES (?, 'late', '1', 0, 'noon')", (run.id,))
    conn.commit()
    conn.close()
    assert check_workspace(filled.path, repair=True).ok
    assert check_workspace(filled.path).findings == []
    assert check_workspace(filled.path, repair=True).ok
    assert LocalWorkspace(filled.path).get_metrics(run.id)["late"] == 1
    count = sqlite3.connect(filled.db_path).execute("SELECT count(*) FROM metrics WHERE name='late'").fetchone()[0]
    assert count == 1


def test_repair_refuses_while_another_process_holds_the_write_lock(filled):
    run = filled.list_runs()[0]
    conn = sqlite3.connect(filled.db_path)
    conn.execute("UPDATE runs SET properties='not json' WHERE id=?", (run.id,))
    conn.commit()
    conn.close()
    holder = subprocess.Popen([sys.executable, "-c", "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], "
                               "isolation_level=None); c.execute('BEGIN IMMEDIATE'); print('held', flush=True); "
                               "time.sleep(60)", str(filled.db_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        files = sorted(p.name for p in filled.path.iterdir())
        result = invoke(filled.path, "workspace", "check", "--repair")
        assert result.exit_code == 2
        assert result.stderr.startswith(f"Error: cannot repair the workspace {filled.path} now: another process holds "
                                        f"the run history's write lock: process {holder.pid} ("), result.stderr
        assert sorted(p.name for p in filled.path.iterdir()) == files
    finally:
        holder.kill()
        holder.wait()
    assert invoke(filled.path, "workspace", "check", "--repair").exit_code == 0


def test_repair_on_a_read_only_workspace_changes_nothing_and_says_why(filled, monkeypatch):
    """The same as on a read-only mount (tested above where namespaces are permitted), everywhere: as root, chmod
    does not stop writes, so the file system's answer is injected."""
    from types import SimpleNamespace

    garbage_header(filled.db_path)
    root = str(filled.path)
    real_access, real_statvfs = os.access, os.statvfs
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if str(path) == root and mode & os.W_OK
                        else real_access(path, mode, **kw))
    monkeypatch.setattr(os, "statvfs", lambda path: SimpleNamespace(f_flag=os.ST_RDONLY) if str(path) == root
                        else real_statvfs(path))
    files = {p.name: p.stat().st_mtime_ns for p in filled.path.iterdir()}
    checked = invoke(filled.path, "workspace", "check")
    assert checked.exit_code == 1
    assert f"the workspace cannot be written now: it is on a read-only file system ({root})" in checked.stdout
    result = invoke(filled.path, "workspace", "check", "--repair")
    assert result.exit_code == 2
    assert result.stderr == (f"Error: cannot repair the workspace {root} now: it is on a read-only file system ({root}); "
                             f"nothing was changed (`amlstep workspace check` shows what is wrong)\n")
    assert {p.name: p.stat().st_mtime_ns for p in filled.path.iterdir()} == files
