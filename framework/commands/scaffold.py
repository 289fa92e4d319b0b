"""``amlstep new-plugin NAME [DIR]``: write a ready-to-install step plugin package.

The package has a working step (tabular in -> tabular out plus what it learned, one parameter), its entry point in
the ``amlstep`` group, a test using the contract harness, an example pipeline that swaps it
into the Titanic pipeline's place (same AutoML and register_model steps), and a README.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..errors import AmlStepError, StepDefinitionError
from ..hookspecs import hookimpl
from ..steps import check_name

PYPROJECT = '''\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "amlstep step plugin {name}: prepare {title} data for AutoML"
readme = "README.md"
requires-python = ">=3.10"
dependencies = [
    "amlstep",
]

# This entry point makes the step visible to amlstep (`amlstep plugins`) and usable in pipelines.
[project.entry-points.amlstep]
{name} = "{module}"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

MODULE = '''\
"""Step plugin ``{name}``: prepare {title} data for AutoML.

Edit ``learn`` and ``prepare``. They are plain functions of a DataFrame, so ``amlstep predict`` can
prepare new rows (which have no label column) exactly as the training rows were prepared: the step
keeps what ``learn`` found in the training rows as its ``learned`` output, and ``predict`` hands it
back, so that a new row is prepared the same way whatever other rows share its file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from framework import DataType, Input, Output, Param, StepSpec, hookimpl

if TYPE_CHECKING:
    import pandas as pd

LABEL = {label_py}  # the label column (from `amlstep new-plugin --label`); absent in rows to predict


def tidy(df: pd.DataFrame, drop_columns: str = "") -> pd.DataFrame:
    """Drop the columns named in ``drop_columns`` (comma-separated) and tidy text values."""
    dropped = [c.strip() for c in drop_columns.split(",") if c.strip()]
    unknown = [c for c in dropped if c not in df.columns]
    if unknown:
        raise ValueError(f"drop_columns names unknown column(s) {{', '.join(map(repr, unknown))}}; "
                         f"columns: {{', '.join(map(str, df.columns))}}")
    df = df.drop(columns=dropped)
    for column in df.columns:
        if df[column].dtype == object or str(df[column].dtype) in ("string", "str"):
            text = df[column].astype("string").str.strip()
            df[column] = text.mask(text == "")  # empty text is a missing value; AutoML imputes it
    return df.reset_index(drop=True)


def learn(df: pd.DataFrame, drop_columns: str = "") -> dict[str, Any]:
    """What the preparation learns from the training rows: the range of each numeric feature."""
    import pandas as pd

    df = tidy(df, drop_columns)
    numeric = [c for c in df.columns if c != LABEL and pd.api.types.is_numeric_dtype(df[c])
               and not pd.api.types.is_bool_dtype(df[c]) and df[c].notna().any()]
    return {{"ranges": {{c: [df[c].min(), df[c].max()] for c in numeric}}}}


def prepare(df: pd.DataFrame, drop_columns: str = "", learned: dict[str, Any] | None = None) -> pd.DataFrame:
    """Tidy the rows, then clip numbers to the range seen in training (models extrapolate badly).

    ``learned`` is what ``learn`` found in the training rows; without it ``df`` is its own training rows.
    """
    if learned is None:
        learned = learn(df, drop_columns)
    df = tidy(df, drop_columns)
    for column, (low, high) in learned["ranges"].items():
        if column in df.columns:
            df[column] = df[column].clip(low, high)
    return df


def run(raw_data: pd.DataFrame, drop_columns: str, learned: dict[str, Any] | None = None) -> dict[str, Any]:
    if learned is None:  # a pipeline run: learn from these (training) rows; predict passes what was learned
        learned = learn(raw_data, drop_columns)
    prepped = prepare(raw_data, drop_columns, learned)
    print(f"Prepared {{len(prepped)}} rows, columns: {{', '.join(map(str, prepped.columns))}}")
    return {{"prepped_data": prepped, "learned": learned}}


STEP = StepSpec(
    name="{name}",
    description="Prepare {title} data for AutoML: drop columns, tidy text, clip numbers to the training range",
    run=run,
    inputs=[Input("raw_data", DataType.TABULAR, "the raw rows, label column included")],
    outputs=[Output("prepped_data", DataType.TABULAR, "prepped rows, ready for AutoML"),
             Output("learned", DataType.LEARNED, "what the preparation learned from the training rows")],
    params=[Param("drop_columns", str, "", "comma-separated columns to drop (identifiers, leaks)")],
)


@hookimpl
def register_steps(register: Callable[[StepSpec], None]) -> None:
    register(STEP)
'''

TEST = '''\
"""Tests of the {name} step plugin.

``parametrize_with_checks`` runs amlstep's contract checks, one test case each: declaration,
parameter round trip, a local run yielding exactly the declared outputs, determinism, each row
prepared alone as among all rows (with what the step learned), the label kept, and the Azure
compile (skipped when no Azure backend is installed).
"""

import pandas as pd
import pytest

from framework.testing import parametrize_with_checks
from {module} import LABEL, STEP, prepare

SAMPLE = pd.DataFrame({{
    "id": [1, 2, 3, 4, 5, 6],
    "colour": ["red", " blue", "", "green", "red", None],
    "size": [1.5, 2.0, None, 3.5, 1.0, 2.5],
    LABEL: [0, 1, 0, 1, 1, 0],
}})


@parametrize_with_checks([STEP], sample_inputs={{"raw_data": SAMPLE}}, sample_params={{"drop_columns": "id"}},
                         label=LABEL)
def test_step_contract(step, check):
    check(step)


def test_drops_columns_and_tidies_text(run_step):
    out = run_step("{name}", raw_data=SAMPLE, drop_columns="id")
    prepped = out["prepped_data"]
    assert list(prepped.columns) == ["colour", "size", LABEL]
    assert prepped["colour"].isna().sum() == 2
    assert out["learned"] == {{"ranges": {{"size": [1.0, 3.5]}}}}


def test_new_rows_get_what_the_training_rows_taught(run_step):
    learned = run_step("{name}", raw_data=SAMPLE, drop_columns="id")["learned"]
    new = SAMPLE.drop(columns=[LABEL]).head(2).assign(size=[99.0, 0.5])
    out = run_step("{name}", raw_data=new, drop_columns="id", learned=learned)
    assert out["prepped_data"]["size"].tolist() == [3.5, 1.0]


def test_prepares_rows_without_label():
    rows = SAMPLE.drop(columns=[LABEL])
    assert len(prepare(rows)) == len(rows)


def test_unknown_column_is_named():
    with pytest.raises(ValueError, match="'nope'"):
        prepare(SAMPLE, drop_columns="nope")
'''

PIPELINE = '''\
"""The Titanic pipeline with {name} swapped in: {name} -> AutoML -> register model.

    amlstep datasets register {dataset} path/to/your.csv
    amlstep run {folder} -p iterations=5

Only the first step, the label and the iterations differ from examples/titanic/pipeline.py (8
iterations instead of 2; offline they end the run long before the 15-minute timeout, which is
Azure's minimum). Set label_column_name to your label.
"""

from framework import AutoMLStep, Dataset, Pipeline, PipelineParameter, Step

{dataset} = Dataset("{dataset}", description="{title} data")

model_name = PipelineParameter("model_name", default_value="{model}")
iterations = PipelineParameter("iterations", default_value=8)
timeout_minutes = PipelineParameter("experiment_timeout_minutes", default_value=15)

pipeline = Pipeline(
    experiment="{name}_automl",
    steps=[
        Step("{name}", name="dataprep", inputs={{"raw_data": {dataset}}}, outputs={{"prepped_data": "prepped_data"}}),
        AutoMLStep(
            name="AutoML",
            training_data="prepped_data",
            metrics_output="metrics_data",
            model_output="best_model_data",
            task="{task}",
            primary_metric="{metric}",
            label_column_name={label_py},
            featurization="auto",
            iterations=iterations,
            experiment_timeout_minutes=timeout_minutes,
            iteration_timeout_minutes=10,
            n_cross_validations=5,
            enable_early_stopping=True,
        ),
        Step("register_model", inputs={{"model": "best_model_data"}}, params={{"model_name": model_name}},
             allow_reuse=False),
    ],
    outputs={{"metrics_output": "metrics_data", "model_output": "best_model_data"}},
    compute_target="cpu-cluster",
)
'''

README = '''\
# {dist}

An amlstep step plugin: `{name}` prepares {title} data for AutoML. Generated by
`amlstep new-plugin {name}`.

- input `raw_data` (tabular): the raw rows, label column included (absent when predicting)
- output `prepped_data` (tabular)
- output `learned` (learned): what the preparation learned from the training rows (the range of
  each numeric column); `amlstep predict` hands it back so new rows are prepared the same way
- parameter `drop_columns` (str, default empty): comma-separated columns to drop

## Install and test

```
pip install -e {folder}
amlstep plugins                  # lists {name} [{name} ({dist})]
python -m pytest {folder}/tests
```

## Run it in place of the Titanic preparation

`pipeline.py` is the Titanic pipeline with one step swapped: `{name}` instead of
`dataprep_titanic`; the AutoML and register_model steps are the same plugins, unchanged.
Its label column is `{label}` and its task `{task}` (from `new-plugin --label/--task`); edit
`label_column_name` in `pipeline.py` if your label is called something else.

```
amlstep datasets register {dataset} path/to/your.csv
amlstep run {folder} -p iterations=5
amlstep report RUN_ID --out report.html       # RUN_ID: printed by run, or `amlstep runs list`
amlstep predict {model} path/to/new_rows.csv --out predictions.csv
```

Edit `learn` and `prepare` in `src/{module}/__init__.py` for your data; keep them plain functions of
a DataFrame, and keep in `learned` whatever the preparation learns from the training rows (bins,
fill values, encodings), so that `amlstep predict` prepares each new row the same way whatever
other rows share its file.

The plugin imports only amlstep's public API: `framework` (the step, its hook) and, in its tests,
`framework.testing`; amlstep's docs/api.md lists every public name by audience.
'''


def dataset_name(name: str) -> str:
    """The dataset a preparation step ``dataprep_wine`` reads: named after its table, ``wine_ds``."""
    return f"{name.removeprefix('dataprep_') or name}_ds"


def plugin_files(name: str, *, label: str = "label", task: str = "classification",
                 folder: str | None = None) -> dict[str, str]:
    """Relative path -> content of the package for step plugin ``name``."""
    module = name
    dist = "amlstep-" + name.replace("_", "-")
    subject = name.removeprefix("dataprep_") or name
    title = subject.replace("_", " ")
    model = "".join(part.capitalize() for part in subject.split("_")) + "Model"
    values = {"name": name, "module": module, "dist": dist, "title": title, "label": label, "task": task,
              "label_py": json.dumps(label),
              "metric": "AUC_weighted" if task == "classification" else "normalized_root_mean_squared_error",
              "dataset": dataset_name(name), "model": model, "folder": folder or name}
    return {
        "pyproject.toml": PYPROJECT.format(**values),
        f"src/{module}/__init__.py": MODULE.format(**values),
        f"tests/test_{module}.py": TEST.format(**values),
        "pipeline.py": PIPELINE.format(**values),
        "README.md": README.format(**values),
    }


def new_plugin(name: str, directory: str | Path = ".", *, label: str = "label", task: str = "classification",
               force: bool = False) -> Path:
    """Write the package of step plugin ``name`` into ``directory/name``; return that folder."""
    name = name.replace("-", "_")
    try:
        check_name(name, "step plugin")
    except StepDefinitionError as exc:
        raise StepDefinitionError(f"{exc} (it is also the Python module name)") from None
    if not label.strip():
        raise StepDefinitionError("--label must name a column")
    if task not in ("classification", "regression"):
        raise StepDefinitionError(f"--task must be classification or regression, got {task!r}")
    target = Path(directory) / name
    if target.exists() and any(target.iterdir()) and not force:
        raise StepDefinitionError(f"{target} already exists and is not empty; choose another DIR or pass --force")
    try:
        shown = str(target.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        shown = str(target)
    for relative, content in plugin_files(name, label=label, task=task, folder=shown).items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return target


@click.command("new-plugin")
@click.argument("name")
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option("--label", default="label", show_default=True,
              help="The label column of your data (for the example test and pipeline).")
@click.option("--task", type=click.Choice(["classification", "regression"]), default="classification", show_default=True,
              help="The AutoML task: sets the task and the primary metric in pipeline.py.")
@click.option("--force", is_flag=True, help="Write into an existing, non-empty folder.")
def new_plugin_command(name: str, directory: str, label: str, task: str, force: bool) -> None:
    """Write a new step plugin package, ready to install.

    The package NAME goes into DIR/NAME (DIR defaults to '.').
    """
    from .common import State, fail

    state = click.get_current_context().find_object(State)
    module = name.replace("-", "_")
    if state is not None and module in state.plugins.steps:
        fail(f"a step named {module!r} is already installed, by {state.plugins.owner(module)}; "
             f"step names are unique: choose another NAME")
        return
    try:
        target = new_plugin(name, directory, label=label, task=task, force=force)
    except AmlStepError as exc:
        fail(str(exc))
        return
    renamed = f" (a Python module name: {name!r} with '-' as '_')" if module != name else ""
    click.echo(f"Wrote step plugin {module!r}{renamed} into {target}/")
    for relative in plugin_files(module):
        click.echo(f"  {relative}")
    click.echo("Next:")
    click.echo(f"  pip install -e {target}")
    click.echo(f"  python -m pytest {target}/tests")
    click.echo(f"  amlstep datasets register {dataset_name(module)} path/to/your.csv")
    click.echo(f"  amlstep run {target} -p iterations=5      # label column: {label} (see pipeline.py)")


@hookimpl
def register_commands(cli: Any) -> None:
    cli.add_command(new_plugin_command)
