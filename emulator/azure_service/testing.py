"""Test a pipeline on Azure offline: the ``fake_azure`` pytest fixture runs what it submits.

Installed with amlstep (entry point ``amlstep_azure`` of the ``pytest11`` group), so any test can ask for it::

    from framework import load_pipeline

    def test_my_pipeline_runs_on_azure(fake_azure, titanic_csv):
        fake_azure.local_workspace.register_dataset("my_ds", [str(my_csv)])   # uploaded at submit
        result = fake_azure.submit(load_pipeline("pipelines/mine"), params={"model_name": "M"})
        assert result.status == "Completed", result.error
        assert fake_azure.models["M"][-1].version == 1          # Model.register reached the fake
        prep = fake_azure.step_runs()["prep"]                     # the service's own step run
        assert "rows" in fake_azure.step_log(prep)                # what the plugin printed on "Azure"

``fake_azure.workspace`` is a real ``azureml.core.Workspace`` whose every request goes to the fake
Azure ML service on 127.0.0.1 (``emulator.azure_service``, this package). The real SDK builds, validates,
uploads and submits; the fake **runs** the pipeline: each script step in a venv built from the
wheels amlstep ships (your plugin's code as it is on disk), with a real ``Run.get_context()``;
the AutoML step with the AutoML emulator, service-side; then the outputs are downloaded through
the SDK. ``fake_azure.submissions`` holds one summary per submission (experiment, parameters,
steps, edges). What the fake checks and what it does not: docs/azure.md.

Shape the service with the ``fake_azure`` marker::

    @pytest.mark.fake_azure(computes=(), compute_error="quota exceeded")   # compute creation fails
    @pytest.mark.fake_azure(datasets={"titanic_ds": ["/path/titanic.csv"]}) # registered at start
    @pytest.mark.fake_azure(auth_error=True)                               # every call answers 401
    @pytest.mark.fake_azure(execute=False)                                 # accept, run nothing
    @pytest.mark.fake_azure(web_files={"https://x/data.csv": "tests/data.csv"})  # public URLs jobs read, offline
    @pytest.mark.fake_azure(find_links=[wheel_folder])                     # environments install from these wheels

Environment builds are offline unless told otherwise (``index_url=...`` or ``offline=False``): what an
environment declares must be among the fake's own packages or in the ``find_links`` folders.

The fixture binds 127.0.0.1 only; points ``HOME`` (and the SDK's discovery cache, fixed when
azureml is first imported) at a temporary folder; sets the SDK's proxy and CA bundle to the fake's
for the test; turns the SDK's telemetry off (``HBI_WORKSPACE_JOB=true``, for the whole session:
the SDK reads it at import time); shares built wheels and environments across the test session (and its
pytest-xdist workers);
and stops the server at teardown. It needs the ``azure`` extra: ``pip install 'amlstep[azure]'``.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import pytest

MARKER = "fake_azure"


@dataclass
class FakeAzure:
    """What the ``fake_azure`` fixture yields."""

    service: Any
    workspace: Any
    local_workspace: Any
    options: dict[str, Any] = field(default_factory=dict)
    download_dir: Path | None = None
    sdk: str = "v1"
    ml_client: Any = None   # under sdk="v2": a real ``azure.ai.ml.MLClient`` for the fake workspace

    @property
    def submissions(self) -> list[dict[str, Any]]:
        """One stable summary per pipeline submitted to the fake (see ``emulator.azure_service.v1``)."""
        return self.service.submissions

    @property
    def created_computes(self) -> list[dict[str, Any]]:
        """Compute clusters created through the fake: name, vm_size, min_nodes, max_nodes."""
        return self.service.created_computes

    @property
    def models(self) -> dict[str, list[Any]]:
        """The fake's model registry: name -> versions (``name``, ``version``, ``url``, ``run_id``...)."""
        return self.service.models

    def step_runs(self, run_id: str | None = None) -> dict[str, Any]:
        """The service's step runs of a pipeline run (the last by default), by step name."""
        return self.service.step_runs(run_id)

    def step_log(self, step_run: Any) -> str:
        """A step run's log as the service keeps it (``azureml-logs/70_driver_log.txt``)."""
        return str(self.service.step_log(step_run))

    def backend(self, **options: Any) -> Any:
        """The Azure backend of the fixture's SDK, bound to the fake workspace (downloads go to a temporary folder)."""
        from framework import get_plugin_manager

        # the backends' own poll interval for a fake found through config.json: a local service answers at once
        client = {"ml_client": self.ml_client, "poll_seconds": 0.25} if self.sdk == "v2" else \
            {"aml_workspace": self.workspace, "poll_seconds": 0.25}
        plugins = get_plugin_manager()
        choice = plugins.backend("azure", sdk=self.sdk, workspace=self.local_workspace,
                                 **{"download_dir": self.download_dir, **client, **options})
        return choice.chosen(plugins)  # the SDK's own backend (ensure_datasets, submit...)

    def config(self, folder: Path) -> Path:
        """Write the fake's workspace config.json into ``folder`` (what ``amlstep fake-azure --config-out`` writes)."""
        import json

        target = Path(folder) / "config.json"
        target.write_text(json.dumps(self.service.config(), indent=2))
        return target

    def submit(self, pipeline: Any, *, params: Mapping[str, Any] | None = None, plugins: Any = None,
               **options: Any) -> Any:
        """Validate ``pipeline`` (a Pipeline or a path) and submit it to the fake; returns the run result."""
        from framework import get_plugin_manager, load_pipeline

        if not hasattr(pipeline, "validate"):
            pipeline = load_pipeline(pipeline)
        plugins = plugins or get_plugin_manager()
        validated = pipeline.validate(plugins)
        return self.backend(**options).run(validated, plugins=plugins, params=params)


def pytest_configure(config: pytest.Config) -> None:
    # The SDK decides about telemetry when azureml is first imported, possibly before any fixture
    # runs: switch it off for the whole test session (an explicit setting wins).
    os.environ.setdefault("HBI_WORKSPACE_JOB", "true")
    config.addinivalue_line(
        "markers", f"{MARKER}(**options): options of the fake Azure ML service the fake_azure fixture starts "
                   "(computes, datasets, execute, compute_error, auth_error, web_files, find_links, index_url, offline, "
                   "pythons)")


@pytest.fixture(scope="session")
def _fake_azure_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built wheels and step environments, shared by every fake of the test session.

    Under pytest-xdist the workers of one session share it too (the session's base folder, above each
    worker's own): wheels are cached by source hash, environments by content, each built once behind a
    file lock, and the others wait for it and use it.
    """
    base = Path(tmp_path_factory.getbasetemp())
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # <session>/popen-gwN -> <session>, common to the session's workers
    cache = base / "fake-azure-cache"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


@contextlib.contextmanager
def open_fake_azure(folder: Path, cache: Path, *, sdk: str = "v1", **options: Any) -> Iterator[FakeAzure]:
    """A started fake service and everything a client needs to use it, undone at exit.

    ``folder`` holds the service's state, a temporary ``HOME``, the local workspace and downloads;
    ``cache`` the wheels and environments to share with other fakes. For fixtures of any scope.
    ``sdk="v2"``: the client side speaks SDK v2 (``FakeAzure.ml_client``, TLS, the fake's cloud).
    """
    from framework import LocalWorkspace
    from framework.backends.azure.sdk_v1.sdk import require_azureml

    require_azureml()
    if sdk == "v2":
        from framework.backends.azure.sdk_v2.compiler import require_sdk

        require_sdk()
    from framework.backends.azure.sdk_v1.offline import sdk_home

    from .service import FakeAzureML

    home = folder / "fake-azure-home"
    home.mkdir(parents=True, exist_ok=True)
    # tests never touch the network: a job reading a public URL needs it in web_files; environments
    # install only what the fake has and what the find_links folders hold (wheels a test builds); an
    # explicit index_url or offline=False reaches an index
    index = {} if "index_url" in options or "offline" in options else {"offline": True}
    # and the same on every machine: environments run on the fake's Python unless a test gives interpreters
    service = FakeAzureML(**{"root": folder / "fake-azure-service", "cache_dir": cache / "envs", "web_fetch": False,
                             "pythons": {}, **index, **options})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AMLSTEP_WHEEL_CACHE", str(cache / "wheels"))
        service.start()
        try:
            for name, value in (service.environment_v2() if sdk == "v2" else service.environment()).items():
                patch.setenv(name, value)
            with sdk_home(str(home)):
                local = LocalWorkspace(folder / "fake-azure-local-workspace")
                yield FakeAzure(service=service, workspace=service.workspace() if sdk == "v1" else None,
                                local_workspace=local, options=options, download_dir=folder / "fake-azure-downloads",
                                sdk=sdk,
                                ml_client=service.ml_client() if sdk == "v2" else None)
        finally:
            service.stop()


@pytest.fixture
def fake_azure(request: pytest.FixtureRequest, tmp_path: Path, _fake_azure_cache: Path) -> Iterator[FakeAzure]:
    """A real ``azureml.core.Workspace`` connected to a fake Azure ML service on 127.0.0.1 that runs what it gets."""
    options: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers(MARKER))):
        options.update(marker.kwargs)
    with open_fake_azure(tmp_path, _fake_azure_cache, **options) as fake:
        yield fake


@pytest.fixture
def fake_azure_v2(request: pytest.FixtureRequest, tmp_path: Path, _fake_azure_cache: Path) -> Iterator[FakeAzure]:
    """The same fake service, reached with the Azure ML SDK v2: ``fake_azure_v2.ml_client`` is a real ``MLClient``.

    ``fake_azure_v2.submit(pipeline)`` compiles to SDK v2 (``--sdk v2``) and submits through ``MLClient``;
    the ``fake_azure`` marker shapes the service as for ``fake_azure``.
    """
    options: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers(MARKER))):
        options.update(marker.kwargs)
    with open_fake_azure(tmp_path, _fake_azure_cache, sdk="v2", **options) as fake:
        yield fake
