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


@pytest.mark.slow
def test_rolling_origin_folds_score_the_next_horizon_of_every_series():
    settings = validate_settings({"task": "forecasting", "label_column_name": "sales", "forecasting_parameters": params(),
                                  "n_cross_validations": 3})
    data = prepare_data(settings, frame(), None)
    prepared = data.extra
    assert (prepared.freq, prepared.horizon, prepared.seasonality, prepared.step) == ("D", H, 7, H)
    assert len(data.splits) == 3 and all(len(valid) == 2 * H for _, valid in data.splits)
    assert 7 in prepared.lags  # 'auto' lags keep the seasonal one


def test_auto_cross_validations_take_as_many_rolling_origins_as_the_series_hold_from_3_to_6():
    from emulator.forecasting import auto_folds, required_length

    need = {k: required_length(H, k, H, [1, 7], 7) for k in range(2, 8)}
    assert auto_folds(np.array([500, 400]), H, H, [1, 7], 7) == 6
    assert auto_folds(np.array([need[4], 500]), H, H, [1, 7], 7) == 4
    assert auto_folds(np.array([need[3] - 1, need[5]]), H, H, [1, 7], 7) == 5  # a series too short for 3 is padded
    assert auto_folds(np.array([need[3] - 1]), H, H, [1, 7], 7) == 3  # or dropped; it does not lower the count
    settings = validate_settings({"task": "forecasting", "label_column_name": "sales", "forecasting_parameters": params()})
    assert len(prepare_data(settings, frame(), None).splits) == 6  # two series of 60 days, a horizon of 4
    assert len(prepare_data(settings, frame(days=30), None).splits) == 4
    assert len(prepare_data(settings, frame(days=24), None).splits) == 3


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


def test_a_time_column_written_day_first_is_read_day_first_in_training_and_in_forecasts(tmp_path):
    days = pd.date_range("2022-01-01", periods=120, freq="D")
    data = pd.DataFrame({"date": days.strftime("%d/%m/%Y"), "y": 20 + 0.1 * np.arange(120)})
    config = AutoMLConfig(task="forecasting", training_data=data, label_column_name="y", iterations=2,
                          allowed_models=["Naive", "SeasonalNaive"],
                          forecasting_parameters=ForecastingParameters(time_column_name="date", forecast_horizon=7))
    run = Experiment(tmp_path, "dayfirst").submit(config)
    _, model = run.get_output()
    assert not [g for g in run.get_guardrails() if g["type"] == "Missing values in the time series"
                and g["status"] != "Passed"]
    ahead = pd.date_range("2022-05-01", periods=7, freq="D")  # 01/05/2022 to 07/05/2022 read month first: January
    _, frame = model.forecast(pd.DataFrame({"date": ahead.strftime("%d/%m/%Y")}))
    assert list(frame["date"]) == list(ahead) and list(frame["horizon_origin"]) == list(range(1, 8))


def test_a_series_without_target_values_is_named_and_a_dropped_short_series_says_so(tmp_path):
    data = frame()
    empty = data[data.store == "a"].assign(store="c", sales=np.nan)
    config = dict(task="forecasting", label_column_name="sales", iterations=2, allowed_models=["Naive"],
                  forecasting_parameters=params())
    with pytest.raises(AutoMLDataError, match=re.escape(
            "label column 'sales' has no values in 1 series: {'store': 'c'}; give each series values of its target")):
        Experiment(tmp_path, "empty").submit(AutoMLConfig(training_data=pd.concat([data, empty]), **config))
    short = data[data.store == "a"].head(5).assign(store="c")
    run = Experiment(tmp_path, "short").submit(AutoMLConfig(training_data=pd.concat([data, short]), **config))
    _, model = run.get_output()
    ahead = pd.DataFrame({"date": pd.date_range(data.date.max() + pd.Timedelta(days=1), periods=2), "store": "c"})
    with pytest.raises(AutoMLDataError, match=re.escape(
            "The time series identifier {'store': 'c'} was dropped from the training data as too short")):
        model.forecast(ahead)


def test_predict_on_history_alone_does_not_guess_the_future_of_known_columns(fitted):
    from emulator.forecasting import prediction_table

    _, model, train, test = fitted
    with pytest.raises(AutoMLDataError, match=re.escape(
            "every row has its 'sales', so there is nothing to forecast, and the model forecasts with the column(s) "
            "'promo' known in the future: add the rows to forecast, with those columns and an empty 'sales'")):
        prediction_table(model, train, "sales")
    table = prediction_table(model, pd.concat([train, test.assign(sales=np.nan)]), "sales")
    assert len(table) == len(test) and np.isfinite(table["predicted_sales"]).all()


def test_predict_fills_empty_labels_inside_a_series_history_and_forecasts_the_rows_after_it(fitted):
    from emulator.forecasting import prediction_table

    _, model, train, test = fitted
    holes = train.copy()
    holes.loc[[3, 20, 65], "sales"] = np.nan  # two in store a's history, one in store b's
    with pytest.raises(AutoMLDataError, match=re.escape(
            "every row has its 'sales' or lies before its series' last one (3 gap(s), imputed), so there is nothing "
            "to forecast, and the model forecasts with the column(s) 'promo' known in the future")):
        prediction_table(model, holes, "sales")
    table = prediction_table(model, pd.concat([holes, test.assign(sales=np.nan)]), "sales")
    assert table[["date", "store"]].values.tolist() == test[["date", "store"]].values.tolist()
    assert np.isfinite(table["predicted_sales"]).all()


@pytest.mark.slow
def test_predict_on_its_own_training_file_with_empty_labels_forecasts_the_next_horizon(tmp_path):
    from emulator.forecasting import prediction_table

    months = pd.date_range("2000-01-01", periods=48, freq="MS")
    data = pd.DataFrame({"date": months.strftime("%Y-%m-%d"), "co2": 300 + 0.1 * np.arange(48)})
    data.loc[[3, 20, 21], "co2"] = np.nan
    config = AutoMLConfig(task="forecasting", training_data=data, label_column_name="co2", iterations=1,
                          allowed_models=["Naive"],
                          forecasting_parameters=ForecastingParameters(time_column_name="date", forecast_horizon=3))
    _, model = Experiment(tmp_path, "co2").submit(config).get_output()
    table = prediction_table(model, data, "co2")
    assert list(table["date"]) == list(pd.date_range("2004-01-01", periods=3, freq="MS"))
    assert list(table["horizon"]) == [1, 2, 3]


def test_future_rows_carry_each_series_last_known_values_forward(fitted):
    from emulator.forecasting import future_rows

    _, model, train, _ = fitted
    features = train.drop(columns=["sales"]).assign(promo=np.arange(len(train)))  # each row its own promo
    last = features.sort_values("date").groupby("store").tail(1).set_index("store")
    shuffled = features.sample(frac=1, random_state=0)
    rows = future_rows(model, shuffled.assign(date=shuffled.date.dt.strftime("%Y-%m-%d")), periods=2)
    for store, part in rows.groupby("store"):
        assert list(part["date"]) == list(pd.date_range(last.at[store, "date"], periods=3, freq="D")[1:])
        assert (part["promo"] == last.at[store, "promo"]).all()
    assert list(rows.columns) == ["date", "store", "promo"]


def test_an_empty_or_repeated_request_is_named(fitted):
    _, model, _, test = fitted
    X = test.drop(columns=["sales"])
    with pytest.raises(ValueError, match=re.escape("X_pred has no rows: give the times (and series ids) to forecast")):
        model.forecast(X.head(0))
    with pytest.raises(AutoMLDataError, match=re.escape(
            "X_pred has 2 rows for the same 'date' and 'store', e.g. date=")):
        model.forecast(pd.concat([X, X.head(1)]))


def test_an_unknown_series_id_is_named(fitted):
    _, model, _, test = fitted
    X = test[test.store == "a"].drop(columns=["sales"]).assign(store="zz")
    with pytest.raises(AutoMLDataError, match=re.escape("The time series identifier {'store': 'zz'} does not exist in "
                                                        "the training dataset. Please inspect your data.")):
        model.forecast(X)


@pytest.mark.parametrize("values, message", [
    ([1935, 1936, 1937, 1938], "The time column 'year' holds numbers (1935, 1936, 1937), which are not read as dates; "
                               "write them as dates (1935-01-01)"),
    ([1935.0, np.nan, 1937.0], "The time column 'year' holds numbers (1935, 1937), which are not read as dates; "
                               "write them as dates (1935-01-01)"),
    ([20240131, 20240201], "The time column 'year' holds numbers (20240131, 20240201), which are not read as dates; "
                           "write them as dates (2024-01-31)"),
    (["1935年", "1936年"], "The time column 'year' holds values that do not parse as dates ('1935年', '1936年'); "
                          "write them as dates (2024-01-31)"),
    ([np.nan, ""], "The time column year is empty. Please make sure the column contains valid timestamp values"),
], ids=["years", "years-as-floats", "yyyymmdd", "text", "empty"])
def test_a_time_column_without_dates_says_what_it_holds_and_what_to_write(values, message):
    from emulator.forecasting import parse_times

    with pytest.raises(AutoMLDataError, match=re.escape(message) + "$"):
        parse_times(pd.Series(values), "year")


def test_missing_periods_are_inserted_and_the_target_imputed():
    data = frame().drop(index=[10, 11, 70])
    settings = validate_settings({"task": "forecasting", "label_column_name": "sales", "forecasting_parameters": params()})
    prepared = prepare_data(settings, data, None).extra
    assert prepared.notes["filled_periods"] == 3 and len(prepared.frame) == len(frame())


@pytest.mark.slow
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


def _monthly(n: int = 96, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return 100 + 0.3 * t + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(scale=1.0, size=n)


def test_holt_winters_takes_heuristic_initial_states_from_four_seasons():
    from emulator.forecasting import ets_initializations

    assert ets_initializations(48, 12) == ("heuristic", "estimated")
    assert ets_initializations(47, 12) == ("estimated",)  # too few seasons: estimated with the parameters
    assert ets_initializations(200, 1) == ("estimated",)  # no season: nothing to decompose
    assert ets_initializations(200, 4) == ("estimated",)  # a quarter's 4 seasonal states are cheap to estimate


def test_an_arima_form_whose_forecast_leaves_the_series_far_behind_is_never_chosen(monkeypatch):
    """A degenerate fit (an over-differenced series: an MA coefficient of -1) can have the best AICc and forecast a
    series at 23,700 at -65,000; the form with the best AICc among those with plausible forecasts is chosen instead,
    and a form chosen on an earlier origin that fails on the whole history gives way to a new search."""
    from types import SimpleNamespace

    import statsmodels.tsa.arima.model as arima_module

    from emulator import forecasting as F

    y = 23000 + 100 * np.sin(np.arange(120) / 5)
    assert F.plausible(np.array([23100.0, 22900.0]), y)
    assert not F.plausible(np.array([23100.0, -65000.0]), y)
    assert not F.plausible(np.array([np.nan, 23000.0]), y)

    class FakeArima:  # ARIMA(1,2,1) is degenerate: the lowest AICc, a wild forecast
        def __init__(self, series, exog=None, order=None, seasonal_order=None, trend=None):
            self.order = order

        def fit(self, **kwargs):
            wild = self.order == (1, 2, 1)
            return SimpleNamespace(aicc=500.0 if wild else 2000.0 + sum(self.order),
                                   forecast=lambda h, exog=None: np.full(h, -65000.0 if wild else 23050.0))

    monkeypatch.setattr(arima_module, "ARIMA", FakeArima)
    monkeypatch.setattr(F, "_differences", lambda series: 2)
    forecast, form = F.stat_forecast("AutoArima", y, 4, 1)
    assert form["order"] == [1, 2, 0] and np.allclose(forecast, 23050.0)
    forecast, form = F.stat_forecast("AutoArima", y, 4, 1, {"order": [1, 2, 1], "seasonal": [0, 0, 0, 0]})
    assert form["order"] == [1, 2, 0] and np.allclose(forecast, 23050.0)


@pytest.mark.parametrize("algorithm", ["ExponentialSmoothing", "AutoArima"])
def test_later_rolling_origins_filter_the_first_origins_estimates(algorithm, monkeypatch):
    """The parameters estimated at the first origin are kept; a later origin filters its newer points with them
    (no new estimation), and the same points give the same forecast."""
    from emulator import forecasting as F

    y = _monthly()
    estimates: dict = {}
    first, form = F.stat_forecast(algorithm, y[:72], 12, 12, None, estimates=estimates)
    assert estimates and estimates["length"] == 72
    again, same_form = F.stat_forecast(algorithm, y[:72], 12, 12, form, estimates=estimates)
    np.testing.assert_allclose(again, first, rtol=1e-6)
    assert same_form == form

    from statsmodels.tsa.arima.model import ARIMA
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    optimized = []
    real_fit = ExponentialSmoothing.fit

    def hw_fit(self, *args, **kwargs):  # Holt-Winters filters by a fit with every value given
        optimized.append(kwargs.get("optimized", True))
        return real_fit(self, *args, **kwargs)

    def arima_fit(*args, **kwargs):
        raise AssertionError("estimated again")

    monkeypatch.setattr(ExponentialSmoothing, "fit", hw_fit)
    monkeypatch.setattr(ARIMA, "fit", arima_fit)
    later, _ = F.stat_forecast(algorithm, y[:84], 12, 12, form, estimates=estimates)
    assert optimized == ([False] if algorithm == "ExponentialSmoothing" else [])
    assert np.isfinite(later).all() and np.mean(np.abs(later - y[84:96])) < 5.0


def test_a_statistical_member_fits_a_series_history_once_per_process(monkeypatch):
    """``amlstep predict`` asks for the forecast and then its quantiles: the same history is not fitted twice, and the
    forecasts kept are not pickled with the model."""
    import pickle
    from types import SimpleNamespace

    from emulator import forecasting as F

    fits = []
    real = F.stat_forecast

    def counted(*args, **kwargs):
        fits.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "stat_forecast", counted)
    member = F.ForecastMember("ExponentialSmoothing", forms={0: None})
    t = SimpleNamespace(seasonality=12, freq="MS")
    y, times = _monthly(60), pd.date_range("2020-01-01", periods=72, freq="MS")
    exog = np.zeros((72, 0))
    first = member.forecast(t, 0, y, exog, exog, times, 12)
    first[:] = 0.0  # a caller changing its copy changes nothing kept
    again = member.forecast(t, 0, y, exog, exog, times, 12)
    assert len(fits) == 1 and np.isfinite(again).all() and np.abs(again - y[-12:]).mean() < 10
    member.forecast(t, 0, y[:-1], exog, exog, times, 12)
    assert len(fits) == 2
    restored = pickle.loads(pickle.dumps(member))
    assert "_forecasts" not in restored.__dict__
    np.testing.assert_allclose(restored.forecast(t, 0, y, exog, exog, times, 12), again)
    assert len(fits) == 3


def test_a_statistical_childs_model_is_made_with_its_folds():
    """A statistical child's model is the form each series' folds chose: it comes with the cross-validation and its
    refit estimates nothing (each series' model is fitted when forecasting)."""
    from emulator import forecasting as F
    from emulator.task_types.registry import get_task

    settings = validate_settings({"task": "forecasting", "label_column_name": "sales", "forecasting_parameters": params(),
                                  "n_cross_validations": 2})
    task = get_task("forecasting")
    data = prepare_data(settings, frame(), None)
    fold = task.fold_data(settings, data, task.featurize(settings, data))
    spec = {"preprocessor": "", "algorithm": "ExponentialSmoothing", "params": {}}
    result = task.cross_validate(fold, spec, 1)
    model = result["model"]
    assert isinstance(model, F.ForecastMember) and model.algorithm == "ExponentialSmoothing"
    assert sorted(model.forms) == [0, 1] and all(form is not None for form in model.forms.values())
    assert result["refit_time"] > 0

    def no_fit(*args, **kwargs):
        raise AssertionError("refitted")

    chosen = {**spec, "params": result["params"]}
    original = F.stat_forecast
    F.stat_forecast = no_fit
    try:
        refitted = F.refit(fold, [chosen], 1)[0]
    finally:
        F.stat_forecast = original
    assert {k: tuple(v) for k, v in refitted.forms.items()} == {k: tuple(v) for k, v in model.forms.items()}



def _origins_loop(b_by_origin, lines):
    """An experiment's loop with two children scored on 3 rolling origins of 10 rows (the target is 0, ranges 1):
    a steady child off by 1 everywhere, and a child off by ``b_by_origin[k]`` on origin k."""
    from types import SimpleNamespace

    from emulator.engine import ChildResult, _Loop
    from emulator.tasks import FoldData

    rows = np.arange(30)
    splits = [(np.array([], dtype=int), part) for part in np.array_split(rows, 3)]
    extra = SimpleNamespace(row_series=np.zeros(30, dtype=int), ranges=np.ones(1), scales=np.ones(1))
    fold = FoldData("forecasting", np.zeros((30, 0)), np.zeros(30), None, splits, rows, None, -1.0, 1.0, 0, extra=extra)
    settings = validate_settings({"task": "forecasting", "label_column_name": "sales", "forecasting_parameters": params()})
    state = _Loop(settings, fold, "k", 0.0, None, None, 1, None, "AutoML", lines.append, "MeanCrossValidation")
    steady = np.ones((30, 1))
    other = np.concatenate([np.full(10, b) for b in b_by_origin])[:, None]
    for i, oof in enumerate((steady, other)):
        child = ChildResult(i, f"r_{i}", "", ("ExponentialSmoothing", "LightGBM")[i], {}, oof=oof, model=object())
        child.metrics = fold.kind.fold_metrics(fold, rows, oof)
        child.score = float(np.mean([fold.kind.primary_value(fold, state.metric, v, oof[v]) for _, v in splits]))
        state.children.append(child)
    state.best = state.children[0]
    return state


def test_the_voting_ensemble_is_bagged_over_the_origins_and_never_worse_than_its_best_member():
    # the second child is exact with the first on two origins and off by 4 on the third: chosen on every origin and
    # with that origin left out (half the weight), not with another left out; bagged, a quarter of the weight
    lines = []
    lucky = _origins_loop([-1.0, -1.0, 4.0], lines)
    lucky.run_ensembles()
    voting = lucky.children[-1]
    assert voting.algorithm == "VotingEnsemble" and voting.status == "Completed"
    assert sorted(voting.members) == [(0, 0.75), (1, 0.25)]
    assert voting.score == pytest.approx(11 / 12) and lucky.best is voting  # off by 0.5, 0.5 and 1.75
    # off by 6: an eighth of the weight bagged, which would be worse than the first child alone (25/24 against 1):
    # the weights chosen on every origin (the first child alone), and that child stays the best
    worse = _origins_loop([-1.0, -1.0, 6.0], lines)
    worse.run_ensembles()
    voting = worse.children[-1]
    assert voting.members == [(0, 1.0)] and voting.score == pytest.approx(1.0) and worse.best is worse.children[0]
    assert lines[-1] == ("       VotingEnsemble is not better than iteration 0 ExponentialSmoothing on validation: "
                         "that child stays the best")
    # a member that complements the best on every origin: half the weight on every origin and with any left out
    steady = _origins_loop([-1.0, -1.0, -1.0], [])
    steady.run_ensembles()
    assert steady.children[-1].score == pytest.approx(0.0) and steady.best is steady.children[-1]
    assert sorted(steady.children[-1].members) == [(0, 0.5), (1, 0.5)]


def test_a_series_id_is_one_series_however_the_table_typed_it():
    """A CSV id column with an empty cell reads as floats: 1.0 there is series 1 of the training rows."""
    from emulator.forecasting import _id_text

    assert _id_text(1) == _id_text(1.0) == _id_text("1") == _id_text(np.int64(1)) == "1"
    assert _id_text(1.5) == "1.5" and _id_text("a") == "a" and _id_text(None) == "None"
