"""Azure's model names on scikit-learn, xgboost and lightgbm: target transforms, the auto-block, the portfolios."""

import numpy as np
import pytest

from emulator.engine import Search, auto_blocked
from emulator.models import LogTransformer, YTransformedRegressor, regressor
from emulator.settings import validate_settings
from emulator.tasks import FoldData


@pytest.mark.parametrize("y", [np.array([3.0, 10.0, 250.0, 1e4]), np.array([-5.0, 0.0, 2.0, 40.0]),
                               np.array([0.0, 1e-6, 1.0])])
def test_log_transformer_round_trips_and_keeps_the_order(y):
    """Azure's LogTransformer: log(y), or the log of y scaled into [1e-5, 1] when y reaches down to 1e-5."""
    transformer = LogTransformer().fit(y)
    z = transformer.transform(y)
    assert np.all(np.diff(z) > 0)
    assert np.allclose(transformer.inverse_transform(z), y, rtol=1e-9, atol=1e-9)
    assert transformer.scaled_ == (y.min() <= 1e-5)


def test_a_child_with_a_y_transformer_learns_the_log_and_answers_on_the_targets_scale():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(400, 3))
    y = np.exp(1 + 2 * X[:, 0] + rng.normal(scale=0.1, size=400))
    model = regressor("ElasticNet", {"alpha": 1e-4, "y_transformer": "LogTransformer"}, seed=0).fit(X, y)
    assert isinstance(model, YTransformedRegressor)
    assert np.allclose(model.estimator_.coef_[0], 2.0, atol=0.1)  # the log-linear truth, learnt on the log
    assert np.median(np.abs(model.predict(X) / y - 1)) < 0.15
    with pytest.raises(ValueError, match="unknown y_transformer 'BoxCox'"):
        regressor("LightGBM", {"y_transformer": "BoxCox"}, seed=0)


def _fold(task, rows, y=None):
    y = np.arange(rows) % 2 if y is None else y
    index = np.arange(rows)
    return FoldData(task, np.zeros((rows, 1)), y, None, [(index[: rows // 2], index[rows // 2:])], index,
                    np.array([0, 1]) if task == "classification" else None, 0.0, 1.0, 0)


def test_knn_and_svm_are_auto_blocked_above_5000_rows_unless_allowed_models_names_them():
    """Azure's auto-block (MAX_SAMPLES_AUTOBLOCK = 5000): KNN and SVM are not tried on larger data."""
    settings = validate_settings({"task": "classification", "label_column_name": "y"})
    assert auto_blocked(settings, _fold("classification", 5000)) == ()
    assert auto_blocked(settings, _fold("classification", 5001)) == ("KNN", "SVM")
    search = Search(settings, 1, _fold("classification", 6000))
    assert "KNN" not in search.usable and "SVM" not in search.usable
    assert all(a not in ("KNN", "SVM") for _, a, _ in search.portfolio)
    allowed = validate_settings({"task": "classification", "label_column_name": "y", "allowed_models": ["KNN"]})
    assert Search(allowed, 1, _fold("classification", 6000)).usable == ["KNN"]
    regression = validate_settings({"task": "regression", "label_column_name": "y"})
    assert auto_blocked(regression, _fold("regression", 6000, np.arange(6000.0))) == ("KNN",)


def test_a_log_target_child_joins_the_regression_portfolio_only_for_right_skewed_positive_targets():
    settings = validate_settings({"task": "regression", "label_column_name": "y"})
    rng = np.random.default_rng(0)

    def logged(y):
        return [p for _, _, p in Search(settings, 1, _fold("regression", len(y), y)).portfolio
                if p.get("y_transformer") == "LogTransformer"]

    assert logged(np.exp(rng.normal(size=2000) * 0.6))  # prices: lognormal, skew about 2
    assert not logged(rng.normal(size=2000))  # symmetric
    assert not logged(np.exp(rng.normal(size=2000) * 0.6) - 1.5)  # not positive
    assert not logged(rng.poisson(0.3, size=2000).astype(float) + 1e-3 + np.exp(rng.normal(size=2000) * 2))  # tails
