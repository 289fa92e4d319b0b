"""Loading pipeline definitions and running them."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Mapping, TextIO

from .errors import PipelineValidationError
from .manager import Plugins, get_plugin_manager
from .pipeline import Pipeline
from .results import PipelineRunResult
from .workspace import LocalWorkspace

PIPELINE_FILE = "pipeline.py"
FACTORY_NAMES = ("create_pipeline", "build_pipeline")


def load_pipeline(target: str | Path) -> Pipeline:
    """The pipeline defined by a folder (its ``pipeline.py``), a ``.py`` file or a module name.

    The module must define ``pipeline`` (a Pipeline) or a ``create_pipeline()`` function.
    """
    path = Path(target)
    if path.is_dir():
        path = path / PIPELINE_FILE
        if not path.is_file():
            raise PipelineValidationError(f"pipeline folder {str(target)!r} has no {PIPELINE_FILE}")
    if path.suffix == ".py":
        if not path.is_file():
            raise PipelineValidationError(f"pipeline file {str(target)!r} does not exist")
        module_name = "amlstep_pipeline_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception:
            sys.modules.pop(module_name, None)
            raise
        source = str(path.resolve())
    else:
        try:
            module = importlib.import_module(str(target))
        except ModuleNotFoundError as exc:
            raise PipelineValidationError(
                f"no pipeline at {str(target)!r}: expected a folder with {PIPELINE_FILE}, a .py file or an "
                f"importable module name ({exc})"
            ) from None
        source = str(target)
    pipeline = getattr(module, "pipeline", None)
    if not isinstance(pipeline, Pipeline):
        factory = next((getattr(module, n) for n in FACTORY_NAMES if callable(getattr(module, n, None))), None)
        if factory is None:
            raise PipelineValidationError(
                f"{source} defines neither `pipeline = Pipeline(...)` nor a create_pipeline() function"
            )
        pipeline = factory()
        if not isinstance(pipeline, Pipeline):
            raise PipelineValidationError(f"{source}: {factory.__name__}() returned {type(pipeline).__name__}, not a Pipeline")
    pipeline.source = source
    return pipeline


def run_pipeline(
    pipeline: Pipeline | str | Path,
    *,
    backend: str = "local",
    params: Mapping[str, Any] | None = None,
    reuse: bool = True,
    workspace: LocalWorkspace | str | Path | None = None,
    plugins: Plugins | None = None,
    echo: TextIO | None = None,
    resume: str | None = None,
    **backend_options: Any,
) -> PipelineRunResult:
    """Validate ``pipeline`` and run it on ``backend``; returns once the run ended.

    Raises PipelineValidationError before any step runs when the graph is broken. A failing step
    does not raise: the result's ``status`` is ``Failed`` and its ``error`` names the step.
    ``resume`` names a failed run whose completed steps are not repeated.
    """
    if not isinstance(pipeline, Pipeline):
        pipeline = load_pipeline(pipeline)
    plugins = plugins or get_plugin_manager()
    validated = pipeline.validate(plugins)
    runner = plugins.backend(backend, workspace=workspace, echo=echo, **backend_options)
    return runner.run(validated, plugins=plugins, params=params, reuse=reuse, **({"resume": resume} if resume else {}))
