import re

import pytest

from framework import (
    AutoMLStep,
    Dataset,
    Pipeline,
    PipelineParameter,
    PipelineValidationError,
    Step,
    StepDefinitionError,
    run_pipeline,
)


def validate(toy_plugins, *steps, **kwargs):
    return Pipeline(list(steps), **kwargs).validate(toy_plugins)


def test_valid_pipeline_orders_steps_by_dependency(toy_plugins):
    validated = validate(toy_plugins, Step("score", inputs={"model": "model"}), Step("fit", inputs={"table": "table"}),
                         Step("make_table"))
    assert [s.name for s in validated.steps] == ["make_table", "fit", "score"]
    assert validated.producers == {"table": ("make_table", "table"), "model": ("fit", "model"),
                                   "metrics": ("score", "metrics")}


@pytest.mark.parametrize("steps, message", [
    ([Step("make_tabel")],
     "step 'make_tabel': unknown step plugin 'make_tabel' (did you mean 'make_table'?); installed step plugins: "),
    ([Step("make_table"), Step("double")],
     "step 'double': required input 'table' (tabular) is not bound; bind it with inputs={'table': <data name or Dataset>}"),
    ([Step("make_table"), Step("double", inputs={"table": "tabel"})],
     "step 'double': input 'table' reads data 'tabel' (did you mean 'table'?), which no step produces; produced data: "
     "doubled, table"),
    ([Step("make_table"), Step("double", inputs={"tables": "table"})],
     "step 'double': plugin 'double' has no input 'tables'; its inputs: table"),
    ([Step("make_table"), Step("double", inputs={"table": "table"}, outputs={"out": "x"})],
     "step 'double': plugin 'double' has no output 'out'; its outputs: doubled"),
    ([Step("make_table"), Step("score", inputs={"model": "table"})],
     "step 'score': input 'model' expects model data, but 'table' is tabular data from step 'make_table' output 'table'"),
    ([Step("score", inputs={"model": Dataset("titanic_ds")})],
     "step 'score': input 'model' expects model data, but it is bound to Dataset('titanic_ds'), which is tabular data "
     "(registered CSV files); bind 'model' to the model output of a step"),
    ([Step("make_table"), Step("make_table", name="second")],
     "data 'table' has two producers: step 'make_table' output 'table' and step 'second' output 'table'"),
    ([Step("make_table", params={"rowz": 3})],
     "step 'make_table': unknown parameter 'rowz' (did you mean 'rows'?); valid parameters: rows"),
    ([Step("make_table", params={"rows": "3"})],
     "step 'make_table': parameter 'rows' expects int, got str '3'"),
    ([Step("make_table", params={"rows": PipelineParameter("rows", "many")})],
     "step 'make_table': parameter 'rows' expects int, got str 'many'"),
])
def test_graph_errors_name_the_step_and_port(toy_plugins, steps, message):
    with pytest.raises(PipelineValidationError, match=re.escape(message)):
        validate(toy_plugins, *steps)


def test_cycle_is_reported_with_its_steps(toy_plugins):
    with pytest.raises(PipelineValidationError, match=re.escape("steps form a cycle: ")) as caught:
        validate(toy_plugins, Step("double", name="a", inputs={"table": "b_out"}, outputs={"doubled": "a_out"}),
                 Step("double", name="b", inputs={"table": "a_out"}, outputs={"doubled": "b_out"}))
    assert "'a'" in str(caught.value) and "'b'" in str(caught.value)


def test_pipeline_output_must_name_produced_data(toy_plugins):
    with pytest.raises(PipelineValidationError, match=re.escape(
            "pipeline output 'result' refers to data 'nothing', which no step produces; produced data: table")):
        validate(toy_plugins, Step("make_table"), outputs={"result": "nothing"})


def test_duplicate_step_names_fail_at_definition():
    with pytest.raises(PipelineValidationError, match=re.escape("step name 'make_table' is used by more than one step")):
        Pipeline([Step("make_table"), Step("make_table")])


def test_step_definition_is_checked_at_construction():
    with pytest.raises(StepDefinitionError, match=re.escape(
            "step 'x': input 'table' must be bound to a data name (str) or a Dataset, got int")):
        Step("double", name="x", inputs={"table": 3})
    with pytest.raises(StepDefinitionError, match=re.escape("dataset name '../etc' is not valid")):
        Dataset("../etc")


def test_parameter_declared_with_two_defaults(toy_plugins):
    with pytest.raises(PipelineValidationError, match=re.escape(
            "pipeline parameter 'rows' is declared with two defaults: 3 and 4")):
        validate(toy_plugins, Step("make_table", params={"rows": PipelineParameter("rows", 3)}),
                 Step("make_table", name="other", outputs={"table": "t2"},
                      params={"rows": PipelineParameter("rows", 4)}))


def test_parameter_overrides_are_parsed_and_checked(toy_plugins):
    validated = validate(toy_plugins, Step("make_table", params={"rows": PipelineParameter("rows", 3)}))
    assert validated.resolve_parameters({"rows": "7"}) == {"rows": 7}
    with pytest.raises(PipelineValidationError, match=re.escape(
            "unknown pipeline parameter 'row' (did you mean 'rows'?); pipeline parameters: rows")):
        validated.resolve_parameters({"row": "7"})
    with pytest.raises(PipelineValidationError, match=re.escape("parameter 'rows' expects int, got 'seven'")):
        validated.resolve_parameters({"rows": "seven"})


def test_automl_settings_are_validated_with_the_graph(toy_plugins):
    with pytest.raises(PipelineValidationError, match=re.escape(
            "step 'train': primary_metric 'r2_score' is not valid for task 'classification'; valid metrics: accuracy, "
            "AUC_weighted, average_precision_score_weighted, norm_macro_recall, precision_score_weighted")):
        validate(toy_plugins, Step("make_table"),
                 AutoMLStep("train", training_data="table", task="classification", label_column_name="y",
                            primary_metric="r2_score"))


def test_invalid_pipeline_runs_nothing(toy_plugins, workspace, recorder):
    broken = Pipeline([Step("make_table"), Step("double", inputs={"table": "missing"})])
    with pytest.raises(PipelineValidationError):
        run_pipeline(broken, workspace=workspace, plugins=toy_plugins)
    assert recorder.calls == []
    assert workspace.list_runs(run_type=None) == []
