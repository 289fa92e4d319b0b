"""Step plugin ``dataprep_macro``: US quarterly macroeconomic series, long format, for AutoML forecasting.

statsmodels ships the data (``statsmodels/datasets/macrodata/macrodata.csv``: 203 quarters,
1959Q1-2009Q3, one column per indicator), so nothing is downloaded. The preparation turns the
wide table into one row per (quarter, series): ``date`` (the quarter's first day), ``series``
(the indicator's name) and ``value``. ``prepare(df)`` is a plain function, so ``amlstep predict``
prepares a newer copy of the same file the same way and forecasts the quarters after it.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING, Any, Callable

from framework import DataType, Input, Output, Param, StepSpec, hookimpl

if TYPE_CHECKING:
    import pandas as pd

SERIES = "realgdp,realcons,realinv,realgovt,cpi,m1"


def macrodata_csv() -> str:
    """Path of the macrodata CSV shipped inside statsmodels (register it as a dataset)."""
    return str(resources.files("statsmodels") / "datasets" / "macrodata" / "macrodata.csv")


def prepare(df: pd.DataFrame, series: str = SERIES) -> pd.DataFrame:
    """``year``/``quarter`` + one column per indicator -> ``date, series, value`` rows, sorted."""
    import pandas as pd

    names = [s.strip() for s in series.split(",") if s.strip()]
    missing = [c for c in ["year", "quarter", *names] if c not in df.columns]
    if missing:
        raise ValueError(f"macro data is missing column(s) {', '.join(map(repr, missing))}; expected year, quarter "
                         f"and the series {', '.join(names)} (got {', '.join(map(str, df.columns))})")
    year = pd.to_numeric(df["year"], errors="coerce").astype("Int64")
    quarter = pd.to_numeric(df["quarter"], errors="coerce").astype("Int64")
    dates = pd.to_datetime({"year": year, "month": (quarter - 1) * 3 + 1, "day": 1}, errors="coerce")
    wide = df[names].apply(pd.to_numeric, errors="coerce").assign(date=dates)
    long = wide.melt(id_vars="date", value_vars=names, var_name="series", value_name="value")
    return long.dropna(subset=["date"]).sort_values(["series", "date"]).reset_index(drop=True)


def run(macro_ds: pd.DataFrame, series: str) -> dict[str, Any]:
    prepped = prepare(macro_ds, series)
    print(f"Prepared {prepped['series'].nunique()} series x {prepped['date'].nunique()} quarters "
          f"({prepped['date'].min():%Y-%m} to {prepped['date'].max():%Y-%m})")
    return {"prepped_data": prepped}


STEP = StepSpec(
    name="dataprep_macro",
    description="US quarterly macro indicators (statsmodels macrodata) as date/series/value rows for forecasting",
    run=run,
    inputs=[Input("macro_ds", DataType.TABULAR, "macrodata.csv: year, quarter and one column per indicator")],
    outputs=[Output("prepped_data", DataType.TABULAR, "date, series, value (label: value)")],
    params=[Param("series", str, SERIES, "comma-separated indicators to forecast")],
)


@hookimpl
def register_steps(register: Callable[[StepSpec], None]) -> None:
    register(STEP)
