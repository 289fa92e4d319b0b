"""One dispatcher fires the lifecycle hooks for every backend, in the documented order, once each."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from framework import BackendError, Pipeline, Step, get_plugin_manager, hookimpl, run_pipeline
from framework.backends import PipelineEvents
from framework.results import PipelineRunResult, StepRunResult

from tests.toy_steps import Recorder, ToySteps


class Calls:
    """A stand-in for ``plugins.hook`` recording every hook call by name and keyword arguments."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda **kwargs: self.calls.append((name, kwargs))

    def names(self):
        return [name for name, _ in self.calls]


def events(hook):
    pipeline = Pipeline([Step("make_table")], experiment="toys")
    return PipelineEvents(hook, "run-1", pipeline, {"rows": 4}, "toy")


def test_a_run_that_ends_fires_before_then_after_once():
    hook = Calls()
    step = SimpleNamespace(name="make_table")
    with events(hook) as run:
        run.started()
        run.steps.started(step, "s1")
        run.steps.finished(step, "s1", StepRunResult("make_table", "s1", "Completed"))
        result = PipelineRunResult("run-1", "toys", "Completed", "toy")
        run.ended(result)
        run.ended(result)
    assert hook.names() == ["before_pipeline_run", "before_step_run", "after_step_run", "after_pipeline_run"]
    assert hook.calls[0][1]["params"] == {"rows": 4} and hook.calls[0][1]["backend"] == "toy"
    assert hook.calls[-1][1]["result"] is result


def test_an_exception_escaping_the_run_fires_on_pipeline_error_with_the_before_arguments():
    hook = Calls()
    with pytest.raises(RuntimeError, match="lost the workspace"):
        with events(hook) as run:
            run.started()
            raise RuntimeError("lost the workspace")
    assert hook.names() == ["before_pipeline_run", "on_pipeline_error"]
    before, error = hook.calls[0][1], hook.calls[1][1]
    assert {k: v for k, v in error.items() if k != "error"} == before
    assert str(error["error"]) == "lost the workspace"


def test_a_run_that_ended_before_raising_fires_no_error_hook():
    """The local backend ends a canceled run (``Canceled``) and then raises RunCanceled."""
    hook = Calls()
    with pytest.raises(KeyboardInterrupt):
        with events(hook) as run:
            run.started()
            run.ended(PipelineRunResult("run-1", "toys", "Canceled", "toy"))
            raise KeyboardInterrupt
    assert hook.names() == ["before_pipeline_run", "after_pipeline_run"]


def test_without_plugins_nothing_fires():
    run = events(None)
    with run:
        run.ended(PipelineRunResult("run-1", "toys", "Completed", "toy"))
    assert run.steps is None


# -- the backends report to it --------------------------------------------------------------------------
class Grumpy:
    """An observer that raises in one hook: a lifecycle hook's exception propagates out of the run."""

    def __init__(self, hook):
        self.hook = hook

    @hookimpl
    def before_pipeline_run(self, run_id, pipeline, params, backend):
        if self.hook == "before_pipeline_run":
            raise RuntimeError(f"the observer refuses {pipeline.experiment}")

    @hookimpl
    def before_step_run(self, run_id, step, step_run_id):
        if self.hook == "before_step_run":
            raise RuntimeError(f"the observer refuses {step.name}")


@pytest.mark.parametrize("hook", ["before_pipeline_run", "before_step_run"])
def test_local_an_exception_escaping_the_run_fires_on_pipeline_error(workspace, hook):
    recorder = Recorder()
    plugins = get_plugin_manager(plugins=[ToySteps(), recorder, Grumpy(hook)])
    with pytest.raises(RuntimeError, match="the observer refuses (toys|make_table)"):
        run_pipeline(Pipeline([Step("make_table")], experiment="toys"), workspace=workspace, plugins=plugins)
    # the observer registered last is called first: its raising before_pipeline_run stops the others' calls
    assert recorder.calls[0] == (("on_pipeline_error", "local", "RuntimeError") if hook == "before_pipeline_run"
                                 else ("before_pipeline_run", "local"))
    assert recorder.calls[-1] == ("on_pipeline_error", "local", "RuntimeError")
    assert not any(call[0] == "after_pipeline_run" for call in recorder.calls)
    [run] = [r for r in workspace.list_runs() if r.run_type == "pipeline"]
    assert run.status == "Failed"


class Service:
    """What the follower of ``AzureBackendBase.track`` asks (a ``Session``): a run that ends, or a service that goes away."""

    noun, reused_what = "pipeline run", "module and inputs"

    def __init__(self, error=None):
        self.error = error

    def status(self, run):
        if self.error is not None:
            raise self.error
        return "Completed"

    def steps(self, run):
        return []

    def service_error(self, doing, exc):
        return BackendError(f"{doing}: {exc}")


@pytest.mark.parametrize(("error", "reported"), [(None, None),
                                               (PermissionError("the service refuses the run's token"), "BackendError"),
                                               (ConnectionError("the service went away"), "ServiceUnreachable")],
                         ids=["ends", "refused", "goes-away"])
def test_azure_the_tracked_run_fires_the_pipeline_hooks(workspace, error, reported):
    """A run followed to its end fires before/after; one whose following stops (an error, the service away past
    the outage window) fires on_pipeline_error, and stays Running with a way to re-attach: it may go on on Azure."""
    from framework.backends.azure.backend import AzureBackendBase

    recorder = Recorder()
    plugins = get_plugin_manager(plugins=[ToySteps(), recorder])
    validated = Pipeline([Step("make_table")], experiment="toys").validate(plugins)
    compiled = SimpleNamespace(parameter_values={}, experiment="toys", steps=[], pipeline_outputs={},
                               validated=validated)
    from framework.backends.azure.follower import RetryPolicy

    never_waits = RetryPolicy(window=0.0, sleep=lambda seconds: None)  # an outage is another test's: none is waited out here
    backend = AzureBackendBase(workspace, dry_run=True, download=False, retry=never_waits)
    track = lambda: backend.track(compiled, "azure-run-1", plugins=plugins, started=time.time(),  # noqa: E731
                                  workspace_name=None, portal_url=None, step_properties=lambda step: {},
                                  session=Service(error), run=None, download=lambda result, following: {})
    if error is None:
        assert track().status == "Completed"
        assert recorder.calls == [("before_pipeline_run", "azure"), ("after_pipeline_run", "Completed")]
    else:
        result = track()
        assert (result.status, result.details["state_unknown"]) == ("Running", True)
        assert "amlstep runs follow" in result.error and str(error) in result.error
        assert recorder.calls == [("before_pipeline_run", "azure"), ("on_pipeline_error", "azure", reported)]
