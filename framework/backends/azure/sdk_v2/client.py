"""Reaching a workspace with the Azure ML SDK v2: credentials, ``MLClient``, the fake service's endpoints.

- Credentials: ``DefaultAzureCredential`` by default (environment, managed identity, Azure CLI,
  ...: the SDK v2 habit); a workspace config written by ``amlstep fake-azure`` is recognised
  (``endpoint.CONFIG_MARKER``) and answered with :class:`FakeServiceCredential`, which hands out the
  tokens the fake issued in that config (it signs them; it accepts no others), so trying the Azure
  path by hand needs no ``az login``.
- The workspace: ``MLClient.from_config`` (a ``config.json`` in the current folder or a parent,
  ``.azureml/``) or ``--config PATH`` (a file or a folder).
- The fake: azure-ai-ml finds a cloud's endpoints through ``ARM_CLOUD_METADATA_URL``
  (``azure/ai/ml/_azure_environments.py``) and sends bearer tokens over TLS only
  (``azure/core/pipeline/policies/_authentication.py``), so :func:`environment` points the SDK at
  the fake's metadata document over https, trusts the fake's throw-away certificate authority
  (``REQUESTS_CA_BUNDLE``) and sends blob transfers through the fake (``HTTPS_PROXY``).

Nothing here imports ``azure.ai.ml`` at module level.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

from ....errors import BackendError

FAKE_CLOUD = "AmlstepFake"
# azure-ai-ml 1.35.2: ModelDataplaneOperations.get_batch_model_uris builds its request with values=,
# but the generated BatchGetResolvedUrisDto names the field values_property, and the caller reads
# the answer's .values, a Mapping method of the generated model: jobs.download of a model output
# (mlflow_model, custom_model) raises TypeError. patch_model_output_download() mends both sides.
SDK_BUG_VERSIONS = ("1.35",)


class FakeServiceCredential:
    """An azure-core token credential for the fake service: the tokens of its config, no sign-in.

    Args:
        tenant: the fake's tenant id.
        token: the token of the fake's config (``token``), sent for any scope ...
        tokens: ... but those the config names by resource (``tokens``: azure-ai-ml checks the audience of
            Azure ML's own token).
    """

    def __init__(self, tenant: str = "", token: str = "", tokens: Mapping[str, str] | None = None) -> None:
        self.tenant = tenant
        self.token = token
        self.tokens = {resource.rstrip("/"): value for resource, value in (tokens or {}).items()}

    def _token(self, scopes: tuple[str, ...]) -> str:
        resource = scopes[0].removesuffix("/.default").rstrip("/") if scopes else ""
        found = self.tokens.get(resource) or self.token
        if not found:
            raise BackendError("the fake service's workspace config carries no token; write it again with "
                               "`amlstep fake-azure --config-out FILE`")
        return found

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token(scopes), int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self._token(scopes), int(time.time()) + 3600)


def environment(info: Mapping[str, Any]) -> dict[str, str]:
    """What an SDK v2 process needs to reach a fake service described by its config section."""
    tls = str(info.get("tls_endpoint") or str(info["endpoint"]).replace("http://", "https://")).rstrip("/")
    plain = str(info["endpoint"]).rstrip("/")
    env = {"HBI_WORKSPACE_JOB": "true", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
           "ARM_CLOUD_METADATA_URL": str(info.get("arm_cloud_metadata_url")
                                         or f"{tls}/metadata/endpoints?api-version=2019-05-01"),
           "AZUREML_CURRENT_CLOUD": str(info.get("cloud") or FAKE_CLOUD),
           "HTTPS_PROXY": plain, "https_proxy": plain, "AZURE_CORE_COLLECT_TELEMETRY": "false"}
    if info.get("ca_bundle"):
        env["REQUESTS_CA_BUNDLE"] = str(info["ca_bundle"])
    return env


def require_sdk() -> None:
    from .compiler import require_sdk as require

    require()


def credential(service: Mapping[str, Any] | None) -> Any:
    """The credential for a workspace: the fake's, else ``DefaultAzureCredential``."""
    if service is not None:
        tokens = service.get("tokens")
        return FakeServiceCredential(str(service.get("tenant_id") or ""), str(service.get("token") or ""),
                                     tokens if isinstance(tokens, Mapping) else None)
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError as exc:
        raise BackendError(f"--sdk v2 needs azure-identity for DefaultAzureCredential: {exc}; install it with: "
                           f"pip install 'amlstep[azure]'") from exc
    return DefaultAzureCredential()


def check_credential(cred: Any) -> None:
    """Fail early, with what to do, when no credential can sign in (``az login`` not run, no identity...)."""
    from azure.core.exceptions import ClientAuthenticationError

    try:
        cred.get_token("https://management.azure.com/.default")
    except ClientAuthenticationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackendError(f"no Azure credential could sign in for --sdk v2 (DefaultAzureCredential: {first}); sign "
                           f"in with `az login`, or set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET for a "
                           f"service principal") from None


def ml_client(config: str | Path | None, service: Mapping[str, Any] | None, cred: Any = None) -> Any:
    """``MLClient`` for the workspace of ``config`` (a file or folder; None: searched from the current folder)."""
    from azure.ai.ml import MLClient

    cred = cred if cred is not None else credential(service)
    if service is not None:
        return MLClient(cred, str(service["subscription_id"]), str(service["resource_group"]),
                        str(service["workspace_name"]))
    path = Path(config).expanduser() if config else None
    if path is not None and not path.exists():
        raise BackendError(f"Azure ML workspace config {str(path)!r} does not exist; download config.json from the "
                           f"workspace's page in the Azure portal")
    where = (str(path) if path is not None else f"{Path.cwd()} and its parent folders (also .azureml/ in each)")
    try:
        if path is not None and path.is_file():
            return MLClient.from_config(cred, path=str(path.parent), file_name=path.name)
        return MLClient.from_config(cred, path=str(path) if path else None)
    except Exception as exc:
        text = str(exc)
        if "config" in text.lower() and ("not find" in text.lower() or "not found" in text.lower()
                                         or "no such" in text.lower()):
            raise BackendError(f"no Azure ML workspace config.json found; looked in {where}. Download it from the "
                               f"workspace's page in the Azure portal, or pass --config PATH") from exc
        raise BackendError(f"could not read the Azure ML workspace config ({where}): {text.splitlines()[0]}") from exc


def mlflow_token(cred: Any) -> str:
    """A token for the workspace's MLflow endpoint (what azureml-mlflow sends), from ``cred``."""
    try:
        from azure.ai.ml._azure_environments import _get_aml_resource_id_from_metadata

        resource = _get_aml_resource_id_from_metadata()
    except Exception:
        resource = "https://ml.azure.com"
    return str(cred.get_token(resource.rstrip("/") + "/.default").token)


def patch_model_output_download() -> None:
    """Mend azure-ai-ml 1.35's download of model outputs (see ``SDK_BUG_VERSIONS``); a no-op once fixed."""
    from types import SimpleNamespace

    from azure.ai.ml._restclient.model_dataplane.models import BatchGetResolvedUrisDto
    from azure.ai.ml.operations._model_dataplane_operations import ModelDataplaneOperations

    if getattr(ModelDataplaneOperations.get_batch_model_uris, "_amlstep", False):
        return
    try:
        BatchGetResolvedUrisDto(values=[])  # type: ignore[call-overload]
        return  # the SDK's own request works
    except TypeError:
        pass

    def get_batch_model_uris(self: Any, model_ids: list[str]) -> Any:
        response = self._operation.batch_get_resolved_uris(
            self._operation_scope.subscription_id, self._operation_scope.resource_group_name, self._workspace_name,
            body=BatchGetResolvedUrisDto(values_property=list(model_ids)))
        return SimpleNamespace(values={k: SimpleNamespace(path=v.path)
                                       for k, v in (response.values_property or {}).items()})

    get_batch_model_uris._amlstep = True  # type: ignore[attr-defined]
    ModelDataplaneOperations.get_batch_model_uris = get_batch_model_uris  # type: ignore[method-assign]
