"""``ForecastingParameters``: forecasting's settings as Azure names them (SDK v1), with Azure's messages.

``from framework.automl import ForecastingParameters`` (or ``from emulator import ForecastingParameters``) as
``from azureml.automl.core.forecasting_parameters import ForecastingParameters``.
``AutoMLConfig(task="forecasting", forecasting_parameters=...)`` takes either
(Azure's own object is read through its properties), or the older flat keywords
(``time_column_name=...``, ``max_horizon=...``, ``grain_column_names=...``). Pure Python: no pandas.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import StepDefinitionError

# name -> default, in Azure's order
PARAMETERS: dict[str, Any] = {
    "time_column_name": None,
    "forecast_horizon": 1,
    "time_series_id_column_names": None,
    "freq": None,
    "target_lags": None,
    "feature_lags": None,
    "target_rolling_window_size": None,
    "seasonality": "auto",
    "use_stl": None,
    "short_series_handling_configuration": "auto",
    "target_aggregation_function": None,
    "country_or_region_for_holidays": None,
    "cv_step_size": "auto",
    "drop_column_names": None,
    "features_unknown_at_forecast_time": None,
}
# AutoMLConfig's older flat keywords -> the parameter they set
FLAT_ALIASES = {"max_horizon": "forecast_horizon", "grain_column_names": "time_series_id_column_names",
                "country_or_region": "country_or_region_for_holidays", "holiday_country": "country_or_region_for_holidays",
                "group_column_names": "time_series_id_column_names"}
SHORT_SERIES = ("auto", "pad", "drop", None)
AGGREGATIONS = ("sum", "max", "min", "mean")
USE_STL = (None, "season", "season_trend")
FREQ_URL = "https://pandas.pydata.org/pandas-docs/stable/user_guide/timeseries.html#dateoffset-objects"
# Azure keeps an empty time column name as this sentinel
_EMPTY_TIME_COLUMN = "_EMPTY_TIME_COLUMN_NAME"


class ForecastingParameters:
    """Forecasting settings (Azure's ``ForecastingParameters``); pass it as ``forecasting_parameters=``.

    Args mirror Azure's: ``time_column_name`` (required), ``forecast_horizon`` (int or ``"auto"``),
    ``time_series_id_column_names``, ``freq`` (a pandas offset alias; detected when absent),
    ``target_lags`` (int, list of ints or ``"auto"``), ``feature_lags`` (``"auto"`` or None),
    ``target_rolling_window_size`` (int >= 2 or ``"auto"``), ``seasonality`` (int or ``"auto"``),
    ``use_stl``, ``short_series_handling_configuration`` (``auto``/``pad``/``drop``/None),
    ``target_aggregation_function`` (``sum``/``max``/``min``/``mean``, needs ``freq``),
    ``country_or_region_for_holidays`` (ISO code), ``cv_step_size`` (int or ``"auto"``).
    """

    def __init__(self, time_column_name: str | None = None, forecast_horizon: int | str = 1,
                 time_series_id_column_names: str | list[str] | None = None, group_column_names: Any = None,
                 target_lags: int | list[int] | str | None = None, feature_lags: str | None = None,
                 target_rolling_window_size: int | str | None = None, holiday_country: str | None = None,
                 seasonality: int | str | None = "auto", country_or_region_for_holidays: str | None = None,
                 use_stl: str | None = None, short_series_handling_configuration: str | None = "auto",
                 freq: str | None = None, target_aggregation_function: str | None = None,
                 cv_step_size: int | str | None = "auto", features_unknown_at_forecast_time: Any = None,
                 drop_column_names: Any = None, validate_parameters: bool = False) -> None:
        self.time_column_name = time_column_name
        self.forecast_horizon = forecast_horizon
        self.time_series_id_column_names = time_series_id_column_names or group_column_names
        self.target_lags = target_lags
        self.feature_lags = feature_lags
        self.target_rolling_window_size = target_rolling_window_size
        self.seasonality = seasonality
        self.country_or_region_for_holidays = country_or_region_for_holidays or holiday_country
        self.use_stl = use_stl
        self.short_series_handling_configuration = short_series_handling_configuration
        self.freq = freq
        self.target_aggregation_function = target_aggregation_function
        self.cv_step_size = cv_step_size
        self.features_unknown_at_forecast_time = features_unknown_at_forecast_time
        self.drop_column_names = drop_column_names
        if validate_parameters:
            self.validate_parameters()

    def validate_parameters(self) -> None:
        """Raise Azure's error for the first bad value."""
        check_parameters(self.to_dict(), "ForecastingParameters")

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in PARAMETERS}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ForecastingParameters) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if v != PARAMETERS[k])
        return f"ForecastingParameters({shown})"


def parameters_of(value: Any) -> dict[str, Any]:
    """The parameters held by ours, Azure's ``ForecastingParameters`` (read through its properties) or a dict."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in PARAMETERS and k not in FLAT_ALIASES]
        if unknown:
            raise StepDefinitionError(f"forecasting_parameters has unknown key(s) {', '.join(map(repr, unknown))}; "
                                      f"valid keys: {', '.join(PARAMETERS)}")
        return {str(FLAT_ALIASES.get(k, k)): v for k, v in value.items()}
    if not all(hasattr(value, name) for name in ("time_column_name", "forecast_horizon")):
        raise StepDefinitionError(f"forecasting_parameters expects a ForecastingParameters (emulator's or "
                                  f"azureml.automl.core.forecasting_parameters'), got {type(value).__name__}")
    out = {}
    for name in PARAMETERS:
        try:
            out[name] = getattr(value, name)
        except Exception:  # a property Azure computes lazily and cannot yet
            out[name] = PARAMETERS[name]
    if out.get("time_column_name") == _EMPTY_TIME_COLUMN:
        out["time_column_name"] = None
    return out


def _names(value: Any, argument: str, where: str) -> list[str] | None:
    if value is None:
        return None
    names = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
    if names is None or not all(isinstance(n, str) and n for n in names):
        raise StepDefinitionError(f"{where}: Argument [{argument} ({value!r})] is of unsupported type: "
                                  f"[{type(value).__name__}]. Supported type(s): [str, list of str]")
    return names


def _out_of_range(argument: str, value: Any, low: Any, high: Any, where: str) -> StepDefinitionError:
    return StepDefinitionError(f"{where}: Value for argument [{argument}] is out of range (Range: [{low} - {high}]), "
                               f"got {value!r}.")


def _choice(argument: str, value: Any, supported: tuple[Any, ...], where: str) -> None:
    if value not in supported:
        raise StepDefinitionError(f"{where}: Invalid argument(s) '{argument} ({value})' specified. Supported value(s): "
                                  f"'{', '.join(map(str, supported))}'.")


def _int_or_auto(argument: str, value: Any, minimum: int, where: str, *, none: bool) -> Any:
    if value is None and none:
        return None
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int):
        kinds = "int, 'auto'" + (" or None" if none else "")
        raise StepDefinitionError(f"{where}: Argument [{argument}] is of unsupported type: [{type(value).__name__}]. "
                                  f"Supported type(s): [{kinds}]")
    if value < minimum:
        raise _out_of_range(argument, value, minimum, "inf", where)
    return value


def check_parameters(params: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Every forecasting parameter checked as Azure checks it; returns them normalised (plain JSON values)."""
    p = {**PARAMETERS, **params}
    time_column = p["time_column_name"]
    if not time_column:
        raise StepDefinitionError(f"{where}: An empty value for argument [time_column_name] is provided. "
                                  f"Forecasting needs time_column_name (the column of dates or times)")
    if not isinstance(time_column, str):
        raise StepDefinitionError(f"{where}: Argument [time_column_name] is of unsupported type: "
                                  f"[{type(time_column).__name__}]. Supported type(s): [str]")
    out: dict[str, Any] = {"time_column_name": time_column}
    out["forecast_horizon"] = _int_or_auto("forecast_horizon", p["forecast_horizon"], 1, where, none=False)
    ids = _names(p["time_series_id_column_names"], "time_series_id_column_names", where)
    if ids and time_column in ids:
        raise StepDefinitionError(f"{where}: Time column name {time_column!r} is also in time_series_id_column_names "
                                  f"{ids!r}; a column cannot be both")
    out["time_series_id_column_names"] = ids
    freq = p["freq"]
    if freq is not None and not isinstance(freq, str):
        raise StepDefinitionError(f"{where}: The dataset frequency must be a string or None. The string must represent "
                                  f"a pandas date offset. Please refer to documentation on freq parameter: {FREQ_URL}")
    if freq is not None:
        from pandas.tseries.frequencies import to_offset

        try:
            to_offset(freq)
        except ValueError:
            raise StepDefinitionError(f"{where}: The dataset frequency must be a string or None. The string must "
                                      f"represent a pandas date offset. Please refer to documentation on freq "
                                      f"parameter: {FREQ_URL} (got {freq!r})") from None
    out["freq"] = freq
    lags = p["target_lags"]
    if lags is not None and lags != "auto":
        values = [lags] if isinstance(lags, int) and not isinstance(lags, bool) else lags
        if not isinstance(values, (list, tuple)) or not values or \
                not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise StepDefinitionError(f"{where}: Argument [target_lags ({lags!r})] is of unsupported type: "
                                      f"[{type(lags).__name__}]. Supported type(s): [int, list of int, 'auto' or None]")
        for value in values:
            if value < 1:
                raise _out_of_range("target_lags", value, 1, "inf", where)
        lags = sorted(set(values))
    out["target_lags"] = lags
    _choice("feature_lags", p["feature_lags"], ("auto", None), where)
    out["feature_lags"] = p["feature_lags"]
    window = _int_or_auto("target_rolling_window_size", p["target_rolling_window_size"], 2, where, none=True)
    out["target_rolling_window_size"] = window
    out["seasonality"] = _int_or_auto("seasonality", p["seasonality"], 1, where, none=True) or 1
    _choice("use_stl", p["use_stl"], USE_STL, where)
    out["use_stl"] = p["use_stl"]
    _choice("short_series_handling_configuration", p["short_series_handling_configuration"], SHORT_SERIES, where)
    out["short_series_handling_configuration"] = p["short_series_handling_configuration"]
    aggregation = p["target_aggregation_function"]
    _choice("target_aggregation_function", aggregation, (*AGGREGATIONS, None), where)
    if aggregation is not None and freq is None:
        raise StepDefinitionError(f"{where}: Please provide the freq (forecast frequency) parameter to perform the "
                                  f"data set aggregation.")
    out["target_aggregation_function"] = aggregation
    country = p["country_or_region_for_holidays"]
    if country is not None and (not isinstance(country, str) or len(country) != 2 or not country.isalpha()):
        raise StepDefinitionError(f"{where}: country_or_region_for_holidays expects an ISO 3166 two-letter code such "
                                  f"as 'US' or 'GB', got {country!r}")
    out["country_or_region_for_holidays"] = country.upper() if country else None
    out["cv_step_size"] = _int_or_auto("cv_step_size", p["cv_step_size"], 1, where, none=True) or "auto"
    out["drop_column_names"] = _names(p["drop_column_names"], "drop_column_names", where)
    unknown = p["features_unknown_at_forecast_time"]
    out["features_unknown_at_forecast_time"] = _names(unknown, "features_unknown_at_forecast_time", where)
    return out
