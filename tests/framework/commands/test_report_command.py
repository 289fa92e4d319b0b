"""amlstep report: a self-contained HTML page, checked as data and in a real headless browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from framework import AutoMLStep, Dataset, Pipeline, Step, run_pipeline
from framework.commands.lineage import Lineage
from framework.commands.report import build_report
from framework.commands.report_graph import graph_summary

REPO = Path(__file__).resolve().parents[3]
FAST = {"iterations": "3", "experiment_timeout_minutes": "1"}
CLASSIFICATION_PLOTS = ["roc", "precision_recall", "confusion_matrix", "calibration", "feature_importance"]


@pytest.fixture(scope="module")
def titanic_html(titanic_run) -> str:
    ws, result = titanic_run
    return build_report(ws, result.run_id)


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


def test_leaderboard_lists_every_iteration_best_first(titanic_html, titanic_run):
    ws, result = titanic_run
    automl = ws.get_run(result.step("AutoML_Classification").run_id)
    best = ws.get_run(automl.properties["best_child_run_id"])
    board = titanic_html.split("id='leaderboard'")[1].split("</table>")[0]
    rows = re.findall(r"<tr( class=\"best\")?><td class=\"num\">(\d+)</td>", board)
    assert [r[1] for r in rows] == ["1", "2", "3"]
    assert rows[0][0], "the best child run is highlighted"
    name = best.display_name or best.properties["display_name"]
    assert name + " ★" in board
    evaluated = titanic_html.split("id='best-model'")[1].split("</p>")[0]
    assert f"{name} (iteration {best.properties['iteration']}): the validation predictions its run kept" in evaluated


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


def test_regression_report_plots_residuals(workspace, titanic_csv):
    workspace.register_dataset("titanic_ds", [str(titanic_csv)])
    pipeline = Pipeline(experiment="fares", steps=[
        AutoMLStep(name="AutoML_Regression", training_data=Dataset("titanic_ds"), task="regression",
                   primary_metric="r2_score", label_column_name="Fare", iterations=2, n_cross_validations=3),
    ])
    result = run_pipeline(pipeline, workspace=workspace)
    assert result.succeeded, result.error
    html = build_report(workspace, result.run_id)
    for plot in ("predicted_vs_true", "residuals", "residual_histogram", "feature_importance"):
        assert f"id='plot-{plot}'" in html
    assert "id='plot-roc'" not in html
    assert "higher is better" in html


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


# -- the best model from the run's kept validation predictions (issue 16) ------------------------------
def _best_metrics(html: str) -> dict[str, tuple[float, float]]:
    """The best-model table: metric -> (all out-of-fold rows, leaderboard mean over folds)."""
    table = html.split("id='best-model'")[1].split("</table>")[0]
    rows = re.findall(r"<tr><td>([\w ()]+)</td><td class=\"num\">([-\d.]+)</td><td class=\"num\">([-\d.]+)</td>", table)
    return {name.replace(" (primary)", ""): (float(a), float(b)) for name, a, b in rows}


@pytest.fixture(scope="module")
def fair_html(sorted_fair_run) -> str:
    """The report of the sorted multi-class run, built while fitting any pipeline or loading the model is an error:
    the charts come from the validation predictions, the importance from the explanation the run kept."""
    from sklearn.pipeline import Pipeline as SkPipeline

    from framework.commands import report_plots

    def refuse(*args, **kwargs):
        raise AssertionError("the report fitted or loaded a model")

    ws, result = sorted_fair_run
    seen = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SkPipeline, "fit", refuse)
        patch.setattr(report_plots, "load_model", refuse)
        html = build_report(ws, result.run_id, progress=lambda what, done, total: seen.append((what, done, total)))
    assert not any(what.startswith(("refitting", "feature importance")) for what, _, _ in seen), seen
    return html


def test_runs_that_kept_no_explanation_get_it_computed_with_progress(sorted_fair_run, monkeypatch):
    from framework.commands import report_plots

    ws, result = sorted_fair_run
    monkeypatch.setattr(report_plots, "kept_explanation", lambda lineage, child_id: None)
    seen = []
    html = build_report(ws, result.run_id, progress=lambda what, done, total: seen.append((what, done, total)))
    assert ("feature importance", 8, 8) in seen  # 8 raw columns
    caption = html.split("id='plot-feature_importance'")[1].split("</figcaption>")[0]
    assert re.search(r"on a random sample of \d+ of the 1500 training rows the model learned from", caption)


def test_sorted_multiclass_report_agrees_with_its_leaderboard_without_refitting(fair_html, sorted_fair_run):
    ws, result = sorted_fair_run
    automl = ws.get_run(result.step("AutoML").run_id)
    best = ws.get_run(automl.properties["best_child_run_id"])
    assert best.properties["run_algorithm"] == "StackEnsemble"  # the model whose refit depended on row order
    metrics = _best_metrics(fair_html)
    pooled, leaderboard = metrics["AUC_weighted"]
    assert leaderboard == pytest.approx(float(best.properties["score"]), abs=1e-4)
    assert abs(pooled - leaderboard) < 0.02, metrics
    assert set(metrics) >= {"accuracy", "balanced_accuracy", "f1_score_weighted", "log_loss"}
    for plot in ("roc", "precision_recall", "confusion_matrix", "calibration", "feature_importance"):
        assert f"id='plot-{plot}'" in fair_html
    assert "the validation predictions its run kept, for the 1500 training rows of 3 cross-validation folds" in fair_html
    assert "Plots unavailable" not in fair_html


def test_report_shows_featurization_ensembles_and_hyperparameters(fair_html):
    featurization = fair_html.split("id='featurization'")[1].split("</table>")[0]
    assert "<td><b>educ</b></td><td>Numeric</td><td>No</td>" in featurization
    assert "MeanImputer, OneHotEncoder" in featurization  # religious: 4 whole-number values
    ensembles = fair_html.split("id='ensembles'")[1].split("</table>")[0]
    assert "<b>StackEnsemble</b>" in ensembles and "meta-learner over its members" in ensembles
    assert ensembles.count("MaxAbsScaler, ") >= 2  # its members, chosen by ensemble selection
    board = fair_html.split("id='leaderboard'")[1].split("</table>")[0]
    assert "max_depth=5, min_child_weight=2, n_estimators=67" in board  # the XGBoost child's hyperparameters
    assert re.search(r"<code class='params'>iterations \d, \d", board)  # the StackEnsemble's members


def test_importance_is_measured_with_the_primary_metric(fair_html):
    caption = fair_html.split("id='plot-feature_importance'")[1].split("</figcaption>")[0]
    assert "the drop in AUC_weighted when its values are shuffled" in caption
    assert re.search(r"on a random sample of \d+ of the 1500 training rows the model learned from", caption)
    assert "roc_auc" not in fair_html


def test_score_axis_stays_within_the_metrics_range():
    from framework.commands.report_plots import score_limits

    assert score_limits([0.95, 0.999, 0.97], "AUC_weighted")[1] == 1.0
    assert score_limits([1.0, 1.0], "accuracy") == (pytest.approx(0.998), 1.0)
    assert score_limits([0.01, 0.2], "normalized_root_mean_squared_error")[0] == 0.0
    low, high = score_limits([0.2, 0.4], "r2_score")
    assert low < 0.2 and 0.4 < high < 1.0


def test_score_by_iteration_plot_uses_the_metrics_range(monkeypatch):
    """The drawn axis, not only the helper: AUC scores near 1 never get an axis above 1.0."""
    from framework.commands import report_plots

    drawn = []
    monkeypatch.setattr(report_plots, "_png", lambda fig: drawn.append(fig.axes[0].get_ylim()) or "")
    rows = [{"iteration": i, "score": s} for i, s in enumerate([0.95, 0.999, 0.97, 0.998])]
    assert report_plots.leaderboard_figure(rows, "AUC_weighted", minimize=False) is not None
    assert drawn[0][1] == 1.0 and drawn[0][0] < 0.95


def test_runs_without_kept_predictions_are_refitted_with_progress(titanic_run, monkeypatch):
    from framework.commands import report_plots

    monkeypatch.setattr(report_plots, "kept_predictions", lambda lineage, child_id: None)
    ws, result = titanic_run
    seen = []
    html = build_report(ws, result.run_id, progress=lambda what, done, total: seen.append(what))
    assert "this run kept no validation predictions" in html
    assert "refitting the best pipeline (fold 5 of 5)" in seen
    assert "id='plot-roc'" in html and "id='plot-feature_importance'" in html


def test_an_explanation_file_that_does_not_hold_together_is_ignored(tmp_path):
    from types import SimpleNamespace

    from framework.commands.report_plots import kept_explanation

    lineage = SimpleNamespace(workspace=SimpleNamespace(artifacts_dir=lambda child_id: tmp_path))
    path = tmp_path / "outputs" / "feature_importance.json"
    path.parent.mkdir()
    good = {"metric": "AUC_weighted", "where": "891 training rows", "repeats": 3, "rows": 891,
            "columns": ["Sex", "Age"], "mean": [0.2, 0.01], "std": [0.01, 0.0]}
    path.write_text(json.dumps(good))
    assert kept_explanation(lineage, "child") == good
    path.write_text(json.dumps({**good, "mean": [0.2]}))
    assert kept_explanation(lineage, "child") is None
    path.write_text("{not json")
    assert kept_explanation(lineage, "child") is None
    assert kept_explanation(lineage, None) is None
