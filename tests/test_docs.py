"""Docs self-checks (like datasette's tests/test_docs.py): the docs say what the code does."""

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
    compile(example.group(1), f"hooks.md:{hook}", "exec")


def guide_files() -> dict[str, str]:
    """The blocks of plugin-guide.md whose first line names a file: ``# path``."""
    text = (DOCS / "plugin-guide.md").read_text()
    files = {}
    for block in re.findall(r"```(?:python|toml)\n(.*?)```", text, flags=re.S):
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

    block = next(b for b in re.findall(r"```python\n(.*?)```", (DOCS / "plugin-guide.md").read_text(), flags=re.S)
                 if "dataprep_fill" in b)
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
def pages() -> list[Path]:
    return [*sorted(DOCS.glob("*.md")), DOCS.parent / "README.md"]


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
