from pathlib import Path
from typing import Any

import pytest

from framework import LocalWorkspace, get_plugin_manager, run_pipeline

from tests.toy_steps import Recorder, ToySteps

# A test using one of these is slow (-m "not slow", the inner loop, leaves it out): it starts a fake Azure ML
# service, runs a whole pipeline with AutoML, installs into a venv or starts a process. Other slow tests say
# so with @pytest.mark.slow.
SLOW_FIXTURES = frozenset({
    "fake_azure", "fake_azure_v2", "_fake_azure_cache",      # a fake Azure ML service (and the wheels it ships)
    "titanic_run", "titanic_html", "sorted_fair_run",       # a whole pipeline run (or AutoML experiment) ...
    "fair_html", "terminal_run", "macro_run", "penguin_run", "automl_outputs",
    "guide_plugin", "fresh",                                # ... a plugin or amlstep built and installed
    "run", "fitted", "empty_store",                         # AutoML per test, models fitted, MLflow's migrations
    "toy_env", "installed_plugin",                          # a subprocess with a plugin installed
})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the slow tests: those using one of SLOW_FIXTURES."""
    for item in items:
        if set(getattr(item, "fixturenames", ())) & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def toy_plugins(recorder):
    """A fresh plugin manager: the installed plugins, the toy steps and a recording observer."""
    return get_plugin_manager(plugins=[ToySteps(), recorder])


@pytest.fixture
def toy_env(tmp_path):
    """Environment for a subprocess in which the toy steps are an installed plugin distribution."""
    import os
    import shutil
    from pathlib import Path

    site = tmp_path / "toy-site"
    site.mkdir()
    shutil.copy(Path(__file__).parent / "toy_steps.py", site / "amlstep_toys.py")
    info = site / "amlstep_toys-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: amlstep-toys\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[amlstep]\namlstep_toys = amlstep_toys\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="session")
def sorted_fair_run(tmp_path_factory):
    """(workspace, pipeline result) of an AutoML step on a real multi-class table sorted by one column.

    1,500 rows of statsmodels' ``fair`` table sorted by ``educ``, predicting ``occupation`` (6 classes),
    AUC_weighted, 3 folds, three base models and a StackEnsemble (which wins). Refitting that
    StackEnsemble on rows in file order used to give a report far from the leaderboard (AUC 0.44 for
    0.73): the data of issue 16, in small.
    """
    from statsmodels.datasets import fair

    from framework import AutoMLStep, Dataset, LocalWorkspace, Pipeline, run_pipeline

    frame = fair.load_pandas().data.sample(1500, random_state=0)
    frame["occupation"] = frame["occupation"].astype(int)
    frame = frame.sort_values("educ", kind="stable").reset_index(drop=True)
    root = tmp_path_factory.mktemp("sorted-fair")
    frame.to_csv(root / "fair_sorted.csv", index=False)
    workspace = LocalWorkspace(root / "workspace")
    workspace.register_dataset("fair_sorted", [str(root / "fair_sorted.csv")])
    pipeline = Pipeline(experiment="fair_sorted", steps=[
        AutoMLStep(name="AutoML", training_data=Dataset("fair_sorted"), task="classification",
                   label_column_name="occupation", primary_metric="AUC_weighted", iterations=4, n_cross_validations=3,
                   enable_voting_ensemble=False,
                   allowed_models=["XGBoostClassifier", "RandomForest", "ExtremeRandomTrees"])])
    result = run_pipeline(pipeline, workspace=workspace)
    assert result.succeeded, result.error
    return workspace, result


@pytest.fixture(scope="session")
def titanic_run(tmp_path_factory: pytest.TempPathFactory, titanic_csv: Path) -> tuple[LocalWorkspace, Any]:
    """(workspace, result) of one completed Titanic pipeline run with 3 AutoML iterations."""
    ws = LocalWorkspace(tmp_path_factory.mktemp("titanic-run-ws"))
    ws.register_dataset("titanic_ds", [str(titanic_csv)])
    result = run_pipeline(Path(__file__).resolve().parents[1] / "examples" / "titanic",
                          params={"iterations": "3", "experiment_timeout_minutes": "1"}, workspace=ws)
    assert result.succeeded, result.error
    return ws, result


@pytest.fixture(scope="session")
def titanic_html(titanic_run) -> str:
    """The ``amlstep report`` page of ``titanic_run``."""
    from framework.commands.report import build_report

    ws, result = titanic_run
    return build_report(ws, result.run_id)
