"""The execution engine, below any API: submission checks, the reuse rule, failures as Azure reports them."""

from __future__ import annotations

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
