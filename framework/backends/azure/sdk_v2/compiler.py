"""The validated graph compiled to Azure ML SDK v2 (``azure-ai-ml``) entities. Nothing here submits anything.

- Each plugin step becomes a ``command`` component (``CommandComponent``) whose code is the generic
  entry script and whose environment is built from a Docker build context: a base image plus a
  conda file that installs the wheels shipped with the submission and the pinned third-party
  requirements. Its inputs and outputs are typed from the ports' ``DataType``: tabular data is an
  ``mltable`` (the step writes an ``MLTable`` file beside its CSV), folders ``uri_folder``, models
  ``custom_model`` (``mlflow_model`` when AutoML made them), metrics and learned outputs (``learned.json``)
  ``uri_folder``.
- The built-in AutoML step becomes ``automl.classification/regression/forecasting(...)`` with
  ``set_limits``/``set_training``/``set_featurization`` and, for forecasting, ``set_forecast_settings``
  (names in ``automl_v2``); its ``best_model``
  output is an ``mlflow_model``. SDK v2 AutoML has no metrics output: a pipeline output bound to
  AutoML's metrics is read from the AutoML job's child runs after the run (``run_history_outputs``).
- Pipeline parameters become inputs of the ``@dsl.pipeline`` function; so do the datasets.
  Parameters feeding AutoML settings are bound as ``${{parent.inputs.NAME}}`` where the node
  accepts a binding (``automl_v2.BINDABLE``); elsewhere their value is fixed at compile time.
- ``allow_reuse`` is the component's ``is_deterministic``; ``--no-reuse`` also sets the pipeline's
  ``force_rerun``. An AutoML node has no such switch in SDK v2, so ``allow_reuse=False`` on an AutoML
  step sets the pipeline's ``force_rerun`` too (every step re-runs; the plan says so).

Step names become node names, which SDK v2 requires to be lower case (``AutoML_Classification``
-> ``automl_classification``); the plan shows both.
"""

from __future__ import annotations

import inspect
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ....errors import BackendError
from ....manager import Plugins
from ....pipeline import Dataset, PipelineParameter, StepBinding, ValidatedPipeline
from ....steps import DataType
from . import automl as automl_v2
from ..compiled import (SCRIPT_DIR, SCRIPT_NAME, CompiledPipeline, CompiledStep, check_automl_budget, code_hash,
                        compile_steps, installed_versions, refused, reuse_record)

NAME = "v2"
LABEL = "Azure ML SDK v2"
DISTRIBUTIONS = ("azure-ai-ml", "azure-identity", "mlflow-skinny")
# what the entry script needs at run time under SDK v2: MLflow for metrics, MLClient for the registry
RUNTIME = DISTRIBUTIONS
IMAGE_WHEELS = "/amlstep/wheels"
IMAGE_ENV = "/azureml-envs/amlstep"
INSTALL_HINT = "pip install 'amlstep[azure]'"
# Azure ML's curated base image for custom environments (Ubuntu 22.04, conda, OpenMPI).
BASE_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"
NODE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")  # the SDK's rule for node names (dsl pipeline builder)
PORT_TYPES = {DataType.TABULAR: "mltable", DataType.FOLDER: "uri_folder", DataType.MODEL: "custom_model",
              DataType.METRICS: "uri_folder", DataType.LEARNED: "uri_folder"}
PARAM_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}
AUTOML_MODEL = "best_model"


def require_sdk() -> None:
    """Raise BackendError naming the ``azure`` extra unless ``azure.ai.ml`` imports."""
    try:
        import azure.ai.ml  # noqa: F401
    except ImportError as exc:
        raise BackendError(f"--sdk v2 needs the Azure ML SDK v2 (azure-ai-ml is not importable: {exc}); "
                           f"install it with: {INSTALL_HINT}") from exc


def versions() -> dict[str, str]:
    return installed_versions(DISTRIBUTIONS)


@dataclass
class CompiledPipelineV2(CompiledPipeline):
    """The SDK v2 ``PipelineJob`` of one pipeline (``pipeline``), ready to submit."""

    node_names: dict[str, str] = field(default_factory=dict)
    run_history_outputs: dict[str, str] = field(default_factory=dict)  # pipeline output -> AutoML step
    assets: Path | None = None
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)


def node_names(validated: ValidatedPipeline) -> dict[str, str]:
    """step name -> SDK v2 node name (lower case); two steps that would share one are an error."""
    names: dict[str, str] = {}
    taken: dict[str, str] = {}
    for binding in validated.steps:
        node = binding.name.lower()
        if not NODE_NAME.match(node):
            raise BackendError(f"step {binding.name!r}: SDK v2 node names use lower-case letters, digits and "
                               f"underscores, not starting with a digit; rename the step")
        if node in taken:
            raise BackendError(f"steps {taken[node]!r} and {binding.name!r} would both be node {node!r} under SDK v2 "
                               f"(node names are lower case); rename one of them")
        taken[node] = binding.name
        names[binding.name] = node
    return names


def build(validated: ValidatedPipeline, *, plugins: Plugins, assets: Path, params: Mapping[str, Any] | None = None,
          compute: str | None = None, reuse: bool = True,
          environment: Callable[[Plugins, StepBinding, Path], dict[str, Any]] | None = None,
          versions: Mapping[str, str] | None = None) -> CompiledPipelineV2:
    """Build the SDK v2 ``PipelineJob`` of ``validated``; ``params`` are submit-time parameter values.

    ``assets`` is an empty folder that receives the code folder and the environments' build
    contexts the job points at (they are uploaded at submission, so it must live until then).
    ``environment(plugins, binding, folder)`` writes a step's build context into ``folder`` and
    returns its description for the plan (the default ships amlstep and the plugin's distribution).
    """
    require_sdk()
    from azure.ai.ml import Input, Output, automl, dsl
    from azure.ai.ml.entities import BuildContext, CommandComponent, Environment, UserIdentityConfiguration

    environment = environment or write_environment
    values = validated.resolve_parameters(params)
    nodes = node_names(validated)
    assets = Path(assets)
    code_dir = assets / "code"
    code_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SCRIPT_DIR / SCRIPT_NAME, code_dir / SCRIPT_NAME)

    pipeline_outputs = {data: out for out, data in validated.pipeline.outputs.items()}
    # pipeline inputs: parameters (typed by their default) and datasets (mltable or uri_folder)
    used_params: dict[str, PipelineParameter] = {}
    baked: dict[str, list[str]] = {}
    parameter_kinds: dict[str, str] = {}
    automl_params: dict[str, dict[str, str]] = {}
    for binding in validated.steps:
        from_params = {k: v.name for k, v in binding.params.items() if isinstance(v, PipelineParameter)}
        if binding.spec.kind == "automl":
            automl_params[binding.name] = from_params
            for setting, name in from_params.items():
                if setting in automl_v2.BINDABLE:
                    used_params[name] = validated.parameters[name]
                    parameter_kinds.setdefault(name, "automl")
                else:
                    baked.setdefault(name, []).append(binding.name)
        else:
            for name in from_params.values():
                used_params[name] = validated.parameters[name]
                parameter_kinds[name] = "command"
    datasets: dict[str, tuple[Dataset, str]] = {}
    for binding in validated.steps:
        for port, source in binding.inputs.items():
            if isinstance(source, Dataset):
                declared = binding.spec.input(port)
                kind = "mltable" if declared is None or declared.type is DataType.TABULAR else "uri_folder"
                known = datasets.get(source.name)
                if known is not None and known[1] != kind:
                    raise BackendError(f"dataset {source.name!r} is read as {known[1]} and as {kind} (step "
                                       f"{binding.name!r} input {port!r}); SDK v2 data assets have one type")
                datasets[source.name] = (source, kind)
    clash = sorted(set(datasets) & set(used_params))
    if clash:
        raise BackendError(f"pipeline parameter {clash[0]!r} has the name of a dataset; SDK v2 pipeline inputs share "
                           f"one namespace: rename the parameter")

    envs: dict[str, dict[str, Any]] = {}
    env_objects: dict[str, Any] = {}
    compiled_steps: list[CompiledStep] = []
    run_history_outputs: dict[str, str] = {}
    consumer_errors: list[str] = []
    node_objects: dict[str, Any] = {}

    def step_environment(binding: StepBinding) -> tuple[Any, dict[str, Any]]:
        folder = assets / "environments" / _env_key(plugins, binding)
        key = folder.name
        if key not in env_objects:
            folder.mkdir(parents=True, exist_ok=True)
            described = environment(plugins, binding, folder)
            envs[key] = described
            env_objects[key] = Environment(build=BuildContext(path=str(folder)),
                                           description=f"amlstep step environment ({key})")
        return env_objects[key], envs[key]

    def body(**inputs):  # type: ignore[no-untyped-def]  # annotated below, for the dsl builder
        produced: dict[str, tuple[Any, str, str]] = {}  # data -> (node output, v2 type, producing step)
        returned: dict[str, Any] = {}
        for binding, target in compile_steps(validated, compute=compute, reuse=reuse):
            with refused(LABEL, "the compiled step", f"step {binding.name!r}"):
                if binding.spec.kind == "automl":
                    node, compiled = _automl_node(automl, Input, Output, validated, binding, nodes[binding.name],
                                                  target, values, inputs, produced, automl_params[binding.name])
                    for port, data in binding.outputs.items():
                        if port == "model":
                            produced[data] = (node.outputs[AUTOML_MODEL], "mlflow_model", binding.name)
                        elif data in pipeline_outputs:
                            run_history_outputs[pipeline_outputs[data]] = binding.name
                        if port != "model":
                            produced[data] = (None, "run_history", binding.name)
                else:
                    env, env_plan = step_environment(binding)
                    node, compiled = _command_node(CommandComponent, Input, Output, UserIdentityConfiguration, binding,
                                                   nodes[binding.name], target, code_dir, env, env_plan, inputs,
                                                   produced)
                    for port, data in binding.outputs.items():
                        produced[data] = (node.outputs[port], _port_type(binding.output_type(port)), binding.name)
            node_objects[binding.name] = node
            compiled_steps.append(compiled)
        for data, out in pipeline_outputs.items():
            entity, kind, _ = produced[data]
            if entity is not None:
                returned[out] = entity
        return returned

    def check_consumers() -> None:
        run_history = {data for port, data in ((p, d) for b in validated.steps if b.spec.kind == "automl"
                                               for p, d in b.outputs.items()) if port != "model"}
        for binding in validated.steps:
            for port, source in binding.inputs.items():
                if isinstance(source, str) and source in run_history:
                    consumer_errors.append(
                        f"step {binding.name!r}: input {port!r} reads AutoML's metrics {source!r}, which SDK v2 "
                        f"AutoML nodes do not output (only {AUTOML_MODEL}); read them from the AutoML job's child "
                        f"runs after the run, or use --sdk v1")

    check_consumers()
    if consumer_errors:
        raise BackendError(consumer_errors[0])
    for name, param in used_params.items():
        if type(param.default_value) not in PARAM_TYPES:
            raise BackendError(f"pipeline parameter {name!r}: SDK v2 pipeline inputs are str, int, float or bool, "
                               f"got {type(param.default_value).__name__} {param.default_value!r}")

    signature = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                   annotation=Input(type=kind, description=f"dataset {d.name}"))
                 for name, (d, kind) in sorted(datasets.items())]
    signature += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=p.default_value,
                                    annotation=Input(type=PARAM_TYPES[type(p.default_value)]))
                  for name, p in sorted(used_params.items())]
    body.__signature__ = inspect.Signature(signature)  # type: ignore[attr-defined]
    body.__annotations__ = {p.name: p.annotation for p in signature}
    body.__name__ = re.sub(r"\W", "_", validated.experiment)
    body.__qualname__ = body.__name__
    description = validated.pipeline.description or f"amlstep pipeline {validated.experiment}"
    pipeline_builder: Any = dsl.pipeline(  # type: ignore[call-overload]
        name=validated.experiment, display_name=validated.experiment, description=description,
        experiment_name=validated.experiment, default_compute=validated.pipeline.compute_target or compute or "cpu-cluster",
        continue_on_step_failure=validated.pipeline.continue_on_step_failure, force_rerun=not reuse)
    call = {name: Input(type=kind, path=_data_path(d, versions)) for name, (d, kind) in datasets.items()}
    call.update({name: values[name] for name in used_params})
    with refused(LABEL, "the pipeline"):
        job = pipeline_builder(body)(**call)
    if not reuse or any(b.spec.kind == "automl" and not b.allow_reuse for b in validated.steps):
        job.settings.force_rerun = True
    parameters = {name: job.inputs[name] for name in used_params}
    baked = {name: sorted(set(steps)) for name, steps in baked.items() if name not in used_params}
    return CompiledPipelineV2(
        validated=validated, pipeline=job, steps=compiled_steps, parameters=parameters, parameter_values=values,
        baked_parameters=baked, pipeline_outputs=dict(validated.pipeline.outputs),
        datasets=[d for d, _ in datasets.values()], experiment=validated.experiment, sdk_version=NAME,
        node_names=nodes, run_history_outputs=run_history_outputs, assets=assets, environments=envs)


def _data_path(dataset: Dataset, versions: Mapping[str, str] | None = None) -> str:
    # the SDK resolves "name@label" and "name:version" (its YAML dump writes them with the "azureml:" prefix)
    version = dataset.version or (versions or {}).get(dataset.name)
    return f"{dataset.name}:{version}" if version else f"{dataset.name}@latest"


def _env_key(plugins: Plugins, binding: StepBinding) -> str:
    owner = plugins.step_owners.get(binding.plugin)
    dist = plugins.distributions.get(owner or "") or "amlstep"
    return re.sub(r"[^a-z0-9]+", "-", dist.lower()).strip("-")


def write_environment(plugins: Plugins, binding: StepBinding, folder: Path) -> dict[str, Any]:
    """Write a step's Docker build context: the base image, the shipped wheels and a conda file installing them.

    The wheels (amlstep and the plugin's distribution, built here by ``shipping``) travel inside the
    build context because the image build cannot see the code snapshot; the conda file installs
    them from where the Dockerfile copies them, plus the third-party requirements pinned to the
    versions installed here and what an SDK v2 job's run context needs (``RUNTIME``).
    """
    import yaml  # type: ignore[import-untyped]

    from ..shipping import WheelBuilder, pinned_requirements, python_version, step_distributions

    builder = WheelBuilder()
    wheels = [builder.wheel(name) for name in step_distributions(plugins, binding)]
    requirements = pinned_requirements([w.distribution for w in wheels], runtime=RUNTIME)
    (folder / "wheels").mkdir(exist_ok=True)
    for wheel in wheels:
        shutil.copyfile(wheel.path, folder / "wheels" / wheel.filename)
    pip = [f"{IMAGE_WHEELS}/{w.filename}" for w in wheels] + requirements
    conda = {"name": "amlstep", "channels": ["conda-forge"],
             "dependencies": [f"python={python_version()}", "pip", {"pip": pip}]}
    (folder / "conda.yaml").write_text(yaml.safe_dump(conda, sort_keys=False))
    (folder / "Dockerfile").write_text(dockerfile())
    return {"image": BASE_IMAGE, "python": python_version(), "pip": requirements,
            "wheels": [w.describe() for w in wheels]}


def dockerfile() -> str:
    """FROM the base image; COPY the conda file and the wheels; create the step's conda environment from them
    in a prefix of its own and put it first on PATH (as Azure's curated images do: the base image's own
    conda environment, and its Python, stay as they are)."""
    return "\n".join([f"FROM {BASE_IMAGE}", "COPY conda.yaml /amlstep/conda.yaml", f"COPY wheels {IMAGE_WHEELS}",
                      f"RUN conda env create -p {IMAGE_ENV} -f /amlstep/conda.yaml && conda clean --all --yes",
                      f"ENV PATH={IMAGE_ENV}/bin:$PATH"]) + "\n"


def _port_type(kind: DataType) -> str:
    return PORT_TYPES[kind]


def _command_node(CommandComponent: Any, Input: Any, Output: Any, UserIdentityConfiguration: Any, binding: StepBinding,
                  node_name: str, target: str, code_dir: Path, env: Any, env_plan: dict[str, Any],
                  pipeline_inputs: Mapping[str, Any], produced: Mapping[str, tuple[Any, str, str]],
                  ) -> tuple[Any, CompiledStep]:
    spec = binding.spec
    code = code_hash(spec)
    words = ["python", SCRIPT_NAME, "--amlstep-sdk", NAME, "--amlstep-step", binding.name, "--amlstep-plugin",
             binding.plugin, "--amlstep-code", code]
    command = [shlex.join(words)]
    comp_inputs: dict[str, Any] = {}
    comp_outputs: dict[str, Any] = {}
    kwargs: dict[str, Any] = {}
    bindings: dict[str, str] = {}
    described_inputs: list[str] = []
    for name in sorted(binding.params):
        value = binding.params[name]
        if isinstance(value, PipelineParameter):
            kind = PARAM_TYPES.get(type(value.default_value), "string")
            comp_inputs[name] = Input(type=kind)
            kwargs[name] = pipeline_inputs[value.name]
            quoted = f"'${{{{inputs.{name}}}}}'" if kind == "string" else f"${{{{inputs.{name}}}}}"
            command.append(f"--param {name} {quoted}")
            described_inputs.append(f"{name}: {kind} <- pipeline input {value.name}")
        else:
            declared = spec.param(name)
            text = declared.format(value) if declared is not None else str(value)
            command.append(f"--param {name} {shlex.quote(text)}")
    for port in sorted(binding.inputs):
        source = binding.inputs[port]
        if port in comp_inputs:
            raise BackendError(f"step {binding.name!r}: input {port!r} has the name of a parameter; SDK v2 "
                               f"components have one namespace for both")
        if isinstance(source, Dataset):
            port_spec = spec.input(port)
            kind = "mltable" if port_spec is None or port_spec.type is DataType.TABULAR else "uri_folder"
            kwargs[port] = pipeline_inputs[source.name]
            bindings[port] = f"dataset:{source.name}:{source.version or 'latest'}"
            described_inputs.append(f"{port}: {kind} <- dataset {source.name}")
        else:
            entity, kind, producer = produced[source]
            kwargs[port] = entity
            bindings[port] = f"data:{source}"
            described_inputs.append(f"{port}: {kind} <- {producer}.{source}")
        comp_inputs[port] = Input(type=kind)
        command.append(f"--input {port} ${{{{inputs.{port}}}}}")
    described_outputs = []
    for port, data in sorted(binding.outputs.items()):
        kind = _port_type(binding.output_type(port))
        comp_outputs[port] = Output(type=kind)
        command.append(f"--output {port} ${{{{outputs.{port}}}}}")
        described_outputs.append(f"{port}: {kind} -> {data}")
    component = CommandComponent(
        display_name=binding.name, description=spec.description or None,
        code=str(code_dir), command=" ".join(command), environment=env,
        inputs=comp_inputs, outputs=comp_outputs, is_deterministic=binding.allow_reuse)
    node = component(**kwargs)
    node.name = node_name
    node.display_name = binding.name
    node.compute = target
    # the submitting user's identity, so that context.register_model can call the workspace from the job
    node.identity = UserIdentityConfiguration()
    resolved = {k: v for k, v in binding.params.items() if not isinstance(v, PipelineParameter)}
    reuse = reuse_record(binding, code, resolved, bindings, params_from_pipeline=sorted(
        v.name for v in binding.params.values() if isinstance(v, PipelineParameter)))
    outputs = {port: node.outputs[port] for port in binding.outputs}
    compiled = CompiledStep(binding, node, target, "command", outputs=outputs, environment=env_plan, reuse=reuse)
    compiled.plan_inputs = described_inputs  # type: ignore[attr-defined]
    compiled.plan_outputs = described_outputs  # type: ignore[attr-defined]
    return node, compiled


def _automl_node(automl: Any, Input: Any, Output: Any, validated: ValidatedPipeline, binding: StepBinding,
                 node_name: str, target: str, values: Mapping[str, Any], pipeline_inputs: Mapping[str, Any],
                 produced: Mapping[str, tuple[Any, str, str]], from_params: Mapping[str, str]) -> tuple[Any, CompiledStep]:
    settings = binding.resolve_params(values)
    given = {k: settings[k] for k in binding.params if k in settings}
    check_automl_budget(binding, given)
    sorted_settings = dict(given)
    if settings.get("forecasting_parameters") is not None:  # ForecastingParameters merged with the flat keywords
        sorted_settings["forecasting_parameters"] = settings["forecasting_parameters"]
    v2 = automl_v2.to_v2(binding.name, sorted_settings, from_params)

    def value(item: Any) -> Any:
        if isinstance(item, tuple) and len(item) == 2 and item[0] == "input":
            return pipeline_inputs[item[1]]
        return item

    data: dict[str, Any] = {}
    bindings: dict[str, str] = {}
    described_inputs = []
    for port, source in sorted(binding.inputs.items()):
        if isinstance(source, Dataset):
            data[port] = pipeline_inputs[source.name]
            bindings[port] = f"dataset:{source.name}:{source.version or 'latest'}"
            described_inputs.append(f"{port}: mltable <- dataset {source.name}")
        else:
            entity, kind, producer = produced[source]
            if kind != "mltable":
                raise BackendError(f"step {binding.name!r}: AutoML {port} must be tabular data (an MLTable); "
                                   f"{source!r} from step {producer!r} is {kind}")
            data[port] = entity
            bindings[port] = f"data:{source}"
            described_inputs.append(f"{port}: mltable <- {producer}.{source}")
    factory = getattr(automl, v2.task)
    task_kwargs = {k: value(v) for k, v in v2.task_kwargs.items()}
    node = factory(**data, **task_kwargs, outputs={AUTOML_MODEL: Output(type="mlflow_model")})
    if v2.forecasting:
        node.set_forecast_settings(**v2.forecasting)
    if v2.limits:
        node.set_limits(**{k: value(v) for k, v in v2.limits.items()})
    training = dict(v2.training)
    if v2.stack_ensemble:
        from azure.ai.ml.automl import StackEnsembleSettings

        training["stack_ensemble_settings"] = StackEnsembleSettings(**v2.stack_ensemble)
    if training:
        node.set_training(**training)
    if v2.featurization:
        featurization = dict(v2.featurization)
        if "transformer_params" in featurization:
            from azure.ai.ml.automl import ColumnTransformer

            featurization["transformer_params"] = {
                name: [ColumnTransformer(fields=u["fields"], parameters=u["parameters"]) for u in uses]
                for name, uses in featurization["transformer_params"].items()}
        node.set_featurization(**featurization)
    node.name = node_name
    node.display_name = binding.name
    node.compute = target
    fixed = automl_v2.fixed_parameters(v2, from_params)
    reuse = reuse_record(binding, code_hash(binding.spec), given, bindings)
    compiled = CompiledStep(binding, node, target, "automl", outputs={"model": node.outputs[AUTOML_MODEL]},
                            baked_settings=fixed, automl_settings=dict(given), reuse=reuse)
    compiled.plan_inputs = described_inputs  # type: ignore[attr-defined]
    compiled.bound_settings = dict(v2.bound)  # type: ignore[attr-defined]
    compiled.v2_settings = v2  # type: ignore[attr-defined]
    return node, compiled
