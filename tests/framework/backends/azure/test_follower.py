"""The SDK-neutral follower, with a scripted session: no service, no SDK, an injected clock.

What passes (5xx, 429 with Retry-After, refused or reset connections, timeouts) is tried again with
backoff for the retry window, with one notice; what does not (401, 404) stops at once; a service away
longer than the window stops following and leaves the run Running locally, with when it was last
seen; an AutoML trial is read once.
"""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

import pytest

from framework import BackendError
from framework.backends.azure.backend import AzureBackendBase
from framework.backends.azure.follower import (LAST_SEEN, Follower, RetryPolicy, ServiceUnreachable, StepReport,
                                               StepRun, Trial, clock_text, retry_after, transient)
from framework.results import PipelineRunResult, StepRunResult


class Clock:
    """Time that passes only when someone waits: no test waits for an outage in real time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


class HttpError(Exception):
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"({status}) the service said no")
        self.status_code = status
        self.response = SimpleNamespace(status_code=status, headers=headers or {})


class Script:
    """A session whose answers are scripted: ``statuses`` in order (an exception is raised), then ``Completed``."""

    noun = "pipeline run"
    reused_what = "module and inputs"

    def __init__(self, statuses: list, trials: list[Trial] | None = None) -> None:
        self.statuses = list(statuses)
        self.all_trials = trials or []
        self.asked_trials: list[set[str]] = []
        self.calls = 0

    def service_error(self, doing, exc):
        return BackendError(f"Azure ML service error while {doing}: {exc}")

    def status(self, run):
        self.calls += 1
        answer = self.statuses.pop(0) if self.statuses else "Completed"
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def steps(self, run):
        return [StepRun("train", "azure-train", "Running", None, None)]

    def trials(self, step, known):
        self.asked_trials.append(set(known))
        return [t for t in self.all_trials if t.id not in known]

    def step_error(self, step):
        return "no"

    def log_tail(self, step):
        return None

    def report(self, step, log=True):
        return StepReport()

    def ended(self, run, status):
        return f"ended {status}"

    def times(self, target):
        return None, None

    def log(self, step):
        return None


@pytest.mark.parametrize("error, expected", [
    (HttpError(503), True), (HttpError(500), True), (HttpError(429), True), (HttpError(502), True),
    (HttpError(401), False), (HttpError(404), False), (HttpError(400), False),
    (ConnectionRefusedError("[Errno 111] Connection refused"), True), (ConnectionResetError(), True),
    (TimeoutError("timed out"), True),
    (RuntimeError("HTTPSConnectionPool: Max retries exceeded with url: /x (Caused by NewConnectionError)"), True),
    (RuntimeError("ServiceException: Code: 503 Message: The service is temporarily unavailable"), True),
    (RuntimeError("API request to endpoint /runs/get failed with error code 503 != 200"), True),
    (RuntimeError("Run 1234-503 was not found"), False), (KeyError("status"), False),
])
def test_what_passes_is_tried_again_and_what_does_not_is_not(error, expected):
    assert transient(error) is expected


def test_a_wrapped_connection_error_passes_and_retry_after_is_read():
    try:
        try:
            raise ConnectionResetError("Connection reset by peer")
        except ConnectionResetError as inner:
            raise RuntimeError("ClientRequestError: Error occurred in request") from inner
    except RuntimeError as outer:
        assert transient(outer)
    assert retry_after(HttpError(429, {"Retry-After": "7"})) == 7.0


def follower(workspace, session, clock, *, window=60.0, echo=None, pipeline=None):
    record = pipeline or workspace.create_run(run_type="pipeline", name="e", experiment="e", backend="azure",
                                              status="Running")
    step = workspace.create_run(run_type="step", name="train", experiment="e", parent_id=record.id, backend="azure",
                                properties={"kind": "automl"})
    policy = RetryPolicy(window=window, clock=clock.time, sleep=clock.sleep, wall=clock.time)
    return Follower(session, "run-handle", record.id, {}, {"train": step}, workspace, None, poll=1.0, retry=policy,
                    echo=echo, pipeline_record=record)


def test_an_outage_is_ridden_out_with_backoff_and_one_notice(workspace):
    clock, echo = Clock(), io.StringIO()
    outage = [HttpError(503), HttpError(503), ConnectionRefusedError(), HttpError(429, {"Retry-After": "9"})]
    following = follower(workspace, Script(["Running", *outage, "Running"]), clock, echo=echo)
    assert following.follow() == "Completed"
    notices = echo.getvalue().splitlines()
    assert len(notices) == 2 and following.outages == 1, notices
    assert re.fullmatch(r"amlstep: the Azure ML service did not answer while waiting for pipeline run \S+ \(HTTP 503: "
                        r".*\); retrying for up to 60 s", notices[0]), notices[0]
    assert notices[1] == "amlstep: the Azure ML service answers again (after 23 s)"
    # backoff 2, 4, 8, then the 9 s the service asked for; polls of 1 s in between
    assert [w for w in clock.waits if w != 1.0] == [2.0, 4.0, 8.0, 9.0]


def test_what_does_not_pass_stops_at_once(workspace):
    clock = Clock()
    with pytest.raises(BackendError, match=re.escape("Azure ML service error while waiting for pipeline run")):
        follower(workspace, Script(["Running", HttpError(401)]), clock).follow()
    assert clock.waits == [1.0]


def test_an_outage_longer_than_the_window_stops_following(workspace):
    clock = Clock()
    following = follower(workspace, Script(["Running"] + [HttpError(503)] * 50), clock, window=30.0)
    with pytest.raises(ServiceUnreachable) as stopped:
        following.follow()
    message = str(stopped.value)
    assert "did not answer for 30 s while waiting for pipeline run" in message
    assert message.endswith(f"Re-attach with `amlstep runs follow {following.run_id}`")
    assert stopped.value.last_seen == 1000.0  # the one answer, at the start


def followed_by_the_backend(workspace, clock, run_id, session):
    """(result, pipeline record) of the backend following ``session``'s run of one step ``train`` to its end."""
    backend = AzureBackendBase(workspace, retry=RetryPolicy(window=10.0, clock=clock.time, sleep=clock.sleep,
                                                            wall=clock.time), poll_seconds=1.0)
    record = workspace.create_run(run_type="pipeline", name="e", experiment="e", backend="azure", status="Running",
                                  run_id=run_id)
    step = workspace.create_run(run_type="step", name="train", experiment="e", parent_id=record.id, backend="azure")
    result = PipelineRunResult(run_id=record.id, experiment="e", status="Running", backend="azure",
                               steps=[StepRunResult("train", step.id, "NotStarted")])
    found = backend.follow_submitted(record, {"train": step}, session=session, run="h", bindings={}, events=None,
                                     download=None, result=result, started=0.0)
    return found, record


def test_the_backend_keeps_a_run_it_lost_running_with_when_it_was_last_seen(workspace):
    """Never Failed for a job that did not fail: the record stays Running; the result says the state is unknown."""
    found, record = followed_by_the_backend(workspace, Clock(), "azure-run-1",
                                            Script(["Running"] + [ConnectionResetError()] * 20))
    assert (found.status, found.details["state_unknown"]) == ("Running", True)
    assert found.error.endswith("Re-attach with `amlstep runs follow azure-run-1`")
    kept = workspace.get_run(record.id)
    assert kept.status == "Running" and kept.properties[LAST_SEEN] == 1000.0
    assert kept.properties["azure_following"].startswith("amlstep stopped following it: the Azure ML service did not "
                                                         "answer for 10 s")


def test_each_trial_is_read_once_and_recorded_as_a_local_child_run(workspace):
    trials = [Trial("train_0", "Completed", {"iteration": "0", "display_name": "MaxAbsScaler, LightGBM"},
                    {"AUC_weighted": 0.8}, started=1.0, ended=3.5),
              Trial("train_1", "Failed", {"iteration": "1"}, {}, error="boom")]
    session = Script(["Running", "Running", "Running"], trials)
    following = follower(workspace, session, Clock())
    assert following.follow() == "Completed"
    assert session.asked_trials == [set(), {"train_0", "train_1"}, {"train_0", "train_1"}, {"train_0", "train_1"}]
    step = following.records["train"]
    children = {c.id: c for c in workspace.get_children(step.id)}
    assert children["train_0"].display_name == "MaxAbsScaler, LightGBM" and children["train_0"].duration == 2.5
    assert workspace.get_metrics("train_0") == {"AUC_weighted": 0.8}
    assert (children["train_1"].status, children["train_1"].error) == ("Failed", "boom")
    # a follower re-attached later reads none of them again
    again = Script(["Completed"], trials)
    Follower(again, "h", following.run_id, {}, {"train": workspace.get_run(step.id)}, workspace, None, poll=1.0,
             retry=RetryPolicy(clock=Clock().time, sleep=Clock().sleep)).follow()
    assert again.asked_trials == [{"train_0", "train_1"}]


class CtrlC(Clock):
    """Ctrl-C in the wait between two polls, the ``after``-th one."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if len(self.waits) == self.after:
            raise KeyboardInterrupt


def test_ctrl_c_stops_following_and_leaves_the_run_running_not_canceled(workspace):
    """Ctrl-C stops the client only: the record stays Running, the result says how to re-attach (exit code 3)."""
    found, record = followed_by_the_backend(workspace, CtrlC(after=2), "azure-run-2", Script(["Running"] * 5))
    assert (found.status, found.details["state_unknown"]) == ("Running", True)
    assert found.error == ("interrupted (Ctrl-C): amlstep stopped following pipeline run azure-run-2. Ctrl-C stops "
                           "this client only, not the run: it was not canceled and, as far as amlstep knows, still "
                           f"runs on Azure (last seen {clock_text(1001.0)}; cancel it with `amlstep runs cancel "
                           "azure-run-2`). Re-attach with `amlstep runs follow azure-run-2`")
    assert [s.status for s in found.steps] == ["Running"]
    kept = workspace.get_run(record.id)
    assert kept.status == "Running" and kept.properties[LAST_SEEN] == 1001.0
    assert kept.properties["azure_following"].startswith("amlstep stopped following it: interrupted (Ctrl-C)")


class Steps(Script):
    """The step ``train`` listed as ``listed`` says, in order (the last one kept); its log and times as given."""

    def __init__(self, listed: list[StepRun], *, log=None, times=(None, None)) -> None:
        super().__init__(["Running"] * (len(listed) - 1))
        self.listed, self.log_answer, self.times_answer = list(listed), log, times
        self.asked: list[str] = []
        self.on_list = lambda: None

    def steps(self, run):
        self.on_list()
        return [self.listed.pop(0) if len(self.listed) > 1 else self.listed[0]]

    def log(self, step):
        self.asked.append("log")
        if isinstance(self.log_answer, BaseException):
            raise self.log_answer
        return self.log_answer

    def times(self, target):
        self.asked.append("times")
        if isinstance(self.times_answer, BaseException):
            raise self.times_answer
        return self.times_answer

    def report(self, step, log=True):
        self.asked.append(f"report(log={log})")
        return StepReport(log=self.log_answer if log and not isinstance(self.log_answer, BaseException) else None)


class Events:
    def __init__(self, session: Steps) -> None:
        self.session, self.said = session, []

    def started(self, binding, record_id):
        self.said.append("started")

    def finished(self, binding, record_id, result):
        self.said.append(("finished", list(self.session.asked)))

    def failed(self, binding, record_id, error):
        self.said.append(("failed", str(error)))


def following_one_step(workspace, session, clock, events=None):
    record = workspace.create_run(run_type="pipeline", name="e", experiment="e", backend="azure", status="Running")
    step = workspace.create_run(run_type="step", name="train", experiment="e", parent_id=record.id, backend="azure")
    binding = SimpleNamespace(name="train", spec=SimpleNamespace(kind="python"))
    policy = RetryPolicy(window=60.0, clock=clock.time, sleep=clock.sleep, wall=clock.time)
    return Follower(session, "h", record.id, {"train": binding}, {"train": step}, workspace, events, poll=1.0,
                    retry=policy, echo=io.StringIO(), pipeline_record=record)


def test_a_step_log_or_times_the_service_cannot_give_are_tried_once_not_for_the_outage_window(workspace):
    """--outage-timeout bounds following: a nicety that fails is read back later (log) or taken locally (times)."""
    clock = Clock()
    session = Steps([StepRun("train", "s1", "Running"), StepRun("train", "s1", "Completed")], log=HttpError(503),
                    times=HttpError(503))
    following = following_one_step(workspace, session, clock)
    assert following.follow() == "Completed"
    assert clock.waits == [1.0] and following.echo.getvalue() == "" and following.outages == 0
    assert session.asked == ["times", "log"]
    assert following.steps["train"]["duration"] is not None  # this process's clock


def test_a_canceled_step_is_said_canceled_not_failed(workspace):
    session = Steps([StepRun("train", "s1", "Running"), StepRun("train", "s1", "Canceled", started=5.0, ended=9.0)])
    following = following_one_step(workspace, session, Clock())
    assert following.follow() == "Completed"
    assert following.steps["train"]["error"] == "step 'train' was canceled on Azure"
    assert workspace.get_run(following.records["train"].id).error == "step 'train' was canceled on Azure"


def test_without_the_service_times_a_step_duration_is_this_process_clock_only(workspace, monkeypatch):
    """The service's start (another clock) is shown while it runs, never mixed with local time in a duration."""
    import framework.backends.azure.follower as module

    now = [2000.0]
    monkeypatch.setattr(module.time, "time", lambda: now[0])
    session = Steps([StepRun("train", "s1", "Running", started=500.0), StepRun("train", "s1", "Completed")])
    following = following_one_step(workspace, session, Clock())

    def later():
        now[0] += 30.0
    session.on_list = later
    assert following.follow() == "Completed"
    step = workspace.get_run(following.records["train"].id)
    assert following.steps["train"]["duration"] == 30.0
    assert (step.started_at, step.ended_at) == (2030.0, 2060.0)


def test_the_end_of_a_step_is_announced_before_its_log_is_read_and_the_log_is_read_once(workspace):
    session = Steps([StepRun("train", "s1", "Running"), StepRun("train", "s1", "Completed", started=5.0, ended=9.0)],
                    log=("std_log.txt", "hello\n"))
    events = Events(session)
    following = following_one_step(workspace, session, Clock(), events)
    assert following.follow() == "Completed"
    assert events.said == ["started", "started", ("finished", [])]
    assert following.read_back() == []
    assert session.asked == ["log", "report(log=False)"]
    step = workspace.get_run(following.records["train"].id)
    assert (workspace.path / step.log_path).read_text() == "hello\n" and step.duration == 4.0
