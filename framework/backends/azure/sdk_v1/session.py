"""A submitted pipeline run as SDK v1 reaches it (``azureml.core.Run``): the follower's :class:`~..follower.Session`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from ....errors import BackendError
from ..errors import ServiceErrors, sdk_output
from ..follower import RUNNING, TERMINAL, StepRun, Trial, tail

LOG_FILES = ("azureml-logs/70_driver_log.txt", "user_logs/std_log.txt", "azureml-logs/20_image_build_log.txt")
ERRORS = ServiceErrors()  # azureml-core quotes the service's JSON error body in its exceptions


short = ERRORS.short  # the service's message inside an SDK v1 exception
service_error = ERRORS.error  # a BackendError for a failed SDK v1 call; authentication failures say how to log in


class V1Session:
    """What the follower asks of a submitted SDK v1 ``PipelineRun`` (every call's output goes to ``echo``)."""

    noun = "pipeline run"
    reused_what = "module and inputs"

    def __init__(self, echo: TextIO | None = None) -> None:
        self.echo = echo

    def service_error(self, doing: str, exc: BaseException) -> BackendError:
        return service_error(doing, exc)

    def status(self, run: Any) -> str:
        with sdk_output(self.echo):
            raw = str(run.get_status())
        return TERMINAL.get(raw, raw)

    def steps(self, run: Any) -> list[StepRun]:
        with sdk_output(self.echo):
            children = list(run.get_steps())
        found = []
        for step_run in children:
            status, reused_from = None, None
            try:
                with sdk_output(self.echo):
                    raw = step_run.get_status()
                    properties = step_run.get_properties() if raw in TERMINAL else {}
                status = TERMINAL.get(raw, "Running" if raw in RUNNING else None)
                reused_from = (step_run.id if getattr(step_run, "_is_reused", False) else None) \
                    or (properties or {}).get("azureml.reusedrunid")
            except Exception:
                pass
            found.append(StepRun(step_run.name, step_run.id, status, reused_from, step_run))
        return found

    def step_error(self, step: StepRun) -> str:
        try:
            with sdk_output(self.echo):
                details = step.handle.get_details()
            return ((details.get("error") or {}).get("error") or {}).get("message") or "no message"
        except Exception as exc:
            return f"(could not read the step's error: {short(exc)})"

    def trials(self, step: StepRun) -> list[Trial]:
        try:
            with sdk_output(self.echo):
                children = list(step.handle.get_children())
        except Exception:
            return []
        found = []
        for child in children:
            try:
                with sdk_output(self.echo):
                    status = TERMINAL.get(child.get_status())
                    if status is None:
                        continue
                    properties = dict(child.get_properties())
                    metrics = dict(child.get_metrics())
            except Exception:
                continue
            decoded = {k: _decode(v) for k, v in properties.items()}
            decoded.setdefault("display_name", getattr(child, "name", None))
            found.append(Trial(child.id, status, decoded, metrics))
        return found

    def log_tail(self, step: StepRun) -> tuple[str, list[str]] | None:
        """The last lines of a step run's log, as the service keeps it."""
        try:
            with sdk_output(self.echo):
                names = list(step.handle.get_file_names())
        except Exception:
            return None
        for name in LOG_FILES:
            if name not in names:
                continue
            try:
                import tempfile

                with tempfile.TemporaryDirectory(prefix="amlstep-log-") as folder, sdk_output(self.echo):
                    target = Path(folder) / "log.txt"
                    step.handle.download_file(name, output_file_path=str(target))
                    lines = tail(target.read_text(errors="replace"))
                return name, lines
            except Exception:
                continue
        return None

    def ended(self, run: Any, status: str) -> str:
        return failure_message(run, status)


def _decode(value: Any) -> Any:
    if isinstance(value, str) and (value[:1] in ("[", "{") or value in ("true", "false", "null")):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def failure_message(run: Any, status: str) -> str:
    """'step NAME failed on Azure: MESSAGE' from the first failed step run, else the pipeline run's error."""
    try:
        for step_run in run.get_steps():
            if step_run.get_status() in ("Failed", "Canceled"):
                details = step_run.get_details()
                message = ((details.get("error") or {}).get("error") or {}).get("message") or "no message"
                return f"step {step_run.name!r} failed on Azure: {message} (pipeline run {run.id})"
    except Exception:
        pass
    try:
        details = run.get_details()
        message = ((details.get("error") or {}).get("error") or {}).get("message")
    except Exception:
        message = None
    return f"pipeline run {run.id} ended {status} on Azure" + (f": {message}" if message else "")
