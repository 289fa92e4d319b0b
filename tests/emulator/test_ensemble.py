"""Caruana ensemble selection and stacking, from out-of-fold predictions on the children's folds."""

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from emulator import ensemble as E
from emulator.tasks import FoldData


@pytest.fixture
def fold():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    splits = list(StratifiedKFold(4, shuffle=True, random_state=0).split(np.zeros(400), y))
    return FoldData("classification", np.zeros((400, 1)), y, None, splits, np.arange(400), np.array([0, 1]), 0, 1, 0)


def noisy(y, scale, rng):
    p = np.clip(y + rng.normal(0, scale, len(y)), 0, 1)
    return np.column_stack([1 - p, p])


def test_caruana_weights_are_multiples_of_one_kth_and_beat_each_member(fold):
    rng = np.random.default_rng(1)
    oofs = [noisy(fold.y, s, rng) for s in (0.6, 0.65, 0.7, 2.0)]
    scores = [E.fold_score(fold, "AUC_weighted", o) for o in oofs]
    weights = E.caruana(fold, "AUC_weighted", oofs, scores, iterations=10)
    assert sum(weights) == pytest.approx(1.0)
    assert any(np.allclose(np.array(weights) * k, np.round(np.array(weights) * k)) for k in range(1, 16))
    blended = E.blend(oofs, weights)
    assert E.fold_score(fold, "AUC_weighted", blended) >= max(scores)


def test_bagged_selection_averages_the_weights_chosen_on_every_fold_and_with_each_fold_left_out(fold):
    from dataclasses import replace

    rng = np.random.default_rng(3)
    oofs = [noisy(fold.y, s, rng) for s in (0.6, 0.62, 0.65, 0.7)]
    scores = [E.fold_score(fold, "AUC_weighted", o) for o in oofs]
    expected = [E.caruana(fold, "AUC_weighted", oofs, scores)]
    for k in range(len(fold.splits)):
        others = replace(fold, splits=[s for j, s in enumerate(fold.splits) if j != k])
        expected.append(E.caruana(others, "AUC_weighted", oofs, [E.fold_score(others, "AUC_weighted", o) for o in oofs]))
    weights = E.bagged_caruana(fold, "AUC_weighted", oofs, scores)
    assert weights == pytest.approx(np.mean(expected, axis=0).tolist()) and sum(weights) == pytest.approx(1.0)
    assert weights != pytest.approx(expected[0]) and E.fold_score(fold, "AUC_weighted", E.blend(oofs, weights)) >= max(scores)
    one = replace(fold, splits=fold.splits[:1])  # one validation set: Caruana's own weights
    assert E.bagged_caruana(one, "AUC_weighted", oofs, scores) == E.caruana(one, "AUC_weighted", oofs, scores)


def test_stack_predictions_are_out_of_fold_and_complete(fold):
    rng = np.random.default_rng(2)
    oofs = [noisy(fold.y, 0.5, rng), noisy(fold.y, 0.7, rng)]
    stacked = E.stack_oof(fold, oofs)
    assert stacked.shape == (400, 2) and np.isfinite(stacked).all()
    assert np.allclose(stacked.sum(axis=1), 1.0)
    assert E.fold_score(fold, "AUC_weighted", stacked) > 0.8


def test_a_stack_that_would_end_past_the_budget_stops_at_its_first_fold(fold):
    """``out_of_time(seconds)`` is asked after each fold for the folds left and the final fit (4 folds: 3 + 1)."""
    rng = np.random.default_rng(2)
    oofs = [noisy(fold.y, 0.5, rng), noisy(fold.y, 0.7, rng)]
    asked = []
    with pytest.raises(E.OutOfTime, match="3 folds and the final fit would end past the experiment timeout"):
        E.stack_oof(fold, oofs, out_of_time=lambda seconds: asked.append(seconds) or True)
    assert len(asked) == 1 and asked[0] > 0
    asked.clear()
    E.stack_oof(fold, oofs, out_of_time=lambda seconds: asked.append(seconds) or False)
    assert len(asked) == 3  # never after the last fold


def test_voting_classifier_averages_member_probabilities():
    class Fixed:
        classes_ = np.array([0, 1])

        def __init__(self, p):
            self.p = p

        def predict_proba(self, X):
            return np.tile([1 - self.p, self.p], (len(X), 1))

    voting = E.PreFittedSoftVotingClassifier([("a", Fixed(0.2)), ("b", Fixed(0.8))], [0.75, 0.25], [0, 1])
    assert voting.predict_proba(np.zeros((1, 1)))[0, 1] == pytest.approx(0.35)
    assert voting.predict(np.zeros((2, 1))).tolist() == [0, 0]
