"""The AutoML step's section of ``amlstep report``: guardrails, leaderboard, ensembles and the best model's plots."""

from __future__ import annotations

import json
import re

import pytest

from emulator import report_plots
from framework import AutoMLStep, Dataset, Pipeline, run_pipeline
from framework.commands.report import build_report


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


@pytest.mark.slow
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
    assert report_plots.score_limits([0.95, 0.999, 0.97], "AUC_weighted")[1] == 1.0
    assert report_plots.score_limits([1.0, 1.0], "accuracy") == (pytest.approx(0.998), 1.0)
    assert report_plots.score_limits([0.01, 0.2], "normalized_root_mean_squared_error")[0] == 0.0
    low, high = report_plots.score_limits([0.2, 0.4], "r2_score")
    assert low < 0.2 and 0.4 < high < 1.0


def test_score_by_iteration_plot_uses_the_metrics_range(monkeypatch):
    """The drawn axis, not only the helper: AUC scores near 1 never get an axis above 1.0."""
    drawn = []
    monkeypatch.setattr(report_plots, "_png", lambda fig: drawn.append(fig.axes[0].get_ylim()) or "")
    rows = [{"iteration": i, "score": s} for i, s in enumerate([0.95, 0.999, 0.97, 0.998])]
    assert report_plots.leaderboard_figure(rows, "AUC_weighted", minimize=False) is not None
    assert drawn[0][1] == 1.0 and drawn[0][0] < 0.95


def test_runs_without_kept_predictions_are_refitted_with_progress(titanic_run, monkeypatch):
    monkeypatch.setattr(report_plots, "kept_predictions", lambda lineage, child_id: None)
    ws, result = titanic_run
    seen = []
    html = build_report(ws, result.run_id, progress=lambda what, done, total: seen.append(what))
    assert "this run kept no validation predictions" in html
    assert "refitting the best pipeline (fold 5 of 5)" in seen
    assert "id='plot-roc'" in html and "id='plot-feature_importance'" in html


def test_an_explanation_file_that_does_not_hold_together_is_ignored(tmp_path):
    from types import SimpleNamespace


    lineage = SimpleNamespace(workspace=SimpleNamespace(artifacts_dir=lambda child_id: tmp_path))
    path = tmp_path / "outputs" / "feature_importance.json"
    path.parent.mkdir()
    good = {"metric": "AUC_weighted", "where": "891 training rows", "repeats": 3, "rows": 891,
            "columns": ["Sex", "Age"], "mean": [0.2, 0.01], "std": [0.01, 0.0]}
    path.write_text(json.dumps(good))
    assert report_plots.kept_explanation(lineage, "child") == good
    path.write_text(json.dumps({**good, "mean": [0.2]}))
    assert report_plots.kept_explanation(lineage, "child") is None
    path.write_text("{not json")
    assert report_plots.kept_explanation(lineage, "child") is None
    assert report_plots.kept_explanation(lineage, None) is None


def test_per_series_forms_are_shown_by_series_name_and_grouped():
    from emulator.report import _hyperparameters

    series = ["cpi", "realgdp", "unemp"]
    same = {"forms": {"0": ["add", True, "add"], "1": ["add", True, "add"], "2": ["add", True, "add"]}}
    assert _hyperparameters(same, series, "ExponentialSmoothing") == \
        "trend=add, damped=True, seasonal=add (all 3 series)"
    mixed = {"forms": {"0": {"order": [1, 1, 1]}, "1": {"order": [0, 2, 1]}, "2": {"order": [1, 1, 1]}}}
    assert _hyperparameters(mixed, series, "AutoArima") == "order=(1, 1, 1) (cpi, unemp); order=(0, 2, 1) (realgdp)"
    assert _hyperparameters(mixed, None, "AutoArima") == \
        "order=(1, 1, 1) (series 0, series 2); order=(0, 2, 1) (series 1)"  # runs recorded before series names


@pytest.mark.slow
def test_forecast_plot_holds_the_other_columns_at_their_last_known_values(workspace, tmp_path):
    """A forecaster trained with columns besides the time, ids and label still gets its forecast plot."""
    from html import unescape

    import numpy as np
    import pandas as pd

    years = pd.date_range("1990-01-01", periods=30, freq="YS").strftime("%Y-%m-%d")
    firms = pd.concat([pd.DataFrame({"firm": firm, "year": years, "value": level + 3.0 * np.arange(30),
                                     "invest": level / 2 + 1.5 * np.arange(30) + np.arange(30) % 3})
                       for firm, level in (("a", 50.0), ("b", 200.0))], ignore_index=True)
    firms.to_csv(tmp_path / "firms.csv", index=False)
    workspace.register_dataset("firms", [str(tmp_path / "firms.csv")])
    pipeline = Pipeline(experiment="firms", steps=[
        AutoMLStep(name="AutoML", training_data=Dataset("firms"), task="forecasting", label_column_name="invest",
                   time_column_name="year", time_series_id_column_names=["firm"], forecast_horizon=3, iterations=1,
                   allowed_models=["Naive"]),
    ])
    result = run_pipeline(pipeline, workspace=workspace)
    assert result.succeeded, result.error
    html = build_report(workspace, result.run_id)
    assert "Plots unavailable" not in html
    caption = unescape(html.split("id='plot-forecast'")[1].split("</figcaption>")[0])
    assert ("'value' is held at each series' last known value: the model forecasts with it, and the training data "
            "holds no future values.") in caption
    assert "id='plot-error_by_horizon'" in html


@pytest.mark.slow
def test_report_of_a_standalone_automl_run(workspace, titanic_csv, tmp_path):
    """`amlstep report` takes a standalone AutoML run (Experiment.submit) as it takes a pipeline run."""
    import pandas as pd

    from emulator import AutoMLConfig, Experiment
    from tests.framework.commands.conftest import invoke

    config = AutoMLConfig(task="classification", training_data=pd.read_csv(titanic_csv), label_column_name="Survived",
                          iterations=2, n_cross_validations=3, primary_metric="AUC_weighted")
    run = Experiment(workspace, "standalone").submit(config)
    out = tmp_path / "report.html"
    written = invoke(workspace, "report", run.id[:12], "--out", str(out))
    assert written.exit_code == 0, written.output
    html = out.read_text()
    assert "id='automl-" in html and "id='leaderboard'" in html and "label <b>Survived</b>" in html
    assert "<td>label_column_name</td>" in html and "standalone AutoML run" in html
    assert "id='plot-roc'" in html
