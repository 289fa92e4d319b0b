import re

import pytest

from framework import REQUIRED, DataType, Input, Output, Param, StepDefinitionError, StepSpec
from framework.steps import can_feed


def run(data, size: int = 1):
    return {"out": data}


def test_valid_spec_describes_itself():
    spec = StepSpec("clean", run, inputs=[Input("data")], outputs=[Output("out")], params=[Param("size", int, 1)])
    assert spec.describe()["params"] == [
        {"name": "size", "type": "int", "default": 1, "required": False, "choices": None, "description": ""}]
    assert spec.describe()["inputs"][0]["type"] == "tabular"


def test_bad_name_is_rejected():
    with pytest.raises(StepDefinitionError, match=re.escape("step plugin name '1clean' is not valid")):
        StepSpec("1clean", run)


def test_port_type_must_be_known():
    with pytest.raises(StepDefinitionError, match=re.escape(
            "step plugin 'clean': input 'data' has type 'table'; expected one of "
            "['tabular', 'folder', 'model', 'metrics', 'learned']")):
        StepSpec("clean", run, inputs=[Input("data", "table")], outputs=[Output("out")], params=[Param("size", int, 1)])


def test_string_port_type_is_accepted():
    spec = StepSpec("clean", run, inputs=[Input("data", "folder")], outputs=[Output("out")],
                    params=[Param("size", int, 1)])
    assert spec.inputs[0].type is DataType.FOLDER


def test_run_function_must_accept_every_input_and_parameter():
    with pytest.raises(StepDefinitionError, match=re.escape(
            "step plugin 'clean': run function run() has no argument 'extra'; it must accept every input and "
            "parameter by keyword")):
        StepSpec("clean", run, inputs=[Input("data")], outputs=[Output("out")],
                 params=[Param("size", int, 1), Param("extra", str, "")])


def test_run_function_cannot_require_undeclared_arguments():
    def needs_more(data, size, other):
        return {}

    with pytest.raises(StepDefinitionError, match=re.escape(
            "run function needs_more() requires argument 'other', which is neither a declared input")):
        StepSpec("clean", needs_more, inputs=[Input("data")], params=[Param("size", int, 1)])


def test_port_names_must_be_unique():
    with pytest.raises(StepDefinitionError, match=re.escape(
            "step plugin 'clean': output 'data' clashes with the input of the same name")):
        StepSpec("clean", run, inputs=[Input("data")], outputs=[Output("data")], params=[Param("size", int, 1)])


def test_context_is_reserved():
    with pytest.raises(StepDefinitionError, match=re.escape("input name 'context' is reserved")):
        StepSpec("clean", lambda context: None, inputs=[Input("context")])


def test_default_must_match_type():
    with pytest.raises(StepDefinitionError, match=re.escape(
            "step plugin 'clean' default: parameter 'size' expects int, got str 'big'")):
        StepSpec("clean", run, inputs=[Input("data")], outputs=[Output("out")], params=[Param("size", int, "big")])


def test_build_params_fills_defaults_and_rejects_unknown_names():
    spec = StepSpec("clean", run, inputs=[Input("data")], outputs=[Output("out")], params=[Param("size", int, 1)])
    assert spec.build_params({}) == {"size": 1}
    with pytest.raises(StepDefinitionError, match=re.escape(
            "step plugin 'clean': unknown parameter 'sise' (did you mean 'size'?); valid parameters: size")):
        spec.build_params({"sise": 2})


def test_required_parameter():
    spec = StepSpec("clean", run, inputs=[Input("data")], params=[Param("size", int)])
    assert spec.params[0].default is REQUIRED
    with pytest.raises(StepDefinitionError, match=re.escape("parameter 'size' is required")):
        spec.build_params({})


@pytest.mark.parametrize("kind, text, value", [
    (int, "3", 3), (float, "0.5", 0.5), (float, "2", 2.0), (bool, "true", True), (bool, "No", False), (str, "x", "x")])
def test_param_parse_and_format_round_trip(kind, text, value):
    param = Param("p", kind, value)
    assert param.parse(text, "here") == value
    assert param.parse(param.format(value), "here") == value


def test_param_parse_errors_name_the_parameter():
    with pytest.raises(StepDefinitionError, match=re.escape("here: parameter 'p' expects int, got 'three'")):
        Param("p", int, 1).parse("three", "here")
    with pytest.raises(StepDefinitionError, match=re.escape("here: parameter 'p' expects bool, got 'maybe'")):
        Param("p", bool, True).parse("maybe", "here")


def test_bool_is_not_an_int():
    with pytest.raises(StepDefinitionError, match=re.escape(  # a number from a YAML file for a text parameter
            "here: parameter 'name' expects str, got int 123; text in quotes ('123') if that is what you meant")):
        Param("name", str).check(123, "here")
    with pytest.raises(StepDefinitionError, match=re.escape("parameter 'p' expects int, got bool True")):
        Param("p", int, 1).check(True, "here")


def test_choices():
    with pytest.raises(StepDefinitionError, match=re.escape("parameter 'p' must be one of ['a', 'b'], got 'c'")):
        Param("p", str, "a", choices=("a", "b")).check("c", "here")


def test_tabular_data_can_feed_a_folder_input_but_not_the_reverse():
    assert can_feed(DataType.TABULAR, DataType.FOLDER)
    assert not can_feed(DataType.FOLDER, DataType.TABULAR)
    assert not can_feed(DataType.METRICS, DataType.MODEL)
