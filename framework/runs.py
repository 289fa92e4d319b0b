"""Reading runs back the way Azure users do: by id, with pipeline outputs by name."""

from __future__ import annotations

import errno
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from .errors import WorkspaceError
from .io import output_path
from .steps import DataType
from .workspace import LocalWorkspace, RunRecord


class PortDataReference:
    """A step output in the datastore (Azure's ``PortDataReference``)."""

    def __init__(self, workspace: LocalWorkspace, step_run_id: str, record: dict[str, Any]) -> None:
        self.workspace = workspace
        self.step_run_id = step_run_id
        self.data_name: str = record["data"]
        self.data_type = DataType(record["type"])
        self.path_on_datastore: str = record["path"]

    @property
    def path(self) -> Path:
        """The local path: the file for model and metrics data, else the folder."""
        return output_path(self.data_type, self.workspace.path / self.path_on_datastore)

    def download(self, local_path: str | Path = ".", overwrite: bool = False, show_progress: bool = False) -> str:
        """Copy the data to ``local_path/azureml/<step_run_id>/<data_name>/``; return the copied path.

        The copy is made beside the target and renamed into place: with ``overwrite`` the earlier
        copy is replaced only once the new one is complete, so a failed copy leaves the old one.
        """
        source = self.workspace.path / self.path_on_datastore
        if not source.exists():
            raise WorkspaceError(f"output {self.data_name!r} of step run {self.step_run_id} is no longer in the datastore")
        target = Path(local_path) / "azureml" / self.step_run_id / self.data_name
        exists = target.exists() or target.is_symlink()
        if exists and not overwrite:
            raise WorkspaceError(f"{target} already exists; pass overwrite=True to replace it")
        token = uuid.uuid4().hex[:8]
        staging = target.with_name(f".{target.name}.{token}.partial")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(source, staging)
            if exists:
                old = target.with_name(f".{target.name}.{token}.old")
                os.replace(target, old)
                try:
                    os.replace(staging, target)
                except OSError:
                    os.replace(old, target)
                    raise
                _remove(old)
            else:
                os.replace(staging, target)
        except OSError as exc:
            _remove(staging)
            raise WorkspaceError(f"cannot download output {self.data_name!r} into {local_path}: "
                                 f"{_why(exc, Path(local_path), target)}") from None
        if self.data_type in (DataType.MODEL, DataType.METRICS):
            files = [p for p in target.rglob("*") if p.is_file()]
            if len(files) == 1:
                return str(files[0])
        return str(target)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def _why(exc: OSError, root: Path, target: Path) -> str:
    """What stopped a download, in words: a file where a folder must be, no space, no permission..."""
    if isinstance(exc, shutil.Error):  # copytree's list of (source, copy, reason): name the reason, not the paths
        reasons = [str(item[2]) for item in exc.args[0] if isinstance(item, tuple) and len(item) == 3] \
            if exc.args and isinstance(exc.args[0], list) else [str(exc)]
        if any(os.strerror(code) in reason for reason in reasons for code in (errno.ENOSPC, errno.EDQUOT)):
            return f"no space left on the device holding {root}"
        first = reasons[0] if reasons else str(exc)
        return re.sub(r"^\[Errno \d+\] ", "", first.split(": '", 1)[0]) + (
            f" (and {len(reasons) - 1} more file(s))" if len(reasons) > 1 else "")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device holding {root}"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        for folder in [*reversed(target.parents), target]:
            if folder.exists() and not folder.is_dir():
                return f"{folder} is a file, not a folder"
    return exc.strerror or str(exc)


class Run:
    """A run from the local history: a pipeline run, a step run or a child run."""

    def __init__(self, workspace: LocalWorkspace, record: RunRecord) -> None:
        self.workspace = workspace
        self.record = record

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def display_name(self) -> str:
        """The name shown in the studio (an AutoML child's pipeline, e.g. ``MaxAbsScaler, LightGBM``)."""
        return self.record.display_name or self.record.name

    @property
    def properties(self) -> dict[str, Any]:
        return self.record.properties

    def get_properties(self) -> dict[str, Any]:
        """The run's properties, read again from the run history (``Run.get_properties()`` on Azure)."""
        return dict(self.workspace.get_run(self.id).properties)

    def get_status(self) -> str:
        return self.workspace.get_run(self.id).status

    def wait_for_completion(self, show_output: bool = False) -> str:
        """Local runs finish before ``run_pipeline`` returns; kept for Azure-shaped code."""
        return self.get_status()

    def get_metrics(self) -> dict[str, Any]:
        return self.workspace.get_metrics(self.id)

    def get_children(self) -> list[Run]:
        return [Run(self.workspace, r) for r in self.workspace.get_children(self.id)]

    def find_step_run(self, name: str) -> list[Run]:
        return [r for r in self.get_children() if r.name == name]

    def get_outputs(self) -> dict[str, PortDataReference]:
        """This step run's outputs by data name."""
        record = self.workspace.get_run(self.id)
        source_id = record.reused_from or record.id
        return {o["data"]: PortDataReference(self.workspace, source_id, o) for o in record.outputs.values()}

    def get_pipeline_output(self, name: str) -> PortDataReference:
        """A pipeline output by its name (``metrics_output``, ``model_output``...)."""
        outputs = self.record.properties.get("pipeline_outputs", {})
        if name not in outputs:
            raise WorkspaceError(
                f"run {self.id} has no pipeline output {name!r}; its outputs: {', '.join(sorted(outputs)) or '(none)'}"
            )
        data_name = outputs[name]
        for child in self.get_children():
            found = child.get_outputs().get(data_name)
            if found is not None:
                return found
        raise WorkspaceError(f"pipeline output {name!r} of run {self.id} was not produced (status {self.status})")

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, name={self.name!r}, status={self.status!r})"


def get_run(run_id: str, workspace: LocalWorkspace | str | Path | None = None) -> Run:
    """A historical run by id (a unique prefix of at least 4 characters also works)."""
    ws = workspace if isinstance(workspace, LocalWorkspace) else LocalWorkspace(workspace)
    return Run(ws, ws.get_run(run_id))
