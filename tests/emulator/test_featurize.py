"""Featurization 'auto': what Azure does to raw columns; FeaturizationConfig purposes and drops."""

import numpy as np
import pandas as pd
import pytest

from emulator.featurize import HASH_BUCKETS, AutoFeaturizer


@pytest.fixture
def frame():
    n = 60
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "id": [f"P{i:04d}" for i in range(n)],
        "area": rng.permutation(n) * 7 + 300,
        "constant": ["same"] * n,
        "empty": [np.nan] * n,
        "age": np.where(rng.random(n) < 0.2, np.nan, rng.normal(40, 10, n)),
        "colour": rng.choice(["red", "green", "blue"], n),
        "city": [f"city{i % 45}" for i in range(n)],
        "when": pd.date_range("2024-01-01", periods=n, freq="37h").astype(str),
        "review": [" ".join(rng.choice(["good", "bad", "very", "slow", "fast", "food"], 6)) for _ in range(n)],
    })


def purposes(featurizer):
    return {s["column"]: s["purpose"] for s in featurizer.summary()}


def test_auto_detects_each_column_purpose(frame):
    featurizer = AutoFeaturizer().fit(frame)
    assert purposes(featurizer) == {"id": "Ignore", "area": "Numeric", "constant": "Ignore", "empty": "Ignore",
                                    "age": "Numeric",
                                    "colour": "Categorical", "city": "CategoricalHash", "when": "DateTime",
                                    "review": "Text"}
    reasons = {s["column"]: s["reason"] for s in featurizer.summary()}
    assert reasons["id"].startswith("ID-like") and reasons["empty"] == "all values missing"
    names = list(featurizer.get_feature_names_out())
    assert {"age", "age_WASNULL", "colour_blue", "when_month", "when_hour"} <= set(names)
    assert sum(n.startswith("city_hash") for n in names) == HASH_BUCKETS
    assert any(n.startswith("review_") for n in names)


def test_transform_imputes_and_is_dense(frame):
    featurizer = AutoFeaturizer().fit(frame)
    matrix = featurizer.transform(frame)
    assert matrix.shape == (60, len(featurizer.get_feature_names_out()))
    assert np.isfinite(matrix).all()
    age = list(featurizer.get_feature_names_out()).index("age")
    assert matrix[frame["age"].isna().to_numpy(), age] == pytest.approx(frame["age"].mean())


def test_unseen_categories_and_missing_columns(frame):
    featurizer = AutoFeaturizer().fit(frame)
    new = frame.head(2).assign(colour=["purple", None])
    assert np.isfinite(featurizer.transform(new)).all()
    with pytest.raises(ValueError, match="input data lacks column\\(s\\) 'colour'"):
        featurizer.transform(frame.drop(columns=["colour"]))
    with pytest.raises(ValueError, match="input data has duplicate column names: 'age'"):
        featurizer.transform(pd.concat([frame, frame[["age"]]], axis=1))
    with pytest.raises(ValueError, match="input data has no rows to transform or predict"):
        featurizer.transform(frame.head(0))


def test_featurization_config_purposes_and_drops(frame):
    featurizer = AutoFeaturizer({"column_purposes": {"id": "Categorical", "age": "Numeric"},
                                 "drop_columns": ["review"]}).fit(frame)
    found = purposes(featurizer)
    assert found["id"] == "Categorical" and found["review"] == "Ignore"
    with pytest.raises(ValueError, match="featurization config names column 'nope'"):
        AutoFeaturizer({"drop_columns": ["nope"]}).fit(frame)


def test_featurization_off_needs_numbers(frame):
    with pytest.raises(ValueError, match="featurization='off' needs numeric columns, but column 'id'"):
        AutoFeaturizer("off").fit(frame)
    numeric = frame[["age"]].fillna(0)
    assert AutoFeaturizer("off").fit_transform(numeric).shape == (60, 1)


def test_infinity_is_missing_for_auto_and_rejected_when_off():
    frame = pd.DataFrame({"x": [1.0, np.inf, 3.0, -np.inf, 5.0, 6.0], "z": [1.0, 2.0, 3.0, 4.0, 5.0, 7.0]})
    featurizer = AutoFeaturizer("auto").fit(frame)
    assert "x_WASNULL" in featurizer.feature_names_
    assert {s["column"]: s["infinite"] for s in featurizer.summary()} == {"x": 2, "z": 0}
    out = featurizer.transform(frame)
    assert np.isfinite(out).all() and out[1, 0] == pytest.approx(np.mean([1.0, 3.0, 5.0, 6.0]))
    with pytest.raises(ValueError, match=r"feature column 'x' has 2 infinite values \(rows 1, 3\)"):
        AutoFeaturizer("off").fit(frame)


def test_feature_sources_follow_the_columns_even_with_shared_prefixes():
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0, 4.0, 5.5], "a_b": [0.5, 1.5, 2.5, 3.5, 4.25]})
    featurizer = AutoFeaturizer("auto").fit(frame)
    assert featurizer.feature_source() == {"a": "a", "a_WASNULL": "a", "a_b": "a_b"}
    assert {s["column"]: s["features"] for s in featurizer.summary()} == {"a": 2, "a_b": 1}


def _many_categories(n=400, seed=0):
    rng = np.random.default_rng(seed)
    state = rng.integers(0, 40, n)
    rate = np.linspace(0.05, 0.95, 40)[state]
    return pd.DataFrame({"state": [f"s{v:02d}" for v in state], "grade": rng.choice(list("ABC"), n),
                         "x": rng.normal(size=n)}), (rng.random(n) < rate).astype(int)


def test_many_valued_categoricals_get_azures_cat_target_encoder_cross_fitted():
    frame, y = _many_categories()
    featurizer = AutoFeaturizer(target_type="binary").fit(frame, y)
    summary = {s["RawFeatureName"]: s for s in featurizer.get_featurization_summary()}
    assert summary["state"]["Transformations"] == ["ModeCatImputer-StringCast-HashOneHotEncoder",
                                                   "ModeCatImputer-StringCast-CatTargetEncoder"]
    assert summary["grade"]["Transformations"] == ["ModeCatImputer-StringCast-OneHotEncoder"]
    assert summary["x"]["Transformations"] == ["MeanImputer"] and summary["x"]["Dropped"] == "No"
    names = featurizer.get_engineered_feature_names()
    column = names.index("state_target")
    trained = featurizer.training_matrix(frame, len(frame))[:, column]
    served = featurizer.transform(frame)[:, column]
    # the training rows are encoded without their own label (cross-fitted); new rows with every label
    assert not np.allclose(trained, served)
    assert np.corrcoef(trained, y)[0, 1] > 0.3 and np.corrcoef(served, y)[0, 1] > np.corrcoef(trained, y)[0, 1]
    assert "_cross_fitted" not in featurizer.__dict__  # the fitted featurizer keeps no training rows
    assert np.isfinite(featurizer.transform(frame.head(2).assign(state=["unseen", None]))).all()


def test_cat_target_encoder_per_class_for_multiclass_and_blockable():
    frame, y = _many_categories()
    labels = np.array(["low", "mid", "high"])[(y + (frame["x"] > 1)).to_numpy()]
    featurizer = AutoFeaturizer(target_type="multiclass").fit(frame, labels)
    assert {"state_target_high", "state_target_low", "state_target_mid"} <= set(featurizer.get_engineered_feature_names())
    blocked = AutoFeaturizer({"blocked_transformers": ["CatTargetEncoder"]}, target_type="binary").fit(frame, y)
    assert not any("target" in n for n in blocked.get_engineered_feature_names())
    assert AutoFeaturizer().fit(frame, y).summary()[0]["transformations"] == [  # no task, no target encoder
        "ModeCatImputer-StringCast-HashOneHotEncoder"]


def test_dates_written_day_first_are_read_day_first_throughout_and_at_predict_time():
    """Read one by one, 05/01/2020 was 1 May beside 21/01/2020, 21 January: a third of the month features were wrong."""
    days = pd.date_range("2020-01-01", periods=200, freq="D")
    frame = pd.DataFrame({"when": days.strftime("%d/%m/%Y"), "x": np.arange(200) % 7})
    featurizer = AutoFeaturizer().fit(frame)
    month = list(featurizer.get_feature_names_out()).index("when_month")
    np.testing.assert_array_equal(featurizer.transform(frame)[:, month], days.month)
    early = frame.head(12)  # 01/01/2020 to 12/01/2020: alone they would read as well month first
    np.testing.assert_array_equal(featurizer.transform(early)[:, month], np.ones(12))
    us = pd.DataFrame({"when": days.strftime("%m/%d/%Y"), "x": np.arange(200) % 7})
    np.testing.assert_array_equal(AutoFeaturizer().fit(us).transform(us)[:, month], days.month)
