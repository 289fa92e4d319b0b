import re
import warnings

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
    assert [(o.name, o.type.value) for o in STEP.outputs] == [("prepped_data", "tabular"), ("learned", "learned")]
    assert STEP.build_params({}) == {"seed": 42}


def test_non_numeric_age_is_named(raw):
    from plugins.dataprep_titanic import ColumnTypeError

    bad = raw.assign(Age=raw["Age"].astype(object))
    bad.loc[3, "Age"] = "forty"
    with pytest.raises(ColumnTypeError, match=re.escape("column 'Age' must be numeric; found 1 value(s) like 'forty'")):
        prepare(bad)


def seed_preparation(df: pd.DataFrame, seed: int = 42) -> pd.DataFrame:
    """The seed's dataprep.py, as it was before the preparation kept what it learned."""
    df = df.drop(columns=["PassengerId", "Name", "Ticket", "Cabin"])
    age = df["Age"].astype(float)
    missing = age.isna()
    mean, std = age.mean(), age.std()
    age[missing] = np.random.default_rng(seed).integers(int(mean - std), int(mean + std), size=int(missing.sum()))
    df = df.assign(Age_Group=pd.qcut(age.astype(int), 5, labels=False, duplicates="drop")).drop(columns=["Age"])
    df = df.assign(Fare_Group=pd.qcut(df["Fare"].fillna(0), 5, labels=False, duplicates="drop")).drop(columns=["Fare"])
    df["Sex"] = df["Sex"].map({"male": 0, "female": 1}).astype(int)
    df["Embarked"] = df["Embarked"].fillna("U").map({"S": 0, "C": 1, "Q": 2, "U": 3}).astype(int)
    return df


def test_training_rows_are_prepared_as_the_seed_does(raw):
    pd.testing.assert_frame_equal(prepare(raw), seed_preparation(raw))


def test_what_it_learned_prepares_each_row_on_its_own(raw, titanic_test_csv):
    """A row's prepared values depend on what the training rows taught, never on the other rows."""
    from plugins.dataprep_titanic import learn

    learned = learn(raw)
    assert learned["Age"]["bins"] == [0.0, 19.0, 25.0, 32.0, 39.0, 80.0] and learned["Age"]["fill"] == 29
    new = pd.read_csv(titanic_test_csv)
    whole = prepare(new, learned=learned)
    gaps = [*new.index[new["Age"].isna()][:8], *new.index[new["Fare"].isna()]]
    rows = sorted({*range(20), *gaps})  # some whole rows, and rows with missing values to fill
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one_by_one = pd.concat([prepare(new.iloc[[i]], learned=learned) for i in rows])
    pd.testing.assert_frame_equal(one_by_one, whole.iloc[rows])
    assert new["Fare"].iloc[rows].isna().any() and new["Age"].iloc[rows].isna().sum() >= 5
    assert not whole.isna().any().any()
    # the training rows' known ages and every fare fall in the groups they had in training
    prepped = prepare(raw)
    again = prepare(raw, learned=learned)
    known = raw["Age"].notna()
    assert (again["Age_Group"][known] == prepped["Age_Group"][known]).all()
    assert (again["Fare_Group"] == prepped["Fare_Group"]).all()


def test_values_outside_the_training_range_go_to_the_end_groups(raw):
    from plugins.dataprep_titanic import learn

    rows = pd.DataFrame({"Age": [-1, 0, 95, np.nan], "Fare": [-5.0, 0.0, 9999.0, np.nan], "Sex": ["male"] * 4,
                         "Embarked": ["S"] * 4})
    prepped = prepare(rows, learned=learn(raw))
    assert prepped["Age_Group"].tolist() == [0, 0, 4, 2]   # a missing age is the training mean, 29
    assert prepped["Fare_Group"].tolist() == [0, 0, 4, 0]  # a missing fare is 0, as in training


def test_the_step_returns_what_it_learned_and_applies_it_when_given(run_step, raw):
    trained = run_step(STEP, titanic_ds=raw)
    learned = trained["learned"]
    assert set(learned) == {"Age", "Fare"}
    applied = run_step(STEP, titanic_ds=raw.head(1), learned=learned)
    assert applied["learned"] == learned
    assert applied["prepped_data"].iloc[0].to_dict() == prepare(raw.head(1), learned=learned).iloc[0].to_dict()
