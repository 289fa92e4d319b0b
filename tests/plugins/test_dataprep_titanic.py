import re

import numpy as np
import pandas as pd
import pytest

from plugins.dataprep_titanic import STEP, MissingColumnsError, prepare


@pytest.fixture(scope="module")
def raw(titanic_csv):
    return pd.read_csv(titanic_csv)


def test_prepare_follows_the_seed(raw):
    prepped = prepare(raw)
    assert list(prepped.columns) == ["Survived", "Pclass", "Sex", "SibSp", "Parch", "Embarked", "Age_Group", "Fare_Group"]
    assert not prepped.isna().any().any()
    assert sorted(prepped["Age_Group"].unique()) == [0, 1, 2, 3, 4]
    assert sorted(prepped["Fare_Group"].unique()) == [0, 1, 2, 3, 4]
    assert set(prepped["Sex"]) == {0, 1}
    assert (prepped["Sex"] == (raw["Sex"] == "female").astype(int)).all()
    assert prepped["Embarked"].value_counts().to_dict() == {0: 644, 1: 168, 2: 77, 3: 2}
    assert len(prepped) == len(raw)


def test_prepare_is_seeded_and_does_not_touch_its_input(raw):
    before = raw.copy()
    assert prepare(raw).equals(prepare(raw))
    assert not prepare(raw, seed=1).equals(prepare(raw, seed=2))
    pd.testing.assert_frame_equal(raw, before)


def test_missing_ages_are_drawn_within_one_std_of_the_mean():
    ages = [20.0, 30.0, 40.0, np.nan, np.nan, 25.0, 35.0, np.nan, 50.0, 45.0]
    frame = pd.DataFrame({"Age": ages, "Fare": range(10), "Sex": ["male"] * 10, "Embarked": ["S"] * 10})
    mean, std = np.nanmean(ages), pd.Series(ages).std()
    from plugins.dataprep_titanic import prepare_age

    filled = prepare_age(frame.assign(Keep=range(10)))
    assert "Age" not in filled.columns and filled["Age_Group"].notna().all()
    draws = np.random.default_rng(42).integers(int(mean - std), int(mean + std), size=3)
    assert ((draws >= int(mean - std)) & (draws < int(mean + std))).all()


def test_unknown_sex_and_embarked_values():
    frame = pd.DataFrame({"Age": [1, 2, 3, 4, 5, 6], "Fare": [1, 2, 3, 4, 5, np.nan],
                          "Sex": ["male", "female", "unknown", None, "other", "male"],
                          "Embarked": ["S", "C", "Q", "", None, "Z"]})
    prepped = prepare(frame)
    assert prepped["Sex"].tolist() == [0, 1, 2, 2, 2, 0]
    assert prepped["Embarked"].tolist() == [0, 1, 2, 3, 3, 3]


def test_missing_column_is_named(raw):
    with pytest.raises(MissingColumnsError, match=re.escape("Titanic data is missing column(s) 'Age', 'Sex'; expected")):
        prepare(raw.drop(columns=["Age", "Sex"]))


def test_works_on_the_unlabelled_test_file(titanic_test_csv):
    prepped = prepare(pd.read_csv(titanic_test_csv))
    assert "Survived" not in prepped.columns and len(prepped) == 418 and not prepped.isna().any().any()


def test_step_declaration():
    assert [i.name for i in STEP.inputs] == ["titanic_ds"]
    assert [o.name for o in STEP.outputs] == ["prepped_data"]
    assert STEP.build_params({}) == {"seed": 42}


def test_non_numeric_age_is_named(raw):
    from plugins.dataprep_titanic import ColumnTypeError

    bad = raw.assign(Age=raw["Age"].astype(object))
    bad.loc[3, "Age"] = "forty"
    with pytest.raises(ColumnTypeError, match=re.escape("column 'Age' must be numeric; found 1 value(s) like 'forty'")):
        prepare(bad)
