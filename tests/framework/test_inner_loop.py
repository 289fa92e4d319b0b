"""The inner loop's conveniences: partial runs (--only/--from/--to), a parameters file (--params), a sample (--sample)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from framework import Dataset, Pipeline, PipelineValidationError, Step, run_pipeline
from framework.cli import make_cli
from framework.commands.run_options import read_params_file
from framework.sampling import Sample

TOY = Pipeline([Step("make_table"), Step("double", inputs={"table": "table"}), Step("fit", inputs={"table": "doubled"}),
                Step("score", inputs={"model": "model"})], experiment="toys")


def run(toy_plugins, workspace, **options):
    return run_pipeline(TOY, workspace=workspace, plugins=toy_plugins, **options)


# -- partial runs -------------------------------------------------------------------------------------
def test_only_runs_one_step_and_takes_its_inputs_from_the_history(toy_plugins, workspace):
    full = run(toy_plugins, workspace)
    partial = run(toy_plugins, workspace, only=["fit"], reuse=False)
    assert partial.succeeded, partial.error
    steps = {s.name: s for s in partial.steps}
    assert [(s.name, s.status) for s in partial.steps] == [("make_table", "NotStarted"), ("double", "Completed"),
                                                            ("fit", "Completed"), ("score", "NotStarted")]
    double = full.step("double").run_id
    assert steps["double"].reused and steps["double"].reused_from == double
    # its input comes from a step that does not run: its code and parameters are compared, not its inputs
    assert steps["double"].reasons == [f"not selected (--only fit): took the outputs of its latest run, step run "
                                       f"{double[:8]} of pipeline run {full.run_id[:8]} (code and parameters unchanged)"]
    assert not steps["fit"].reused and steps["fit"].reasons == ["reuse disabled for this run (--no-reuse)"]
    assert steps["score"].error == steps["make_table"].error == "not run: not selected (--only fit)"
    record = workspace.get_run(partial.run_id)
    assert record.properties["partial"] == {"selected": ["fit"], "only": ["fit"]}
    assert partial.details["partial"]["taken"] == {"double": double}
    assert workspace.get_run(steps["double"].run_id).properties["taken"] is True


def test_from_and_to_select_a_slice(toy_plugins, workspace):
    run(toy_plugins, workspace)
    tail = run(toy_plugins, workspace, from_step="fit")
    assert {s.name: s.status for s in tail.steps} == {"make_table": "NotStarted", "double": "Completed",
                                                     "fit": "Completed", "score": "Completed"}
    head = run(toy_plugins, workspace, to_step="double")
    assert {s.name: s.status for s in head.steps} == {"make_table": "Completed", "double": "Completed",
                                                     "fit": "NotStarted", "score": "NotStarted"}
    middle = run(toy_plugins, workspace, from_step="double", to_step="fit")
    assert [s.name for s in middle.steps if s.status == "Completed"] == ["make_table", "double", "fit"]
    assert middle.step("make_table").reused and middle.step("make_table").reasons[0].startswith(
        "not selected (--from double --to fit): took the outputs of step run")


def test_a_step_taken_from_an_older_run_says_what_changed_since(toy_plugins, workspace):
    first = run(toy_plugins, workspace)
    assert run(toy_plugins, workspace, from_step="double").step("make_table").reasons[0].endswith(
        "(code, parameters and inputs unchanged)")
    pipeline = Pipeline([Step("make_table", params={"rows": 5}), *TOY.steps[1:]], experiment="toys")
    changed = run_pipeline(pipeline, workspace=workspace, plugins=toy_plugins, from_step="double")
    made = first.step("make_table").run_id
    assert changed.step("make_table").reasons == [
        f"not selected (--from double): took the outputs of its latest run, step run {made[:8]} of pipeline run "
        f"{first.run_id[:8]}, though since then parameter 'rows' changed: 4 -> 5"]


def test_an_input_never_produced_is_refused_before_anything_runs(toy_plugins, workspace):
    with pytest.raises(PipelineValidationError, match=re.escape(
            "step 'fit': input 'table' reads data 'doubled' of step 'double', which is not selected (--only fit), and "
            "no completed run of 'double' in experiment 'toys' has produced it (with its outputs intact); run "
            "'double' too")):
        run(toy_plugins, workspace, only=["fit"])
    assert workspace.list_runs(run_type=None) == []
    assert run(toy_plugins, workspace, sample=Sample.parse("2")).succeeded  # made from a sample only
    with pytest.raises(PipelineValidationError, match=re.escape(
            "run 'double' too; runs with --sample 2 rows have produced it, and a partial run takes outputs made from "
            "the same data")):
        run(toy_plugins, workspace, only=["fit"])


@pytest.mark.parametrize("options, message", [
    ({"only": ["fitt"]}, "--only 'fitt': the pipeline has no step 'fitt' (did you mean 'fit'?); its steps: make_table, "
                         "double, fit, score"),
    ({"from_step": "scor"}, "--from 'scor': the pipeline has no step 'scor' (did you mean 'score'?)"),
    ({"only": ["fit"], "to_step": "score"}, "--only names exactly the steps to run; use it without --from and --to"),
    ({"from_step": "score", "to_step": "double"}, "--from 'score' --to 'double' selects no step: 'double' does not "
                                                  "depend on 'score'"),
])
def test_a_bad_selection_is_refused(toy_plugins, workspace, options, message):
    with pytest.raises(PipelineValidationError, match=re.escape(message)):
        run(toy_plugins, workspace, **options)


# -- a parameters file --------------------------------------------------------------------------------
PIPELINE_FILE = """
from framework import Pipeline, PipelineParameter, Step
pipeline = Pipeline([Step("make_table", params={"rows": PipelineParameter("rows", 4)})], experiment="toys")
"""


@pytest.fixture
def toy_cli(toy_plugins, workspace, tmp_path):
    (tmp_path / "toy.py").write_text(PIPELINE_FILE)

    def invoke(*args):
        return CliRunner().invoke(make_cli(toy_plugins), ["--workspace", str(workspace.path), *args])

    return invoke


@pytest.mark.parametrize("name, text", [("p.yml", "rows: 7\n"), ("p.json", '{"rows": 7}')])
def test_params_file_sets_parameters_and_param_wins(toy_cli, tmp_path, name, text):
    (tmp_path / name).write_text(text)
    ran = toy_cli("run", str(tmp_path / "toy.py"), "--params", str(tmp_path / name), "--json")
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout)["params"] == {"rows": 7}
    ran = toy_cli("run", str(tmp_path / "toy.py"), "--params", str(tmp_path / name), "-p", "rows=2", "--json")
    assert json.loads(ran.stdout)["params"] == {"rows": 2}


@pytest.mark.parametrize("text, message", [
    ("rowz: 7\n", "--params {file}: unknown pipeline parameter 'rowz' (did you mean 'rows'?); pipeline parameters: rows"),
    ("rows: many\n", "--params {file}: pipeline: parameter 'rows' expects int, got 'many'"),
    ("rows: [1, 2]\n", "--params {file}: parameter 'rows' must be a single value (text, a number, true or false), "
                       "got list [1, 2]"),
    ("rows:\n", "--params {file}: parameter 'rows' has no value"),
    ("- rows\n", "--params {file}: expected a mapping of pipeline parameters (name: value), got list"),
    ("rows: 7\n  x: 1\n", "--params {file}: line 2: not valid YAML: mapping values are not allowed here"),
    ("rows: 7\nrows: 8\n", "--params {file}: line 2: parameter 'rows' is given twice"),
])
def test_params_file_errors_name_the_file(toy_cli, tmp_path, text, message):
    file = tmp_path / "p.yml"
    file.write_text(text)
    ran = toy_cli("run", str(tmp_path / "toy.py"), "--params", str(file))
    assert ran.exit_code == 2
    assert message.format(file=file) in ran.stderr


def test_params_file_reader():
    with pytest.raises(PipelineValidationError, match=re.escape("--params nope.yml: no such file")):
        read_params_file("nope.yml")
    with pytest.raises(PipelineValidationError, match=re.escape("--params p.txt: expected a .yml, .yaml or .json")):
        read_params_file("p.txt")


def test_a_json_params_file_giving_a_name_twice_is_refused(tmp_path):
    file = tmp_path / "p.json"
    file.write_text('{"rows": 7, "rows": 8}')
    with pytest.raises(PipelineValidationError, match=re.escape(f"--params {file}: parameter 'rows' is given twice")):
        read_params_file(file)
    file.write_text('{"rows": 7, "nested": {"a": 1}}')  # a value that is no single value is refused as before
    with pytest.raises(PipelineValidationError, match="must be a single value"):
        read_params_file(file)


# -- a sample of each dataset --------------------------------------------------------------------------
def test_sample_parsing():
    assert (Sample.parse("200"), Sample.parse("0.1"), Sample.parse("10%")) == \
        (Sample(rows=200), Sample(fraction=0.1), Sample(fraction=0.1))
    assert [str(Sample.parse(t)) for t in ("1", "200", "0.25")] == ["1 row", "200 rows", "25%"]
    for bad in ("0", "-1", "1.5", "x", "0%", "150%"):
        with pytest.raises(PipelineValidationError, match=re.escape(f"--sample {bad!r}: expected a number of rows")):
            Sample.parse(bad)


def test_a_sampled_run_reads_a_reproducible_sample_and_never_shares_outputs_with_full_runs(toy_plugins, workspace,
                                                                                         tmp_path):
    from framework.commands.report import build_report
    from framework.io import read_tabular

    pd.DataFrame({"x": range(100), "y": [i % 3 for i in range(100)]}).to_csv(tmp_path / "t.csv", index=False)
    workspace.register_dataset("toy_ds", [str(tmp_path / "t.csv")])
    pipeline = Pipeline([Step("double", inputs={"table": Dataset("toy_ds")}), Step("fit", inputs={"table": "doubled"}),
                         Step("register_model", inputs={"model": "model"}, params={"model_name": "Toy"})],
                        experiment="sampled")

    def go(**options):
        result = run_pipeline(pipeline, workspace=workspace, plugins=toy_plugins, **options)
        assert result.succeeded, result.error
        return result

    def table(result):
        return read_tabular(Path(result.step("double").outputs["doubled"]), "doubled")

    sampled = go(sample="10")
    doubled = table(sampled)
    assert len(doubled) == 10 and doubled["x"].is_monotonic_increasing  # the rows in their order
    record = workspace.get_run(sampled.run_id)
    assert record.properties["sample"]["datasets"]["toy_ds"]["rows"] == 10
    assert sampled.details["sample"]["text"] == "10 rows"
    assert workspace.get_model("Toy", 1).properties["sample"] == "10 rows"  # a model trained on a sample says so
    again = go(sample=Sample(rows=10), reuse=False)  # the same rows every time
    assert table(again).equals(doubled)
    full = go()
    assert not full.step("double").reused
    assert full.step("double").reasons[0] == "sample changed: a sample of 10 rows -> the full data"
    assert len(table(full)) == 100
    resampled = go(sample="10")
    assert resampled.step("double").reused_from in (sampled.step("double").run_id, again.step("double").run_id)
    other = go(sample="10%")
    assert not other.step("double").reused
    html = build_report(workspace, sampled.run_id)
    assert "id='sample'" in html and "toy_ds: 10 of 100 rows" in html


def test_sample_by_parsing_and_its_key():
    five = Sample.parse("5", "store")
    assert five == Sample(rows=5, by=("store",)) and str(five) == "5 groups by store"
    tenth = Sample.parse("10%", " store, item ")
    assert str(tenth) == "10% of the groups by store, item" and tenth.key == "fraction=0.1;by=store,item"
    assert [Sample.from_key(s.key) for s in (five, tenth, Sample(rows=3))] == [five, tenth, Sample(rows=3)]
    for bad in ("", " , "):
        with pytest.raises(PipelineValidationError, match=re.escape(f"--sample-by {bad!r}: expected column names")):
            Sample.parse("5", bad)


def test_sample_by_takes_whole_series_and_keeps_a_table_without_the_columns_whole():
    series = pd.DataFrame({"store": [s for s in "abcdefghij" for _ in range(12)],
                           "month": list(range(12)) * 10, "sales": range(120)})
    taken = Sample.parse("3", "store").take(series)
    assert taken["store"].nunique() == 3 and taken.groupby("store")["month"].apply(list).map(
        lambda months: months == list(range(12))).all()  # every month of each store, in order
    assert taken.equals(Sample.parse("3", "store").take(series))  # the same stores every time
    assert Sample.parse("20%", "store").take(series)["store"].nunique() == 2
    assert Sample.parse("50", "store").take(series) is series  # more groups asked for than there are
    calendar = pd.DataFrame({"month": range(12), "holiday": [0, 1] * 6})
    assert Sample.parse("3", "store").take(calendar) is calendar


def test_a_run_sampled_by_series_records_the_groups_and_names_a_missing_column(toy_plugins, workspace, tmp_path):
    from framework.io import read_tabular

    pd.DataFrame({"x": range(100), "y": [i // 10 for i in range(100)]}).to_csv(tmp_path / "s.csv", index=False)
    workspace.register_dataset("series_ds", [str(tmp_path / "s.csv")])
    pipeline = Pipeline([Step("double", inputs={"table": Dataset("series_ds")})], experiment="by_series")
    result = run_pipeline(pipeline, workspace=workspace, plugins=toy_plugins, sample=Sample.parse("2", "y"))
    assert result.succeeded, result.error
    doubled = read_tabular(Path(result.step("double").outputs["doubled"]), "doubled")
    assert len(doubled) == 20 and doubled.groupby("y").size().tolist() == [10, 10]
    recorded = workspace.get_run(result.run_id).properties["sample"]["datasets"]["series_ds"]
    assert (recorded["groups"], recorded["of_groups"], recorded["rows"]) == (2, 10, 20)
    with pytest.raises(PipelineValidationError, match=re.escape(
            "--sample-by store: no input dataset has the column 'store' (series_ds: x, y)")):
        run_pipeline(pipeline, workspace=workspace, plugins=toy_plugins, sample=Sample.parse("2", "store"))
    with pytest.raises(PipelineValidationError, match=re.escape("(series_ds: x, y) (did you mean 'y'?)")):
        run_pipeline(pipeline, workspace=workspace, plugins=toy_plugins, sample=Sample.parse("2", "Y"))


@pytest.mark.parametrize("ids, advice", [
    (["y"], "--sample 30 rows --sample-by y samples whole series"),
    (["region"], "sample whole series in the preparation step, or run without --sample"),  # made by a step
    (None, "sample whole series in the preparation step, or run without --sample"),  # one series
])
def test_rows_sampled_for_a_forecasting_step_are_warned_about_naming_the_series_columns(toy_plugins, workspace,
                                                                                       tmp_path, ids, advice):
    import io

    from framework import AutoMLStep

    pd.DataFrame({"x": range(100), "y": [i // 10 for i in range(100)]}).to_csv(tmp_path / "s.csv", index=False)
    workspace.register_dataset("series_ds", [str(tmp_path / "s.csv")])
    series = {"time_series_id_column_names": ids} if ids else {}
    pipeline = Pipeline([Step("double", inputs={"table": Dataset("series_ds")}),
                         AutoMLStep("forecast", training_data="doubled", task="forecasting", label_column_name="x",
                                    time_column_name="t", forecast_horizon=2, **series)], experiment="forecasts")
    echo = io.StringIO()
    result = run_pipeline(pipeline, workspace=workspace, plugins=toy_plugins, sample=Sample.parse("30"),
                          only=["double"], echo=echo)
    assert result.step("double").status == "Completed", result.error
    assert ("[sample] warning: AutoML step 'forecast' forecasts, and a sample of rows (--sample 30 rows) leaves gaps "
            f"in every series it reads: forecasting fills them as missing periods, or fails when the series no longer share "
            f"a frequency; {advice}") in echo.getvalue()
    echo = io.StringIO()
    run_pipeline(pipeline, workspace=workspace, plugins=toy_plugins, sample=Sample.parse("2", "y"), only=["double"],
                 echo=echo)
    assert "[sample] warning" not in echo.getvalue()


def test_sample_and_partial_runs_are_local_options(toy_cli, tmp_path):
    for flag in (["--sample", "10"], ["--only", "make_table"], ["--from", "make_table"]):
        ran = toy_cli("run", str(tmp_path / "toy.py"), "--backend", "azure", *flag)
        assert ran.exit_code == 2 and f"{flag[0]} applies to --backend local only" in ran.stderr


def test_the_command_line_gives_the_local_backend_its_partial_run_and_sample(toy_cli, tmp_path):
    """--only/--from/--to/--sample are the local backend's run options (register_run_options): they reach it."""
    (tmp_path / "two.py").write_text(
        "from framework import Pipeline, Step\n"
        "pipeline = Pipeline([Step('make_table'), Step('double', inputs={'table': 'table'})], experiment='toys')\n")
    assert toy_cli("run", str(tmp_path / "two.py")).exit_code == 0
    ran = toy_cli("run", str(tmp_path / "two.py"), "--only", "double", "--no-reuse")
    assert ran.exit_code == 0, ran.output
    assert "partial run: ran double; took the outputs of make_table from the run history" in ran.stdout
    ran = toy_cli("run", str(tmp_path / "two.py"), "--to", "make_table", "--json")
    assert {s["name"]: s["status"] for s in json.loads(ran.stdout)["steps"]} == {"make_table": "Completed",
                                                                               "double": "NotStarted"}
    sampled = toy_cli("run", str(tmp_path / "two.py"), "--sample", "3")  # no dataset read: nothing to count
    assert "sample: 3 rows of each dataset; its outputs are not reused" in sampled.stdout, sampled.output
    bad = toy_cli("run", str(tmp_path / "two.py"), "--sample", "-3")
    assert bad.exit_code == 2 and "--sample" in bad.stderr
    alone = toy_cli("run", str(tmp_path / "two.py"), "--sample-by", "store")
    assert alone.exit_code == 2 and "--sample-by needs --sample" in alone.stderr
