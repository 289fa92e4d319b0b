"""amlstep report: a self-contained HTML page, checked as data and in a real headless browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from framework import AutoMLStep, Dataset, Pipeline, Step, get_plugin_manager, hookimpl, run_pipeline
from framework.commands.report import build_report
from framework.commands.report_graph import graph_summary
from framework.reporting import Card, Lineage, ReportSection, escape

from tests.toy_steps import ToySteps

REPO = Path(__file__).resolve().parents[3]
FAST = {"iterations": "3", "experiment_timeout_minutes": "1"}
CLASSIFICATION_PLOTS = ["roc", "precision_recall", "confusion_matrix", "calibration", "feature_importance"]


def test_report_holds_every_section(titanic_html, titanic_run):
    _, result = titanic_run
    html = titanic_html
    for section in ("summary", "graph", "steps", "parameters", "guardrails", "leaderboard", "best-model",
                    "outputs", "logs"):
        assert f"id='{section}'" in html, section
    for plot in ["leaderboard", *CLASSIFICATION_PLOTS]:
        assert f"id='plot-{plot}'" in html, plot
    assert html.count("data:image/png;base64,") == 6
    assert result.run_id in html
    assert "AUC_weighted" in html and "Missing feature values imputation" in html
    assert "TitanicSurvivalInitial:1" in html
    assert "out-of-fold metric" in html


def test_report_is_self_contained(titanic_html):
    assert "<script" not in titanic_html
    assert not re.search(r"""(src|href)=['"]?https?:""", titanic_html)
    assert "@import" not in titanic_html and "url(http" not in titanic_html


def test_graph_follows_the_recorded_bindings(titanic_run):
    ws, result = titanic_run
    graph = graph_summary(Lineage(ws, result.run_id))
    labels = {n["key"]: n["label"] for n in graph["nodes"]}
    edges = {(labels[a], labels[b], data) for a, b, data in graph["edges"]}
    assert edges == {("titanic_ds", "dataprep", "titanic_ds"),
                     ("dataprep", "AutoML_Classification", "prepped_data"),
                     ("AutoML_Classification", "register_model", "best_model_data")}
    columns = {n["label"]: n["column"] for n in graph["nodes"]}
    assert columns == {"titanic_ds": 0, "dataprep": 1, "AutoML_Classification": 2, "register_model": 3}


def test_reused_steps_carry_a_badge_and_keep_their_leaderboard(titanic_run):
    ws, first = titanic_run
    again = run_pipeline(REPO / "examples" / "titanic", params=FAST, workspace=ws)
    assert [s.reused for s in again.steps] == [True, True, False]
    html = build_report(ws, again.run_id)
    assert html.count("class=\"badge-reused\"") == 2
    assert "reused from step run" in html
    assert "id='plot-roc'" in html
    board = html.split("id='leaderboard'")[1].split("</table>")[0]
    assert board.count("<tr") == 4  # header + 3 iterations of the earlier run


def test_failed_run_report_shows_the_error_and_the_unrun_step(workspace, titanic_csv):
    workspace.register_dataset("titanic_ds", [str(titanic_csv)])
    pipeline = Pipeline(experiment="broken", steps=[
        Step("dataprep_titanic", name="dataprep", inputs={"titanic_ds": Dataset("titanic_ds")},
             params={"seed": 1}),
        AutoMLStep(name="AutoML", training_data="prepped_data", task="classification",
                   label_column_name="NoSuchColumn", iterations=1),
    ])
    result = run_pipeline(pipeline, workspace=workspace)
    assert result.status == "Failed"
    html = build_report(workspace, result.run_id)
    assert "label column &#x27;NoSuchColumn&#x27; is not in the training data" in html
    assert 'data-status="Failed"' in html
    graph = graph_summary(Lineage(workspace, result.run_id))
    assert len(graph["edges"]) == 2
    assert "Plots unavailable" not in html and "did not complete" in html


def test_a_step_that_never_started_is_said_so_and_counts_are_singular(workspace, tmp_path):
    """The AutoML step after a failed preparation never started: no "label None", no empty leaderboard; and
    one parameter is "1 parameter set"."""
    (tmp_path / "no_age.csv").write_text("Survived,Sex,Fare,Embarked\n0,male,7.25,S\n1,female,71.3,C\n")
    workspace.register_dataset("titanic_ds", [str(tmp_path / "no_age.csv")])
    pipeline = Pipeline(experiment="broken", steps=[
        Step("dataprep_titanic", name="dataprep", inputs={"titanic_ds": Dataset("titanic_ds")}, params={"seed": 1}),
        AutoMLStep(name="AutoML", training_data="prepped_data", task="classification", label_column_name="Survived",
                   iterations=1),
    ])
    result = run_pipeline(pipeline, workspace=workspace)
    assert [s.status for s in result.steps] == ["Failed", "NotStarted"]
    html = build_report(workspace, result.run_id)
    section = html.split("id='automl-AutoML'")[1].split("</section>")[0]
    assert "label None" not in section and "<b>None</b>" not in section
    assert "This step did not start: not run: upstream step &#x27;dataprep&#x27; failed" in section
    assert "dataprep: 1 parameter set</summary>" in html


def test_report_command_writes_the_file(cli, titanic_run, tmp_path, monkeypatch):
    ws, result = titanic_run
    monkeypatch.chdir(tmp_path)
    run = cli(ws, "report", result.run_id[:8], "--no-plots")
    assert run.exit_code == 0, run.output
    written = tmp_path / f"report-{result.run_id[:8]}.html"
    assert written.is_file() and f"Wrote report-{result.run_id[:8]}.html" in run.output
    assert "--no-plots" in written.read_text()
    missing = cli(ws, "report", "nosuchrun")
    assert missing.exit_code == 2 and "run 'nosuchrun' does not exist" in missing.stderr


# -- issue 24: the page lands whole, or the old one stays ------------------------------------------------
@pytest.fixture
def toy_report(workspace, tmp_path):
    """(invoke, run id): a completed toy run, and the CLI that reports on it."""
    from click.testing import CliRunner

    from tests.framework.commands.conftest import cli_with_commands

    plugins = get_plugin_manager(plugins=[ToySteps(), _BigSection()])
    result = run_pipeline(Pipeline([Step("make_table"), Step("fit", inputs={"table": "table"})], experiment="toy"),
                          workspace=workspace, plugins=plugins)
    assert result.succeeded, result.error

    def invoke(*args):
        return CliRunner().invoke(cli_with_commands(plugins), ["--workspace", str(workspace.path), *args])

    return invoke, result.run_id


class _BigSection:
    """A 1 MB section: a page far larger than the workspace's own files (the file-size limit below spares them)."""

    @hookimpl
    def report_section(self, lineage, step, plots, progress):
        if step.properties.get("plugin") != "fit":
            return None
        return ReportSection("<section id='big'><pre>" + "x" * 1_000_000 + "</pre></section>", [])


def test_report_out_on_a_file_system_that_refuses_more_bytes_keeps_the_old_page(toy_report, tmp_path):
    """report -o wrote in place: a full disk left a truncated page and a traceback, the complete page lost.

    The file-size limit (RLIMIT_FSIZE) makes the kernel refuse the write part-way, as a full disk does."""
    import resource
    import signal

    invoke, run_id = toy_report
    out = tmp_path / "reports" / "page.html"
    assert invoke("report", run_id, "-o", str(out)).exit_code == 0
    page = out.read_bytes()
    limit = len(page) // 2
    previous = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, previous[1]))
    try:
        result = invoke("report", run_id, "-o", str(out))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, previous)
        signal.signal(signal.SIGXFSZ, handler)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"Error: cannot write the report to {out}: File too large; {out} is unchanged\n"
    assert out.read_bytes() == page
    assert sorted(p.name for p in out.parent.iterdir()) == ["page.html"]


def test_report_out_dev_full_is_one_line(toy_report):
    invoke, run_id = toy_report
    result = invoke("report", run_id, "-o", "/dev/full")
    assert result.exit_code == 2, result.output
    assert result.stderr == "Error: cannot write the report to /dev/full: no space left on the device\n"
    assert Path("/dev/full").is_char_device()


# -- in a real browser --------------------------------------------------------------------------
def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def browser(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    binary = chromium()
    if binary is None:
        if os.environ.get("AMLSTEP_REQUIRE_BROWSER"):
            pytest.fail("AMLSTEP_REQUIRE_BROWSER is set but no chromium is installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium); set AMLSTEP_REQUIRE_BROWSER to require it")
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
               f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_report_renders_in_headless_chromium(titanic_html, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(titanic_html)
    shot = tmp_path / "report.png"
    taken = browser("--window-size=1300,3600", f"--screenshot={shot}", page.as_uri(), profile=tmp_path / "profile")
    assert shot.is_file(), taken.stderr[-2000:]
    from matplotlib.image import imread

    pixels = imread(shot)[..., :3]
    assert pixels.shape[0] >= 3000 and pixels.shape[1] >= 1200
    not_white = (pixels.mean(axis=2) < 0.94).mean()
    assert 0.05 < not_white < 0.9, f"screenshot looks blank or broken ({not_white:.1%} non-white pixels)"
    assert len(set(map(tuple, (pixels[::7, ::7] * 255).astype(int).reshape(-1, 3).tolist()))) > 200

    dom = browser("--dump-dom", page.as_uri(), profile=tmp_path / "profile").stdout
    for section in ("graph", "steps", "parameters", "guardrails", "leaderboard", "best-model", "logs"):
        assert f'id="{section}"' in dom, section
    assert dom.count('class="node step"') == 3
    assert dom.count("<img") == 6
    if os.environ.get("AMLSTEP_REPORT_SCREENSHOT"):
        shutil.copy(shot, os.environ["AMLSTEP_REPORT_SCREENSHOT"])


# -- sections come from plugins (the report_section hook) ------------------------------------------------
class ToyModelSection:
    """A third-party step kind's section: the toy ``fit`` step's model, with a summary card."""

    @hookimpl
    def report_section(self, lineage, step, plots, progress):
        if step.properties.get("plugin") != "fit":
            return None
        return ReportSection(f"<section id='toy-{escape(step.name)}'><h2>Toy model · {escape(step.name)}</h2>"
                             f"<p>plots {'on' if plots else 'off'}</p></section>", [Card("Toy mean", "42", "of x")])


def test_a_plugin_adds_a_section_and_a_card_for_its_own_steps(workspace):
    plugins = get_plugin_manager(plugins=[ToySteps(), ToyModelSection()])
    pipeline = Pipeline(experiment="toy", steps=[Step("make_table"), Step("fit", inputs={"table": "table"})])
    result = run_pipeline(pipeline, workspace=workspace, plugins=plugins)
    assert result.succeeded, result.error
    html = build_report(workspace, result.run_id, plugins=plugins, plots=False)
    assert html.count("<section id='toy-") == 1 and "plots off" in html
    assert html.index("id='parameters'") < html.index("id='toy-fit'") < html.index("id='outputs'")
    cards = html.split("id='summary'")[1].split("</div></div></div>")[0]
    assert "<div class='k'>Toy mean</div><div class='v'>42</div><div class='s'>of x</div>" in html
    assert cards.index("Steps") < cards.index("Toy mean")


def test_without_the_automl_plugin_the_page_has_no_automl_section(titanic_run):
    ws, result = titanic_run
    html = build_report(ws, result.run_id, plugins=get_plugin_manager(entry_points=False))
    for section in ("summary", "graph", "steps", "parameters", "outputs", "logs"):
        assert f"id='{section}'" in html, section
    assert "id='leaderboard'" not in html and "data:image/png" not in html
