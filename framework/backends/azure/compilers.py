"""The Azure compilers by name: ``--sdk v1`` (azureml-core, the default) and ``--sdk v2`` (azure-ai-ml).

A compiler turns the same ``ValidatedPipeline`` into one SDK's objects and reads them back into
the SDK-neutral plan (one format, with an ``sdk`` field). Each is a module beside this one,
named here once; the backend and the command line find it by name, so adding an SDK is a new
module and one line below.
"""

from __future__ import annotations

import importlib
from typing import Any

from ...errors import BackendError

DEFAULT = "v1"
# name -> (compiler module, plan module, backend class "module:attribute", what it targets)
COMPILERS: dict[str, tuple[str, str, str, str]] = {
    "v1": ("sdk_v1.compiler", "sdk_v1.plan", "backend:AzureBackend", "Azure ML SDK v1 (azureml-core, azureml-pipeline)"),
    "v2": ("sdk_v2.compiler", "sdk_v2.plan", "sdk_v2.backend:AzureBackendV2", "Azure ML SDK v2 (azure-ai-ml)"),
}


def names() -> tuple[str, ...]:
    return tuple(COMPILERS)


def _check(sdk: str | None) -> str:
    name = sdk or DEFAULT
    if name not in COMPILERS:
        raise BackendError(f"unknown Azure SDK {name!r}; choose one of: "
                           + ", ".join(f"{k} ({v[3]})" for k, v in COMPILERS.items()))
    return name


def compiler(sdk: str | None = None) -> Any:
    """The compiler module of ``sdk`` (``compile_pipeline``, ``NAME``, ``LABEL``...)."""
    return importlib.import_module(f"{__package__}.{COMPILERS[_check(sdk)][0]}")


def plan_module(sdk: str | None = None) -> Any:
    """The module that reads ``sdk``'s compiled objects back into the plan (``render``, ``format_text``)."""
    return importlib.import_module(f"{__package__}.{COMPILERS[_check(sdk)][1]}")


def backend_class(sdk: str | None = None) -> Any:
    """The backend class that submits with ``sdk``."""
    module, _, attribute = COMPILERS[_check(sdk)][2].partition(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), attribute)
