"""Pipelines in Python: steps bound to data and parameters, validated as a whole before anything runs."""

from __future__ import annotations

import graphlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from .errors import AmlStepError, PipelineValidationError, StepDefinitionError
from .errors import did_you_mean
from .steps import DataType, Param, StepSpec, can_feed, check_name

if TYPE_CHECKING:
    from .manager import Plugins

AUTOML_PLUGIN = "automl"
DATASET_TYPE = DataType.TABULAR
"""What a registered ``Dataset`` is: delimited files, read as one table (or given as their folder)."""


@dataclass(frozen=True)
class PipelineParameter:
    """A pipeline parameter with a default, overridable at run time (Azure's ``PipelineParameter``)."""

    name: str
    default_value: Any

    def __post_init__(self) -> None:
        _check(self.name, "pipeline parameter")


@dataclass(frozen=True)
class Dataset:
    """A registered dataset used as a named input (Azure's ``dataset.as_named_input(name)``).

    Args:
        name: the registered name, e.g. ``titanic_ds``.
        version: a fixed version, or None for the latest.
        sources: files or URLs to register it from when the workspace lacks it.
        fallback_sources: tried, in order, when a source cannot be fetched.
    """

    name: str
    version: int | None = None
    sources: tuple[str, ...] = ()
    fallback_sources: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "fallback_sources", tuple(self.fallback_sources))
        from .workspace.names import check_asset_name

        try:
            check_asset_name(self.name, "dataset")
        except AmlStepError as exc:
            raise StepDefinitionError(str(exc)) from None
        if self.version is not None and (not isinstance(self.version, int) or self.version < 1):
            raise StepDefinitionError(f"dataset {self.name!r}: version must be a positive int, got {self.version!r}")


InputSource = "str | Dataset"


class Step:
    """One use of a step plugin in a pipeline.

    Args:
        plugin: the step plugin's registered name.
        name: the step's name in the pipeline (defaults to the plugin name).
        inputs: input port -> the data name another step produces, or a ``Dataset``.
        outputs: output port -> the data name it produces (defaults to the port name).
        params: parameter -> a value or a ``PipelineParameter``.
        allow_reuse: overrides the plugin's default.
        compute_target: where the step runs on Azure (defaults to the pipeline's).
    """

    def __init__(
        self,
        plugin: str,
        name: str | None = None,
        *,
        inputs: Mapping[str, str | Dataset] | None = None,
        outputs: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        allow_reuse: bool | None = None,
        compute_target: str | None = None,
    ) -> None:
        self.plugin = _check(plugin, "step plugin")
        self.name = _check(name or plugin, "step")
        where = f"step {self.name!r}"
        self.inputs = dict(inputs or {})
        self.outputs = dict(outputs or {})
        self.params = dict(params or {})
        for port, source in self.inputs.items():
            _check(port, f"{where}: input")
            if isinstance(source, str):
                _check(source, f"{where}: input {port!r} data")
            elif not isinstance(source, Dataset):
                raise StepDefinitionError(
                    f"{where}: input {port!r} must be bound to a data name (str) or a Dataset, "
                    f"got {type(source).__name__}"
                )
        for port, data in self.outputs.items():
            _check(port, f"{where}: output")
            _check(data, f"{where}: output {port!r} data")
        for param in self.params:
            _check(param, f"{where}: parameter")
        if allow_reuse is not None and not isinstance(allow_reuse, bool):
            raise StepDefinitionError(f"{where}: allow_reuse must be True or False, got {allow_reuse!r}")
        self.allow_reuse = allow_reuse
        self.compute_target = compute_target

    def __repr__(self) -> str:
        return f"Step({self.plugin!r}, name={self.name!r})"


def AutoMLStep(
    name: str = "AutoML",
    *,
    training_data: str | Dataset,
    validation_data: str | Dataset | None = None,
    metrics_output: str = "metrics_data",
    model_output: str = "best_model_data",
    allow_reuse: bool = True,
    compute_target: str | None = None,
    **automl_settings: Any,
) -> Step:
    """The built-in Automated ML step, configured with ``AutoMLConfig``'s keywords.

    ``metrics_output``/``model_output`` name the data it produces (the ``PipelineData`` names of
    Azure's ``TrainingOutput('Metrics')`` and ``TrainingOutput('Model')``). Settings may be
    ``PipelineParameter``s.
    """
    _validate_forecasting(name, automl_settings)
    inputs: dict[str, str | Dataset] = {"training_data": training_data}
    if validation_data is not None:
        inputs["validation_data"] = validation_data
    return Step(
        AUTOML_PLUGIN,
        name=name,
        inputs=inputs,
        outputs={"metrics": metrics_output, "model": model_output},
        params=automl_settings,
        allow_reuse=allow_reuse,
        compute_target=compute_target,
    )


def _validate_forecasting(name: str, settings: Mapping[str, Any]) -> None:
    """Forecasting settings are checked when the step is defined (all of them, unless some are
    PipelineParameters: then when the pipeline is validated with their values), by the installed
    AutoML step plugin's own settings validator (registered through ``register_steps``)."""
    from .automl import FLAT_ALIASES, PARAMETERS

    forecasting = {"forecasting_parameters", *PARAMETERS, *FLAT_ALIASES}
    if not forecasting & set(settings) or any(isinstance(v, PipelineParameter) for v in settings.values()):
        return
    spec = _installed_step(AUTOML_PLUGIN)
    if spec is not None and spec.settings_validator is not None:
        spec.settings_validator(dict(settings), f"AutoMLStep {name!r}")


def _installed_step(name: str) -> StepSpec | None:
    """The installed step plugin ``name`` (from the entry points), or None when it is not installed or the plugins do
    not load: then the pipeline's validation, which loads them, says so."""
    from .manager import get_plugin_manager

    try:
        return get_plugin_manager().steps.get(name)
    except AmlStepError:
        return None


class Pipeline:
    """Steps wired by named data, plus pipeline outputs by name.

    Args:
        steps: the steps, in any order.
        experiment: the experiment runs are recorded under (Azure's ``Experiment`` name).
        outputs: pipeline output name -> data name (Azure's ``pipeline_output_name``).
        parameters: extra ``PipelineParameter``s not bound to any step yet.
        compute_target: default compute target for the Azure backend.
        continue_on_step_failure: like Azure's flag: keep running steps that do not depend on a
            failed one.
    """

    def __init__(
        self,
        steps: Sequence[Step],
        *,
        experiment: str = "default",
        outputs: Mapping[str, str] | None = None,
        parameters: Iterable[PipelineParameter] = (),
        compute_target: str = "cpu-cluster",
        continue_on_step_failure: bool = False,
        description: str = "",
    ) -> None:
        from .workspace.names import check_asset_name

        try:
            self.experiment = check_asset_name(experiment, "experiment")
        except AmlStepError as exc:
            raise PipelineValidationError(str(exc)) from None
        self.steps = list(steps)
        for step in self.steps:
            if not isinstance(step, Step):
                raise PipelineValidationError(f"pipeline steps must be Step objects, got {step!r}")
        names = [s.name for s in self.steps]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise PipelineValidationError(f"step name {duplicates[0]!r} is used by more than one step")
        if not self.steps:
            raise PipelineValidationError("a pipeline needs at least one step")
        self.outputs = dict(outputs or {})
        for out, data in self.outputs.items():
            _check(out, "pipeline output", PipelineValidationError)
            _check(data, f"pipeline output {out!r} data", PipelineValidationError)
        self.extra_parameters = list(parameters)
        self.compute_target = compute_target
        self.continue_on_step_failure = continue_on_step_failure
        self.description = description
        self.source: str | None = None

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def validate(self, plugins: Plugins) -> ValidatedPipeline:
        """Check the whole graph against the installed plugins; raise one clear error if broken."""
        return _validate(self, plugins)

    def __repr__(self) -> str:
        return f"Pipeline(experiment={self.experiment!r}, steps={[s.name for s in self.steps]})"


@dataclass(frozen=True)
class StepBinding:
    """A step resolved against its plugin: what the backends run."""

    name: str
    spec: StepSpec
    inputs: dict[str, str | Dataset]
    outputs: dict[str, str]
    params: dict[str, Any]
    allow_reuse: bool
    compute_target: str | None

    @property
    def plugin(self) -> str:
        return self.spec.name

    def output_type(self, port: str) -> DataType:
        output = self.spec.output(port)
        assert output is not None
        return output.type

    def resolve_params(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Parameters with PipelineParameters replaced by ``values`` (name -> value)."""
        resolved = {k: values[v.name] if isinstance(v, PipelineParameter) else v for k, v in self.params.items()}
        return self.spec.build_params(resolved, f"step {self.name!r}")


@dataclass
class ValidatedPipeline:
    """A pipeline whose graph is known to be sound, with its steps in dependency order."""

    pipeline: Pipeline
    steps: list[StepBinding]
    producers: dict[str, tuple[str, str]]
    parameters: dict[str, PipelineParameter]
    parameter_types: dict[str, type]
    upstream: dict[str, set[str]] = field(default_factory=dict)

    @property
    def experiment(self) -> str:
        return self.pipeline.experiment

    def step(self, name: str) -> StepBinding:
        return next(s for s in self.steps if s.name == name)

    def datasets(self) -> list[Dataset]:
        found: dict[str, Dataset] = {}
        for step in self.steps:
            for source in step.inputs.values():
                if isinstance(source, Dataset):
                    found.setdefault(source.name, source)
        return list(found.values())

    def resolve_parameters(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Pipeline parameter values: defaults, overridden by ``overrides`` (strings are parsed)."""
        values = {name: p.default_value for name, p in self.parameters.items()}
        for name, value in (overrides or {}).items():
            if name not in self.parameters:
                raise PipelineValidationError(
                    f"unknown pipeline parameter {name!r}{did_you_mean(name, self.parameters)}; "
                    f"pipeline parameters: {', '.join(sorted(self.parameters)) or '(none)'}"
                )
            kind = self.parameter_types[name]
            param = Param(name, kind if kind in (str, int, float, bool) else str)
            try:
                values[name] = param.parse(value, "pipeline") if isinstance(value, str) and kind is not str \
                    else param.check(value, "pipeline")
            except StepDefinitionError as exc:
                raise PipelineValidationError(str(exc)) from None
        for step in self.steps:
            try:
                step.resolve_params(values)
            except StepDefinitionError as exc:
                raise PipelineValidationError(str(exc)) from None
        return values

    def upstream_of(self, step_name: str) -> set[str]:
        """Names of the steps ``step_name`` depends on, directly or not."""
        found: set[str] = set()
        frontier = [step_name]
        while frontier:
            for name in self.upstream.get(frontier.pop(), set()):
                if name not in found:
                    found.add(name)
                    frontier.append(name)
        return found

    def select(self, only: Sequence[str] = (), start: str | None = None, end: str | None = None) -> list[str] | None:
        """The steps a partial run runs, in dependency order, or None for the whole pipeline.

        ``only``: exactly these steps; ``start``: this step and every step downstream of it; ``end``: this
        step and every step upstream of it (both: the steps between them). The other steps do not run: a
        step that runs takes their outputs from the run history.
        """
        names = [s.name for s in self.steps]
        if not only and start is None and end is None:
            return None

        def known(name: str, flag: str) -> None:
            if name not in names:
                raise PipelineValidationError(f"{flag} {name!r}: the pipeline has no step {name!r}"
                                              f"{did_you_mean(name, names)}; its steps: {', '.join(names)}")

        if only and (start is not None or end is not None):
            raise PipelineValidationError("--only names exactly the steps to run; use it without --from and --to")
        for name in only:
            known(name, "--only")
        chosen = set(only) if only else set(names)
        if start is not None:
            known(start, "--from")
            chosen &= {start} | self.downstream_of(start)
        if end is not None:
            known(end, "--to")
            chosen &= {end} | self.upstream_of(end)
        if not chosen:
            raise PipelineValidationError(f"--from {start!r} --to {end!r} selects no step: {end!r} does not depend on "
                                          f"{start!r}")
        return [n for n in names if n in chosen]

    def downstream_of(self, step_name: str) -> set[str]:
        """Names of the steps that depend, directly or not, on ``step_name``."""
        found: set[str] = set()
        frontier = [step_name]
        while frontier:
            current = frontier.pop()
            for name, ups in self.upstream.items():
                if current in ups and name not in found:
                    found.add(name)
                    frontier.append(name)
        return found


def _check(name: Any, what: str, error: type[AmlStepError] = StepDefinitionError) -> str:
    try:
        return check_name(name, what)
    except StepDefinitionError as exc:
        raise error(str(exc)) from None


def _validate(pipeline: Pipeline, plugins: Plugins, *, dataset_types: bool = True) -> ValidatedPipeline:
    """The checks of ``Pipeline.validate``; ``dataset_types=False`` lets a Dataset stand in for an input of any type
    (the harness's Azure compile check, which binds every input of one step to a placeholder dataset)."""
    bindings: dict[str, StepBinding] = {}
    parameters: dict[str, PipelineParameter] = {}
    parameter_types: dict[str, type] = {}

    def add_parameter(p: PipelineParameter, kind: type, where: str) -> None:
        known = parameters.get(p.name)
        if known is not None and known.default_value != p.default_value:
            raise PipelineValidationError(
                f"{where}: pipeline parameter {p.name!r} is declared with two defaults: "
                f"{known.default_value!r} and {p.default_value!r}"
            )
        parameters[p.name] = p
        if kind is not object or p.name not in parameter_types:
            parameter_types[p.name] = kind

    for step in pipeline.steps:
        where = f"step {step.name!r}"
        try:
            spec = plugins.step(step.plugin, where)
        except AmlStepError as exc:
            raise PipelineValidationError(str(exc)) from None
        valid_inputs = [i.name for i in spec.inputs]
        for port in step.inputs:
            if spec.input(port) is None:
                raise PipelineValidationError(
                    f"{where}: plugin {spec.name!r} has no input {port!r}; "
                    f"its inputs: {', '.join(valid_inputs) or '(none)'}"
                )
        for declared in spec.inputs:
            if declared.name not in step.inputs and not declared.optional:
                raise PipelineValidationError(
                    f"{where}: required input {declared.name!r} ({declared.type.value}) is not bound; "
                    f"bind it with inputs={{{declared.name!r}: <data name or Dataset>}}"
                )
        for port in step.outputs:
            if spec.output(port) is None:
                raise PipelineValidationError(
                    f"{where}: plugin {spec.name!r} has no output {port!r}; "
                    f"its outputs: {', '.join(o.name for o in spec.outputs) or '(none)'}"
                )
        outputs = {o.name: step.outputs.get(o.name, o.name) for o in spec.outputs}
        literal: dict[str, Any] = {}
        for name, value in step.params.items():
            if isinstance(value, PipelineParameter):
                declared_param = spec.param(name)
                kind = declared_param.type if declared_param is not None else type(value.default_value)
                add_parameter(value, kind, where)
                literal[name] = value.default_value
            else:
                literal[name] = value
        try:
            spec.build_params(literal, where)
        except StepDefinitionError as exc:
            raise PipelineValidationError(str(exc)) from None
        allow_reuse = spec.allow_reuse if step.allow_reuse is None else step.allow_reuse
        bindings[step.name] = StepBinding(step.name, spec, dict(step.inputs), outputs, dict(step.params),
                                          allow_reuse, step.compute_target or pipeline.compute_target)

    for extra in pipeline.extra_parameters:
        add_parameter(extra, type(extra.default_value), "pipeline")

    producers: dict[str, tuple[str, str]] = {}
    for binding in bindings.values():
        for port, data in binding.outputs.items():
            if data in producers:
                first_step, first_port = producers[data]
                raise PipelineValidationError(
                    f"data {data!r} has two producers: step {first_step!r} output {first_port!r} and "
                    f"step {binding.name!r} output {port!r}; give one of them another name with outputs={{...}}"
                )
            producers[data] = (binding.name, port)

    upstream: dict[str, set[str]] = {name: set() for name in bindings}
    for binding in bindings.values():
        for port, source in binding.inputs.items():
            declared_input = binding.spec.input(port)
            assert declared_input is not None
            if isinstance(source, Dataset):
                if dataset_types and not can_feed(DATASET_TYPE, declared_input.type):
                    raise PipelineValidationError(
                        f"step {binding.name!r}: input {port!r} expects {declared_input.type.value} data, but it is "
                        f"bound to Dataset({source.name!r}), which is {DATASET_TYPE.value} data (registered CSV "
                        f"files); bind {port!r} to the {declared_input.type.value} output of a step"
                    )
                continue
            if source not in producers:
                raise PipelineValidationError(
                    f"step {binding.name!r}: input {port!r} reads data {source!r}{did_you_mean(source, producers)}, "
                    f"which no step produces; produced data: {', '.join(sorted(producers)) or '(none)'}"
                )
            producer, out_port = producers[source]
            produced = bindings[producer].output_type(out_port)
            if not can_feed(produced, declared_input.type):
                raise PipelineValidationError(
                    f"step {binding.name!r}: input {port!r} expects {declared_input.type.value} data, but "
                    f"{source!r} is {produced.value} data from step {producer!r} output {out_port!r}"
                )
            upstream[binding.name].add(producer)

    for out, data in pipeline.outputs.items():
        if data not in producers:
            raise PipelineValidationError(
                f"pipeline output {out!r} refers to data {data!r}, which no step produces; "
                f"produced data: {', '.join(sorted(producers)) or '(none)'}"
            )

    sorter = graphlib.TopologicalSorter({name: sorted(ups) for name, ups in upstream.items()})
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        raise PipelineValidationError(
            "steps form a cycle: " + " -> ".join(repr(n) for n in cycle)
            + "; a step cannot read data that it produces, directly or through other steps"
        ) from None
    stable = {s.name: i for i, s in enumerate(pipeline.steps)}
    order = _stable_topological(upstream, stable)
    return ValidatedPipeline(pipeline, [bindings[n] for n in order], producers, parameters, parameter_types, upstream)


def _stable_topological(upstream: dict[str, set[str]], position: dict[str, int]) -> list[str]:
    """Dependency order that keeps the user's order among independent steps."""
    done: list[str] = []
    remaining = dict(upstream)
    while remaining:
        ready = sorted((n for n, ups in remaining.items() if ups <= set(done)), key=position.__getitem__)
        done.append(ready[0])
        del remaining[ready[0]]
    return done
