"""A child run (one AutoML iteration) recorded in the local run history."""

from __future__ import annotations

from framework.workspace import LocalChildRun


def test_a_child_run_records_metrics_properties_artifacts_and_its_end(workspace):
    parent = workspace.create_run(run_type="step", name="AutoML", experiment="e", status="Running")
    record = workspace.create_run(run_type="child", name="child_0", experiment="e", parent_id=parent.id,
                                  status="Running")
    ended = []
    child = LocalChildRun(workspace, record.id, on_end=lambda run_id, status: ended.append((run_id, status)))
    child.log("accuracy", 0.8)
    child.log_metrics({"AUC_weighted": 0.9})
    child.add_properties({"iteration": 0})
    path = child.write_artifact("outputs/model.pkl", b"pickle")
    child.complete()
    assert workspace.get_metrics(record.id) == {"accuracy": 0.8, "AUC_weighted": 0.9}
    assert workspace.get_run(record.id).properties["iteration"] == 0
    assert path.read_bytes() == b"pickle"
    assert workspace.get_run(record.id).status == "Completed" and ended == [(record.id, "Completed")]
    failing = LocalChildRun(workspace, workspace.create_run(run_type="child", name="child_1", experiment="e",
                                                            parent_id=parent.id, status="Running").id)
    failing.fail("timed out", status="Canceled")
    assert workspace.get_run(failing.id).status == "Canceled" and workspace.get_run(failing.id).error == "timed out"
