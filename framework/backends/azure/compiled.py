"""The compiler interface, what every compiler returns, and the rules they share. SDK-neutral: nothing here
imports an SDK.

A :class:`Compiler` (one per SDK: ``sdk_v1``, ``sdk_v2``, or a plugin's; registered through the
``register_azure_sdks`` hook and chosen by name in ``compilers``) turns a ``ValidatedPipeline`` into
one SDK's objects, wrapped in a :class:`CompiledPipeline` whose ``plan`` is the SDK-neutral plan
(``plans``: one format, with an ``sdk`` field) read back from those objects. :func:`compile_steps`
and :func:`refused` are the per-step loop every compiler runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from ... import reuse as reuse_rule
from ...errors import BackendError
from ...pipeline import Dataset, StepBinding, ValidatedPipeline

if TYPE_CHECKING:
    import click

    from ...manager import Plugins

SCRIPT_DIR = Path(__file__).resolve().parent / "script"
SCRIPT_NAME = "amlstep_entry.py"
DEFAULT_COMPUTE = "cpu-cluster"


@dataclass
class CompiledStep:
    """One compiled step and what amlstep knows about it."""

    binding: StepBinding
    sdk_step: Any
    compute_target: str
    kind: str
    outputs: dict[str, Any] = field(default_factory=dict)
    baked_settings: dict[str, str] = field(default_factory=dict)
    automl_settings: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    reuse: dict[str, Any] = field(default_factory=dict)


@dataclass
class CompiledPipeline:
    """One SDK's objects of one pipeline, ready to submit (``pipeline``: the SDK's pipeline object)."""

    validated: ValidatedPipeline
    pipeline: Any
    steps: list[CompiledStep]
    parameters: dict[str, Any]
    parameter_values: dict[str, Any]
    baked_parameters: dict[str, list[str]]
    pipeline_outputs: dict[str, str]
    datasets: list[Dataset]
    experiment: str
    sdk_version: str = "v1"
    plan: dict[str, Any] = field(default_factory=dict)  # the SDK-neutral plan, read back from the objects


def code_hash(spec: Any) -> str:
    """The plugin's source hash as the files on disk are now (what the shipped wheel holds).

    Not the memoized ``reuse.code_hash``: a plugin edited since it was first hashed in this
    process must not be compiled with its old hash.
    """
    return str(reuse_rule._hash_paths.__wrapped__(reuse_rule.source_paths(spec)))  # type: ignore[attr-defined]


def reuse_record(binding: StepBinding, code: str, params: Mapping[str, Any], inputs: Mapping[str, str],
                 **more: Any) -> dict[str, Any]:
    """What a compiled step's reuse depends on, in the plan (``reuse``): its code hash, its parameters as the reuse
    rule keeps them, ``more`` the SDK knows, and its inputs' bindings."""
    return {"allow_reuse": binding.allow_reuse, "code": code,
            "params": reuse_rule.components(binding.spec, params, {}, binding.allow_reuse)["params"], **more,
            "inputs": inputs}


def installed_versions(distributions: Sequence[str]) -> dict[str, str]:
    """The installed version of each distribution (``not installed``), for the plan's ``sdk_versions``."""
    from importlib import metadata

    found = {}
    for dist in distributions:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def compute_name(validated: ValidatedPipeline, binding: StepBinding, override: str | None) -> str:
    """The step's compute target: its own, else ``--compute``, else the pipeline's."""
    own = validated.pipeline.step(binding.name).compute_target
    return own or override or binding.compute_target or DEFAULT_COMPUTE


MIN_TIMEOUT_MINUTES = 15.0
MAX_ITERATIONS = 1000  # Azure's AutoML runs at most 1000 child runs (SDK v1's AutoMLConfig refuses more)


def check_automl_budget(binding: StepBinding, settings: Mapping[str, Any]) -> None:
    """Azure refuses an AutoML experiment timeout under 15 minutes, and more than 1000 iterations: say so naming
    the step, for both SDKs, before anything is sent."""
    iterations = settings.get("iterations")
    if iterations is not None and not isinstance(iterations, bool):
        try:
            count = float(iterations)
        except (TypeError, ValueError):
            count = None
        if count is not None and count > MAX_ITERATIONS:
            raise BackendError(
                f"step {binding.name!r}: iterations={iterations} is above Azure's maximum of {MAX_ITERATIONS} "
                f"iterations for an AutoML experiment; use at most iterations={MAX_ITERATIONS} for --backend azure")
    minutes = settings.get("experiment_timeout_minutes")
    hours = settings.get("experiment_timeout_hours")
    given = (f"experiment_timeout_minutes={minutes}" if minutes is not None
             else f"experiment_timeout_hours={hours}" if hours is not None else None)
    total = float(minutes) if minutes is not None else float(hours) * 60 if hours is not None else None
    if total is not None and total < MIN_TIMEOUT_MINUTES:
        raise BackendError(
            f"step {binding.name!r}: {given} is below Azure's minimum of 15 minutes (0.25 hours) for an "
            f"AutoML experiment; use at least experiment_timeout_minutes=15 for --backend azure "
            f"(e.g. -p experiment_timeout_minutes=15 when it is a pipeline parameter)")


def compile_steps(validated: ValidatedPipeline, *, compute: str | None, reuse: bool) -> Iterator[tuple[StepBinding, str]]:
    """Each step to compile, in order, with its compute target; ``reuse=False`` (``--no-reuse``) turns its
    ``allow_reuse`` off."""
    for binding in validated.steps:
        if not reuse and binding.allow_reuse:
            binding = dataclasses.replace(binding, allow_reuse=False)
        yield binding, compute_name(validated, binding, compute)


def first_line(exc: BaseException) -> str:
    """The first line of an SDK's error, without its quoting."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__).strip(" :\"',")


@contextlib.contextmanager
def refused(sdk: str, what: str, where: str = "", reason: Callable[[BaseException], str] = first_line) -> Iterator[None]:
    """An SDK's exception while building ``what`` becomes a BackendError: ``[where: ]the SDK refused WHAT: ...``.

    ``sdk`` names the SDK (``Azure ML SDK v2``); ``reason`` reads its exception (default: the first line).
    """
    try:
        yield
    except BackendError:
        raise
    except Exception as exc:
        prefix = f"{where}: " if where else ""
        raise BackendError(f"{prefix}the {sdk} refused {what}: {type(exc).__name__}: {reason(exc)}") from exc


class Compiler:
    """One Azure ML SDK the azure backend compiles to (``--sdk NAME``), as a plugin registers it.

    Register an instance through the ``register_azure_sdks`` hook (docs/hooks.md); amlstep's own
    SDKs (``sdk_v1``, ``sdk_v2``) are registered the same way, through their entry points. What a
    subclass gives:

    - ``name`` (the ``--sdk`` value), ``label`` (what it targets, for messages) and ``packages`` (the
      client it uses, for ``amlstep run --help``);
    - :meth:`compile_pipeline`: the one compiler signature;
    - optionally :meth:`backend` (a backend that submits; the default one compiles only: dry runs and
      plans), :meth:`run_options` and :meth:`backend_options` (its own ``amlstep run`` options), and
      :meth:`entry` (what runs a step on the cluster).

    Nothing here, nor in a subclass's module, should import the SDK itself: it is imported when a
    pipeline is compiled, so ``amlstep --help`` stays fast.
    """

    name: str = ""
    label: str = ""
    packages: str = ""

    def compile_pipeline(self, validated: ValidatedPipeline, *, plugins: Plugins,
                         params: Mapping[str, Any] | None = None, compute: str | None = None, reuse: bool = True,
                         target: Any = None) -> CompiledPipeline:
        """This SDK's objects for ``validated``, with the plan read back from them in ``.plan``.

        Args:
            params: submit-time values of pipeline parameters.
            compute: the compute target of steps that name none (``--compute``).
            reuse: False (``--no-reuse``): every step re-runs.
            target: what the SDK's backend prepared for a submission (a workspace to build against, a folder
                for the files the objects point at); None: a dry run, which builds offline and contacts nothing.
        """
        raise NotImplementedError

    def backend(self, **options: Any) -> Any:
        """The backend that runs what this SDK compiles, with the azure backend's ``options``.

        None (the default): the SDK-neutral ``AzureBackendBase``, which compiles only: ``--dry-run`` and
        plans work, a submission is refused with a message.
        """
        return None

    def run_options(self) -> Sequence[click.Parameter]:
        """Options this SDK adds to ``amlstep run --backend azure`` (click options; none by default)."""
        return ()

    def backend_options(self, values: Mapping[str, Any], sdk: str | None) -> dict[str, Any]:
        """This SDK's backend options from the values of the ``amlstep run`` options (``sdk``: the ``--sdk``
        given, or None); raise an ``AmlStepError`` for a combination that cannot work."""
        return {}

    def plan_notes(self, plan: Mapping[str, Any]) -> list[str]:
        """Lines the SDK adds after the text of one of its plans (``plans.format_text``); none by default."""
        return []

    def entry(self, argv: Sequence[str], *, plugins: Plugins) -> None:
        """Run one compiled step on the cluster from the arguments it carries (``script/amlstep_entry.py``)."""
        raise BackendError(f"--sdk {self.name} runs no step on the cluster")

