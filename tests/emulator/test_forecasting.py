"""Forecasting: Azure's settings and messages, rolling-origin folds, the models, the fitted forecaster."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from emulator import AutoMLConfig, Experiment, ForecastingParameters
from emulator.engine import AutoMLDataError, prepare_data
from emulator.settings import validate_settings
from framework.errors import StepDefinitionError

H = 4


def frame(days: int = 60) -> pd.DataFrame:
    """Two daily series with a weekly pattern and a trend, plus a known-in-future promotion flag."""
    rng = np.random.default_rng(0)
    dates = pd.date_range("2024-01-01", periods=days, freq="D")
    parts = []
    for store, level in (("a", 50.0), ("b", 200.0)):
        weekly = np.tile([0, 2, 4, 6, 4, 10, 12], days // 7 + 1)[:days]
        promo = (np.arange(days) % 11 == 0).astype(int)
        sales = level + 0.3 * np.arange(days) + weekly * level / 50 + 5 * promo + rng.normal(0, 0.5, days)
        parts.append(pd.DataFrame({"date": dates, "store": store, "promo": promo, "sales": sales}))
    return pd.concat(parts, ignore_index=True)


def params(**extra):
    return ForecastingParameters(time_column_name="date", time_series_id_column_names=["store"], forecast_horizon=H,
                                 target_lags="auto", target_rolling_window_size="auto", **extra)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    data = frame()
    train = data[data.date < data.date.max() - pd.Timedelta(days=H - 1)]
    config = AutoMLConfig(task="forecasting", training_data=train, label_column_name="sales",
                          forecasting_parameters=params(), n_cross_validations=2, iterations=5,
                          allowed_models=["SeasonalNaive", "Naive", "ElasticNet", "LightGBM"])
    run = Experiment(tmp_path_factory.mktemp("ws"), "fc").submit(config)
    best, model = run.get_output()
    return run, model, train, data[data.date > train.date.max()]


def test_settings_follow_azure():
    s = validate_settings({"task": "forecasting", "label_column_name": "y", "forecasting_parameters": params()})
    assert s["primary_metric"] == "normalized_root_mean_squared_error"
    assert s["enable_stack_ensemble"] is False  # off for forecasting, as on Azure
    assert s["forecasting_parameters"]["time_series_id_column_names"] == ["store"]
    assert s["forecasting_parameters"]["cv_step_size"] == "auto"
    flat = validate_settings({"task": "forecasting", "label_column_name": "y", "time_column_name": "date",
                              "grain_column_names": "store", "max_horizon": H, "target_lags": "auto",
                              "target_rolling_window_size": "auto"})
    assert flat["forecasting_parameters"] == s["forecasting_parameters"]
    with pytest.raises(StepDefinitionError, match=re.escape("forecast_horizon=6 conflicts with forecasting_parameters' "
                                                            "forecast_horizon=4")):
        validate_settings({"task": "forecasting", "label_column_name": "y", "forecasting_parameters": params(),
                           "forecast_horizon": 6})
    with pytest.raises(StepDefinitionError, match="valid models: AutoArima, Prophet, Naive"):
        validate_settings({"task": "forecasting", "label_column_name": "y", "time_column_name": "d",
                           "allowed_models": ["LogisticRegression"]})


def test_azures_own_forecasting_parameters_are_accepted():
    azure = pytest.importorskip("azureml.automl.core.forecasting_parameters")
    theirs = azure.ForecastingParameters(time_column_name="date", forecast_horizon=H,
                                         time_series_id_column_names=["store"], target_lags="auto",
                                         target_rolling_window_size="auto")
    ours = validate_settings({"task": "forecasting", "label_column_name": "y", "forecasting_parameters": params()})
    s = validate_settings({"task": "forecasting", "label_column_name": "y", "forecasting_parameters": theirs})
    assert s["forecasting_parameters"] == ours["forecasting_parameters"]


def test_rolling_origin_folds_score_the_next_horizon_of_every_series():
    settings = validate_settings({"task": "forecasting", "label_column_name": "sales", "forecasting_parameters": params(),
                                  "n_cross_validations": 3})
    data = prepare_data(settings, frame(), None)
    prepared = data.extra
    assert (prepared.freq, prepared.horizon, prepared.seasonality, prepared.step) == ("D", H, 7, H)
    assert len(data.splits) == 3 and all(len(valid) == 2 * H for _, valid in data.splits)
    assert 7 in prepared.lags  # 'auto' lags keep the seasonal one


def test_the_forecaster_answers_like_azures(fitted):
    run, model, train, test = fitted
    assert run.properties["training_type"] == "MeanCrossValidation"
    metrics = pd.DataFrame(run.get_metrics_output())
    assert {"mean_absolute_scaled_error", "symmetric_mean_absolute_percentage_error",
            "mean_absolute_percentage_error"} <= set(metrics.index)
    kinds = {g["type"] for g in run.get_guardrails()}
    assert {"Frequency detection", "Short series handling", "Missing values in the time series",
            "Lookback features"} <= kinds
    X_future = test.drop(columns=["sales"])
    y, trans = model.forecast(X_future)
    assert len(y) == len(test) and np.isfinite(y).all()
    assert list(trans.columns) == ["date", "store", "horizon_origin", "_automl_target_col"]
    assert sorted(trans.horizon_origin.unique()) == list(range(1, H + 1))
    mase = np.mean(np.abs(y - test.sales.to_numpy())) / np.mean(np.abs(np.diff(train.sales)))
    assert mase < 3
    bands = model.forecast_quantiles(X_future, quantiles=[0.1, 0.5, 0.9])
    assert (bands[0.1] < bands[0.5]).all() and (bands[0.5] < bands[0.9]).all()
    np.testing.assert_allclose(bands[0.5].to_numpy(), y)
    rolled = model.rolling_forecast(X_future, test.sales.to_numpy(), step=2)
    assert {"forecast_origin", "_automl_prediction", "_automl_actual"} <= set(rolled.columns)
    assert len(rolled) > len(test)  # each origin forecasts up to a horizon


def test_an_unknown_series_id_is_named(fitted):
    _, model, _, test = fitted
    X = test.drop(columns=["sales"]).assign(store="zz")
    with pytest.raises(AutoMLDataError, match=re.escape("The time series identifier {'store': 'zz'} does not exist in "
                                                        "the training dataset. Please inspect your data.")):
        model.forecast(X)


def test_missing_periods_are_inserted_and_the_target_imputed():
    data = frame().drop(index=[10, 11, 70])
    settings = validate_settings({"task": "forecasting", "label_column_name": "sales", "forecasting_parameters": params()})
    prepared = prepare_data(settings, data, None).extra
    assert prepared.notes["filled_periods"] == 3 and len(prepared.frame) == len(frame())


def test_v1_compiler_emits_azures_forecasting_parameters():
    pytest.importorskip("azureml.train.automl")
    from framework import Dataset, Pipeline, get_plugin_manager
    from framework.backends.azure.sdk_v1.backend import AzureBackend
    from framework.backends.azure.sdk_v1.plan import render
    from framework.pipeline import AutoMLStep

    pipeline = Pipeline([AutoMLStep("fc", training_data=Dataset("sales", version=1), task="forecasting",
                                    label_column_name="sales", forecasting_parameters=params(),
                                    experiment_timeout_minutes=15)], experiment="fc")
    plugins = get_plugin_manager()
    compiled = AzureBackend(dry_run=True).compile(pipeline.validate(plugins), plugins=plugins, params={})
    config = compiled.steps[0].sdk_step._automl_config
    sdk = config.user_settings["forecasting_parameters"]
    assert type(sdk).__module__ == "azureml.automl.core.forecasting_parameters"
    assert (sdk.time_column_name, sdk.forecast_horizon, sdk.time_series_id_column_names) == ("date", H, ["store"])
    assert config.user_settings["is_timeseries"] is True  # Azure keeps forecasting as a time series regression
    plan = json.loads(json.dumps(render(compiled), default=str))
    shown = plan["steps"][0]["automl_config"]["settings"]["forecasting_parameters"]
    assert shown["time_column_name"] == "date" and shown["forecast_horizon"] == H


def test_the_series_and_their_folds_ignore_row_order():
    """Forecasting's internal folds are rolling origins in time: rows in any order give the same series, the same
    folds and the same design rows (issue 16, item 1: no fit may depend on the order of the file's rows)."""
    settings = validate_settings({"task": "forecasting", "label_column_name": "sales", "forecasting_parameters": params(),
                                  "n_cross_validations": 3})
    ordered = prepare_data(settings, frame(), None)
    shuffled = prepare_data(settings, frame().sample(frac=1.0, random_state=0).reset_index(drop=True), None)
    pd.testing.assert_frame_equal(ordered.extra.frame, shuffled.extra.frame)
    pd.testing.assert_frame_equal(ordered.X.reset_index(drop=True), shuffled.X.reset_index(drop=True))
    np.testing.assert_array_equal(ordered.y, shuffled.y)
    assert len(ordered.splits) == len(shuffled.splits) == 3
    for (train_a, valid_a), (train_b, valid_b) in zip(ordered.splits, shuffled.splits):
        np.testing.assert_array_equal(train_a, train_b)
        np.testing.assert_array_equal(valid_a, valid_b)


def test_seasonality_is_the_datasets_when_a_quarter_of_its_series_show_it_and_each_series_tests_its_own():
    """'auto' seasonality keeps the frequency's period when at least a quarter of the series are seasonal (not only
    when the longest one is); ExponentialSmoothing is damped Holt-Winters, seasonal when a series holds two seasons."""
    from emulator.forecasting import detect_dataset_seasonality, ets_forms, is_seasonal

    t = np.arange(120)
    rng = np.random.default_rng(0)
    seasonal = 50 + 0.2 * t + 8 * np.sin(2 * np.pi * t / 12) + rng.normal(scale=0.5, size=120)
    walk = 50 + np.cumsum(rng.normal(size=200))  # longer, and without a season
    assert is_seasonal(seasonal, 12) and not is_seasonal(walk, 12)
    assert detect_dataset_seasonality([walk, seasonal, walk, walk], "MS") == 12
    assert detect_dataset_seasonality([walk, seasonal, walk, walk, walk], "MS") == 1
    assert ets_forms(seasonal, 12) == [("add", True, "add")]  # damped Holt-Winters
    assert ets_forms(seasonal[:25], 12) == [("add", True, None)]  # under two seasons and a bit
