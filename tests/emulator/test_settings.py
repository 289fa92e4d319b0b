"""AutoMLConfig settings: Azure's valid values, clear errors, unhonoured settings reported."""

import re

import pytest

from emulator import FeaturizationConfig
from emulator.settings import validate_settings
from framework.errors import StepDefinitionError

BASE = {"task": "classification", "label_column_name": "y"}


def test_defaults_follow_azure():
    settings = validate_settings(BASE)
    assert settings["primary_metric"] == "accuracy"
    assert settings["iterations"] == 1000 and settings["enable_early_stopping"] is True
    assert settings["enable_voting_ensemble"] and settings["enable_stack_ensemble"]
    assert validate_settings({**BASE, "task": "regression"})["primary_metric"] == "normalized_root_mean_squared_error"


def test_primary_metric_outside_the_valid_set_lists_the_valid_ones():
    with pytest.raises(StepDefinitionError, match=re.escape(
            "primary_metric 'r2_score' is not valid for task 'classification'; valid metrics: accuracy, AUC_weighted, "
            "average_precision_score_weighted, norm_macro_recall, precision_score_weighted")):
        validate_settings({**BASE, "primary_metric": "r2_score"})


def test_unknown_setting_suggests_the_close_one():
    with pytest.raises(StepDefinitionError, match=re.escape("unknown AutoML setting 'iteratons' (did you mean 'iterations'?)")):
        validate_settings({**BASE, "iteratons": 3})


def test_model_names_are_azures():
    with pytest.raises(StepDefinitionError, match="valid models: LogisticRegression, SGD"):
        validate_settings({**BASE, "allowed_models": ["XGBoostRegressor"]})
    assert validate_settings({**BASE, "whitelist_models": ["LightGBM"]})["allowed_models"] == ["LightGBM"]
    with pytest.raises(StepDefinitionError, match="leave no model to try"):
        validate_settings({**BASE, "allowed_models": ["LightGBM"], "blocked_models": ["LightGBM"]})


def test_unhonoured_settings_are_accepted_and_reported():
    settings = validate_settings({**BASE, "compute_target": "cpu-cluster", "enable_dnn": True,
                                  "featurization": {"transformer_params": {"Imputer": [(["a"], {"strategy": "median"})]}}})
    assert settings["unhonoured"] == ["compute_target", "enable_dnn", "featurization.transformer_params"]


def test_featurization_config_purposes_and_errors():
    config = FeaturizationConfig()
    config.add_column_purpose("a", "Categorical")
    config.add_drop_columns(["b"])
    settings = validate_settings({**BASE, "featurization": config})
    assert settings["featurization"]["column_purposes"] == {"a": "Categorical"}
    assert settings["featurization"]["drop_columns"] == ["b"]
    with pytest.raises(StepDefinitionError, match="valid purposes: Numeric, Categorical"):
        config.add_column_purpose("a", "Number")
    with pytest.raises(StepDefinitionError, match="featurization must be 'auto', 'off' or a FeaturizationConfig"):
        validate_settings({**BASE, "featurization": "on"})


@pytest.mark.parametrize("name, value, message", [
    ("iterations", 0, "must be at least 1"),
    ("experiment_timeout_minutes", -5, "must be greater than 0"),
    ("n_cross_validations", 1, "must be at least 2"),
    ("validation_size", 1.5, "must be at most 0.99"),
    ("enable_early_stopping", "yes", "expects True or False"),
    ("max_concurrent_iterations", 1.5, "expects an int"),
])
def test_numbers_and_flags_are_checked(name, value, message):
    with pytest.raises(StepDefinitionError, match=message):
        validate_settings({**BASE, name: value})


def test_cv_split_columns_exclude_other_validation_settings():
    with pytest.raises(StepDefinitionError, match="cannot be combined"):
        validate_settings({**BASE, "cv_split_column_names": ["f1"], "n_cross_validations": 3})
