"""``amlstep workspace check [--repair]`` and what every other command says about a damaged workspace."""

import json
import os
import shutil
import sqlite3

import pytest
from click.testing import CliRunner

from framework import LocalWorkspace, Pipeline, Step, WorkspaceError, run_pipeline
from framework.cli import make_cli
from framework.workspace.check import check_workspace
from tests.framework.commands.conftest import cli_with_commands


@pytest.fixture
def filled(workspace, toy_plugins, tmp_path):
    """A workspace with two pipeline runs (two model versions) and a registered dataset."""
    for _ in range(2):
        result = run_pipeline(Pipeline([Step("make_table", allow_reuse=False), Step("fit", inputs={"table": "table"}),
                                        Step("register_model", inputs={"model": "model"}, params={"model_name": "Toy"})],
                                       outputs={"model": "model"}), workspace=workspace, plugins=toy_plugins)
        assert result.status == "Completed"
    source = tmp_path / "numbers.csv"
    source.write_text("x,y\n1,2\n3,4\n")
    workspace.register_dataset("numbers", [str(source)])
    return workspace


def check(path, *args):
    result = CliRunner().invoke(cli_with_commands(), ["--workspace", str(path), "workspace", "check", *args])
    return result


def one_line(path, *args):
    """What an ordinary command prints on the workspace: exit code and stderr."""
    result = CliRunner().invoke(make_cli(), ["--workspace", str(path), *args])
    return result.exit_code, result.stderr


def test_a_sound_workspace_passes(filled):
    result = check(filled.path)
    assert result.exit_code == 0, result.output
    assert "run history: ok (integrity check passed" in result.stdout
    assert "everything is in order" in result.stdout
    report = json.loads(check(filled.path, "--json").stdout)
    assert report["ok"] and report["checked"]["model versions"] == 2 and report["checked"]["step outputs"] == 3


def test_changed_or_missing_files_are_found(filled):
    output = next(r for r in filled.list_runs(run_type="step") if r.name == "fit").outputs["model"]
    (filled.path / output["path"] / "model.pkl").write_bytes(b"")
    (filled.get_model("Toy", 1).path / "model.pkl").write_bytes(b"tampered")
    shutil.rmtree(filled.get_dataset("numbers").path)
    result = check(filled.path)
    assert result.exit_code == 1
    assert "output 'model' of step run" in result.stdout and "changed after it was written" in result.stdout
    assert "model Toy:1 changed after it was registered" in result.stdout
    assert "dataset numbers:1 is registered but its folder is missing" in result.stdout
    assert "3 problem(s)" in result.stderr
    repaired = check(filled.path, "--repair")
    assert repaired.exit_code == 1, "changed files cannot be repaired and must not be hidden"


def test_orphans_gaps_dead_runs_and_staging_are_repaired(filled):
    conn = sqlite3.connect(filled.db_path)
    conn.execute("DELETE FROM models WHERE version=1")  # the row is lost; the folder is there
    conn.execute("UPDATE runs SET status='Running', lease='999-deadbeef0000', pid=999999999 "
                 "WHERE run_type='pipeline' AND rowid=1")
    conn.commit()
    conn.close()
    stray = filled.path / "datastore" / "azureml" / "not-a-known-run"
    (stray / "table").mkdir(parents=True)
    (stray / "table" / "table.csv").write_text("x\n1\n")
    half = filled.path / ".staging" / "999-deadbeef0000.0123"
    half.mkdir()
    found = check_workspace(filled.path)
    assert sorted(f.kind for f in found.findings) == ["orphan", "orphan", "run", "staging", "versions"]
    report = check(filled.path, "--repair")
    assert report.exit_code == 0, report.output
    assert "repaired 5 problem(s)" in report.stdout
    assert LocalWorkspace(filled.path).get_model("Toy", 1).description.startswith("recovered by")
    assert not stray.exists() and any((filled.path / "lost+found").iterdir())
    assert not half.exists()
    assert check(filled.path).exit_code == 0


def damage(db, how):
    if how == "truncated":
        os.truncate(db, db.stat().st_size // 2)
    elif how == "garbage in the middle":
        with open(db, "r+b") as f:
            f.seek(db.stat().st_size // 2)
            f.write(b"\xa5" * 9000)
    elif how == "garbage header":
        with open(db, "r+b") as f:
            f.write(b"\x5a" * 100)
    elif how == "empty":
        os.truncate(db, 0)
    elif how == "missing":
        db.unlink()


@pytest.mark.parametrize("how, says", [
    ("truncated", "is damaged (SQLite: database disk image is malformed)"),
    ("garbage in the middle", "is damaged (SQLite: database disk image is malformed)"),
    ("garbage header", "is damaged (SQLite: file is not a database)"),
    ("empty", "but its run history amlstep.db is empty (0 bytes)"),
    ("missing", "but its run history amlstep.db is missing"),
])
@pytest.mark.slow
def test_a_damaged_history_is_one_line_everywhere_and_repair_rebuilds_the_registries(filled, how, says):
    models_before = {(m.name, m.version, m.sha256) for m in filled.list_models()}
    dataset_before = filled.get_dataset("numbers").sha256
    path, db = filled.path, filled.db_path
    damage(db, how)
    for command in (["runs", "list"], ["models", "list"], ["datasets", "list"]):
        code, stderr = one_line(path, *command)
        if how == "garbage in the middle" and code == 0:
            continue  # SQLite reads what the damage did not reach
        assert code == 2 and stderr.startswith("Error: ") and stderr.count("\n") == 1, stderr
        assert says in stderr, stderr
    assert check(path).exit_code == 1
    repaired = check(path, "--repair")
    assert repaired.exit_code == 0, repaired.output
    workspace = LocalWorkspace(path)
    assert {(m.name, m.version, m.sha256) for m in workspace.list_models()} == models_before
    assert workspace.get_dataset("numbers").sha256 == dataset_before
    if how in ("garbage header", "garbage in the middle"):
        assert len(workspace.list_runs()) == 2, "the runs SQLite could read were kept"
    assert check(path).exit_code == 0
    if how not in ("empty", "missing"):
        assert list(path.glob("amlstep.db.damaged-*")), "the damaged file is kept aside"


def test_registration_never_deletes_a_folder_the_history_does_not_know(filled, tmp_path):
    unknown = filled.path / "models" / "Toy" / "3"
    unknown.mkdir()
    (unknown / "precious.pkl").write_bytes(b"not recorded, but someone's")
    model = tmp_path / "m.pkl"
    model.write_bytes(b"new")
    assert filled.register_model("Toy", model).version == 3
    kept = [p for p in (filled.path / "lost+found").iterdir() if p.name.startswith("models_Toy_3.")]
    assert len(kept) == 1 and (kept[0] / "precious.pkl").read_bytes() == b"not recorded, but someone's"


def test_nothing_to_check_in_an_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    result = check(tmp_path / "empty")
    assert result.exit_code == 0 and "none (an empty workspace)" in result.stdout


def test_checking_a_path_that_is_not_a_workspace(tmp_path):
    result = check(tmp_path / "nowhere")
    assert result.exit_code == 2
    assert result.stderr == f"Error: workspace {tmp_path / 'nowhere'} does not exist or is not a directory\n"


def test_repair_does_not_need_the_workspace_to_open(filled):
    damage(filled.db_path, "garbage header")
    with pytest.raises(WorkspaceError, match="is damaged"):
        LocalWorkspace(filled.path)
    assert check_workspace(filled.path, repair=True).ok
