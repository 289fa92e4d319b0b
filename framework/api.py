"""Loading pipeline definitions and running them."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from typing import Any, Iterator, Mapping, TextIO

from .errors import AmlStepError, PipelineValidationError
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
            with user_code():
                spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:
            sys.modules.pop(module_name, None)
            raise _load_error(exc, path) from exc
        source = str(path.resolve())
    else:
        try:
            with user_code():
                module = importlib.import_module(str(target))
        except ModuleNotFoundError as exc:
            if exc.name is None or not str(target).startswith(exc.name):
                raise _load_error(exc, None) from exc
            raise PipelineValidationError(
                f"no pipeline at {str(target)!r}: expected a folder with {PIPELINE_FILE}, a .py file or an "
                f"importable module name ({exc})"
            ) from None
        except (Exception, SystemExit) as exc:
            raise _load_error(exc, None) from exc
        source = str(target)
    pipeline = getattr(module, "pipeline", None)
    if not isinstance(pipeline, Pipeline):
        factory = next((getattr(module, n) for n in FACTORY_NAMES if callable(getattr(module, n, None))), None)
        if factory is None:
            raise PipelineValidationError(
                f"{source} defines neither `pipeline = Pipeline(...)` nor a create_pipeline() function"
            )
        try:
            with user_code():
                pipeline = factory()
        except (Exception, SystemExit) as exc:
            file = getattr(module, "__file__", None)
            raise _load_error(exc, Path(file) if file else None, f"{factory.__name__}() raised") from exc
        if not isinstance(pipeline, Pipeline):
            raise PipelineValidationError(f"{source}: {factory.__name__}() returned {type(pipeline).__name__}, not a Pipeline")
    pipeline.source = source
    return pipeline


@contextlib.contextmanager
def user_code() -> Iterator[None]:
    """While a pipeline file or a plugin is imported: what it prints goes to stderr, so that the command's own
    output (``run --json``) stays what it says it is."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _load_error(exc: BaseException, path: Path | None, doing: str = "loading the pipeline file raised"
                ) -> PipelineValidationError:
    """One line for a pipeline file that does not load: ``file:line: what went wrong``."""
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename}:{exc.lineno}" if exc.lineno else str(exc.filename or path)
        return PipelineValidationError(f"{where}: syntax error in the pipeline file: {exc.msg}")
    frames = traceback.extract_tb(exc.__traceback__)
    wanted = str(path.resolve()) if path is not None else None
    inside = [f for f in frames if wanted is not None and f.filename == wanted]
    frame = inside[-1] if inside else (frames[-1] if frames else None)
    where = f"{frame.filename}:{frame.lineno}" if frame is not None else str(path)
    if isinstance(exc, AmlStepError):
        return PipelineValidationError(f"{where}: {exc}")
    if isinstance(exc, SystemExit):
        who = "the pipeline file" if doing.startswith("loading") else doing.removesuffix(" raised")
        return PipelineValidationError(f"{where}: {who} called sys.exit({exc.code!r}) while loading; a pipeline file "
                                       f"must define the pipeline, not end the program")
    return PipelineValidationError(f"{where}: {doing} {type(exc).__name__}: {exc}")


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
