import io
import json
import re

import pandas as pd
import pytest

from framework import Pipeline, PipelineParameter, Step, get_run, run_pipeline


def chain(**kwargs):
    return Pipeline([Step("make_table", params={"rows": PipelineParameter("rows", 4)}),
                     Step("fit", inputs={"table": "table"}), Step("score", inputs={"model": "model"})],
                    experiment="toys", outputs={"final": "metrics", "table_out": "table"}, **kwargs)


def test_steps_run_in_order_and_outputs_land_in_the_datastore(toy_plugins, workspace, recorder):
    result = run_pipeline(chain(), workspace=workspace, plugins=toy_plugins)
    assert result.status == "Completed"
    assert [s.name for s in result.steps] == ["make_table", "fit", "score"]
    assert json.loads(open(result.outputs["final"]).read()) == {"score": 0.5}
    assert pd.read_csv(f"{result.outputs['table_out']}/table.csv").shape == (4, 2)
    assert str(workspace.path) in result.outputs["final"]
    assert recorder.calls == [
        ("before_pipeline_run", "local"),
        ("before_step_run", "make_table"), ("on_step_log", "rows", 4), ("after_step_run", "make_table", False),
        ("before_step_run", "fit"), ("after_step_run", "fit", False),
        ("before_step_run", "score"), ("on_step_log", "score", 0.5), ("after_step_run", "score", False),
        ("after_pipeline_run", "Completed"),
    ]


def test_run_history_records_runs_metrics_params_and_logs(toy_plugins, workspace):
    result = run_pipeline(chain(), workspace=workspace, plugins=toy_plugins, params={"rows": "6"})
    run = get_run(result.run_id, workspace)
    assert run.status == "Completed"
    assert run.record.params == {"rows": 6}
    steps = {s.name: s for s in run.get_children()}
    assert steps["make_table"].get_metrics() == {"rows": 6}
    assert steps["make_table"].record.params == {"rows": 6}
    assert steps["fit"].record.properties["inputs"] == {"table": "table"}
    assert all(s.record.duration is not None for s in steps.values())
    log = workspace.path / steps["make_table"].record.log_path
    assert log.is_file()


def test_step_logs_capture_prints(toy_plugins, workspace):
    pipeline = Pipeline([Step("make_table"), Step("double", inputs={"table": "table"})])
    result = run_pipeline(pipeline, workspace=workspace, plugins=toy_plugins)
    record = workspace.get_run(result.step("double").run_id)
    assert "doubling 4 rows" in (workspace.path / record.log_path).read_text()


class ReaderGone(io.StringIO):
    """A pipe whose reader left after the first write: every later write raises BrokenPipeError."""

    def __init__(self):
        super().__init__()
        self.refused = 0

    def write(self, text):
        if self.getvalue():
            self.refused += 1
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


def test_an_echo_stream_that_closes_fails_no_step_and_the_logs_keep_everything(toy_plugins, workspace, tmp_path):
    """``amlstep run ... 2>&1 | head -1``: echoing stops at the first refused write; the run goes on."""
    from framework.backends.local import capture_output

    echo = ReaderGone()
    pipeline = Pipeline([Step("make_table"), Step("double", inputs={"table": "table"})])
    result = run_pipeline(pipeline, workspace=workspace, plugins=toy_plugins, echo=echo)
    assert result.succeeded, result.error
    assert echo.getvalue().startswith("[make_table] running: ") and echo.refused == 1
    record = workspace.get_run(result.step("double").run_id)
    assert "doubling 4 rows" in (workspace.path / record.log_path).read_text()
    with capture_output(tmp_path / "step.log", echo):  # the reader leaves while a step prints
        print("first")
        print("second")
    assert (tmp_path / "step.log").read_text() == "first\nsecond\n" and echo.refused == 2


def test_unchanged_steps_are_reused_and_say_why(toy_plugins, workspace, recorder):
    first = run_pipeline(chain(), workspace=workspace, plugins=toy_plugins)
    recorder.calls.clear()
    second = run_pipeline(chain(), workspace=workspace, plugins=toy_plugins)
    assert [s.reused for s in second.steps] == [True, True, True]
    assert second.steps[0].reused_from == first.steps[0].run_id
    assert second.steps[0].reasons == [f"reused step run {first.steps[0].run_id[:8]}: code, parameters and inputs unchanged"]
    assert second.outputs == first.outputs
    assert ("after_step_run", "fit", True) in recorder.calls


def test_changed_parameter_reruns_the_step_and_its_dependents(toy_plugins, workspace):
    run_pipeline(chain(), workspace=workspace, plugins=toy_plugins)
    changed = run_pipeline(chain(), workspace=workspace, plugins=toy_plugins, params={"rows": "5"})
    assert [s.reused for s in changed.steps] == [False, False, False]
    assert changed.steps[0].reasons == ["parameter 'rows' changed: 4 -> 5"]
    assert changed.steps[1].reasons == ["input 'table' changed (different content)"]
    assert changed.steps[2].reasons == ["input 'model' changed (different content)"]


def test_a_step_whose_input_content_is_unchanged_is_reused_after_an_upstream_rerun(toy_plugins, workspace):
    run_pipeline(chain(), workspace=workspace, plugins=toy_plugins)
    rerun = run_pipeline(Pipeline([Step("make_table", params={"rows": PipelineParameter("rows", 4)}, allow_reuse=False),
                                   Step("fit", inputs={"table": "table"}), Step("score", inputs={"model": "model"})],
                                  experiment="toys"), workspace=workspace, plugins=toy_plugins)
    assert [s.reused for s in rerun.steps] == [False, True, True]


def test_no_reuse_and_allow_reuse_false_force_a_rerun(toy_plugins, workspace):
    run_pipeline(chain(), workspace=workspace, plugins=toy_plugins)
    forced = run_pipeline(chain(), workspace=workspace, plugins=toy_plugins, reuse=False)
    assert [s.reused for s in forced.steps] == [False, False, False]
    assert forced.steps[0].reasons == ["reuse disabled for this run (--no-reuse)"]
    pinned = Pipeline([Step("make_table", allow_reuse=False)])
    run_pipeline(pinned, workspace=workspace, plugins=toy_plugins)
    again = run_pipeline(pinned, workspace=workspace, plugins=toy_plugins)
    assert again.steps[0].reasons == ["allow_reuse is False for this step"]


def test_failing_step_fails_the_run_and_keeps_earlier_outputs(toy_plugins, workspace, recorder):
    pipeline = Pipeline([Step("make_table"), Step("explode", inputs={"table": "table"}),
                         Step("double", name="after", inputs={"table": "doubled"}, outputs={"doubled": "d2"})])
    result = run_pipeline(pipeline, workspace=workspace, plugins=toy_plugins)
    assert result.status == "Failed"
    assert result.error == "step 'explode' (explode) raised RuntimeError: boom: the table is cursed"
    assert [s.status for s in result.steps] == ["Completed", "Failed", "NotStarted"]
    assert result.steps[2].error == "not run: upstream step 'explode' failed"
    history = workspace.get_run(result.run_id)
    assert history.status == "Failed" and "boom" in history.error
    failed = workspace.get_run(result.steps[1].run_id)
    assert "Traceback" in (workspace.path / failed.log_path).read_text()
    kept = workspace.get_run(result.steps[0].run_id)
    assert all((workspace.path / o["path"]).exists() for o in kept.outputs.values())
    assert ("on_step_error", "explode", "RuntimeError") in recorder.calls
    assert not any((workspace.path / "datastore" / "azureml").glob(f"{result.steps[1].run_id}*"))


@pytest.mark.parametrize("plugin, message", [
    ("forgets", "step 'forgets' did not write its declared output 'doubled' (tabular); return it or write into "
                "context.output_dir('doubled')"),
    ("oversteps", "step 'oversteps' wrote undeclared output 'extra'; declared outputs: doubled"),
])
def test_output_contract_is_enforced(toy_plugins, workspace, plugin, message):
    result = run_pipeline(Pipeline([Step("make_table"), Step(plugin, inputs={"table": "table"})]),
                          workspace=workspace, plugins=toy_plugins)
    assert result.status == "Failed"
    assert result.error == message


def test_missing_dataset_says_how_to_register_it(toy_plugins, workspace):
    from framework import Dataset, WorkspaceError

    pipeline = Pipeline([Step("double", inputs={"table": Dataset("nowhere")})])
    with pytest.raises(WorkspaceError, match=re.escape(
            "dataset 'nowhere' is not registered in workspace")):
        run_pipeline(pipeline, workspace=workspace, plugins=toy_plugins)


def test_dataset_is_registered_from_its_sources_when_missing(toy_plugins, workspace, tmp_path):
    from framework import Dataset

    source = tmp_path / "numbers.csv"
    pd.DataFrame({"x": [1, 2], "y": [0, 1]}).to_csv(source, index=False)
    pipeline = Pipeline([Step("double", inputs={"table": Dataset("numbers", sources=[str(source)])})],
                        outputs={"out": "doubled"})
    result = run_pipeline(pipeline, workspace=workspace, plugins=toy_plugins)
    assert pd.read_csv(f"{result.outputs['out']}/doubled.csv")["x"].tolist() == [2, 4]
    assert workspace.get_dataset("numbers").version == 1


def test_unreachable_sources_tell_an_offline_user_what_to_do(toy_plugins, workspace):
    from framework import Dataset, WorkspaceError

    pipeline = Pipeline([Step("double", inputs={"table": Dataset(
        "remote", sources=["http://127.0.0.1:9/a.csv"], fallback_sources=["http://127.0.0.1:9/b.csv"])})])
    with pytest.raises(WorkspaceError, match=re.escape(
            "Offline? Register a local copy: `amlstep datasets register remote path/to/file.csv`")) as caught:
        run_pipeline(pipeline, workspace=workspace, plugins=toy_plugins)
    assert "http://127.0.0.1:9/b.csv" in str(caught.value)


def test_continue_on_step_failure_runs_independent_steps(toy_plugins, workspace):
    steps = [Step("make_table"), Step("explode", inputs={"table": "table"}),
             Step("fit", inputs={"table": "table"})]
    stopped = run_pipeline(Pipeline(steps), workspace=workspace, plugins=toy_plugins)
    assert [s.status for s in stopped.steps] == ["Completed", "Failed", "NotStarted"]
    assert stopped.steps[2].error == "not run: step 'explode' failed and continue_on_step_failure is off"
    going = run_pipeline(Pipeline(steps, continue_on_step_failure=True), workspace=workspace, plugins=toy_plugins)
    assert [s.status for s in going.steps] == ["Completed", "Failed", "Completed"]
    assert going.status == "Failed"


def test_pipeline_output_download(toy_plugins, workspace, tmp_path):
    result = run_pipeline(chain(), workspace=workspace, plugins=toy_plugins)
    run = get_run(result.run_id, workspace)
    path = run.get_pipeline_output("final").download(tmp_path / "dl")
    assert json.loads(open(path).read()) == {"score": 0.5}
    assert f"azureml/{result.step('score').run_id}/metrics" in path


def test_a_step_of_the_wall_clock_during_a_run_does_not_change_its_durations(workspace, monkeypatch):
    """Durations are measured on a monotonic clock: a 20-minute clock step (NTP, a laptop waking up) mid-run
    used to add 20 minutes to every duration."""
    import time

    from framework import StepSpec, get_plugin_manager, hookimpl
    from framework.steps import Output

    real = time.time

    def clock_jumps():
        monkeypatch.setattr(time, "time", lambda: real() + 1200)
        return {"table": pd.DataFrame({"x": [1]})}

    class Jumps:
        @hookimpl
        def register_steps(self, register):
            register(StepSpec("jumps", clock_jumps, outputs=[Output("table")]))

    result = run_pipeline(Pipeline([Step("jumps")]), workspace=workspace, plugins=get_plugin_manager(plugins=[Jumps()]))
    assert result.status == "Completed"
    assert result.duration < 600 and result.steps[0].duration < 600
    run = get_run(result.run_id, workspace)
    assert run.record.duration < 600, run.record.duration
    assert run.get_children()[0].record.duration < 600
