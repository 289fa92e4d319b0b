"""Forecasting: dataprep_macro -> AutoML (task="forecasting") -> register model.

The same shape as the Titanic pipeline; the AutoML step forecasts the next 8 quarters of six US
macroeconomic series (statsmodels' macrodata, shipped with the package).

    pip install -e examples/macro_forecast/amlstep-macro-forecast
    amlstep run examples/macro_forecast
    amlstep predict MacroForecast $(python -c "import amlstep_macro_forecast as m; print(m.macrodata_csv())")
"""

from amlstep_macro_forecast import macrodata_csv

from emulator import ForecastingParameters
from framework import AutoMLStep, Dataset, Pipeline, PipelineParameter, Step

macro_ds = Dataset("macro_ds", sources=(macrodata_csv(),), description="US macro indicators (statsmodels macrodata)")

model_name = PipelineParameter("model_name", default_value="MacroForecast")
timeout_minutes = PipelineParameter("experiment_timeout_minutes", default_value=15)
iterations = PipelineParameter("iterations", default_value=12)

pipeline = Pipeline(
    experiment="macro_forecast",
    steps=[
        Step("dataprep_macro", name="dataprep", inputs={"macro_ds": macro_ds}, outputs={"prepped_data": "prepped_data"}),
        AutoMLStep(
            name="AutoML_Forecasting",
            training_data="prepped_data",
            metrics_output="metrics_data",
            model_output="best_model_data",
            task="forecasting",
            primary_metric="normalized_root_mean_squared_error",
            label_column_name="value",
            forecasting_parameters=ForecastingParameters(
                time_column_name="date",
                time_series_id_column_names=["series"],
                forecast_horizon=8,
                target_lags="auto",
                target_rolling_window_size="auto",
                freq="QS",
            ),
            n_cross_validations=3,
            iterations=iterations,
            experiment_timeout_minutes=timeout_minutes,
            iteration_timeout_minutes=10,
            enable_early_stopping=True,
        ),
        Step("register_model", inputs={"model": "best_model_data"}, params={"model_name": model_name},
             allow_reuse=False),
    ],
    outputs={"metrics_output": "metrics_data", "model_output": "best_model_data"},
    compute_target="cpu-cluster",
)
