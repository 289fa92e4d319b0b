"""The emulator's own estimators pass scikit-learn's estimator checks (``check_estimator``).

Each failure listed in ``EXPECTED`` is a deliberate difference, with the reason.
"""

from __future__ import annotations

import warnings

from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from threadpoolctl import threadpool_limits
from sklearn.utils.estimator_checks import parametrize_with_checks

from emulator.ensemble import (PreFittedSoftVotingClassifier, PreFittedSoftVotingRegressor, StackEnsembleClassifier,
                               StackEnsembleRegressor)
from emulator.featurize import AutoFeaturizer
from emulator.models import LabelEncodedClassifier, YTransformedRegressor

_STACK_WEIGHTS = ("the internal folds split rows, not weights: a row repeated twice can land in two folds, a row "
                  "of weight 2 in one (Azure's StackEnsemble does the same)")
# Small, fast members: the checks are about the ensembles' own behaviour.
ESTIMATORS = [
    PreFittedSoftVotingClassifier([("nb", GaussianNB()), ("tree", DecisionTreeClassifier(random_state=0))], [0.5, 0.5]),
    PreFittedSoftVotingRegressor([("ridge", Ridge()), ("tree", DecisionTreeRegressor(random_state=0))], [0.5, 0.5]),
    StackEnsembleClassifier([("nb", GaussianNB()), ("tree", DecisionTreeClassifier(random_state=0))],
                            LogisticRegression(), training_cv_folds=2),
    StackEnsembleRegressor([("ridge", Ridge()), ("tree", DecisionTreeRegressor(random_state=0))], Ridge(),
                           training_cv_folds=2),
    LabelEncodedClassifier(GaussianNB()),
    YTransformedRegressor(Ridge()),
    AutoFeaturizer(),
]
EXPECTED = {
    "StackEnsembleClassifier": {"check_sample_weight_equivalence_on_dense_data": _STACK_WEIGHTS},
    "StackEnsembleRegressor": {"check_sample_weight_equivalence_on_dense_data": _STACK_WEIGHTS},
    "YTransformedRegressor": {
        check: "a linear model of the target's log does not fit the check's linear target as well as a linear model"
        for check in ("check_regressors_train", "check_regressors_train(readonly_memmap=True)",
                      "check_regressors_train(readonly_memmap=True,X_dtype=float32)")},
    "AutoFeaturizer": {
        "check_n_features_in_after_fitting": "it reads columns by name: extra columns are ignored, missing ones "
                                             "are an error naming them",
    },
}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda e: EXPECTED.get(type(e).__name__, {}))
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        check(estimator)
