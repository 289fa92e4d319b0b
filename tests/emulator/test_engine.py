"""The AutoML loop: Azure's validation and early-stopping rules, real timeouts, ensembles."""

import re
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from emulator import AutoMLConfig, Experiment
from emulator.engine import (AutoMLDataError, AutoMLTimeoutError, ChildResult, _early_stop, _Loop, candidates,
                             guardrails, make_splits, prepare_data, run_automl, short_error)
from emulator.featurize import AutoFeaturizer
from emulator.settings import validate_settings

SETTINGS = validate_settings({"task": "classification", "label_column_name": "y", "primary_metric": "accuracy"})


def children(scores):
    return [ChildResult(i, f"r_{i}", "MaxAbsScaler", "LightGBM", {}, score=s) for i, s in enumerate(scores)]


def test_early_stopping_never_in_the_first_20_then_a_10_iteration_window():
    flat_after_5 = [0.5] * 5 + [0.6] + [0.6] * 13
    assert not _early_stop(SETTINGS, children(flat_after_5), "accuracy")  # 19 iterations
    assert _early_stop(SETTINGS, children(flat_after_5 + [0.6] * 6), "accuracy")
    improving = [0.5] * 20 + [0.7]
    assert not _early_stop(SETTINGS, children(improving), "accuracy")
    assert not _early_stop({**SETTINGS, "enable_early_stopping": False}, children([0.5] * 40), "accuracy")


@pytest.mark.parametrize("rows, folds, kind", [(999, 10, "MeanCrossValidation"), (1000, 3, "MeanCrossValidation"),
                                               (19999, 3, "MeanCrossValidation"), (20000, 1, "TrainValidateTest")])
def test_automatic_cross_validation_rule(rows, folds, kind):
    y = np.arange(rows) % 2
    splits, training_type = make_splits(SETTINGS, y, rows, rows, None)
    assert (len(splits), training_type) == (folds, kind)
    if kind == "TrainValidateTest":
        assert len(splits[0][1]) == rows // 10


def test_custom_cv_split_columns():
    columns = pd.DataFrame({"f1": [1, 1, 0, 0], "f2": [0, 0, 1, 1]})
    splits, kind = make_splits(SETTINGS, np.array([0, 1, 0, 1]), 4, 4, columns)
    assert kind == "MeanCrossValidation" and [list(v) for _, v in splits] == [[2, 3], [0, 1]]


def test_portfolio_opens_like_azure_and_respects_allowed_models():
    first = next(candidates(SETTINGS))
    assert first[:2] == ("MaxAbsScaler", "LightGBM")
    allowed = validate_settings({**{"task": "classification", "label_column_name": "y"},
                                 "allowed_models": ["RandomForest"]})
    gen = candidates(allowed)
    assert {next(gen)[1] for _ in range(10)} == {"RandomForest"}


def test_a_child_past_iteration_timeout_is_stopped_and_recorded(workspace, monkeypatch):
    """A child that hangs is stopped with its worker process at iteration_timeout_minutes, and recorded as failed."""
    from emulator.engine import GuardedRunner

    real = GuardedRunner.__call__

    def hang(self, target, kwargs, timeout, count_startup=True):  # every child sleeps far past its 0.6 s
        if target.endswith(":cross_validate"):
            target, kwargs = "emulator.tasks:sleep", {"seconds": 120}
        return real(self, target, kwargs, timeout, count_startup)

    monkeypatch.setattr(GuardedRunner, "__call__", hang)
    frame = pd.DataFrame({"x": np.arange(60.0), "y": np.arange(60) % 2})
    config = AutoMLConfig(task="classification", training_data=frame, label_column_name="y", iterations=2,
                          iteration_timeout_minutes=0.01, n_cross_validations=3)
    message = ("no child run completed within iteration_timeout_minutes=0.01 (2 started, each stopped by the "
               "iteration timeout); raise iteration_timeout_minutes")
    with pytest.raises(AutoMLTimeoutError, match=re.escape(message)):
        Experiment(workspace, "hang").submit(config)
    run = workspace.list_runs(run_type="automl", experiment="hang")[0]
    kids = workspace.get_children(run.id)
    assert len(kids) == 2 and all(k.status == "Failed" and "worker process was stopped" in k.error for k in kids)


def _small(task="classification", rows=150):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(rows, 4)), columns=["a", "b", "c", "d"])
    signal = frame["a"] + 0.5 * frame["b"] + rng.normal(scale=0.5, size=rows)
    frame["y"] = (signal > 0).astype(int) if task == "classification" else signal
    return frame


def _scripted_run(script, budget=60.0, task="classification", concurrency=1, model_bytes=0, **settings):
    from tests.emulator.fakes import FakeClock, ScriptedRunner

    clock, runners, lines = FakeClock(), [], []
    fast = ["LightGBM", "LogisticRegression" if task == "classification" else "ElasticNet"]
    settings = validate_settings({"task": task, "label_column_name": "y", "experiment_timeout_minutes": budget / 60,
                                  "n_cross_validations": 3, "max_concurrent_iterations": concurrency,
                                  "allowed_models": fast, **settings})  # the families that fit 150 rows fastest
    result = run_automl(settings, _small(task), clock=clock, runner=ScriptedRunner.factory(clock, script, runners, model_bytes),
                        log=lines.append)
    return result, runners[0], lines


@pytest.mark.parametrize("name, script", [
    ("quick children", lambda kind, algorithm: 8.0 if kind == "cv" else 3.0),
    ("slow models", lambda kind, algorithm: 3.0 if kind == "cv" else 9.0),
    ("a first child that takes most of the budget", lambda kind, algorithm: (50.0 if algorithm == "LightGBM" else 4.0)
     / (1.0 if kind == "cv" else 2.0)),
    ("children that each take a third", lambda kind, algorithm: 20.0 if kind == "cv" else 8.0),
    ("a slow family", lambda kind, algorithm: (30.0 if algorithm == "LogisticRegression" else 3.0) * (
        1.0 if kind == "cv" else 0.6)),
])
@pytest.mark.slow
def test_the_experiment_ends_within_its_budget_ensembles_and_models_included(name, script):
    """Whatever the children take, the whole experiment (children, their models, ensembles, the final model) ends
    within experiment_timeout_minutes; a child still running at the deadline is canceled (fake clock)."""
    result, runner, lines = _scripted_run(script, budget=60.0)
    assert result.duration <= 60.0, (name, result.duration, runner.calls)
    assert "experiment timeout" in result.stop_reason
    kinds = {c.status for c in result.children}
    assert kinds <= {"Completed", "Canceled"}, kinds
    assert not any("No child has its model" in line for line in lines)
    # the final model was made during the search or within what was left: never refitted past the end
    assert all(timeout is None or timeout <= 60.0 for _, _, timeout, _ in runner.calls)


@pytest.mark.slow
def test_the_best_children_get_their_models_during_the_search():
    """Like Azure's child runs, the best children end with their model (fitted on every row) while the search goes
    on, so the final model needs no refit after the deadline."""
    result, runner, _ = _scripted_run(lambda kind, algorithm: 5.0 if kind == "cv" else 1.0, budget=30.0)
    refits = [c for c in runner.calls if c[0] == "refit"]
    assert refits and refits[0][1] == ["LightGBM"]  # the first child's model right after its cross-validation
    members = result.loop.members_of(result.best)
    assert all(m.model is not None for m in members)
    assert len(refits) <= 3 * len([c for c in result.children if c.status == "Completed"])


def test_with_validation_data_each_childs_model_is_its_fold_model_not_fitted_again():
    """Azure trains on training_data and validates on validation_data: the one fold's pipeline is the child's model,
    so no child is fitted a second time on the same rows (fake clock)."""
    from tests.emulator.fakes import FakeClock, ScriptedRunner

    clock, runners = FakeClock(), []
    frame = _small("regression", rows=200)
    settings = validate_settings({"task": "regression", "label_column_name": "y", "experiment_timeout_minutes": 1,
                                  "allowed_models": ["LightGBM", "ElasticNet"]})
    result = run_automl(settings, frame.iloc[:150], frame.iloc[150:], clock=clock,
                        runner=ScriptedRunner.factory(clock, lambda kind, algorithm: 2.0, runners), log=lambda _: None)
    calls = runners[0].calls
    assert [c for c in calls if c[0] == "refit"] == [], calls
    fold = result.loop.fold
    (_, valid), = fold.splits
    for member in result.loop.members_of(result.best):
        predicted = fold.kind.predict(member.model, fold.X[valid], fold)
        assert np.allclose(predicted, member.oof[valid])


@pytest.mark.slow
def test_saving_the_final_model_counts_in_the_budget():
    """Large models (a forest on many rows weighs hundreds of MB) take seconds to pickle and write after the search:
    the run keeps that time back, from the sizes its models had coming from the workers (fake clock)."""
    from emulator.engine import SAVE_BYTES_PER_SECOND

    def script(kind, algorithm):
        return 5.0 if kind == "cv" else 1.0

    light, _, _ = _scripted_run(script, budget=60.0)
    heavy, _, _ = _scripted_run(script, budget=60.0, model_bytes=int(4 * SAVE_BYTES_PER_SECOND))  # 4 s each
    members = heavy.loop.members_of(heavy.best)
    saving = sum(m.model_bytes for m in members) / SAVE_BYTES_PER_SECOND
    assert all(m.model_bytes == int(4 * SAVE_BYTES_PER_SECOND) for m in members) and saving >= 4.0
    assert heavy.duration + saving <= 60.0, (heavy.duration, saving)
    assert light.duration > heavy.duration  # the light run's search went on into the time the heavy one kept


@pytest.mark.slow
def test_a_stack_ensemble_out_of_time_is_canceled_after_the_voting_ensembles_models_are_made(monkeypatch):
    """The StackEnsemble's members are the VotingEnsemble's: their models are made first, so a stack canceled at the
    experiment timeout (its meta-learner too slow) leaves the VotingEnsemble able to be the final model."""
    from emulator import ensemble as E

    made_before_stack = []

    def slow_stack(fold, oofs, train_percentage=0.2, out_of_time=None):
        made_before_stack.extend(m.model is not None for m in voting_members())
        raise E.OutOfTime("its meta-learner takes 9.0 s per fold")

    monkeypatch.setattr(E, "stack_oof", slow_stack)
    state = {}

    def voting_members():
        loop = state["loop"]
        voting = next(c for c in loop.children if c.algorithm == "VotingEnsemble")
        return loop.members_of(voting)

    import emulator.engine as engine

    original = engine._Loop.run_ensembles

    def run_ensembles(self):
        state["loop"] = self
        for child in self.children:  # as if no model had been made during the search
            child.model = None
        return original(self)

    monkeypatch.setattr(engine._Loop, "run_ensembles", run_ensembles)
    result, _, lines = _scripted_run(lambda kind, algorithm: 5.0 if kind == "cv" else 1.0, budget=60.0,
                                     iterations=8)  # 6 children, then the ensembles with half the budget left
    stack = next(c for c in result.children if c.algorithm == "StackEnsemble")
    assert stack.status == "Canceled" and stack.error.startswith("experiment timeout reached: its meta-learner")
    assert made_before_stack and all(made_before_stack)
    assert any("StackEnsemble" in line and "Canceled: experiment timeout reached" in line for line in lines)


def test_a_run_whose_budget_leaves_no_model_made_refits_its_best_child_and_says_so():
    """The one case past the budget: no child's model could be made in time (a model takes far longer than its
    cross-validation said here); the run refits its best child rather than fail, and the log says so."""
    result, runner, lines = _scripted_run(lambda kind, algorithm: 25.0 if kind == "cv" else 40.0, budget=60.0)
    assert any("No child has its model: refitting iteration 0" in line for line in lines)
    assert result.best.model is not None and result.duration > 60.0


@pytest.mark.slow
def test_ensembles_count_within_iterations_and_weights_are_multiples_of_one_kth(workspace, titanic_csv):
    frame = pd.read_csv(titanic_csv)
    config = AutoMLConfig(task="classification", training_data=frame, label_column_name="Survived", iterations=5,
                          n_cross_validations=3, enable_stack_ensemble=False)
    run = Experiment(workspace, "ens").submit(config)
    kids = run.get_children()
    assert [k.properties["run_algorithm"] for k in kids][-1] == "VotingEnsemble" and len(kids) == 5
    import json

    spec = json.loads(kids[-1].properties["pipeline_spec"])["params"]
    weights = np.array(spec["ensemble_weights"])
    assert weights.sum() == pytest.approx(1.0, abs=1e-4)


@pytest.mark.slow
def test_children_go_wherever_the_joblib_backend_sends_them(workspace, titanic_csv):
    """Under loky (as under Dask or Ray) each task is pickled to another process, which drives its own worker."""
    from joblib import parallel_config

    frame = pd.read_csv(titanic_csv)
    config = AutoMLConfig(task="classification", training_data=frame, label_column_name="Survived", iterations=4,
                          n_cross_validations=3, max_concurrent_iterations=2)
    with parallel_config(backend="loky"):
        run = Experiment(workspace, "loky").submit(config)
    assert [c.status for c in run.get_children()] == ["Completed"] * 4


class NoChildren:
    """A recorder that fails the test if any child run starts."""

    def child_run(self, name, **kwargs):
        raise AssertionError(f"child run {name!r} started; the error should come before any child trains")


def test_no_child_within_the_experiment_timeout_is_a_timeout_error_not_a_data_error():
    """Children that would run past the budget are canceled: a timeout error naming the setting (fake clock)."""
    from tests.emulator.fakes import FakeClock, ScriptedRunner

    clock, lines = FakeClock(), []
    settings = validate_settings({"task": "classification", "label_column_name": "y", "allowed_models": ["SVM"],
                                  "experiment_timeout_minutes": 0.1, "n_cross_validations": 3})
    with pytest.raises(AutoMLTimeoutError) as caught:
        run_automl(settings, _small(), log=lines.append, clock=clock,
                   runner=ScriptedRunner.factory(clock, lambda kind, algorithm: 600.0))
    assert not isinstance(caught.value, AutoMLDataError)
    assert str(caught.value) == ("no child run completed within experiment_timeout_minutes=0.1 (1 started, stopped by "
                                 "the timeout); raise experiment_timeout_minutes")
    assert any("Stopping: experiment timeout of 0.1 minutes reached" in line for line in lines)
    assert clock() - 1000.0 <= 6.0


def _loop(children, stop_reason="", **settings):
    return SimpleNamespace(children=children, stop_reason=stop_reason, budget=30.0, started=100.0, clock=lambda: 103.0,
                           settings={"iteration_timeout_minutes": 1.0, "experiment_timeout_minutes": 0.5, **settings})


def test_failed_children_are_summarized_by_their_first_line():
    kids = [ChildResult(i, f"r_{i}", "MaxAbsScaler", "LightGBM", {}, status="Failed",
                        error="ValueError: Input X contains infinity\nTraceback (most recent call last):\n  File x")
            for i in range(5)]
    error = _Loop.no_child_error(_loop(kids))
    assert type(error) is AutoMLDataError
    assert str(error) == ("no child run completed (MaxAbsScaler, LightGBM: ValueError: Input X contains infinity; "
                          "MaxAbsScaler, LightGBM: ValueError: Input X contains infinity; MaxAbsScaler, LightGBM: "
                          "ValueError: Input X contains infinity; 2 more failed)")
    assert "Traceback" not in str(error)
    assert short_error("a\nb") == "a" and short_error("x" * 400).endswith("...")
    nothing = _Loop.no_child_error(_loop([], "experiment timeout of 0.5 minutes reached"))
    assert isinstance(nothing, AutoMLTimeoutError)
    assert str(nothing) == ("no child run started within experiment_timeout_minutes=0.5 (preparing and featurizing the "
                            "data took 3 s); raise experiment_timeout_minutes")


def test_worker_errors_keep_the_traceback_apart_from_the_message():
    from emulator.worker import run_guarded

    outcome = run_guarded("none", None, "emulator.tasks:no_such_task", {}, timeout=60)
    assert outcome.error == "AttributeError: module 'emulator.tasks' has no attribute 'no_such_task'"
    assert outcome.traceback.startswith("Traceback (most recent call last):")


def test_infinite_labels_are_rejected_before_any_child_runs():
    frame = pd.DataFrame({"x": np.arange(30.0), "target": np.arange(30.0)})
    frame.loc[[4, 17], "target"] = [np.inf, -np.inf]
    settings = validate_settings({"task": "regression", "label_column_name": "target"})
    message = ("label column 'target' has 2 infinite values (rows 4, 17); remove them or replace them with NaN "
               "(exclude_nan_labels drops NaN labels)")
    with pytest.raises(AutoMLDataError, match=re.escape(message)):
        prepare_data(settings, frame, None)
    with pytest.raises(AutoMLDataError, match=re.escape(message)):
        run_automl(settings, frame, recorder=NoChildren(), log=lambda line: None)
    classification = validate_settings({"task": "classification", "label_column_name": "target"})
    with pytest.raises(AutoMLDataError, match=re.escape("in the validation data (row 1)")):
        prepare_data(classification, frame.iloc[:3].assign(target=[0, 1, 0]),
                     frame.iloc[:3].assign(target=[0.0, np.inf, 1.0]))


def test_too_few_rows_for_the_folds_are_rejected_before_any_child_runs():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    message = ("training data has 3 rows; 10-fold cross-validation (Azure's automatic rule below 1,000 rows) needs "
               "at least 10; give more rows or set n_cross_validations (at most 3)")
    with pytest.raises(AutoMLDataError, match=re.escape(message)):
        run_automl(SETTINGS, frame, recorder=NoChildren(), log=lambda line: None)
    given = validate_settings({"task": "regression", "label_column_name": "y", "n_cross_validations": 5})
    frame = pd.DataFrame({"x": np.arange(6.0), "y": [1.0, np.nan, 2.0, np.nan, 3.0, 4.0]})
    message = ("training data has 4 rows after dropping 2 with a missing label; 5-fold cross-validation "
               "(n_cross_validations=5) needs at least 5; give more rows or lower n_cross_validations to at most 4")
    with pytest.raises(AutoMLDataError, match=re.escape(message)):
        prepare_data(given, frame, None)


def test_classes_smaller_than_the_folds_still_fall_back_to_unstratified_folds():
    y = np.array([0] * 10 + [1] * 2)
    splits, kind = make_splits({**SETTINGS, "n_cross_validations": 3}, y, 12, 12, None)
    assert kind == "MeanCrossValidation" and len(splits) == 3


def test_infinite_feature_values_are_imputed_and_reported_by_the_guardrail():
    frame = pd.DataFrame({"mean radius": np.linspace(1, 2, 40), "y": [0, 1] * 20})
    frame.loc[[3, 7], "mean radius"] = [np.inf, -np.inf]
    data = prepare_data(SETTINGS, frame, None)
    featurizer = AutoFeaturizer("auto").fit(data.X, data.y)
    assert np.isfinite(featurizer.transform(data.X)).all()
    check = guardrails(SETTINGS, data, featurizer)[0]
    assert check["status"] == "Done" and check["columns"] == ["mean radius"]
    assert check["description"].endswith("Infinite values were treated as missing: mean radius (2).")


def test_infinite_feature_values_with_featurization_off_are_rejected_before_any_child_runs():
    frame = pd.DataFrame({"mean radius": np.linspace(1, 2, 40), "y": [0, 1] * 20})
    frame.loc[[3, 7], "mean radius"] = [np.inf, -np.inf]
    settings = validate_settings({"task": "classification", "label_column_name": "y", "featurization": "off"})
    with pytest.raises(AutoMLDataError, match=re.escape(
            "feature column 'mean radius' has 2 infinite values (rows 3, 7); with featurization='off' the models get "
            "the values as they are and cannot use infinity: replace them with NaN or a finite number, or use "
            "featurization='auto', which treats them as missing values")):
        run_automl(settings, frame, recorder=NoChildren(), log=lambda line: None)


def test_the_budget_counts_from_the_start_of_the_experiment(titanic_csv):
    """Time spent before the search (importing the estimators, reading the data) is part of the budget."""
    from emulator.engine import AutoMLTimeoutError, run_automl
    from emulator.settings import validate_settings

    settings = validate_settings({"task": "classification", "label_column_name": "Survived",
                                  "experiment_timeout_minutes": 0.05, "n_cross_validations": 3}, "test")
    frame = pd.read_csv(titanic_csv)
    with pytest.raises(AutoMLTimeoutError, match=re.escape(
            "no child run started within experiment_timeout_minutes=0.05 (preparing and featurizing the data took")):
        run_automl(settings, frame, started=time.monotonic() - 3.0)  # the 3 s budget was spent before the search began



def test_no_child_is_started_that_would_be_cancelled_at_the_deadline():
    from emulator.tasks import FoldData
    from tests.emulator.fakes import FakeClock

    index = np.arange(30)
    splits = [(np.setdiff1d(index, part), part) for part in np.array_split(index, 3)]
    fold = FoldData("classification", np.zeros((30, 2)), np.arange(30) % 2, None, splits, index, np.array([0, 1]),
                    0.0, 1.0, 0)
    settings = validate_settings({"task": "classification", "label_column_name": "y", "experiment_timeout_minutes": 0.5,
                                  "enable_early_stopping": False})

    def loop(child_seconds):
        clock = FakeClock(1010.0)  # 10 s into a 30 s budget
        state = _Loop(settings, fold, "k", 1000.0, 30.0, None, 1, None, "AutoML", print, "MeanCrossValidation",
                      concurrency=2, clock=clock)
        state.ensembles = []
        state.children = [ChildResult(i, f"r_{i}", "MaxAbsScaler", "LightGBM", {}, score=0.8, fit_time=s, model="fitted")
                          for i, s in enumerate(child_seconds)]
        return state

    slow = loop([12.0, 14.0])  # about 16 s to the deadline, and children take 13 s... then 18 s do not fit
    assert not slow.should_stop()
    slower = loop([18.0, 19.0])
    assert slower.should_stop()
    assert slower.stop_reason == "experiment timeout of 0.5 minutes reached (no further child would finish in time)"
    assert not loop([2.0, 3.0]).should_stop()
    assert not loop([19.0]).should_stop()  # one child says too little


def test_an_ensemble_whose_member_models_cannot_be_made_in_time_gives_way_to_the_best_child_with_its_model():
    from sklearn.dummy import DummyClassifier
    from sklearn.pipeline import Pipeline

    from emulator.tasks import FoldData
    from emulator.worker import TaskOutcome
    from tests.emulator.fakes import FakeClock

    index = np.arange(30)
    splits = [(np.setdiff1d(index, part), part) for part in np.array_split(index, 3)]
    fold = FoldData("classification", np.zeros((30, 2)), np.arange(30) % 2, None, splits, index, np.array([0, 1]),
                    0.0, 1.0, 0)
    settings = validate_settings({"task": "classification", "label_column_name": "y", "experiment_timeout_minutes": 0.5})
    lines = []
    clock = FakeClock(1025.0)  # 5 s left of 30
    state = _Loop(settings, fold, "k", 1000.0, 30.0, None, 1, None, "AutoML", lines.append, "MeanCrossValidation",
                  concurrency=2, clock=clock)
    oof = np.full((30, 2), 0.5)
    fitted = Pipeline([("MaxAbsScaler", None), ("LightGBM", DummyClassifier())])
    fast = ChildResult(0, "r_0", "MaxAbsScaler", "LogisticRegression", {}, score=0.85, fit_time=1.0, oof=oof)
    strong = ChildResult(1, "r_1", "MaxAbsScaler", "LightGBM", {}, score=0.92, fit_time=9.0, oof=oof, model=fitted)
    slower = ChildResult(2, "r_2", "MaxAbsScaler", "XGBoostClassifier", {}, score=0.91, fit_time=12.0, oof=oof)
    voting = ChildResult(3, "r_3", "", "VotingEnsemble", {}, score=0.93, members=[(1, 0.5), (2, 0.5)])
    state.children, state.best = [fast, strong, slower, voting], voting
    refits = []

    def refit(members, timeout):
        refits.append(([m.iteration for m in members], timeout))
        return TaskOutcome(False, error="stopped after 4.0 s", timed_out=True)

    state.refit = refit
    model = state.final_model(AutoFeaturizer())
    # XGBoost's model would take 12 / 3 / (20/30) * 1.3 = 7.8 s: it is not even tried in the 4 s left
    assert refits == [] and state.best is strong and model.steps[-1][1] is fitted.steps[-1][1]
    assert "The model of VotingEnsemble was not made (4.0 s left of the budget; it needs about 6.0 s)" in lines
    assert lines[-1] == "Using iteration 1 MaxAbsScaler, LightGBM, the best child with its model"
    clock.now = 1000.0  # with time enough, the missing member's model is made and the ensemble kept
    state.children, state.best, slower.model = [fast, strong, slower, voting], voting, None
    state.refit = lambda members, timeout: TaskOutcome(True, value=[fitted])
    model = state.final_model(AutoFeaturizer())
    assert state.best is voting and slower.model is fitted


def test_a_queued_childs_time_limit_is_read_when_it_starts_not_when_it_was_queued():
    """A child waiting in joblib's queue for a free worker gets what is left of the budget when it starts."""
    from emulator.engine import Deadline, _child_task
    from emulator.worker import TaskOutcome
    from tests.emulator.fakes import FakeClock

    clock = FakeClock(1000.0)
    deadline = Deadline.of(1010.0, clock)  # queued with 10 s left
    clock.advance(8.0)  # ... and started 8 s later
    seen = []

    def runner(target, kwargs, timeout, count_startup=True):
        seen.append(timeout)
        return TaskOutcome(False, timed_out=True, error="stopped")

    _child_task(runner, {"preprocessor": "MaxAbsScaler", "algorithm": "LightGBM", "params": {}}, 1, deadline, None)
    assert seen == [2.0]
    clock.advance(5.0)
    outcome, which = _child_task(runner, {"preprocessor": "", "algorithm": "LightGBM", "params": {}}, 1, deadline, None)
    assert not outcome.ok and outcome.timed_out and which == "experiment" and seen == [2.0]  # never started


def test_validation_data_must_hold_the_training_columns_and_classes():
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"a": rng.normal(size=80), "k": rng.integers(0, 3, 80)})
    frame["label"] = np.where(frame["a"] > 0, "yes", "no")
    settings = validate_settings({"task": "classification", "label_column_name": "label"})
    with pytest.raises(AutoMLDataError, match=re.escape(
            "the validation data lacks column(s) 'k': validation_data must hold the training data's columns ('a', "
            "'k', 'label')")):
        prepare_data(settings, frame, frame.drop(columns=["k"]))
    with pytest.raises(AutoMLDataError, match=re.escape(
            "the validation data has column(s) 'z' the training data does not")):
        prepare_data(settings, frame, frame.assign(z=1))
    unseen = frame.head(10).assign(label=["maybe"] * 3 + ["yes"] * 7)
    with pytest.raises(AutoMLDataError, match=re.escape(
            "label column 'label': the validation data holds class(es) 'maybe' that the training data does not")):
        prepare_data(settings, frame, unseen)
    assert len(prepare_data(settings, frame, frame.head(20)[["label", "k", "a"]]).splits) == 1
