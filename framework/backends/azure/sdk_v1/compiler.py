"""The validated graph compiled to Azure ML SDK v1 objects. Nothing here submits anything.

Each plugin step becomes a ``PythonScriptStep`` running the generic entry script
(``script/amlstep_entry.py``) with arguments that name the step, its plugin, its code hash, its
parameters and its data; the built-in AutoML step becomes ``AutoMLConfig`` + ``AutoMLStep`` with
``PipelineData`` outputs bound to ``TrainingOutput('Metrics')`` / ``TrainingOutput('Model')``.
Data between plugin steps is an ``OutputFileDatasetConfig`` (``read_delimited_files()`` when it
trains AutoML). Pipeline parameters used by plugin steps become ``PipelineParameter``s; AutoML
settings cannot be pipeline parameters in SDK v1, so their values are fixed at compile time (the
plan says so).

:func:`build` is what ``CompilerV1.compile_pipeline`` (``sdk_v1``: the one compiler interface) runs;
the SDK v2 compiler (``sdk_v2``) takes the same ``ValidatedPipeline`` and returns the same
``CompiledPipeline`` (``..compiled``); ``..compilers`` chooses between them by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .... import reuse as reuse_rule
from ....errors import BackendError
from ....manager import Plugins
from ....pipeline import Dataset, PipelineParameter, StepBinding, ValidatedPipeline
from ..compiled import (SCRIPT_DIR, SCRIPT_NAME, CompiledPipeline, CompiledStep, check_automl_budget, code_hash,
                        compile_steps, refused, reuse_record)
from .sdk import sdk
from ..shipping import Shipment, Wheel, WheelBuilder, step_distributions

SDK = "Azure ML SDK"  # in messages: "the Azure ML SDK refused ..."
# AutoML step output port -> TrainingOutput type.
TRAINING_OUTPUTS = {"metrics": "Metrics", "model": "Model"}


@dataclass
class Resources:
    """What the compiler needs from a workspace, real or offline.

    Args:
        workspace: an ``azureml.core.Workspace``.
        compute: name -> ``ComputeTarget`` (AutoMLConfig needs the object, not a string).
        dataset: a pipeline ``Dataset`` -> the registered ``TabularDataset``.
        datastore: the datastore PipelineData is written to (the default one).
        wheels: builds the wheels steps ship (``shipping.WheelBuilder``).
        ship: a built wheel -> the pip requirement naming it in the environment (the URL
            ``Environment.add_private_pip_wheel`` returns; a placeholder in dry runs).
    """

    workspace: Any
    compute: Callable[[str], Any]
    dataset: Callable[[Dataset], Any]
    datastore: Any
    wheels: WheelBuilder = field(default_factory=WheelBuilder)
    ship: Callable[[Wheel], str] = field(default=lambda wheel: f"<private wheel {wheel.filename}>")


def build(validated: ValidatedPipeline, resources: Resources, *, plugins: Plugins,
          params: Mapping[str, Any] | None = None, compute: str | None = None, reuse: bool = True) -> CompiledPipeline:
    """Build the SDK v1 objects of ``validated`` against ``resources``; ``params`` are submit-time parameter values.

    ``reuse=False`` (``--no-reuse``) compiles every step with ``allow_reuse=False``.
    """
    api = sdk()
    values = validated.resolve_parameters(params)
    parameters: dict[str, Any] = {}
    baked: dict[str, list[str]] = {}
    producers: dict[str, Any] = {}          # data name -> the SDK object a producer step writes
    producer_kind: dict[str, str] = {}      # data name -> "file" | "pipeline_data"
    pipeline_outputs = {data: out for out, data in validated.pipeline.outputs.items()}
    compiled: list[CompiledStep] = []

    def parameter(p: PipelineParameter) -> Any:
        if p.name not in parameters:
            parameters[p.name] = api.PipelineParameter(p.name, default_value=p.default_value)
        return parameters[p.name]

    for binding, target in compile_steps(validated, compute=compute, reuse=reuse):
        with refused(SDK, "the compiled step", f"step {binding.name!r}", _first_line):
            if binding.spec.kind == "automl":
                step = _automl_step(api, validated, binding, resources, target, values, producers, producer_kind,
                                    pipeline_outputs, baked)
            else:
                step = _script_step(api, plugins, binding, resources, target, values, parameter, producers,
                                    producer_kind, pipeline_outputs)
        compiled.append(step)
    with refused(SDK, "the pipeline", reason=_first_line):
        pipeline = api.Pipeline(resources.workspace, [c.sdk_step for c in compiled],
                                description=validated.pipeline.description or validated.experiment,
                                default_datastore=resources.datastore)
    return CompiledPipeline(validated=validated, pipeline=pipeline, steps=compiled, parameters=parameters,
                            parameter_values=values, baked_parameters=baked,
                            pipeline_outputs=dict(validated.pipeline.outputs), datasets=validated.datasets(),
                            experiment=validated.experiment)


def _first_line(exc: BaseException) -> str:
    """The first line of an SDK v1 error, after its ``Message:`` label."""
    text = str(exc).strip()
    if "Message:" in text:
        text = text.split("Message:", 1)[1]
    text = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return text.strip(" :\"',")


def azure_forecasting_parameters(value: Any) -> Any:
    """Azure's ``ForecastingParameters`` for the step's (emulator object, dict, or Azure's own: kept)."""
    from azureml.automl.core.forecasting_parameters import ForecastingParameters

    if isinstance(value, ForecastingParameters):
        return value
    from framework.automl import PARAMETERS, parameters_of

    given = {k: v for k, v in parameters_of(value).items()
             if k in PARAMETERS and k != "drop_column_names" and v is not None and v != PARAMETERS[k]}
    return ForecastingParameters(**given)


def _environment(api: Any, plugins: Plugins, binding: StepBinding, resources: Resources) -> tuple[Any, dict[str, Any]]:
    """The step's environment: pinned requirements from the index plus the wheels shipped with it."""
    shipment: Shipment = resources.wheels.shipment(step_distributions(plugins, binding))
    try:
        urls = [resources.ship(wheel) for wheel in shipment.wheels]
    except BackendError:
        raise
    except Exception as exc:
        raise BackendError(f"step {binding.name!r}: could not upload the wheels it ships "
                           f"({', '.join(w.filename for w in shipment.wheels)}) to the workspace: "
                           f"{type(exc).__name__}: {_first_line(exc)}") from exc
    env = api.Environment(name=f"amlstep-{binding.plugin}".replace("_", "-"))
    env.python.conda_dependencies = api.CondaDependencies.create(
        python_version=shipment.python, pip_packages=[*shipment.requirements, *urls], pin_sdk_version=False)
    runconfig = api.RunConfiguration()
    runconfig.environment = env
    return runconfig, {"name": env.name, **shipment.describe()}


def _script_step(api: Any, plugins: Plugins, binding: StepBinding, resources: Resources, target: str,
                 values: Mapping[str, Any], parameter: Callable[[PipelineParameter], Any],
                 producers: dict[str, Any], producer_kind: dict[str, str],
                 pipeline_outputs: Mapping[str, str]) -> CompiledStep:
    spec = binding.spec
    code = code_hash(spec)
    arguments: list[Any] = ["--amlstep-step", binding.name, "--amlstep-plugin", binding.plugin,
                            "--amlstep-code", code]
    inputs: list[Any] = []
    for name in sorted(binding.params):
        value = binding.params[name]
        if isinstance(value, PipelineParameter):
            arguments += ["--param", name, parameter(value)]
        else:
            declared = spec.param(name)
            arguments += ["--param", name, declared.format(value) if declared is not None else _text(value)]
    bindings: dict[str, str] = {}
    for port in sorted(binding.inputs):
        source = binding.inputs[port]
        if isinstance(source, Dataset):
            consumption = resources.dataset(source).as_named_input(port)
            inputs.append(consumption)
            arguments += ["--dataset", port, port]
            bindings[port] = f"dataset:{source.name}:{source.version or 'latest'}"
        else:
            upstream = producers[source]
            if producer_kind[source] == "file":
                consumed = upstream.as_input(name=port)
                arguments += ["--input", port, consumed]
            else:
                inputs.append(upstream)
                arguments += ["--input", port, upstream]
            bindings[port] = f"data:{source}"
    outputs: dict[str, Any] = {}
    pipeline_data: list[Any] = []
    for port, data in sorted(binding.outputs.items()):
        if data in pipeline_outputs:  # a pipeline output by name needs PipelineData(pipeline_output_name=...)
            out = api.PipelineData(data, datastore=resources.datastore, pipeline_output_name=pipeline_outputs[data])
            producer_kind[data] = "pipeline_data"
            pipeline_data.append(out)
        else:
            out = api.OutputFileDatasetConfig(name=data)
            producer_kind[data] = "file"
        arguments += ["--output", port, out]
        producers[data] = out
        outputs[port] = out
    runconfig, env = _environment(api, plugins, binding, resources)
    step = api.PythonScriptStep(
        name=binding.name, script_name=SCRIPT_NAME, source_directory=str(SCRIPT_DIR), arguments=arguments,
        inputs=inputs or None, outputs=pipeline_data or None, compute_target=target, runconfig=runconfig,
        allow_reuse=binding.allow_reuse)
    resolved = binding.resolve_params(values)
    reuse = reuse_record(binding, code, resolved, bindings)
    return CompiledStep(binding, step, target, "python", outputs=outputs, environment=env, reuse=reuse)


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _automl_step(api: Any, validated: ValidatedPipeline, binding: StepBinding, resources: Resources, target: str,
                 values: Mapping[str, Any], producers: dict[str, Any], producer_kind: dict[str, str],
                 pipeline_outputs: Mapping[str, str], baked: dict[str, list[str]]) -> CompiledStep:
    settings: dict[str, Any] = {}
    baked_settings: dict[str, str] = {}
    for name, value in binding.params.items():
        if isinstance(value, PipelineParameter):
            settings[name] = values[value.name]
            baked_settings[name] = value.name
            baked.setdefault(value.name, []).append(binding.name)
        else:
            settings[name] = value
    data: dict[str, Any] = {}
    bindings: dict[str, str] = {}
    for port, source in sorted(binding.inputs.items()):
        if isinstance(source, Dataset):
            data[port] = resources.dataset(source)
            bindings[port] = f"dataset:{source.name}:{source.version or 'latest'}"
        elif producer_kind[source] == "file":
            data[port] = producers[source].read_delimited_files()
            bindings[port] = f"data:{source}"
        else:
            data[port] = producers[source].as_dataset().parse_delimited_files()
            bindings[port] = f"data:{source}"
    check_automl_budget(binding, settings)
    if settings.get("forecasting_parameters") is not None:
        settings["forecasting_parameters"] = azure_forecasting_parameters(settings["forecasting_parameters"])
    compute_target = resources.compute(target)
    # debug_log=None: the SDK would otherwise write automl.log into the current folder at compile time
    config = api.AutoMLConfig(compute_target=compute_target, path=str(SCRIPT_DIR), **{"debug_log": None, **settings},
                              **data)
    outputs: dict[str, Any] = {}
    for port, kind in TRAINING_OUTPUTS.items():
        name = binding.outputs[port]
        out = api.PipelineData(name, datastore=resources.datastore, pipeline_output_name=pipeline_outputs.get(name),
                               training_output=api.TrainingOutput(type=kind))
        producers[name] = out
        producer_kind[name] = "pipeline_data"
        outputs[port] = out
    step = api.AutoMLStep(name=binding.name, automl_config=config, passthru_automl_config=False,
                          outputs=[outputs["metrics"], outputs["model"]], enable_default_model_output=False,
                          enable_default_metrics_output=False, allow_reuse=binding.allow_reuse)
    reuse = reuse_record(binding, reuse_rule.code_hash(binding.spec), settings, bindings)
    return CompiledStep(binding, step, target, "automl", outputs=outputs, baked_settings=baked_settings,
                        automl_settings=dict(settings), reuse=reuse)
