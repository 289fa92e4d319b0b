"""Docs self-checks (like datasette's tests/test_docs.py): the docs say what the code does.

Every code block of README.md and docs/*.md is marked on the line before its fence:
``<!-- snippet: ID -->`` when a test runs it (the test takes it with ``snippet("ID")``; a
``hook-NAME`` block is run by ``test_every_hook_has_an_example``), or ``<!-- not-run: REASON -->``
when it cannot run offline, REASON saying why (a synopsis with placeholders, output, it installs
from a package index, it needs Azure...). ``test_every_code_block_runs_or_says_why`` checks both.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from framework import hookspecs

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


FENCE = re.compile(r"^```[\w-]*\n(.*?)^```", re.S | re.M)
MARKER = re.compile(r"<!-- (snippet|not-run): (.*?) -->")


def pages() -> list[Path]:
    return [*sorted(DOCS.glob("*.md")), DOCS.parent / "README.md"]


def code_blocks() -> list[tuple[Path, int, str | None, str | None, str]]:
    """(page, line, "snippet" or "not-run" or None, its id or reason, code) of every fenced block."""
    found = []
    for page in pages():
        text = page.read_text()
        for block in FENCE.finditer(text):
            before = text[:block.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
            marker = MARKER.fullmatch(before)
            found.append((page, text[:block.start()].count("\n") + 1, marker.group(1) if marker else None,
                          marker.group(2).strip() if marker else None, block.group(1)))
    return found


def snippets(snippet_id: str) -> list[str]:
    """The code of the blocks marked ``<!-- snippet: ID -->``."""
    return [code for _, _, kind, value, code in code_blocks() if kind == "snippet" and value == snippet_id]


def snippet(snippet_id: str) -> str:
    (code,) = snippets(snippet_id)
    return code


def test_every_code_block_runs_or_says_why():
    sources = "".join(p.read_text() for p in Path(__file__).parent.rglob("*.py"))
    unmarked, unused = [], []
    for page, line, kind, value, _ in code_blocks():
        where = f"{page.relative_to(REPO)}:{line}"
        if kind is None or not value:
            unmarked.append(where)
        elif kind == "snippet" and not (f'"{value}"' in sources or (value.startswith("hook-")
                                                                    and value[5:] in hook_specs())):
            unused.append(f"{where} ({value})")
    assert unmarked == [], ("code blocks with neither <!-- snippet: ID --> (run by a test) nor "
                            "<!-- not-run: REASON --> on the line before the fence")
    assert unused == [], "snippet ids that no test runs"


def hook_specs() -> dict[str, list[str]]:
    return {name: list(inspect.signature(function).parameters)
            for name, function in vars(hookspecs).items()
            if callable(function) and hasattr(function, f"{hookspecs.PROJECT}_spec")}


def sections(path: Path, level: str = "## ") -> dict[str, str]:
    text = path.read_text()
    found: dict[str, str] = {}
    for chunk in re.split(r"^(?=" + re.escape(level) + ")", text, flags=re.M)[1:]:
        heading, _, body = chunk.partition("\n")
        found[heading[len(level):].strip()] = body
    return found


def test_every_hook_has_a_heading_with_its_arguments():
    headings = [h for h in sections(DOCS / "hooks.md")]
    documented = {}
    for heading in headings:
        match = re.fullmatch(r"(\w+)\((.*)\)", heading)
        assert match, f"hooks.md heading {heading!r} is not of the form name(arg, ...)"
        documented[match.group(1)] = [a.strip() for a in match.group(2).split(",") if a.strip()]
    assert documented == hook_specs()


@pytest.mark.parametrize("hook", sorted(hook_specs()))
def test_every_hook_has_an_example(hook):
    body = next(b for h, b in sections(DOCS / "hooks.md").items() if h.startswith(hook + "("))
    example = re.search(r"```python\n(.*?)```", body, flags=re.S)
    assert example, f"hooks.md: {hook} has no python example"
    assert f"def {hook}(" in example.group(1)
    assert snippet(f"hook-{hook}") == example.group(1)
    namespace: dict = {"hookimpl": hookspecs.hookimpl}
    exec(compile(example.group(1), f"hooks.md:{hook}", "exec"), namespace)  # it defines the implementation
    assert callable(namespace[hook]) and hasattr(namespace[hook], f"{hookspecs.PROJECT}_impl")


def guide_files() -> dict[str, str]:
    """The blocks of plugin-guide.md whose first line names a file: ``# path``."""
    files = {}
    for block in snippets("guide-file"):
        first, _, rest = block.partition("\n")
        match = re.fullmatch(r"# ([\w./-]+\.(?:py|toml))", first.strip())
        if match:
            files[match.group(1)] = block if match.group(1).endswith(".py") else rest
    return files


@pytest.fixture(scope="module")
def guide_plugin(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("guide") / "amlstep-dedupe"
    for relative, content in guide_files().items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def test_guide_has_a_complete_plugin():
    assert set(guide_files()) == {"pyproject.toml", "src/amlstep_dedupe/__init__.py",
                                  "tests/test_amlstep_dedupe.py", "pipeline.py"}


def test_guide_pyproject_points_at_the_module(guide_plugin):
    project = tomllib.loads((guide_plugin / "pyproject.toml").read_text())
    entry_points = project["project"]["entry-points"]["amlstep"]
    assert entry_points == {"dataprep_dedupe": "amlstep_dedupe"}
    assert (guide_plugin / "src" / "amlstep_dedupe" / "__init__.py").is_file()
    assert "amlstep" in project["project"]["dependencies"]


def test_guide_plugin_tests_pass(guide_plugin):
    env = {**os.environ, "PYTHONPATH": str(guide_plugin / "src")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                          cwd=guide_plugin, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    # dedupe changes the number of rows, so the row-by-row check skips (saying why);
    # the guide's plugin is importable but not installed: the Azure compile check skips, saying why (its code
    # cannot be shipped as a wheel); installed, it runs too
    assert "6 passed, 2 skipped" in done.stdout


def test_guide_pipeline_runs_with_the_plugin(guide_plugin, workspace, monkeypatch):
    from framework import get_plugin_manager, load_pipeline, run_pipeline

    monkeypatch.syspath_prepend(str(guide_plugin / "src"))
    import amlstep_dedupe

    plugins = get_plugin_manager(plugins=[amlstep_dedupe])
    data = guide_plugin / "my.csv"
    rows = [{"x": i * 0.5, "y": (i * 7) % 5, "label": int(i % 10 > 4)} for i in range(80)]
    pd.DataFrame(rows + rows[:20]).to_csv(data, index=False)
    workspace.register_dataset("my_ds", [str(data)])
    # the parameters of the guide's own `amlstep run` command line
    command = re.search(r"^amlstep run amlstep-dedupe/pipeline.py (.*)$", (DOCS / "plugin-guide.md").read_text(),
                        flags=re.M)
    assert command, "plugin-guide.md no longer runs the dedupe pipeline"
    params = dict(p.split("=", 1) for p in re.findall(r"-p (\S+)", command.group(1)))
    assert params == {"iterations": "3"}
    result = run_pipeline(load_pipeline(guide_plugin / "pipeline.py"), workspace=workspace, plugins=plugins,
                          params=params)
    assert result.succeeded, result.error
    assert len(workspace.get_children(result.step("AutoML").run_id)) == 3
    step = workspace.get_run(result.step("dataprep_dedupe").run_id)
    assert workspace.get_metrics(step.id) == {"duplicates_dropped": 20}


def test_local_and_azure_covers_each_concern():
    headings = set(sections(DOCS / "local-and-azure.md"))
    assert {"Steps", "Data", "Parameters", "Run context", "Reuse", "Outputs and results", "Run history"} <= headings


def test_documented_commands_exist():
    from framework import get_plugin_manager
    from framework.cli import make_cli

    plugins = get_plugin_manager()
    cli = make_cli(plugins)
    plugins.hook.register_commands(cli=cli)
    pages = [*DOCS.glob("*.md"), DOCS.parent / "README.md"]
    blocks = "".join(b for p in pages for b in re.findall(r"```[a-z]*\n(.*?)```", p.read_text(), re.S))
    used = set(re.findall(r"^\s*amlstep ([a-z][a-z-]+)", blocks, flags=re.M))
    assert {"new-plugin", "report", "predict", "run", "plugins"} <= used
    assert used <= set(cli.commands), used - set(cli.commands)


def test_readme_shows_the_swap_and_the_new_commands():
    text = (DOCS.parent / "README.md").read_text()
    for needle in ("pip install -e examples/penguins/amlstep-penguins", "amlstep new-plugin", "amlstep report",
                   "amlstep predict TitanicSurvivalInitial", "dataprep_penguins", "AMLSTEP_REQUIRE_BROWSER"):
        assert needle in text, needle


def test_guide_learned_output_example_works(run_step):
    """The "Keeping what the preparation learned" example: learns in a pipeline run, applies in predict."""
    from framework.testing import check_rows_independent

    block = snippet("guide-learned")
    assert "dataprep_fill" in block
    namespace: dict = {}
    exec(compile(block, "plugin-guide.md", "exec"), namespace)
    step = namespace["STEP"]
    rows = pd.DataFrame({"age": [20.0, None, 40.0, 30.0], "fare": [7.0, 8.0, None, 100.0], "label": [0, 1, 0, 1]})
    learned = run_step(step, raw_data=rows)["learned"]
    assert learned == {"fill": {"age": 30.0, "fare": 8.0}}
    alone = run_step(step, raw_data=rows.iloc[[1]].drop(columns=["label"]), learned=learned)["clean_data"]
    assert alone["age"].tolist() == [30.0]
    check_rows_independent(step, sample_inputs={"raw_data": rows})


# -- statements that were false once (issue 16) ----------------------------------------------------

def test_relative_links_point_at_files_in_the_repo():
    """docs/emulator.md once linked ../shared/reference/automl-semantics.md, which is not in the repo."""
    broken = []
    for page in pages():
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()) + re.findall(
                r"`(\.\./[^`]+\.md)`", page.read_text()):
            if re.match(r"[a-z]+://|#|mailto:", target):
                continue
            path = (page.parent / target.split("#", 1)[0]).resolve()
            if not path.exists() or REPO not in path.parents:
                broken.append(f"{page.name}: {target}")
    assert broken == []


def test_what_the_docs_say_about_lightgbm_is_what_runs():
    from emulator.models import make_estimator

    fitted = make_estimator("classification", "LightGBM", {}, seed=0)
    inner = getattr(fitted, "estimator", getattr(fitted, "base", fitted))
    names = {type(o).__module__.split(".")[0] for o in (fitted, inner, *vars(fitted).values())}
    assert "lightgbm" in names, names
    for page in pages():
        assert "LightGBM is emulated with scikit-learn" not in page.read_text(), page.name
    assert "`LightGBM` is the lightgbm package" in (DOCS / "emulator.md").read_text()


def test_standalone_automl_runs_are_in_runs_list_as_emulator_md_says(workspace):
    from click.testing import CliRunner

    from framework.cli import make_cli

    assert "`amlstep runs list` lists it beside pipeline runs" in (DOCS / "emulator.md").read_text()
    run = workspace.create_run(run_type="automl", name="AutoML_x", experiment="standalone", run_id="AutoML_x",
                               status="Completed", properties={"primary_metric": "accuracy", "score": 0.8})
    listed = CliRunner().invoke(make_cli(), ["--workspace", str(workspace.path), "runs", "list", "--json"])
    assert [r["id"] for r in json.loads(listed.stdout)] == [run.id]


def test_the_readme_prefix_claim_holds(workspace):
    text = (DOCS.parent / "README.md").read_text()
    assert "a prefix works" in text and "unique prefix of at least 4 characters" in text
    run = workspace.create_run(run_type="pipeline", name="p", experiment="e")
    assert workspace.get_run(run.id[:4]).id == run.id


# -- the README's and the emulator page's snippets, run (issue 26) -------------------------------------
def test_readme_reading_results_snippet(titanic_run, tmp_path, monkeypatch):
    workspace, result = titanic_run
    monkeypatch.setenv("AMLSTEP_WORKSPACE", str(workspace.path))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(snippet("readme-read-results").replace("RUN_ID", result.run_id), "README.md", "exec"), namespace)
    assert list(namespace["metrics"].columns) == [c.id for c in workspace.get_children(
        result.step("AutoML_Classification").run_id)]
    assert hasattr(namespace["model"], "predict_proba")


def test_readme_predict_by_hand_snippet_gives_what_predict_gives(titanic_run, titanic_test_csv, tmp_path,
                                                                  monkeypatch):
    """The README's documented way to prepare new rows by hand: the registered model's learned state (issue 26)."""
    import shutil

    from framework import get_plugin_manager
    from framework.commands.predict import predict

    workspace, _ = titanic_run
    monkeypatch.setenv("AMLSTEP_WORKSPACE", str(workspace.path))
    monkeypatch.chdir(tmp_path)
    shutil.copy(titanic_test_csv, tmp_path / "titanic_test.csv")
    namespace: dict = {}
    exec(compile(snippet("readme-predict-by-hand"), "README.md", "exec"), namespace)
    expected = predict(workspace, get_plugin_manager(), "TitanicSurvivalInitial", titanic_test_csv)
    assert namespace["proba"][:, 1].tolist() == pytest.approx(expected.frame["proba_1"].tolist(), abs=1e-6)  # 6 places


def test_readme_step_plugin_and_pipeline_snippets(tmp_path, monkeypatch):
    import types

    from framework import get_plugin_manager

    module = types.ModuleType("my_steps")
    exec(compile(snippet("readme-my-steps"), "README.md:my_steps.py", "exec"), module.__dict__)
    namespace: dict = {}
    exec(compile(snippet("readme-pipeline"), "README.md:pipeline", "exec"), namespace)
    validated = namespace["pipeline"].validate(get_plugin_manager(plugins=[module]))
    assert [s.name for s in validated.steps] == ["clean", "train", "register_model"]


@pytest.fixture
def run_with_a_canceled_child(workspace):
    """An AutoML run whose second child was canceled at the deadline: no metrics (issue 26)."""
    parent = workspace.create_run(run_type="automl", name="AutoML_x", experiment="e", run_id="AutoML_x",
                                  status="Completed", properties={"primary_metric": "accuracy"})
    for i, status in enumerate(["Completed", "Canceled"]):
        child = workspace.create_run(run_type="child", name=f"child {i}", experiment="e", parent_id=parent.id,
                                     run_id=f"AutoML_x_{i}", status=status, display_name=f"child {i}",
                                     properties={"iteration": str(i), "score": "0.8" if i == 0 else "nan"})
        if status == "Completed":
            workspace.log_metrics(child.id, {"accuracy": 0.8})
    return parent


def test_emulator_snippet_reads_children_canceled_at_the_deadline(run_with_a_canceled_child, capsys):
    """docs/emulator.md indexed child.get_metrics()["accuracy"]: a KeyError for a child canceled at the deadline."""
    from emulator.api import AutoMLRun

    code = snippet("emulator-python-surface")
    loop = code[code.index("for child in run.get_children()"):].split("\nmetrics =", 1)[0]
    exec(compile(loop, "emulator.md", "exec"), {"run": AutoMLRun.from_id(run_with_a_canceled_child.id)})
    assert capsys.readouterr().out.splitlines() == ["child 0 Completed 0.8", "child 1 Canceled None"]


@pytest.mark.slow
def test_emulator_python_surface_snippet_runs(titanic_csv, tmp_path, monkeypatch):
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copyfile(titanic_csv, tmp_path / "titanic.csv")
    namespace: dict = {}
    exec(compile(snippet("emulator-python-surface"), "emulator.md", "exec"), namespace)
    assert namespace["run"].get_status() == "Completed"
    assert set(namespace["metrics"].columns) == {c.id for c in namespace["run"].get_children()}


# -- false or stale statements (issue 26) -------------------------------------------------------------
def test_no_page_says_forecasting_is_not_supported_offline():
    from emulator.task_types import task_names

    assert "forecasting" in task_names()
    for page in pages():
        assert "Forecasting is not supported offline" not in page.read_text(), page.name
    assert "Forecasting runs offline too" in (DOCS / "local-and-azure.md").read_text()


def test_readme_installs_the_macro_plugin_before_predicting_with_its_model():
    text = " ".join((DOCS.parent / "README.md").read_text().split())
    sentence = text[text.index("`amlstep predict MacroForecast macrodata.csv`"):][:400]
    assert "pip install -e examples/macro_forecast/amlstep-macro-forecast" in sentence


def test_readme_says_to_install_pytest_for_the_generated_tests():
    block = next(code for _, _, _, _, code in code_blocks() if "amlstep new-plugin dataprep_wine" in code)
    assert "pip install pytest && python -m pytest plugins/dataprep_wine/tests" in block


def test_an_edited_output_falls_back_to_another_intact_run_with_the_same_key(workspace):
    """local-and-azure.md said an edited output makes the step re-run; another intact run with its key is reused."""
    from framework import Pipeline, Step, get_plugin_manager, run_pipeline
    from tests.toy_steps import ToySteps

    text = " ".join((DOCS / "local-and-azure.md").read_text().split())
    assert "Another earlier run of the step with the same reuse key" in text
    plugins = get_plugin_manager(plugins=[ToySteps()])
    pipeline = Pipeline(experiment="edits", steps=[Step("make_table", outputs={"table": "t"})])
    first = run_pipeline(pipeline, workspace=workspace, plugins=plugins)
    second = run_pipeline(pipeline, workspace=workspace, plugins=plugins, reuse=False)
    edited = Path(second.step("make_table").outputs["table"])
    (edited / "t.csv" if edited.is_dir() else edited).write_text("x,y\n9,9\n")
    third = run_pipeline(pipeline, workspace=workspace, plugins=plugins)
    assert third.step("make_table").reused_from == first.step("make_table").run_id
