"""The seed's Titanic preparation as a step plugin.

``prepare(df)`` is a plain function. The step keeps what it learned from the training rows (the Age
and Fare groups, the age that fills gaps) as its ``learned`` output, and ``amlstep predict`` applies
it to new passengers (``prepare(df, learned=...)``), so a passenger's prediction does not depend on
the other rows of the file.
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
FARE_FILL = 0.0


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


def prepare(df: pd.DataFrame, seed: int = RANDOM_SEED, learned: dict[str, Any] | None = None) -> pd.DataFrame:
    """Prepare raw Titanic rows: drop identifiers, fill gaps, bucket Age and Fare, encode Sex and Embarked.

    Without ``learned`` the preparation learns from ``df`` itself, as the seed does with its training
    rows: missing ages are drawn around the mean age, Age and Fare are cut into 5 quantile groups.
    With ``learned`` (what ``learn`` or a training run's ``learned`` output holds) each row is prepared
    with what the training rows taught: a missing age gets the training mean, Age and Fare go into the
    training groups. Then a row's result does not depend on the other rows of ``df``, which is what
    prediction needs.
    """
    return prepare_and_learn(df, seed, learned)[0]


def learn(df: pd.DataFrame, seed: int = RANDOM_SEED) -> dict[str, Any]:
    """What the preparation learns from training rows: the fill age and the Age and Fare group edges."""
    return prepare_and_learn(df, seed)[1]


def prepare_and_learn(df: pd.DataFrame, seed: int = RANDOM_SEED, learned: dict[str, Any] | None = None
                      ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``prepare`` and ``learn`` in one pass: the prepared rows and what was learned (or applied)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise MissingColumnsError(
            f"Titanic data is missing column(s) {', '.join(map(repr, missing))}; expected at least "
            f"{', '.join(REQUIRED_COLUMNS)} (got {', '.join(map(str, df.columns))})"
        )
    df = df.drop(columns=[c for c in DROPPED_COLUMNS if c in df.columns])
    df, age = _prepare_age(df, seed, None if learned is None else learned["Age"])
    df, fare = _prepare_fare(df, None if learned is None else learned["Fare"])
    return prepare_embarked(prepare_genders(df)), {"Age": age, "Fare": fare}


def prepare_age(df: pd.DataFrame, seed: int = RANDOM_SEED, learned: dict[str, Any] | None = None) -> pd.DataFrame:
    """Fill missing ages uniformly within one standard deviation of the mean; 5 quantile groups."""
    return _prepare_age(df, seed, learned)[0]


def _prepare_age(df: pd.DataFrame, seed: int, learned: dict[str, Any] | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    import numpy as np
    import pandas as pd

    age = numeric_column(df, "Age")
    missing = age.isna()
    if learned is None:
        mean, std = age.mean(), age.std()
        if np.isnan(mean):
            raise MissingColumnsError("column 'Age' has no values at all; cannot fill missing ages")
        if missing.any():
            std = 0.0 if np.isnan(std) else std
            low, high = int(mean - std), int(mean + std)
            draws = np.random.default_rng(seed).integers(low, max(high, low + 1), size=int(missing.sum()))
            age = age.copy()
            age[missing] = draws
        age = age.astype(int)
        groups, edges = pd.qcut(age, 5, labels=False, retbins=True, duplicates="drop")
        learned = {"fill": int(mean), "bins": [float(e) for e in edges]}
    else:
        age = age.fillna(learned["fill"]).astype(int)
        groups = apply_bins(age, learned["bins"])
    return df.assign(Age_Group=groups).drop(columns=["Age"]), learned


def prepare_fare(df: pd.DataFrame, learned: dict[str, Any] | None = None) -> pd.DataFrame:
    """Fill missing fares with 0; 5 quantile groups."""
    return _prepare_fare(df, learned)[0]


def _prepare_fare(df: pd.DataFrame, learned: dict[str, Any] | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    import pandas as pd

    fare = numeric_column(df, "Fare").fillna(FARE_FILL)
    if learned is None:
        groups, edges = pd.qcut(fare, 5, labels=False, retbins=True, duplicates="drop")
        learned = {"fill": FARE_FILL, "bins": [float(e) for e in edges]}
    else:
        groups = apply_bins(fare, learned["bins"])
    return df.assign(Fare_Group=groups).drop(columns=["Fare"]), learned


def apply_bins(values: pd.Series, edges: list[float]) -> pd.Series:
    """The group of each value among bin ``edges`` exactly as ``pd.qcut`` numbered them (right-closed,
    the first bin closed on both sides); values outside the training range go to the first or last group."""
    import numpy as np
    import pandas as pd

    bounds = np.asarray(edges, dtype=float)
    if len(bounds) < 2:
        return pd.Series(0, index=values.index)
    codes = np.searchsorted(bounds, values.to_numpy(dtype=float), side="left") - 1
    return pd.Series(np.clip(codes, 0, len(bounds) - 2), index=values.index)


def prepare_genders(df: pd.DataFrame) -> pd.DataFrame:
    """male/female/unknown -> 0/1/2; anything else counts as unknown."""
    return df.assign(Sex=df["Sex"].map(GENDERS).fillna(GENDERS["unknown"]).astype(int))


def prepare_embarked(df: pd.DataFrame) -> pd.DataFrame:
    """S/C/Q -> 0/1/2; missing, empty or unexpected -> U -> 3."""
    embarked = df["Embarked"].astype("string").str.strip().replace("", "U").fillna("U")
    return df.assign(Embarked=embarked.map(PORTS).fillna(PORTS["U"]).astype(int))


def run(titanic_ds: pd.DataFrame, seed: int, learned: dict[str, Any] | None = None) -> dict[str, Any]:
    """Learn from the rows and prepare them (a pipeline run), or apply what was learned (``amlstep predict``)."""
    prepped, learned = prepare_and_learn(titanic_ds, seed, learned)
    print(f"Prepared {len(prepped)} rows, columns: {', '.join(map(str, prepped.columns))}")
    return {"prepped_data": prepped, "learned": learned}


STEP = StepSpec(
    name="dataprep_titanic",
    description="The seed's Titanic preparation: drop identifiers, fill gaps, bucket Age/Fare, encode Sex/Embarked",
    run=run,
    inputs=[Input("titanic_ds", DataType.TABULAR, "raw Titanic passengers (Kaggle train.csv columns)")],
    outputs=[Output("prepped_data", DataType.TABULAR, "prepped_data.csv, ready for AutoML"),
             Output("learned", DataType.LEARNED, "the Age and Fare groups and the fill age learned from the "
                                                 "training rows; predict applies them to new rows")],
    params=[Param("seed", int, RANDOM_SEED, "seed of the random ages drawn for missing values")],
)


@hookimpl
def register_steps(register: Callable[[StepSpec], None]) -> None:
    register(STEP)
