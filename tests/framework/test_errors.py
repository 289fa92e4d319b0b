"""The one "did you mean" helper every "unknown X" message uses."""

from __future__ import annotations

import pytest

from framework import did_you_mean


@pytest.mark.parametrize("name, candidates, n, expected", [
    ("compte", ["compute", "config", "wait"], 3, " (did you mean 'compute'?)"),
    ("age", ["Age ", "page", "fare"], 3, " (did you mean 'Age '?)"),  # same up to case and spaces first
    ("iteratons", ["iterations", "iteration_timeout_minutes"], 1, " (did you mean 'iterations'?)"),
    ("dataprep", ["dataprep_titanic", "dataprep_penguins", "automl"], 3,
     " (did you mean 'dataprep_titanic' or 'dataprep_penguins'?)"),
    ("xyz", ["local", "azure"], 3, ""),
    ("x", [], 3, ""),
])
def test_did_you_mean(name, candidates, n, expected):
    assert did_you_mean(name, candidates, n=n) == expected
