"""The offline stand-ins for Azure: the Automated ML emulator and its settings.

``from emulator import AutoMLConfig, Experiment`` as ``from azureml.train.automl import AutoMLConfig``
and ``from azureml.core import Experiment``. Heavy modules (scikit-learn, xgboost, lightgbm) load
only when an experiment runs.
"""

from __future__ import annotations

from typing import Any

from framework.automl import ForecastingParameters

from .settings import FeaturizationConfig, validate_settings

__all__ = ["AutoMLChildRun", "AutoMLConfig", "AutoMLRun", "Experiment", "FeaturizationConfig", "ForecastingParameters",
           "validate_settings"]


def __getattr__(name: str) -> Any:
    if name in ("AutoMLConfig", "Experiment", "AutoMLRun", "AutoMLChildRun"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'emulator' has no attribute {name!r}")
