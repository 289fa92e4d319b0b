"""What an amlstep ``PythonScriptStep`` runs on the cluster (SDK v1): the plugin, loaded by name, with an Azure run context.

The compiled step's arguments::

    --amlstep-step NAME --amlstep-plugin PLUGIN --amlstep-code HASH   (checked against the plugin here)
    [--param NAME VALUE]...        parameters as text (PipelineParameters arrive resolved)
    [--dataset PORT INPUT_NAME]... registered datasets, read from Run.get_context().input_datasets
    [--input PORT PATH]...         data from upstream steps (mounted or downloaded paths)
    [--output PORT PATH]...        OutputFileDatasetConfig / PipelineData folders to write into

The step runs through ``framework.execution`` like under the local backend. ``context.register_model``
calls ``Model.register`` on the run's workspace; under an offline run (``_OfflineRun``, e.g. the
script run by hand) it registers in the local workspace instead, so plugin code never branches.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from ....context import RunContext
from ....errors import StepExecutionError
from ....execution import execute_step, load_inputs
from ....manager import get_plugin_manager
from ....steps import DataType, StepSpec
from .. import entry
from ..follower import registered_key


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    return entry.parse_arguments(argv, sdk="v1", ports=("param", "dataset", "input", "output"),
                                 description=__doc__.splitlines()[0])


class AzureRunContext(RunContext):
    """The run context of a step on Azure: an ``azureml.core.Run`` underneath."""

    backend = "azure"

    def __init__(self, run: Any, *, step_name: str, params: Mapping[str, Any], output_dirs: Mapping[str, Path],
                 input_datasets: Mapping[str, Any] | None = None, local_workspace: Any = None) -> None:
        experiment = getattr(getattr(run, "experiment", None), "name", "offline")
        parent = getattr(getattr(run, "parent", None), "id", None)
        super().__init__(run_id=getattr(run, "id", "offline"), step_name=step_name, experiment_name=experiment,
                         pipeline_run_id=parent, params=params, input_datasets=input_datasets,
                         output_dirs=output_dirs)
        self.run = run
        self._local_workspace = local_workspace

    @property
    def offline(self) -> bool:
        return type(self.run).__name__ == "_OfflineRun"

    def log(self, name: str, value: Any, description: str = "") -> None:
        self.run.log(name, value, description=description)

    def log_list(self, name: str, value: list[Any], description: str = "") -> None:
        self.run.log_list(name, value, description=description)

    def log_row(self, name: str, description: str = "", **values: Any) -> None:
        self.run.log_row(name, description=description, **values)

    def log_table(self, name: str, value: dict[str, list[Any]], description: str = "") -> None:
        self.run.log_table(name, value, description=description)

    def get_metrics(self) -> dict[str, Any]:
        return dict(self.run.get_metrics())

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        self.run.add_properties({k: v if isinstance(v, str) else str(v) for k, v in properties.items()})

    def register_model(self, model_name: str, model_path: str | Path, *, description: str = "",
                       tags: Mapping[str, Any] | None = None, properties: Mapping[str, Any] | None = None) -> Any:
        if self.offline:
            from ....workspace import LocalWorkspace

            workspace = self._local_workspace or LocalWorkspace()
            return workspace.register_model(model_name, model_path, run_id=self.id, description=description,
                                            tags=dict(tags or {}), properties=dict(properties or {}))
        from azureml.core.model import Model

        staged = stage_model(Path(model_path), model_name)
        registered = Model.register(workspace=self.run.experiment.workspace, model_path=str(staged),
                                    model_name=model_name, description=description or None,
                                    tags={k: str(v) for k, v in (tags or {}).items()} or None,
                                    properties={k: str(v) for k, v in (properties or {}).items()} or None)
        try:  # the run says what it registered: amlstep reads it back (``predict azure:NAME:VERSION``)
            self.run.add_properties({registered_key(registered.name, registered.version):
                                     f"{registered.name}:{registered.version}"})
        except Exception as exc:
            print(f"amlstep: could not note model {registered.name}:{registered.version} on the run: {exc}")
        return registered

    def child_run(self, name: str, *, run_id: str | None = None,
                  properties: Mapping[str, Any] | None = None) -> Any:
        child = self.run.child_run(name=name, run_id=run_id)
        if properties:
            child.add_properties({k: str(v) for k, v in properties.items()})
        return _ChildRun(child)


def stage_model(model_path: Path, model_name: str) -> Path:
    """A copy of the model under the current folder, as a relative path.

    ``Model.register`` (azureml-core 1.61) refuses paths outside the current working directory, and
    on Azure a step's inputs are mounted outside it: register a copy.
    """
    import shutil

    if not model_path.exists():
        raise StepExecutionError(f"model path {str(model_path)!r} does not exist")
    target = Path("amlstep_registered_models") / model_name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    staged = target / model_path.name
    if model_path.is_dir():
        shutil.copytree(model_path, staged)
    else:
        shutil.copy2(model_path, staged)
    return staged


class _ChildRun:
    def __init__(self, run: Any) -> None:
        self.run = run
        self.id = run.id

    def log(self, name: str, value: Any, description: str = "") -> None:
        self.run.log(name, value, description=description)

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        for name, value in metrics.items():
            self.run.log(name, value)

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        self.run.add_properties({k: str(v) for k, v in properties.items()})

    def complete(self) -> None:
        self.run.complete()

    def fail(self, error: str, status: str = "Failed") -> None:
        self.run.fail(error_details=error)


def _dataset_location(spec: StepSpec, port: str, dataset: Any, workdir: Path) -> Path | list[Path]:
    """A named input dataset as files ``load_inputs`` reads: a CSV of a TabularDataset, or downloaded files."""
    declared = spec.input(port)
    if isinstance(dataset, (str, Path)):
        path = Path(dataset)
        return [path] if path.is_file() else path
    if hasattr(dataset, "to_pandas_dataframe") and declared is not None and declared.type is DataType.TABULAR:
        target = workdir / port
        target.mkdir(parents=True, exist_ok=True)
        dataset.to_pandas_dataframe().to_csv(target / f"{port}.csv", index=False)
        return [target / f"{port}.csv"]
    target = workdir / port
    paths = dataset.download(target_path=str(target), overwrite=True)
    return [Path(p) for p in paths]


def run_step(args: argparse.Namespace, *, run: Any = None, plugins: Any = None, local_workspace: Any = None) -> None:
    """Run the step the arguments name; raise StepExecutionError naming it on failure."""
    plugins = plugins or get_plugin_manager()
    spec = plugins.step(args.plugin, f"step {args.step!r}")
    entry.check_code(args, spec, plugins)
    if run is None:
        from azureml.core import Run

        run = Run.get_context()
    params = entry.step_params(spec, dict(args.param), args.step)
    workdir = Path(tempfile.mkdtemp(prefix="amlstep-inputs-"))
    try:
        _run_step_in(args, spec, plugins, run, params, workdir, local_workspace)
    finally:  # the step's dataset downloads: a fake service runs steps on the user's machine, in its /tmp
        shutil.rmtree(workdir, ignore_errors=True)


def _run_step_in(args: argparse.Namespace, spec: Any, plugins: Any, run: Any, params: dict[str, Any], workdir: Path,
                 local_workspace: Any) -> None:
    where = f"step {args.step!r}"
    locations: dict[str, Path | list[Path]] = {}
    input_datasets = dict(getattr(run, "input_datasets", {}) or {})
    for port, named in args.dataset:
        if named not in input_datasets:
            raise StepExecutionError(f"{where}: named input dataset {named!r} is not in the run's input_datasets "
                                     f"({', '.join(input_datasets) or 'none'})", step=args.step)
        locations[port] = _dataset_location(spec, port, input_datasets[named], workdir)
    for port, path in args.input:
        locations[port] = Path(path)
    output_dirs = entry.output_folders(args.output)
    inputs = load_inputs(spec, args.step, locations)
    context = AzureRunContext(run, step_name=args.step, params=params, output_dirs=output_dirs,
                              input_datasets=locations, local_workspace=local_workspace)
    try:
        execute_step(spec, args.step, inputs, params, context, output_dirs)
    finally:
        flush = getattr(run, "flush", None)
        if callable(flush) and type(run).__name__ != "_OfflineRun":
            flush()  # metrics are sent in batches: send what the step logged before the process ends


def main(argv: Sequence[str] | None = None, *, plugins: Any = None) -> None:
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    import framework

    print(f"amlstep: step {args.step!r}, plugin {args.plugin!r}, code {args.code[:16]}, amlstep from "
          f"{Path(framework.__file__).parent.parent}", flush=True)
    run_step(args, plugins=plugins)
