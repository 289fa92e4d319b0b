"""amlstep runs cancel: a local run in another process (even one that ignores Ctrl-C), and a run on Azure ML."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest

from framework import LocalWorkspace, Pipeline, RunCanceled, Step, StepSpec, get_plugin_manager, hookimpl, run_pipeline
from framework.cancel import cancellable, request_cancel
from framework.errors import RunCanceled as Canceled

from tests.framework.backends.test_local_interruptions import SLOW_PIPELINE, check_workspace
from tests.toy_steps import ToySteps

from .conftest import invoke


def _in_the_background() -> None:
    """As `amlstep run ... &` from a script: SIGINT ignored, so Ctrl-C cannot stop it; runs cancel must."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def wait_for(condition, what, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.slow
def test_cancels_a_local_run_in_another_process(toy_env, tmp_path):
    (tmp_path / "slow.py").write_text(SLOW_PIPELINE.format(seconds=60))
    process = subprocess.Popen([sys.executable, "-m", "framework.cli", "--workspace", str(tmp_path / "ws"), "run",
                                str(tmp_path / "slow.py"), "--json"], env=toy_env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=_in_the_background)
    try:
        def sleepy_running():
            if not (tmp_path / "ws" / "amlstep.db").exists():
                return None
            steps = LocalWorkspace(tmp_path / "ws").list_runs(run_type="step")
            return next((s for s in steps if s.name == "sleepy" and s.status == "Running"), None)

        step = wait_for(sleepy_running, "the sleepy step to start")
        canceled = invoke(tmp_path / "ws", "runs", "cancel", step.id[:8])  # a step run names its pipeline run
        assert canceled.exit_code == 0, canceled.output
        assert canceled.stdout.strip() == f"Canceled pipeline run {step.parent_id} (step 'sleepy' was running)"
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, err
    assert f"pipeline run {step.parent_id} was canceled with amlstep runs cancel (pid " in err
    printed = json.loads(out)  # --json prints the run's object whatever stderr shows
    assert printed["status"] == "Canceled" and printed["run_id"] == step.parent_id
    assert {s["name"]: s["status"] for s in printed["steps"]} == {"make_table": "Completed", "sleepy": "Canceled"}
    assert "Traceback" not in err
    workspace = check_workspace(tmp_path / "ws")
    run = workspace.get_run(step.parent_id)
    assert run.status == "Canceled" and run.error.startswith("canceled with amlstep runs cancel (pid ")
    assert {s.name: s.status for s in workspace.get_children(run.id)} == {"make_table": "Completed",
                                                                          "sleepy": "Canceled"}
    again = invoke(tmp_path / "ws", "runs", "cancel", run.id)
    assert again.exit_code == 2
    assert f"pipeline run {run.id} is Canceled; only a running run can be canceled" in again.stderr


def asks_to_stop(table, context):
    """Asks for its own pipeline run to be canceled, as `amlstep runs cancel` would from elsewhere, then works on."""
    request_cancel(context.workspace, context.pipeline_run_id)
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.01)
    return {"doubled": table}


class AsksToStop:
    @hookimpl
    def register_steps(self, register):
        from framework import Input, Output

        register(StepSpec("asks_to_stop", asks_to_stop, inputs=[Input("table")], outputs=[Output("doubled")]))


def test_a_cancel_request_interrupts_the_main_thread_and_the_run_ends_canceled(workspace):
    plugins = get_plugin_manager(plugins=[ToySteps(), AsksToStop()])
    pipeline = Pipeline([Step("make_table"), Step("asks_to_stop", inputs={"table": "table"}),
                         Step("double", inputs={"table": "doubled"}, outputs={"doubled": "again"})], experiment="toys")
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(RunCanceled, match="was canceled with amlstep runs cancel"):
        run_pipeline(pipeline, workspace=workspace, plugins=plugins)
    assert signal.getsignal(signal.SIGINT) is before  # the handler of the run's duration is gone
    run = workspace.list_runs()[0]
    assert run.status == "Canceled"
    assert [(s.name, s.status) for s in workspace.get_children(run.id)] == [("make_table", "Completed"),
                                                                           ("asks_to_stop", "Canceled")]


def test_outside_the_main_thread_the_request_is_seen_between_units_of_work(workspace):
    record = workspace.create_run(run_type="pipeline", name="toys", experiment="toys", status="Running")
    seen: dict[str, object] = {}

    def work():
        with cancellable(workspace, record.id, poll_seconds=0.01) as watcher:
            wait_for(lambda: watcher.request, "the watcher to see the request", timeout=60)
            try:
                watcher.check()
            except Canceled as exc:
                seen["error"] = str(exc)

    thread = threading.Thread(target=work)
    thread.start()
    request_cancel(workspace, record.id)
    thread.join(90)
    assert str(seen.get("error", "")).startswith(f"run {record.id} was canceled: canceled with amlstep runs cancel")
    workspace.update_run(record.id, status="Canceled")


def test_only_a_running_run_can_be_canceled(cli, workspace):
    missing = cli(workspace, "runs", "cancel", "nosuchrun")
    assert missing.exit_code == 2 and "run 'nosuchrun' does not exist" in missing.stderr


@pytest.mark.slow
@pytest.mark.fake_azure(execute=False)
def test_cancels_a_run_on_azure_ml_through_the_sdk_v2(fake_azure_v2, titanic_csv, tmp_path):
    from tests.framework.backends.azure.conftest import TITANIC

    fake_azure_v2.local_workspace.register_dataset("titanic_ds", [str(titanic_csv)])
    submitted = fake_azure_v2.submit(TITANIC, wait=False)
    assert fake_azure_v2.local_workspace.get_run(submitted.run_id).status == "Running"
    config = fake_azure_v2.config(tmp_path)
    canceled = invoke(fake_azure_v2.local_workspace, "runs", "cancel", submitted.run_id, "--config", str(config))
    asked = [r for r in fake_azure_v2.service.requests if r["method"] == "POST" and r["path"].endswith("/cancel")]
    assert [r["path"].rsplit("/", 2)[-2] for r in asked] == [submitted.run_id]
    # the job, which runs nothing on this fake, may have completed before the request: either way the local
    # record ends as the command says
    record = fake_azure_v2.local_workspace.get_run(submitted.run_id)
    if canceled.exit_code == 0:
        assert record.status == "Canceled" and record.error == "canceled with amlstep runs cancel"
        assert canceled.stdout.startswith(f"Canceled pipeline run {submitted.run_id} on azure")
    else:
        assert canceled.exit_code == 1, canceled.output
        assert f"ended {record.status} on azure before it could be canceled" in canceled.stderr


@pytest.mark.slow
@pytest.mark.parametrize("sdk", ["v1", "v2"])
def test_canceling_an_azure_run_stops_its_running_step_and_nothing_after_it_starts(sdk, tmp_path, titanic_csv,
                                                                                    _fake_azure_cache):
    """The AutoML step is held at its first trial until the cancel has reached the service (no race with the clock):
    it starts no other trial and ends Canceled, register_model never starts, dataprep stays Completed; the local
    record, read back without --config (the run's own config.json), agrees."""
    from emulator.azure_service.testing import open_fake_azure
    from tests.framework.backends.azure.conftest import TITANIC

    with open_fake_azure(tmp_path, _fake_azure_cache, sdk=sdk) as fake:
        engine, reached, gate = fake.service.engine, threading.Event(), threading.Event()
        create_run, cancel = engine.create_run, engine.cancel

        def held_trial(experiment, run_type, *args, **kwargs):
            if run_type == "automl.child":
                reached.set()
                gate.wait(300)
            return create_run(experiment, run_type, *args, **kwargs)

        def cancel_then_release(run_id):
            found = cancel(run_id)
            gate.set()
            return found

        engine.create_run, engine.cancel = held_trial, cancel_then_release
        try:
            fake.local_workspace.register_dataset("titanic_ds", [str(titanic_csv)])
            submitted = fake.submit(TITANIC, wait=False, config=str(fake.config(tmp_path)))
            assert reached.wait(300), "the AutoML step never started a trial"
            assert fake.local_workspace.get_run(submitted.run_id).properties["azure_config"]   # what it falls back to
            canceled = invoke(fake.local_workspace, "runs", "cancel", submitted.run_id)
        finally:
            gate.set()
        assert canceled.exit_code == 0, canceled.output
        assert canceled.stdout.strip() == f"Canceled pipeline run {submitted.run_id} on azure"
        assert engine.run(submitted.run_id).status == "Canceled"
        on_service = {name: run.status for name, run in fake.step_runs(submitted.run_id).items()}
        assert on_service == {"dataprep": "Completed", "AutoML_Classification": "Canceled"}
        automl = fake.step_runs(submitted.run_id)["AutoML_Classification"]
        assert len(engine.children(automl.id)) == 1   # the trial held when the cancel came; no other started
        assert fake.models == {}
        local = fake.local_workspace
        assert local.get_run(submitted.run_id).status == "Canceled"
        assert {s.name: s.status for s in local.get_children(submitted.run_id)} == {
            "dataprep": "Completed", "AutoML_Classification": "Canceled", "register_model": "Canceled"}


class _Canceling:
    """A remote backend whose cancel is scripted: what it was asked (``wait``), what it answers or raises."""

    def __init__(self, answer) -> None:
        self.answer, self.waits = answer, []

    def cancel(self, record, *, plugins=None, wait=True):
        self.waits.append(wait)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def _azure_run(workspace, monkeypatch, answer, *, followed):
    from framework.manager import Plugins

    record = workspace.create_run(run_type="pipeline", name="e", experiment="e", backend="azure", status="Running")
    if not followed:
        monkeypatch.setattr("framework.commands.browse.followed", lambda ws, run: False)
    backend = _Canceling(answer)
    monkeypatch.setattr(Plugins, "backend", lambda self, name, **options: backend)
    return record, backend


def test_an_azure_run_another_process_follows_is_only_asked_to_cancel(cli, workspace, monkeypatch):
    """That process records how it ends: no second follower writing the same records."""
    record, backend = _azure_run(workspace, monkeypatch, "CancelRequested", followed=True)
    canceled = cli(workspace, "runs", "cancel", record.id)
    assert canceled.exit_code == 0 and backend.waits == [False], canceled.output
    assert canceled.stdout.startswith(f"Asked azure to cancel pipeline run {record.id}; it is CancelRequested there. "
                                      f"The amlstep process following it (pid ")
    assert workspace.get_run(record.id).status == "Running"


def test_a_cancel_whose_wait_stopped_says_so_with_exit_code_3(cli, workspace, monkeypatch):
    from framework.backends.azure.cancel import NotFollowedToItsEnd

    stopped = NotFollowedToItsEnd("Azure ML was asked to cancel pipeline run R (it said CancelRequested), but waiting "
                                  "for it to end stopped: interrupted (Ctrl-C): ... Re-attach with `amlstep runs "
                                  "follow R`")
    record, backend = _azure_run(workspace, monkeypatch, stopped, followed=False)
    canceled = cli(workspace, "runs", "cancel", record.id)
    assert canceled.exit_code == 3 and backend.waits == [True], canceled.output
    assert canceled.stderr.strip() == f"Error: {stopped}"
    assert workspace.get_run(record.id).status == "Running"


def test_the_azure_cancel_raises_when_following_to_the_end_stopped(monkeypatch):
    from types import SimpleNamespace

    from framework.backends.azure import cancel as azure_cancel

    monkeypatch.setattr(azure_cancel, "_ask", lambda backend, record: "CancelRequested")
    lost = SimpleNamespace(status="Running", details={"state_unknown": True}, error=(
        "interrupted (Ctrl-C): amlstep stopped following pipeline run R. Ctrl-C stops this client only, not the run: "
        "it was not canceled ... Re-attach with `amlstep runs follow R`"))
    backend = SimpleNamespace(reattach=lambda record, plugins=None: lost)
    with pytest.raises(azure_cancel.NotFollowedToItsEnd) as stopped:
        azure_cancel.cancel(backend, SimpleNamespace(id="R"))
    assert str(stopped.value) == ("Azure ML was asked to cancel pipeline run R (it said CancelRequested), but waiting "
                                  "for it to end stopped: interrupted (Ctrl-C): amlstep stopped following pipeline run "
                                  "R. `amlstep runs follow R` reads it back once it has ended")
    ended = SimpleNamespace(status="Canceled", error=None, details={})
    assert azure_cancel.cancel(SimpleNamespace(reattach=lambda record, plugins=None: ended), SimpleNamespace(id="R")) \
        == "Canceled"
