"""Bad input, clear errors: one table across the CLI, the pipeline API, the plugins and the emulator.

Each case does one wrong thing against a workspace that already holds a dataset, a completed run
and a registered model, and states what must come back: an exception type, a CLI exit code, or a
Failed run, plus a message naming the offending step, port, parameter, column or file. After each
case, everything recorded before it is unchanged.

To add a case, append a ``Case`` to ``CASES``: ``act(ctx)`` does the wrong thing.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from framework import (
    AutoMLStep,
    Dataset,
    LocalWorkspace,
    Pipeline,
    PipelineParameter,
    PipelineValidationError,
    PluginLoadError,
    Step,
    StepDefinitionError,
    WorkspaceError,
    get_plugin_manager,
    get_run,
    run_pipeline,
)
from emulator import ForecastingParameters
from framework.cli import make_cli
from framework.workspace.store import SCHEMA_VERSION
from tests.toy_steps import ToySteps


@dataclass
class Context:
    workspace: LocalWorkspace
    plugins: Any
    tmp: Path
    titanic: pd.DataFrame

    def cli(self, *args: str) -> Any:
        return CliRunner().invoke(make_cli(self.plugins), ["--workspace", str(self.workspace.path), *args])

    def csv(self, name: str, content: str | bytes) -> str:
        path = self.tmp / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return str(path)

    def run(self, *steps: Step, **kwargs: Any) -> Any:
        return run_pipeline(Pipeline(list(steps), **kwargs), workspace=self.workspace, plugins=self.plugins)

    def titanic_run(self, frame: pd.DataFrame, **automl: Any) -> Any:
        """The Titanic pipeline shape on ``frame`` (registered as a fresh dataset), tiny AutoML budget."""
        path = self.tmp / "frame.csv"
        frame.to_csv(path, index=False)
        settings = {"task": "classification", "label_column_name": "Survived", "iterations": 1, **automl}
        return self.run(Step("dataprep_titanic", name="dataprep", inputs={"titanic_ds": Dataset("bad_frame", sources=[str(path)])}),
                        AutoMLStep("train", training_data="prepped_data", **settings))

    def automl_run(self, frame: pd.DataFrame, **settings: Any) -> Any:
        """An AutoML step straight on ``frame``."""
        path = self.tmp / "automl.csv"
        frame.to_csv(path, index=False)
        return self.run(AutoMLStep("train", training_data=Dataset("automl_frame", sources=[str(path)]),
                                   **{"iterations": 1, **settings}))


@dataclass
class Case:
    id: str
    act: Callable[[Context], Any]
    expect: type[BaseException] | int | str
    """An exception type, a CLI exit code, or ``"Failed"`` for a run whose status must be Failed."""
    message: str


def raises(error: type[BaseException], message: str, act: Callable[[Context], Any], id: str) -> Case:
    return Case(id, act, error, message)


def exits(code: int, message: str, act: Callable[[Context], Any], id: str) -> Case:
    return Case(id, act, code, message)


def fails(message: str, act: Callable[[Context], Any], id: str) -> Case:
    return Case(id, act, "Failed", message)


def _newer_workspace(ctx: Context) -> Any:
    path = ctx.tmp / "newer"
    LocalWorkspace(path)
    conn = sqlite3.connect(path / "amlstep.db")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    return CliRunner().invoke(make_cli(ctx.plugins), ["--workspace", str(path), "runs", "list"])


def _validate(*steps: Step, **kwargs: Any) -> Callable[[Context], Any]:
    return lambda ctx: Pipeline(list(steps), **kwargs).validate(ctx.plugins)


def _settings(**settings: Any) -> Callable[[Context], Any]:
    from emulator.settings import validate_settings

    base = {"task": "classification", "label_column_name": "y"}
    return lambda ctx: validate_settings({**base, **settings}, "step 'train'")


_FORECAST = {"task": "forecasting", "label_column_name": "sales", "time_column_name": "date",
             "time_series_id_column_names": ["store"], "forecast_horizon": 3, "n_cross_validations": 3,
             "allowed_models": ["Naive"]}


def _series_frame() -> pd.DataFrame:
    """Two daily series of 40 days (stores a and b)."""
    days = pd.date_range("2024-01-01", periods=40, freq="D")
    return pd.concat([pd.DataFrame({"date": days, "store": store, "sales": np.arange(40.0) + offset})
                      for store, offset in (("a", 0), ("b", 100))], ignore_index=True)


def _forecast_settings(**settings: Any) -> Callable[[Context], Any]:
    from emulator.settings import validate_settings

    base = {"task": "forecasting", "label_column_name": "y", "time_column_name": "date"}
    return lambda ctx: validate_settings({**base, **settings}, "step 'train'")


CASES = [
    # -- the CLI: files, names, ids, workspaces ------------------------------------------------
    exits(2, "does not exist or is not a file", lambda c: c.cli("datasets", "register", "d", str(c.tmp / "missing.csv")),
          id="cli-missing-csv"),
    exits(2, "is not a file", lambda c: c.cli("datasets", "register", "d", str(c.tmp)), id="cli-folder-as-csv"),
    exits(2, "bin.csv is not UTF-8 text", lambda c: c.cli("datasets", "register", "d", c.csv("bin.csv", b"\xff\xfe\x00\x81")),
          id="cli-binary-csv"),
    exits(2, "latin.csv is not UTF-8 text (invalid continuation byte on line 2); save it as UTF-8, e.g. "
             "`iconv -f latin1 -t utf-8 latin.csv > latin-utf8.csv`",
          lambda c: c.cli("datasets", "register", "d", c.csv("latin.csv", "name,label\nJos\xe9 Mar\xeda,1\n".encode("latin1"))),
          id="cli-latin1-rows"),
    exits(2, "semi.csv looks semicolon-separated (header 'name;age;label'); amlstep reads comma-separated files",
          lambda c: c.cli("datasets", "register", "d", c.csv("semi.csv", "name;age;label\nAnn;1,5;0\nBob;2,5;1\n")),
          id="cli-semicolon-csv"),
    exits(2, "bad.csv is not a valid CSV file", lambda c: c.cli("datasets", "register", "d",
                                                                c.csv("bad.csv", "a,b\n1,2\n3,4,5,6\n")), id="cli-malformed-csv"),
    exits(2, "empty.csv is empty", lambda c: c.cli("datasets", "register", "d", c.csv("empty.csv", "")), id="cli-empty-csv"),
    exits(2, "header.csv has a header but no data rows", lambda c: c.cli("datasets", "register", "d",
                                                                          c.csv("header.csv", "a,b\n")), id="cli-header-only"),
    exits(2, "dup.csv has duplicate column names: 'a'", lambda c: c.cli("datasets", "register", "d",
                                                                        c.csv("dup.csv", "a,a\n1,2\n")), id="cli-duplicate-columns"),
    exits(2, "dataset name 'a/b' is not valid", lambda c: c.cli("datasets", "register", "a/b", c.csv("ok.csv", "a\n1\n")),
          id="cli-dataset-name-separator"),
    exits(2, "dataset name '../up' is not valid", lambda c: c.cli("datasets", "register", "../up", c.csv("ok.csv", "a\n1\n")),
          id="cli-dataset-name-dotdot"),
    exits(2, "run 'no-such-run' does not exist", lambda c: c.cli("runs", "show", "no-such-run"), id="cli-unknown-run"),
    exits(2, "run 'no-such-run' does not exist", lambda c: c.cli("download", "no-such-run", "x", str(c.tmp)),
          id="cli-download-unknown-run"),
    exits(2, "has no pipeline output 'nope'", lambda c: c.cli("download", c.workspace.list_runs()[0].id, "nope", str(c.tmp)),
          id="cli-download-unknown-output"),
    exits(2, "pipeline file", lambda c: c.cli("run", str(c.tmp / "nowhere.py")), id="cli-missing-pipeline"),
    exits(2, "--param expects NAME=VALUE, got 'iterations'", lambda c: c.cli("run", "examples/titanic", "--param", "iterations"),
          id="cli-param-without-value"),
    exits(2, "unknown pipeline parameter 'iteration' (did you mean 'iterations'?)",
          lambda c: c.cli("run", "examples/titanic", "--param", "iteration=3"), id="cli-unknown-pipeline-parameter"),
    exits(2, "parameter 'iterations' expects int, got 'many'",
          lambda c: c.cli("run", "examples/titanic", "--param", "iterations=many"), id="cli-wrong-parameter-type"),
    exits(2, "unknown backend 'lcoal' (did you mean 'local'?)", lambda c: c.cli("run", "examples/titanic", "-b", "lcoal"),
          id="cli-unknown-backend"),
    exits(2, "is not writable", lambda c: CliRunner().invoke(make_cli(c.plugins), ["--workspace", "/proc/self", "runs", "list"]),
          id="cli-workspace-not-writable"),
    exits(2, "was made by a newer amlstep", _newer_workspace, id="cli-newer-workspace"),
    exits(2, "step 'register_model': parameter 'model_name': model name '../evil' is not valid", lambda c: c.cli("run", "examples/titanic", "--param", "model_name=../evil"),
          id="cli-model-name-dotdot"),
    # -- the pipeline API: the graph is checked before any step runs -----------------------------
    raises(PipelineValidationError, "step 'prep': unknown step plugin 'dataprep_titanik' (did you mean 'dataprep_titanic'",
           _validate(Step("dataprep_titanik", name="prep")), id="api-unknown-plugin"),
    raises(PipelineValidationError, "step 'double': required input 'table' (tabular) is not bound",
           _validate(Step("make_table"), Step("double")), id="api-missing-input"),
    raises(PipelineValidationError, "step 'score': input 'model' expects model data, but 'table' is tabular data",
           _validate(Step("make_table"), Step("score", inputs={"model": "table"})), id="api-type-mismatch"),
    raises(PipelineValidationError, "steps form a cycle",
           _validate(Step("double", name="a", inputs={"table": "b"}, outputs={"doubled": "a"}),
                     Step("double", name="b", inputs={"table": "a"}, outputs={"doubled": "b"})), id="api-cycle"),
    raises(PipelineValidationError, "data 'table' has two producers",
           _validate(Step("make_table"), Step("make_table", name="again")), id="api-two-producers"),
    raises(PipelineValidationError, "step 'make_table': unknown parameter 'row' (did you mean 'rows'?); valid parameters: rows",
           _validate(Step("make_table", params={"row": 2})), id="api-unknown-parameter"),
    raises(PipelineValidationError, "step 'make_table': parameter 'rows' expects int, got float 2.5",
           _validate(Step("make_table", params={"rows": 2.5})), id="api-wrong-parameter-type"),
    raises(PipelineValidationError, "step 'make_table': parameter 'rows' expects int, got str 'x'",
           _validate(Step("make_table", params={"rows": PipelineParameter("rows", "x")})), id="api-wrong-pipeline-parameter-type"),
    raises(StepDefinitionError, "step name 'a b' is not valid", lambda c: Step("make_table", name="a b"), id="api-bad-step-name"),
    raises(PluginLoadError, "failed to register: step plugin 'clean': run function", lambda c: get_plugin_manager(
        entry_points=False, plugins=[_BadDeclaration()]), id="api-bad-declaration"),
    # -- plugins at run time: the run fails, names the step, keeps what came before ---------------
    fails("step 'explode' (explode) raised RuntimeError: boom: the table is cursed",
          lambda c: c.run(Step("make_table"), Step("explode", inputs={"table": "table"})), id="plugin-raises"),
    fails("step 'forgets' did not write its declared output 'doubled'",
          lambda c: c.run(Step("make_table"), Step("forgets", inputs={"table": "table"})), id="plugin-missing-output"),
    fails("step 'oversteps' wrote undeclared output 'extra'",
          lambda c: c.run(Step("make_table"), Step("oversteps", inputs={"table": "table"})), id="plugin-undeclared-output"),
    fails("Titanic data is missing column(s) 'Age'",
          lambda c: c.titanic_run(c.titanic.drop(columns=["Age"])), id="dataprep-missing-column"),
    fails("column 'Fare' must be numeric; found 1 value(s) like 'free'",
          lambda c: c.titanic_run(c.titanic.astype({"Fare": object}).assign(Fare=lambda f: f["Fare"].where(f.index != 5, "free"))),
          id="dataprep-column-type"),
    # -- the emulator: settings and data --------------------------------------------------------
    fails("label column 'Survived' is not in the training data",
          lambda c: c.titanic_run(c.titanic.drop(columns=["Survived"])), id="automl-label-absent"),
    fails("label column 'target' is not in the training data (did you mean ' Target '?); columns: 'x', ' Target '",
          lambda c: c.automl_run(pd.DataFrame({"x": range(30), " Target ": [0, 1] * 15}), task="classification",
                                 label_column_name="target"), id="automl-label-differs-by-case-and-spaces"),
    raises(StepDefinitionError, "AutoML setting 'label_column_name' expects one column name (a str), got list ['y']",
           _settings(label_column_name=["y"]), id="automl-label-not-a-string"),
    fails("label column 'y' has 2 infinite values (rows 3, 7); remove them or replace them with NaN",
          lambda c: c.automl_run(pd.DataFrame({"x": range(30), "y": [float("inf") if i in (3, 7) else i for i in range(30)]}),
                                 task="regression", label_column_name="y"), id="automl-infinite-label"),
    fails("training data has 3 rows; 10-fold cross-validation (Azure's automatic rule below 1,000 rows) needs at least 10",
          lambda c: c.automl_run(pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1.0, 2.5, 2.0]}), task="regression",
                                 label_column_name="y"), id="automl-fewer-rows-than-folds"),
    fails("label column 'Survived' has no values (every row is missing)",
          lambda c: c.titanic_run(c.titanic.assign(Survived=np.nan)), id="automl-label-all-nan"),
    fails("label column 'Survived' has a single class (1)",
          lambda c: c.titanic_run(c.titanic.assign(Survived=1)), id="automl-single-class"),
    fails("label column 'y' must be numeric for regression; found values like 'high'",
          lambda c: c.automl_run(pd.DataFrame({"x": range(30), "y": ["high", "low", "mid"] * 10}), task="regression",
                                 label_column_name="y"), id="automl-non-numeric-regression-label"),
    raises(StepDefinitionError, "primary_metric 'r2_score' is not valid for task 'classification'; valid metrics: accuracy",
           _settings(primary_metric="r2_score"), id="automl-metric-for-wrong-task"),
    raises(StepDefinitionError, "AutoML setting 'iterations' must be at least 1, got 0", _settings(iterations=0),
           id="automl-iterations-below-one"),
    raises(StepDefinitionError, "AutoML setting 'experiment_timeout_minutes' must be greater than 0, got -5",
           _settings(experiment_timeout_minutes=-5), id="automl-negative-timeout"),
    raises(StepDefinitionError, "AutoML setting 'iteration_timeout_minutes' must be greater than 0, got -1",
           _settings(iteration_timeout_minutes=-1), id="automl-negative-iteration-timeout"),
    raises(StepDefinitionError, "unknown AutoML setting 'iteratons' (did you mean 'iterations'?)",
           _settings(iteratons=3), id="automl-unknown-setting"),
    raises(StepDefinitionError, "allowed_models has unknown model(s) 'XGBoostRegressor' for task 'classification'",
           _settings(allowed_models=["XGBoostRegressor"]), id="automl-model-for-wrong-task"),
    raises(StepDefinitionError, "AutoML task 'clustering' is not valid; valid tasks: classification, regression, forecasting",
           _settings(task="clustering"), id="automl-unsupported-task"),
    # -- forecasting (issue 14) ------------------------------------------------------------------
    raises(StepDefinitionError, "step 'train': An empty value for argument [time_column_name] is provided.",
           _forecast_settings(time_column_name=None), id="forecast-no-time-column-name"),
    raises(StepDefinitionError, "step 'train': Value for argument [forecast_horizon] is out of range (Range: [1 - inf]), got 0.",
           _forecast_settings(forecast_horizon=0), id="forecast-horizon-zero"),
    raises(StepDefinitionError, "step 'train': Invalid argument(s) 'short_series_handling_configuration (trim)' specified. "
           "Supported value(s): 'auto, pad, drop, None'.", _forecast_settings(short_series_handling_configuration="trim"),
           id="forecast-bad-short-series-handling"),
    raises(StepDefinitionError, "step 'train': Please provide the freq (forecast frequency) parameter to perform the data set aggregation.",
           _forecast_settings(target_aggregation_function="sum"), id="forecast-aggregation-without-freq"),
    raises(StepDefinitionError, "step 'train': The dataset frequency must be a string or None. The string must represent a pandas date offset.",
           _forecast_settings(freq="fortnightly"), id="forecast-bad-freq"),
    raises(StepDefinitionError, "AutoMLStep 'train': validation_size is not supported for forecasting",
           lambda c: AutoMLStep("train", training_data="x", task="forecasting", label_column_name="y", time_column_name="date",
                                validation_size=0.2), id="forecast-validation-size-at-definition"),
    fails("One or more rows in the input dataset have an invalid date/time. Please ensure you can run `pandas.to_datetime(X)` without "
          "any errors. Time column 'date': 1 value do not parse, e.g. 'not a date' (row 3)",
          lambda c: c.automl_run(_series_frame().assign(date=lambda f: f.date.astype(str).where(f.index != 3, "not a date")),
                                 **_FORECAST), id="forecast-time-column-does-not-parse"),
    fails("The time column 'date' holds numbers (2000, 2001, 2002), which are not read as dates; write them as dates "
          "(2000-01-01)", lambda c: c.automl_run(_series_frame().assign(date=lambda f: 2000 + f.index % 40), **_FORECAST),
          id="forecast-time-column-holds-numbers"),
    fails("Found duplicated rows for date and ['store'] combinations.",
          lambda c: c.automl_run(pd.concat([_series_frame(), _series_frame().iloc[[5]]]), **_FORECAST),
          id="forecast-duplicate-timestamps-in-a-series"),
    fails("The series provided for given time series identifiers (a, b) is insufficient for a valid training with CV (3), "
          "step size [30], forecast horizon (30), lags (0) and rolling window size (0).",
          lambda c: c.automl_run(_series_frame(), task="forecasting", label_column_name="sales", allowed_models=["Naive"],
                                 forecasting_parameters=ForecastingParameters(
                                     time_column_name="date", time_series_id_column_names=["store"], forecast_horizon=30,
                                     short_series_handling_configuration=None)),
          id="forecast-horizon-longer-than-the-series-allow"),
    fails("The frequency for the following time series identifier [b] is not consistent. The expected frequency is a data point "
          "every 'D'.", lambda c: c.automl_run(_series_frame().assign(
              date=lambda f: f.date + pd.to_timedelta(np.where((f.store == "b") & (f.index % 7 == 3), 5, 0), unit="h")),
              **_FORECAST), id="forecast-irregular-frequency-without-freq"),
    # -- registries --------------------------------------------------------------------------------
    raises(WorkspaceError, "model name 'a/b' is not valid", lambda c: c.workspace.register_model("a/b", c.csv("m.pkl", "x")),
           id="registry-model-name-separator"),
    raises(WorkspaceError, "version 9 of model 'Kept' is not registered", lambda c: c.workspace.get_model("Kept", 9),
           id="registry-unknown-model-version"),
]


# == workspace robustness (issue 15): damaged, full, locked workspaces; bad files; paths that escape ==========
def _copy_of_workspace(ctx: Context, damage: Callable[[Path], None]) -> Callable[..., Any]:
    """A copy of the case's workspace, damaged: commands run on the copy, the original stays as it was."""
    import shutil

    copy = ctx.tmp / "damaged-copy"
    shutil.copytree(ctx.workspace.path, copy, ignore=shutil.ignore_patterns(".live"))
    damage(copy)
    cli = make_cli(ctx.plugins)
    ctx.plugins.hook.register_commands(cli=cli)
    return lambda *args: CliRunner().invoke(cli, ["--workspace", str(copy), *args])


def _garbage_header(path: Path) -> None:
    with open(path / "amlstep.db", "r+b") as f:
        f.write(b"\x00garbage" * 13)


def _truncated(path: Path) -> None:
    import os

    os.truncate(path / "amlstep.db", 4096 * 3)


def _file_instead_of(folder: str) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        import shutil

        shutil.rmtree(path / folder)
        (path / folder).write_text("not a folder")
    return damage


def _interrupted_registration(ctx: Context) -> Any:
    from unittest import mock

    import framework.io

    def interrupt(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    with mock.patch.object(framework.io, "check_delimited_file", interrupt):
        return ctx.cli("datasets", "register", "interrupted", ctx.csv("ok.csv", "a\n1\n"))


def _held_lock(ctx: Context) -> Any:
    """A process that took the write lock and stopped (a stopped job, an open sqlite3 shell)."""
    import os
    import subprocess
    import sys
    from unittest import mock

    holder = subprocess.Popen([sys.executable, "-c", "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], "
                               "isolation_level=None); c.execute('BEGIN IMMEDIATE'); print('held', flush=True); "
                               "time.sleep(60)", str(ctx.workspace.db_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with mock.patch.dict(os.environ, {"AMLSTEP_LOCK_TIMEOUT": "0.5"}):
            result = ctx.cli("datasets", "register", "waits", ctx.csv("ok.csv", "a\n1\n"))
        assert f"held by process {holder.pid}" in result.stderr, result.stderr
        return result
    finally:
        holder.kill()
        holder.wait()


def _xlsx(ctx: Context) -> str:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
    return ctx.csv("book.csv", buffer.getvalue())


def _parquet_named_csv(ctx: Context) -> str:
    """The bytes a Parquet file starts (and ends) with; no Parquet library needed to write them."""
    return ctx.csv("table.csv", b"PAR1\x15\x04\x15\x10\x15\x14L\x15\x04\x15\x00\x12\x00\x00PAR1")


def _child_run(ctx: Context) -> Any:
    """A run with artifacts, as an AutoML child has (so that ``artifacts/<run id>/..`` resolves)."""
    from emulator.api import AutoMLChildRun

    record = ctx.workspace.list_runs(run_type="step")[0]
    ctx.workspace.write_artifact(record.id, "confusion_matrix", "{}")
    return AutoMLChildRun(ctx.workspace, record)


def _escaping_artifact(ctx: Context) -> Any:
    import pickle

    (ctx.workspace.path.parent / "x.pkl").write_bytes(pickle.dumps({"outside": True}))
    return _child_run(ctx).get_artifact("../../../x.pkl")


def _escaping_download(ctx: Context) -> Any:
    (ctx.workspace.path.parent / "secret.txt").write_text("outside the workspace")
    return _child_run(ctx).download_file("../../../secret.txt", ctx.tmp / "copied.txt")


def _pipeline_file(source: str) -> Callable[[Context], Any]:
    return lambda c: c.cli("run", c.csv("broken_pipeline.py", source))


def _download_into(target: Callable[[Context], str]) -> Callable[[Context], Any]:
    return lambda c: c.cli("download", c.workspace.list_runs()[0].id, "model", target(c))


def _azureml_is_a_file(ctx: Context) -> str:
    (ctx.tmp / "out").mkdir()
    (ctx.tmp / "out" / "azureml").write_text("a file")
    return str(ctx.tmp / "out")


def _model_folder_deleted(ctx: Context) -> Any:
    import shutil

    run = _copy_of_workspace(ctx, lambda p: shutil.rmtree(p / "models" / "Kept" / "1"))
    return run("predict", "Kept", ctx.csv("rows.csv", "a\n1\n"))


ROBUSTNESS_CASES = [
    # names: the whole string must match (a final newline used to pass)
    exits(2, "dataset name 'titanic\\n' is not valid", lambda c: c.cli("datasets", "register", "titanic\n", c.csv("ok.csv", "a\n1\n")),
          id="ws-dataset-name-trailing-newline"),
    exits(2, "step 'register_model': parameter 'model_name': model name 'Titanic\\n' is not valid",
          lambda c: c.cli("run", "examples/titanic", "--param", "model_name=Titanic\n"), id="ws-model-name-trailing-newline"),
    raises(PipelineValidationError, "experiment name 'e\\n' is not valid", lambda c: Pipeline([Step("make_table")], experiment="e\n"),
           id="ws-experiment-name-trailing-newline"),
    raises(StepDefinitionError, "step name 'table\\n' is not valid", lambda c: Step("make_table", name="table\n"),
           id="ws-step-name-trailing-newline"),
    # column names
    exits(2, "blank.csv has a column without a name (column 2)", lambda c: c.cli("datasets", "register", "d", c.csv("blank.csv", "a,,b\n1,2,3\n")),
          id="ws-column-without-a-name"),
    exits(2, "spaces.csv has a column without a name (column 3)",
          lambda c: c.cli("datasets", "register", "d", c.csv("spaces.csv", "a,b,   \n1,2,3\n")), id="ws-column-named-spaces"),
    exits(2, "index.csv has a column without a name (column 1); name every column in the header (a first column without a name is "
             "often an index written by pandas: save with index=False)",
          lambda c: c.cli("datasets", "register", "d", c.csv("index.csv", ",a\n0,1\n")), id="ws-pandas-index-column"),
    exits(2, "age.csv has columns whose names differ only by spaces around them: column 1 'Age' and column 3 'Age '",
          lambda c: c.cli("datasets", "register", "d", c.csv("age.csv", "Age,x,Age \n1,2,3\n")), id="ws-columns-differ-by-spaces"),
    # files that are not CSV, whatever their name says
    exits(2, "data.csv is gzip-compressed, not a plain CSV file: decompress it first",
          lambda c: c.cli("datasets", "register", "d", c.csv("data.csv", __import__("gzip").compress(b"a,b\n1,2\n"))), id="ws-gzip-named-csv"),
    exits(2, "table.csv is a Parquet file, not a CSV file: name it table.parquet to register it as Parquet",
          lambda c: c.cli("datasets", "register", "d", _parquet_named_csv(c)), id="ws-parquet-named-csv"),
    exits(2, "book.csv is an Excel workbook (.xlsx), not a CSV file: save the sheet as CSV UTF-8",
          lambda c: c.cli("datasets", "register", "d", _xlsx(c)), id="ws-xlsx-named-csv"),
    exits(2, "login.csv is an HTML or XML page, not a CSV file (a login or error page served in its place?",
          lambda c: c.cli("datasets", "register", "d", c.csv("login.csv", "<!DOCTYPE html>\n<html><body>Sign in</body></html>\n")),
          id="ws-html-page-named-csv"),
    # damaged or odd workspaces: one line, never a traceback
    exits(2, "amlstep.db is damaged (SQLite: file is not a database); run `amlstep workspace check`",
          lambda c: _copy_of_workspace(c, _garbage_header)("runs", "list"), id="ws-garbage-header"),
    exits(2, "amlstep.db is damaged (SQLite: database disk image is malformed)",
          lambda c: _copy_of_workspace(c, _truncated)("models", "list"), id="ws-truncated-history"),
    exits(2, "holds 1 dataset version, 1 model version, 2 step output folders but its run history amlstep.db is missing",
          lambda c: _copy_of_workspace(c, lambda p: (p / "amlstep.db").unlink())("datasets", "list"), id="ws-history-missing"),
    exits(2, "but its run history amlstep.db is empty (0 bytes); amlstep will not start a new history over existing data",
          lambda c: _copy_of_workspace(c, lambda p: (p / "amlstep.db").write_bytes(b""))("runs", "list"), id="ws-history-empty"),
    exits(2, "datastore is a file, but amlstep keeps a folder there",
          lambda c: _copy_of_workspace(c, _file_instead_of("datastore"))("runs", "list"), id="ws-datastore-is-a-file"),
    exits(2, ".staging is a file, but amlstep keeps a folder there",
          lambda c: _copy_of_workspace(c, _file_instead_of(".staging"))("runs", "list"), id="ws-staging-is-a-file"),
    exits(2, "the workspace", _held_lock, id="ws-write-lock-held-too-long"),
    exits(1, "interrupted: nothing was registered as dataset 'interrupted'", _interrupted_registration, id="ws-ctrl-c-during-register"),
    # downloads of outputs, pipeline files, predict
    exits(2, "out/azureml is a file, not a folder", _download_into(_azureml_is_a_file), id="ws-download-azureml-is-a-file"),
    exits(2, "cannot download output 'model' into /dev/full: /dev/full is a file, not a folder",
          _download_into(lambda c: "/dev/full"), id="ws-download-into-dev-full"),
    exits(2, "cannot download output 'model' into /proc/self:", _download_into(lambda c: "/proc/self"), id="ws-download-into-proc"),
    exits(2, "broken_pipeline.py:2: syntax error in the pipeline file: '[' was never closed",
          _pipeline_file("from framework import Pipeline, Step\npipeline = Pipeline([Step('make_table')\n"), id="ws-pipeline-syntax-error"),
    exits(2, "broken_pipeline.py:3: loading the pipeline file raised KeyError: 'settings'",
          _pipeline_file("import os\n\nconfig = {}['settings']\n"), id="ws-pipeline-raises-on-import"),
    exits(2, "model Kept:1 is registered but its folder is missing from", _model_folder_deleted, id="ws-predict-model-folder-deleted"),
    # the Python API: artifact names stay inside the run's folder
    raises(WorkspaceError, "artifact name '../../../x.pkl' leads outside the run's files", _escaping_artifact,
           id="ws-get-artifact-escapes"),
    raises(WorkspaceError, "artifact name '../../../secret.txt' leads outside the run's files", _escaping_download,
           id="ws-download-file-escapes"),
]
CASES += ROBUSTNESS_CASES


# == never lie, never lose, round 2 (issue 24) ==================================================================
def _download_into_full(ctx: Context) -> Any:
    """copytree gathers every failed file into one shutil.Error, whose text is a list of staging paths."""
    import errno
    import os
    import shutil
    from unittest import mock

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[1]))

    out = ctx.tmp / "out"
    with mock.patch.object(shutil, "copyfile", full):
        result = ctx.cli("download", ctx.workspace.list_runs()[0].id, "model", str(out))
    assert result.stderr == f"Error: cannot download output 'model' into {out}: no space left on the device holding {out}\n"
    return result


def _with_lock_timeout(value: str) -> Callable[[Context], Any]:
    def act(ctx: Context) -> Any:
        import os
        from unittest import mock

        with mock.patch.dict(os.environ, {"AMLSTEP_LOCK_TIMEOUT": value}):
            return ctx.cli("datasets", "register", "waits", ctx.csv("ok.csv", "a\n1\n"))
    return act


ISSUE24_CASES = [
    # pipeline files that end the program while loading
    exits(2, "broken_pipeline.py:2: the pipeline file called sys.exit(0) while loading; a pipeline file must define the "
             "pipeline, not end the program", _pipeline_file("import sys\nsys.exit(0)\n"), id="i24-pipeline-sys-exit-0"),
    exits(2, "broken_pipeline.py:3: the pipeline file called sys.exit('bye') while loading",
          _pipeline_file("import sys\n\nsys.exit('bye')\n"), id="i24-pipeline-sys-exit-message"),
    exits(2, "broken_pipeline.py:4: create_pipeline() called sys.exit(3) while loading",
          _pipeline_file("import sys\n\ndef create_pipeline():\n    sys.exit(3)\n"), id="i24-pipeline-factory-sys-exit"),
    exits(2, "broken_pipeline.py:2: the pipeline file called sys.exit(0) while loading",
          lambda c: c.cli("explain-reuse", c.csv("broken_pipeline.py", "import sys\nsys.exit(0)\n")),
          id="i24-explain-reuse-sys-exit"),
    # dataset files
    exits(2, "dataset 'd': b.csv has other columns than a.csv (it lacks 'y'; it adds 'z'); the files of one dataset share "
             "one header, as Azure reads them: give them the same columns, or register them as separate datasets",
          lambda c: c.cli("datasets", "register", "d", c.csv("a.csv", "x,y\n1,2\n"), c.csv("b.csv", "x,z\n3,4\n")),
          id="i24-two-csvs-with-different-columns"),
    exits(2, "dataset 'd': b.csv has other columns than a.csv (the same names in another order)",
          lambda c: c.cli("datasets", "register", "d", c.csv("a.csv", "x,y\n1,2\n"), c.csv("b.csv", "y,x\n3,4\n")),
          id="i24-two-csvs-with-columns-in-another-order"),
    exits(2, "': bad.parquet is not a valid Parquet file: Parquet file size is 22 bytes, smaller than the size reported "
             "by footer's (1701273954bytes)\n",
          lambda c: c.cli("datasets", "register", "d", c.csv("bad.parquet", b"PAR1garbagegarbagePAR1")),
          id="i24-corrupt-parquet-names-no-staging-path"),
    # version numbers and ids
    exits(2, "version 99999999999999999999999 of model 'Kept' is not registered in workspace",
          lambda c: c.cli("models", "show", "Kept:99999999999999999999999"), id="i24-model-version-beyond-sqlite"),
    exits(2, "version 99999999999999999999 of dataset 'titanic_ds' is not registered in workspace",
          lambda c: c.cli("datasets", "show", "titanic_ds", "-v", "99999999999999999999"),
          id="i24-dataset-version-beyond-sqlite"),
    exits(2, "dataset 'titanic_ds': version 0 is not valid; versions are whole numbers from 1 (leave the version out for "
             "the latest)", lambda c: c.cli("datasets", "show", "titanic_ds", "-v", "0"), id="i24-dataset-version-zero"),
    exits(2, "dataset 'titanic_ds': version -3 is not valid", lambda c: c.cli("datasets", "show", "titanic_ds", "-v", "-3"),
          id="i24-dataset-version-negative"),
    raises(WorkspaceError, "a run id is text (a run's id or a prefix of at least 4 characters), got NoneType None",
           lambda c: get_run(None, c.workspace), id="i24-get-run-none"),
    # AutoML settings that are no time at all
    raises(StepDefinitionError, "AutoML setting 'experiment_timeout_minutes' must be a finite number, got nan",
           _settings(experiment_timeout_minutes=float("nan")), id="i24-automl-timeout-nan"),
    raises(StepDefinitionError, "AutoML setting 'experiment_timeout_minutes' must be a finite number, got inf",
           _settings(experiment_timeout_minutes=float("inf")), id="i24-automl-timeout-inf"),
    raises(StepDefinitionError, "AutoML setting 'experiment_timeout_minutes' must be at most 15372286560 (the longest "
                                "timeout Azure ML can represent, about 29,000 years), got 1e+20",
           _settings(experiment_timeout_minutes=1e20), id="i24-automl-timeout-1e20"),
    exits(2, "step 'AutoML_Classification': AutoML setting 'experiment_timeout_minutes' must be a finite number, got nan",
          lambda c: c.cli("run", "examples/titanic", "--param", "experiment_timeout_minutes=nan"),
          id="i24-cli-automl-timeout-nan"),
    # Azure workspace configs
    exits(2, "bad.json is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); "
             "download config.json again", lambda c: c.cli("run", "examples/titanic", "-b", "azure", "--config",
                                                          c.csv("bad.json", "{oops")), id="i24-azure-config-bad-json"),
    exits(2, "fake.json has no workspace_name; a workspace config names subscription_id, resource_group, workspace_name",
          lambda c: c.cli("run", "examples/titanic", "-b", "azure", "--config", c.csv("fake.json", json.dumps({
              "subscription_id": "s", "resource_group": "r", "amlstep_fake_service": {
                  "endpoint": "http://127.0.0.1:9", "token": "t"}}))), id="i24-azure-config-without-workspace-name"),
    # downloads into a full file system
    exits(2, "/out: no space left on the device holding ", _download_into_full, id="i24-download-into-a-full-file-system"),
    # the lock timeout
    *[exits(2, f"$AMLSTEP_LOCK_TIMEOUT must be a number of seconds from 0 to 604800 (a week), got {value!r}; unset it "
               f"for the default of 60", _with_lock_timeout(value), id=f"i24-lock-timeout-{name}")
      for name, value in (("text", "abc"), ("negative", "-5"), ("nan", "nan"), ("inf", "inf"))],
]
CASES += ISSUE24_CASES

# round 2: files the commands write (predict's own cases are in tests/framework/commands/test_predict_command.py)
def _report_to(out: str) -> Callable[[Context], Any]:
    def act(ctx: Context) -> Any:
        from tests.framework.commands.conftest import cli_with_commands

        return CliRunner().invoke(cli_with_commands(ctx.plugins), ["--workspace", str(ctx.workspace.path), "report",
                                                                   ctx.workspace.list_runs()[0].id, "-o", out])
    return act


ISSUE24_ROUND2_CASES = [
    exits(2, "cannot write the report to /dev/full: no space left on the device", _report_to("/dev/full"),
          id="i24-report-out-dev-full"),
    exits(2, "cannot write the report to /proc/version: ", _report_to("/proc/version"), id="i24-report-out-proc"),
]
CASES += ISSUE24_ROUND2_CASES


class _BadDeclaration:
    from framework import hookimpl as _hookimpl

    @_hookimpl
    def register_steps(self, register):
        from framework import Input, StepSpec

        register(StepSpec("clean", lambda data: {}, inputs=[Input("raw")]))


def snapshot(workspace: LocalWorkspace) -> dict[str, Any]:
    """What is recorded: every row of every table, and every registered or produced file."""
    conn = sqlite3.connect(workspace.db_path)
    tables = {t: sorted(map(repr, conn.execute(f"SELECT * FROM {t}").fetchall()))
              for t in ("runs", "metrics", "datasets", "models", "experiments")}
    files = {str(p.relative_to(workspace.path)): hashlib.sha256(p.read_bytes()).hexdigest()
             for folder in ("datasets", "models", "datastore") for p in (workspace.path / folder).rglob("*") if p.is_file()}
    return {"tables": tables, "files": files}


def unchanged(before: dict[str, Any], after: dict[str, Any]) -> None:
    for table, rows in before["tables"].items():
        missing = set(rows) - set(after["tables"][table])
        assert not missing, f"recorded {table} rows changed: {sorted(missing)[:2]}"
    for path, digest in before["files"].items():
        assert after["files"].get(path) == digest, f"recorded file {path} changed or vanished"


@pytest.fixture(scope="module")
def titanic(titanic_csv):
    return pd.read_csv(titanic_csv)


@pytest.fixture
def ctx(workspace, titanic_csv, titanic, tmp_path, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    plugins = get_plugin_manager(plugins=[ToySteps()])
    workspace.register_dataset("titanic_ds", [str(titanic_csv)])
    run_pipeline(Pipeline([Step("make_table"), Step("fit", inputs={"table": "table"})], outputs={"model": "model"}),
                 workspace=workspace, plugins=plugins)
    (tmp_path / "kept.pkl").write_bytes(b"kept")
    workspace.register_model("Kept", tmp_path / "kept.pkl")
    return Context(workspace, plugins, tmp_path, titanic)


def test_the_table_is_big_enough():
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, ctx: Context) -> None:
    before = snapshot(ctx.workspace)
    if isinstance(case.expect, type):
        with pytest.raises(case.expect, match=re.escape(case.message)):
            case.act(ctx)
    elif isinstance(case.expect, int):
        result = case.act(ctx)
        assert result.exit_code == case.expect, result.output
        assert case.message in result.stderr, result.stderr
        assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    else:
        result = case.act(ctx)
        assert result.status == "Failed", result
        assert case.message in result.error, result.error
        failed = ctx.workspace.get_run(result.run_id)
        assert failed.status == "Failed" and case.message in failed.error
    unchanged(before, snapshot(ctx.workspace))


# -- issue 24: what pipeline files and plugins print or do while loading --------------------------------------------
PRINTS = """
from framework import Pipeline, Step

print("hello from the pipeline file")
pipeline = Pipeline([Step("make_table")], experiment="prints")
"""

NOISY_PLUGIN = """
print("hello from a plugin")
"""


def test_a_pipeline_file_that_prints_does_not_break_run_json(ctx: Context) -> None:
    result = ctx.cli("run", ctx.csv("prints.py", PRINTS), "--json", "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "Completed"
    assert "hello from the pipeline file" in result.stderr


def test_a_plugin_that_prints_while_imported_does_not_break_json(plugin_distribution, workspace) -> None:
    plugin_distribution("amlstep-noisy", "amlstep_noisy", NOISY_PLUGIN)
    result = CliRunner().invoke(make_cli(), ["--workspace", str(workspace.path), "plugins", "--json"])
    assert result.exit_code == 0, result.output
    assert "dataprep_titanic" in {s["name"] for s in json.loads(result.stdout)["steps"]}
    assert "hello from a plugin" in result.stderr


@pytest.mark.parametrize("code, shown", [("0", "0"), ("'bye'", "'bye'")])
def test_a_plugin_that_calls_sys_exit_while_imported_is_named(plugin_distribution, workspace, tmp_path, capsys,
                                                                code, shown) -> None:
    from framework.cli import main

    plugin_distribution("amlstep-quits", "amlstep_quits", f"import sys\nsys.exit({code})\n")
    source = tmp_path / "d.csv"
    source.write_text("a\n1\n")
    with pytest.raises(SystemExit) as exited:
        main(["--workspace", str(workspace.path), "datasets", "register", "d", str(source)])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        f"Error: plugin entry point 'amlstep_quits' = 'amlstep_quits' from distribution 'amlstep-quits' called "
        f"sys.exit({shown}) while being imported; a plugin must not end the program\n")
    assert workspace.list_datasets() == []


def test_the_duplicate_column_check_is_linear() -> None:
    """A 1-row CSV with 100,000 columns took more than 120 s to register: the check compared every pair."""
    import signal

    from framework.io import check_column_names

    def too_slow(signum: int, frame: Any) -> None:
        raise TimeoutError("checking 200,000 column names took more than 20 s (it takes well under a second)")

    names = [f"c{i}" for i in range(200_000)]
    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.setitimer(signal.ITIMER_REAL, 20)
    try:
        check_column_names(names, "wide.csv")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    with pytest.raises(WorkspaceError, match=re.escape("wide.csv has duplicate column names: 'c7'")):
        check_column_names([*names, "c7"], "wide.csv")
