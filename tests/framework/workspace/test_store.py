import re
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from framework import LocalWorkspace, WorkspaceError
from framework.workspace.store import SCHEMA_VERSION, default_workspace_path


def csv(path, frame):
    frame.to_csv(path, index=False)
    return str(path)


def test_default_path_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AMLSTEP_WORKSPACE", str(tmp_path / "here"))
    assert default_workspace_path() == tmp_path / "here"
    monkeypatch.delenv("AMLSTEP_WORKSPACE")
    assert default_workspace_path().name == ".amlstep"


def test_sqlite_uses_wal_and_carries_a_schema_version(workspace):
    conn = sqlite3.connect(workspace.db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_dataset_versions_follow_content(workspace, tmp_path):
    first = csv(tmp_path / "a.csv", pd.DataFrame({"x": [1, 2]}))
    v1, created = workspace.register_dataset("numbers", [first])
    assert (v1.version, created) == (1, True)
    again, created = workspace.register_dataset("numbers", [first])
    assert (again.version, created) == (1, False)
    changed = csv(tmp_path / "a.csv", pd.DataFrame({"x": [1, 2, 3]}))
    v2, created = workspace.register_dataset("numbers", [changed])
    assert (v2.version, created) == (2, True)
    assert workspace.get_dataset("numbers").version == 2
    assert workspace.get_dataset("numbers", 1).file_paths()[0].read_text() == "x\n1\n2\n"
    assert [(d.name, d.version) for d in workspace.list_datasets()] == [("numbers", 1), ("numbers", 2)]


def test_several_files_make_one_dataset(workspace, tmp_path):
    a = csv(tmp_path / "a.csv", pd.DataFrame({"x": [1]}))
    (tmp_path / "b").mkdir()
    b = csv(tmp_path / "b" / "a.csv", pd.DataFrame({"x": [2]}))
    version, _ = workspace.register_dataset("two", [a, b])
    assert version.files == ["a.csv", "1_a.csv"]


def test_a_file_given_twice_is_refused_before_anything_is_written(workspace, tmp_path):
    a = csv(tmp_path / "a.csv", pd.DataFrame({"x": [1]}))
    with pytest.raises(WorkspaceError, match=re.escape(f"dataset 'two': {a} is given twice; give each file once")):
        workspace.register_dataset("two", [a, a])
    same = str(tmp_path / "b" / ".." / "a.csv")  # the same path once resolved
    with pytest.raises(WorkspaceError, match=re.escape(f"dataset 'two': {same} is given twice (first as {a})")):
        workspace.register_dataset("two", [a, same])
    url = "https://user:secret@example.invalid/a.csv"  # refused before any download
    with pytest.raises(WorkspaceError, match=re.escape(
            "dataset 'two': https://user:***@example.invalid/a.csv is given twice; give each file once")):
        workspace.register_dataset("two", [url, url])
    assert workspace.list_datasets() == [] and not (workspace.path / "datasets" / "two").exists()


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden", "a..b", "", "x" * 300, "a\\b"])
def test_names_never_escape_the_workspace(workspace, tmp_path, name):
    source = csv(tmp_path / "a.csv", pd.DataFrame({"x": [1]}))
    with pytest.raises(WorkspaceError, match=re.escape("name")):
        workspace.register_dataset(name, [source])
    with pytest.raises(WorkspaceError, match=re.escape("model name")):
        workspace.register_model(name, source)


@pytest.mark.parametrize("content, message", [
    ("", "numbers.csv is empty; expected a header row and data rows"),
    ("x,y\n", "numbers.csv has a header but no data rows"),
    ("x,x\n1,2\n", "numbers.csv has duplicate column names: 'x'"),
    ('x,y\n1,2\n3,4,5,6\n', "numbers.csv is not a valid CSV file"),
])
def test_bad_files_are_refused_with_the_reason(workspace, tmp_path, content, message):
    path = tmp_path / "numbers.csv"
    path.write_text(content)
    with pytest.raises(WorkspaceError, match=re.escape(f"dataset 'numbers' source '{path}': {message}")):
        workspace.register_dataset("numbers", [str(path)])
    assert workspace.list_datasets() == []


def test_missing_source(workspace, tmp_path):
    with pytest.raises(WorkspaceError, match=re.escape(f"dataset source '{tmp_path}/nope.csv' does not exist")):
        workspace.register_dataset("numbers", [str(tmp_path / "nope.csv")])


def test_model_versions_increase(workspace, tmp_path):
    model = tmp_path / "model.pkl"
    model.write_bytes(b"one")
    assert workspace.register_model("m", model, run_id="r1").version == 1
    model.write_bytes(b"two")
    second = workspace.register_model("m", model)
    assert second.version == 2
    assert (second.path / "model.pkl").read_bytes() == b"two"
    assert workspace.get_model("m", 1).run_id == "r1"
    with pytest.raises(WorkspaceError, match=re.escape("version 7 of model 'm' is not registered")):
        workspace.get_model("m", 7)


def test_unknown_run(workspace):
    with pytest.raises(WorkspaceError, match=re.escape("run 'nope' does not exist in workspace")):
        workspace.get_run("nope")


def test_run_lookup_by_unique_prefix(workspace):
    run = workspace.create_run(run_type="pipeline", name="p", experiment="e")
    assert workspace.get_run(run.id[:8]).id == run.id


def test_metrics_logged_twice_become_a_list(workspace):
    run = workspace.create_run(run_type="step", name="s", experiment="e")
    workspace.log_metric(run.id, "loss", 0.5)
    workspace.log_metric(run.id, "loss", 0.4)
    workspace.log_metric(run.id, "acc", 0.9)
    assert workspace.get_metrics(run.id) == {"acc": 0.9, "loss": [0.5, 0.4]}


def test_workspace_that_is_not_writable(tmp_path):
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.access(locked, os.W_OK):  # root ignores permissions: use a directory the kernel refuses to write
        locked = Path("/proc/self").resolve()
    with pytest.raises(WorkspaceError, match=re.escape(f"workspace directory {locked} is not writable")):
        LocalWorkspace(locked)


def test_workspace_path_that_cannot_be_created():
    with pytest.raises(WorkspaceError, match=re.escape("cannot create workspace directory /proc/amlstep-nowhere")):
        LocalWorkspace("/proc/amlstep-nowhere")


def test_newer_workspace_is_refused(workspace):
    conn = sqlite3.connect(workspace.db_path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(WorkspaceError, match=re.escape(
            f"was made by a newer amlstep (schema version {SCHEMA_VERSION + 1}; this amlstep understands up to "
            f"{SCHEMA_VERSION}); upgrade amlstep or use another workspace")):
        LocalWorkspace(workspace.path)


def test_older_workspace_is_migrated_and_keeps_its_records(tmp_path):
    from framework.workspace.store import _SCHEMA

    path = tmp_path / "old"
    path.mkdir()
    conn = sqlite3.connect(path / "amlstep.db")
    for statement in _SCHEMA:
        conn.execute(statement)
    conn.execute("INSERT INTO runs(id, experiment, run_type, name, status, backend, created_at) "
                 "VALUES ('old-run', 'e', 'pipeline', 'p', 'Completed', 'local', 1.0)")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    workspace = LocalWorkspace(path)
    run = workspace.get_run("old-run")
    assert (run.status, run.tags, run.process_start) == ("Completed", {}, None)
    conn = sqlite3.connect(path / "amlstep.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_staging_left_by_a_dead_process_is_cleaned(workspace):
    leftover = workspace.path / ".staging" / "999999999-123-abc"
    leftover.mkdir()
    (leftover / "half.csv").write_text("x\n1")
    mine = workspace.staging_dir()
    LocalWorkspace(workspace.path)
    assert not leftover.exists() and mine.exists()


# -- issue 24 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["deleted file", "deleted folder", "changed file"])
def test_registering_the_same_file_again_puts_back_a_deleted_dataset_file(workspace, tmp_path, damage):
    from click.testing import CliRunner

    from framework import Dataset, Pipeline, Step, get_plugin_manager, run_pipeline
    from framework.cli import make_cli
    from tests.toy_steps import ToySteps

    source = tmp_path / "table.csv"
    source.write_text("x,y\n1,0\n2,1\n")
    registered, _ = workspace.register_dataset("t", [str(source)])
    if damage == "deleted file":
        (registered.path / "table.csv").unlink()
    elif damage == "deleted folder":
        import shutil

        shutil.rmtree(registered.path)
    else:
        (registered.path / "table.csv").write_text("x,y\n9,9\n")
    pipeline = Pipeline([Step("double", inputs={"table": Dataset("t")})], experiment="restore")
    plugins = get_plugin_manager(plugins=[ToySteps()])
    if damage != "changed file":
        with pytest.raises(WorkspaceError, match=r"is missing from .* register the same file again to put it back \("):
            run_pipeline(pipeline, workspace=workspace, plugins=plugins)
    result = CliRunner().invoke(make_cli(plugins), ["--workspace", str(workspace.path), "datasets", "register", "t",
                                                    str(source)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ("Dataset t version 1 already has this content, but its files were missing or changed: put "
                             "them back; nothing new registered\n")
    assert (registered.path / "table.csv").read_text() == "x,y\n1,0\n2,1\n"
    assert [d.version for d in workspace.list_datasets()] == [1]
    assert run_pipeline(pipeline, workspace=workspace, plugins=plugins).status == "Completed"
    if damage == "changed file":
        kept = list((workspace.path / "lost+found").glob("datasets_t_1.*/table.csv"))
        assert [p.read_text() for p in kept] == ["x,y\n9,9\n"], "the changed file is set aside, not deleted"


@pytest.mark.parametrize("source_mode, umask, registered_mode", [(0o600, 0o022, 0o600), (0o644, 0o077, 0o600),
                                                                  (0o640, 0o022, 0o640), (0o644, 0o022, 0o644)])
def test_a_registered_file_keeps_its_permissions_or_the_umask_whichever_is_stricter(workspace, tmp_path, source_mode,
                                                                                   umask, registered_mode):
    import os

    source = tmp_path / "secret.csv"
    source.write_text("x,y\n1,2\n")
    os.chmod(source, source_mode)
    model = tmp_path / "model.pkl"
    model.write_bytes(b"model")
    os.chmod(model, source_mode)
    previous = os.umask(umask)
    try:
        dataset, _ = workspace.register_dataset("secret", [str(source)])
        registered = workspace.register_model("secret", model)
    finally:
        os.umask(previous)
    assert oct(os.stat(dataset.path / "secret.csv").st_mode & 0o777) == oct(registered_mode)
    assert oct(os.stat(registered.path / "model.pkl").st_mode & 0o777) == oct(registered_mode)
