"""A full disk: one clear line, the run recorded Failed with that reason, reads still working.

The real case runs on a small tmpfs mounted in a private mount namespace (``unshare --mount``,
with a user namespace when not root); it is skipped where the machine does not permit that. The
other tests inject ENOSPC into file writes and run everywhere.
"""

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from framework import LocalWorkspace, Pipeline, Step, StepSpec, WorkspaceError, get_plugin_manager, hookimpl, run_pipeline
from framework.steps import Output

REPO = Path(__file__).resolve().parents[3]

SCENARIO = r"""
import json, sys
from pathlib import Path
from click.testing import CliRunner
from framework import Pipeline, Step, StepSpec, WorkspaceError, get_plugin_manager, hookimpl, run_pipeline
from framework.cli import make_cli
from framework.steps import Output

mount, titanic = Path(sys.argv[1]), sys.argv[2]
ws = mount / "ws"
hog = mount / "hog"


def amlstep(*args):
    done = CliRunner().invoke(make_cli(), ["--workspace", str(ws), *args])
    return {"code": done.exit_code, "out": done.stdout, "err": done.stderr}


def fill(table):
    # like a step whose output fills the disk, but the bytes stay where amlstep cannot free them
    with open(hog, "wb") as f:
        while True:
            f.write(b"x" * 65536)
            f.flush()


class Hog:
    @hookimpl
    def register_steps(self, register):
        register(StepSpec("fill", lambda: fill(None), outputs=[Output("table")]))


small = mount / "small.csv"
small.write_text("a,b\n1,2\n3,4\n")
report = {"register_before": amlstep("datasets", "register", "small", str(small))}
plugins = get_plugin_manager(plugins=[Hog()])
try:
    result = run_pipeline(Pipeline([Step("fill")], experiment="full"), workspace=ws, plugins=plugins)
    report["run"] = {"status": result.status, "error": result.error}
except WorkspaceError as exc:
    report["run"] = {"raised": str(exc)}
report["list_while_full"] = amlstep("runs", "list", "--json")
report["register_while_full"] = amlstep("datasets", "register", "big", titanic)
hog.unlink()
report["list_after"] = amlstep("runs", "list", "--json")
report["register_after"] = amlstep("datasets", "register", "big", titanic)
print(json.dumps(report))
"""


def _namespace_prefix():
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare is not installed: cannot mount a small tmpfs to fill")
    prefix = [unshare, "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        prefix[1:1] = ["--user", "--map-root-user"]
    probe = subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"this machine does not permit mounting a tmpfs in a mount namespace: {probe.stderr.decode().strip()}")
    return prefix


def test_a_full_disk_gives_one_line_records_the_reason_and_keeps_reads_working(tmp_path, titanic_csv):
    prefix = _namespace_prefix()
    mount = tmp_path / "small-disk"
    mount.mkdir()
    (tmp_path / "scenario.py").write_text(SCENARIO)
    script = (f"mount -t tmpfs -o size=3m tmpfs {mount} && exec {sys.executable} {tmp_path / 'scenario.py'} "
              f"{mount} {titanic_csv}")
    done = subprocess.run([*prefix, "sh", "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    no_space = f"no space left on the device holding the workspace {mount / 'ws'}"
    assert report["register_before"]["code"] == 0
    run = report["run"]
    assert no_space in run.get("raised", "") or no_space in run.get("error", ""), run
    listed = report["list_while_full"]
    assert listed["code"] == 0 and listed["err"] == "", listed
    full = report["register_while_full"]
    assert full["code"] == 2 and full["err"].startswith(f"Error: {no_space}") and full["err"].count("\n") == 1, full
    after = json.loads(report["list_after"]["out"])
    assert [r["status"] for r in after] == ["Failed"]
    assert no_space in after[0]["error"], after[0]["error"]
    assert report["register_after"]["code"] == 0, report["register_after"]


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_no_space_while_copying_a_dataset_is_one_line_and_registers_nothing(workspace, tmp_path, monkeypatch):
    source = tmp_path / "d.csv"
    source.write_text("a,b\n1,2\n")
    monkeypatch.setattr(shutil, "copyfile", _enospc)
    with pytest.raises(WorkspaceError, match=re.escape(f"no space left on the device holding the workspace {workspace.path}")):
        workspace.register_dataset("d", [str(source)])
    monkeypatch.undo()
    assert workspace.list_datasets() == []
    assert not any((workspace.path / ".staging").iterdir())


class _Full:
    @hookimpl
    def register_steps(self, register):
        def writes(context):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(context.output_dir("table") / "table.csv"))

        register(StepSpec("writes", writes, outputs=[Output("table")]))


def test_a_step_that_runs_out_of_space_fails_with_the_reason(workspace):
    result = run_pipeline(Pipeline([Step("writes")]), workspace=workspace, plugins=get_plugin_manager(plugins=[_Full()]))
    message = f"step 'writes': no space left on the device holding the workspace {workspace.path}"
    assert result.status == "Failed" and result.error.startswith(message), result.error
    assert LocalWorkspace(workspace.path).get_run(result.run_id).error.startswith(message)


@pytest.fixture
def commits_fail(monkeypatch):
    """Every write transaction fails at its commit, as SQLite's does when the disk fills up meanwhile."""
    from contextlib import contextmanager

    from framework.workspace.db import WorkspaceUnwritable, no_space_message

    real = LocalWorkspace._write

    @contextmanager
    def failing(self, timeout=None):
        with real(self, timeout) as conn:
            yield conn
            raise WorkspaceUnwritable(no_space_message(self.path))

    monkeypatch.setattr(LocalWorkspace, "_write", failing)


@pytest.mark.parametrize("what", ["dataset", "model"])
def test_a_commit_that_fails_on_a_full_disk_leaves_no_unrecorded_copy(workspace, tmp_path, commits_fail, what):
    source = tmp_path / "d.csv"
    source.write_text("a,b\n1,2\n")
    with pytest.raises(WorkspaceError, match=re.escape(f"no space left on the device holding the workspace {workspace.path}")):
        if what == "dataset":
            workspace.register_dataset("d", [str(source)])
        else:
            workspace.register_model("m", source)
    folder = workspace.path / f"{what}s"
    assert list(folder.glob("*/*")) == [], "an unrecorded copy was left behind, keeping the disk full"
    assert not any((workspace.path / ".staging").iterdir())
    assert not (workspace.path / "lost+found").exists()
