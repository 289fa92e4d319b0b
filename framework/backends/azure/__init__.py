"""The Azure backend: a pipeline compiled to Azure ML SDK v1 (default) or SDK v2 objects, submitted, followed, downloaded.

Layout (one compiler per SDK over the same ``ValidatedPipeline``, chosen by name in ``compilers``):

``compilers``    the SDKs by name (``v1``, ``v2``): compiler module, plan reader, backend class
``compiled``     what every compiler returns (``CompiledPipeline`` with its plan) and the rules they share
``compiler_v1``  validated graph -> ``PythonScriptStep`` / ``AutoMLStep`` / ``Pipeline`` (no submission)
``compiler_v2``  validated graph -> ``azure-ai-ml`` ``PipelineJob``: command components, the AutoML node
``plan``, ``plan_v2``  the compiled objects -> one stable, diff-able plan (``--dry-run``); v2's job YAML
``shipping``     the wheels of amlstep and plugin distributions every step ships, SDK-neutral
``offline``      an in-process stand-in workspace for SDK v1 dry runs (no network, no Azure config)
``backend``      ``AzureBackendBase`` (record, follow, hooks, download) and the SDK v1 backend
``backend_v2``, ``client_v2``  the SDK v2 backend: ``MLClient``, credentials, data assets, jobs
``entry``, ``entry_v2``  what runs on the cluster: the plugin by name, with the SDK's run context

Importing this package does not import ``azureml`` or ``azure.ai.ml`` (the CLI must start fast).
"""

from __future__ import annotations

from typing import Any, Callable

from ...hookspecs import hookimpl

SDK_VERSION = "v1"  # the default; ``compilers.names()`` lists them all


def make_backend(**options: Any) -> Any:
    """The Azure backend for ``sdk=`` (``"v1"``, the default, or ``"v2"``; see ``compilers``); unknown options are
    refused."""
    from ..options import accepted_options, check_options
    from .compilers import backend_class

    chosen = backend_class(options.pop("sdk", None))
    accepted = accepted_options(chosen)
    if accepted is not None:
        check_options("azure", options, [*accepted, "sdk"])
    return chosen(**options)


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    register("azure", make_backend)
