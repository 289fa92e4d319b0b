"""``amlstep predict MODEL[:VERSION] DATA.csv``: batch inference with a registered model.

The model's source run tells which step trained it and which preparation produced its training
data: the step runs upstream of that data, with their plugins and parameters. The step's plugin
says how to predict with the model (the ``model_predictor`` hook: the AutoML plugin answers for
AutoML steps). The preparation's plugin functions run again, through ``framework.execution``
(the path every backend uses), on the new file in place of the dataset they read in training,
each given what it learned from the training rows (its ``learned`` outputs, so a row's
prediction does not depend on the other rows); the prepared rows go to the predictor (AutoML:
the model's ``predict``, and ``predict_proba`` for classification).

A pickled model runs code when loaded: predict only loads models from the workspace's model
registry.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import click

from ..context import RunContext
from ..errors import AmlStepError, StepExecutionError, WorkspaceError
from ..hookspecs import hookimpl
from ..workspace.names import short_id

if TYPE_CHECKING:
    import pandas as pd

    from ..manager import Plugins
    from ..workspace import LocalWorkspace


class InferenceRunContext(RunContext):
    """The run context a preparation step gets during batch inference: nothing is recorded."""

    backend = "predict"

    def __init__(self, step_name: str, params: Mapping[str, Any], output_dirs: Mapping[str, Path],
                 output_names: Mapping[str, str]) -> None:
        super().__init__(run_id=f"predict_{step_name}", step_name=step_name, experiment_name="predict",
                         pipeline_run_id=None, params=params, output_dirs=output_dirs, output_names=output_names)
        self.metrics: dict[str, list[Any]] = {}
        self.properties: dict[str, Any] = {}

    def log(self, name: str, value: Any, description: str = "") -> None:
        self.metrics.setdefault(name, []).append(value)

    def get_metrics(self) -> dict[str, Any]:
        return {k: v[0] if len(v) == 1 else v for k, v in self.metrics.items()}

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        self.properties.update(properties)

    def register_model(self, *args: Any, **kwargs: Any) -> Any:
        raise StepExecutionError(f"step {self.step_name!r} registers a model; preparation steps re-run for "
                                 f"prediction must not", step=self.step_name)

    def child_run(self, *args: Any, **kwargs: Any) -> Any:
        raise StepExecutionError(f"step {self.step_name!r} starts child runs; it cannot be re-run for prediction",
                                 step=self.step_name)


@dataclass
class Prediction:
    """What ``predict`` returns: the output table and how it was made."""

    frame: pd.DataFrame
    model: str
    run_id: str
    label: str
    task: str
    steps: list[str] = field(default_factory=list)
    replaced: str | None = None
    notes: list[str] = field(default_factory=list)


def predict(workspace: LocalWorkspace, plugins: Plugins, model_ref: str, data: str | Path, *,
            dataset: str | None = None, keep: list[str] | None = None, name: str | None = None) -> Prediction:
    """Apply registered model ``model_ref`` (``NAME`` or ``NAME:VERSION``) to the rows of ``data``.

    Args:
        dataset: which training dataset ``data`` stands in for, when the preparation read several.
        keep: input columns to copy into the output (default: all, when the preparation kept the
            row count; when it did not, the output holds the prepared rows, label column included).
        name: what messages call ``data`` (default: its file name).
    """
    import pickle

    import pandas as pd

    from ..execution import execute_step, load_inputs
    from ..io import check_delimited_file, read_input, read_tabular
    from ..reuse import code_hash
    from ..steps import DataType
    from .lineage import AZURE_PREFIX, DatasetRef, azure_model, local_model, single_model_file, trainer_of

    if model_ref.startswith(AZURE_PREFIX):  # registered on Azure by a run read back here, checked by hash
        model_version = azure_model(workspace, model_ref)
    else:
        model_version = local_model(workspace, model_ref)
    model_version.check_files()
    lineage, _, predictor = trainer_of(workspace, model_version,
                                       lambda lineage, step: plugins.hook.model_predictor(lineage=lineage, step=step))
    training_source, label = predictor.training()
    path = Path(data)
    shown = name or path.name
    check_delimited_file(path, f"prediction data {name or str(data)!r}")
    raw = read_tabular([path], f"prediction data {name or str(data)!r}")
    chain = lineage.chain(training_source)
    notes: list[str] = []
    if model_version.properties.get("sample"):
        notes.append(f"model {model_version.id} was trained on a sample of its data ({model_version.properties['sample']}"
                     f", amlstep run --sample): retrain it on the full data before relying on its predictions")

    # the dataset the new file stands in for
    datasets = {src for step in chain for src in lineage.inputs(step).values() if DatasetRef.parse(src)}
    if not chain and DatasetRef.parse(training_source):
        datasets = {training_source}
    by_name = {DatasetRef.parse(s).name: s for s in datasets}  # type: ignore[union-attr]
    if dataset is not None:
        if dataset not in by_name:
            raise WorkspaceError(f"--dataset {dataset!r} is not read by the preparation of model {model_version.id}; "
                                 f"it reads: {', '.join(sorted(by_name)) or '(no dataset)'}")
        replaced = by_name[dataset]
    elif len(by_name) == 1:
        replaced = next(iter(by_name.values()))
    else:
        raise WorkspaceError(f"the preparation of model {model_version.id} reads several datasets "
                             f"({', '.join(sorted(by_name))}); say which one {shown} replaces with --dataset NAME")

    with tempfile.TemporaryDirectory(prefix="amlstep-predict-") as tmp:
        produced: dict[str, Path] = {}
        for step in chain:
            plugin = step.properties.get("plugin", "")
            spec = plugins.step(plugin, f"step {step.name!r} of run {lineage.run.id}")
            recorded = (step.reuse_components or {}).get("code")
            if recorded and recorded != code_hash(spec):
                notes.append(f"the code of plugin {plugin!r} changed since model {model_version.id} was trained")
            locations: dict[str, Path | list[Path]] = {}
            for port, source in lineage.inputs(step).items():
                if source == replaced:
                    locations[port] = [path]
                elif source in produced:
                    locations[port] = produced[source]
                else:
                    locations[port] = lineage.location(source)
            recorded_outputs = lineage.outputs(step)
            output_names = {o.name: recorded_outputs.get(o.name, o.name) for o in spec.outputs}
            output_dirs = {}
            for port, data_name in output_names.items():
                output_dirs[port] = Path(tmp) / step.name / data_name
                output_dirs[port].mkdir(parents=True)
            params = dict(step.params)
            learned = _learned_state(lineage, step, spec, output_names, model_version)
            context = InferenceRunContext(step.name, params, output_dirs, output_names)
            try:
                values = load_inputs(spec, step.name, locations)
                with contextlib.redirect_stdout(sys.stderr):  # stdout may be carrying the predictions
                    execute_step(spec, step.name, values, params, context, output_dirs, learned=learned)
            except AmlStepError:
                raise
            except Exception as exc:
                raise StepExecutionError(
                    f"preparation step {step.name!r} ({plugin}) failed on {shown}: {type(exc).__name__}: {exc}",
                    step=step.name) from exc
            for port, data_name in output_names.items():
                produced[data_name] = output_dirs[port]
        if chain:
            prepared = read_input(DataType.TABULAR, produced[training_source], f"prepared data {training_source!r}")
        else:
            prepared = raw

        # only from the workspace's model registry, and only while its files match the registered sha256
        model = pickle.loads(model_version.read_verified(single_model_file(model_version)))  # noqa: S301
    predictions = predictor.predict(model, prepared, model_id=model_version.id, file_name=shown, notes=notes)
    made: dict[str, Any] = {"model": model_version.id, "run_id": lineage.run.id, "label": str(label),
            "task": str(getattr(predictor, "task", "") or ""),
            "steps": [f"{s.name} ({s.properties.get('plugin')})" for s in chain],
            "replaced": str(DatasetRef.parse(replaced)) if replaced and DatasetRef.parse(replaced) else None}
    if predictions.table is not None:  # the predictor chose the rows (a forecast)
        return Prediction(frame=predictions.table, notes=notes, **made)
    if len(prepared) == len(raw):
        columns = [c for c in (keep if keep is not None else list(raw.columns)) if c in raw.columns]
        unknown = [c for c in (keep or []) if c not in raw.columns]
        if unknown:
            raise WorkspaceError(f"--keep names unknown column(s) {', '.join(map(repr, unknown))}; "
                                 f"columns of {shown}: {', '.join(map(str, raw.columns))}")
        out = raw[columns].reset_index(drop=True).copy()
    else:
        if keep is not None:
            raise WorkspaceError(f"--keep copies input columns row by row, but the preparation turned the {len(raw)} "
                                 f"rows of {shown} into {len(prepared)}; without --keep the output holds the prepared "
                                 f"rows, the label column included")
        notes.append(f"the preparation changed the number of rows ({len(raw)} -> {len(prepared)}); the output "
                     f"holds the prepared rows")
        rows = predictions.rows if predictions.rows is not None else prepared
        if label in prepared.columns and label not in rows.columns and len(prepared) == len(rows):
            rows = prepared  # the prepared rows as they are, the label column included
        out = rows.reset_index(drop=True).copy()
    for column, values in predictions.columns.items():
        out[column] = values
    return Prediction(frame=pd.DataFrame(out), notes=notes, **made)


def _learned_state(lineage: Any, step: Any, spec: Any, output_names: Mapping[str, str], model: Any) -> dict[str, Any]:
    """What the training run of ``step`` learned (its learned outputs), to apply to the new rows: as the registered
    model carries it, else from the training run's outputs (models registered before models carried it).

    A learned output recorded nowhere is an error: learning again from the new rows would make each row's
    prediction depend on the other rows of the file, and differ from the training preparation's."""
    from ..execution import read_learned

    learned: dict[str, Any] = {}
    carried = model.learned.get(step.name) or {}
    for declared in spec.learned_outputs:
        if declared.name in carried:
            learned[declared.name] = carried[declared.name]
            continue
        data_name = output_names.get(declared.name, declared.name)
        if declared.name not in (step.outputs or {}):
            raise WorkspaceError(
                f"model {model.id} carries no learned output {declared.name!r} of step {step.name!r}, and the run "
                f"that trained it recorded none (an older version of plugin {spec.name!r}); without it the "
                f"preparation would learn from the new rows instead of the training rows, and predict otherwise "
                f"than the model was trained. Run the pipeline again to register a model that carries it")
        location = lineage.location(data_name)
        learned[declared.name] = read_learned(Path(location) if not isinstance(location, list) else location[0],
                                              f"learned output {declared.name!r} of step {step.name!r}")
    return learned


@click.command("predict")
@click.argument("model")
@click.argument("data", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--out", "-o", type=click.Path(dir_okay=False, allow_dash=True), default="-", show_default=True,
              help="Where to write the predictions CSV ('-' for standard output).")
@click.option("--dataset", "-d", help="The training dataset DATA stands in for, if the preparation read several.")
@click.option("--keep", "-k", help="Comma-separated input columns to copy into the output (default: all).")
def predict_command(model: str, data: str, out: str, dataset: str | None, keep: str | None) -> None:
    """Predict with a registered model on the rows of a CSV.

    Applies MODEL (NAME or NAME:VERSION) to DATA ('-' for standard input), after re-running the
    training pipeline's preparation steps on it with what they learned from the training rows.
    azure:NAME[:VERSION] is a model registered in the Azure workspace by a run of the local run history
    (read back when it ended, or with `amlstep runs follow`): its downloaded files, checked by hash
    against the download and the registry's copy before they are loaded.

    Writes the input columns plus predicted_<label> and, for classification, proba_<class> columns.
    Models are loaded only from the workspace's model registry (a pickle runs code when loaded).
    """
    from .common import EXIT_BAD_INPUT, State, fail

    state = click.get_current_context().find_object(State)
    assert state is not None
    try:
        with _data_file(data) as (path, name):
            result = predict(state.workspace, state.plugins, model, path, dataset=dataset, name=name,
                             keep=[c.strip() for c in keep.split(",") if c.strip()] if keep else None)
    except AmlStepError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
        return
    for note in result.notes:
        click.echo(f"Warning: {note}", err=True)
    if out == "-":
        result.frame.to_csv(sys.stdout, index=False)
    else:
        from ..io import write_atomically

        try:  # the complete file or the one that was there, never a truncated one
            write_atomically(out, lambda f: result.frame.to_csv(f, index=False), "the predictions")
        except AmlStepError as exc:
            fail(str(exc), EXIT_BAD_INPUT)
            return
    via = ", ".join(result.steps) or "no preparation step"
    click.echo(f"Predicted {result.label} for {len(result.frame)} rows with model {result.model} "
               f"(trained in run {short_id(result.run_id)}; prepared by {via})" + ("" if out == "-" else f"; wrote {out}"),
               err=True)


@contextlib.contextmanager
def _data_file(data: str) -> Iterator[tuple[Path, str | None]]:
    """``(path, name for messages)`` of DATA: the file, or standard input (``-``) copied into a temporary file."""
    if data != "-":
        yield Path(data), None
        return
    with tempfile.TemporaryDirectory(prefix="amlstep-predict-stdin-") as folder:
        path = Path(folder) / "stdin.csv"
        stdin = getattr(sys.stdin, "buffer", None)
        with open(path, "wb") as copy:
            if stdin is not None:
                shutil.copyfileobj(stdin, copy)
            else:
                copy.write(sys.stdin.read().encode())
        yield path, "standard input"


@hookimpl
def register_commands(cli: Any) -> None:
    cli.add_command(predict_command)


__all__ = ["InferenceRunContext", "Prediction", "predict", "predict_command"]
