"""What a pipeline run returns, under any backend."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class StepRunResult:
    name: str
    run_id: str
    status: str
    reused: bool = False
    reused_from: str | None = None
    reasons: list[str] = field(default_factory=list)
    duration: float | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    log_path: str | None = None
    """The step's log file (``std_log.txt``), when the backend keeps one on this machine."""
    traceback: str | None = None
    """For a failed step, the last lines of the traceback: the plugin's own frames and the error."""
    local_run_id: str | None = None
    """On Azure, the step's record in the local run history (``run_id`` is then the Azure step run's id)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PipelineRunResult:
    run_id: str
    experiment: str
    status: str
    backend: str
    params: dict[str, Any] = field(default_factory=dict)
    steps: list[StepRunResult] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    duration: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status == "Completed"

    def step(self, name: str) -> StepRunResult:
        return next(s for s in self.steps if s.name == name)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = [s.to_dict() for s in self.steps]
        return data
