"""Rows without a label are left out of training: the guardrails and the run output say so, with the count."""

import numpy as np
import pandas as pd
import pytest

from emulator.engine import guardrails, prepare_data, run_automl
from emulator.featurize import AutoFeaturizer
from emulator.settings import validate_settings

SETTINGS = validate_settings({"task": "regression", "label_column_name": "price", "n_cross_validations": 3})


def table() -> pd.DataFrame:
    """25 rows, 11 of them (44%) without a price."""
    price = np.arange(25.0)
    price[::2][:11] = np.nan
    return pd.DataFrame({"size": np.linspace(10, 50, 25), "price": price})


def test_the_guardrails_name_the_rows_dropped_for_a_missing_label():
    data = prepare_data(SETTINGS, table(), None)
    checks = guardrails(SETTINGS, data, AutoFeaturizer("auto").fit(data.X, data.y))
    check = next(c for c in checks if c["type"] == "Missing label values")
    assert check["status"] == "Alerted"
    assert check["description"] == ("11 of 25 rows (44%) have no value in label column 'price' and were dropped; "
                                    "AutoML trains on the other 14 (exclude_nan_labels).")
    assert check["columns"] == ["price (11 missing)"]


def test_no_guardrail_when_every_row_has_a_label():
    data = prepare_data(SETTINGS, table().dropna(), None)
    checks = guardrails(SETTINGS, data, AutoFeaturizer("auto").fit(data.X, data.y))
    assert "Missing label values" not in [c["type"] for c in checks]


def test_the_run_output_says_how_many_rows_were_dropped():
    class Seen(Exception):
        pass

    lines = []

    def log(line):
        lines.append(line)
        if line.startswith("Warning:"):
            raise Seen  # what follows (the children) does not matter here

    with pytest.raises(Seen):
        run_automl(SETTINGS, table(), recorder=None, log=log)
    assert lines[-1] == ("Warning: 11 of 25 rows (44%) have no value in label column 'price' and were dropped "
                         "(exclude_nan_labels)")
    assert "TYPE:         Missing label values\nSTATUS:       ALERTED" in "\n".join(lines)
