"""Failures, resume, Ctrl-C and kill -9: the workspace never lies and never breaks."""

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from framework import LocalWorkspace, Pipeline, PipelineValidationError, Step, run_pipeline

SLOW_PIPELINE = """
from framework import Pipeline, PipelineParameter, Step

pipeline = Pipeline(
    [Step("make_table", params={{"rows": PipelineParameter("rows", 50)}}),
     Step("sleepy", inputs={{"table": "table"}}, params={{"seconds": {seconds}}}),
     Step("fit", inputs={{"table": "doubled"}}),
     Step("register_model", inputs={{"model": "model"}}, params={{"model_name": "Toy"}})],
    experiment="slow", outputs={{"model": "model"}},
)
"""


def _ctrl_c_works() -> None:
    """A shell's background job inherits SIGINT ignored; the CLI under test must get Ctrl-C as a terminal gives it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def amlstep(env, workspace, *args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "framework.cli", "--workspace", str(workspace), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ctrl_c_works, **kwargs)


def check_workspace(path):
    """Invariants that must hold whatever happened to the processes writing the workspace."""
    workspace = LocalWorkspace(path)
    conn = sqlite3.connect(workspace.db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    runs = workspace.list_runs(run_type=None)
    for run in runs:
        assert run.status != "Running", f"run {run.id} still shows Running after its process died"
        if run.status == "Completed":
            for output in run.outputs.values():
                assert (workspace.path / output["path"]).exists() if isinstance(output, dict) \
                    else (workspace.path / output).exists()
    for pipeline_run in workspace.list_runs():
        if pipeline_run.status == "Completed":
            steps = workspace.get_children(pipeline_run.id)
            assert [s.status for s in steps] == ["Completed"] * len(pipeline_run.properties["steps"])
    versions = [m.version for m in workspace.list_models()]
    assert versions == list(range(1, len(versions) + 1))
    for model in workspace.list_models():
        assert all((model.path / f).is_file() for f in model.files)
    assert not any((workspace.path / ".staging").iterdir())
    return workspace


def test_resume_continues_from_the_failure(toy_plugins, workspace, tmp_path):
    marker = tmp_path / "marker"
    pipeline = Pipeline([Step("make_table", allow_reuse=False), Step("flaky", inputs={"table": "table"},
                                                                     params={"marker": str(marker)})])
    failed = run_pipeline(pipeline, workspace=workspace, plugins=toy_plugins)
    assert failed.status == "Failed" and "marker" in failed.error
    marker.write_text("now it works")
    resumed = run_pipeline(pipeline, workspace=workspace, plugins=toy_plugins, resume=failed.run_id)
    assert resumed.status == "Completed"
    assert [s.reused for s in resumed.steps] == [True, False]
    assert resumed.steps[0].reasons == [f"completed in resumed run {failed.run_id}"]
    assert resumed.steps[0].reused_from == failed.steps[0].run_id
    assert workspace.get_run(resumed.run_id).properties["resumed_from"] == failed.run_id
    with pytest.raises(PipelineValidationError, match=f"run {resumed.run_id} is Completed; only a Failed or Canceled"):
        run_pipeline(pipeline, workspace=workspace, plugins=toy_plugins, resume=resumed.run_id)


def test_resume_refuses_another_pipeline_or_new_parameters(toy_plugins, workspace, tmp_path):
    pipeline = Pipeline([Step("make_table"), Step("flaky", inputs={"table": "table"},
                                                  params={"marker": str(tmp_path / "none")})])
    failed = run_pipeline(pipeline, workspace=workspace, plugins=toy_plugins)
    with pytest.raises(PipelineValidationError, match="ran another pipeline"):
        run_pipeline(Pipeline([Step("make_table")]), workspace=workspace, plugins=toy_plugins, resume=failed.run_id)
    with pytest.raises(PipelineValidationError, match="do not pass --param with it"):
        run_pipeline(pipeline, workspace=workspace, plugins=toy_plugins, resume=failed.run_id, params={"x": "1"})


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_marks_the_run_canceled(toy_env, tmp_path, sig):
    (tmp_path / "slow.py").write_text(SLOW_PIPELINE.format(seconds=30))
    process = amlstep(toy_env, tmp_path / "ws", "run", str(tmp_path / "slow.py"), "--json")
    workspace, running = None, []
    deadline = time.time() + 180
    while time.time() < deadline and not running:
        time.sleep(0.2)
        if (tmp_path / "ws" / "amlstep.db").exists():
            workspace = LocalWorkspace(tmp_path / "ws")
            running = [r for r in workspace.list_runs(run_type="step") if r.name == "sleepy" and r.status == "Running"]
    assert running, "the sleepy step never started"
    process.send_signal(sig)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 1, err
    assert "was canceled" in err
    run = workspace.list_runs()[0]
    assert run.status == "Canceled"
    steps = {s.name: s.status for s in workspace.get_children(run.id)}
    assert steps == {"make_table": "Completed", "sleepy": "Canceled"}
    check_workspace(tmp_path / "ws")


def test_kill_9_at_random_points_never_corrupts_the_workspace(toy_env, tmp_path):
    (tmp_path / "slow.py").write_text(SLOW_PIPELINE.format(seconds=0.4))
    ws = tmp_path / "ws"
    rng = random.Random(7)
    for _ in range(6):
        process = amlstep(toy_env, ws, "run", str(tmp_path / "slow.py"), "--json", "--no-reuse")
        time.sleep(rng.uniform(0.2, 2.0))
        process.kill()
        process.communicate()
        check_workspace(ws)
    finished = amlstep(toy_env, ws, "run", str(tmp_path / "slow.py"), "--json")
    out, err = finished.communicate(timeout=60)
    assert finished.returncode == 0, err
    assert json.loads(out)["status"] == "Completed"
    workspace = check_workspace(ws)
    assert workspace.list_runs()[0].status == "Completed"
