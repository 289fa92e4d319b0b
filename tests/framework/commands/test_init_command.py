"""``amlstep init DIR --example NAME``: the repository's examples, written where an installed user wants them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from framework import get_plugin_manager
from framework.commands.init import example_files, examples, init_example
from tests.framework.commands.conftest import cli_with_commands

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = ("macro_forecast", "penguins", "titanic")


def test_the_examples_are_the_repository_folders():
    assert examples() == {name: REPO / "examples" / name for name in EXAMPLES}  # an editable install: the checkout


@pytest.mark.parametrize("example", EXAMPLES)
def test_writes_the_example_as_it_is_in_the_repository(tmp_path, example):
    target, files = init_example(tmp_path / "project", example)
    source = REPO / "examples" / example
    tracked = subprocess.run(["git", "ls-files", "--", "."], cwd=source, capture_output=True, text=True).stdout.split()
    if tracked:  # a git checkout: exactly the tracked files of the shipped kinds (.py, .toml, .md)
        assert sorted(f.as_posix() for f in files) == sorted(t for t in tracked if t.endswith((".py", ".toml", ".md")))
    assert {"pipeline.py", "test_pipeline.py", "README.md"} <= {f.as_posix() for f in files}
    for relative in files:
        expected = (source / relative).read_text().replace(f"examples/{example}", target.as_posix())
        assert (target / relative).read_text() == expected, relative


def test_the_plugin_examples_ship_their_distribution_and_its_test(tmp_path):
    target, files = init_example(tmp_path / "p", "penguins")
    assert (target / "amlstep-penguins" / "pyproject.toml").is_file()
    assert (target / "amlstep-penguins" / "tests" / "test_amlstep_penguins.py").is_file()
    assert not [f for f in files if "egg-info" in f.as_posix() or "__pycache__" in f.as_posix()]


@pytest.mark.parametrize("example", ["titanic", "penguins"])
def test_the_written_project_passes_its_own_tests(tmp_path, example):
    target, _ = init_example(tmp_path / "project", example)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(target)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def test_the_command_says_what_to_do_next_and_refuses_what_it_cannot_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = cli_with_commands(get_plugin_manager())
    done = CliRunner().invoke(cli, ["init", "proj", "--example", "penguins"])
    assert done.exit_code == 0, done.output
    assert "pip install proj/amlstep-penguins" in done.output
    assert "amlstep run proj" in done.output and "pip install pytest && python -m pytest proj" in done.output
    again = CliRunner().invoke(cli, ["init", "proj"])
    assert again.exit_code == 2 and "proj already exists and is not empty; choose a new folder" in again.output
    typo = CliRunner().invoke(cli, ["init", "other", "-e", "penguin"])
    assert typo.exit_code == 2
    assert "unknown example 'penguin' (did you mean 'penguins'?); examples: macro_forecast, penguins, titanic" in typo.output
    titanic = CliRunner().invoke(cli, ["init", "t"])
    assert "datasets register titanic_ds path/to/titanic.csv" in titanic.output
    assert example_files(tmp_path / "t") == [Path("README.md"), Path("pipeline.py"), Path("test_pipeline.py")]
