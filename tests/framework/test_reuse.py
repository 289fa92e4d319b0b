"""The reuse rule: when a step is reused, and the reason given when it is not (run and explain-reuse alike)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from framework import Dataset, Pipeline, PipelineParameter, Step, get_plugin_manager, run_pipeline
from framework import reuse as reuse_rule


def chain(experiment: str = "toys", rows: int = 4) -> Pipeline:
    return Pipeline([Step("make_table", params={"rows": PipelineParameter("rows", rows)}),
                     Step("fit", inputs={"table": "table"}), Step("score", inputs={"model": "model"})],
                    experiment=experiment)


def explained(pipeline, plugins, workspace, **kwargs):
    return {e["step"]: e for e in reuse_rule.predict(pipeline.validate(plugins), workspace, **kwargs)}


def output_path(workspace, result, step: str) -> Path:
    record = workspace.get_run(result.step(step).run_id)
    return workspace.path / next(iter(record.outputs.values()))["path"]


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_changed_or_missing_output_is_not_reused(toy_plugins, workspace, damage):
    first = run_pipeline(chain(), workspace=workspace, plugins=toy_plugins)
    table = output_path(workspace, first, "make_table")
    if damage == "truncate":
        (table / "table.csv").write_bytes(b"")  # `: > datastore/azureml/<step run>/table/table.csv`
    else:
        shutil.rmtree(table)
    said = explained(chain(), toy_plugins, workspace)["make_table"]
    assert said["would_reuse"] is False
    assert said["reasons"][0].startswith(f"earlier output changed on disk: 'table' of step run "
                                         f"{first.step('make_table').run_id[:8]} is ")
    second = run_pipeline(chain(), workspace=workspace, plugins=toy_plugins)
    assert second.succeeded
    assert not second.step("make_table").reused
    assert second.step("make_table").reasons == said["reasons"]
    # it wrote the same content again, so the next step's input is unchanged and it is reused
    assert second.step("fit").reused
    assert pd.read_csv(output_path(workspace, second, "make_table") / "table.csv").shape == (4, 2)


def test_the_first_run_of_a_pipeline_is_not_compared_with_another_pipelines_run(toy_plugins, workspace):
    run_pipeline(chain("one", rows=4), workspace=workspace, plugins=toy_plugins)
    said = explained(chain("two", rows=5), toy_plugins, workspace)
    assert said["make_table"]["reasons"] == ["no earlier run of this step in this pipeline"]
    second = run_pipeline(chain("two", rows=5), workspace=workspace, plugins=toy_plugins)
    assert second.step("make_table").reasons == ["no earlier run of this step in this pipeline"]
    # reuse itself still works across pipelines, as on Azure: same code, parameters and inputs
    third = run_pipeline(chain("three", rows=4), workspace=workspace, plugins=toy_plugins)
    assert third.step("make_table").reused


def test_after_a_failed_run_the_reason_is_the_failure(toy_plugins, workspace, tmp_path):
    pipeline = Pipeline([Step("make_table"), Step("flaky", inputs={"table": "table"},
                                                  params={"marker": str(tmp_path / "marker")})], experiment="flaky")
    failed = run_pipeline(pipeline, workspace=workspace, plugins=toy_plugins)
    assert failed.status == "Failed"
    step_run = failed.step("flaky").run_id
    expected = [f"the earlier run of this step with the same code, parameters and inputs (step run {step_run[:8]}) "
                f"failed, so there is nothing to reuse"]
    assert explained(pipeline, toy_plugins, workspace)["flaky"]["reasons"] == expected
    again = run_pipeline(pipeline, workspace=workspace, plugins=toy_plugins)
    assert again.step("flaky").reasons == expected


PLUGIN = '''
from framework import Input, Output, StepSpec, hookimpl


def prep(raw):
    return {"clean": raw.dropna()}


@hookimpl
def register_steps(register):
    register(StepSpec("reuse_prep", prep, inputs=[Input("raw")], outputs=[Output("clean")]))
'''


def test_a_comment_only_edit_upstream_says_downstream_re_runs_unless_the_output_is_unchanged(
        plugin_distribution, workspace, tmp_path):
    from tests.toy_steps import ToySteps

    root = plugin_distribution("amlstep-reuse-demo", "reuse_demo", PLUGIN)
    plugins = get_plugin_manager(plugins=[ToySteps()])
    data = tmp_path / "raw.csv"
    pd.DataFrame({"a": [1, 2, None, 4], "b": [1, 0, 1, 0]}).to_csv(data, index=False)
    workspace.register_dataset("reuse_ds", [str(data)])
    pipeline = Pipeline([Step("reuse_prep", inputs={"raw": Dataset("reuse_ds")}),
                         Step("double", inputs={"table": "clean"})], experiment="reuse_demo")
    first = run_pipeline(pipeline, workspace=workspace, plugins=plugins)
    module = root / "reuse_demo.py"
    module.write_text(module.read_text() + "\n# a comment: the code hash changes, the output does not\n")
    reuse_rule._hash_paths.cache_clear()

    said = explained(pipeline, plugins, workspace)
    assert said["reuse_prep"]["would_reuse"] is False
    assert said["reuse_prep"]["reasons"] == ["code changed (the plugin's source is different)"]
    assert said["double"]["would_reuse"] is None  # "maybe"
    assert said["double"]["reasons"] == [
        f"re-runs unless the output of 'reuse_prep' is unchanged (then it reuses step run "
        f"{first.step('double').run_id[:8]}: code and parameters unchanged)"]
    second = run_pipeline(pipeline, workspace=workspace, plugins=plugins)
    assert [s.reused for s in second.steps] == [False, True]
    assert second.step("double").reused_from == said["double"]["reused_from"]
