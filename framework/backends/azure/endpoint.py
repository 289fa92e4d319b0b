"""Workspaces served by ``amlstep fake-azure``: recognised by their config.json, reached with its token.

``amlstep fake-azure --config-out c.json`` writes a workspace ``config.json`` with the usual keys
(``subscription_id``, ``resource_group``, ``workspace_name``) plus an ``amlstep_fake_service``
section: the service's endpoint, its token and the certificate authority its blob storage uses.
``amlstep run ... --backend azure --config c.json`` then talks to it with no ``az login``: the SDK
is pointed at the endpoint (service discovery, ARM calls, blob transfers through the service) and
authenticates with the token. Nothing here imports ``azureml`` until a workspace is built.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

CONFIG_MARKER = "amlstep_fake_service"


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


def config_path(config: str | Path | None) -> Path | None:
    """The config.json a ``--config`` value names (a file, or a folder holding one), if it exists."""
    if config is None:
        return None
    path = Path(config).expanduser()
    if path.is_file():
        return path
    for candidate in (path / "config.json", path / ".azureml" / "config.json"):
        if candidate.is_file():
            return candidate
    return None


def fake_service(config: str | Path | None) -> dict[str, Any] | None:
    """The fake-service section of a workspace config.json (with the workspace ids), or None."""
    path = config_path(config)
    if path is None:
        return None
    data = read_config(path)
    section = data.get(CONFIG_MARKER)
    if not isinstance(section, dict):
        return None
    return {**section, "subscription_id": data.get("subscription_id"), "resource_group": data.get("resource_group"),
            "workspace_name": data.get("workspace_name")}


WORKSPACE_KEYS = ("subscription_id", "resource_group", "workspace_name")


def read_config(path: Path) -> dict[str, Any]:
    """A workspace config.json; one error naming the file when it is not valid JSON or lacks a workspace key
    (it used to surface as "Azure ML service error", or as a request to ``workspaces/None``)."""
    from ...errors import BackendError

    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise BackendError(f"cannot read the Azure ML workspace config {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise BackendError(f"the Azure ML workspace config {path} is not valid JSON ({exc}); download config.json "
                           f"again from the workspace's page in the Azure portal") from None
    if not isinstance(data, dict):
        raise BackendError(f"the Azure ML workspace config {path} holds a JSON {type(data).__name__}, not an object "
                           f"with {', '.join(WORKSPACE_KEYS)}")
    missing = [key for key in WORKSPACE_KEYS if not isinstance(data.get(key), str) or not data[key].strip()]
    if missing:
        raise BackendError(f"the Azure ML workspace config {path} has no {', '.join(missing)}; a workspace config names "
                           f"{', '.join(WORKSPACE_KEYS)} (download it from the workspace's page in the Azure portal)")
    return data


def environment(info: dict[str, Any]) -> dict[str, str]:
    """What the SDK's process needs to reach the service (and nothing else)."""
    endpoint = str(info["endpoint"]).rstrip("/")
    env = {"HBI_WORKSPACE_JOB": "true", "AZUREML_CURRENT_CLOUD": "AzureCloud", "AZUREML_AUTOML_SCENARIO": "AutoML",
           "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
           "AZUREML_DISCOVERY_SERVICE_ENDPOINT": endpoint + "/discovery",
           "HTTPS_PROXY": endpoint, "https_proxy": endpoint}
    if info.get("ca_bundle"):
        env["REQUESTS_CA_BUNDLE"] = str(info["ca_bundle"])
    return env


def token_authentication(endpoint: str, token: str, subscription: str, tenant: str) -> Any:
    """An ``azureml`` authentication that sends ``token`` and ARM calls to ``endpoint``."""
    from azureml.core.authentication import AbstractAuthentication

    class ServiceTokenAuthentication(AbstractAuthentication):
        def _get_arm_token(self) -> str:
            return token

        def _get_graph_token(self) -> str:
            return token

        def _get_azureml_client_token(self) -> str:
            return token

        def _get_all_subscription_ids(self) -> tuple[list[str], str]:
            return [subscription], tenant

        def _get_workspace(self, *args: Any, **kwargs: Any) -> None:
            return None

        def _get_arm_end_point(self) -> str:
            return endpoint

        def _get_cloud_type(self) -> Any:
            import copy

            cloud = copy.deepcopy(super()._get_cloud_type())
            cloud.endpoints.resource_manager = endpoint + "/"
            return cloud

        def _get_service_client(self, client_class: Any, subscription_id: str, subscription_bound: bool = True,
                                base_url: str | None = None, is_check_subscription: bool = True) -> Any:
            return super()._get_service_client(client_class, subscription_id, subscription_bound=subscription_bound,
                                               base_url=self._get_arm_end_point(), is_check_subscription=False)

    return ServiceTokenAuthentication()


def workspace(info: dict[str, Any]) -> Any:
    """The ``azureml.core.Workspace`` of a fake-service config (the environment must be set)."""
    from azureml.core import Workspace

    endpoint = str(info["endpoint"]).rstrip("/")
    auth = token_authentication(endpoint, str(info["token"]), str(info["subscription_id"]),
                                str(info.get("tenant_id") or ""))
    return Workspace(str(info["subscription_id"]), str(info["resource_group"]), str(info["workspace_name"]),
                     auth=auth, _disable_service_check=True, _workspace_id=info.get("workspace_id"),
                     _location=info.get("location"))
