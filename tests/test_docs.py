"""Docs self-checks (like datasette's tests/test_docs.py): the docs say what the code does."""

from __future__ import annotations

import inspect
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
    # the guide's plugin is importable but not installed: the Azure compile check skips, saying why (its code
    # cannot be shipped as a wheel); installed, it runs too
    assert "5 passed, 1 skipped" in done.stdout


def test_guide_pipeline_runs_with_the_plugin(guide_plugin, workspace, monkeypatch):
    from framework import get_plugin_manager, load_pipeline, run_pipeline

    monkeypatch.syspath_prepend(str(guide_plugin / "src"))
    import amlstep_dedupe

    plugins = get_plugin_manager(plugins=[amlstep_dedupe])
    data = guide_plugin / "my.csv"
    rows = [{"x": i * 0.5, "y": (i * 7) % 5, "label": int(i % 10 > 4)} for i in range(80)]
    pd.DataFrame(rows + rows[:20]).to_csv(data, index=False)
    workspace.register_dataset("my_ds", [str(data)])
    result = run_pipeline(load_pipeline(guide_plugin / "pipeline.py"), workspace=workspace, plugins=plugins)
    assert result.succeeded, result.error
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
