"""The execution engine, below any API: submission checks, the reuse rule, failures as Azure reports them."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.azure_service.blobstore import BlobStore
from emulator.azure_service.compute import Compute
from emulator.azure_service.engine import (ComputeTarget, Engine, InputBinding, OutputSpec, PipelineJob, PipelineState,
                                           ServiceError, StepJob, user_error)


@pytest.fixture
def engine(tmp_path):
    made = Engine(tmp_path, BlobStore(tmp_path / "blobs", "acct"), Compute(tmp_path / "cache"),
                  datastores={"workspaceblobstore": "store"}, runtime_env=lambda record: {}, execute=False)
    made.computes["cpu-cluster"] = ComputeTarget("cpu-cluster", "STANDARD_D2_V2")
    return made


def job(*steps):
    return PipelineJob(experiment="e", steps=list(steps))


def step(node, compute="cpu-cluster", identity="module-1", inputs=None, allow_reuse=True):
    return StepJob(node_id=node, name=node, kind="command", compute=compute, allow_reuse=allow_reuse,
                   identity=identity, inputs=inputs or {},
                   outputs={"out": OutputSpec("out", "workspaceblobstore", "azureml/{run-id}/{output-name}")})


def test_a_step_on_a_compute_that_does_not_exist_is_refused_at_submission(engine):
    with pytest.raises(ServiceError, match="Compute target 'ghost' of step 'prep' was not found in the workspace; "
                                           "existing compute targets: cpu-cluster"):
        engine.submit(job(step("prep", compute="ghost")))


def test_reuse_needs_the_same_module_the_same_inputs_and_allow_reuse(engine):
    def run(*steps):
        record = engine.submit(job(*steps))
        engine.start(record.id)
        assert engine.wait(record.id) == "Completed"
        return {r.name: r for r in engine.children(record.id)}

    upstream = {"data": InputBinding("data", producer=("prep", "out"))}
    first = run(step("prep"), step("train", inputs=upstream))
    second = run(step("prep"), step("train", inputs=upstream))
    assert second["prep"].reused_from == first["prep"].id and second["train"].reused_from == first["train"].id
    assert second["prep"].outputs == first["prep"].outputs
    third = run(step("prep", identity="module-2"), step("train", inputs=upstream))
    assert third["prep"].reused_from is None                  # changed module
    assert third["train"].reused_from is None                 # same module, new input data
    fourth = run(step("prep", allow_reuse=False))
    assert fourth["prep"].reused_from is None


@pytest.mark.parametrize("output, expected", [
    ("Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: bad value\n",
     "User program failed with ValueError: bad value"),
    ("Traceback (most recent call last):\n  File \"x.py\"\nazureml.exceptions.UserErrorException: first line\n"
     "{\n  \"error\": {}\n}\n", "User program failed with UserErrorException: first line"),
    ("Traceback (most recent call last):\n  File \"x.py\"\nKeyboardInterrupt\n", "User program failed with KeyboardInterrupt"),
    ("nothing useful\n", "User program exited with code 3 (script x.py)"),
])
def test_a_failed_script_is_reported_by_its_exception_line(output, expected):
    assert user_error(output, 3, "x.py") == expected


def test_pipeline_state_is_what_the_api_reads(engine):
    record = engine.submit(job(step("prep")))
    assert isinstance(engine.pipelines[record.id], PipelineState) and record.status == "NotStarted"


def test_other_kinds_of_steps_run_by_the_runner_given_for_their_kind(tmp_path):
    ran = []

    def runner(engine, state, step, step_run):
        ran.append((step.name, step_run.parent_id == state.run_id))

    made = Engine(tmp_path, BlobStore(tmp_path / "blobs", "acct"), Compute(tmp_path / "cache"),
                  datastores={"workspaceblobstore": "store"}, runtime_env=lambda record: {}, runners={"automl": runner})
    made.computes["cpu-cluster"] = ComputeTarget("cpu-cluster", "STANDARD_D2_V2")
    automl = StepJob(node_id="train", name="train", kind="automl", compute="cpu-cluster", allow_reuse=False,
                     identity="automl-1")
    sweep = StepJob(node_id="tune", name="tune", kind="sweep", compute="cpu-cluster", allow_reuse=False,
                    identity="sweep-1")
    first = made.submit(job(automl))
    made.start(first.id)
    assert made.wait(first.id, 60) == "Completed" and ran == [("train", True)]
    second = made.submit(job(sweep))
    made.start(second.id)
    assert made.wait(second.id, 60) == "Failed"
    assert made.children(second.id)[0].error == {"code": "SystemError",
                                                 "message": "the fake service cannot run sweep steps"}


def test_a_canceled_step_process_is_killed_with_its_children(tmp_path):
    """The step runs in a process group of its own: a cancel kills the command and what it started."""
    import sys
    import threading
    import time

    from emulator.azure_service.compute import StepProcess

    stop = threading.Event()
    pids = tmp_path / "pids"
    process = StepProcess(python=Path(sys.executable), script="", argv=[], env={}, cwd=tmp_path,
                          home=tmp_path / "home", shell=f"sleep 600 & echo $$ $! > {pids}; wait", stop=stop)
    done: list = []
    runner = threading.Thread(target=lambda: done.append(process.run()))
    runner.start()
    deadline = time.monotonic() + 60
    while not (pids.exists() and pids.read_text().strip()):
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    stop.set()
    runner.join(60)
    assert done and done[0][0] == -9 and "The run was canceled; its process was stopped" in done[0][1]
    for pid in map(int, pids.read_text().split()):
        assert _stopped(pid), pid


def _stopped(pid: int) -> bool:
    """Whether process ``pid`` is gone or a zombie (killed, not yet reaped by its parent: here PID 1, when it gets
    to it), waiting up to 60 s for the kill to land."""
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_stopping_the_service_cancels_the_pipelines_still_running(tmp_path):
    """Ctrl-C of `amlstep fake-azure` reaches no step process (each has its process group): stopping the service
    cancels what still runs, which stops them."""
    from emulator.azure_service import FakeAzureML
    from emulator.azure_service.engine import StepFailure

    import threading

    started = threading.Event()

    def waits_for_cancel(engine, state, step, step_run):
        started.set()
        state.canceled.wait(300)
        raise StepFailure("UserError", "stopped")

    fake = FakeAzureML(root=tmp_path / "state").start()
    fake.engine.runners["automl"] = waits_for_cancel
    record = fake.engine.submit(job(StepJob(node_id="train", name="train", kind="automl", compute="cpu-cluster",
                                            allow_reuse=False, identity="automl-1")))
    fake.engine.start(record.id)
    assert started.wait(60)
    fake.stop()
    assert fake.engine.run(record.id).status == "Canceled"
    assert [c.status for c in fake.engine.children(record.id)] == ["Canceled"]
