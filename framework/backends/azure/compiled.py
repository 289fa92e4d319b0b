"""What every Azure compiler returns, and the rules they share. SDK-neutral: nothing here imports an SDK.

A compiler (``compiler_v1``, ``compiler_v2``; chosen by name in ``compilers``) turns a
``ValidatedPipeline`` into one SDK's objects, wrapped in a :class:`CompiledPipeline` whose ``plan``
is the SDK-neutral plan (one format, with an ``sdk`` field) read back from those objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ... import reuse as reuse_rule
from ...errors import BackendError
from ...pipeline import Dataset, StepBinding, ValidatedPipeline

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


def compute_name(validated: ValidatedPipeline, binding: StepBinding, override: str | None) -> str:
    """The step's compute target: its own, else ``--compute``, else the pipeline's."""
    own = validated.pipeline.step(binding.name).compute_target
    return own or override or binding.compute_target or DEFAULT_COMPUTE


MIN_TIMEOUT_MINUTES = 15.0


def check_automl_budget(binding: StepBinding, settings: Mapping[str, Any]) -> None:
    """Azure refuses an AutoML experiment timeout under 15 minutes: say so naming the step."""
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


