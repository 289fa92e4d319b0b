"""The Azure backend: a pipeline compiled to Azure ML SDK v1 objects, submitted, waited for, downloaded.

Layout (a v2 compiler over ``azure-ai-ml`` would sit beside ``compiler_v1`` over the same
``ValidatedPipeline``):

``compiler_v1``  validated graph -> ``PythonScriptStep`` / ``AutoMLStep`` / ``Pipeline`` (no submission)
``plan``         the compiled objects -> a stable, diff-able plan (``--dry-run``)
``offline``      an in-process stand-in workspace for dry runs (no network, no Azure config)
``backend``      workspace and compute resolution, dataset registration, submit, wait, download
``entry``        what runs on the cluster: loads the plugin by name, runs it with an Azure run context

Importing this package does not import ``azureml`` (the CLI must start fast).
"""

from __future__ import annotations

from typing import Any, Callable

from ...hookspecs import hookimpl

SDK_VERSION = "v1"


def make_backend(**options: Any) -> Any:
    """The Azure backend for ``sdk=`` (``"v1"``, the default, or ``"v2"``; see ``compilers``)."""
    from .compilers import backend_class

    return backend_class(options.pop("sdk", None))(**options)


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    register("azure", make_backend)
