"""Backends take a validated pipeline and run it. Each registers through ``register_backends``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Protocol

if TYPE_CHECKING:
    from ..manager import Plugins
    from ..pipeline import ValidatedPipeline
    from ..results import PipelineRunResult


class Backend(Protocol):
    """What every backend offers."""

    name: str

    def run(self, pipeline: ValidatedPipeline, *, plugins: Plugins, params: Mapping[str, Any] | None = None,
            reuse: bool = True, resume: str | None = None) -> PipelineRunResult:
        """Run (or submit) the pipeline with parameter overrides ``params``; ``resume`` continues a failed run."""
        ...
