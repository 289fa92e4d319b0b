"""The live progress observer: quiet without a terminal, a filling leaderboard with one."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from framework import run_pipeline
from framework.cli import make_cli
from framework.progress import ProgressDisplay, progress_for_run

REPO = Path(__file__).resolve().parents[2]
FAST = {"iterations": "3", "experiment_timeout_minutes": "1"}


def recording_console(terminal: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=terminal, width=140, color_system=None if not terminal else "standard",
                   legacy_windows=False), buffer


@pytest.fixture(scope="module")
def terminal_run(tmp_path_factory, titanic_csv):
    from framework import LocalWorkspace

    ws = LocalWorkspace(tmp_path_factory.mktemp("progress-ws"))
    ws.register_dataset("titanic_ds", [str(titanic_csv)])
    console, buffer = recording_console(terminal=True)
    renders: list[str] = []
    with ProgressDisplay(console, workspace=ws, refresh_per_second=20) as display:
        original = display.refresh

        def refresh_and_record() -> None:  # what the screen shows after each event
            with console.capture() as capture:
                console.print(display.render())
            renders.append(capture.get())
            original()

        display.refresh = refresh_and_record  # type: ignore[method-assign]
        result = run_pipeline(REPO / "examples" / "titanic", params=FAST, workspace=ws, echo=display.stream)
    return result, buffer.getvalue(), renders, display


def leaderboard_rows(render: str) -> list[str]:
    table = render.split("AutoML leaderboard", 1)[1].split("│", 1)[0]  # stop at the log tail
    return [line for line in table.splitlines() if line.strip()[:1].isdigit()]


def test_not_a_terminal_means_quiet(workspace, titanic_csv):
    workspace.register_dataset("titanic_ds", [str(titanic_csv)])
    console, buffer = recording_console(terminal=False)
    with ProgressDisplay(console, workspace=workspace) as display:
        assert not display.enabled
        result = run_pipeline(REPO / "examples" / "titanic", params=FAST, workspace=workspace, echo=display.stream)
    assert result.succeeded
    assert buffer.getvalue() == ""


def test_leaderboard_fills_in_iteration_by_iteration(terminal_run):
    result, output, renders, display = terminal_run
    assert result.succeeded
    board = [r for r in renders if "AutoML leaderboard" in r]
    assert len(board) >= 3
    counts = [len(leaderboard_rows(r)) for r in board]
    assert counts[:3] == [1, 2, 3], counts
    assert "iteration 1/3, best AUC_weighted" in board[0]
    assert "LightGBM" in output and "best so far" in output and "★" in output


def test_steps_show_status_and_time(terminal_run):
    _, output, renders, display = terminal_run
    final = renders[-1]
    for step in ("dataprep", "AutoML_Classification", "register_model"):
        line = next(line for line in final.splitlines() if step in line and "Completed" in line)
        assert line.rstrip().split()[-1].endswith("s") or "iteration" in line
    assert any("Running" in r and "dataprep" in r for r in renders)
    assert "Completed" in final.strip().splitlines()[0]


def test_guardrails_are_shown(terminal_run):
    _, output, renders, display = terminal_run
    assert any("Data guardrails" in r and "Missing feature values imputation" in r for r in renders)
    automl = next(iter(display.automl.values()))
    assert [g["type"] for g in automl.guardrails][:3] == [
        "Missing feature values imputation", "High cardinality feature detection", "Validation split handling"]


def test_step_output_goes_to_the_log_not_the_terminal(terminal_run):
    result, output, renders, display = terminal_run
    assert "Prepared 891 rows" not in renders[-1]  # shown as a fading tail only while the step runs
    record = display.workspace.get_run(result.step("dataprep").run_id)
    assert "Prepared 891 rows" in (display.workspace.path / record.log_path).read_text()


def test_progress_for_run_picks_the_mode():
    with progress_for_run(quiet=True) as echo:
        assert echo is None
    console, _ = recording_console(terminal=False)
    import sys

    with progress_for_run(quiet=False, console=console) as echo:
        assert echo is sys.stderr
    console, _ = recording_console(terminal=True)
    with progress_for_run(quiet=False, console=console) as echo:
        assert echo is not None and echo is not sys.stderr


def test_guardrail_lines_are_parsed():
    display = ProgressDisplay(recording_console(terminal=False)[0])
    from framework.progress import AutoMLState, StepState

    display.steps["A"] = StepState("A", "automl", "automl", status="Running", step_run_id="s1")
    display.current_step = "A"
    display.automl["s1"] = AutoMLState("A")
    for line in ["DATA GUARDRAILS:", "", "TYPE:         Class balancing detection", "STATUS:       ALERTED",
                 "DESCRIPTION:  Imbalanced classes were detected in your inputs.", "*" * 80]:
        display.stream.write(line + "\n")
    assert display.automl["s1"].guardrails == [{"type": "Class balancing detection", "status": "ALERTED",
                                                "description": "Imbalanced classes were detected in your inputs.",
                                                "columns": []}]


def test_cli_json_stays_pure_with_a_live_display(workspace, titanic_csv, monkeypatch):
    workspace.register_dataset("titanic_ds", [str(titanic_csv)])
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich treats stderr as a terminal
    result = CliRunner().invoke(make_cli(), ["run", str(REPO / "examples" / "titanic"), "--json",
                                             "-p", "iterations=2"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "Completed"
    assert "AutoML leaderboard" in result.stderr


def test_cli_plain_output_without_a_terminal(workspace, titanic_csv, monkeypatch):
    workspace.register_dataset("titanic_ds", [str(titanic_csv)])
    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    result = CliRunner().invoke(make_cli(), ["run", str(REPO / "examples" / "titanic"), "--json",
                                             "-p", "iterations=2"])
    assert result.exit_code == 0
    assert "AutoML leaderboard" not in result.stderr and "\x1b[" not in result.stderr
    assert "Prepared 891 rows" in result.stderr
    quiet = CliRunner().invoke(make_cli(), ["run", str(REPO / "examples" / "titanic"), "--json", "--quiet",
                                            "-p", "iterations=2"])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    json.loads(quiet.stdout)


# -- fitting the terminal (80x24, 200x50) ---------------------------------------------------------
def _busy_display(console: Console, iterations: int = 30) -> ProgressDisplay:
    """A display in the middle of an AutoML step: 5 guardrails, ``iterations`` children, a log tail."""
    from types import SimpleNamespace

    display = ProgressDisplay(console)
    steps = [SimpleNamespace(name=n, plugin=p) for n, p in
             (("dataprep", "dataprep_titanic"), ("AutoML_Classification", "automl"), ("register_model", "register_model"))]
    display.before_pipeline_run("run-1", SimpleNamespace(experiment="titanic_automl", steps=steps), {}, "local")
    for name, kind in (("dataprep", "python"), ("AutoML_Classification", "automl")):
        binding = SimpleNamespace(name=name, plugin=name, spec=SimpleNamespace(kind=kind),
                                  resolve_params=lambda values: {"primary_metric": "AUC_weighted", "iterations": 40})
        display.before_step_run("run-1", binding, f"step-{name}")
        if kind == "python":
            display.after_step_run("run-1", binding, f"step-{name}", SimpleNamespace(
                status="Completed", duration=1.2, reused=False, reused_from=None))
    lines = ["DATA GUARDRAILS:", ""]
    for check in ("Missing feature values imputation", "High cardinality feature detection",
                  "Validation split handling", "Class balancing detection", "Dropped columns"):
        lines += [f"TYPE:         {check}", "STATUS:       PASSED", "DESCRIPTION:  " + "checked " * 12, "*" * 80, ""]
    lines += [" ITER  PIPELINE                                       DURATION   METRIC     BEST"]
    for line in lines:
        display.stream.write(line + "\n")
    for i in range(iterations):
        score = 0.80 + (0.05 if i == 4 else 0.001 * (i % 7))
        display.after_child_run("run-1", "step-AutoML_Classification", f"child-{i}", "Completed",
                                {"iteration": str(i), "display_name": f"MaxAbsScaler, Model{i}", "fit_time": "0.5",
                                 "primary_metric": "AUC_weighted", "goal": "AUC_weighted_max"},
                                {"AUC_weighted": score})
        display.stream.write(f"{i:>5}  {'MaxAbsScaler, Model' + str(i):<45} 00:00:01   {score:.4f}   0.8500\n")
    display.stream.write("Stopping: experiment timeout of 1 minutes reached\n")
    return display


def _frame(console: Console, display: ProgressDisplay) -> list[str]:
    with console.capture() as capture:
        console.print(display.render())
    return capture.get().rstrip("\n").split("\n")


@pytest.mark.parametrize("width, height", [(80, 24), (200, 50)])
def test_the_live_frame_fits_the_terminal(width, height):
    console = Console(file=io.StringIO(), force_terminal=True, width=width, height=height, color_system=None)
    display = _busy_display(console)
    frame = _frame(console, display)
    assert len(frame) < height, "\n".join(frame)  # rich would cut a taller frame to "..."
    assert all(len(line) <= width for line in frame)
    title = next(line for line in frame if "AutoML leaderboard" in line)
    assert title.rstrip().endswith("(higher is better)")  # one line, not wrapped
    rows = [line for line in frame if "MaxAbsScaler, Model" in line]
    assert any("Model4 ★" in line for line in rows)  # the best row stays in view
    assert "Model29" in rows[-1]  # and the latest one
    tail = [line for line in frame if "│" in line]
    assert tail == ["  │ Stopping: experiment timeout of 1 minutes reached"] or (height == 24 and tail == [])
    assert not any("TYPE:" in line or "ITER  PIPELINE" in line for line in frame)  # not repeated by the tail
    assert len(rows) == 12
    if height == 50:
        assert sum("PASSED" in line for line in frame) == 5
    else:  # folded into one line to keep the whole leaderboard in view
        assert any("Data guardrails · AutoML_Classification: 5 passed" in line for line in frame)


def test_the_final_frame_shows_the_whole_leaderboard_sorted():
    console = Console(file=io.StringIO(), force_terminal=True, width=80, height=24, color_system=None)
    display = _busy_display(console)
    display.final = True
    frame = _frame(console, display)
    rows = [line for line in frame if "MaxAbsScaler, Model" in line]
    assert len(rows) == 12 and "Model4 ★" in rows[0]  # the best first, then by score
    assert any("18 more iterations" in line for line in frame)
    assert sum("PASSED" in line for line in frame) == 5


def test_a_live_run_on_a_small_terminal_ends_with_the_whole_frame():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=80, height=24, color_system=None)
    with _busy_display(console) as display:
        display.refresh()
    last = buffer.getvalue().rsplit("● titanic_automl", 1)[1]  # the last frame rich printed
    assert "..." not in last.splitlines()[-1] and "18 more iterations" in last
    assert sum("MaxAbsScaler, Model" in line for line in last.splitlines()) == 12


def test_ctrl_c_leaves_no_step_running_in_the_last_frame(workspace):
    """Ctrl-C during a step: the last frame shows it Canceled (not "Running") and the steps after it not started."""
    from framework import Input, Output, Pipeline, RunCanceled, Step, StepSpec, get_plugin_manager, hookimpl
    from tests.toy_steps import ToySteps

    def interrupted(table):
        raise KeyboardInterrupt

    class Interrupting:
        @hookimpl
        def register_steps(self, register):
            register(StepSpec("interrupted", interrupted, inputs=[Input("table")], outputs=[Output("doubled")]))

    plugins = get_plugin_manager(plugins=[ToySteps(), Interrupting()])
    pipeline = Pipeline([Step("make_table"), Step("interrupted", inputs={"table": "table"}),
                         Step("double", inputs={"table": "doubled"}, outputs={"doubled": "again"})], experiment="toys")
    console, buffer = recording_console(terminal=True)
    with pytest.raises(RunCanceled):
        with ProgressDisplay(console, workspace=workspace) as display:
            run_pipeline(pipeline, workspace=workspace, plugins=plugins, echo=display.stream)
    with console.capture() as capture:
        console.print(display.render())
    final = re.sub(r"\x1b\[[0-9;]*m", "", capture.get())
    assert "Running" not in final, final
    assert next(line for line in final.splitlines() if "interrupted" in line).split()[2] == "Canceled"
    assert next(line for line in final.splitlines() if "double" in line).split()[2] == "NotStarted"
    assert display.status == "Canceled"
