"""Azure Automated ML's settings contract, SDK-neutral and pure Python (no pandas at import).

What Azure names and checks, shared by whoever reads AutoML settings: the AutoML step's
emulator, the compilers that write ``AutoMLConfig`` (SDK v1) or an AutoML job node (SDK v2), and
the plan. ``ForecastingParameters`` (Azure's forecasting settings, with Azure's messages) and
the metric names with their goals.
"""

from __future__ import annotations

from . import metric_names
from .forecasting_parameters import FLAT_ALIASES, PARAMETERS, ForecastingParameters, check_parameters, parameters_of
from .metric_names import CLASSIFICATION_METRICS, FORECASTING_METRICS, MINIMIZE, REGRESSION_METRICS

__all__ = ["CLASSIFICATION_METRICS", "FLAT_ALIASES", "FORECASTING_METRICS", "MINIMIZE", "PARAMETERS", "REGRESSION_METRICS",
           "ForecastingParameters", "check_parameters", "metric_names", "parameters_of"]
