"""A submitted pipeline run as SDK v1 reaches it (``azureml.core.Run``): the follower's :class:`~..follower.Session`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from ....errors import BackendError
from ..errors import ServiceErrors, sdk_output
from ..follower import RUNNING, TERMINAL, StepReport, StepRun, Trial, epoch, tail

LOG_FILES = ("azureml-logs/70_driver_log.txt", "user_logs/std_log.txt", "azureml-logs/20_image_build_log.txt")
ERRORS = ServiceErrors()  # azureml-core quotes the service's JSON error body in its exceptions


short = ERRORS.short  # the service's message inside an SDK v1 exception
service_error = ERRORS.error  # a BackendError for a failed SDK v1 call; authentication failures say how to log in


class V1Session:
    """What the follower asks of a submitted SDK v1 ``PipelineRun`` (every call's output goes to ``echo``).

    Polling costs what can change: the step list and each step's status, an AutoML step's child list (one
    request, its entries carry each child's status and properties); a child's final metrics are read once,
    when it has ended.
    """

    noun = "pipeline run"
    reused_what = "module and inputs"

    def __init__(self, echo: TextIO | None = None) -> None:
        self.echo = echo
        self.experiment: Any = None

    def service_error(self, doing: str, exc: BaseException) -> BackendError:
        return service_error(doing, exc)

    def status(self, run: Any) -> str:
        with sdk_output(self.echo):
            raw = str(run.get_status())
        self.experiment = getattr(run, "experiment", None)
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
                status = TERMINAL.get(raw, "Running" if raw in RUNNING else None)
                properties = getattr(step_run, "properties", None) or {}  # as listed: no request
                reused_from = (step_run.id if getattr(step_run, "_is_reused", False) else None) \
                    or properties.get("azureml.reusedrunid")
            except Exception:
                pass
            dto = getattr(step_run, "_run_dto", None) or {}  # as listed: no request
            found.append(StepRun(step_run.name, step_run.id, status, reused_from, step_run,
                                 started=epoch(dto.get("start_time_utc")), ended=epoch(dto.get("end_time_utc"))))
        return found

    def times(self, target: Any) -> tuple[float | None, float | None]:
        """``startTimeUtc`` and ``endTimeUtc`` of the run's details (``Run.get_details``)."""
        with sdk_output(self.echo):
            details = (target.handle if isinstance(target, StepRun) else target).get_details()
        return epoch(details.get("startTimeUtc")), epoch(details.get("endTimeUtc"))

    def step_error(self, step: StepRun) -> str:
        try:
            with sdk_output(self.echo):
                details = step.handle.get_details()
            return ((details.get("error") or {}).get("error") or {}).get("message") or "no message"
        except Exception as exc:
            return f"(could not read the step's error: {short(exc)})"

    def trials(self, step: StepRun, known: set[str]) -> list[Trial]:
        """The children that ended and are not ``known``: status and properties from the child list, metrics read once."""
        with sdk_output(self.echo):
            children = list(step.handle.get_children())
        found = []
        for child in children:
            if child.id in known:
                continue
            try:
                status = TERMINAL.get(str(getattr(child, "status", None) or ""))
                if status is None:
                    continue
                properties = dict(getattr(child, "properties", None) or {})
                with sdk_output(self.echo):
                    metrics = dict(child.get_metrics())
            except Exception:
                continue
            properties.setdefault("display_name", getattr(child, "name", None))  # text, as a local child keeps them
            dto = getattr(child, "_run_dto", None) or {}
            error = None
            if status != "Completed":
                error = ((dto.get("error") or {}).get("error") or {}).get("message")
            found.append(Trial(child.id, status, properties, metrics, handle=child, error=error,
                               started=epoch(dto.get("start_time_utc")), ended=epoch(dto.get("end_time_utc"))))
        return found

    def report(self, step: StepRun, log: bool = True) -> StepReport:
        with sdk_output(self.echo):
            metrics = dict(step.handle.get_metrics())
            properties = dict(step.handle.get_properties())
        return StepReport(metrics, properties, self._log(step.handle) if log else None)

    def _log(self, run: Any) -> tuple[str, str] | None:
        """The step's whole log as the service keeps it (the first of ``LOG_FILES`` it has)."""
        try:
            with sdk_output(self.echo):
                names = list(run.get_file_names())
        except Exception:
            return None
        for name in LOG_FILES:
            if name not in names:
                continue
            import tempfile

            with tempfile.TemporaryDirectory(prefix="amlstep-log-") as folder, sdk_output(self.echo):
                target = Path(folder) / "log.txt"
                run.download_file(name, output_file_path=str(target))
                return name, target.read_text(errors="replace")
        return None

    def log(self, step: StepRun) -> tuple[str, str] | None:
        """The step run's whole log, as the service keeps it."""
        return self._log(step.handle)

    def log_tail(self, step: StepRun) -> tuple[str, list[str]] | None:
        """The last lines of a step run's log, as the service keeps it."""
        try:
            found = self._log(step.handle)
        except Exception:
            return None
        return (found[0], tail(found[1])) if found else None

    def download_output(self, step: StepRun, name: str, target: Path) -> None:
        """``StepRun.get_output_data(name).download()``: a single-file output lands as ``target/<its file name>``."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="amlstep-output-") as folder, sdk_output(self.echo):
            port = step.handle.get_output_data(name)
            port.download(folder, show_progress=False)
            where = Path(folder) / (getattr(port, "path_on_datastore", None) or "")
            if not where.exists() or where == Path(folder):
                files = [p for p in Path(folder).rglob("*") if p.is_file()]
                where = files[0] if len(files) == 1 else Path(folder)
            _move_into(where, target)

    def trial_files(self, trial_id: str, names: tuple[str, ...], target: Path) -> list[str]:
        from azureml.core import Run

        with sdk_output(self.echo):
            child = Run(self.experiment, trial_id)
            present = set(child.get_file_names())
            found = []
            for name in names:
                if name in present:
                    (target / name).parent.mkdir(parents=True, exist_ok=True)
                    child.download_file(name, output_file_path=str(target / name))
                    found.append(name)
        return found

    def model_digest(self, name: str, version: int) -> str:
        """The content digest of model ``name:version`` as the workspace's registry holds it (downloaded)."""
        import tempfile

        from azureml.core.model import Model

        from ....workspace.store import content_digest

        with tempfile.TemporaryDirectory(prefix="amlstep-model-") as folder, sdk_output(self.echo):
            Model(self.experiment.workspace, name=name, version=version).download(target_dir=folder, exist_ok=True)
            return content_digest(Path(folder))

    def ended(self, run: Any, status: str) -> str:
        return failure_message(run, status)


def _move_into(source: Path, target: Path) -> None:
    """The file ``source``, or the files of folder ``source``, into folder ``target``."""
    import shutil

    target.mkdir(parents=True, exist_ok=True)
    if source.is_file():
        shutil.move(str(source), str(target / source.name))
        return
    for item in source.iterdir():
        shutil.move(str(item), str(target / item.name))


def failure_message(run: Any, status: str) -> str:
    """'step NAME failed on Azure: MESSAGE' from the first failed step run, else the pipeline run's error."""
    try:
        for step_run in run.get_steps():
            found = step_run.get_status()
            if found == "Canceled":
                return f"step {step_run.name!r} was canceled on Azure (pipeline run {run.id})"
            if found == "Failed":
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
