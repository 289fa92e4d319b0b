"""Test a pipeline's Azure submission offline: the ``fake_azure`` pytest fixture.

Installed with amlstep (entry point ``pytest11``), so any test can ask for it::

    from framework import load_pipeline

    def test_my_pipeline_submits(fake_azure):
        result = fake_azure.submit(load_pipeline("pipelines/mine"), params={"model_name": "M"})
        assert result.status == "Completed"
        submitted = fake_azure.submissions[-1]
        assert [s["name"] for s in submitted["steps"]] == ["AutoML_Classification", "prep", "register_model"]
        assert submitted["submitted_parameters"] == {"model_name": "M"}

``fake_azure.workspace`` is a real ``azureml.core.Workspace`` whose every request goes to a fake
of the Azure ML service on 127.0.0.1 (``emulator.fake_azure``); the real SDK builds, validates,
submits and waits. ``fake_azure.submissions`` holds one summary per submission: the experiment,
pipeline parameters (defaults and submitted values), steps (type, name, compute target, script,
arguments, inputs, outputs, allow_reuse, AutoML settings) and edges.

Shape the service with the ``fake_azure`` marker::

    @pytest.mark.fake_azure(outcome="Failed", failed_step="dataprep", failure_message="boom")
    @pytest.mark.fake_azure(computes=(), compute_error="quota exceeded")   # compute creation fails
    @pytest.mark.fake_azure(datasets={"titanic_ds": ["titanic.csv"]})      # registered at start
    @pytest.mark.fake_azure(auth_error=True)                               # every call answers 401

The fixture binds 127.0.0.1 only, points ``HOME`` at a temporary folder (the SDK caches discovery
and snapshots under ``~/.azureml``), turns the SDK's telemetry off (``HBI_WORKSPACE_JOB=true``, set
for the whole session because the SDK reads it at import time), and stops the server at teardown.
It needs the ``azure`` extra: ``pip install 'amlstep[azure]'``.
"""

from __future__ import annotations

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

    @property
    def submissions(self) -> list[dict[str, Any]]:
        """One stable summary per pipeline submitted to the fake (see ``emulator.fake_azure``)."""
        return self.service.submissions

    @property
    def created_computes(self) -> list[dict[str, Any]]:
        """Compute clusters created through the fake: name, vm_size, min_nodes, max_nodes."""
        return self.service.created_computes

    def backend(self, **options: Any) -> Any:
        """An ``AzureBackend`` bound to the fake workspace (outputs are not downloaded by default)."""
        from ..backends.azure.backend import AzureBackend

        return AzureBackend(self.local_workspace, aml_workspace=self.workspace,
                            **{"download": False, **options})

    def submit(self, pipeline: Any, *, params: Mapping[str, Any] | None = None, plugins: Any = None,
               **options: Any) -> Any:
        """Validate ``pipeline`` (a Pipeline or a path) and submit it to the fake; returns the run result."""
        from ..api import load_pipeline
        from ..manager import get_plugin_manager

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
                   "(outcome, failed_step, failure_message, computes, datasets, compute_error, auth_error, run_seconds)")


@pytest.fixture
def fake_azure(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAzure]:
    """A real ``azureml.core.Workspace`` connected to a fake Azure ML service on 127.0.0.1, and its recordings."""
    from ..backends.azure.sdk import require_azureml

    require_azureml()
    from emulator.fake_azure import FakeAzureML

    from ..workspace import LocalWorkspace

    options: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers(MARKER))):
        options.update(marker.kwargs)
    home = tmp_path / "fake-azure-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    service = FakeAzureML(**options).start()
    try:
        for name, value in service.environment().items():
            monkeypatch.setenv(name, value)
        local = LocalWorkspace(tmp_path / "fake-azure-local-workspace")
        yield FakeAzure(service=service, workspace=service.workspace(), local_workspace=local, options=options)
    finally:
        service.stop()
