"""``amlstep init DIR --example NAME``: write a runnable example project into a folder.

The examples are the repository's ``examples/`` folders (``titanic``, ``penguins``,
``macro_forecast``). A wheel ships them as ``framework/_examples`` (setup.py maps the folder, no
copy in the source tree); a source checkout (an editable install) reads ``examples/`` itself. So a
user who installed amlstep with pip, not from a clone, gets the same projects: the pipeline, its
test, and for the plugin examples the plugin's own distribution, installable as it is.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import click

from ..errors import AmlStepError, did_you_mean
from ..hookspecs import hookimpl

SHIPPED = (".py", ".toml", ".md")  # what the wheel ships of each example (setup.py / pyproject package-data)
SKIPPED = ("__pycache__", "build", "dist", ".pytest_cache")


def examples_root() -> Path:
    """Where the examples are: ``framework/_examples`` in a wheel, ``examples/`` in a source checkout."""
    here = Path(__file__).resolve().parents[1]
    for root in (here / "_examples", here.parent / "examples"):
        if root.is_dir():
            return root
    raise AmlStepError(f"the amlstep examples are not installed (no {here / '_examples'}); reinstall amlstep")


def examples() -> dict[str, Path]:
    """Example name -> its folder (one with a pipeline.py)."""
    root = examples_root()
    return {p.name: p for p in sorted(root.iterdir()) if (p / "pipeline.py").is_file()}


def example_files(folder: Path) -> list[Path]:
    """The files of an example, relative to its folder: what a wheel ships of it."""
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if (path.is_file() and path.suffix in SHIPPED and not any(part in SKIPPED or part.endswith(".egg-info")
                                                                   for part in relative.parts)):
            found.append(relative)
    return found


def init_example(directory: str | Path, example: str = "titanic") -> tuple[Path, list[Path]]:
    """Write example ``example`` into ``directory`` (new or empty); return the folder and the files written."""
    known = examples()
    if example not in known:
        raise AmlStepError(f"unknown example {example!r}{did_you_mean(example, known)}; "
                           f"examples: {', '.join(known)}")
    target = Path(directory)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise AmlStepError(f"{target} already exists and is not empty; choose a new folder")
    source = known[example]
    files = example_files(source)
    for relative in files:
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if relative.suffix in (".md", ".py"):  # the commands in READMEs and docstrings name the new folder
            text = (source / relative).read_text(encoding="utf-8")
            path.write_text(text.replace(f"examples/{example}", target.as_posix()), encoding="utf-8")
        else:
            shutil.copyfile(source / relative, path)
    return target, files


def plugin_folders(target: Path, files: list[Path]) -> list[Path]:
    """The plugin distributions of an example (folders with a pyproject.toml)."""
    return [target / f.parent for f in files if f.name == "pyproject.toml"]


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--example", "-e", default="titanic", show_default=True, metavar="NAME",
              help="The example to write: titanic, penguins or macro_forecast.")
def init_command(directory: str, example: str) -> None:
    """Write a runnable example project into DIRECTORY.

    The pipeline, its test and, for the penguins and macro_forecast examples, the step plugin's own
    distribution (pip install it). DIRECTORY must be new or empty.
    """
    from .common import PROG, fail

    try:
        target, files = init_example(directory, example)
    except AmlStepError as exc:
        fail(str(exc))
        return
    click.echo(f"Wrote the {example} example into {target}/")
    for relative in files:
        click.echo(f"  {relative.as_posix()}")
    amlstep = PROG[0]
    click.echo("Next:")
    for plugin in plugin_folders(target, files):
        click.echo(f"  pip install {plugin}")
    if example == "titanic":
        click.echo(f"  {amlstep} datasets register titanic_ds path/to/titanic.csv   # offline; online the first run "
                   f"downloads the seed's CSVs")
    click.echo(f"  {amlstep} run {target}")
    click.echo(f"  pip install pytest && python -m pytest {target}")


@hookimpl
def register_commands(cli: Any) -> None:
    cli.add_command(init_command)
