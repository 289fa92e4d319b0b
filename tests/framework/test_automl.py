"""Azure's AutoML settings contract (framework.automl): SDK-neutral, pure Python, Azure's names and messages."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from framework import StepDefinitionError
from framework.automl import (CLASSIFICATION_METRICS, FLAT_ALIASES, MINIMIZE, PARAMETERS, REGRESSION_METRICS,
                              ForecastingParameters, check_parameters, parameters_of)


def test_forecasting_parameters_as_azure_names_them():
    ours = ForecastingParameters(time_column_name="date", forecast_horizon=7, time_series_id_column_names="store")
    assert list(ours.to_dict()) == list(PARAMETERS)
    assert parameters_of(ours)["forecast_horizon"] == 7
    assert parameters_of({"max_horizon": 3, "grain_column_names": ["a"]}) == {"forecast_horizon": 3,
                                                                              "time_series_id_column_names": ["a"]}
    assert FLAT_ALIASES["max_horizon"] == "forecast_horizon"
    checked = check_parameters({"time_column_name": "date", "target_lags": [3, 1, 3]}, "step 'fc'")
    assert checked["target_lags"] == [1, 3] and checked["cv_step_size"] == "auto"


@pytest.mark.parametrize("params, message", [
    ({"time_column_name": None}, "step 'fc': An empty value for argument [time_column_name] is provided."),
    ({"time_column_name": "d", "forecast_horizon": 0},
     "step 'fc': Value for argument [forecast_horizon] is out of range (Range: [1 - inf]), got 0."),
    ({"time_column_name": "d", "use_stl": "trend"},
     "step 'fc': Invalid argument(s) 'use_stl (trend)' specified. Supported value(s): 'None, season, season_trend'."),
])
def test_bad_forecasting_parameters_get_azures_message(params, message):
    with pytest.raises(StepDefinitionError, match=re.escape(message)):
        check_parameters(params, "step 'fc'")
    with pytest.raises(StepDefinitionError, match=re.escape("forecasting_parameters has unknown key(s) 'horizon'")):
        parameters_of({"horizon": 3})


def test_metric_names_and_goals():
    assert "AUC_weighted" in CLASSIFICATION_METRICS and "r2_score" in REGRESSION_METRICS
    assert "log_loss" in MINIMIZE and "accuracy" not in MINIMIZE


def test_the_contract_loads_without_pandas():
    code = "import sys, framework.automl\nprint(sorted(m for m in ('pandas', 'numpy', 'emulator') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr
