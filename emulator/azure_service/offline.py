"""The offline workspace of SDK v1 dry runs: the fake service, not executing, for one compilation.

``amlstep run --backend azure --dry-run`` (SDK v1) builds real SDK objects, which need a workspace
to answer (service discovery, the default datastore, compute targets, registered datasets). This
plugin answers the core's ``offline_azure_workspace`` hook with :class:`~.service.FakeAzureML` in
its non-executing mode on 127.0.0.1, holding every compute target and dataset the pipeline names;
the core keeps ``HOME`` and the SDK's caches in a throw-away folder meanwhile.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

from framework import hookimpl


@hookimpl
def offline_azure_workspace(computes: list[str], datasets: list[Any], folder: Path) -> Any:
    return offline_workspace(computes, datasets, folder)


@contextlib.contextmanager
def offline_workspace(computes: list[str], datasets: list[Any], folder: Path) -> Iterator[Any]:
    """The ``azureml.core.Workspace`` of a fake service that holds ``computes`` and ``datasets`` and runs nothing."""
    from framework.backends.azure.endpoint import patched_environ

    from .service import FakeAzureML

    fake = FakeAzureML(computes=tuple(sorted(set(computes))), execute=False, root=os.path.join(folder, "service"))
    with fake, patched_environ(fake.environment()):
        for d in datasets:
            urls = [s for s in d.sources if "://" in s] or [f"https://example.invalid/{d.name}.csv"]
            for _ in range(d.version or 1):
                fake.register_urls(d.name, urls)
        yield fake.workspace()
