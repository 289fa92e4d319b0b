"""framework.io's file writing: a file a command writes is the old one or the complete new one."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from framework.errors import AmlStepError
from framework.io import special_file, write_atomically


def test_a_symbolic_link_is_followed_and_stays(tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    write_atomically(link, lambda f: f.write("new\n"), "the rows")
    assert link.is_symlink() and real.read_text() == "new\n"


def test_a_new_file_gets_what_the_umask_allows(tmp_path):
    previous = os.umask(0o027)
    try:
        write_atomically(tmp_path / "sub" / "new.csv", lambda f: f.write("a\n"), "the rows")
    finally:
        os.umask(previous)
    assert (tmp_path / "sub" / "new.csv").stat().st_mode & 0o777 == 0o640


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(AmlStepError, match=re.escape(f"cannot write the rows to {tmp_path}: it is a folder")):
        write_atomically(tmp_path, lambda f: f.write("a\n"), "the rows")


def test_an_error_while_writing_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "rows.csv"

    def fails(f):
        f.write("half")
        raise ValueError("the writer failed")

    with pytest.raises(ValueError, match="the writer failed"):
        write_atomically(target, fails, "the rows")
    assert list(tmp_path.iterdir()) == []


def test_special_files_are_named(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert (special_file(fifo), special_file(Path("/dev/null")), special_file(tmp_path),
            special_file(tmp_path / "missing")) == ("a named pipe (FIFO)", "a device", None, None)
