"""Several processes share one workspace: every run completes, ids are distinct, versions gap-free."""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

from framework import LocalWorkspace

PIPELINE = """
from framework import Pipeline, Step

pipeline = Pipeline(
    [Step("make_table"), Step("sleepy", inputs={"table": "table"}, params={"seconds": 0.2}),
     Step("fit", inputs={"table": "doubled"}), Step("register_model", inputs={"model": "model"},
                                                   params={"model_name": "Shared"})],
    experiment="together",
)
"""

REGISTER = """
import sys
from framework import LocalWorkspace
ws = LocalWorkspace(sys.argv[1])
for i in range(int(sys.argv[3])):
    ws.register_model("Raced", sys.argv[2], run_id=f"{sys.argv[4]}-{i}")
"""


def test_concurrent_pipelines_all_complete_with_gap_free_model_versions(toy_env, tmp_path):
    (tmp_path / "together.py").write_text(PIPELINE)
    ws = tmp_path / "ws"
    n = 5

    def run(_):
        done = subprocess.run([sys.executable, "-m", "framework.cli", "--workspace", str(ws), "run",
                               str(tmp_path / "together.py"), "--json", "--no-reuse"],
                              env=toy_env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(run, range(n)))
    assert all(r["status"] == "Completed" for r in results)
    assert len({r["run_id"] for r in results}) == n
    workspace = LocalWorkspace(ws)
    models = workspace.list_models()
    assert sorted(m.version for m in models) == list(range(1, n + 1))
    assert sorted(m.run_id for m in models) == sorted(r["run_id"] for r in results)
    assert all(r.status == "Completed" for r in workspace.list_runs(run_type=None))


def test_model_registrations_race_without_gaps_or_duplicates(tmp_path):
    model = tmp_path / "model.pkl"
    model.write_bytes(b"model")
    ws = tmp_path / "ws"
    LocalWorkspace(ws)
    processes = [subprocess.Popen([sys.executable, "-c", REGISTER, str(ws), str(model), "10", f"p{i}"])
                 for i in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in processes)
    versions = [m.version for m in LocalWorkspace(ws).list_models()]
    assert versions == list(range(1, 41))


@pytest.mark.slow
def test_same_dataset_registered_at_once_makes_one_version(tmp_path):
    source = tmp_path / "d.csv"
    pd.DataFrame({"x": range(100)}).to_csv(source, index=False)
    ws = tmp_path / "ws"
    LocalWorkspace(ws)
    code = ("import sys; from framework import LocalWorkspace; "
            "print(LocalWorkspace(sys.argv[1]).register_dataset('d', [sys.argv[2]])[0].version)")
    processes = [subprocess.Popen([sys.executable, "-c", code, str(ws), str(source)], stdout=subprocess.PIPE, text=True)
                 for _ in range(4)]
    outputs = [p.communicate(timeout=120)[0].strip() for p in processes]
    assert outputs == ["1"] * 4
    assert [d.version for d in LocalWorkspace(ws).list_datasets()] == [1]
