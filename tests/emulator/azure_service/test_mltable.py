"""MLTable folders as the fake's AutoML jobs read them: the MLTable YAML schema, not what amlstep happens to write."""

from __future__ import annotations

import re

import pytest

from emulator.azure_service import mltable


def table(folder, text, **files):
    for name, content in files.items():
        path = folder / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    (folder / "MLTable").write_text(text)
    return folder


@pytest.mark.parametrize("header", ["all_files_same_headers", "all_files_different_headers", "from_first_file"])
def test_header_modes_give_every_row_once(tmp_path, header):
    second = "3,4\n" if header == "from_first_file" else "x,y\n3,4\n"
    table(tmp_path, f"paths:\n- file: ./a.csv\n- file: b.csv\ntransformations:\n- read_delimited:\n"
                    f"    delimiter: ','\n    header: {header}\n", **{"a.csv": "x,y\n1,2\n", "b.csv": second})
    frame = mltable.read(tmp_path)
    assert frame.to_dict("list") == {"x": [1, 3], "y": [2, 4]}


def test_no_header_reads_every_row_as_data_in_columns_named_by_position(tmp_path):
    table(tmp_path, "paths:\n- file: ./a.csv\ntransformations:\n- read_delimited:\n    header: no_header\n",
          **{"a.csv": "x,y\n1,2\n"})
    assert mltable.read(tmp_path).to_dict("list") == {"Column1": ["x", "1"], "Column2": ["y", "2"]}


def test_folders_patterns_path_column_and_row_and_column_steps(tmp_path):
    table(tmp_path, "type: mltable\npaths:\n- pattern: ./parts/*.csv\n- folder: ./more\ntransformations:\n"
                    "- read_delimited:\n    delimiter: ';'\n    include_path_column: true\n- drop_columns: [z]\n"
                    "- skip: 1\n- take: 2\n",
          **{"parts__1.csv": "x;y;z\n1;a;0\n2;b;0\n", "parts__2.csv": "x;y;z\n3;c;0\n", "parts__notes.txt": "no",
             "more__4.csv": "x;y;z\n4;d;0\n"})
    frame = mltable.read(tmp_path)
    assert list(frame.columns) == ["x", "y", "Path"] and frame["x"].tolist() == [2, 3]
    assert frame["Path"].tolist()[1].endswith("parts/2.csv")
    kept = table(tmp_path / "k", "paths:\n- file: ./a.csv\ntransformations:\n- read_delimited: {}\n- keep_columns: [y]\n",
                 **{"a.csv": "x,y\n1,2\n"})
    assert mltable.read(kept).to_dict("list") == {"y": [2]}


def test_encodings_empty_values_and_types_as_the_schema_names_them(tmp_path):
    table(tmp_path, "paths:\n- file: ./a.csv\ntransformations:\n- read_delimited:\n    encoding: latin1\n"
                    "    empty_as_string: true\n    infer_column_types: false\n",
          **{"a.csv": "name,n\nJos\xe9,1\n,2\n".encode("latin-1")})
    assert mltable.read(tmp_path).to_dict("list") == {"name": ["José", ""], "n": ["1", "2"]}


def test_json_lines_and_parquet(tmp_path):
    import pandas as pd

    table(tmp_path / "j", "paths:\n- file: ./rows.jsonl\ntransformations:\n- read_json_lines:\n    invalid_lines: drop\n",
          **{"rows.jsonl": '{"x": 1}\nnot json\n{"x": 2}\n'})
    assert mltable.read(tmp_path / "j").to_dict("list") == {"x": [1, 2]}
    with pytest.raises(mltable.MLTableError, match="cannot read json lines"):
        mltable.read(table(tmp_path / "e", "paths:\n- file: ./rows.jsonl\ntransformations:\n- read_json_lines: {}\n",
                           **{"rows.jsonl": '{"x": 1}\nnot json\n'}))
    (tmp_path / "p").mkdir()
    pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}).to_parquet(tmp_path / "p" / "t.parquet")
    table(tmp_path / "p", "paths:\n- pattern: ./*.parquet\ntransformations:\n- read_parquet: {}\n")
    assert mltable.read(tmp_path / "p").to_dict("list") == {"x": [1, 2], "y": ["a", "b"]}


@pytest.mark.parametrize("text, message", [
    ("paths: []\ntransformations:\n- read_delimited: {}\n", "paths lists no file, folder or pattern"),
    ("paths:\n- file: ./a.csv\n", "no transformations; the first must read the files (one of read_delimited, "
                                  "read_parquet, read_json_lines)"),
    ("paths:\n- file: ./a.csv\ntransformations:\n- take: 1\n", "the first transformation must read the files"),
    ("paths:\n- file: ./a.csv\ntransformations:\n- read_delimited: {}\n- filter: 'col(\"x\") > 1'\n",
     "the fake service does not apply the MLTable transformation 'filter'"),
    ("paths:\n- file: ./a.csv\ntransformations:\n- read_delimited:\n    header: first_row\n",
     "header 'first_row' is not one of all_files_same_headers"),
    ("paths:\n- file: ./b.csv\ntransformations:\n- read_delimited: {}\n", "file ./b.csv does not exist"),
    ("paths:\n- file: azureml://datastores/workspaceblobstore/paths/a.csv\ntransformations:\n- read_delimited: {}\n",
     "the fake service reads file paths on the job's own storage (relative to the MLTable file) or http(s) files, "
     "got azureml://datastores/workspaceblobstore/paths/a.csv"),
    ("paths:\n- file: ./a.csv\ntransformations:\n- read_delimited: {}\n- keep_columns: [z]\n",
     "keep_columns names column(s) the table does not have: z; columns: x, y"),
])
def test_what_it_cannot_read_is_an_error_naming_the_file_and_the_reason(tmp_path, text, message):
    table(tmp_path, text, **{"a.csv": "x,y\n1,2\n"})
    with pytest.raises(mltable.MLTableError, match=re.escape(f"{tmp_path / 'MLTable'}: {message}")):
        mltable.read(tmp_path)
