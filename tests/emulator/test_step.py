"""The pipeline's automl step runs through the same code path as Experiment.submit."""

import json

import pandas as pd
import pytest

from conftest import FAST_AUTOML, REPO
from framework import load_pipeline, run_pipeline


@pytest.mark.slow
def test_step_records_children_artifacts_and_outputs(plugins, titanic_workspace):
    result = run_pipeline(load_pipeline(REPO / "examples" / "titanic" / "pipeline.py"), workspace=titanic_workspace,
                          plugins=plugins, params=FAST_AUTOML)
    assert result.succeeded, result.error
    ws = titanic_workspace
    step = ws.get_run(result.step("AutoML_Classification").run_id)
    children = ws.get_children(step.id)
    assert [c.properties["iteration"] for c in children] == ["0", "1", "2"]
    assert children[-1].properties["run_algorithm"] == "VotingEnsemble"
    assert {"confusion_matrix", "accuracy_table"} <= set(ws.list_artifacts(children[0].id))
    assert "outputs/model.pkl" in ws.list_artifacts(step.properties["best_child_run_id"])
    with open(result.outputs["metrics_output"]) as f:
        metrics = pd.DataFrame(json.load(f))
    assert sorted(metrics.columns) == sorted(c.id for c in children)
    assert step.properties["unhonoured_settings"] == []
