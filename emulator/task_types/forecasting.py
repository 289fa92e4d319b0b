"""Forecasting: time series in, a forecaster out (Azure's third AutoML task).

Settings come as ``forecasting_parameters`` (ours or Azure's ``ForecastingParameters``) or as the
older flat keywords; validation is rolling-origin cross-validation; models are Azure's statistical
ones plus the regression learners on lag features; the model is a ``ForecastingPipelineWrapper``
with ``forecast``/``forecast_quantiles``/``rolling_forecast``. The work is in ``emulator.forecasting``.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from framework import StepDefinitionError
from framework.automl import FLAT_ALIASES, PARAMETERS, check_parameters, metric_names, parameters_of

from .base import Task
from .regression import Regression

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ..tasks import FoldData

STATISTICAL = ("Naive", "SeasonalNaive", "Average", "SeasonalAverage", "ExponentialSmoothing", "AutoArima", "Arimax",
               "Prophet")
# settings Azure's forecasting refuses
_NOT_FOR_FORECASTING = ("validation_size", "cv_split_column_names", "weight_column_name")


class Forecasting(Task):
    name = "forecasting"
    primary_metrics = Regression.primary_metrics
    default_primary_metric = "normalized_root_mean_squared_error"
    models = ("AutoArima", "Prophet", "Naive", "SeasonalNaive", "Average", "SeasonalAverage", "ExponentialSmoothing",
              "Arimax", "ElasticNet", "GradientBoosting", "DecisionTree", "KNN", "LassoLars", "SGD", "RandomForest",
              "ExtremeRandomTrees", "LightGBM", "XGBoostRegressor")
    metrics = metric_names.FORECASTING_METRICS
    leader_metrics = ("normalized_root_mean_squared_error", "normalized_mean_absolute_error",
                      "mean_absolute_scaled_error", "symmetric_mean_absolute_percentage_error")
    stack_ensemble_default = False
    # a few rolling origins (3 to 6 by default) choose the VotingEnsemble's weights: bagged over them, selection scored
    # better on the origin it had not seen than Caruana's on every origin on 7 of 11 datasets, worse on 2
    # (benchmarks/README.md, issue 25)
    bagged_voting = True
    extra_settings = {"forecasting_parameters": None, **PARAMETERS, **{k: None for k in FLAT_ALIASES}}

    # -- settings ----------------------------------------------------------------------------------
    def validate_settings(self, settings: dict[str, Any], given: Sequence[str], where: str) -> None:
        """Merge forecasting_parameters and the flat keywords, check them with Azure's messages."""
        try:
            params = parameters_of(settings.get("forecasting_parameters"))
        except StepDefinitionError as exc:
            raise StepDefinitionError(f"{where}: {exc}") from None
        object_given = "forecasting_parameters" in given and settings.get("forecasting_parameters") is not None
        for name in [*PARAMETERS, *FLAT_ALIASES]:
            value = settings.pop(name, None)
            if name not in given or (value is None and name != "short_series_handling_configuration"):
                continue
            target = FLAT_ALIASES.get(name, name)
            if object_given and target in params and params[target] not in (None, PARAMETERS[target], value):
                raise StepDefinitionError(f"{where}: {name}={value!r} conflicts with forecasting_parameters' "
                                          f"{target}={params[target]!r}; set it in one place")
            params[target] = value
        settings["forecasting_parameters"] = check_parameters(params, where)
        for name in _NOT_FOR_FORECASTING:
            if settings.get(name) is not None:
                raise StepDefinitionError(f"{where}: {name} is not supported for forecasting (Azure validates "
                                          f"forecasts by rolling-origin cross-validation: n_cross_validations, "
                                          f"cv_step_size)")
        fp = settings["forecasting_parameters"]
        label = settings["label_column_name"]
        if label == fp["time_column_name"] or label in (fp["time_series_id_column_names"] or []):
            raise StepDefinitionError(f"{where}: label column {label!r} is also the time column or a time series id "
                                      f"column")
        if "enable_stack_ensemble" in given and settings.get("enable_stack_ensemble"):
            settings["enable_stack_ensemble"] = False
            settings["unhonoured"] = sorted({*settings["unhonoured"], "enable_stack_ensemble"})
        unhonoured = [f"forecasting_parameters.{k}" for k in ("use_stl", "feature_lags",
                                                                "features_unknown_at_forecast_time") if fp.get(k)]
        if fp["country_or_region_for_holidays"] and importlib.util.find_spec("holidays") is None:
            unhonoured.append("forecasting_parameters.country_or_region_for_holidays (the holidays package is not "
                              "installed)")
        settings["unhonoured"] = sorted({*settings["unhonoured"], *unhonoured})
        unavailable = self.unavailable_models()
        usable = [m for m in self.models if m not in unavailable
                  and (settings["allowed_models"] is None or m in settings["allowed_models"])
                  and m not in (settings["blocked_models"] or [])]
        if not usable:
            reasons = "; ".join(f"{m}: {why}" for m, why in unavailable.items())
            raise StepDefinitionError(f"{where}: allowed_models and blocked_models leave no model to try ({reasons})")

    def unavailable_models(self) -> dict[str, str]:
        if importlib.util.find_spec("prophet") is None:
            return {"Prophet": "not available: the prophet package is not installed"}
        return {}

    # -- data -----------------------------------------------------------------------------------
    def encode_labels(self, label: str, y: pd.Series) -> tuple[np.ndarray, np.ndarray | None]:
        return Regression.encode_labels(self, label, y)  # type: ignore[arg-type]

    def label_range(self, y: np.ndarray, n_train: int) -> tuple[float, float]:
        return Regression.label_range(self, y, n_train)  # type: ignore[arg-type]

    def prepare_data(self, settings: Mapping[str, Any], training: pd.DataFrame,
                     validation: pd.DataFrame | None) -> Any:
        from ..forecasting import prepare

        return prepare(self, settings, training, validation)

    def featurize(self, settings: Mapping[str, Any], data: Any) -> Any:
        from ..forecasting import TimeSeriesTransformer

        return TimeSeriesTransformer(data.extra, settings.get("featurization", "auto"))

    def fold_data(self, settings: Mapping[str, Any], data: Any, featurizer: Any) -> FoldData:
        import numpy as np

        from ..forecasting import series_fold
        from ..tasks import FoldData

        sf = series_fold(featurizer)
        actual = np.concatenate([np.concatenate([y[sf.cut(k, s):sf.cut(k, s) + sf.horizon] for s, y in enumerate(sf.ys)])
                                 for k in range(sf.n_folds)])
        return FoldData(self.name, np.zeros((len(actual), 0)), actual, None, data.splits, np.arange(len(actual)), None,
                        data.y_min, data.y_max, int(settings.get("random_state", 0) or 0), extra=sf)

    def guardrails(self, data: Any) -> list[dict[str, Any]]:
        prepared = data.extra
        notes = prepared.notes
        ids = prepared.id_columns
        freq_text = (f"The frequency '{prepared.freq}' was detected; all data points are aligned with it."
                     if notes["freq_detected"] else f"The frequency '{prepared.freq}' given by freq was used.")
        checks = [{"type": "Frequency detection", "status": "Done" if notes["freq_detected"] else "Passed",
                   "description": freq_text + (f" {notes['aggregated']} rows were aggregated with "
                                               f"target_aggregation_function." if notes.get("aggregated") else ""),
                   "columns": [prepared.time_column]},
                  {"type": "Time series ID detection", "status": "Passed",
                   "description": (f"{len(prepared.keys)} time series identified by {', '.join(ids)}." if ids
                                   else "One time series (no time_series_id_column_names)."),
                   "columns": ids}]
        short = notes["short_series"]
        changed = short["padded"] or short["dropped"]
        checks.append({"type": "Short series handling", "status": "Done" if changed else "Passed",
                       "description": (f"Each series needs {short['required']} points for the folds; "
                                       + (f"{len(short['padded'])} short series were padded" if short["padded"] else "")
                                       + ("; " if short["padded"] and short["dropped"] else "")
                                       + (f"{len(short['dropped'])} short series were dropped" if short["dropped"]
                                          else "") + "." if changed else
                                       f"Every series has at least the {short['required']} points the folds need."),
                       "columns": short["padded"] + short["dropped"]})
        filled, missing = notes["filled_periods"], notes["missing_target"]
        checks.append({"type": "Missing values in the time series", "status": "Done" if filled or missing else "Passed",
                       "description": (f"{filled} missing period(s) were inserted and {missing} missing target "
                                       f"value(s) found; target values were imputed by interpolation."
                                       if filled or missing else "No missing periods or target values were found."),
                       "columns": [prepared.label] if filled or missing else []})
        lookback = []
        if prepared.lags:
            lookback.append(f"target lags {prepared.lags}")
        if prepared.window:
            lookback.append(f"a rolling window of {prepared.window} periods (mean, min, max)")
        checks.append({"type": "Lookback features", "status": "Done" if lookback else "Passed",
                       "description": ("The regression learners use " + " and ".join(lookback) + "." if lookback else
                                       "No lookback features (target_lags and target_rolling_window_size are off)."),
                       "columns": [prepared.label] if lookback else []})
        checks.append({"type": "Forecast settings", "status": "Passed",
                       "description": (f"forecast_horizon {prepared.horizon}, seasonality {prepared.seasonality}, "
                                       f"{prepared.n_folds} rolling-origin folds {prepared.step} period(s) apart."),
                       "columns": []})
        return checks

    # -- models ---------------------------------------------------------------------------------
    def make_estimator(self, algorithm: str, params: dict[str, Any], seed: int, threads: int = 1) -> Any:
        from ..models import regressor

        return regressor(algorithm, params, seed, threads)

    def cross_validate(self, data: FoldData, spec: dict[str, Any], threads: int) -> dict[str, Any] | None:
        from ..forecasting import cross_validate

        return cross_validate(data, spec, threads)

    def refit(self, data: FoldData, specs: list[dict[str, Any]], threads: int) -> list[Any] | None:
        from ..forecasting import refit

        return refit(data, specs, threads)

    def fold_metrics(self, data: FoldData, valid: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
        from ..forecasting import forecast_metrics

        return forecast_metrics(data, valid, prediction)

    def primary_value(self, data: FoldData, metric: str, valid: np.ndarray, prediction: np.ndarray) -> float:
        from ..forecasting import primary_forecast_value

        return primary_forecast_value(data, metric, valid, prediction)

    def meta_learner(self, seed: int) -> Any:
        from sklearn.linear_model import RidgeCV

        return RidgeCV(alphas=(0.01, 0.1, 1.0, 10.0))

    def assemble(self, data: FoldData, best: Any, members: list[Any], fitted: list[Any], featurizer: Any,
                 oofs: list[np.ndarray]) -> Any | None:
        """The ForecastingPipelineWrapper: the members (one, or a VotingEnsemble's) with their weights."""
        import numpy as np

        from ..forecasting import ForecastingPipelineWrapper, residual_spread

        weights = [w for _, w in best.members] if best.members else [1.0]
        oof = best.oof if best.oof is not None else np.average(np.stack(oofs), axis=0, weights=weights)
        sigma, by_horizon = residual_spread(data.extra, data.y, oof)
        return ForecastingPipelineWrapper(featurizer, list(zip(fitted, weights)), sigma, by_horizon, best.algorithm)

    # -- predict and report ---------------------------------------------------------------------
    def prediction_frame(self, model: Any, prepared: pd.DataFrame, label: str) -> pd.DataFrame | None:
        """``amlstep predict``: rows with a missing label are forecast after the known ones; rows that all
        have a label (the history) are followed by the next ``forecast_horizon`` periods of each series."""
        from ..forecasting import prediction_table

        return prediction_table(model, prepared, label)

    def report_evaluation(self, model: Any, X: pd.DataFrame, y: np.ndarray, settings: Mapping[str, Any],
                          notes: list[str]) -> Any:
        from ..report_plots import forecasting_evaluation

        return forecasting_evaluation(model, X, y, settings, notes)
