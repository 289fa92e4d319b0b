"""Following a submitted pipeline run, whatever the SDK: one :class:`Follower` over a :class:`Session`.

Each SDK reaches the service its own way (``sdk_v1.session``: ``azureml.core.Run``; ``sdk_v2.session``:
``MLClient`` and MLflow) and answers the same few questions in amlstep's terms: the pipeline's
status, its step runs (:class:`StepRun`), a failed step's error and the tail of its log, the
trials of an AutoML step (:class:`Trial`), and, once a step ended, what it left (:class:`StepReport`:
metrics, properties, log; its outputs). The follower turns the answers into the local run records
and the step lifecycle hooks (through ``StepEvents``), the same for every SDK:

- **the network**: a call that fails in a way that passes (HTTP 5xx, 429 with its ``Retry-After``,
  a refused or reset connection, a timeout) is tried again with backoff for a bounded time
  (:class:`RetryPolicy`, ``--outage-timeout``), with a one-line notice; only then does following stop
  (:class:`ServiceUnreachable`), the run still running on Azure as far as anyone knows;
- **the cost of polling**: each AutoML trial is read once, when it has ended (its properties and
  final metrics), and recorded locally as a child run; what can still change is polled;
- **read back**: when the run ended (:meth:`Follower.read_back`), each step's metrics, properties
  and log, its outputs (into the local datastore, with their sha256), the AutoML best child's kept
  files and the models the run registered come back into the local run history, so the local
  commands (``runs show``, ``runs logs``, ``download``, ``report``, ``predict``) read an Azure run as
  they read a local one.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, TextIO

from ...errors import BackendError, StepExecutionError
from ...results import StepRunResult
from ...workspace import LocalWorkspace

# The service's run statuses, in amlstep's terms: a terminal one, or one of a run under way.
TERMINAL = {"Completed": "Completed", "Finished": "Completed", "Failed": "Failed", "Canceled": "Canceled",
            "Cancelled": "Canceled"}
RUNNING = ("Running", "Preparing", "Queued", "Starting", "Provisioning", "Finalizing")
ENDED = ("Completed", "Failed", "Canceled")
LOG_TAIL_LINES = 12  # how much of a failed step's log its error shows
LAST_SEEN = "last_seen"  # a remote run record's property: when its service last answered about it (epoch seconds)
SEEN_EVERY = 30.0  # seconds between two writes of LAST_SEEN while following
# the AutoML best child's files the report reads (emulator/artifacts.py names them; Azure keeps them under outputs/)
KEPT_FILES = ("outputs/validation_predictions.csv", "outputs/explanation.json")
REGISTERED_MODELS = "amlstep.registered_model"  # a step run's properties "<this>.NAME:VERSION": the models it registered


def tail(text: str) -> list[str]:
    """The last lines of a log (``LOG_TAIL_LINES``)."""
    return text.rstrip().splitlines()[-LOG_TAIL_LINES:]


@dataclass
class StepRun:
    """One step run of a submitted pipeline as the service reports it.

    ``status`` is ``Completed``, ``Failed``, ``Canceled``, ``Running`` or another of the service's
    statuses (nothing happens yet), or None when it could not be read this time (asked again at the
    next poll); ``reused_from`` is the id of the earlier step run the service reused, if any;
    ``handle`` is the SDK's own object, handed back to the session; ``started`` and ``ended`` are when the service
    says it started and ended (epoch seconds), when the listing says (else :meth:`Session.times` is asked).
    """

    name: str
    id: str
    status: str | None
    reused_from: str | None = None
    handle: Any = None
    started: float | None = None
    ended: float | None = None


@dataclass
class Trial:
    """One ended child run (an AutoML trial) of a step run: its properties and final metrics, read once."""

    id: str
    status: str
    properties: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    handle: Any = None
    error: str | None = None
    started: float | None = None  # epoch seconds, when the service says
    ended: float | None = None


def epoch(value: Any) -> float | None:
    """Epoch seconds from what a service says of a time: a datetime, an ISO 8601 text, milliseconds since 1970."""
    from datetime import datetime, timezone

    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value) / (1000.0 if value > 1e11 else 1.0)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    try:
        text = str(value).replace("Z", "+00:00")
        found = datetime.fromisoformat(text[:26] + text[27:] if "." in text and len(text.split(".")[1]) > 12 else text)
        return (found if found.tzinfo else found.replace(tzinfo=timezone.utc)).timestamp()
    except ValueError:
        return None


@dataclass
class StepReport:
    """What an ended step run left on the service: its metrics, its properties and its log (name, text)."""

    metrics: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    log: tuple[str, str] | None = None


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

    def log(self, step: StepRun) -> tuple[str, str] | None:
        """(log file name, its text) of a step run, or None."""

    def trials(self, step: StepRun, known: set[str]) -> list[Trial]:
        """The child runs of an AutoML step run that ended and are not in ``known`` (ids), each with its properties
        and final metrics ([] when there are none or they cannot be read now). Ended trials in ``known`` cost
        nothing: they are not read again."""

    def report(self, step: StepRun, log: bool = True) -> StepReport:
        """What an ended step run left: metrics, properties, log (not read without ``log``: already recorded)."""

    def download_output(self, step: StepRun, name: str, target: Path) -> None:
        """The files of step output ``name`` (the SDK's name of it; see ``azure_outputs``) into folder ``target``."""

    def trial_files(self, trial_id: str, names: tuple[str, ...], target: Path) -> list[str]:
        """Of a trial's files ``names``, those it has, downloaded into ``target`` (under their names)."""

    def model_digest(self, name: str, version: int) -> str:
        """The content digest (``workspace.store.content_digest``) of a registered model version's files."""

    def ended(self, run: Any, status: str) -> str:
        """Why the pipeline ended ``status`` when no step run says."""

    def times(self, target: Any) -> tuple[float | None, float | None]:
        """When the service says a run started and ended (epoch seconds, None when it does not say): the pipeline
        run (``target``: its handle) or a step run (a :class:`StepRun`)."""

    def service_error(self, doing: str, exc: BaseException) -> BackendError:
        """The error for a failed service call."""


# -- the network ------------------------------------------------------------------------------------
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
TRANSIENT_TYPES = {"ServiceRequestError", "ServiceResponseError", "ConnectTimeout", "ReadTimeout", "ConnectTimeoutError",
                   "ReadTimeoutError", "ChunkedEncodingError", "ProtocolError", "RemoteDisconnected", "NewConnectionError",
                   "MaxRetryError", "IncompleteRead", "ClientRequestError", "ServiceResponseTimeoutError",
                   "ServiceRequestTimeoutError", "IncompleteReadError"}
_STATUS_IN_TEXT = re.compile(r"(?:\bcode\b|\bstatus(?:_code)?\b|error code|HTTP(?: Error)?|too many)[^0-9\n]{0,16}"
                             r"\b(408|429|5\d\d)\b", re.IGNORECASE)
_TRANSIENT_WORDS = ("unknown cloud environment",  # azure-ai-ml could not read a cloud's endpoints (its metadata URL)
                    "connection refused", "connection reset", "connection aborted", "timed out", "temporarily unavailable",
                    "service unavailable", "too many requests", "remote end closed connection", "max retries exceeded",
                    "failed to establish a new connection", "bad gateway", "gateway timeout")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or any(item is s for s in seen) or len(seen) > 8:
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__, getattr(item, "inner_exception", None), getattr(item, "reason", None)]
    return seen


def status_code(exc: BaseException) -> int | None:
    """The HTTP status an SDK exception carries (``status_code``, ``response.status_code``), or says in its text
    (``too many 503 error responses``, ``Code: 503``), if any."""
    for item in _chain(exc):
        for holder in (item, getattr(item, "response", None), getattr(item, "error", None)):
            value = getattr(holder, "status_code", None)
            if isinstance(value, int):
                return value
    found = _STATUS_IN_TEXT.search(" ".join(str(item) for item in _chain(exc)))
    return int(found.group(1)) if found else None


def retry_after(exc: BaseException) -> float | None:
    """The seconds a ``Retry-After`` header of the answer asks for, if any."""
    for item in _chain(exc):
        response = getattr(item, "response", None)
        for headers in (getattr(response, "headers", None), getattr(item, "headers", None),
                        getattr(item, "response_headers", None)):
            if not headers:
                continue
            try:
                value = headers.get("Retry-After") or headers.get("retry-after")
            except AttributeError:
                continue
            if value is None:
                continue
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


def transient(exc: BaseException) -> bool:
    """Whether a failed call may work when tried again: the service busy or away (5xx, 408, 429), a refused or reset
    connection, a timeout. Not: a refused token, a missing run, a bad request."""
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return False
    code = status_code(exc)
    if code is not None:
        return code in TRANSIENT_STATUS
    for item in _chain(exc):
        if isinstance(item, (ConnectionError, TimeoutError, socket.timeout)):
            return True
        if type(item).__name__ in TRANSIENT_TYPES:
            return True
    text = " ".join(str(item) for item in _chain(exc)).lower()
    return any(word in text for word in _TRANSIENT_WORDS)


def why(exc: BaseException) -> str:
    """A failed call, in a few words: ``HTTP 503: The service is temporarily unavailable...`` or the error's first line."""
    code = status_code(exc)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].strip()
    for marker in ("Message: ", '"message": "'):
        if marker in str(exc):
            first = str(exc).split(marker, 1)[1].split('"', 1)[0].splitlines()[0].strip()
            break
    return (f"HTTP {code}: " if code else f"{type(exc).__name__}: ") + first[:160]


def clock_text(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "never"


def duration_text(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class RetryPolicy:
    """How following rides out a service that does not answer.

    Args:
        window: seconds of failing calls after which following stops (``--outage-timeout``).
        first_wait, longest_wait: the backoff between two tries (doubling), unless the service says how long
            (``Retry-After``, then that, up to ``longest_wait``).
        clock, sleep: the time source and the wait (injected by tests: no test waits for an outage in real time).
        wall: the time of day, for what the local record says ("last seen at").
    """

    window: float = 900.0
    first_wait: float = 2.0
    longest_wait: float = 60.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    wall: Callable[[], float] = time.time


class ServiceUnreachable(BackendError):
    """Following stopped: the service did not answer for the whole retry window. The run itself may go on."""

    def __init__(self, message: str, *, last_seen: float | None, cause: str) -> None:
        super().__init__(message)
        self.last_seen = last_seen
        self.cause = cause


class FollowingInterrupted(BackendError):
    """Following stopped at Ctrl-C: only this client stopped; the run was not canceled and goes on on Azure."""


def interrupted_text(noun: str, run_id: str, last_seen: float | None) -> str:
    """What Ctrl-C while following says (``runs follow``, ``runs logs --follow``): the run goes on; re-attach, cancel."""
    return (f"interrupted (Ctrl-C): amlstep stopped following {noun} {run_id}. Ctrl-C stops this client only, not "
            f"the run: it was not canceled and, as far as amlstep knows, still runs on Azure (last seen "
            f"{clock_text(last_seen)}; cancel it with `amlstep runs cancel {run_id}`). Re-attach with "
            f"`amlstep runs follow {run_id}`")


def retrying(policy: RetryPolicy, doing: str, function: Callable[..., Any], *args: Any, echo: TextIO | None = None,
             on_error: Callable[[str, BaseException], BaseException] | None = None,
             on_outage: Callable[[], None] | None = None,
             unreachable: Callable[[str, BaseException, float], BaseException] | None = None) -> Any:
    """``function(*args)``, tried again with backoff while it fails in a way that passes (:func:`transient`), until
    ``policy.window`` is spent. One notice on ``echo`` when the service stops answering, one when it answers again.

    A failure that does not pass raises ``on_error(doing, exc)`` (the exception itself without one); a window spent
    raises ``unreachable(doing, exc, seconds)`` (else :class:`ServiceUnreachable`).
    """
    began: float | None = None
    wait = policy.first_wait
    while True:
        try:
            found = function(*args)
        except Exception as exc:
            if not transient(exc):
                if on_error is None:
                    raise
                raise on_error(doing, exc) from exc
            now = policy.clock()
            if began is None:
                began = now
                if on_outage is not None:
                    on_outage()
                _say(echo, f"amlstep: the Azure ML service did not answer while {doing} ({why(exc)}); retrying "
                           f"for up to {duration_text(policy.window)}")
            spent = now - began
            if spent >= policy.window:
                if unreachable is not None:
                    raise unreachable(doing, exc, spent) from exc
                raise ServiceUnreachable(f"the Azure ML service did not answer for {duration_text(spent)} while {doing} "
                                         f"({why(exc)})", last_seen=None, cause=why(exc)) from exc
            asked = retry_after(exc)  # what the service asks for wins over the backoff
            delay = min(asked if asked else wait, policy.longest_wait, max(policy.window - spent, 0.0))
            policy.sleep(max(delay, 0.0))
            wait = min(wait * 2, policy.longest_wait)
            continue
        if began is not None:
            _say(echo, f"amlstep: the Azure ML service answers again (after {duration_text(policy.clock() - began)})")
        return found


def _say(echo: TextIO | None, message: str) -> None:
    if echo is not None:
        print(message, file=echo, flush=True)


class Follower:
    """Follows a submitted pipeline run: step statuses become local records and hook events, AutoML trials too.

    Args:
        session: the SDK's answers (:class:`Session`); ``run`` its handle of the run, ``run_id`` the run's id.
        bindings: the pipeline's steps by name (None for a step known only from its local record: ``runs follow``).
        records: the local step run records by step name; ``local``: the local workspace.
        events: the step hooks (``StepEvents``), or None. ``poll``: seconds between two looks at the service.
        retry: how transient failures are ridden out (:class:`RetryPolicy`); ``echo``: where notices go.
        pipeline_record: the local pipeline run record (its ``last_seen`` is kept up to date).
    """

    def __init__(self, session: Session, run: Any, run_id: str, bindings: Mapping[str, Any],
                 records: Mapping[str, Any], local: LocalWorkspace, events: Any, poll: float,
                 retry: RetryPolicy | None = None, echo: TextIO | None = None, pipeline_record: Any = None) -> None:
        self.session, self.run, self.run_id = session, run, run_id
        self.bindings, self.records, self.local, self.events = bindings, records, local, events
        self.poll = poll
        self.retry = retry or RetryPolicy()
        self.echo = echo
        self.pipeline_record = pipeline_record
        self.steps: dict[str, dict[str, Any]] = {}  # step name -> what was seen of its run
        self.children: dict[str, StepRun] = {}      # step name -> its step run, as last listed
        self.known: dict[str, set[str]] = {}        # step name -> ids of the trials already recorded
        self.reused_what = session.reused_what
        self.last_seen: float | None = None
        self._seen_written = 0.0
        self.outages = 0                            # how many times the service stopped answering

    # -- calls that survive the network ----------------------------------------------------------------
    def call(self, doing: str, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)``; a transient failure is tried again with backoff until the retry window is spent."""
        found = retrying(self.retry, doing, function, *args, echo=self.echo, on_error=self.session.service_error,
                         on_outage=self._outage, unreachable=self.unreachable)
        self.seen()
        return found

    def _outage(self) -> None:
        self.outages += 1

    def unreachable(self, doing: str, exc: BaseException, spent: float) -> ServiceUnreachable:
        noun = self.session.noun
        return ServiceUnreachable(
            f"the Azure ML service did not answer for {duration_text(spent)} while {doing} ({why(exc)}); amlstep "
            f"stopped following {noun} {self.run_id}, which was submitted and, as far as amlstep knows, still runs on "
            f"Azure (last seen {clock_text(self.last_seen)}). Re-attach with `amlstep runs follow {self.run_id}`",
            last_seen=self.last_seen, cause=why(exc))

    def interrupted(self) -> FollowingInterrupted:
        """The error for Ctrl-C while following: the run goes on; how to re-attach, and how to cancel it."""
        return FollowingInterrupted(interrupted_text(self.session.noun, self.run_id, self.last_seen))

    def seen(self) -> None:
        """The service answered: note when (written to the local record every ``SEEN_EVERY`` seconds)."""
        self.last_seen = self.retry.wall()
        if self.pipeline_record is not None and self.last_seen - self._seen_written >= SEEN_EVERY:
            self._seen_written = self.last_seen
            try:
                self.local.merge_properties(self.pipeline_record.id, {LAST_SEEN: self.last_seen})
            except Exception:  # a busy or full local workspace must not stop following
                pass

    # -- following -------------------------------------------------------------------------------------
    def follow(self) -> str:
        """Wait for the run to end, recording its steps as they go; returns its status.

        Raises :class:`ServiceUnreachable` when the service stays away longer than the retry window.
        """
        for name, record in self.records.items():  # trials recorded by an earlier follower are not read again
            self.known.setdefault(name, {c.id for c in self.local.get_children(record.id)})
        while True:
            status = self.call(f"waiting for {self.session.noun} {self.run_id}", self.session.status, self.run)
            self._poll_steps()
            if status in ENDED:
                return status
            self.retry.sleep(self.poll)

    def _kind(self, name: str) -> str | None:
        binding = self.bindings.get(name)
        if binding is not None:
            return str(binding.spec.kind)
        record = self.records.get(name)
        return record.properties.get("kind") if record is not None else None

    def _poll_steps(self) -> None:
        try:
            children = self.session.steps(self.run)
        except Exception:  # the step list is a nicety; the pipeline status is what counts
            return
        for child in children:
            name = child.name
            if name not in self.records:
                continue
            self.children[name] = child
            if child.status is None:
                continue
            binding = self.bindings.get(name)
            record = self.records[name]
            seen = self.steps.setdefault(name, {"status": "NotStarted", "reused": False, "azure_run_id": child.id})
            seen["azure_run_id"] = child.id
            if child.status == "Running" and seen["status"] == "NotStarted":
                seen["status"], seen["started"] = "Running", record.started_at or time.time()  # this process's clock
                self.local.update_run(record.id, status="Running", started_at=child.started or seen["started"],
                                      properties={**record.properties, "azure_step_run_id": child.id})
                if self.events is not None and binding is not None:
                    self.events.started(binding, record.id)
            if self._kind(name) == "automl" and child.status in ("Running", *ENDED) and not child.reused_from:
                self._record_trials(name, child, record)
            if child.status in ENDED and seen["status"] in ("NotStarted", "Running"):
                self._ended(name, child, record)

    def _record_trials(self, name: str, child: StepRun, record: Any) -> None:
        """The trials that ended since the last poll: read once, recorded as local child runs, announced."""
        known = self.known.setdefault(name, set())
        try:
            found = self.session.trials(child, known)
        except Exception:
            return
        for trial in found:
            if trial.id in known:
                continue
            known.add(trial.id)
            self._record_child(record, trial)
            if self.events is not None:
                self.events.child_ended(record.id, trial.id, trial.status, trial.properties, trial.metrics)

    def _record_child(self, record: Any, trial: Trial) -> None:
        properties = dict(trial.properties)
        display = properties.get("display_name") or properties.get("mlflow.runName")
        try:
            self.local.get_run(trial.id)
            return  # recorded by an earlier follower of this run
        except Exception:
            pass
        try:
            self.local.create_run(run_type="child", name=str(display or trial.id), experiment=record.experiment,
                                  parent_id=record.id, run_id=trial.id, backend="azure", status=trial.status,
                                  properties=properties, display_name=str(display) if display else None)
            numbers = {k: v for k, v in trial.metrics.items() if isinstance(v, (int, float, str, bool, list))}
            if numbers:
                self.local.log_metrics(trial.id, numbers)
            changes = {k: v for k, v in (("error", trial.error), ("started_at", trial.started),
                                         ("ended_at", trial.ended)) if v is not None}
            if changes:
                self.local.update_run(trial.id, **changes)
        except Exception:  # a child that cannot be recorded must not stop following
            pass

    def _ended(self, name: str, child: StepRun, record: Any) -> None:
        binding = self.bindings.get(name)
        seen = self.steps[name]
        status = str(child.status)
        seen["status"] = status
        changes: dict[str, Any] = {"status": status, "properties": {**record.properties,
                                                                    "azure_step_run_id": child.id}}
        started, ended = (None, None) if child.reused_from else self.times(child, f"step run {child.id}")
        if started is not None and ended is not None:  # what the service recorded, whoever followed the run when
            changes.update(started_at=started, ended_at=ended)
            seen["duration"] = max(0.0, ended - started)
        elif seen.get("started"):  # this process's clock only: the start it observed, never the service's
            now = time.time()
            changes.update(started_at=seen["started"], ended_at=now)
            seen["duration"] = now - seen["started"]
        else:
            seen["duration"] = None
        if child.reused_from:
            seen["reused"], seen["reused_from"] = True, child.reused_from
            original = local_step_for(self.local, child.reused_from)
            if original is not None:
                seen["reused_from_local"] = original.id
                changes["reused_from"] = original.id
            changes["properties"]["azure_reused_from"] = child.reused_from
            changes["properties"]["reuse_reasons"] = [f"reused Azure step run {child.reused_from}"]
        if status == "Canceled":
            seen["error"] = f"step {name!r} was canceled on Azure"
            changes["error"] = seen["error"]
        elif status != "Completed":
            seen["error"] = f"step {name!r} failed on Azure: {self.session.step_error(child)}"
            changes["error"] = seen["error"]
        self.local.update_run(record.id, **changes)
        if binding is not None:  # the live display learns of the end before the log is downloaded
            fire_step_events(self.events, binding, record.id, status, seen)
        if not child.reused_from:
            self._log_now(child, record)

    def _log_now(self, child: StepRun, record: Any) -> None:
        """An ended step run's log, into the local history at once: ``runs logs --follow`` prints it as steps end."""
        if self.local.get_run(record.id).log_path:
            return
        try:  # one try, never the retry window: ``--outage-timeout`` bounds following, not each nicety
            found = self.session.log(child)
        except Exception:  # read again with the rest at read back
            return
        if found is None:
            return
        log_name, text = found
        path = self.local.log_path(record.id)
        path.write_text(text)
        self.local.update_run(record.id, log_path=self.local.relative(path))
        self.local.merge_properties(record.id, {"azure_log_file": log_name})

    def times(self, target: Any, what: str) -> tuple[float | None, float | None]:
        """When the service says ``target`` (the run's handle, or a :class:`StepRun`) started and ended; what the
        listing carried when it has both, else asked (None, None when it cannot be read: the local clock then)."""
        if isinstance(target, StepRun) and target.started is not None and target.ended is not None:
            return target.started, target.ended
        try:  # one try (as the step list): a nicety must not spend the retry window
            started, ended = self.session.times(target)
        except Exception:  # times are a nicety: durations then come from this process's clock
            return None, None
        self.seen()
        return started, ended

    def failure_message(self, status: str) -> str:
        """The first failed step's error and the tail of its log, else why the pipeline ended ``status``."""
        for name in self.records:
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

    # -- read back ----------------------------------------------------------------------------------------
    def read_back(self, *, outputs: bool = True) -> list[str]:
        """Bring back what the ended run's steps left into the local run history; returns what could not be read.

        Per step run: its metrics, its properties (an AutoML step's primary metric, best child, guardrails...),
        its log (``runs logs``), and, with ``outputs``, its outputs (downloaded into the local datastore under
        the Azure step run's id, each with its sha256: ``download``, ``report`` and ``predict`` read them there).
        For an AutoML step, the best child's kept files (validation predictions, explanation: the report's
        charts). A reused step whose original run is in the local history takes that run's outputs, as a
        reused local step does.
        """
        problems: list[str] = []
        for name, record in self.records.items():
            child = self.children.get(name)
            if child is None or child.status not in ENDED:
                continue
            record = self.local.get_run(record.id)
            try:
                self._read_step(name, child, record, outputs, problems)
            except Exception as exc:  # what cannot be read back is said, never fatal: the run itself ended
                problems.append(f"step {name!r}: {why(exc)}")
        return problems

    def _read_step(self, name: str, child: StepRun, record: Any, outputs: bool, problems: list[str]) -> None:
        report = self.call(f"reading back step run {child.id}", self.session.report, child, not record.log_path)
        changes: dict[str, Any] = {}
        properties = {**record.properties, **_kept_properties(report.properties)}
        registered = _registered(report.properties)
        for model in registered:  # what the registry holds, by content: predict checks the model it loads against it
            try:
                model["sha256"] = self.call(f"reading model {model['name']}:{model['version']}",
                                            self.session.model_digest, model["name"], model["version"])
            except Exception as exc:
                problems.append(f"model {model['name']}:{model['version']} could not be read from the registry "
                                f"({why(exc)})")
        if registered:
            properties["azure_registered_models"] = registered
        if report.log is not None and not record.log_path:
            log_name, text = report.log
            path = self.local.log_path(record.id)
            path.write_text(text)
            changes["log_path"] = self.local.relative(path)
            properties["azure_log_file"] = log_name
        if report.metrics and not self.local.get_metrics(record.id):
            self.local.log_metrics(record.id, {k: v for k, v in report.metrics.items()})
        if self._kind(name) == "automl":
            origin = child if not child.reused_from else None
            if origin is not None:
                properties.update(self._automl_summary(record, properties))
                self._best_child_files(properties.get("best_child_run_id"), problems)
        changes["properties"] = properties
        if outputs and child.status == "Completed":
            changes["outputs"] = self._outputs(name, child, record, problems)
            if not changes["outputs"]:
                del changes["outputs"]
        self.local.update_run(record.id, **changes)

    def _automl_summary(self, record: Any, properties: Mapping[str, Any]) -> dict[str, Any]:
        """The primary metric, best child and score of an AutoML step, from its trials when the service does not say."""
        found: dict[str, Any] = {}
        metric = properties.get("primary_metric") or record.params.get("primary_metric")
        if not metric:
            return found
        found["primary_metric"] = metric
        if properties.get("best_child_run_id") and properties.get("score") is not None:
            return found
        minimize = any(hint in str(metric) for hint in ("error", "loss"))
        best: tuple[float, str] | None = None
        for trial in self.local.get_children(record.id):
            if trial.status != "Completed":
                continue
            value = self.local.get_metrics(trial.id).get(metric)
            try:
                score = float(value[-1] if isinstance(value, list) else value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                continue
            if best is None or (score < best[0] if minimize else score > best[0]):
                best = (score, trial.id)
        if best is not None:
            found.setdefault("best_child_run_id", properties.get("best_child_run_id") or best[1])
            found.setdefault("score", properties.get("score") if properties.get("score") is not None else best[0])
        return found

    def _best_child_files(self, child_id: Any, problems: list[str]) -> None:
        if not child_id or not hasattr(self.session, "trial_files"):
            return
        import tempfile

        try:
            self.local.get_run(str(child_id))
        except Exception:
            return
        with tempfile.TemporaryDirectory(prefix="amlstep-child-files-") as folder:
            try:
                names = self.call(f"reading the files of child run {child_id}", self.session.trial_files,
                                  str(child_id), KEPT_FILES, Path(folder))
            except Exception as exc:
                problems.append(f"child run {child_id}: its files could not be read ({why(exc)})")
                return
            for item in names:
                self.local.write_artifact(str(child_id), item, (Path(folder) / item).read_bytes())

    def _outputs(self, name: str, child: StepRun, record: Any, problems: list[str]) -> dict[str, Any]:
        """The step's outputs in the local datastore (downloaded once, under the Azure step run's id)."""
        from ...io import output_path  # noqa: F401  (the layout every output keeps: see framework.io)
        from ...workspace.store import sha256_tree

        declared: Mapping[str, str] = record.properties.get("outputs") or {}
        types: Mapping[str, str] = record.properties.get("output_types") or {}
        names: Mapping[str, Any] = record.properties.get("azure_outputs") or {}
        if not declared:
            return {}
        if child.reused_from and record.reused_from:
            try:
                return dict(self.local.get_run(record.reused_from).outputs)
            except Exception:
                pass
        origin = child.reused_from or child.id
        root = self.local.output_root(origin)
        records: dict[str, Any] = {}
        for port, data_name in declared.items():
            location = root / data_name
            if not (location.exists() and any(location.iterdir())):
                sdk_name = names.get(port, data_name)
                staging = self.local.staging_dir()
                try:
                    folder = staging / data_name
                    folder.mkdir(parents=True)
                    self.call(f"downloading output {port!r} of step {name!r}", self.session.download_output, child,
                              sdk_name if sdk_name is not None else f"metrics:{port}", folder)
                    if not any(folder.iterdir()):
                        raise BackendError("the service holds no files for it")
                    location.parent.mkdir(parents=True, exist_ok=True)
                    if location.exists():
                        shutil.rmtree(location, ignore_errors=True)
                    folder.rename(location)
                except Exception as exc:
                    problems.append(f"could not download output {port!r} ({data_name}) of step {name!r}: {why(exc)}")
                    continue
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
            records[port] = {"data": data_name, "type": types.get(port, "folder"),
                             "path": self.local.relative(location), "sha256": sha256_tree(location)}
        return records


def _decode(value: Any) -> Any:
    if isinstance(value, str) and (value[:1] in ("[", "{") or value in ("true", "false", "null")):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _kept_properties(properties: Mapping[str, Any]) -> dict[str, Any]:
    """The properties of an Azure step run worth keeping locally (the AutoML summary, amlstep's own), decoded."""
    kept = {}
    for key, value in properties.items():
        if key.startswith(("azureml.", "mlflow.", "_aml_system", "ContentSnapshotId", "StepType")):
            continue
        kept[key] = _decode(value)
    return kept


def registered_key(name: str, version: Any) -> str:
    """The property a step run notes a model it registered under (properties cannot change: one key per model)."""
    return f"{REGISTERED_MODELS}.{name}:{version}"


def _registered(properties: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The models a step run registered, from its ``registered_key`` properties."""
    found = []
    for key, item in sorted(properties.items()):
        if not key.startswith(REGISTERED_MODELS + "."):
            continue
        name, _, version = str(item).rpartition(":")
        if name and version.isdigit():
            found.append({"name": name, "version": int(version)})
    return found


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
