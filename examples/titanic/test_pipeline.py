"""The example's own test: its pipeline loads and is valid with the plugins installed here.

Offline and quick (nothing runs): `python -m pytest` in this folder (`pip install pytest` first).
"""

from pathlib import Path

from framework import get_plugin_manager, load_pipeline


def test_the_pipeline_is_valid():
    pipeline = load_pipeline(Path(__file__).resolve().parent)
    validated = pipeline.validate(get_plugin_manager())
    assert [step.name for step in validated.steps] == ["dataprep", "AutoML_Classification", "register_model"]
