"""Following a submitted pipeline run, whatever the SDK: one :class:`Follower` over a :class:`Session`.

Each SDK reaches the service its own way (``sdk_v1.session``: ``azureml.core.Run``; ``sdk_v2.session``:
``MLClient`` and MLflow) and answers the same few questions in amlstep's terms: the pipeline's
status, its step runs (:class:`StepRun`), a failed step's error and the tail of its log, the
trials of an AutoML step (:class:`Trial`). The follower turns the answers into the local run
records and the step lifecycle hooks (through ``StepEvents``), the same for every SDK.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

from ...errors import BackendError, StepExecutionError
from ...pipeline import StepBinding
from ...results import StepRunResult
from ...workspace import LocalWorkspace

# The service's run statuses, in amlstep's terms: a terminal one, or one of a run under way.
TERMINAL = {"Completed": "Completed", "Finished": "Completed", "Failed": "Failed", "Canceled": "Canceled",
            "Cancelled": "Canceled"}
RUNNING = ("Running", "Preparing", "Queued", "Starting", "Provisioning", "Finalizing")
ENDED = ("Completed", "Failed", "Canceled")
LOG_TAIL_LINES = 12  # how much of a failed step's log its error shows


def tail(text: str) -> list[str]:
    """The last lines of a log (``LOG_TAIL_LINES``)."""
    return text.rstrip().splitlines()[-LOG_TAIL_LINES:]


@dataclass
class StepRun:
    """One step run of a submitted pipeline as the service reports it.

    ``status`` is ``Completed``, ``Failed``, ``Canceled``, ``Running`` or another of the service's
    statuses (nothing happens yet), or None when it could not be read this time (asked again at the
    next poll); ``reused_from`` is the id of the earlier step run the service reused, if any;
    ``handle`` is the SDK's own object, handed back to the session.
    """

    name: str
    id: str
    status: str | None
    reused_from: str | None = None
    handle: Any = None


@dataclass
class Trial:
    """One ended child run (an AutoML trial) of a step run."""

    id: str
    status: str
    properties: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


class Session(Protocol):
    """What an SDK answers about a submitted pipeline run (``run``: the SDK's own handle of it).

    ``noun`` names a run in messages (``pipeline run``, ``pipeline job``); ``reused_what`` is what the
    service compares to reuse a step (``module and inputs``).
    """

    noun: str
    reused_what: str

    def status(self, run: Any) -> str:
        """The pipeline's status: one of ``ENDED`` once it ended."""

    def steps(self, run: Any) -> list[StepRun]:
        """Its step runs so far (raises when the service cannot list them)."""

    def step_error(self, step: StepRun) -> str:
        """Why a step run failed, as the service says."""

    def log_tail(self, step: StepRun) -> tuple[str, list[str]] | None:
        """(log file name, its last lines) of a step run, or None."""

    def trials(self, step: StepRun) -> list[Trial]:
        """The ended child runs of an AutoML step run ([] when there are none or they cannot be read)."""

    def ended(self, run: Any, status: str) -> str:
        """Why the pipeline ended ``status`` when no step run says."""

    def service_error(self, doing: str, exc: BaseException) -> BackendError:
        """The error for a failed service call."""


class Follower:
    """Follows a submitted pipeline run: step statuses become local records and hook events, AutoML trials too.

    Args:
        session: the SDK's answers (:class:`Session`); ``run`` its handle of the run, ``run_id`` the run's id.
        bindings: the pipeline's steps by name; ``records``: their local step run records.
        local: the local workspace; ``events``: the step hooks (``StepEvents``), or None.
        poll: seconds between two looks at the service.
    """

    def __init__(self, session: Session, run: Any, run_id: str, bindings: Mapping[str, StepBinding],
                 records: Mapping[str, Any], local: LocalWorkspace, events: Any, poll: float) -> None:
        self.session, self.run, self.run_id = session, run, run_id
        self.bindings, self.records, self.local, self.events = bindings, records, local, events
        self.poll = poll
        self.steps: dict[str, dict[str, Any]] = {}  # step name -> what was seen of its run
        self.children: dict[str, StepRun] = {}      # step name -> its step run, as last listed
        self.reused_what = session.reused_what

    def follow(self) -> str:
        """Wait for the run to end, recording its steps as they go; returns its status."""
        while True:
            try:
                status = self.session.status(self.run)
            except Exception as exc:
                raise self.session.service_error(f"waiting for {self.session.noun} {self.run_id}", exc) from exc
            self._poll_steps()
            if status in ENDED:
                self._poll_steps()
                return status
            time.sleep(self.poll)

    def _poll_steps(self) -> None:
        try:
            children = self.session.steps(self.run)
        except Exception:  # the step list is a nicety; the pipeline status is what counts
            return
        for child in children:
            name = child.name
            if name not in self.bindings:
                continue
            self.children[name] = child
            if child.status is None:
                continue
            binding = self.bindings[name]
            record = self.records[name]
            seen = self.steps.setdefault(name, {"status": "NotStarted", "reused": False, "azure_run_id": child.id})
            if child.status == "Running" and seen["status"] == "NotStarted":
                seen["status"], seen["started"] = "Running", time.time()
                self.local.update_run(record.id, status="Running",
                                      properties={**record.properties, "azure_step_run_id": child.id})
                if self.events is not None:
                    self.events.started(binding, record.id)
            if binding.spec.kind == "automl" and child.status in ("Running", "Completed") and self.events is not None:
                for trial in self.session.trials(child):
                    self.events.child_ended(record.id, trial.id, trial.status, trial.properties, trial.metrics)
            if child.status in ENDED and seen["status"] in ("NotStarted", "Running"):
                self._ended(binding, child, record)

    def _ended(self, binding: StepBinding, child: StepRun, record: Any) -> None:
        seen = self.steps[binding.name]
        status = str(child.status)
        seen["status"] = status
        seen["duration"] = time.time() - seen["started"] if seen.get("started") else None
        changes: dict[str, Any] = {"status": status, "properties": {**record.properties,
                                                                    "azure_step_run_id": child.id}}
        if child.reused_from:
            seen["reused"], seen["reused_from"] = True, child.reused_from
            original = local_step_for(self.local, child.reused_from)
            if original is not None:
                seen["reused_from_local"] = original.id
                changes["reused_from"] = original.id
            changes["properties"]["azure_reused_from"] = child.reused_from
            changes["properties"]["reuse_reasons"] = [f"reused Azure step run {child.reused_from}"]
        if status != "Completed":
            seen["error"] = f"step {binding.name!r} failed on Azure: {self.session.step_error(child)}"
            changes["error"] = seen["error"]
        self.local.update_run(record.id, **changes)
        fire_step_events(self.events, binding, record.id, status, seen)

    def failure_message(self, status: str) -> str:
        """The first failed step's error and the tail of its log, else why the pipeline ended ``status``."""
        for name in self.bindings:
            seen = self.steps.get(name)
            if seen is None or seen["status"] not in ("Failed", "Canceled"):
                continue
            message = f"{seen.get('error')} ({self.session.noun} {self.run_id})"
            found = self.session.log_tail(self.children[name]) if name in self.children else None
            if found:
                log_name, lines = found
                message += f"\nlast lines of its log ({log_name}):\n" + "\n".join("  " + line for line in lines)
            return message
        return self.session.ended(self.run, status)


def fire_step_events(events: Any, binding: Any, record_id: str, status: str, seen: Mapping[str, Any]) -> None:
    """The step hooks for a step run the service reports ended (``seen``: what the follower recorded of it)."""
    if events is None:
        return
    events.started(binding, record_id)
    if status == "Completed":
        result = StepRunResult(binding.name, record_id, "Completed", reused=seen["reused"],
                               reused_from=seen.get("reused_from_local") or seen.get("reused_from"),
                               duration=seen.get("duration"))
        events.finished(binding, record_id, result)
    else:
        events.failed(binding, record_id, StepExecutionError(seen["error"], step=binding.name))


def local_step_for(local: LocalWorkspace, azure_step_run_id: str) -> Any:
    """The local record of an Azure step run (found by the id the service gave it)."""
    for pipeline_run in local.list_runs(run_type="pipeline", limit=200):
        if pipeline_run.backend != "azure":
            continue
        for step in local.get_children(pipeline_run.id):
            if step.properties.get("azure_step_run_id") == azure_step_run_id:
                return step
    return None
