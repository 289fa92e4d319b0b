"""Downloading pipeline outputs: a failed copy never costs the earlier one; odd targets give one line."""

import errno
import os
import shutil

import pytest
from click.testing import CliRunner

from framework import Pipeline, Step, run_pipeline
from framework.cli import make_cli


@pytest.fixture
def produced(workspace, toy_plugins):
    result = run_pipeline(Pipeline([Step("make_table"), Step("fit", inputs={"table": "table"})],
                                   outputs={"model": "model"}), workspace=workspace, plugins=toy_plugins)
    assert result.status == "Completed"
    return workspace, result.run_id


def download(workspace, *args):
    return CliRunner().invoke(make_cli(), ["--workspace", str(workspace.path), "download", *args])


def test_overwrite_keeps_the_old_copy_when_the_new_one_fails(produced, tmp_path, monkeypatch):
    workspace, run_id = produced
    first = download(workspace, run_id, "model", str(tmp_path))
    assert first.exit_code == 0, first.output
    kept = tmp_path / first.stdout.strip()
    before = kept.read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(shutil, "copytree", full)
    again = download(workspace, run_id, "model", str(tmp_path), "--overwrite")
    assert again.exit_code == 2
    assert again.stderr == f"Error: cannot download output 'model' into {tmp_path}: no space left on the device holding {tmp_path}\n"
    assert kept.read_bytes() == before, "the earlier download must survive a failed overwrite"
    assert [p.name for p in kept.parent.parent.iterdir()] == ["model"], "no partial copy left behind"


def test_overwrite_replaces_a_file_in_the_way(produced, tmp_path):
    workspace, run_id = produced
    step = next(r for r in workspace.get_children(run_id) if r.name == "fit")
    blocking = tmp_path / "azureml" / step.id / "model"
    blocking.parent.mkdir(parents=True)
    blocking.write_text("a file where the folder goes")
    refused = download(workspace, run_id, "model", str(tmp_path))
    assert refused.exit_code == 2 and "already exists; pass --overwrite to replace it" in refused.stderr
    replaced = download(workspace, run_id, "model", str(tmp_path), "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert blocking.is_dir() and (blocking / "model.pkl").is_file()
