"""The plugin's own tests: the amlstep contract harness, plus what is special about penguins."""

import pandas as pd
import pytest

from amlstep_penguins import STEP, penguins_csv, prepare
from framework.testing import parametrize_with_checks


def sample() -> pd.DataFrame:
    return pd.read_csv(penguins_csv()).head(40)


@parametrize_with_checks([STEP], sample_inputs={"penguins_ds": sample()}, label="species")
def test_step_contract(step, check):
    check(step)


def test_missing_values_stay_for_automl(run_step):
    out = run_step("dataprep_penguins", penguins_ds=sample())
    prepped = out["prepped_data"]
    assert "year" not in prepped.columns and "bill_ratio" in prepped.columns
    assert prepped["sex"].isna().any()


def test_prepares_rows_without_species():
    raw = sample().drop(columns=["species"])
    assert len(prepare(raw)) == len(raw)


def test_names_the_missing_column():
    with pytest.raises(ValueError, match="'island'"):
        prepare(sample().drop(columns=["island"]))
