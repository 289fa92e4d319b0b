"""Azure's metric definitions, against values computed by hand."""

import math

import numpy as np
import pytest

from emulator import metrics as M


def binary(p1):
    p1 = np.asarray(p1, dtype=float)
    return np.column_stack([1 - p1, p1])


def test_binary_metrics_by_hand():
    got = M.classification_metrics(np.array([0, 0, 1, 1]), binary([0.1, 0.6, 0.4, 0.9]), [0, 1])
    # positives {0.4, 0.9} beat negatives {0.1, 0.6} in 3 of 4 pairs
    assert got["AUC_weighted"] == pytest.approx(0.75)
    assert got["AUC_macro"] == pytest.approx(0.75)
    assert got["accuracy"] == pytest.approx(0.5)
    assert got["balanced_accuracy"] == pytest.approx(0.5)
    assert got["norm_macro_recall"] == pytest.approx(0.0)  # (0.5 - 1/2) / (1 - 1/2)
    assert got["weighted_accuracy"] == pytest.approx(0.5)
    assert set(got) == set(M.CLASSIFICATION_METRICS)


def test_weighted_accuracy_upweights_the_majority_class():
    # constant predictor, 75% majority: 0.75^2 / (0.75^2 + 0.25^2) = 0.9
    got = M.classification_metrics(np.array([0, 0, 0, 1]), binary([0.1, 0.1, 0.1, 0.1]), [0, 1])
    assert got["weighted_accuracy"] == pytest.approx(0.9)
    assert got["accuracy"] == pytest.approx(0.75)
    assert got["norm_macro_recall"] == 0.0


def test_norm_macro_recall_three_classes():
    y = np.array([0, 0, 1, 1, 2, 2])
    predicted = [0, 0, 1, 0, 2, 1]  # recalls 1, 1/2, 1/2 -> mean 2/3 -> (2/3 - 1/3) / (2/3)
    proba = np.eye(3)[predicted] * 0.8 + 0.2 / 3
    assert M.classification_metrics(y, proba, [0, 1, 2])["norm_macro_recall"] == pytest.approx(0.5)


def test_log_loss_uses_every_class_label():
    got = M.classification_metrics(np.array([0, 1]), binary([0.2, 0.7]), [0, 1])
    assert got["log_loss"] == pytest.approx(-(math.log(0.8) + math.log(0.7)) / 2)


def test_fast_auc_matches_the_full_definition():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    proba = rng.dirichlet([1, 1, 1], 200)
    full = M.classification_metrics(y, proba, [0, 1, 2])["AUC_weighted"]
    assert M.primary_value("AUC_weighted", y, proba, [0, 1, 2]) == pytest.approx(full)


def test_regression_metrics_by_hand_normalised_by_the_training_range():
    got = M.regression_metrics(np.array([1, 2, 3, 4.0]), np.array([1, 2, 3, 5.0]), y_min=0.0, y_max=10.0)
    assert got["root_mean_squared_error"] == pytest.approx(0.5)
    assert got["normalized_root_mean_squared_error"] == pytest.approx(0.05)
    assert got["mean_absolute_error"] == pytest.approx(0.25)
    assert got["normalized_mean_absolute_error"] == pytest.approx(0.025)
    assert got["median_absolute_error"] == 0.0
    assert got["r2_score"] == pytest.approx(0.8)  # 1 - 1/5
    assert got["explained_variance"] == pytest.approx(0.85)  # 1 - 0.1875/1.25
    assert got["spearman_correlation"] == pytest.approx(1.0)
    assert got["mean_absolute_percentage_error"] == pytest.approx(6.25)
    assert set(got) == set(M.REGRESSION_METRICS)


def test_r2_is_clipped_and_rmsle_is_nan_for_negative_values():
    got = M.regression_metrics(np.array([1, 2, 3.0]), np.array([10, 10, 10.0]), 1.0, 3.0)
    assert got["r2_score"] == -1.0
    negative = M.regression_metrics(np.array([-1, 2, 3.0]), np.array([1, 2, 3.0]), -1.0, 3.0)
    assert math.isnan(negative["root_mean_squared_log_error"])


def test_normalized_rmsle_divides_by_the_log_range():
    got = M.regression_metrics(np.array([0, 1.0]), np.array([0, 3.0]), y_min=0.0, y_max=3.0)
    rmsle = math.sqrt((math.log(4) - math.log(2)) ** 2 / 2)
    assert got["root_mean_squared_log_error"] == pytest.approx(rmsle)
    assert got["normalized_root_mean_squared_log_error"] == pytest.approx(rmsle / math.log(4))


def test_goal_and_better():
    assert M.goal("AUC_weighted") == "AUC_weighted_max"
    assert M.goal("normalized_root_mean_squared_error") == "normalized_root_mean_squared_error_min"
    assert M.better("r2_score", 0.5, 0.4) and M.better("normalized_mean_absolute_error", 0.1, 0.2)
    assert not M.better("accuracy", float("nan"), 0.1)


def test_confusion_matrix_and_accuracy_table_artifacts():
    matrix = M.confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), [0, 1])
    assert matrix["data"]["matrix"] == [[1, 1], [0, 2]]
    table = M.accuracy_table(np.array([0, 1]), binary([0.2, 0.7]), [0, 1], n_thresholds=3)
    # class 1 at threshold 0.5: TP=1 FP=0 TN=1 FN=0
    assert table["data"]["probability_tables"][1][1] == [1, 0, 1, 0]
    assert table["schema_type"] == "accuracy_table"


def test_confusion_based_scores_match_scikit_learn_with_absent_classes_and_weights():
    import warnings

    from sklearn import metrics as skm

    rng = np.random.default_rng(1)
    for k, n, weighted in [(2, 200, False), (3, 150, True), (5, 90, False)]:
        classes = np.array([f"c{i}" for i in range(k)])
        y = classes[rng.integers(0, k - (1 if k == 5 else 0), n)]  # with 5 classes, one never occurs
        proba = rng.dirichlet(np.ones(k), n)
        w = rng.random(n) if weighted else None
        got = M.classification_metrics(y, proba, classes, w)
        pred = classes[proba.argmax(1)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for average in ("macro", "micro", "weighted"):
                for name, fn in (("f1_score", skm.f1_score), ("precision_score", skm.precision_score),
                                 ("recall_score", skm.recall_score)):
                    want = fn(y, pred, labels=classes, average=average, zero_division=0, sample_weight=w)
                    assert got[f"{name}_{average}"] == pytest.approx(want, abs=1e-12)
            assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred, sample_weight=w), abs=1e-12)
            assert got["matthews_correlation"] == pytest.approx(skm.matthews_corrcoef(y, pred, sample_weight=w),
                                                                abs=1e-12)
