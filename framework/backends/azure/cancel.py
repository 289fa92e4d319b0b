"""``amlstep runs cancel RUN_ID`` for a run submitted to Azure ML: the SDK's cancel, from the local record.

SDK v1: ``PipelineRun(experiment, run_id).cancel()``; SDK v2: ``ml_client.jobs.begin_cancel(name)``. The
workspace is the one of ``config`` (a config.json, or one of ``amlstep fake-azure``), else the one the run
was submitted with, as for ``runs follow``. Then, unless told not to wait, the run is followed to its end
and read back as ``runs follow`` does: the steps that had ended keep their status, the others end as the
service ended them. Kept apart from the backends so that the call path is small; ``AzureBackendBase.cancel``
calls it.
"""

from __future__ import annotations

from typing import Any

from ...errors import BackendError


def cancel(backend: Any, record: Any, *, plugins: Any = None, wait: bool = True) -> str | None:
    """Ask Azure ML to cancel the pipeline run of local record ``record``; returns its status on the service
    afterwards (``Canceled``, ``CancelRequested``, or how it ended if it ended first), None when unknown. With
    ``wait``, the run is followed to its end and read back first (its status is then how it ended)."""
    status = _ask(backend, record)
    if wait and status in ("Canceled", "CancelRequested"):
        result = backend.reattach(record, plugins=plugins)
        if result.details.get("state_unknown"):  # Ctrl-C, or the service away: how it ends is not known here
            why = str(result.error or "").split(". ")[0]  # not the follower's advice: the cancel was sent
            raise NotFollowedToItsEnd(f"Azure ML was asked to cancel pipeline run {record.id} (it said {status}), "
                                      f"but waiting for it to end stopped: {why}. `amlstep runs follow {record.id}` "
                                      f"reads it back once it has ended")
        return result.status
    return status


class NotFollowedToItsEnd(BackendError):
    """``runs cancel`` sent the cancel, but following the run to its end stopped (exit code 3, as ``runs follow``)."""

    state_unknown = True


def _ask(backend: Any, record: Any) -> str | None:
    """The SDK's cancel call; the run's status on the service right after."""
    from .endpoint import patched_environ

    name = str(record.properties.get("azure_run_id") or record.id)
    sdk = str(record.properties.get("sdk") or backend.sdk)
    try:
        if sdk == "v2":
            from .sdk_v2 import client as client_v2

            client_v2.require_sdk()
            with patched_environ(client_v2.environment(backend._service) if backend._service else {}):
                client = backend.client()
                client.jobs.begin_cancel(name).result()
                status = client.jobs.get(name).status
                return str(getattr(status, "value", status))  # JobStatus.COMPLETED -> Completed
        else:
            from . import endpoint
            from .sdk_v1.sdk import require_azureml

            require_azureml()
            from azureml.core import Experiment
            from azureml.pipeline.core import PipelineRun

            with patched_environ(endpoint.environment(backend._service) if backend._service else {}), \
                    backend._service_home():
                run = PipelineRun(Experiment(backend.workspace(), record.experiment), name)
                run.cancel()
                return str(run.get_status())
    except BackendError:
        raise
    except Exception as exc:
        text = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise BackendError(f"Azure ML did not cancel pipeline run {name}: {type(exc).__name__}: {text}") from exc
