"""MLTable files as SDK v2 jobs read them: read_delimited's header modes."""

import pytest

from framework.backends.azure import mltable


def _table(folder, header):
    (folder / "a.csv").write_text("x,y\n1,2\n")
    (folder / "b.csv").write_text("3,4\n" if header == "from_first_file" else "x,y\n3,4\n")
    (folder / "MLTable").write_text(
        f"type: mltable\npaths:\n- file: ./a.csv\n- file: ./b.csv\n"
        f"transformations:\n- read_delimited:\n    delimiter: ','\n    header: {header}\n")
    return mltable.read(folder, "training data")


@pytest.mark.parametrize("header", ["all_files_same_headers", "all_files_different_headers", "from_first_file"])
def test_header_modes_give_every_row_once(tmp_path, header):
    frame = _table(tmp_path, header)
    assert list(frame.columns) == ["x", "y"]
    assert frame.to_dict("list") == {"x": [1, 3], "y": [2, 4]}


def test_no_header_keeps_the_first_row_as_data(tmp_path):
    frame = _table(tmp_path, "no_header")
    assert len(frame) == 4 and list(frame.columns) == [0, 1]
