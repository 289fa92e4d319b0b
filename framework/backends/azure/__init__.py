"""The Azure backend: a pipeline compiled to an Azure ML SDK's objects, submitted, followed, downloaded.

One SDK-neutral core here, one folder per SDK (``sdk_v1/``: azureml-core, the default; ``sdk_v2/``:
azure-ai-ml). Every SDK is a :class:`Compiler` registered through the ``register_azure_sdks`` hook
(amlstep's two through their entry points, like a plugin's), chosen by ``--sdk NAME``.

The core:

``compiled``   the compiler interface (:class:`Compiler`), what it returns (``CompiledPipeline``), the per-step loop
``compilers``  the registered SDKs by name (``--sdk``)
``plans``      the one plan format (``--dry-run --json``) and its text
``backend``    ``AzureBackendBase`` (compile, dry run, the local run record, following, hooks), ``Provisioning``,
               ``AzureBackendChoice`` (what ``--backend azure`` builds: the SDK is found once the plugins are known)
``follower``   one follower of a submitted run over a ``Session`` each SDK implements; statuses, log tails
``errors``     the SDKs' output kept out of ``--json``; service errors in amlstep's words (``ServiceErrors``)
``reuse``      whether Azure would reuse each step, and why: ``amlstep explain-reuse --backend azure``
``options``    the backend's ``amlstep run`` options (``register_run_options``), ``--sdk`` from the registry
``entry``      what runs on the cluster: ``script/amlstep_entry.py`` hands over here, and here to the step's SDK
``shipping``   the wheels of amlstep and plugin distributions every step ships
``endpoint``   workspaces of ``amlstep fake-azure`` (its config, its environment); ``mltable``: MLTable files

Each SDK folder: ``compiler`` (validated graph -> its objects), ``plan`` (those objects read back
into the plan), ``backend`` (workspace, compute, datasets, submission, downloads), ``session`` (a
submitted run, for the follower), ``entry`` (a step on the cluster); ``sdk_v1`` also ``sdk`` (importing
azureml) and ``offline`` (the workspace dry runs build against: the ``offline_azure_workspace`` hook,
answered by ``emulator.azure_service.offline``); ``sdk_v2`` also ``client`` (credentials, ``MLClient``)
and ``automl`` (AutoML settings in SDK v2's names).

Importing this package does not import ``azureml`` or ``azure.ai.ml`` (the CLI must start fast).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ...hookspecs import hookimpl
from .compiled import CompiledPipeline, CompiledStep, Compiler, compile_steps

if TYPE_CHECKING:
    from ...manager import Plugins

__all__ = ["CompiledPipeline", "CompiledStep", "Compiler", "compile_steps", "make_backend"]


def make_backend(**options: Any) -> Any:
    """The Azure backend for ``sdk=`` (``"v1"``, the default, or another registered SDK's name; see ``compilers``)."""
    from .backend import AzureBackendChoice

    return AzureBackendChoice(**options)


@hookimpl
def register_backends(register: Callable[..., None]) -> None:
    register("azure", make_backend)


@hookimpl
def register_commands(cli: Any) -> None:
    from .attach import register

    register(cli)


@hookimpl
def register_run_options(register: Callable[..., None], plugins: Plugins) -> None:
    from .options import run_options

    register("azure", *run_options(plugins))
