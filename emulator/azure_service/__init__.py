"""A fake of the Azure Machine Learning service that runs what it is sent, on 127.0.0.1.

A product feature, not only a test double: ``amlstep fake-azure`` serves it for anyone to try the
Azure path by hand, the ``fake_azure`` pytest fixture (``framework.testing.azure``) runs plugin
authors' pipelines through it, and the dry run (``--dry-run``) compiles against it in its
non-executing mode. Stdlib on the HTTP side; the real Azure ML SDKs are the clients.

Modules: ``engine`` (state, run history, pipelines, reuse: no REST shapes), ``compute``
(environments from shipped wheels, step processes), ``automl`` (the AutoML emulator service-side),
``blobstore`` (the storage account, Blob REST, TLS), ``api`` (what both APIs share: routing, tokens,
api-versions, operations, computes, run history), ``v1`` (the SDK v1 REST shapes), ``v2`` and
``v2_schema`` (SDK v2's public ARM REST API, its bodies checked against the REST models), ``service``
(the HTTP server tying them together).
"""

from __future__ import annotations

from .service import (CONFIG_MARKER, FAKE_TOKEN, SDK_ENVIRONMENT, FakeAzureML, fake_authentication, iter_routes,
                      summarize_submission)

__all__ = ["CONFIG_MARKER", "FAKE_TOKEN", "FakeAzureML", "SDK_ENVIRONMENT", "fake_authentication", "iter_routes",
           "summarize_submission"]
