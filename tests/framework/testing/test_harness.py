"""The step contract harness, run against the bundled steps and against broken ones."""

from __future__ import annotations

import functools

import re
import warnings
from pathlib import Path

import pandas as pd
import pytest

from conftest import SHARED_DATA
from framework import DataType, Input, Output, Param, StepSpec
from framework.errors import StepDefinitionError, StepExecutionError
from framework.testing import (
    check_compiles_for_azure,
    check_declaration,
    check_deterministic,
    check_keeps_label,
    check_params_round_trip,
    check_rows_independent,
    check_runs_locally,
    parametrize_with_checks,
    run_step,
)



def titanic_sample() -> pd.DataFrame:
    return pd.read_csv(SHARED_DATA / "titanic.csv").head(60)


@functools.cache
def model_file() -> Path:
    import atexit
    import pickle
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="amlstep-harness-model-"))
    atexit.register(shutil.rmtree, folder, True)
    path = folder / "model.pkl"
    path.write_bytes(pickle.dumps({"a": "model"}))
    return path


def samples(spec: StepSpec) -> dict:
    if spec.name == "dataprep_titanic":
        return {"titanic_ds": titanic_sample()}
    if spec.name == "register_model":
        return {"model": model_file()}
    if spec.name == "automl":
        return {"training_data": titanic_sample()[["Survived", "Pclass", "Sex", "Age", "Fare"]]}
    return {}


def params(spec: StepSpec) -> dict:
    return {
        "register_model": {"model_name": "HarnessModel"},
        "automl": {"task": "classification", "label_column_name": "Survived", "iterations": 2,
                   "n_cross_validations": 3, "primary_metric": "accuracy"},
    }.get(spec.name, {})


# One decorator line: every contract check of every bundled step is its own test case.
@parametrize_with_checks(["dataprep_titanic", "register_model", "automl"], sample_inputs=samples,
                         sample_params=params, label="Survived")
def test_bundled_steps_honour_the_contract(step, check):
    check(step)


def test_one_case_per_check():
    mark = parametrize_with_checks(["dataprep_titanic"])
    ids = [p.id for p in mark.args[1]]
    assert ids == ["dataprep_titanic-check_declaration", "dataprep_titanic-check_params_round_trip",
                   "dataprep_titanic-check_runs_locally", "dataprep_titanic-check_deterministic",
                   "dataprep_titanic-check_rows_independent", "dataprep_titanic-check_keeps_label",
                   "dataprep_titanic-check_compiles_for_azure"]
    with pytest.raises(ValueError, match="unknown check"):
        parametrize_with_checks(["dataprep_titanic"], skip=["check_nothing"])


# -- run_step ----------------------------------------------------------------------------------
def test_run_step_fixture_runs_on_dataframes(run_step):
    out = run_step("dataprep_titanic", titanic_ds=titanic_sample(), seed=1)
    prepped = out["prepped_data"]
    assert isinstance(prepped, pd.DataFrame) and len(prepped) == 60
    assert {"Age_Group", "Fare_Group"} <= set(prepped.columns) and "Name" not in prepped.columns
    assert out.paths["prepped_data"].is_dir()


def test_run_step_records_metrics_models_and_child_runs(run_step):
    out = run_step("register_model", model=model_file(), model_name="M")
    assert out == {}
    assert [m.name for m in out.context.models] == ["M"]
    assert out.context.get_metrics() == {"registered_version": 1}
    automl = run_step("automl", **samples(StepSpec_by("automl")), **params(StepSpec_by("automl")))
    assert isinstance(automl["metrics"], dict) and Path(automl["model"]).is_file()
    assert len(automl.context.children) == 2
    assert all(c.status == "Completed" for c in automl.context.children)
    assert automl.context.properties["guardrails"]


def StepSpec_by(name: str) -> StepSpec:
    from framework import get_plugin_manager

    return get_plugin_manager().step(name)


def test_run_step_without_fixture_and_with_a_spec():
    spec = StepSpec("double", run=lambda numbers, factor: {"out": numbers * factor},
                    inputs=[Input("numbers")], outputs=[Output("out")], params=[Param("factor", int, 2)])
    out = run_step(spec, numbers=pd.DataFrame({"x": [1, 2]}))
    assert out["out"]["x"].tolist() == [2, 4]


def test_run_step_names_a_missing_input():
    with pytest.raises(Exception, match=re.escape("give a value for input(s) 'titanic_ds'")):
        run_step("dataprep_titanic", seed=3)


# -- the checks catch broken steps -------------------------------------------------------------
def _spec(run, **kwargs) -> StepSpec:
    return StepSpec("broken_step", run=run, inputs=[Input("data")], outputs=[Output("clean"), Output("stats", DataType.METRICS)],
                    **kwargs)


FRAME = pd.DataFrame({"a": [1, 2, 3]})


def test_runs_locally_catches_a_missing_output():
    spec = _spec(lambda data: {"clean": data})
    with pytest.raises(StepExecutionError, match="did not write its declared output 'stats'"):
        check_runs_locally(spec, sample_inputs={"data": FRAME})


def test_runs_locally_catches_an_undeclared_output():
    spec = _spec(lambda data: {"clean": data, "stats": {}, "extra": data})
    with pytest.raises(StepExecutionError, match="wrote undeclared output 'extra'"):
        check_runs_locally(spec, sample_inputs={"data": FRAME})


def test_runs_locally_passes_a_good_step():
    spec = _spec(lambda data: {"clean": data, "stats": {"rows": len(data)}})
    out = check_runs_locally(spec, sample_inputs={"data": FRAME})
    assert out["stats"] == {"rows": 3}


def test_deterministic_catches_unseeded_randomness():
    import numpy as np

    spec = _spec(lambda data: {"clean": data.assign(noise=np.random.default_rng().random(len(data))),
                               "stats": {}})
    with pytest.raises(AssertionError, match="differs between two runs"):
        check_deterministic(spec, sample_inputs={"data": FRAME})


def _binning(learns: bool) -> StepSpec:
    """A preparation that cuts column 'a' into 3 quantile groups, keeping the edges or not."""
    def run(data, learned=None):
        import numpy as np

        if learned is None:
            groups, edges = pd.qcut(data["a"], 3, labels=False, retbins=True, duplicates="drop")
            learned = {"edges": [float(e) for e in edges]}
        else:
            groups = np.clip(np.searchsorted(learned["edges"], data["a"], side="left") - 1, 0, 2)
        return {"clean": data.assign(a=groups), "stats": {}, **({"learned": learned} if learns else {})}

    def batch(data):
        return {"clean": data.assign(a=pd.qcut(data["a"], 3, labels=False, duplicates="drop")), "stats": {}}

    outputs = [Output("clean"), Output("stats", DataType.METRICS)]
    if learns:
        return StepSpec("toy_binning", run=run, inputs=[Input("data")], outputs=[*outputs, Output("learned", "learned")])
    return StepSpec("toy_binning", run=batch, inputs=[Input("data")], outputs=outputs)


ROWS = pd.DataFrame({"a": [5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0], "label": [1, 0, 1, 0, 1, 0, 1]})


def test_rows_independent_catches_a_preparation_that_learns_from_its_batch():
    with pytest.raises(AssertionError, match=re.escape(
            "step 'toy_binning' output 'clean': sample row 0 is prepared differently alone (a=nan) than among the 7 "
            "sample rows (a=1); a step that learns from its rows (bins, fill values, encodings) should keep what it "
            "learned as a learned output (DataType.LEARNED)")):
        check_rows_independent(_binning(learns=False), sample_inputs={"data": ROWS})


def _warns_alone(category: type[Warning]) -> StepSpec:
    def run(data):
        if len(data) == 1:
            warnings.warn("only one row", category, stacklevel=2)
        return {"clean": data, "stats": {}}

    return StepSpec("toy_warner", run=run, inputs=[Input("data")],
                    outputs=[Output("clean"), Output("stats", DataType.METRICS)])


def test_rows_independent_catches_a_step_that_warns_on_a_row_alone():
    with pytest.raises(AssertionError, match=re.escape("step 'toy_warner' warns on sample row 0 alone: only one row")):
        check_rows_independent(_warns_alone(UserWarning), sample_inputs={"data": ROWS})


def test_rows_independent_ignores_resource_warnings_of_garbage_collected_meanwhile():
    check_rows_independent(_warns_alone(ResourceWarning), sample_inputs={"data": ROWS})


def test_rows_independent_passes_a_step_that_applies_what_it_learned(run_step):
    spec = _binning(learns=True)
    check_rows_independent(spec, sample_inputs={"data": ROWS})
    learned = run_step(spec, data=ROWS)["learned"]
    assert learned == {"edges": [1.0, 3.0, 7.0, 9.0]}
    assert run_step(spec, data=ROWS.head(1), learned=learned)["clean"]["a"].tolist() == [1]


def test_a_learned_output_must_be_an_argument_of_the_run_function():
    with pytest.raises(StepDefinitionError, match=re.escape(
            "step plugin 'toy': run function <lambda>() has no argument 'learned'; a step with learned output "
            "'learned' receives it back: None while it learns from its rows")):
        StepSpec("toy", run=lambda data: None, inputs=[Input("data")], outputs=[Output("learned", DataType.LEARNED)])


def test_a_learned_output_must_be_plain_json(run_step):
    spec = StepSpec("toy", run=lambda data, learned=None: {"learned": {"when": object()}}, inputs=[Input("data")],
                    outputs=[Output("learned", DataType.LEARNED)])
    with pytest.raises(StepExecutionError, match=re.escape(
            "step 'toy' output 'learned': learned['when'] is a object; a learned output holds only numbers, text")):
        run_step(spec, data=FRAME)


def test_keeps_label_catches_a_dropped_label_and_a_step_that_needs_it():
    drops = _spec(lambda data: {"clean": data.drop(columns=["label"]), "stats": {}})
    with pytest.raises(AssertionError, match=re.escape("step 'broken_step' drops the label column 'label'")):
        check_keeps_label(drops, sample_inputs={"data": ROWS}, label="label")
    needs = _spec(lambda data: {"clean": data[data["label"] > 0], "stats": {}})
    with pytest.raises(AssertionError, match=re.escape(
            "step 'broken_step' fails on rows without the label column 'label' (as `amlstep predict` gives new rows): "
            "KeyError")):
        check_keeps_label(needs, sample_inputs={"data": ROWS}, label="label")
    check_keeps_label(_spec(lambda data: {"clean": data, "stats": {}}), sample_inputs={"data": ROWS}, label="label")
    with pytest.raises(pytest.skip.Exception, match="no label named"):
        check_keeps_label(drops, sample_inputs={"data": ROWS})


class Upper:
    """A parameter type whose text form does not parse back (caught by the round trip)."""


def test_params_round_trip_catches_a_lossy_float():
    spec = _spec(lambda data, ratio: {"clean": data, "stats": {}}, params=[Param("ratio", float, 0.1)])
    check_params_round_trip(spec)
    spec_required = _spec(lambda data, name: {"clean": data, "stats": {}}, params=[Param("name", str)])
    with pytest.raises(AssertionError, match="parameter\\(s\\) name are required"):
        check_params_round_trip(spec_required)
    check_params_round_trip(spec_required, sample_params={"name": "x"})


def test_declaration_flags_a_name_clash_with_an_installed_step():
    impostor = StepSpec("dataprep_titanic", run=lambda titanic_ds: None, inputs=[Input("titanic_ds")])
    with pytest.raises(AssertionError, match="another step plugin is installed under the name 'dataprep_titanic'"):
        check_declaration(impostor)


def test_declaration_warns_when_not_installed():
    with pytest.warns(UserWarning, match="is not installed"):
        check_declaration(_spec(lambda data: None))


def test_azure_check_skips_only_without_an_azure_backend():
    from framework import get_plugin_manager

    if "azure" in get_plugin_manager().backends:
        pytest.skip("an azure backend is installed; the compile check runs in the parametrized cases")
    with pytest.raises(pytest.skip.Exception, match="no 'azure' backend is registered"):
        check_compiles_for_azure("dataprep_titanic")


def test_no_network_blocks_outside_addresses():
    import socket

    from framework.testing.harness import no_network

    with no_network():
        with pytest.raises(ConnectionRefusedError, match="blocks network access"):
            socket.create_connection(("192.0.2.1", 80), timeout=1)
