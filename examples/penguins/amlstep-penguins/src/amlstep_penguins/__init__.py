"""Step plugin ``dataprep_penguins``: the Palmer penguins, ready for multi-class AutoML.

The raw data (palmerpenguins ships it as a CSV inside the package, so nothing is downloaded)
has 344 penguins of three species, numeric measurements with missing values and the
categoricals ``island`` and ``sex``. The preparation is deliberately light: it normalizes the
categoricals, adds the bill length/depth ratio and drops the columns named in ``drop_columns``;
missing values stay missing so that AutoML's featurization imputes them (and its guardrails say
so). ``prepare(df)`` is a plain function, so ``amlstep predict`` prepares new penguins the same
way, with or without the ``species`` column.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING, Any, Callable

from framework import DataType, Input, Output, Param, StepSpec, hookimpl

if TYPE_CHECKING:
    import pandas as pd

LABEL = "species"
MEASUREMENTS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICALS = ["island", "sex"]


def penguins_csv() -> str:
    """Path of the penguins CSV shipped inside the palmerpenguins package (register it as a dataset)."""
    return str(resources.files("palmerpenguins") / "data" / "penguins.csv")


def prepare(df: pd.DataFrame, drop_columns: str = "year", add_ratios: bool = True) -> pd.DataFrame:
    """Normalize categoricals, add ``bill_ratio``, drop ``drop_columns`` (comma-separated)."""
    import numpy as np
    import pandas as pd

    missing = [c for c in MEASUREMENTS + CATEGORICALS if c not in df.columns]
    if missing:
        raise ValueError(
            f"penguin data is missing column(s) {', '.join(map(repr, missing))}; expected "
            f"{', '.join(MEASUREMENTS + CATEGORICALS)} (got {', '.join(map(str, df.columns))})")
    df = df.copy()
    for column in CATEGORICALS:
        text = df[column].astype("string").str.strip().str.lower()
        df[column] = text.mask(text.isin(["", "na", "nan", "."]))
    for column in MEASUREMENTS:
        df[column] = pd.to_numeric(df[column], errors="coerce")
    if add_ratios:
        depth = df["bill_depth_mm"].replace(0, np.nan)
        df["bill_ratio"] = (df["bill_length_mm"] / depth).round(4)
    if LABEL in df.columns:
        df = df[df[LABEL].notna()]  # rows without a label cannot train; prediction data has no label column
    dropped = [c.strip() for c in drop_columns.split(",") if c.strip()]
    unknown = [c for c in dropped if c not in df.columns]
    if unknown:
        raise ValueError(f"drop_columns names unknown column(s) {', '.join(map(repr, unknown))}; "
                         f"columns: {', '.join(map(str, df.columns))}")
    return df.drop(columns=dropped).reset_index(drop=True)


def run(penguins_ds: pd.DataFrame, drop_columns: str, add_ratios: bool) -> dict[str, Any]:
    prepped = prepare(penguins_ds, drop_columns, add_ratios)
    missing = int(prepped.isna().sum().sum())
    print(f"Prepared {len(prepped)} penguins, {missing} missing values left for AutoML to impute; "
          f"columns: {', '.join(map(str, prepped.columns))}")
    return {"prepped_data": prepped}


STEP = StepSpec(
    name="dataprep_penguins",
    description="Palmer penguins: normalize island/sex, add bill_ratio, drop columns; keeps missing values for AutoML",
    run=run,
    inputs=[Input("penguins_ds", DataType.TABULAR, "raw penguins (palmerpenguins' penguins.csv columns)")],
    outputs=[Output("prepped_data", DataType.TABULAR, "prepped_data.csv, ready for AutoML (label: species)")],
    params=[
        Param("drop_columns", str, "year", "comma-separated columns to drop"),
        Param("add_ratios", bool, True, "add bill_ratio = bill_length_mm / bill_depth_mm"),
    ],
)


@hookimpl
def register_steps(register: Callable[[StepSpec], None]) -> None:
    register(STEP)
