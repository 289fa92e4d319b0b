"""The task interface: one object per AutoML task, chosen by name, holding what differs between tasks."""

import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emulator import settings as S
from emulator.task_types import Task, all_tasks, get_task, task_names

EMULATOR = Path(__file__).resolve().parents[2] / "emulator"


def test_tasks_are_chosen_by_name_one_instance_each():
    assert task_names()[:2] == ("classification", "regression")
    for name in task_names():
        task = get_task(name)
        assert isinstance(task, Task) and task.name == name and get_task(name) is task
        assert pickle.loads(pickle.dumps(task)) is task  # FoldData carries tasks to worker processes
    with pytest.raises(KeyError, match=re.escape("unknown AutoML task 'clustering'; valid tasks: classification, "
                                                 "regression, forecasting")):
        get_task("clustering")


@pytest.mark.parametrize("task", all_tasks(), ids=lambda t: t.name)
def test_each_task_is_consistent(task):
    assert task.default_primary_metric in task.primary_metrics
    assert set(task.primary_metrics) <= set(task.metrics)
    assert set(task.leader_metrics) <= set(task.metrics)
    assert len(set(task.models)) == len(task.models)
    portfolio = [algorithm for _, algorithm, _ in task.warm_start]
    assert portfolio and set(portfolio) <= set(task.models)
    assert S.PRIMARY_METRICS[task.name] == task.primary_metrics and S.MODELS[task.name] == task.models
    required = {"time_column_name": "t"} if "time_column_name" in task.extra_settings else {}
    assert S.validate_settings({"task": task.name, "label_column_name": "y", **required})["primary_metric"] == \
        task.default_primary_metric


@pytest.mark.parametrize("name", ["classification", "regression", "forecasting"])
def test_every_azure_model_name_makes_an_estimator(name):
    task = get_task(name)
    for algorithm in [m for m in task.models if m not in ("Naive", "SeasonalNaive", "Average", "SeasonalAverage",
                                                          "ExponentialSmoothing", "AutoArima", "Arimax", "Prophet")]:
        estimator = task.make_estimator(algorithm, {}, seed=0)
        assert hasattr(estimator, "fit") and hasattr(estimator, "predict"), algorithm


def test_tasks_differ_where_azure_differs():
    classification, regression = get_task("classification"), get_task("regression")
    y = np.array([0] * 8 + [1] * 3)
    assert classification.stratify(y, 3) and not classification.stratify(y, 4)
    assert not regression.stratify(y, 2)
    values, classes = classification.encode_labels("y", pd.Series([1.0, 0.0, 1.0]))
    assert values.dtype.kind == "i" and list(classes) == [0, 1]
    values, classes = regression.encode_labels("y", pd.Series(["1.5", "2"]))
    assert classes is None and list(values) == [1.5, 2.0]
    assert regression.label_range(np.array([3.0, 1.0, 9.0]), 2) == (1.0, 3.0)
    assert classification.label_range(np.array([3, 1]), 2) == (0.0, 1.0)
    assert classification.report_predict_method == "predict_proba" and regression.report_predict_method == "predict"


def test_the_engine_and_the_worker_code_compare_no_task_names():
    """What differs between tasks lives in emulator/task_types/, not in string comparisons elsewhere."""
    pattern = re.compile(r"""task\s*[!=]=|[!=]=\s*["'](classification|regression|forecasting)["']""")
    offenders = []
    for path in EMULATOR.glob("*.py"):
        if path.name in ("fake_azure.py", "settings.py"):
            continue
        offenders += [f"{path.name}:{n}" for n, line in enumerate(path.read_text().splitlines(), 1)
                      if pattern.search(line)]
    assert offenders == []


def test_settings_and_task_objects_load_without_numpy():
    """Nor does ``amlstep --help`` import the forecasting library (statsmodels)."""
    code = ("import sys, emulator.settings, emulator.step, emulator.task_types as T; [T.get_task(n) for n in "
            "T.task_names()]\nfrom framework.cli import main\nsys.argv = ['amlstep', '--help']\ntry: main()\n"
            "except SystemExit: pass\n"
            "print([m for m in ('numpy', 'pandas', 'sklearn', 'statsmodels') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"



def test_many_classes_make_the_first_boosted_children_take_fewer_larger_steps():
    from types import SimpleNamespace

    task = get_task("classification")
    binary = task.portfolio(SimpleNamespace(classes=np.array([0, 1])))
    nine = task.portfolio(SimpleNamespace(classes=np.arange(9)))
    assert binary == task.warm_start and [c[:2] for c in nine] == [c[:2] for c in binary]
    first = nine[0][2]
    assert first["n_estimators"] == 50 and first["learning_rate"] == pytest.approx(0.2)  # 200 x 0.05 -> 50 x 0.2
    assert nine[1] == binary[1]  # logistic regression is unchanged
    assert get_task("regression").portfolio(None) == get_task("regression").warm_start


def test_labels_mixing_numbers_and_their_text_are_one_set_of_classes():
    values, classes = get_task("classification").encode_labels("label", pd.Series([0, "0", 1, "1", 1], dtype=object))
    assert list(classes) == ["0", "1"] and list(values) == ["0", "0", "1", "1", "1"]
    _, classes = get_task("classification").encode_labels("label", pd.Series(["no", "yes", "no"]))
    assert list(classes) == ["no", "yes"]
