"""``amlstep predict`` with a model an AutoML step trained: what the AutoML plugin's predictor adds."""

from __future__ import annotations

import pandas as pd

from framework import get_plugin_manager
from framework.commands.predict import predict
from framework.reporting import Lineage

from emulator.predict import AutoMLPredictor


def test_the_automl_plugin_predicts_for_automl_steps_only(titanic_run):
    ws, result = titanic_run
    lineage = Lineage(ws, result.run_id)
    hook = get_plugin_manager().hook
    found = {s.name: hook.model_predictor(lineage=lineage, step=s) for s in lineage.steps}
    assert isinstance(found.pop("AutoML_Classification"), AutoMLPredictor)
    assert found == {"dataprep": None, "register_model": None}


def test_text_in_a_numeric_training_column_is_reported(titanic_run, titanic_test_csv, tmp_path):
    ws, _ = titanic_run
    odd = tmp_path / "odd.csv"
    rows = pd.read_csv(titanic_test_csv).head(20)
    rows["Pclass"] = rows["Pclass"].astype(object)
    rows.loc[:2, "Pclass"] = "first"
    rows["SibSp"] = "n/a"
    rows.to_csv(odd, index=False)
    notes = predict(ws, get_plugin_manager(), "TitanicSurvivalInitial", odd).notes
    assert ("column 'Pclass' was numeric in training but holds text in 3 of 20 rows of odd.csv (e.g. 'first'); "
            "those values count as missing") in notes
    assert "column 'SibSp' is empty in all 20 rows of odd.csv; the model imputes it" in notes
    assert predict(ws, get_plugin_manager(), "TitanicSurvivalInitial", titanic_test_csv).notes == []
