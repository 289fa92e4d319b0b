"""A contract harness for step plugins, modelled on scikit-learn's ``parametrize_with_checks``.

One decorator line in a plugin's tests runs every contract check as its own test case::

    from framework.testing import parametrize_with_checks
    from amlstep_penguins import STEP, sample_frame

    @parametrize_with_checks([STEP], sample_inputs={"penguins_ds": sample_frame()})
    def test_step_contract(step, check):
        check(step)

The checks (each also callable on its own, ``check_runs_locally(STEP, sample_inputs=...)``):

``check_declaration``
    the ``StepSpec`` is valid, describes itself as JSON, and is the one installed under its name.
``check_params_round_trip``
    every default and sample parameter survives ``Param.format`` -> ``Param.parse`` and JSON
    (how parameters travel to Azure and into reuse keys), builds, and unknown names are refused.
``check_runs_locally``
    running the step through ``framework.execution`` (the code path of every backend) on the
    sample inputs writes exactly its declared outputs, each readable as its declared type.
``check_deterministic``
    the same inputs and parameters give the same tabular outputs (reuse depends on it).
``check_rows_independent``
    each sample row prepared alone (with what the step learned from the sample, its ``learned``
    outputs) comes out as among all the rows, without warnings: ``predict`` depends on it.
``check_keeps_label``
    with ``label=...``: the label column survives the preparation, and rows without it prepare.
``check_compiles_for_azure``
    the step compiles to real Azure ML SDK v1 objects (the ``azure`` backend's dry-run compile)
    with the network cut off; fails naming ``amlstep[azure]`` when the SDK is not installed, and
    skips only when no plugin registers an ``azure`` backend.

This module is also a pytest plugin (entry point ``pytest11``) providing the ``run_step``
fixture, which runs one step on in-memory values::

    def test_drops_year(run_step):
        out = run_step("dataprep_penguins", penguins_ds=frame, drop_columns="year")
        assert "year" not in out["prepped_data"].columns
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import ipaddress
import json
import pickle
import shutil
import socket
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, Union

import pytest

from ..context import RunContext
from ..errors import BackendError, StepDefinitionError
from ..execution import execute_step, load_inputs, read_learned, write_learned
from ..io import read_input
from ..manager import Plugins, get_plugin_manager
from ..steps import DataType, StepSpec

StepLike = Union[StepSpec, str]
Samples = Union[Mapping[str, Any], Callable[[StepSpec], Mapping[str, Any]], None]

__all__ = [
    "RecordingRunContext",
    "StepOutputs",
    "check_compiles_for_azure",
    "check_declaration",
    "check_deterministic",
    "check_keeps_label",
    "check_params_round_trip",
    "check_rows_independent",
    "check_runs_locally",
    "parametrize_with_checks",
    "run_step",
]


# -- a run context that records instead of persisting -----------------------------------------
class RecordedModel:
    """A model registered through ``RecordingRunContext.register_model``."""

    def __init__(self, name: str, version: int, path: Path, description: str, tags: dict[str, Any],
                 properties: dict[str, Any]) -> None:
        self.name, self.version, self.path = name, version, path
        self.description, self.tags, self.properties = description, tags, properties

    def __repr__(self) -> str:
        return f"RecordedModel({self.name!r}, version={self.version})"


class RecordedChildRun:
    """A child run (an AutoML iteration) kept in memory."""

    def __init__(self, run_id: str, name: str, properties: Mapping[str, Any]) -> None:
        self.id = run_id
        self.name = name
        self.properties: dict[str, Any] = dict(properties)
        self.metrics: dict[str, Any] = {}
        self.status = "Running"
        self.error: str | None = None

    def log(self, name: str, value: Any, description: str = "") -> None:
        self.metrics[name] = value

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        self.metrics.update(metrics)

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        self.properties.update(properties)

    def complete(self) -> None:
        self.status = "Completed"

    def fail(self, error: str, status: str = "Failed") -> None:
        self.status, self.error = status, error


class RecordingRunContext(RunContext):
    """The run context steps get in tests: metrics, properties, models and child runs in memory."""

    backend = "test"

    def __init__(self, step_name: str, params: Mapping[str, Any], output_dirs: Mapping[str, Path],
                 output_names: Mapping[str, str] | None = None, input_datasets: Mapping[str, Any] | None = None,
                 ) -> None:
        super().__init__(run_id=f"test_{uuid.uuid4().hex[:12]}", step_name=step_name, experiment_name="harness",
                         pipeline_run_id=None, params=params, input_datasets=input_datasets,
                         output_dirs=output_dirs, output_names=output_names or {p: p for p in output_dirs})
        self.metrics: dict[str, list[Any]] = {}
        self.properties: dict[str, Any] = {}
        self.models: list[RecordedModel] = []
        self.children: list[RecordedChildRun] = []

    def log(self, name: str, value: Any, description: str = "") -> None:
        self.metrics.setdefault(name, []).append(value)

    def get_metrics(self) -> dict[str, Any]:
        return {k: v[0] if len(v) == 1 else list(v) for k, v in self.metrics.items()}

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        self.properties.update(properties)

    def register_model(self, model_name: str, model_path: str | Path, *, description: str = "",
                       tags: Mapping[str, Any] | None = None,
                       properties: Mapping[str, Any] | None = None) -> RecordedModel:
        path = Path(model_path)
        if not path.exists():
            from ..errors import WorkspaceError

            raise WorkspaceError(f"model {model_name!r}: model path {str(path)!r} does not exist")
        version = 1 + sum(1 for m in self.models if m.name == model_name)
        model = RecordedModel(model_name, version, path, description, dict(tags or {}), dict(properties or {}))
        self.models.append(model)
        return model

    def child_run(self, name: str, *, run_id: str | None = None,
                  properties: Mapping[str, Any] | None = None) -> RecordedChildRun:
        child = RecordedChildRun(run_id or f"{self.id}_{len(self.children)}", name, properties or {})
        self.children.append(child)
        return child


# -- running one step ---------------------------------------------------------------------------
class StepOutputs(dict):  # type: ignore[type-arg]
    """What ``run_step`` returns: output name -> value (a DataFrame for tabular data, a dict for
    metrics, a ``Path`` for model files and folders), plus ``.paths`` (output name -> folder) and
    ``.context`` (the ``RecordingRunContext`` the step ran with)."""

    context: RecordingRunContext
    paths: dict[str, Path]


def _resolve(step: StepLike, plugins: Plugins | None = None) -> StepSpec:
    if isinstance(step, StepSpec):
        return step
    if isinstance(step, str):
        return (plugins or get_plugin_manager()).step(step)
    raise TypeError(f"expected a StepSpec or a step plugin name, got {type(step).__name__} {step!r}")


def _samples(samples: Samples, spec: StepSpec) -> dict[str, Any]:
    if samples is None:
        return {}
    if callable(samples):
        return dict(samples(spec))
    return dict(samples)


def _write_sample(spec: StepSpec, port: str, value: Any, folder: Path) -> Path | list[Path]:
    """Store a sample input where ``load_inputs`` reads it, the way a backend stores data."""
    import pandas as pd

    declared = spec.input(port)
    assert declared is not None
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.exists():
            raise FileNotFoundError(f"sample for input {port!r}: {path} does not exist")
        return [path] if (path.is_file() and declared.type is DataType.TABULAR) else path
    target = folder / port
    target.mkdir(parents=True)
    if isinstance(value, pd.DataFrame):
        value.to_csv(target / f"{port}.csv", index=False)
    elif declared.type is DataType.METRICS:
        (target / "metrics.json").write_text(json.dumps(value, default=str))
    elif declared.type is DataType.LEARNED:
        write_learned(value, target, f"sample for input {port!r}")
    elif declared.type is DataType.MODEL:
        with open(target / "model.pkl", "wb") as f:
            pickle.dump(value, f)
    else:
        raise TypeError(f"sample for {declared.type.value} input {port!r} must be a path, got {type(value).__name__}")
    return target


def _read_output(kind: DataType, folder: Path, what: str) -> Any:
    if kind is DataType.LEARNED:
        return read_learned(folder, what)
    value = read_input(kind, folder, what)
    if kind is DataType.METRICS:
        return json.loads(Path(value).read_text())
    return value


def run_step_in(workdir: Path, step: StepLike, values: Mapping[str, Any], *,
                plugins: Plugins | None = None) -> StepOutputs:
    """Run ``step`` once in ``workdir`` with ``values`` (input ports, parameters and, to apply what a
    training run learned, learned outputs by name).

    Inputs are written to files and read back with ``framework.execution.load_inputs``, so the
    step receives exactly what a backend would hand it; parameters go through ``build_params``.
    """
    spec = _resolve(step, plugins)
    where = f"run_step({spec.name!r})"
    learned_ports = {o.name for o in spec.learned_outputs}
    inputs = {k: v for k, v in values.items() if spec.input(k) is not None}
    learned = {k: v for k, v in values.items() if k in learned_ports}
    params = {k: v for k, v in values.items() if spec.input(k) is None and k not in learned_ports}
    missing = [i.name for i in spec.inputs if not i.optional and i.name not in inputs]
    if missing:
        raise StepDefinitionError(
            f"{where}: give a value for input(s) {', '.join(map(repr, missing))}; "
            f"inputs: {', '.join(i.name for i in spec.inputs) or '(none)'}")
    built = spec.build_params(params, where)
    workdir.mkdir(parents=True, exist_ok=True)
    locations = {port: _write_sample(spec, port, value, workdir / "inputs") for port, value in inputs.items()}
    loaded = load_inputs(spec, spec.name, locations)
    output_dirs = {}
    for declared in spec.outputs:
        output_dirs[declared.name] = workdir / "outputs" / declared.name
        output_dirs[declared.name].mkdir(parents=True)
    context = RecordingRunContext(spec.name, built, output_dirs, input_datasets=locations)
    execute_step(spec, spec.name, loaded, built, context, output_dirs, learned=learned)
    result = StepOutputs()
    for declared in spec.outputs:
        result[declared.name] = _read_output(declared.type, output_dirs[declared.name],
                                             f"step {spec.name!r} output {declared.name!r}")
    result.context = context
    result.paths = output_dirs
    return result


def run_step(step: StepLike, /, **values: Any) -> StepOutputs:
    """Run one step on in-memory values (DataFrames, dicts, paths) in a fresh temporary folder.

    ``values`` holds the step's inputs and parameters by name; parameters not given take their
    defaults. Returns a ``StepOutputs``. The temporary folder lives as long as the process; in
    tests prefer the ``run_step`` fixture, which uses pytest's ``tmp_path``.
    """
    folder = Path(tempfile.mkdtemp(prefix="amlstep-run-step-"))
    atexit.register(shutil.rmtree, folder, True)
    return run_step_in(folder, step, values)


# The Azure ML SDKs warn about their own deprecated internals (v1 whenever it is imported, v2 through
# marshmallow whenever it builds a job); those warnings are not the plugin author's to fix, so amlstep's
# pytest plugin keeps them out of every test summary.
AZUREML_WARNING_FILTERS = (
    "ignore::DeprecationWarning:azureml.*",
    "ignore::PendingDeprecationWarning:azureml.*",
    "ignore::DeprecationWarning:azure.ai.ml.*",
    "ignore::DeprecationWarning:marshmallow.*",
)


def pytest_configure(config: pytest.Config) -> None:
    for line in AZUREML_WARNING_FILTERS:
        config.addinivalue_line("filterwarnings", line)


@pytest.fixture(name="run_step")
def run_step_fixture(tmp_path: Path) -> Callable[..., StepOutputs]:
    """``run_step(step, **inputs_and_params)`` -> StepOutputs, working under ``tmp_path``."""
    counter = iter(range(1_000_000))

    def runner(step: StepLike, /, **values: Any) -> StepOutputs:
        return run_step_in(tmp_path / f"run_step_{next(counter)}", step, values)

    return runner


# -- the checks ---------------------------------------------------------------------------------
def _plugins_with(spec: StepSpec) -> Plugins:
    """A fresh plugin manager in which ``spec`` is the step registered under its name."""
    plugins = get_plugin_manager()
    if plugins.steps.get(spec.name) is not spec:
        plugins.steps[spec.name] = spec
        plugins.step_owners.setdefault(spec.name, "harness")
    return plugins


def check_declaration(step: StepLike, **_: Any) -> None:
    """The declaration is valid, JSON-describable, and the one installed under its name."""
    spec = _resolve(step)
    assert isinstance(spec, StepSpec), f"expected a StepSpec, got {type(spec).__name__}"
    spec.validate()
    described = spec.describe()
    assert json.loads(json.dumps(described)) == described, f"step {spec.name!r}: describe() is not plain JSON"
    assert spec.kind in ("python", "automl"), f"step {spec.name!r}: unknown kind {spec.kind!r}"
    assert spec.outputs or spec.kind == "python", f"step {spec.name!r}: an AutoML-kind step needs outputs"
    installed = get_plugin_manager().steps.get(spec.name)
    if installed is None:
        warnings.warn(f"step {spec.name!r} is not installed: no `amlstep` entry point registers it, so pipelines "
                      f"(and the Azure entry script) cannot find it by name; `pip install -e .` your plugin",
                      stacklevel=2)
    elif installed != spec:
        raise AssertionError(
            f"another step plugin is installed under the name {spec.name!r} with a different declaration; "
            f"rename one of them (installed: {installed!r})")


def check_params_round_trip(step: StepLike, *, sample_params: Samples = None, **_: Any) -> None:
    """Defaults and sample values survive format -> parse and JSON; unknown names are refused."""
    spec = _resolve(step)
    samples = _samples(sample_params, spec)
    where = f"step {spec.name!r}"
    for param in spec.params:
        values = [] if param.required else [param.default]
        if param.name in samples:
            values.append(samples[param.name])
        values.extend(param.choices or ())
        for value in values:
            text = param.format(value)
            assert isinstance(text, str), f"{where}: parameter {param.name!r} formats {value!r} as {text!r}"
            parsed = param.parse(text, where)
            assert parsed == value and type(parsed) is type(param.check(value, where)), (
                f"{where}: parameter {param.name!r} does not round-trip: {value!r} -> {text!r} -> {parsed!r}")
            assert json.loads(json.dumps(parsed)) == parsed, f"{where}: parameter {param.name!r} is not JSON"
    required = {p.name for p in spec.params if p.required}
    missing = sorted(required - set(samples))
    assert not missing, (f"{where}: parameter(s) {', '.join(missing)} are required; give sample values with "
                         f"parametrize_with_checks(..., sample_params={{...}})")
    built = spec.build_params(samples, where)
    assert json.loads(json.dumps(built, default=str)) == json.loads(json.dumps(built, default=str))
    if spec.settings_validator is None:
        as_text = {name: spec.param(name).format(value) for name, value in built.items()}  # type: ignore[union-attr]
        reparsed = {name: spec.param(name).parse(text, where) for name, text in as_text.items()}  # type: ignore[union-attr]
        assert spec.build_params(reparsed, where) == built, f"{where}: parameters change when passed as text"
    unknown = "no_such_parameter_" + uuid.uuid4().hex[:6]
    with pytest.raises(StepDefinitionError):
        spec.build_params({**samples, unknown: 1}, where)


def check_runs_locally(step: StepLike, *, sample_inputs: Samples = None, sample_params: Samples = None,
                       **_: Any) -> StepOutputs:
    """Run on the sample inputs through ``framework.execution``: exactly the declared outputs appear."""
    spec = _resolve(step)
    inputs = _samples(sample_inputs, spec)
    unknown = sorted(set(inputs) - {i.name for i in spec.inputs})
    assert not unknown, f"sample_inputs name unknown input(s) {unknown} of step {spec.name!r}"
    with tempfile.TemporaryDirectory(prefix="amlstep-check-") as tmp:
        result = run_step_in(Path(tmp), spec, {**inputs, **_samples(sample_params, spec)})
        outputs_root = Path(tmp) / "outputs"
        written = sorted(p.name for p in outputs_root.iterdir()) if outputs_root.exists() else []
        assert written == sorted(o.name for o in spec.outputs), (
            f"step {spec.name!r} produced {written}; declared {[o.name for o in spec.outputs]}")
        for declared in spec.outputs:
            value = result[declared.name]
            if declared.type is DataType.TABULAR:
                import pandas as pd

                assert isinstance(value, pd.DataFrame) and len(value.columns) > 0, (
                    f"step {spec.name!r} output {declared.name!r}: tabular output has no columns")
            elif declared.type in (DataType.METRICS, DataType.LEARNED):
                assert isinstance(value, dict), f"step {spec.name!r} output {declared.name!r} is not a JSON object"
            elif declared.type is DataType.MODEL:
                assert Path(value).is_file(), f"step {spec.name!r} output {declared.name!r} is not one file"
        # leave nothing pointing into the deleted folder
        detached = StepOutputs({k: (v if not isinstance(v, Path) else None) for k, v in result.items()})
        detached.context, detached.paths = result.context, {}
    return detached


def check_deterministic(step: StepLike, *, sample_inputs: Samples = None, sample_params: Samples = None,
                        **_: Any) -> None:
    """Two runs with the same inputs and parameters give the same tabular outputs.

    Reuse skips a step whose code, parameters and inputs are unchanged, which is only right when the
    step would have produced the same data. Steps with ``allow_reuse=False`` and steps without
    tabular outputs skip.
    """
    spec = _resolve(step)
    tabular = [o.name for o in spec.outputs if o.type is DataType.TABULAR]
    if not spec.allow_reuse or not tabular:
        pytest.skip(f"step {spec.name!r}: " + ("allow_reuse is False" if not spec.allow_reuse else "no tabular output"))
    values = {**_samples(sample_inputs, spec), **_samples(sample_params, spec)}
    with tempfile.TemporaryDirectory(prefix="amlstep-check-") as tmp:
        first = run_step_in(Path(tmp) / "a", spec, values)
        second = run_step_in(Path(tmp) / "b", spec, values)
        for name in tabular:
            assert first[name].equals(second[name]), (
                f"step {spec.name!r} output {name!r} differs between two runs with the same inputs and "
                f"parameters; seed its randomness with a parameter so that reuse stays correct")


ROWS_CHECKED_ALONE = 10


def _step_warnings(caught: list[warnings.WarningMessage]) -> set[str]:
    """The messages of warnings a step raised; a ResourceWarning comes from whatever garbage is collected then."""
    return {str(w.message) for w in caught if not issubclass(w.category, ResourceWarning)}


def check_rows_independent(step: StepLike, *, sample_inputs: Samples = None, sample_params: Samples = None,
                           **_: Any) -> None:
    """Each sample row, prepared alone, comes out as it does among all the sample rows, without warnings.

    ``amlstep predict`` prepares new rows with what the step learned from its training rows (its
    ``learned`` outputs); a row's prediction must not depend on the other rows of the file. The
    check learns from the sample, then applies what was learned to the whole sample and to each of
    its first rows alone. A step that learns from its rows (bins, fill values, encodings) without
    declaring a learned output fails here. Skips a step whose one tabular input is not given as a
    DataFrame, or that changes the number of rows.
    """
    import pandas as pd

    spec = _resolve(step)
    values = {**_samples(sample_inputs, spec), **_samples(sample_params, spec)}
    outputs = [o.name for o in spec.outputs if o.type is DataType.TABULAR]
    tables = [i.name for i in spec.inputs if i.type is DataType.TABULAR and isinstance(values.get(i.name), pd.DataFrame)]
    if spec.kind != "python" or not outputs:
        pytest.skip(f"step {spec.name!r}: no tabular output to compare row by row")
    if len(tables) != 1:
        pytest.skip(f"step {spec.name!r}: the check splits the rows of one tabular input given as a DataFrame; "
                    f"the sample gives {len(tables)}")
    port, sample = tables[0], values[tables[0]]
    where = f"step {spec.name!r}"
    with tempfile.TemporaryDirectory(prefix="amlstep-check-") as tmp:
        with warnings.catch_warnings(record=True) as known:
            warnings.simplefilter("always")
            trained = run_step_in(Path(tmp) / "learn", spec, values)
            learned = {o.name: trained[o.name] for o in spec.learned_outputs}
            whole = run_step_in(Path(tmp) / "apply", spec, {**values, **learned}) if learned else trained
        expected_warnings = _step_warnings(known)
        for name in outputs:
            if len(whole[name]) != len(sample):
                pytest.skip(f"{where} changes the number of rows ({len(sample)} -> {len(whole[name])} in output "
                            f"{name!r}), so its rows cannot be compared one by one")
        hint = ("the learned output does not hold everything the step learns from its rows" if learned else
                "a step that learns from its rows (bins, fill values, encodings) should keep what it learned as a "
                "learned output (DataType.LEARNED) and apply it when it is given (docs/plugin-guide.md)")
        for row in range(min(len(sample), ROWS_CHECKED_ALONE)):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    alone = run_step_in(Path(tmp) / f"row{row}", spec, {**values, port: sample.iloc[[row]], **learned})
                except Exception as exc:
                    raise AssertionError(f"{where} fails on sample row {row} alone: {type(exc).__name__}: {exc}; "
                                         f"{hint}") from exc
            new = sorted(_step_warnings(caught) - expected_warnings)
            assert not new, f"{where} warns on sample row {row} alone: {new[0]}; {hint}"
            for name in outputs:
                got, want = alone[name], whole[name].iloc[[row]]
                assert list(got.columns) == list(want.columns), (
                    f"{where} output {name!r}: sample row {row} alone gives columns {list(got.columns)}, among all "
                    f"rows {list(want.columns)}; {hint}")
                for column in want.columns:
                    a, b = _plain_value(got[column].iloc[0]), _plain_value(want[column].iloc[0])
                    assert _same_value(a, b), (
                        f"{where} output {name!r}: sample row {row} is prepared differently alone ({column}={a!r}) "
                        f"than among the {len(sample)} sample rows ({column}={b!r}); {hint}")


def _plain_value(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _same_value(a: Any, b: Any) -> bool:
    import pandas as pd

    if pd.isna(a) and pd.isna(b):
        return True
    if pd.isna(a) or pd.isna(b):
        return False
    try:
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))
    except (TypeError, ValueError):
        return str(a) == str(b)


def check_keeps_label(step: StepLike, *, label: str | None = None, sample_inputs: Samples = None,
                      sample_params: Samples = None, **_: Any) -> None:
    """The label column survives the preparation, and rows without it (what ``predict`` gives) prepare too.

    Skips unless ``parametrize_with_checks(..., label="your_label")`` names the label.
    """
    import pandas as pd

    spec = _resolve(step)
    if label is None:
        pytest.skip(f"step {spec.name!r}: no label named; pass parametrize_with_checks(..., label=...) to check "
                    f"that the label survives the preparation")
    values = {**_samples(sample_inputs, spec), **_samples(sample_params, spec)}
    where = f"step {spec.name!r}"
    outputs = [o.name for o in spec.outputs if o.type is DataType.TABULAR]
    if spec.kind != "python" or not outputs or not any(i.type is DataType.TABULAR for i in spec.inputs):
        pytest.skip(f"{where}: not a preparation step (tabular in, tabular out)")
    holding = [k for k, v in values.items() if spec.input(k) is not None and isinstance(v, pd.DataFrame)
               and label in v.columns]
    assert holding, f"{where}: no sample input holds the label column {label!r}; add it to sample_inputs"
    with tempfile.TemporaryDirectory(prefix="amlstep-check-") as tmp:
        result = run_step_in(Path(tmp) / "labelled", spec, values)
        kept = [name for name in outputs if label in result[name].columns]
        assert kept, (f"{where} drops the label column {label!r}: its tabular output(s) {', '.join(outputs)} hold "
                      f"{', '.join(map(str, result[outputs[0]].columns)) if outputs else 'nothing'}; AutoML needs it")
        assert all(result[name][label].notna().any() for name in kept), (
            f"{where} output {kept[0]!r}: the label column {label!r} has no values left")
        unlabelled = {k: (v.drop(columns=[label]) if k in holding else v) for k, v in values.items()}
        try:
            run_step_in(Path(tmp) / "unlabelled", spec, unlabelled)
        except Exception as exc:
            raise AssertionError(f"{where} fails on rows without the label column {label!r} (as `amlstep predict` "
                                 f"gives new rows): {type(exc).__name__}: {exc}") from exc


@contextlib.contextmanager
def no_network() -> Iterator[None]:
    """Refuse every socket connection except to loopback addresses (the fake Azure service)."""
    original = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise ConnectionRefusedError(f"the amlstep harness blocks network access (tried {address!r})")
        return original(self, address)

    socket.socket.connect = guarded  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]


def check_compiles_for_azure(step: StepLike, *, sample_params: Samples = None, **_: Any) -> Any:
    """The step compiles to Azure ML SDK v1 objects (the azure backend's dry run, no network).

    Returns the compiled pipeline (its ``plan`` is what ``amlstep run --dry-run`` prints). Skips,
    saying why, when the Azure ML SDK (the ``azure`` extra) is not installed, when no installed
    plugin registers an ``azure`` backend, and when the step is not installed.
    """
    from ..pipeline import Dataset, Pipeline, Step, _validate

    spec = _resolve(step)
    plugins = _plugins_with(spec)
    if "azure" not in plugins.backends:
        pytest.skip("no 'azure' backend is registered (install amlstep[azure] with the Azure backend plugin); "
                    "the Azure compile check cannot run")
    from ..backends.azure.sdk_v1.sdk import require_azureml

    try:
        require_azureml()
    except BackendError as exc:  # an extra, not a fault of the step: the base install skips this check
        pytest.skip(f"the Azure compile check cannot run: {exc}")
    if plugins.step_owners.get(spec.name) == "harness":
        pytest.skip(f"step {spec.name!r} is not installed, so its code cannot be shipped to Azure as a wheel and the "
                    f"Azure compile check cannot run; `pip install -e .` your plugin")
    params = _samples(sample_params, spec)
    inputs = {i.name: Dataset(f"{i.name}_sample") for i in spec.inputs if not i.optional}
    pipeline = Pipeline([Step(spec.name, inputs=inputs, params=params)], experiment="amlstep_harness")
    validated = _validate(pipeline, plugins, dataset_types=False)  # a placeholder dataset for inputs of any type
    with no_network():
        backend = plugins.backend("azure", dry_run=True)
        compile_ = getattr(backend, "compile", None)
        if callable(compile_):
            compiled = compile_(validated, plugins=plugins)
            steps = getattr(compiled, "steps", None)
            assert steps is None or [s.binding.name for s in steps] == [spec.name], (
                f"step {spec.name!r} did not compile to one Azure step")
            return compiled
        return backend.run(validated, plugins=plugins, params=None, reuse=True)


CHECKS: tuple[Callable[..., Any], ...] = (
    check_declaration,
    check_params_round_trip,
    check_runs_locally,
    check_deterministic,
    check_rows_independent,
    check_keeps_label,
    check_compiles_for_azure,
)


def _step_id(step: StepLike) -> str:
    return step.name if isinstance(step, StepSpec) else str(step)


def parametrize_with_checks(steps: Sequence[StepLike], *, sample_inputs: Samples = None,
                            sample_params: Samples = None, label: str | None = None, skip: Sequence[str] = ()) -> Any:
    """A ``pytest.mark.parametrize`` over (step, check) pairs: one test case per contract check.

    Args:
        steps: ``StepSpec`` objects or installed step plugin names.
        sample_inputs: input port -> sample value (DataFrame, dict, path or model object), or a
            function ``spec -> dict`` when several steps need different samples.
        sample_params: parameter -> value, or a function ``spec -> dict``; required parameters
            need one.
        label: the label column the samples hold, for ``check_keeps_label`` (skipped without it).
        skip: names of checks to leave out (e.g. ``["check_deterministic"]``).

    The decorated test takes ``step`` and ``check`` and calls ``check(step)``.
    """
    unknown = sorted(set(skip) - {c.__name__ for c in CHECKS})
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; checks: {[c.__name__ for c in CHECKS]}")
    cases = []
    for step in steps:
        for check in CHECKS:
            if check.__name__ in skip:
                continue
            bound = functools.partial(check, sample_inputs=sample_inputs, sample_params=sample_params, label=label)
            functools.update_wrapper(bound, check)
            cases.append(pytest.param(step, bound, id=f"{_step_id(step)}-{check.__name__}"))
    return pytest.mark.parametrize("step, check", cases)
