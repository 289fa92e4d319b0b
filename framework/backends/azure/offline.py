"""An in-process stand-in workspace for dry runs: real SDK objects, no network, no Azure config.

The SDK needs a workspace to build a ``Pipeline`` (service discovery, the default datastore, the
``ComputeTarget`` object AutoML wants, the registered datasets). For ``--dry-run`` those answers
come from the fake service in ``emulator.fake_azure`` on 127.0.0.1, started for the duration of
the compilation, with every compute target and dataset the pipeline names; ``HOME`` points at a
throw-away folder meanwhile so the SDK's caches never see the stand-in.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from typing import Any, Iterator, Mapping

from ...pipeline import Dataset
from .compiler_v1 import Resources


@contextlib.contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, restoring them afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


OFFLINE_ENVIRONMENT = {
    # read once, when azureml is first imported: Application Insights telemetry stays off
    "HBI_WORKSPACE_JOB": "true",
    # the built-in cloud list instead of a call to the ARM metadata URL
    "AZUREML_CURRENT_CLOUD": "AzureCloud",
}


@contextlib.contextmanager
def offline_import() -> Iterator[None]:
    """Import the SDK with telemetry and cloud discovery off (they are decided at import time)."""
    with patched_environ({k: os.environ.get(k, v) for k, v in OFFLINE_ENVIRONMENT.items()}):
        yield


@contextlib.contextmanager
def quiet_sdk() -> Iterator[None]:
    """Keep the SDK's own log chatter (telemetry, cloud metadata warnings) off the terminal."""
    loggers = [logging.getLogger(name) for name in ("azureml", "azureml._vendor", "urllib3", "msrest")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def workspace_resources(ws: Any) -> Resources:
    """Resources backed by a workspace (the real one, or the offline stand-in)."""
    from azureml.core import Dataset as AzureDataset
    from azureml.core.compute import ComputeTarget

    computes: dict[str, Any] = {}
    datasets: dict[tuple[str, Any], Any] = {}

    def compute(name: str) -> Any:
        if name not in computes:
            computes[name] = ComputeTarget(workspace=ws, name=name)
        return computes[name]

    def dataset(source: Dataset) -> Any:
        key = (source.name, source.version)
        if key not in datasets:
            datasets[key] = AzureDataset.get_by_name(ws, source.name, version=source.version or "latest")
        return datasets[key]

    return Resources(workspace=ws, compute=compute, dataset=dataset, datastore=ws.get_default_datastore())


@contextlib.contextmanager
def offline_resources(computes: list[str], datasets: list[Dataset]) -> Iterator[Resources]:
    """Resources answered by a stand-in service holding ``computes`` and ``datasets``."""
    from emulator.fake_azure import FakeAzureML

    with tempfile.TemporaryDirectory(prefix="amlstep-dry-run-") as home, quiet_sdk():
        fake = FakeAzureML(computes=tuple(sorted(set(computes))))
        for d in datasets:
            for _ in range(d.version or 1):
                fake.add_dataset(d.name, list(d.sources))
        with fake, patched_environ({**fake.environment(), "HOME": home}), open(os.devnull, "w") as devnull, \
                contextlib.redirect_stdout(devnull):
            yield workspace_resources(fake.workspace())
