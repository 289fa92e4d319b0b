"""A fake of the Azure Machine Learning service that runs what it is sent, on 127.0.0.1.

A product feature, not only a test double: ``amlstep fake-azure`` (``command``, a CLI plugin) serves
it for anyone to try the Azure path by hand, the ``fake_azure`` pytest fixture (``testing``, a pytest
plugin) runs plugin authors' pipelines through it, and the dry run (``--dry-run``) compiles against
it in its non-executing mode. Both are registered through entry points, so the core never imports
this package. Stdlib on the HTTP side; the real Azure ML SDKs are the clients.

Modules: ``engine`` (state, run history, pipelines, reuse: no REST shapes), ``compute``
(environments from shipped wheels, step processes), ``automl`` (the AutoML emulator service-side),
``blobstore`` (the storage account, Blob REST, TLS), ``tokens`` (the tokens, SAS signatures and
capabilities each instance signs with a secret of its own, and accepts alone), ``api`` (what both APIs share: routing, tokens,
api-versions, operations, computes, run history), ``v1`` (the SDK v1 REST shapes), ``v2`` and
``v2_schema`` (SDK v2's public ARM REST API, its bodies checked against the REST models), ``service``
(the HTTP server tying them together), ``v2_automl`` and ``mltable`` (AutoML jobs and MLTable folders read
on the service's terms).
"""

from __future__ import annotations

from typing import Any

__all__ = ["CONFIG_MARKER", "FakeAzureML", "SDK_ENVIRONMENT", "fake_authentication", "iter_routes",
           "summarize_submission"]


def __getattr__(name: str) -> Any:
    # the service loads on first use: the CLI imports this package for its command (``command``) at every start
    if name in __all__:
        from . import service

        return getattr(service, name)
    raise AttributeError(f"module 'emulator.azure_service' has no attribute {name!r}")
