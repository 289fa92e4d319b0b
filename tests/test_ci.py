"""One command sets up and runs the tests: README.md gives it and .ci/run runs it, word for word."""

from __future__ import annotations

import re
import tomllib

from conftest import REPO


def _words(command: str) -> list[str]:
    return command.replace("\\\n", " ").split()


def readme_test_command() -> list[str]:
    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- not-run: [^>]*it is what \.ci/run runs -->\n```bash\n(.*?)```", readme, re.S)
    assert block, "README.md has no test command marked as what .ci/run runs"
    return _words(block.group(1))


def test_ci_runs_the_readmes_test_command():
    script = (REPO / ".ci" / "run").read_text()
    command = script.split("# The test command README.md gives.\n", 1)[1]
    assert _words(command) == readme_test_command()


def test_the_test_command_installs_what_it_uses():
    """Whatever the command asks of pytest (-n: pytest-xdist) is in the extras it installs, pinned in constraints.txt."""
    command = readme_test_command()
    extras = re.search(r"\.\[([\w,]+)\]", " ".join(command)).group(1).split(",")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    wanted = {re.split(r"[<>=\[;]", r)[0].strip().lower() for extra in extras for r in project[extra]}
    if "-n" in command:
        assert "pytest-xdist" in wanted
    pinned = {line.split("==")[0].lower() for line in (REPO / "constraints.txt").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    assert sorted(wanted - pinned - {"setuptools"}) == []  # pip freeze leaves setuptools out
