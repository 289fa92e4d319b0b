"""The workspace SDK v1 builds its objects against: a real one, or an offline stand-in for dry runs.

The SDK needs a workspace to build a ``Pipeline`` (service discovery, the default datastore, the
``ComputeTarget`` object AutoML wants, the registered datasets). For ``--dry-run`` those answers
come from an offline workspace a plugin provides through the ``offline_azure_workspace`` hook:
amlstep's emulator serves its fake Azure ML service (``emulator.azure_service.offline``, the one
``amlstep fake-azure`` serves) in its non-executing mode, on 127.0.0.1, for the duration of the
compilation, with every compute target and dataset the pipeline names. Wheels are built but not
uploaded. ``HOME`` and the SDK's discovery cache point at a throw-away folder meanwhile, and
AutoML's debug log is not written, so a dry run leaves nothing behind outside temporary folders.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from ....errors import BackendError
from ....pipeline import Dataset
from ..endpoint import patched_environ
from .compiler import Resources

if TYPE_CHECKING:
    from ....manager import Plugins

NO_OFFLINE_WORKSPACE = (
    "--dry-run with --sdk v1 builds the SDK v1 objects against an offline Azure ML workspace, and no installed "
    "plugin provides one (the offline_azure_workspace hook; amlstep's emulator does: is amlstep fully installed? "
    "pip install 'amlstep[azure]'); --sdk v2 compiles offline without one")


OFFLINE_ENVIRONMENT = {
    # read once, when azureml is first imported: Application Insights telemetry stays off
    "HBI_WORKSPACE_JOB": "true",
    # the built-in cloud list instead of a call to the ARM metadata URL
    "AZUREML_CURRENT_CLOUD": "AzureCloud",
}


_IMPORT_HOME: str | None = None


@contextlib.contextmanager
def offline_import() -> Iterator[None]:
    """Import the SDK with telemetry and cloud discovery off (they are decided at import time).

    The SDK also fixes its discovery cache file (``~/.azureml/.discovery``) when it is imported:
    a first import here happens with ``HOME`` pointing at a throw-away folder.
    """
    import sys

    global _IMPORT_HOME
    values = {k: os.environ.get(k, v) for k, v in OFFLINE_ENVIRONMENT.items()}
    if "azureml.core" not in sys.modules:
        if _IMPORT_HOME is None:
            _IMPORT_HOME = tempfile.mkdtemp(prefix="amlstep-sdk-home-")
            import atexit
            import shutil

            atexit.register(shutil.rmtree, _IMPORT_HOME, True)
        values["HOME"] = _IMPORT_HOME
    with patched_environ(values):
        yield


@contextlib.contextmanager
def sdk_home(home: str) -> Iterator[None]:
    """Keep the SDK's per-user files (discovery cache, snapshot cache) under ``home`` for the block."""
    from azureml._base_sdk_common import service_discovery

    init = service_discovery.CachedServiceDiscovery.__init__
    saved = init.__defaults__
    init.__defaults__ = (os.path.join(home, ".azureml", ".discovery"),)
    try:
        with patched_environ({"HOME": home}):
            yield
    finally:
        init.__defaults__ = saved


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


def workspace_resources(ws: Any, *, wheels: Any = None, upload: bool = True,
                        versions: Mapping[str, int] | None = None) -> Resources:
    """Resources backed by a workspace (the real one, or the offline stand-in).

    ``upload`` sends the wheels steps ship to the workspace (``Environment.add_private_pip_wheel``);
    the dry run does not, and names them by file in the plan. ``versions``: the dataset versions a
    submission reads (pinned when the datasets were made sure of), else the pipeline's, else the latest.
    """
    from azureml.core import Dataset as AzureDataset
    from azureml.core import Environment
    from azureml.core.compute import ComputeTarget

    from ..shipping import Wheel, WheelBuilder

    computes: dict[str, Any] = {}
    datasets: dict[tuple[str, Any], Any] = {}

    def compute(name: str) -> Any:
        if name not in computes:
            computes[name] = ComputeTarget(workspace=ws, name=name)
        return computes[name]

    def dataset(source: Dataset) -> Any:
        key = (source.name, source.version)
        if key not in datasets:
            version = source.version or (versions or {}).get(source.name) or "latest"
            datasets[key] = AzureDataset.get_by_name(ws, source.name, version=version)
        return datasets[key]

    uploaded: dict[str, str] = {}

    def ship(wheel: Wheel) -> str:
        if not upload:
            return f"<private wheel {wheel.filename}>"
        if wheel.sha256 not in uploaded:
            uploaded[wheel.sha256] = Environment.add_private_pip_wheel(ws, str(wheel.path), exist_ok=True)
        return uploaded[wheel.sha256]

    return Resources(workspace=ws, compute=compute, dataset=dataset, datastore=ws.get_default_datastore(),
                     wheels=wheels or WheelBuilder(), ship=ship)


@contextlib.contextmanager
def offline_resources(plugins: Plugins, computes: list[str], datasets: list[Dataset]) -> Iterator[Resources]:
    """Resources answered by an offline workspace holding ``computes`` and ``datasets`` (``offline_azure_workspace``)."""
    with tempfile.TemporaryDirectory(prefix="amlstep-dry-run-") as home, quiet_sdk(), \
            patched_environ({"HOME": home}), sdk_home(home):
        offline = plugins.hook.offline_azure_workspace(computes=sorted(set(computes)), datasets=list(datasets),
                                                       folder=Path(home))
        if offline is None:
            raise BackendError(NO_OFFLINE_WORKSPACE)
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull), offline as workspace:
            yield workspace_resources(workspace, upload=False)
