"""Forecasting: time series preparation, rolling-origin folds, the models and the fitted forecaster.

What Azure Automated ML does for ``task="forecasting"``, offline:

- the data is checked and made regular: the time column parsed, each series (one per value of
  ``time_series_id_column_names``) sorted, duplicates refused (or aggregated with
  ``target_aggregation_function`` and ``freq``), the frequency detected when ``freq`` is absent,
  missing periods inserted and the target imputed, short series padded or dropped;
- validation is rolling-origin cross-validation: ``n_cross_validations`` origins ``cv_step_size``
  periods apart, each fold fitted on the history before its origin and scored on the next
  ``forecast_horizon`` periods of every series;
- models: the statistical ones (``Naive``, ``SeasonalNaive``, ``Average``, ``SeasonalAverage``,
  ``ExponentialSmoothing``, ``AutoArima``, ``Arimax``, ``Prophet`` when installed) fitted per series
  with statsmodels, and the regression learners fitted on all series at once on lag, rolling-window,
  calendar, holiday and exogenous features, one row per (origin, horizon), the target relative to the
  series level at the origin;
- the fitted model (``ForecastingPipelineWrapper``) has Azure's ``forecast``, ``forecast_quantiles``
  and ``rolling_forecast``.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

STATISTICAL = ("Naive", "SeasonalNaive", "Average", "SeasonalAverage", "ExponentialSmoothing", "AutoArima", "Arimax",
               "Prophet")
SEASONALITY_BY_FREQ = {"h": 24, "D": 7, "B": 5, "W": 52, "M": 12, "Q": 4, "Y": 1, "A": 1, "min": 60, "s": 60}
# periods until the next coarser calendar unit: how far 'auto' lags look (Azure: twice this)
LOOKBACK_BY_FREQ = {"h": 24, "D": 7, "B": 5, "W": 4, "M": 12, "Q": 4, "Y": 2, "A": 2, "min": 60, "s": 60}
CALENDAR_PARTS = ("year", "quarter", "month", "week", "day", "dayofweek", "dayofyear", "hour", "minute")
STAT_HISTORY = 600  # the statistical models see at most the last 600 points of a series
ARIMA_HISTORY = 300  # ARIMA at most the last 300
MAX_DESIGN_ROWS = 40_000
FORECAST_MEMO_SIZE = 10_000  # statistical forecasts kept per member and process (by series history)
TARGET = "_automl_target_col"


def _error(message: str) -> Exception:
    from .engine import AutoMLDataError

    return AutoMLDataError(message)


def _freq_key(freq: str) -> str:
    """'MS', 'ME', 'M', 'QS-DEC', 'W-SUN', '15min' -> the family used for seasonality and lookback."""
    from pandas.tseries.frequencies import to_offset

    name = type(to_offset(freq)).__name__
    for prefix, key in (("Month", "M"), ("Quarter", "Q"), ("Year", "Y"), ("Week", "W"), ("BusinessDay", "B"),
                        ("Day", "D"), ("Hour", "h"), ("Minute", "min"), ("Second", "s")):
        if name.startswith(prefix) or name == prefix:
            return key
    return "D"


# -- preparation --------------------------------------------------------------------------------
@dataclass
class PreparedSeries:
    """The regular series of an experiment, and the settings made concrete ('auto' resolved)."""

    label: str
    time_column: str
    id_columns: list[str]
    exog_columns: list[str]
    freq: str
    horizon: int
    seasonality: int
    lags: list[int]
    window: int | None
    n_folds: int
    step: int
    country: str | None
    frame: pd.DataFrame  # long, regular, imputed: ids, time, label, exogenous columns
    keys: list[tuple[Any, ...]]
    notes: dict[str, Any] = field(default_factory=dict)
    day_first: bool = False  # the time column was written day first (31/01/2020): so are the times to forecast


def prepare(task: Any, settings: Mapping[str, Any], training: pd.DataFrame, validation: pd.DataFrame | None) -> Any:
    """Check and regularise the series, resolve 'auto' settings, build the rolling-origin folds."""
    from framework import did_you_mean as _did_you_mean

    from .engine import PreparedData, _check_finite_label

    fp = settings["forecasting_parameters"]
    label, time_column = settings["label_column_name"], fp["time_column_name"]
    ids = list(fp["time_series_id_column_names"] or [])
    if validation is not None:
        raise _error("validation_data is not supported for forecasting by the emulator: rolling-origin "
                     "cross-validation (n_cross_validations, cv_step_size) validates the model; append the "
                     "validation rows to the training data")
    if training is None or len(training.columns) == 0 or len(training) == 0:
        raise _error("the training data is empty")
    duplicated = sorted({str(c) for c in training.columns[training.columns.duplicated()]})
    if duplicated:
        raise _error(f"the training data has duplicate column names: {', '.join(map(repr, duplicated))}")
    for what, column in [("label column", label), ("time column", time_column)] + [
            ("time series id column", c) for c in ids]:
        if column not in training.columns:
            raise _error(f"{what} {column!r} is not in the training data{_did_you_mean(column, training.columns)}; "
                         f"columns: {', '.join(map(repr, map(str, training.columns)))}")
    frame = training.drop(columns=[c for c in fp.get("drop_column_names") or [] if c in training.columns])
    frame = frame.reset_index(drop=True)
    from .featurize import reads_day_first

    day_first = reads_day_first(frame[time_column])
    frame[time_column] = parse_times(frame[time_column], time_column, day_first)
    _check_finite_label(label, task, frame[label], "")
    numeric = pd.to_numeric(frame[label], errors="coerce")
    bad = frame[label][numeric.isna() & frame[label].notna()]
    if len(bad):
        raise _error(f"label column {label!r} must be numeric for forecasting; found values like "
                     f"{', '.join(map(repr, bad.astype(str).unique()[:3]))}")
    frame[label] = numeric.astype(float)
    if frame[label].isna().all():
        raise _error(f"label column {label!r} has no values (every row is missing)")
    notes: dict[str, Any] = {"missing_target": int(frame[label].isna().sum())}
    freq = fp["freq"]
    aggregation = fp["target_aggregation_function"]
    if aggregation:
        frame, notes["aggregated"] = _aggregate(frame, label, time_column, ids, freq, aggregation)
    key_columns = ids + [time_column]
    dup = frame.duplicated(key_columns, keep=False)
    if dup.any():
        if ids:
            raise _error(f"Found duplicated rows for {time_column} and {ids} combinations. Please make sure the time "
                         f"series identifier setting is correct so that each series represents one time-series, or "
                         f"clean the data to make sure there are no duplicates before passing to AutoML. If the "
                         f"dataset needs to be aggregated, please provide freq and target_aggregation_function "
                         f"parameters and run AutoML again. ({int(dup.sum())} rows, e.g. "
                         f"{_row_text(frame.loc[dup].iloc[0], key_columns)})")
        raise _error(f"The specified time column, '{time_column}', contains rows with duplicate timestamps. If your "
                     f"data contains multiple time series, review the time series identifier column setting to "
                     f"define the time series identifiers. If the dataset needs to be aggregated, please provide "
                     f"freq and target_aggregation_function parameters and run AutoML again. ({int(dup.sum())} rows, "
                     f"e.g. {frame.loc[dup, time_column].iloc[0]})")
    frame = frame.sort_values(key_columns, kind="stable").reset_index(drop=True)
    groups = list(frame.groupby(ids, sort=True, dropna=False)) if ids else [((), frame)]
    keys = [k if isinstance(k, tuple) else (k,) for k, _ in groups]
    empty = [dict(zip(ids, k)) for k, (_, part) in zip(keys, groups) if part[label].isna().all()]
    if empty:
        raise _error(f"label column {label!r} has no values in {len(empty)} series: "
                     f"{', '.join(map(str, empty[:5]))}{', ...' if len(empty) > 5 else ''}; give each series values "
                     f"of its target or leave it out of the training data")
    freq, notes["freq_detected"] = (freq, False) if freq else (detect_freq(groups, time_column, ids), True)
    check_alignment(groups, time_column, ids, freq)
    regular, notes["filled_periods"] = _fill_gaps(groups, keys, time_column, ids, label, freq)
    exog = [c for c in regular.columns if c not in key_columns and c != label]
    lengths = regular.groupby(ids, sort=True, dropna=False).size().to_numpy() if ids else np.array([len(regular)])
    m = fp["seasonality"]
    values = _series_values(regular, ids, label)
    longest = values[int(np.argmax(lengths))]
    m = detect_dataset_seasonality(values, freq) if m == "auto" else int(m)
    horizon = fp["forecast_horizon"]
    if horizon == "auto":
        horizon = max(1, min(m if m > 1 else 1, int(lengths.min()) // 5 or 1))
    lags, window = _lookback(fp, longest, freq, m)
    step = horizon if fp["cv_step_size"] == "auto" else int(fp["cv_step_size"])
    n_folds = int(settings.get("n_cross_validations") or 0) or auto_folds(lengths, horizon, step, lags, window)
    regular, keys, notes["short_series"] = _short_series(regular, keys, time_column, ids, label, freq, fp, horizon,
                                                         n_folds, step, lags, window, settings)
    prepared = PreparedSeries(label, time_column, ids, exog, freq, horizon, m, lags, window, n_folds, step,
                              fp["country_or_region_for_holidays"], regular, keys, notes, day_first)
    y = regular[label].to_numpy(dtype=float)
    splits = fold_splits(prepared)
    return PreparedData(regular.drop(columns=[label]), y, None, splits, "MeanCrossValidation", None,
                        float(np.min(y)), float(np.max(y)), len(regular), extra=prepared)


def _row_text(row: pd.Series, columns: list[str]) -> str:
    return ", ".join(f"{c}={row[c]!r}" if not isinstance(row[c], pd.Timestamp) else f"{c}={row[c]}" for c in columns)


def parse_times(column: pd.Series, name: str, day_first: bool = False) -> pd.Series:
    """The time column as datetimes (``featurize.parse_dates``: one format for the column; day-first first when the
    training column was day-first), or Azure's error naming the rows that do not parse."""
    if pd.api.types.is_datetime64_any_dtype(column):
        parsed = column
    else:
        from .featurize import parse_dates

        try:
            parsed = parse_dates(column, day_first)
        except (TypeError, ValueError):
            parsed = pd.Series(pd.NaT, index=column.index)
        if pd.api.types.is_numeric_dtype(column):  # numbers are not dates (pandas would read them as nanoseconds)
            parsed = pd.Series(pd.NaT, index=column.index)
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    if parsed.isna().all():
        raise _error(_no_dates(column, name))
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        shown = ", ".join(map(str, bad[:5].tolist())) + (", ..." if len(bad) > 5 else "")
        raise _error(f"One or more rows in the input dataset have an invalid date/time. Please ensure you can run "
                     f"`pandas.to_datetime(X)` without any errors. Time column {name!r}: {len(bad)} value"
                     f"{'s' if len(bad) > 1 else ''} do not parse, e.g. {str(column.iloc[bad[0]])!r} (row"
                     f"{'s' if len(bad) > 1 else ''} {shown})")
    return parsed.astype("datetime64[ns]")


def _no_dates(column: pd.Series, name: str) -> str:
    """Why no value of time column ``name`` reads as a date (it is empty, holds numbers or other text), and what to
    write instead."""
    present = column[column.notna() & (column.astype(str).str.strip() != "")]
    if not len(present):
        return f"The time column {name} is empty. Please make sure the column contains valid timestamp values"
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        numbers = [str(int(v)) if float(v).is_integer() else str(v) for v in present.unique()[:3]]
        return (f"The time column {name!r} holds numbers ({', '.join(numbers)}), which are not read as dates; write "
                f"them as dates ({_as_date(present.iloc[0])})")
    shown = ", ".join(map(repr, present.astype(str).unique()[:3]))
    return f"The time column {name!r} holds values that do not parse as dates ({shown}); write them as dates (2024-01-31)"


def _as_date(number: Any) -> str:
    """A number written as the date it likely means: a year (1935) or a yyyymmdd day (20240131); else an example."""
    digits = str(int(number)) if float(number).is_integer() else ""
    if len(digits) == 4:
        return f"{digits}-01-01"
    day = pd.to_datetime(digits, format="%Y%m%d", errors="coerce") if len(digits) == 8 else pd.NaT
    return day.strftime("%Y-%m-%d") if not pd.isna(day) else "2024-01-31"


def _aggregate(frame: pd.DataFrame, label: str, time_column: str, ids: list[str], freq: str, how: str
               ) -> tuple[pd.DataFrame, int]:
    """Rows per (series, period of ``freq``) aggregated: the target with ``how``, numbers by mean, others first."""
    numeric = [c for c in frame.columns if c not in ids + [time_column, label] and pd.api.types.is_numeric_dtype(frame[c])]
    other = [c for c in frame.columns if c not in ids + [time_column, label] + numeric]
    spec = {label: how, **{c: "mean" for c in numeric}, **{c: "first" for c in other}}
    before = len(frame)
    grouped = frame.groupby(ids + [pd.Grouper(key=time_column, freq=freq)], dropna=False).agg(spec).reset_index()
    grouped = grouped[grouped[label].notna()] if how != "sum" else grouped
    return grouped, before - len(grouped)


def detect_freq(groups: list[tuple[Any, pd.DataFrame]], time_column: str, ids: list[str]) -> str:
    """The frequency every series follows, as Azure detects it (an error when series differ or are irregular)."""
    found: dict[str, list[Any]] = {}
    for key, group in groups:
        times = pd.DatetimeIndex(group[time_column])
        freq = _infer_freq(times) if len(times) >= 3 else None
        if freq is None and len(times) >= 4:  # gaps: the most common spacing of short runs
            runs = [_infer_freq(times[i:i + 3]) for i in range(0, len(times) - 2)]
            runs = [r for r in runs if r]
            freq = max(set(runs), key=runs.count) if runs else None
        if freq is not None:
            found.setdefault(freq, []).append(key)
    if not found:
        raise _error(f"The frequency for the input data is not consistent. The expected frequency is a data point every "
                     f"'unknown'. Review the time series data to ensure consistent frequency alignment and specify the "
                     f"frequency parameter. Learn more https://aka.ms/AutoMLForecastingConfig (no series of "
                     f"{time_column!r} has regularly spaced timestamps; set freq, e.g. freq='D' or 'MS')")
    if len(found) > 1:
        described = "; ".join(f"{f}: {len(k)} series" for f, k in found.items())
        raise _error(f"More than one series in the input data, and their frequencies differ. Please separate series by "
                     f"frequency and build separate models. If frequencies were incorrectly inferred, please fill in "
                     f"gaps in series. If the dataset needs to be aggregated, please provide freq and "
                     f"target_aggregation_function parameters and run AutoML again. ({described})")
    return next(iter(found))


def _infer_freq(times: pd.DatetimeIndex) -> str | None:
    with warnings.catch_warnings():  # pandas 3 warns that infer_freq will return an offset
        warnings.simplefilter("ignore")
        freq = pd.infer_freq(times)
    return getattr(freq, "freqstr", freq)


def check_alignment(groups: list[tuple[Any, pd.DataFrame]], time_column: str, ids: list[str], freq: str) -> None:
    """Every timestamp on its series' grid of ``freq`` (else Azure's frequency error naming the series)."""
    for key, group in groups:
        times = pd.DatetimeIndex(group[time_column])
        grid = pd.date_range(times[0], times[-1], freq=freq)
        off = times.difference(grid)
        if len(grid) == 0 or len(off):
            level = ", ".join(map(str, key)) if ids else "the series"
            raise _error(f"The frequency for the following time series identifier [{level}] is not consistent. The "
                         f"expected frequency is a data point every '{freq}'. Review the time series data to ensure "
                         f"consistent frequency alignment and specify the frequency parameter. Learn more "
                         f"https://aka.ms/AutoMLForecastingConfig ({len(off) or len(times)} timestamp(s) off the grid, "
                         f"e.g. {off[0] if len(off) else times[0]})")


def _fill_gaps(groups: list[tuple[Any, pd.DataFrame]], keys: list[tuple[Any, ...]], time_column: str, ids: list[str],
               label: str, freq: str) -> tuple[pd.DataFrame, int]:
    """Each series on its full grid: missing periods inserted, the target interpolated, ids filled."""
    parts, inserted = [], 0
    for key, (_, group) in zip(keys, groups):
        grid = pd.date_range(group[time_column].iloc[0], group[time_column].iloc[-1], freq=freq)
        part = group.set_index(time_column).reindex(grid)
        inserted += len(grid) - len(group)
        part.index.name = time_column
        part = part.reset_index()
        for column, value in zip(ids, key):
            part[column] = value
        values = part[label].interpolate(limit_direction="both")
        part[label] = values.fillna(0.0) if values.isna().all() else values
        parts.append(part)
    return pd.concat(parts, ignore_index=True), inserted


def _series_values(frame: pd.DataFrame, ids: list[str], label: str) -> list[np.ndarray]:
    if not ids:
        return [frame[label].to_numpy(dtype=float)]
    return [g[label].to_numpy(dtype=float) for _, g in frame.groupby(ids, sort=True, dropna=False)]


def _acf(y: np.ndarray, lag: int) -> float:
    y = y - y.mean()
    denominator = float(np.dot(y, y))
    return float(np.dot(y[:-lag], y[lag:]) / denominator) if denominator > 0 and lag < len(y) else 0.0


def detect_seasonality(y: np.ndarray, freq: str) -> int:
    """The frequency's natural period, kept when the (differenced) series autocorrelates at it."""
    m = SEASONALITY_BY_FREQ.get(_freq_key(freq), 1)
    return m if is_seasonal(y, m) else 1


def is_seasonal(y: np.ndarray, m: int) -> bool:
    """Whether ``y`` has a season of ``m`` periods: its differences autocorrelate at lag ``m`` (95% level)."""
    if m <= 1 or len(y) < 2 * m + 2:
        return False
    z = np.diff(np.asarray(y, dtype=float))
    return bool(_acf(z, m) > 1.96 / math.sqrt(len(z)))


#: The share of series that must show the frequency's season for 'auto' seasonality to keep it.
SEASONAL_SHARE = 0.25


def detect_dataset_seasonality(ys: Sequence[np.ndarray], freq: str) -> int:
    """'auto' seasonality of several series: the frequency's natural period when at least a quarter of the series
    show it (each series' statistical models then test their own season), else 1."""
    m = SEASONALITY_BY_FREQ.get(_freq_key(freq), 1)
    if m <= 1 or not ys:
        return 1
    seasonal = sum(is_seasonal(y, m) for y in ys)
    return m if seasonal >= max(1.0, SEASONAL_SHARE * len(ys)) else 1


def _pacf(y: np.ndarray, nlags: int) -> np.ndarray:
    from statsmodels.tsa.stattools import pacf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(pacf(y, nlags=nlags, method="ywm"))


def _lookback(fp: Mapping[str, Any], y: np.ndarray, freq: str, m: int) -> tuple[list[int], int | None]:
    """Target lags and rolling window: as given, or 'auto' by Azure's PACF rule."""
    lags, window = fp["target_lags"], fp["target_rolling_window_size"]
    if "auto" in (lags, window):
        z = y
        if m > 1 and len(y) > 2 * m:
            z = y[m:] - y[:-m]  # de-seasonalised
        z = np.diff(z) if len(z) > 3 else z
        max_lag = min(2 * LOOKBACK_BY_FREQ.get(_freq_key(freq), 7), max(1, len(z) // 3))
        order = 0
        if len(z) > max_lag + 2 and np.std(z) > 0:
            values = _pacf(z, max_lag)[1:]
            significant = np.abs(values) > 1.96 / math.sqrt(max_lag)
            if not significant.all():
                order = int(np.argmin(significant)) if significant[0] else 0
        order = max(order, 1)
        if lags == "auto":
            lags = list(range(1, order + 1)) + ([m] if m > 1 and m > order else [])
        if window == "auto":
            window = max(2, order) if order >= 1 else None
    return list(lags or []), window


#: Rolling origins of ``n_cross_validations="auto"`` (the default): at least 3, and up to 6 when the series hold them.
AUTO_FOLDS = (3, 6)


def auto_folds(lengths: np.ndarray, horizon: int, step: int, lags: Sequence[int], window: int | None) -> int:
    """``n_cross_validations="auto"``: as many rolling origins as every series long enough for 3 holds, up to 6.

    Choosing children and ensemble weights on 3 origins is noisy: on the children of 11 runs on real multi-series
    datasets (benchmarks/README.md), Caruana's selection bagged over the last 3 of 6 origins forecast the held-out
    season worse than over all 6 on 8 of 10 (mean MASE 1.098 against 1.073). Series too short for 3 are padded or
    dropped as before (``short_series_handling_configuration``) rather than lower the number for every series."""
    low, high = AUTO_FOLDS
    enough = lengths[lengths >= required_length(horizon, low, step, lags, window)]
    if not len(enough):
        return low
    shortest = int(enough.min())
    return max(k for k in range(low, high + 1) if required_length(horizon, k, step, lags, window) <= shortest)


def required_length(horizon: int, n_folds: int, step: int, lags: Sequence[int], window: int | None) -> int:
    """Points a series needs for the folds: the earliest origin keeps ``horizon + lookback`` points of history."""
    lookback = max([*lags, window or 0, 1])
    return (n_folds - 1) * step + horizon + horizon + lookback


def _short_series(frame: pd.DataFrame, keys: list[tuple[Any, ...]], time_column: str, ids: list[str], label: str,
                  freq: str, fp: Mapping[str, Any], horizon: int, n_folds: int, step: int, lags: list[int],
                  window: int | None, settings: Mapping[str, Any]) -> tuple[pd.DataFrame, list[tuple[Any, ...]], dict]:
    """Azure's short_series_handling_configuration: pad, drop, or refuse series too short for the folds."""
    need = required_length(horizon, n_folds, step, lags, window)
    parts = list(frame.groupby(ids, sort=True, dropna=False)) if ids else [((), frame)]
    short = [i for i, (_, part) in enumerate(parts) if len(part) < need]
    handling = fp["short_series_handling_configuration"]
    info = {"required": need, "padded": [], "dropped": [], "handling": handling}
    if not short:
        return frame, keys, info
    names = ", ".join(", ".join(map(str, keys[i])) if ids else "the series" for i in short[:5]) + (
        ", ..." if len(short) > 5 else "")
    lags_text = max(lags) if lags else 0
    message = (f"The series provided for given time series identifiers ({names}) is insufficient for a valid training "
               f"with CV ({n_folds}), step size [{step}], forecast horizon ({horizon}), lags ({lags_text}) and rolling "
               f"window size ({window or 0}). Please either consider adding more data points, dropping the "
               f"identifier(s), or reducing one of max horizon, the number of cross validations, lags or rolling "
               f"window size. (each series needs at least {need} points; the shortest has "
               f"{min(len(parts[i][1]) for i in short)})")
    if handling is None:
        raise _error(message + "; short_series_handling_configuration=None keeps short series as they are")
    pad = handling == "pad" or (handling == "auto" and len(short) == len(parts))
    if not pad and len(short) == len(parts):
        raise _error(message + "; every series is too short to drop")
    rng = np.random.default_rng(int(settings.get("random_state", 0) or 0))
    out, kept = [], []
    for i, (_, part) in enumerate(parts):
        if i not in short:
            out.append(part)
            kept.append(keys[i])
            continue
        if not pad:
            info["dropped"].append(", ".join(map(str, keys[i])))
            continue
        missing = need - len(part)
        start = part[time_column].iloc[0]
        times = pd.date_range(end=start, periods=missing + 1, freq=freq)[:-1]
        median = float(part[label].median())
        values = median + rng.normal(0, 0.01 * (abs(median) or 1.0), missing)
        if median >= 0:
            values = np.clip(values, 0, None)
        padding = pd.DataFrame({time_column: times, label: values})
        for column, value in zip(ids, keys[i]):
            padding[column] = value
        out.append(pd.concat([padding, part], ignore_index=True))
        kept.append(keys[i])
        info["padded"].append(", ".join(map(str, keys[i])) if ids else "the series")
    return pd.concat(out, ignore_index=True)[frame.columns], kept, info


def fold_splits(prepared: PreparedSeries) -> list[tuple[np.ndarray, np.ndarray]]:
    """Scoring rows (fold, series, horizon) numbered fold by fold: each split is (other folds' rows, this fold's)."""
    per_fold = len(prepared.keys) * prepared.horizon
    rows = np.arange(per_fold * prepared.n_folds)
    return [(np.setdiff1d(rows, rows[k * per_fold:(k + 1) * per_fold]), rows[k * per_fold:(k + 1) * per_fold])
            for k in range(prepared.n_folds)]


# -- featurization --------------------------------------------------------------------------------
class TimeSeriesTransformer:
    """The fitted time series featurization: series history, calendar, holidays, exogenous columns.

    The first part of the forecasting model (Azure's ``timeseriestransformer``): it keeps each series'
    training history (the context of a forecast) and makes the regression learners' features.
    """

    def __init__(self, prepared: PreparedSeries, featurization: Any = "auto") -> None:
        from .featurize import AutoFeaturizer

        self.label, self.time_column, self.id_columns = prepared.label, prepared.time_column, prepared.id_columns
        self.freq, self.horizon, self.seasonality = prepared.freq, prepared.horizon, prepared.seasonality
        self.lags, self.window, self.country = prepared.lags, prepared.window, prepared.country
        self.n_folds, self.step = prepared.n_folds, prepared.step
        self.exog_columns = list(prepared.exog_columns)
        self.notes = prepared.notes
        self.day_first = prepared.day_first
        frame = prepared.frame
        self.exog_featurizer = None
        if self.exog_columns:
            try:
                self.exog_featurizer = AutoFeaturizer(featurization).fit(frame[self.exog_columns])
            except ValueError as exc:
                if "no usable feature columns" not in str(exc):
                    raise _error(str(exc)) from None
        self.holidays = _holiday_calendar(self.country)
        self.keys = list(prepared.keys)
        self.codes = {key: i for i, key in enumerate(self.keys)}
        parts = list(frame.groupby(self.id_columns, sort=True, dropna=False)) if self.id_columns else [((), frame)]
        self.history: dict[tuple[Any, ...], tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]] = {}
        for key, (_, part) in zip(self.keys, parts):
            self.history[key] = (pd.DatetimeIndex(part[self.time_column]), part[self.label].to_numpy(dtype=float),
                                 self.exogenous(part))
        times = pd.DatetimeIndex(frame[self.time_column])
        parts_all = _calendar_parts(times)
        self.calendar_parts = [p for p in CALENDAR_PARTS if np.nanstd(parts_all[p]) > 0]
        self.scales = {key: mase_scale(y, self.seasonality) for key, (_, y, _) in self.history.items()}

    # -- features ---------------------------------------------------------------------------------
    def exogenous(self, frame: pd.DataFrame) -> np.ndarray:
        if self.exog_featurizer is None:
            return np.zeros((len(frame), 0))
        return self.exog_featurizer.transform(frame)

    def calendar(self, times: pd.DatetimeIndex) -> np.ndarray:
        parts = _calendar_parts(times)
        blocks = [parts[p][:, None] for p in self.calendar_parts]
        if self.holidays is not None:
            blocks.append(np.array([t in self.holidays for t in times.date], dtype=float)[:, None])
        return np.hstack(blocks) if blocks else np.zeros((len(times), 0))

    def design(self, y: np.ndarray, extra: np.ndarray, code: int, origins: np.ndarray, horizons: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """Features of (origin, horizon) rows of one series and each row's level (targets are ``y / level``).

        ``y``: the known values (index <= origin); ``extra``: calendar and exogenous features of every
        time index, future ones included.
        """
        return design_rows(y, extra, code, origins, horizons, self.lags, self.window, self.seasonality)

    def summary(self) -> list[dict[str, Any]]:
        return self.exog_featurizer.summary() if self.exog_featurizer is not None else []

    def future_times(self, last: pd.Timestamp, periods: int) -> pd.DatetimeIndex:
        return pd.date_range(last, periods=periods + 1, freq=self.freq)[1:]


def _calendar_parts(times: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    return {"year": times.year.to_numpy(float), "quarter": times.quarter.to_numpy(float),
            "month": times.month.to_numpy(float), "week": times.isocalendar().week.to_numpy(float),
            "day": times.day.to_numpy(float), "dayofweek": times.day_of_week.to_numpy(float),
            "dayofyear": times.day_of_year.to_numpy(float), "hour": times.hour.to_numpy(float),
            "minute": times.minute.to_numpy(float)}


def _holiday_calendar(country: str | None) -> Any:
    """The ``holidays`` package's calendar of ``country`` (None when not asked for or not installed)."""
    if not country:
        return None
    try:
        import holidays
    except ImportError:
        return None
    try:
        return holidays.country_holidays(country, years=range(1950, 2101))
    except (NotImplementedError, KeyError):
        return None


def holidays_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("holidays") is not None


def mase_scale(y: np.ndarray, m: int) -> float:
    """In-sample mean absolute error of the seasonal naive forecast (naive when too short): MASE's divisor."""
    lag = m if m > 1 and len(y) > m + 1 else 1
    if len(y) <= lag:
        return float(np.mean(np.abs(y))) or 1.0
    value = float(np.mean(np.abs(y[lag:] - y[:-lag])))
    return value if value > 0 else (float(np.mean(np.abs(y))) or 1.0)


def design_rows(y: np.ndarray, extra: np.ndarray, code: int, origins: np.ndarray, horizons: np.ndarray,
                lags: Sequence[int], window: int | None, m: int) -> tuple[np.ndarray, np.ndarray]:
    origins = np.asarray(origins, dtype=int)
    horizons = np.asarray(horizons, dtype=int)
    targets = origins + horizons
    k = max(m, 4)
    cumulative = np.concatenate([[0.0], np.cumsum(np.abs(y))])
    start = np.maximum(origins - k + 1, 0)
    level = (cumulative[origins + 1] - cumulative[start]) / (origins + 1 - start)
    fallback = float(np.mean(np.abs(y))) or 1.0
    level = np.where(level > 1e-9 * fallback, level, fallback)
    columns = [horizons.astype(float), np.full(len(origins), float(code))]
    for lag in lags:
        index = origins - lag + 1
        columns.append(np.where(index >= 0, y[np.clip(index, 0, None)], np.nan) / level)
    if window:
        cs = np.concatenate([[0.0], np.cumsum(y)])
        begin = np.maximum(origins - window + 1, 0)
        columns.append((cs[origins + 1] - cs[begin]) / (origins + 1 - begin) / level)
        lows = np.array([y[b:o + 1].min() for b, o in zip(begin, origins)]) if len(origins) else np.zeros(0)
        highs = np.array([y[b:o + 1].max() for b, o in zip(begin, origins)]) if len(origins) else np.zeros(0)
        columns += [lows / level, highs / level]
    if m > 1 and lags:
        index = targets - m * np.ceil(horizons / m).astype(int)
        columns.append(np.where(index >= 0, y[np.clip(index, 0, None)], np.nan) / level)
    features = np.column_stack(columns) if columns else np.zeros((len(origins), 0))
    if extra.shape[1]:
        features = np.hstack([features, extra[targets]])
    return features, level


# -- the models -------------------------------------------------------------------------------------
def prophet_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("prophet") is not None


def stat_forecast(algorithm: str, y: np.ndarray, h: int, m: int, config: Any = None, exog: np.ndarray | None = None,
                  exog_future: np.ndarray | None = None, times: pd.DatetimeIndex | None = None,
                  freq: str | None = None, estimates: dict[str, Any] | None = None) -> tuple[np.ndarray, Any]:
    """``h`` forecasts of one series by Azure's statistical ``algorithm``; ``config`` re-uses a selected form.

    ``estimates`` (a dict; ExponentialSmoothing and AutoArima without exogenous columns): empty, it receives the
    fitted parameters; holding them, a long seasonal series (``long_seasonal``) is filtered with those parameters
    instead of estimating them again (rolling-origin folds after the first: the same model, updated with the newer
    points, as a forecaster running since the first origin would be)."""
    y = np.asarray(y, dtype=float)[-STAT_HISTORY:]
    n = len(y)
    if algorithm == "Naive":
        return np.full(h, y[-1]), None
    if algorithm == "SeasonalNaive":
        if m <= 1 or n < m:
            return np.full(h, y[-1]), None
        return np.array([y[n - m + (i % m)] for i in range(h)]), None
    if algorithm == "Average":
        return np.full(h, float(np.mean(y))), None
    if algorithm == "SeasonalAverage":
        if m <= 1 or n < m:
            return np.full(h, float(np.mean(y))), None
        phase = np.arange(n) % m
        means = np.array([y[phase == p].mean() for p in range(m)])
        return np.array([means[(n + i) % m] for i in range(h)]), None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if algorithm == "ExponentialSmoothing":
            return _ets(y, h, m, config, estimates)
        if algorithm == "AutoArima":
            return _arima(y, h, m, config, estimates=estimates)
        if algorithm == "Arimax":
            ex = None if exog is None or exog.shape[1] == 0 else exog[-n:]
            exf = None if ex is None else exog_future
            return _arima(y, h, m, config or {"order": None, "seasonal": None}, ex, exf, small=True)
        if algorithm == "Prophet":
            return _prophet(y, h, times, freq), None
    raise ValueError(f"unknown forecasting model {algorithm!r}")


def _ets(y: np.ndarray, h: int, m: int, config: Any, estimates: dict[str, Any] | None = None
         ) -> tuple[np.ndarray, Any]:
    """statsmodels' Holt-Winters exponential smoothing (what Azure's ExponentialSmoothing model wraps), the form
    chosen by AICc among ``ets_forms``, or ``config``'s form; ``estimates``: see ``stat_forecast``."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    if estimates and config is not None and estimates.get("length", 0) <= len(y) <= STAT_HISTORY - 1 \
            and long_seasonal(estimates.get("length", 0), m):
        trend, damped, seasonal = tuple(config)
        p = estimates["params"]
        try:
            known = {"initial_level": p["initial_level"]}
            if trend:
                known["initial_trend"] = p["initial_trend"]
            if seasonal:
                known["initial_seasonal"] = np.asarray(p["initial_seasons"], dtype=float)
            fixed = {k: p[k] for k in ("smoothing_level", "smoothing_trend", "smoothing_seasonal", "damping_trend")
                     if k in p and p[k] is not None and np.isfinite(p[k])}
            fit = ExponentialSmoothing(y, trend=trend, damped_trend=bool(damped and trend), seasonal=seasonal,
                                       seasonal_periods=m if seasonal else None, initialization_method="known",
                                       **known).fit(optimized=False, **fixed)
            forecast = np.asarray(fit.forecast(h), dtype=float)
            if np.isfinite(forecast).all():
                return forecast, (trend, damped, seasonal)
        except Exception:
            pass
    forms = [tuple(config)] if config is not None else ets_forms(y, m)
    best, best_form = None, None
    for trend, damped, seasonal in forms:
        fit = None
        for init in ets_initializations(len(y), m if seasonal else 1):
            try:
                fit = ExponentialSmoothing(y, trend=trend, damped_trend=bool(damped and trend), seasonal=seasonal,
                                           seasonal_periods=m if seasonal else None,
                                           initialization_method=init).fit(use_brute=False)
                break
            except Exception:
                continue
        if fit is None:
            continue
        score = fit.aicc
        if np.isfinite(score) and (best is None or score < best.aicc):
            best, best_form = fit, (trend, damped, seasonal)
    if best is None:
        alpha = 0.3
        level = y[0]
        for value in y[1:]:
            level = alpha * value + (1 - alpha) * level
        return np.full(h, level), (None, False, None)
    forecast = np.asarray(best.forecast(h), dtype=float)
    if estimates is not None and len(y) < STAT_HISTORY:
        estimates.update(params=dict(best.params), length=len(y))
    return forecast, best_form


#: Seasons a series needs for Holt-Winters' heuristic initial states (a decomposition of its first seasons), and the
#: shortest season they are used for (estimating a quarter's 4 seasonal states is cheap, and was better).
HEURISTIC_SEASONS = 4
HEURISTIC_MIN_PERIOD = 7


def ets_initializations(n: int, m: int) -> tuple[str, ...]:
    """How Holt-Winters' initial states are set, in order of preference: from the first seasons (heuristic) when a
    series with a season of at least ``HEURISTIC_MIN_PERIOD`` holds ``HEURISTIC_SEASONS`` of them, else estimated
    with the smoothing parameters. Estimating m seasonal states is most of a fit's time: on 3 monthly datasets (30
    series) the heuristic fitted 3-6x faster for a holdout MASE as good (0.734 against 0.751), so that the child
    finishes on a loaded machine; on quarterly series (accommodation) it was worse (0.817 against 0.781)."""
    if long_seasonal(n, m):
        return ("heuristic", "estimated")
    return ("estimated",)


def long_seasonal(n: int, m: int) -> bool:
    """A series of ``n`` points holding ``HEURISTIC_SEASONS`` seasons of at least ``HEURISTIC_MIN_PERIOD`` periods:
    where Holt-Winters and seasonal ARIMA fits are slow. There the later rolling origins filter their newer points
    with the first origin's estimates (``stat_forecast``'s ``estimates``: a third of the fits); on short series
    re-estimating at each origin mattered (prison, 48 quarters: the ETS child's CV NRMSE 0.202 re-estimated, 0.241
    filtered), on 20 years of months little."""
    return m >= HEURISTIC_MIN_PERIOD and n >= HEURISTIC_SEASONS * m


def ets_forms(y: np.ndarray, m: int) -> list[tuple[Any, bool, Any]]:
    """The (trend, damped, season) forms ExponentialSmoothing chooses from by AICc for one series: a damped additive
    trend, with an additive season of ``m`` when the series holds two seasons. Measured on 6 multi-series datasets
    (benchmarks/README.md): choosing by AICc among level-only, trend, additive and multiplicative seasons forecast
    worse out of sample (mean MASE 1.036 with statsmodels' ETSModel, 1.005 among damped forms with and without
    additive or multiplicative seasons) than this one form (0.998)."""
    return [("add", True, "add" if m > 1 and len(y) >= 2 * m + 2 else None)]


def _arima(y: np.ndarray, h: int, m: int, config: Any, exog: np.ndarray | None = None,
           exog_future: np.ndarray | None = None, small: bool = False, estimates: dict[str, Any] | None = None
           ) -> tuple[np.ndarray, Any]:
    """ARIMA with orders chosen by AICc (differencing by KPSS tests, a seasonal AR term when seasonal);
    ``estimates``: see ``stat_forecast``."""
    from statsmodels.tsa.arima.model import ARIMA

    if estimates and config is not None and exog is None and estimates.get("length", 0) <= len(y) <= ARIMA_HISTORY \
            and long_seasonal(estimates.get("length", 0), m):
        try:
            forecast = np.asarray(estimates["fit"].apply(y).forecast(h), dtype=float)
            if plausible(forecast, y):
                return forecast, config
        except Exception:
            pass

    if config is None or config.get("order") is None:
        d = _differences(y)
        seasonal_ok = m > 1 and len(y) >= 3 * m and not small and is_seasonal(y, m)
        # a short stepwise-like search: three non-seasonal forms, then the best one with a seasonal AR term
        orders = [(1, d, 1)] if small else [(1, d, 0), (0, d, 1), (1, d, 1)]
        candidates: list[tuple[Any, Any]] = [(o, (0, 0, 0, 0)) for o in orders]
        if seasonal_ok:
            candidates.append((None, (1, 0, 0, m)))  # None: the best order found so far
    else:
        candidates = [(tuple(config["order"]), tuple(config["seasonal"]))]
    best, best_form = None, None
    y = y[-ARIMA_HISTORY:]
    exog = None if exog is None else exog[-len(y):]
    future = None
    if exog is not None:
        future = exog_future if exog_future is not None and len(exog_future) >= h else np.repeat(exog[-1:], h, axis=0)
        future = future[:h]
    for order, seasonal in candidates:
        if order is None:
            if best_form is None:
                continue
            order = tuple(best_form["order"])
        trend = "t" if order[1] == 1 else ("c" if order[1] == 0 else "n")
        try:
            # no parameter covariance (only forecasts are needed): much faster fits
            fit = ARIMA(y, exog=exog, order=order, seasonal_order=seasonal, trend=trend).fit(
                cov_type="none", method_kwargs={"maxiter": 60})
        except Exception:
            continue
        try:
            if not plausible(np.asarray(fit.forecast(h, exog=future), dtype=float), y):
                continue
        except Exception:
            continue
        if np.isfinite(fit.aicc) and (best is None or fit.aicc < best.aicc):
            best, best_form = fit, {"order": list(order), "seasonal": list(seasonal)}
    if best is None and config is not None and config.get("order") is not None:  # the chosen form fails here
        return _arima(y, h, m, None, exog, exog_future, small)
    if best is None:
        return np.full(h, y[-1]), {"order": [0, 1, 0], "seasonal": [0, 0, 0, 0]}
    if estimates is not None and exog is None and len(y) < ARIMA_HISTORY:
        estimates.update(fit=best, length=len(y))
    return np.asarray(best.forecast(h, exog=future), dtype=float), best_form


def plausible(forecast: np.ndarray, y: np.ndarray) -> bool:
    """Whether an ARIMA form's forecasts are finite and stay within the series' range widened by that range on each
    side. A degenerate fit can win the AICc selection: on an employment series at 23,700 (237 months), ARIMA(1,2,1)
    with a seasonal AR term fitted an MA coefficient of -1.000 (over-differenced), an AICc of 502 against 2,329 for
    the next form, and forecast -65,000. Such a form is never chosen. (Rejecting every moving-average root near the unit
    circle, R's auto.arima's rule, forecast worse on 5 of 11 datasets with this search's few forms.)"""
    if not np.isfinite(forecast).all():
        return False
    low, high = float(np.min(y)), float(np.max(y))
    width = (high - low) or abs(high) or 1.0
    return bool(np.all(forecast >= low - width) and np.all(forecast <= high + width))


def _differences(y: np.ndarray) -> int:
    from statsmodels.tsa.stattools import kpss

    z, d = y, 0
    for _ in range(2):
        if len(z) < 10 or np.std(z) == 0:
            break
        try:
            if kpss(z, nlags="auto")[1] >= 0.05:
                break
        except Exception:
            break
        z, d = np.diff(z), d + 1
    return d


def _prophet(y: np.ndarray, h: int, times: pd.DatetimeIndex | None, freq: str | None) -> np.ndarray:
    from prophet import Prophet

    if times is None or freq is None:
        raise ValueError("Prophet needs the time index")
    times = times[-len(y):]
    model = Prophet()
    model.fit(pd.DataFrame({"ds": times, "y": y}))
    future = pd.DataFrame({"ds": pd.date_range(times[-1], periods=h + 1, freq=freq)[1:]})
    return model.predict(future)["yhat"].to_numpy(dtype=float)


@dataclass
class SeriesFold:
    """What a worker needs to fit and score forecasting children (``FoldData.extra``)."""

    ys: list[np.ndarray]
    extras: list[np.ndarray]  # calendar + exogenous features per time index
    exogs: list[np.ndarray]  # exogenous features only (Arimax)
    times: list[pd.DatetimeIndex]
    freq: str
    horizon: int
    seasonality: int
    lags: list[int]
    window: int | None
    n_folds: int
    step: int
    scales: np.ndarray  # MASE divisor per series
    ranges: np.ndarray  # label range per series (normalised metrics)
    row_series: np.ndarray
    row_horizon: np.ndarray

    def cut(self, fold: int, series: int) -> int:
        """Points of history before the origin of ``fold`` (fold 0 is the earliest, the last fold the latest)."""
        return len(self.ys[series]) - self.horizon - (self.n_folds - 1 - fold) * self.step


def series_fold(transformer: TimeSeriesTransformer) -> SeriesFold:
    ys, extras, exogs, times = [], [], [], []
    for key in transformer.keys:
        index, y, exog = transformer.history[key]
        ys.append(y)
        exogs.append(exog)
        extras.append(np.hstack([transformer.calendar(index), exog]))
        times.append(index)
    n_folds, h = transformer.n_folds, transformer.horizon
    per_fold_series = np.repeat(np.arange(len(ys)), h)
    ranges = np.array([(np.max(y) - np.min(y)) or (abs(float(np.mean(y))) or 1.0) for y in ys])
    return SeriesFold(ys, extras, exogs, times, transformer.freq, h, transformer.seasonality, transformer.lags,
                      transformer.window, n_folds, transformer.step,
                      np.array([transformer.scales[k] for k in transformer.keys]), ranges,
                      np.tile(per_fold_series, n_folds), np.tile(np.tile(np.arange(1, h + 1), len(ys)), n_folds))


def _ml_training(sf: SeriesFold, cuts: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Design rows of every series from the history before each cut (targets before the cut)."""
    blocks, targets = [], []
    lookback = max([*sf.lags, sf.window or 0, 1])
    per_series = max(200, MAX_DESIGN_ROWS // max(1, len(sf.ys)) // sf.horizon)
    for s, cut in enumerate(cuts):
        y = sf.ys[s][:cut]
        first = min(max(lookback - 1, 0), max(cut - 2, 0))
        origins = np.arange(first, cut - 1)[-per_series:]
        if len(origins) == 0:
            continue
        o = np.repeat(origins, sf.horizon)
        hs = np.tile(np.arange(1, sf.horizon + 1), len(origins))
        keep = o + hs <= cut - 1
        o, hs = o[keep], hs[keep]
        features, level = design_rows(y, sf.extras[s], s, o, hs, sf.lags, sf.window, sf.seasonality)
        blocks.append(features)
        targets.append(y[o + hs] / level)
    if not blocks:
        raise ValueError("no training rows for the regression learners: the series are too short")
    return np.vstack(blocks), np.concatenate(targets)


def _impute(X: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(X), X, 0.0)


def ml_fit(sf: SeriesFold, spec: Mapping[str, Any], cuts: Sequence[int], seed: int, threads: int) -> Any:
    from sklearn.pipeline import Pipeline

    from .models import make_scaler, regressor

    X, y = _ml_training(sf, cuts)
    model = Pipeline([(spec["preprocessor"], make_scaler(spec["preprocessor"])),
                      (spec["algorithm"], regressor(spec["algorithm"], spec["params"], seed, threads))])
    return model.fit(_impute(X), y)


def ml_predict(model: Any, y: np.ndarray, extra: np.ndarray, code: int, horizon: int, lags: Sequence[int],
               window: int | None, m: int) -> np.ndarray:
    """Forecasts of horizons 1..horizon from the end of ``y`` (``extra`` covers those future indices)."""
    origin = len(y) - 1
    hs = np.arange(1, horizon + 1)
    features, level = design_rows(y, extra, code, np.full(horizon, origin), hs, lags, window, m)
    return model.predict(_impute(features)) * level


def cross_validate(data: Any, spec: dict[str, Any], threads: int) -> dict[str, Any]:
    """Rolling-origin cross-validation of one child: each fold fitted on the history before its origin."""
    from threadpoolctl import threadpool_limits

    from .tasks import average

    sf: SeriesFold = data.extra
    started = time.perf_counter()
    oof = np.full((len(data.y), 1), np.nan)
    per_fold = []
    algorithm = spec["algorithm"]
    forms: dict[int, Any] = {}
    estimates: dict[int, dict[str, Any]] = {}
    with threadpool_limits(limits=threads if threads > 0 else None):
        for fold, (_, valid) in enumerate(data.splits):
            cuts = [sf.cut(fold, s) for s in range(len(sf.ys))]
            if algorithm in STATISTICAL:  # the form (ETS components, ARIMA orders) is chosen on the first fold,
                predictions = []       # its parameters too on long seasonal series (long_seasonal)
                for s, cut in enumerate(cuts):
                    mean, form = stat_forecast(algorithm, sf.ys[s][:cut], sf.horizon, sf.seasonality, forms.get(s),
                                               exog=sf.exogs[s][:cut], exog_future=sf.exogs[s][cut:cut + sf.horizon],
                                               times=sf.times[s][:cut], freq=sf.freq,
                                               estimates=estimates.setdefault(s, {}))
                    forms.setdefault(s, form)
                    predictions.append(mean)
            else:
                model = ml_fit(sf, spec, cuts, data.seed, threads)
                predictions = [ml_predict(model, sf.ys[s][:cut], sf.extras[s], s, sf.horizon, sf.lags, sf.window,
                                          sf.seasonality) for s, cut in enumerate(cuts)]
            oof[valid, 0] = np.concatenate(predictions)
            per_fold.append(data.kind.fold_metrics(data, valid, oof[valid]))
    chosen = {"forms": {str(k): v for k, v in forms.items()}} if forms else {}
    result = {"metrics": average(per_fold), "oof": oof, "fit_time": time.perf_counter() - started, "params": chosen}
    if algorithm in STATISTICAL:  # its model is the forms chosen here (each series' model is fitted when forecasting)
        made = time.perf_counter()
        result["model"] = ForecastMember(algorithm, forms={s: forms.get(s) for s in range(len(sf.ys))})
        result["refit_time"] = max(time.perf_counter() - made, 1e-3)
    return result


@dataclass
class ForecastMember:
    """One fitted child of the final model: a regression learner, or a statistical model's form per series."""

    algorithm: str
    model: Any = None  # regression learners: the fitted scaler + estimator pipeline
    forms: dict[int, Any] = field(default_factory=dict)  # statistical: series code -> selected form

    @property
    def statistical(self) -> bool:
        return self.algorithm in STATISTICAL

    def forecast(self, t: TimeSeriesTransformer, code: int, y: np.ndarray, extra: np.ndarray, exog: np.ndarray,
                 times: pd.DatetimeIndex, horizon: int) -> np.ndarray:
        if self.statistical:
            n = len(y)
            # a statistical model is fitted per series when forecasting: the same history is fitted once per process
            # (``amlstep predict`` asks for the forecast and then its quantiles)
            key = (code, horizon, y.tobytes(), np.ascontiguousarray(exog[:n + horizon]).tobytes(),
                   str(times[n - 1]) if n else "")
            memo = self.__dict__.setdefault("_forecasts", {})
            if key not in memo:
                if len(memo) >= FORECAST_MEMO_SIZE:
                    memo.pop(next(iter(memo)))
                memo[key] = stat_forecast(self.algorithm, y, horizon, t.seasonality, self.forms.get(code),
                                          exog=exog[:n], exog_future=exog[n:n + horizon], times=times[:n],
                                          freq=t.freq)[0]
            return np.array(memo[key], dtype=float)
        return ml_predict(self.model, y, extra, code, horizon, t.lags, t.window, t.seasonality)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_forecasts"}


def refit(data: Any, specs: list[dict[str, Any]], threads: int) -> list[ForecastMember]:
    """Each member on the whole history of every series (statistical models keep their form per series)."""
    from threadpoolctl import threadpool_limits

    sf: SeriesFold = data.extra
    members = []
    with threadpool_limits(limits=threads if threads > 0 else None):
        for spec in specs:
            algorithm = spec["algorithm"]
            if algorithm in STATISTICAL:  # the forms chosen in cross-validation (a form is fitted when forecasting)
                chosen = (spec.get("params") or {}).get("forms") or {}
                forms = {s: chosen[str(s)] if chosen.get(str(s)) is not None else
                         stat_forecast(algorithm, y, sf.horizon, sf.seasonality, None, exog=sf.exogs[s],
                                       times=sf.times[s], freq=sf.freq)[1]
                         for s, y in enumerate(sf.ys)}
                members.append(ForecastMember(algorithm, forms=forms))
            else:
                members.append(ForecastMember(algorithm, model=ml_fit(sf, spec, [len(y) for y in sf.ys], data.seed,
                                                                       threads)))
    return members


# -- metrics ---------------------------------------------------------------------------------------------
def forecast_metrics(data: Any, valid: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """Regression metrics plus sMAPE and MASE; the normalised ones divide each error by its series' range."""
    from . import metrics as M

    sf: SeriesFold = data.extra
    y, p = data.y[valid], prediction[:, 0]
    result = M.regression_metrics(y, p, data.y_min, data.y_max)
    series = sf.row_series[valid]
    ranges, scales = sf.ranges[series], sf.scales[series]
    error = np.abs(y - p)
    result["normalized_mean_absolute_error"] = float(np.mean(error / ranges))
    result["normalized_median_absolute_error"] = float(np.median(error / ranges))
    result["normalized_root_mean_squared_error"] = float(math.sqrt(np.mean((error / ranges) ** 2)))
    denominator = np.abs(y) + np.abs(p)
    result["symmetric_mean_absolute_percentage_error"] = float(
        np.mean(np.where(denominator > 0, 2 * error / np.where(denominator > 0, denominator, 1), 0.0)) * 100)
    result["mean_absolute_scaled_error"] = float(np.mean(error / scales))
    return result


def primary_forecast_value(data: Any, metric: str, valid: np.ndarray, prediction: np.ndarray) -> float:
    sf: SeriesFold = data.extra
    y, p = data.y[valid], np.asarray(prediction, dtype=float).reshape(len(valid), -1)[:, 0]
    ranges = sf.ranges[sf.row_series[valid]]
    if metric == "normalized_root_mean_squared_error":
        return float(math.sqrt(np.mean(((y - p) / ranges) ** 2)))
    if metric == "normalized_mean_absolute_error":
        return float(np.mean(np.abs(y - p) / ranges))
    return forecast_metrics(data, valid, np.asarray(p)[:, None])[metric]


# -- the fitted model ----------------------------------------------------------------------------------------
class ForecastingPipelineWrapper:
    """The fitted forecaster (what ``model_output`` holds): Azure's ``forecast``, ``forecast_quantiles``,
    ``rolling_forecast``.

    ``forecast(X_future)`` takes the time column and the time series id columns (plus the exogenous
    columns the model was trained with) and forecasts from the end of each series' training history.
    Rows of ``y_future`` that are known extend the history first (Azure's forecast with context).
    """

    def __init__(self, transformer: TimeSeriesTransformer, members: list[tuple[ForecastMember, float]],
                 sigma: np.ndarray, cv_error_by_horizon: dict[str, list[float]] | None = None,
                 algorithm: str = "") -> None:
        self.transformer = transformer
        self.members = members
        self.sigma = sigma  # residual std per horizon, relative to the series' MASE scale
        self.cv_error_by_horizon = cv_error_by_horizon or {}
        self.algorithm = algorithm
        self.quantiles = [0.5]
        self.steps = [("timeseriestransformer", transformer), (algorithm or "forecaster", self)]

    # -- Azure's API ------------------------------------------------------------------------------------
    @property
    def time_column_name(self) -> str:
        return self.transformer.time_column

    @property
    def time_series_id_column_names(self) -> list[str]:
        return list(self.transformer.id_columns)

    @property
    def max_horizon(self) -> int:
        return self.transformer.horizon

    def forecast(self, X_pred: pd.DataFrame | None = None, y_pred: Any = None, forecast_destination: Any = None,
                 ignore_data_errors: bool = False) -> tuple[np.ndarray, pd.DataFrame]:
        """``(y_forecast, X_trans)``: a forecast for every row of ``X_pred`` whose ``y_pred`` is missing.

        Without ``X_pred``, ``forecast_destination`` (a timestamp) forecasts every series up to it.
        """
        frame, known = self._request(X_pred, y_pred, forecast_destination)
        predicted = self._predict(frame, known, None)
        out = frame[[self.time_column_name, *self.time_series_id_column_names]].copy()
        out["horizon_origin"] = predicted["horizon"]
        out[TARGET] = predicted["mean"]
        return predicted["mean"].to_numpy(dtype=float), out

    def forecast_quantiles(self, X_pred: pd.DataFrame | None = None, y_pred: Any = None,
                           quantiles: Sequence[float] | None = None, forecast_destination: Any = None,
                           ignore_data_errors: bool = False) -> pd.DataFrame:
        """The time and id columns plus one column per quantile (normal errors, spread growing with horizon)."""
        from scipy.stats import norm

        quantiles = list(quantiles if quantiles is not None else self.quantiles)
        for q in quantiles:
            if not 0 < q < 1:
                raise ValueError(f"quantiles must lie strictly between 0 and 1, got {q!r}")
        frame, known = self._request(X_pred, y_pred, forecast_destination)
        predicted = self._predict(frame, known, None)
        out = frame[[self.time_column_name, *self.time_series_id_column_names]].copy().reset_index(drop=True)
        for q in quantiles:
            out[q] = (predicted["mean"] + norm.ppf(q) * predicted["spread"]).to_numpy()
        return out

    def rolling_forecast(self, X_pred: pd.DataFrame, y_pred: Any, step: int = 1, ignore_data_errors: bool = False
                         ) -> pd.DataFrame:
        """Forecasts from origins ``step`` periods apart over ``X_pred``, each using the actuals ``y_pred`` before it.

        Columns: the time and id columns, ``forecast_origin``, ``_automl_prediction``, ``_automl_actual``.
        """
        if not isinstance(step, int) or isinstance(step, bool) or step < 1:
            raise ValueError(f"step must be a positive int, got {step!r}")
        frame = self._frame(X_pred)
        y = np.asarray(y_pred, dtype=float)
        if len(y) != len(frame):
            raise ValueError(f"y_pred has {len(y)} values for {len(frame)} rows of X_pred")
        frame = frame.assign(_automl_actual=y)
        rows = []
        t = self.transformer
        for key, part in self._groups(frame):
            part = part.sort_values(self.time_column_name)
            times_all, y_all, exog_all = t.history[key]
            origin = 0
            while origin < len(part):
                context = part.iloc[:origin]
                target = part.iloc[origin:origin + t.horizon]
                means, _, horizons = self._series_forecast(key, context, target)
                block = target[[self.time_column_name, *self.time_series_id_column_names]].copy()
                block["forecast_origin"] = (part[self.time_column_name].iloc[origin - 1] if origin
                                            else times_all[-1])
                block["_automl_prediction"] = means
                block["_automl_actual"] = target["_automl_actual"].to_numpy()
                rows.append(block)
                origin += step
        return pd.concat(rows, ignore_index=True)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Azure's forecasting models also answer ``predict``: the forecast of each row."""
        return self.forecast(X)[0]

    # -- internals ------------------------------------------------------------------------------------------
    def _frame(self, X: Any) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise ValueError(f"X_pred must be a DataFrame holding {self.time_column_name!r}"
                             + (f" and {self.time_series_id_column_names}" if self.time_series_id_column_names else ""))
        needed = [self.time_column_name, *self.time_series_id_column_names]
        missing = [c for c in needed if c not in X.columns]
        if missing:
            raise ValueError(f"X_pred lacks column(s) {', '.join(map(repr, missing))}; the forecaster needs the time "
                             f"column and the time series id columns: {', '.join(needed)}")
        if len(X) == 0:
            raise ValueError("X_pred has no rows: give the times (and series ids) to forecast")
        frame = X.copy().reset_index(drop=True)
        frame[self.time_column_name] = parse_times(frame[self.time_column_name], self.time_column_name,
                                                   getattr(self.transformer, "day_first", False))
        twice = frame.duplicated(needed, keep=False)
        if twice.any():
            raise _error(f"X_pred has {int(twice.sum())} rows for the same {' and '.join(map(repr, needed))}, e.g. "
                         f"{_row_text(frame.loc[twice].iloc[0], needed)}: each series needs one row per time")
        return frame

    def _groups(self, frame: pd.DataFrame) -> list[tuple[tuple[Any, ...], pd.DataFrame]]:
        ids = self.time_series_id_column_names
        groups = list(frame.groupby(ids, sort=False, dropna=False)) if ids else [((), frame)]
        out = []
        for key, part in groups:
            key = key if isinstance(key, tuple) else (key,)
            key = self._known_key(key)
            out.append((key, part))
        return out

    def _known_key(self, key: tuple[Any, ...]) -> tuple[Any, ...]:
        history = self.transformer.history
        if key in history:
            return key
        for known in history:  # ids read back from a CSV may come as text or as numbers
            if tuple(map(str, known)) == tuple(map(str, key)):
                return known
        grain = dict(zip(self.time_series_id_column_names, key))
        dropped = (self.transformer.notes.get("short_series") or {}).get("dropped") or []
        if ", ".join(map(str, key)) in dropped:
            raise _error(f"The time series identifier {grain} was dropped from the training data as too short "
                         f"(short_series_handling_configuration): the model has no forecast for it")
        known_series = ", ".join(str(dict(zip(self.time_series_id_column_names, k))) for k in list(history)[:5])
        raise _error(f"The time series identifier {grain} does not exist in the training dataset. Please inspect your "
                     f"data. (known series: {known_series}"
                     f"{', ...' if len(history) > 5 else ''})")

    def _request(self, X_pred: Any, y_pred: Any, destination: Any) -> tuple[pd.DataFrame, np.ndarray]:
        t = self.transformer
        if X_pred is None:
            if destination is None:
                raise ValueError("forecast needs X_pred (the rows to forecast) or forecast_destination")
            end = pd.Timestamp(destination)
            parts = []
            for key, (times, _, _) in t.history.items():
                future = pd.date_range(times[-1], end, freq=t.freq)[1:]
                part = pd.DataFrame({t.time_column: future})
                for column, value in zip(t.id_columns, key):
                    part[column] = value
                parts.append(part)
            frame = pd.concat(parts, ignore_index=True)
        else:
            frame = self._frame(X_pred)
        known = np.full(len(frame), np.nan) if y_pred is None else np.asarray(y_pred, dtype=float).copy()
        if len(known) != len(frame):
            raise ValueError(f"y_pred has {len(known)} values for {len(frame)} rows of X_pred")
        return frame, known

    def _predict(self, frame: pd.DataFrame, known: np.ndarray, _: Any) -> pd.DataFrame:
        frame = frame.assign(_automl_actual=known, _row=np.arange(len(frame)))
        mean = np.full(len(frame), np.nan)
        spread = np.full(len(frame), np.nan)
        horizon = np.zeros(len(frame), dtype=int)
        for key, part in self._groups(frame):
            part = part.sort_values(self.time_column_name)
            missing = part["_automl_actual"].isna().to_numpy()
            if not missing.any():
                mean[part["_row"]] = part["_automl_actual"]
                continue
            first = int(np.argmax(missing))
            context, target = part.iloc[:first], part.iloc[first:]
            means, spreads, horizons = self._series_forecast(key, context, target)
            mean[target["_row"]] = means
            spread[target["_row"]] = spreads
            horizon[target["_row"]] = horizons
            mean[context["_row"]] = context["_automl_actual"]
        return pd.DataFrame({"mean": mean, "spread": np.nan_to_num(spread), "horizon": horizon})

    def _series_forecast(self, key: tuple[Any, ...], context: pd.DataFrame, target: pd.DataFrame
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Forecasts for ``target``'s times of series ``key``, after the history and ``context``'s actuals."""
        t = self.transformer
        times, y, exog = t.history[key]
        code = t.codes[key]
        if len(context):
            ctx = context[context[self.time_column_name] > times[-1]]
            if len(ctx):
                grid = pd.date_range(times[-1], ctx[self.time_column_name].max(), freq=t.freq)[1:]
                values = ctx.set_index(self.time_column_name)["_automl_actual"].reindex(grid)
                values = values.interpolate(limit_direction="both").fillna(y[-1])
                exog_ctx = self._exog_on(ctx, grid, exog)
                times, y, exog = times.append(grid), np.concatenate([y, values.to_numpy(float)]), \
                    np.vstack([exog, exog_ctx])
        last = times[-1]
        wanted = pd.DatetimeIndex(target[self.time_column_name])
        if (wanted <= last).any():
            early = wanted[wanted <= last][0]
            raise _error(f"cannot forecast {early} for series {dict(zip(t.id_columns, key))}: it is not after the "
                         f"last known time {last}")
        steps = pd.date_range(last, wanted.max(), freq=t.freq)[1:]
        position = steps.get_indexer(wanted)
        if (position < 0).any():
            raise _error(f"time {wanted[position < 0][0]} is not on the series' frequency '{t.freq}' after {last}")
        total = len(steps)
        steps = pd.date_range(last, periods=total + t.horizon + 1, freq=t.freq)[1:]  # room for a whole horizon
        future_exog = self._exog_on(target, steps, exog)
        all_times = times.append(steps)
        all_exog = np.vstack([exog, future_exog])
        extra = np.hstack([t.calendar(all_times), all_exog])
        y_known = y.copy()
        produced: list[float] = []
        while len(produced) < total:  # beyond the horizon: forecast a horizon, take it as history, go on
            chunk = min(t.horizon, total - len(produced))
            n = len(y_known)
            prediction = sum(w * member.forecast(t, code, y_known, extra[: n + t.horizon], all_exog[: n + t.horizon],
                                                 all_times[: n + t.horizon], t.horizon)[:chunk]
                             for member, w in self.members) / sum(w for _, w in self.members)
            produced.extend(np.asarray(prediction, dtype=float).tolist())
            y_known = np.concatenate([y_known, prediction])
        means = np.asarray(produced)[position]
        horizons = position + 1
        scale = t.scales[key]
        sigma = self.sigma[np.minimum(horizons, len(self.sigma)) - 1] * scale
        sigma = sigma * np.sqrt(np.maximum(1.0, horizons / max(len(self.sigma), 1)))
        return means, sigma, horizons

    def _exog_on(self, rows: pd.DataFrame, times: pd.DatetimeIndex, history_exog: np.ndarray) -> np.ndarray:
        t = self.transformer
        if t.exog_featurizer is None:
            return np.zeros((len(times), 0))
        missing = [c for c in t.exog_columns if c not in rows.columns]
        if missing:
            raise _error(f"X_pred lacks the exogenous column(s) {', '.join(map(repr, missing))} the model was trained "
                         f"with; give their values for the forecast period")
        aligned = rows.drop_duplicates(self.time_column_name).set_index(self.time_column_name).reindex(times)
        features = t.exogenous(aligned.reset_index()[t.exog_columns])
        return features


def future_rows(model: ForecastingPipelineWrapper, features: pd.DataFrame, periods: int = 1,
                keys: Sequence[tuple[Any, ...]] | None = None) -> pd.DataFrame:
    """The ``periods`` times after each training series' last one (``keys``: only those series), with the id
    columns and the other columns of the series' last row in ``features``: a forecast starts after the history,
    and columns known in the future keep their last known values."""
    t = model.transformer
    time_column, ids = t.time_column, list(t.id_columns)
    others = [c for c in features.columns if c not in (time_column, *ids)]
    last = features.iloc[:0]
    if others:
        times = parse_times(features[time_column], time_column, getattr(t, "day_first", False))
        ordered = features.assign(**{time_column: times}).sort_values(time_column, kind="stable")
        last = (ordered.groupby(ids, sort=False, dropna=False).tail(1) if ids else ordered.tail(1)).reset_index(drop=True)
    last_row = {tuple(map(_id_text, values)): i for i, values in enumerate(last[ids].itertuples(index=False))}
    blocks = []
    for key in t.history if keys is None else keys:
        block = pd.DataFrame({time_column: t.future_times(t.history[key][0][-1], periods)})
        for column, value in zip(ids, key):
            block[column] = value
        row = last_row.get(tuple(map(_id_text, key)))
        if row is not None:
            block = pd.concat([block, last.iloc[[row] * periods][others].reset_index(drop=True)], axis=1)
        blocks.append(block)
    return pd.concat(blocks, ignore_index=True)


def _id_text(value: Any) -> str:
    """A series id as text that matches however the table typed it: ``1``, ``1.0`` and ``"1"`` are one series (a CSV
    id column with an empty cell reads as floats)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else str(number)


def residual_spread(sf: SeriesFold, y: np.ndarray, oof: np.ndarray) -> tuple[np.ndarray, dict[str, list[float]]]:
    """Per horizon: the std of out-of-fold errors relative to each series' scale, and error summaries."""
    errors = (y - oof[:, 0])
    known = np.isfinite(errors)
    relative = errors / sf.scales[sf.row_series]
    sigma, mae, mase = [], [], []
    for h in range(1, sf.horizon + 1):
        rows = known & (sf.row_horizon == h)
        sigma.append(float(np.sqrt(np.mean(relative[rows] ** 2))) if rows.any() else float("nan"))
        mae.append(float(np.mean(np.abs(errors[rows]))) if rows.any() else float("nan"))
        mase.append(float(np.mean(np.abs(relative[rows]))) if rows.any() else float("nan"))
    sigma_arr = np.maximum.accumulate(np.nan_to_num(np.asarray(sigma), nan=0.0))
    return sigma_arr, {"mean_absolute_error": mae, "mean_absolute_scaled_error": mase}


def prediction_table(model: ForecastingPipelineWrapper, prepared: pd.DataFrame, label: str) -> pd.DataFrame:
    """``amlstep predict``'s table: forecasts (with a 5%-95% band) for the rows of ``prepared`` after each series'
    last known label, or, when there are none, for the next ``forecast_horizon`` periods of each series. Missing
    labels before a series' last known one are gaps in its history, interpolated as in training."""
    time_column, ids = model.time_column_name, model.time_series_id_column_names
    frame = model._frame(prepared)
    given = pd.to_numeric(frame[label], errors="coerce").to_numpy(dtype=float) if label in frame.columns else \
        np.full(len(frame), np.nan)
    known = _history_gaps_filled(frame, given, time_column, ids)
    if np.isfinite(known).all():  # history only: append the next horizon of each series
        t = model.transformer
        if t.exog_columns:  # forecast() refuses to guess them; so does predict
            gaps = int(np.isnan(given).sum())
            has = f"has its {label!r}" + (f" or lies before its series' last one ({gaps} gap(s), imputed)" if gaps else "")
            raise _error(f"every row {has}, so there is nothing to forecast, and the model forecasts with "
                         f"the column(s) {', '.join(map(repr, t.exog_columns))} known in the future: add the rows to "
                         f"forecast, with those columns and an empty {label!r}")
        future = []
        for key, part in model._groups(frame):
            last = max(part[time_column].max(), t.history[key][0][-1])
            block = pd.DataFrame({time_column: t.future_times(last, t.horizon)})
            for column, value in zip(ids, part[ids].iloc[0] if ids else []):
                block[column] = value
            future.append(block)
        extra = pd.concat(future, ignore_index=True)
        frame = pd.concat([frame, extra], ignore_index=True)
        known = np.concatenate([known, np.full(len(extra), np.nan)])
    bands = model.forecast_quantiles(frame.drop(columns=[label], errors="ignore"), known, [0.05, 0.5, 0.95])
    _, trans = model.forecast(frame.drop(columns=[label], errors="ignore"), known)
    wanted = ~np.isfinite(known)
    out = frame.loc[wanted, [time_column, *ids]].reset_index(drop=True)
    out["horizon"] = trans.loc[wanted, "horizon_origin"].to_numpy()
    out[f"predicted_{label}"] = trans.loc[wanted, TARGET].to_numpy()
    out[f"{label}_q05"] = bands.loc[wanted, 0.05].to_numpy()
    out[f"{label}_q95"] = bands.loc[wanted, 0.95].to_numpy()
    return out


def _history_gaps_filled(frame: pd.DataFrame, known: np.ndarray, time_column: str, ids: list[str]) -> np.ndarray:
    """``known`` (the label of each row of ``frame``) with the missing values before each series' last known one
    interpolated over time, as training imputes them; the missing values after it are left to forecast."""
    filled = known.copy()
    series = frame.assign(_automl_actual=known, _row=np.arange(len(frame)))
    for _, part in series.groupby(ids, sort=False, dropna=False) if ids else [((), series)]:
        part = part.sort_values(time_column)
        values = part["_automl_actual"]
        if values.isna().all() or values.notna().all():
            continue
        history = part.iloc[: int(np.flatnonzero(values.notna().to_numpy())[-1]) + 1]
        imputed = history.set_index(time_column)["_automl_actual"].interpolate(method="time", limit_direction="both")
        filled[history["_row"].to_numpy()] = imputed.to_numpy()
    return filled
