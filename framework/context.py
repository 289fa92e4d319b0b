"""The run context a step sees: the same methods under every backend (Azure's ``Run.get_context()``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Protocol

from .errors import StepExecutionError


class RegisteredModel(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def version(self) -> int: ...


class RunContext:
    """Base class of the run contexts backends hand to steps.

    A step function that declares a ``context`` argument receives one. It logs metrics, reads
    named inputs, writes outputs and registers models without knowing where it runs.
    """

    backend: str = "?"

    def __init__(self, *, run_id: str, step_name: str, experiment_name: str, pipeline_run_id: str | None,
                 params: Mapping[str, Any], input_datasets: Mapping[str, Any] | None = None,
                 output_dirs: Mapping[str, Path] | None = None, output_names: Mapping[str, str] | None = None,
                 ) -> None:
        self.id = run_id
        self.step_name = step_name
        self.experiment_name = experiment_name
        self.pipeline_run_id = pipeline_run_id
        self.params = dict(params)
        self.input_datasets = dict(input_datasets or {})
        self._output_dirs = dict(output_dirs or {})
        self._output_names = dict(output_names or {})

    # -- metrics, as on azureml.core.Run ------------------------------------------------------
    def log(self, name: str, value: Any, description: str = "") -> None:
        """Log a scalar metric; logging a name again appends to it."""
        raise NotImplementedError

    def log_list(self, name: str, value: list[Any], description: str = "") -> None:
        for item in value:
            self.log(name, item, description)

    def log_row(self, name: str, description: str = "", **values: Any) -> None:
        self.log(name, dict(values), description)

    def log_table(self, name: str, value: dict[str, list[Any]], description: str = "") -> None:
        self.log(name, dict(value), description)

    def get_metrics(self) -> dict[str, Any]:
        raise NotImplementedError

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        raise NotImplementedError

    # -- data -------------------------------------------------------------------------------
    def output_dir(self, name: str) -> Path:
        """The folder where output ``name`` is written (an ``OutputFileDatasetConfig`` path on Azure)."""
        try:
            return self._output_dirs[name]
        except KeyError:
            raise StepExecutionError(
                f"step {self.step_name!r} has no output {name!r}; declared outputs: "
                f"{', '.join(self._output_dirs) or '(none)'}", step=self.step_name) from None

    def output_data_name(self, name: str) -> str:
        """The pipeline data name bound to output port ``name`` (by default its folder's name)."""
        return self._output_names.get(name) or self.output_dir(name).name

    # -- models -----------------------------------------------------------------------------
    def register_model(self, model_name: str, model_path: str | Path, *, description: str = "",
                       tags: Mapping[str, Any] | None = None,
                       properties: Mapping[str, Any] | None = None) -> RegisteredModel:
        """Register a model in the workspace the run belongs to (``Model.register`` on Azure)."""
        raise NotImplementedError

    # -- child runs -------------------------------------------------------------------------
    def child_run(self, name: str, *, run_id: str | None = None,
                  properties: Mapping[str, Any] | None = None) -> ChildRun:
        """Start a child run (``Run.child_run``), e.g. one AutoML iteration."""
        raise NotImplementedError


class ChildRun(Protocol):
    id: str

    def log(self, name: str, value: Any, description: str = "") -> None: ...
    def log_metrics(self, metrics: Mapping[str, Any]) -> None: ...
    def add_properties(self, properties: Mapping[str, Any]) -> None: ...
    def complete(self) -> None: ...
    def fail(self, error: str, status: str = "Failed") -> None: ...
