"""The forecasting example: dataprep_macro -> AutoML (forecasting) -> register, predict and report.

Needs ``pip install -e examples/macro_forecast/amlstep-macro-forecast`` (done by .ci/run).
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from framework import LocalWorkspace, get_plugin_manager, run_pipeline
from framework.commands.predict import predict
from framework.commands.report import build_report

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "macro_forecast"


@pytest.fixture(scope="module")
def macro_run(tmp_path_factory):
    try:
        metadata.distribution("amlstep-macro-forecast")
    except metadata.PackageNotFoundError:
        pytest.fail("the amlstep-macro-forecast distribution is not installed; run "
                    "`pip install -e examples/macro_forecast/amlstep-macro-forecast`")
    ws = LocalWorkspace(tmp_path_factory.mktemp("macro-ws"))
    # three iterations: LightGBM on lag features, SeasonalNaive, and their VotingEnsemble
    return ws, run_pipeline(EXAMPLE, params={"iterations": "3"}, workspace=ws)


def test_runs_offline_and_registers_the_forecaster(macro_run):
    ws, result = macro_run
    assert result.succeeded, result.error
    automl = ws.get_run(result.step("AutoML_Forecasting").run_id)
    assert automl.properties["training_type"] == "MeanCrossValidation"
    assert "Lookback features" in {g["type"] for g in automl.properties["guardrails"]}
    assert ws.get_model("MacroForecast").version == 1


def test_predict_writes_the_next_horizon_of_each_series(macro_run):
    from amlstep_macro_forecast import macrodata_csv

    ws, _ = macro_run
    frame = predict(ws, get_plugin_manager(), "MacroForecast", macrodata_csv()).frame
    assert list(frame.columns) == ["date", "series", "horizon", "predicted_value", "value_q05", "value_q95"]
    assert len(frame) == 6 * 8 and sorted(frame.horizon.unique()) == list(range(1, 9))
    assert (pd.to_datetime(frame.date) > pd.Timestamp("2009-07-01")).all()
    assert (frame.value_q05 <= frame.predicted_value).all() and (frame.predicted_value <= frame.value_q95).all()


def test_report_shows_the_forecast_and_the_error_by_horizon(macro_run):
    ws, result = macro_run
    html = build_report(ws, result.run_id)
    for plot in ("forecast", "error_by_horizon"):
        assert f"id='plot-{plot}'" in html
    assert "mean_absolute_scaled_error" in html


def test_azure_dry_run_shows_forecasting_parameters():
    pytest.importorskip("azureml.train.automl")
    from framework.cli import make_cli

    out = CliRunner().invoke(make_cli(), ["run", str(EXAMPLE), "--backend", "azure", "--dry-run", "--json"])
    assert out.exit_code == 0, out.output
    plan = json.loads(out.stdout)
    automl = next(s for s in plan["steps"] if s["name"] == "AutoML_Forecasting")["automl_config"]["settings"]
    assert automl["forecasting_parameters"] == {
        "sdk_class": "azureml.automl.core.forecasting_parameters.ForecastingParameters", "time_column_name": "date",
        "forecast_horizon": 8, "time_series_id_column_names": ["series"], "freq": "QS", "target_lags": "auto",
        "target_rolling_window_size": "auto"}


@pytest.mark.fake_azure()
def test_runs_on_the_executing_fake_azure(fake_azure):
    """The v1 submission: dataprep from its wheel, the forecasting AutoML step service-side, a forecaster back."""
    import pickle

    fake_azure.local_workspace.register_dataset("macro_ds", [str(_macrodata_csv())])
    result = fake_azure.submit(EXAMPLE, params={"iterations": "3"})
    assert result.status == "Completed", result.error
    automl = fake_azure.step_runs()["AutoML_Forecasting"]
    assert "task forecasting" in fake_azure.step_log(automl)
    model = pickle.loads(Path(result.outputs["model_output"]).read_bytes())
    assert hasattr(model, "forecast") and hasattr(model, "forecast_quantiles")
    assert [v.version for v in fake_azure.models["MacroForecast"]] == [1]


@pytest.mark.fake_azure()
def test_runs_on_the_executing_fake_azure_under_sdk_v2(fake_azure_v2):
    """--sdk v2: automl.forecasting with set_forecast_settings, run as forecasting service-side; an MLflow model back
    whose scikit-learn flavour is the forecaster and whose pyfunc predicts the next quarters."""
    import mlflow.pyfunc
    import mlflow.sklearn

    fake = fake_azure_v2
    fake.local_workspace.register_dataset("macro_ds", [str(_macrodata_csv())])
    result = fake.submit(EXAMPLE, params={"iterations": "3"})
    assert result.status == "Completed", result.error
    node = fake.service.api_v2.submissions[-1]["steps"][1]["automl"]
    assert (node["task"], node["label_column_name"]) == ("forecasting", "value")
    assert node["forecasting_parameters"] == {"time_column_name": "date", "forecast_horizon": 8,
                                              "time_series_id_column_names": ["series"], "target_lags": "auto",
                                              "target_rolling_window_size": "auto", "freq": "QS"}
    automl = fake.step_runs(result.run_id)["AutoML_Forecasting"]
    assert "task forecasting" in fake.step_log(automl)
    folder = Path(result.outputs["model_output"])
    assert (folder / "MLmodel").is_file()
    model = mlflow.sklearn.load_model(str(folder))
    assert hasattr(model, "forecast_quantiles") and model.max_horizon == 8
    series = model.transformer.history  # the series the forecaster was trained on
    last = max(times[-1] for times, _, _ in series.values())
    future = pd.DataFrame([{"date": f"{last + pd.DateOffset(months=3 * h):%Y-%m-%d}", "series": key[0]}
                           for key in series for h in range(1, 9)])  # as the training rows have them
    forecast, frame = model.forecast(future)
    assert len(forecast) == len(future) == 8 * len(series) and np.isfinite(forecast).all()
    assert np.allclose(mlflow.pyfunc.load_model(str(folder)).predict(future), forecast)
    assert [(v.version, v.framework) for v in fake.models["MacroForecast"]] == [(1, "mlflow_model")]


def _macrodata_csv() -> Path:
    from amlstep_macro_forecast import macrodata_csv

    return Path(macrodata_csv())


@pytest.mark.slow
def test_report_leaderboard_fits_the_page_and_names_the_series(macro_run, tmp_path):
    """The leaderboard of a forecasting run (four long metric names, a form per series) is no wider than the page,
    and per-series hyperparameters name the series (realgdp...), not their codes '0'..'5'."""
    from tests.framework.commands.test_report_command import browser

    ws, result = macro_run
    automl = ws.get_run(result.step("AutoML_Forecasting").run_id)
    assert automl.properties["series"] == sorted(automl.properties["series"]) and len(automl.properties["series"]) == 6
    assert "realgdp" in automl.properties["series"]
    html = build_report(ws, result.run_id, plots=False)
    page = tmp_path / "report.html"
    page.write_text(html.replace("</body>", "<script>document.body.setAttribute('data-width', "
                                            "document.documentElement.scrollWidth)</script></body>"))
    dom = browser("--window-size=1300,2000", "--dump-dom", page.as_uri(), profile=tmp_path / "profile").stdout
    width = int(dom.split('data-width="', 1)[1].split('"', 1)[0])
    assert width <= 1300, f"the report is {width} px wide in a 1300 px window"
