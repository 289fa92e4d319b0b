"""The seed's Titanic preparation as a step plugin.

``prepare(df)`` is a plain function, so batch inference can prepare new passengers the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from framework import DataType, Input, Output, Param, StepSpec, hookimpl

if TYPE_CHECKING:
    import pandas as pd

RANDOM_SEED = 42
DROPPED_COLUMNS = ["PassengerId", "Name", "Ticket", "Cabin"]
REQUIRED_COLUMNS = ["Age", "Fare", "Sex", "Embarked"]
GENDERS = {"male": 0, "female": 1, "unknown": 2}
PORTS = {"S": 0, "C": 1, "Q": 2, "U": 3}


class MissingColumnsError(ValueError):
    """The frame lacks columns the preparation needs."""


class ColumnTypeError(ValueError):
    """A column holds values the preparation cannot use."""


def numeric_column(df: pd.DataFrame, column: str) -> pd.Series:
    """``df[column]`` as floats, or an error naming the column and a bad value."""
    import pandas as pd

    values = pd.to_numeric(df[column], errors="coerce")
    bad = df[column][values.isna() & df[column].notna()]
    if not bad.empty:
        raise ColumnTypeError(f"column {column!r} must be numeric; found {len(bad)} value(s) like {str(bad.iloc[0])!r}")
    return values.astype(float)


def prepare(df: pd.DataFrame, seed: int = RANDOM_SEED) -> pd.DataFrame:
    """Prepare raw Titanic rows: drop identifiers, fill gaps, bucket Age and Fare, encode Sex and Embarked."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise MissingColumnsError(
            f"Titanic data is missing column(s) {', '.join(map(repr, missing))}; expected at least "
            f"{', '.join(REQUIRED_COLUMNS)} (got {', '.join(map(str, df.columns))})"
        )
    df = df.drop(columns=[c for c in DROPPED_COLUMNS if c in df.columns])
    return prepare_embarked(prepare_genders(prepare_fare(prepare_age(df, seed))))


def prepare_age(df: pd.DataFrame, seed: int = RANDOM_SEED) -> pd.DataFrame:
    """Fill missing ages uniformly within one standard deviation of the mean; 5 quantile groups."""
    import numpy as np
    import pandas as pd

    age = numeric_column(df, "Age")
    missing = age.isna()
    if missing.any():
        mean, std = age.mean(), age.std()
        if np.isnan(mean):
            raise MissingColumnsError("column 'Age' has no values at all; cannot fill missing ages")
        std = 0.0 if np.isnan(std) else std
        low, high = int(mean - std), int(mean + std)
        draws = np.random.default_rng(seed).integers(low, max(high, low + 1), size=int(missing.sum()))
        age = age.copy()
        age[missing] = draws
    df = df.assign(Age=age.astype(int))
    df["Age_Group"] = pd.qcut(df["Age"], 5, labels=False, duplicates="drop")
    return df.drop(columns=["Age"])


def prepare_fare(df: pd.DataFrame) -> pd.DataFrame:
    """Fill missing fares with 0; 5 quantile groups."""
    import pandas as pd

    fare = numeric_column(df, "Fare").fillna(0)
    df = df.assign(Fare_Group=pd.qcut(fare, 5, labels=False, duplicates="drop"))
    return df.drop(columns=["Fare"])


def prepare_genders(df: pd.DataFrame) -> pd.DataFrame:
    """male/female/unknown -> 0/1/2; anything else counts as unknown."""
    return df.assign(Sex=df["Sex"].map(GENDERS).fillna(GENDERS["unknown"]).astype(int))


def prepare_embarked(df: pd.DataFrame) -> pd.DataFrame:
    """S/C/Q -> 0/1/2; missing, empty or unexpected -> U -> 3."""
    embarked = df["Embarked"].astype("string").str.strip().replace("", "U").fillna("U")
    return df.assign(Embarked=embarked.map(PORTS).fillna(PORTS["U"]).astype(int))


def run(titanic_ds: pd.DataFrame, seed: int) -> dict[str, Any]:
    prepped = prepare(titanic_ds, seed)
    print(f"Prepared {len(prepped)} rows, columns: {', '.join(map(str, prepped.columns))}")
    return {"prepped_data": prepped}


STEP = StepSpec(
    name="dataprep_titanic",
    description="The seed's Titanic preparation: drop identifiers, fill gaps, bucket Age/Fare, encode Sex/Embarked",
    run=run,
    inputs=[Input("titanic_ds", DataType.TABULAR, "raw Titanic passengers (Kaggle train.csv columns)")],
    outputs=[Output("prepped_data", DataType.TABULAR, "prepped_data.csv, ready for AutoML")],
    params=[Param("seed", int, RANDOM_SEED, "seed of the random ages drawn for missing values")],
)


@hookimpl
def register_steps(register: Callable[[StepSpec], None]) -> None:
    register(STEP)
