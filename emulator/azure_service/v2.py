"""The Azure ML SDK v2 API in front of the engine: the public ARM REST API ``azure-ai-ml`` speaks.

Written against azure-ai-ml 1.35 (its ``arm_ml_service`` REST models; re-check when upgrading).
``azure-ai-ml`` reaches a workspace through Azure Resource Manager
(``/subscriptions/.../providers/Microsoft.MachineLearningServices/workspaces/...``), over TLS only
(azure-core's bearer-token policy refuses plain http), and finds a cloud's endpoints through
``ARM_CLOUD_METADATA_URL`` (``azure/ai/ml/_azure_environments.py``): the service serves that
document, naming itself as the cloud's resource manager.

Routes: cloud metadata, the workspace and its discovery document, computes, datastores (and
their secrets), code, environment, component, data and model versions (pending uploads in
temporary containers), jobs (a pipeline job becomes an engine :class:`~.engine.PipelineJob`), the
MLflow tracking REST API (``/mlflow/v1.0/<workspace>/api/2.0/mlflow/...``) and the on-behalf-of
token endpoint jobs with the user's identity call. Run history (``/history/v1.0``) is shared with
the SDK v1 API: the same engine runs answer both.

Every PUT body is checked against the published schema (:mod:`.v2_schema`) and refused as the
service refuses it: HTTP 400 with ARM's error shape (``error.code``, ``message``, ``target``,
``details`` and ``additionalInfo``).
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import time
import uuid
from typing import Any, Callable, Mapping
from urllib.parse import unquote, urlparse

from . import environments
from .api import PROVIDER, WS_PATH, Api, instance_properties
from .blobstore import BLOB_HOST_SUFFIX
from .engine import (ComputeTarget, Engine, EnvironmentSpec, InputBinding, OutputSpec, PipelineJob, RunRecord,
                     ServiceError, StepJob, now_iso)
from .v2_automl import check_task, settings_of_task, task_of_node
from .v2_jobs import Builder, Refusal
from .v2_schema import Problem, check_resource

ASSET_KINDS = ("codes", "environments", "components", "data", "models")
# azure-ai-ml caches a cloud's endpoints by name for the life of the process
# (``_azure_environments._environments``): each fake names its cloud after its port
CLOUD_NAME = "AmlstepFake"
# what the SDK turns a cloud's portal into its ML resource id: "https://ml.azure." + the portal's suffix
PORTAL = "https://portal.amlstep.invalid/"
AML_RESOURCE = "https://ml.azure.invalid"
TERMINAL = ("Completed", "Failed", "Canceled")
BINDING = re.compile(r"^\$\{\{parent\.(inputs|jobs|outputs)\.([A-Za-z0-9_]+)(?:\.outputs\.([A-Za-z0-9_]+))?\}\}$")
ARM_ID = re.compile(r"^(?:azureml:)?/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
                    r"Microsoft.MachineLearningServices/workspaces/[^/]+/(?P<kind>[a-z]+)/(?P<name>[^/]+)"
                    r"(?:/versions/(?P<version>[^/]+))?$", re.IGNORECASE)
MLFLOW_STATUS = {"NotStarted": "SCHEDULED", "Queued": "SCHEDULED", "Preparing": "SCHEDULED", "Running": "RUNNING",
                 "Finalizing": "RUNNING", "Completed": "FINISHED", "Failed": "FAILED", "Canceled": "KILLED"}


def arm_error(status: int, code: str, message: str, *, target: str | None = None,
              details: list[dict[str, Any]] | None = None, location: str = "westeurope") -> tuple[int, dict[str, Any]]:
    """An error as Azure Resource Manager answers it for Azure ML (the management front end)."""
    return status, {"error": {
        "code": code, "message": message, "target": target, "details": details or [],
        "additionalInfo": [{"type": "ComponentName", "info": {"value": "managementfrontend"}},
                           {"type": "Correlation", "info": {"value": {"operation": uuid.uuid4().hex,
                                                                      "request": uuid.uuid4().hex[:16]}}},
                           {"type": "Environment", "info": {"value": location}},
                           {"type": "Location", "info": {"value": location}},
                           {"type": "Time", "info": {"value": now_iso()}}]}}


def system_data(created: float | None = None) -> dict[str, Any]:
    stamp = now_iso(created)
    return {"createdAt": stamp, "createdBy": "fake@example.com", "createdByType": "User", "lastModifiedAt": stamp,
            "lastModifiedBy": "fake@example.com", "lastModifiedByType": "User"}


class V2Api(Api):
    """Routes of the public ARM REST API (SDK v2), answered from ``engine``."""

    OPEN_ROUTES = frozenset({"_cloud_metadata", "_obo_token", "_discovery"})
    CHECK_UNROUTED = False    # what no route answers here is the SDK v1 API's (run history is shared)
    AUTH_ERROR_MESSAGE = "Authentication failed: the access token is invalid or expired (fake service)"
    OPERATION_QUERY = "?api-version=2024-10-01"

    def __init__(self, engine: Engine, **where: Any) -> None:
        self.assets: dict[str, dict[str, dict[str, dict[str, Any]]]] = {k: {} for k in ASSET_KINDS}
        self.jobs: dict[str, dict[str, Any]] = {}           # job name -> submitted body (and what it became)
        self.submissions: list[dict[str, Any]] = []         # what each pipeline submission carried, summarised
        self.refused: list[dict[str, Any]] = []             # bodies refused by the schema check
        self.resolved: dict[str, str] = {}                  # output asset id -> datastore URI
        super().__init__(engine, **where)

    def error(self, status: int, code: str, message: str) -> tuple[int, Any]:
        return arm_error(status, code, message, location=self.location)

    def render(self, exc: ServiceError) -> tuple[int, Any]:
        if isinstance(exc, _Refused):
            return arm_error(exc.status, exc.code, exc.message, target=exc.target, location=self.location,
                             details=[{"code": p.code, "message": p.message, "target": p.target}
                                      for p in exc.problems])
        return super().render(exc)

    def unrouted(self, method: str, path: str) -> tuple[int, Any]:
        return 404, None

    def _add_routes(self) -> None:
        r = self._route
        ws = "^" + WS_PATH
        r("GET", r"^/metadata/endpoints$", self._cloud_metadata)
        r("GET", r"^/obo/(?P<run>[^/]+)/(?P<key>[^/]+)/token$", self._obo_token)
        r("GET", r"^/discovery$", self._discovery)
        r("GET", ws + "$", self._workspace)
        r("GET", ws + r"/computes$", self._compute_list)
        r("GET", ws + r"/computes/(?P<name>[^/]+)$", self._compute_get)
        r("PUT", ws + r"/computes/(?P<name>[^/]+)$", self._compute_put)
        r("GET", r"^/operations/(?P<id>[^/]+)$", self._operation)
        r("GET", ws + r"/datastores$", self._datastore_list)
        r("GET", ws + r"/datastores/(?P<name>[^/]+)$", self._datastore_get)
        r("POST", ws + r"/datastores/(?P<name>[^/]+)/listSecrets$", self._datastore_secrets)
        kinds = "(?P<kind>" + "|".join(ASSET_KINDS) + ")"
        r("GET", ws + "/" + kinds + "$", self._asset_containers)
        r("GET", ws + "/" + kinds + r"/(?P<name>[^/]+)$", self._asset_container)
        r("GET", ws + "/" + kinds + r"/(?P<name>[^/]+)/versions$", self._asset_versions)
        r("GET", ws + "/" + kinds + r"/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$", self._asset_get)
        r("PUT", ws + "/" + kinds + r"/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$", self._asset_put)
        r("POST", ws + "/" + kinds + r"/(?P<name>[^/]+)/versions/(?P<version>[^/]+)/startPendingUpload$",
          self._pending_upload)
        r("GET", ws + r"/jobs$", self._job_list)
        r("GET", ws + r"/jobs/(?P<name>[^/]+)$", self._job_get)
        r("PUT", ws + r"/jobs/(?P<name>[^/]+)$", self._job_put)
        r("POST", ws + r"/jobs/(?P<name>[^/]+)/cancel$", self._job_cancel)
        mlflow = r"^/mlflow/v[12]\.0" + WS_PATH + r"/api/2\.0/mlflow"  # azureml-mlflow 1.4x: v1.0, 1.5x+: v2.0
        r("GET", mlflow + r"/experiments/get-by-name$", self._mlflow_experiment_by_name)
        r("GET", mlflow + r"/experiments/get$", self._mlflow_experiment_get)
        r("GET", mlflow + r"/runs/get$", self._mlflow_run_get)
        r("POST", mlflow + r"/runs/search$", self._mlflow_runs_search)
        r("POST", mlflow + r"/runs/create$", self._mlflow_run_create)
        r("POST", mlflow + r"/runs/update$", self._mlflow_run_update)
        r("POST", mlflow + r"/runs/log-metric$", self._mlflow_log_metric)
        r("POST", mlflow + r"/runs/log-batch$", self._mlflow_log_batch)
        r("POST", mlflow + r"/runs/set-tag$", self._mlflow_set_tag)
        r("POST", mlflow + r"/runs/log-parameter$", self._mlflow_set_param)
        r("GET", mlflow + r"/metrics/get-history$", self._mlflow_metric_history)
        r("POST", mlflow + r"/logged-models/search$", self._mlflow_logged_models_search)
        r("POST", mlflow + r"/registered-models/create$", self._mlflow_registered_model_create)
        r("GET", mlflow + r"/registered-models/get$", self._mlflow_registered_model_get)
        r("POST", mlflow + r"/model-versions/create$", self._mlflow_model_version_create)
        r("GET", mlflow + r"/model-versions/get$", self._mlflow_model_version_get)
        history = r"^/history/v1\.0" + WS_PATH
        r("GET", history + r"/runs/(?P<id>[^/]+)$", self._history_run)
        r("GET", history + r"/runs/(?P<id>[^/]+)/children$", self._history_children)
        r("GET", history + r"/runs/(?P<id>[^/]+)/details$", self._history_details)
        r("POST", history + r"/rundata$", self._history_rundata)
        r("POST", r"^/data/v1\.0" + WS_PATH + r"/dataversion/batchGetResolvedUris$", self._resolve_data_uris)
        r("POST", r"^/modelregistry/v1\.0" + WS_PATH + r"/models/batchGetResolvedUris$", self._resolve_model_uris)

    # -- ids -------------------------------------------------------------------------------------------
    def host(self) -> str:
        return urlparse(self.base_url()).netloc

    def cloud_name(self) -> str:
        return f"{CLOUD_NAME}{urlparse(self.base_url()).port}"

    def datastore_uri(self, path: str, datastore: str = "workspaceblobstore") -> str:
        return (f"azureml://subscriptions/{self.subscription}/resourcegroups/{self.resource_group}/workspaces/"
                f"{self.workspace_name()}/datastores/{datastore}/paths/{path}")

    # -- cloud, workspace, discovery -------------------------------------------------------------------
    def _cloud_metadata(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        base = self.base_url()
        return 200, [{"name": self.cloud_name(), "portal": PORTAL, "resourceManager": base + "/",
                      "authentication": {"loginEndpoint": base + "/login/", "audiences": [base + "/"],
                                         "tenant": "common", "identityProvider": "AAD"},
                      "suffixes": {"storage": BLOB_HOST_SUFFIX.split(".blob.", 1)[1],
                                   "keyVaultDns": "vault.amlstep.invalid", "acrLoginServer": "azurecr.invalid"},
                      "media": base + "/", "graph": base + "/graph/", "sqlManagement": base + "/sql/",
                      "batch": base + "/batch/", "gallery": base + "/gallery/",
                      "activeDirectoryDataLake": base + "/datalake/", "graphAudience": base + "/graph/",
                      "microsoftGraphResourceId": base + "/graph/", "appInsightsResourceId": base + "/insights/",
                      "appInsightsTelemetryChannelResourceId": base + "/insights/",
                      "attestationResourceId": base + "/attestation/", "synapseAnalyticsResourceId": base + "/syn/",
                      "logAnalyticsResourceId": base + "/logs/", "ossrDbmsResourceId": base + "/db/"}]

    def workspace_payload(self) -> dict[str, Any]:
        ws_id = self.ws_id
        rg = f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers"
        return {
            "id": ws_id, "name": self.workspace_name(), "type": f"{PROVIDER}/workspaces", "location": self.location,
            "kind": "Default", "tags": {}, "identity": {"type": "SystemAssigned", "principalId": str(uuid.UUID(int=7)),
                                                         "tenantId": self.tenant},
            "sku": {"name": "Basic", "tier": "Basic"}, "systemData": system_data(),
            "properties": {
                "friendlyName": self.workspace_name(), "description": "the amlstep fake Azure ML service",
                "workspaceId": self.workspace_id, "provisioningState": "Succeeded", "hbiWorkspace": False,
                "discoveryUrl": self.base_url() + "/discovery",
                "mlFlowTrackingUri": f"azureml://{self.host()}/mlflow/v1.0{ws_id}",
                "storageAccount": f"{rg}/Microsoft.Storage/storageAccounts/{self.account}",
                "keyVault": f"{rg}/Microsoft.KeyVault/vaults/amlstepfakekv",
                "applicationInsights": f"{rg}/Microsoft.Insights/components/amlstepfakeai",
                "publicNetworkAccess": "Enabled", "v1LegacyMode": False, "systemDatastoresAuthMode": "accesskey"}}

    def _workspace(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        return 200, self.workspace_payload()

    def obo_endpoint(self, run_id: str) -> str:
        """The on-behalf-of token endpoint of run ``run_id``: its URL carries a MAC of the run id (the credential
        calling it sends none; on Azure the endpoint is on the job's own node)."""
        return f"{self.base_url()}/obo/{run_id}/{self.tokens.capability('obo:' + run_id)}/token"

    def _obo_token(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        """The token endpoint ``AzureMLOnBehalfOfCredential`` calls in a job run with the user's identity."""
        if not self.tokens.has_capability("obo:" + m.group("run"), m.group("key")):
            raise ServiceError(401, "InvalidAuthenticationToken", "The on-behalf-of token endpoint of this run is "
                                                                  "not this URL (the fake service gives each job its "
                                                                  "own, in OBO_ENDPOINT)")
        resource = (q.get("resource") or [AML_RESOURCE])[0]
        expires = int(time.time()) + 3600
        return 200, {"access_token": self.tokens.issue(f"run:{m.group('run')}", audience=resource, lifetime=3600),
                     "expires_on": str(expires), "resource": resource, "token_type": "Bearer"}

    # -- computes --------------------------------------------------------------------------------------
    def compute_payload(self, target: ComputeTarget, state: str | None = None) -> dict[str, Any]:
        if target.kind == "ComputeInstance":
            return {"id": f"{self.ws_id}/computes/{target.name}", "name": target.name,
                    "type": f"{PROVIDER}/workspaces/computes", "location": self.location, "systemData": system_data(),
                    "properties": {"computeType": "ComputeInstance", "computeLocation": self.location,
                                   "provisioningState": state or target.state,
                                   "provisioningErrors": target.errors or None, "isAttachedCompute": False,
                                   "disableLocalAuth": True, "properties": instance_properties(target)}}
        return {"id": f"{self.ws_id}/computes/{target.name}", "name": target.name,
                "type": f"{PROVIDER}/workspaces/computes", "location": self.location, "systemData": system_data(),
                "properties": {"computeType": "AmlCompute", "computeLocation": self.location,
                               "provisioningState": state or target.state, "provisioningErrors": target.errors or None,
                               "isAttachedCompute": False, "disableLocalAuth": True,
                               "properties": {"vmSize": target.vm_size, "vmPriority": target.priority,
                                              "osType": "Linux",
                                              "scaleSettings": {"minNodeCount": target.min_nodes,
                                                                "maxNodeCount": target.max_nodes,
                                                                "nodeIdleTimeBeforeScaleDown":
                                                                    f"PT{target.idle_seconds}S"},
                                              "allocationState": "Steady", "currentNodeCount": 0,
                                              "targetNodeCount": 0, "remoteLoginPortPublicAccess": "NotSpecified"}}}

    # -- datastores ------------------------------------------------------------------------------------
    def containers(self) -> dict[str, str]:
        """datastore -> container: the engine's, and the artifact store where run files (logs) are kept."""
        return {**self.engine.datastores, "workspaceartifactstore": "azureml"}

    def datastore_payload(self, name: str = "workspaceblobstore") -> dict[str, Any]:
        containers = self.containers()
        if name not in containers:
            raise ServiceError(404, "UserError", f"Datastore {name!r} was not found in the workspace.")
        return {"id": f"{self.ws_id}/datastores/{name}", "name": name, "type": f"{PROVIDER}/workspaces/datastores",
                "systemData": system_data(),
                "properties": {"datastoreType": "AzureBlob", "accountName": self.account,
                               "containerName": containers[name],
                               "endpoint": BLOB_HOST_SUFFIX.split(".blob.", 1)[1], "protocol": "https",
                               "credentials": {"credentialsType": "AccountKey"},
                               "isDefault": name == "workspaceblobstore", "serviceDataAccessAuthIdentity": "None",
                               "tags": {}, "properties": {}}}

    def _datastore_list(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        names = ["workspaceblobstore"] if (q.get("isDefault") or ["false"])[0].lower() == "true" else \
            [n for n in self.engine.datastores if n == "workspaceblobstore"]
        return 200, {"value": [self.datastore_payload(n) for n in names]}

    def _datastore_get(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        return 200, self.datastore_payload(m.group("name"))

    def _datastore_secrets(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        self.datastore_payload(m.group("name"))
        return 200, {"secretsType": "Sas", "sasToken": "sv=2021-08-06&ss=b&srt=sco&sp=rwdlac&se=2099-01-01T00%3A00%3A00Z"
                                                      f"&sig={self.tokens.sas_signature}"}

    # -- versioned assets ------------------------------------------------------------------------------
    def check_body(self, kind: str, body: Any) -> None:
        problems = check_resource(kind, body)
        if problems:
            self.refused.append({"kind": kind, "body": body, "problems": problems})
            first = problems[0]
            raise _Refused(first.target, first.code, problems)

    def asset(self, kind: str, name: str, version: str | None = None) -> dict[str, Any]:
        versions = self.assets[kind].get(name) or {}
        if not versions:
            raise ServiceError(404, "UserError", f"{kind[:-1].capitalize()} container {name!r} was not found.")
        if version is None:
            version = max(versions, key=_version_key)
        found = versions.get(version)
        if found is None:
            raise ServiceError(404, "UserError", f"{kind[:-1].capitalize()} {name}:{version} was not found.")
        return found

    def _asset_containers(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        """The containers of a kind (``ml_client.models.list()``, ``data.list()``, ``components.list()``)."""
        kind = m.group("kind")
        names = [n for n, versions in self.assets[kind].items() if versions and n != "azureml_anonymous"
                 and not any((v["properties"].get("isAnonymous") for v in versions.values()))]
        return 200, {"value": [self.container_payload(kind, n) for n in sorted(names)]}

    def _asset_container(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        kind, name = m.group("kind"), unquote(m.group("name"))
        versions = self.assets[kind].get(name)
        if not versions:
            raise ServiceError(404, "UserError", f"{kind[:-1].capitalize()} container {name!r} was not found.")
        return 200, self.container_payload(kind, name)

    def container_payload(self, kind: str, name: str) -> dict[str, Any]:
        versions = self.assets[kind][name]
        latest = max(versions, key=_version_key)
        props: dict[str, Any] = {"latestVersion": latest, "nextVersion": str(int(latest) + 1) if latest.isdigit()
                                 else None, "isArchived": False, "description": None, "tags": {}, "properties": {}}
        if kind == "data":
            props["dataType"] = versions[latest]["properties"].get("dataType")
        return {"id": f"{self.ws_id}/{kind}/{name}", "name": name, "type": f"{PROVIDER}/workspaces/{kind}",
                "systemData": system_data(), "properties": props}

    def _asset_versions(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        kind, name = m.group("kind"), unquote(m.group("name"))
        wanted = (q.get("hash") or [None])[0]
        if wanted is not None:  # content lookup across names (anonymous code is named at random)
            found = [v for versions in self.assets[kind].values() for v in versions.values()
                     if (v["properties"].get("properties") or {}).get("hash_sha256") == wanted]
            return 200, {"value": found}
        versions = sorted((self.assets[kind].get(name) or {}).values(), key=lambda v: _version_key(v["name"]),
                          reverse=True)
        return 200, {"value": versions}

    def _asset_get(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        return 200, self.asset(m.group("kind"), unquote(m.group("name")), unquote(m.group("version")))

    def _pending_upload(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        """A temporary container the client uploads an asset's files into, with a SAS for it."""
        container = f"{m.group('kind')}-upload-{uuid.uuid4().hex[:16]}"
        sas = f"sv=2021-08-06&sr=c&sp=rcwl&se=2099-01-01T00%3A00%3A00Z&sig={self.tokens.sas_signature}"
        return 200, {"blobReferenceForConsumption": {"blobUri": self.blob_url(container),
                                                     "storageAccountArmId": f"/subscriptions/{self.subscription}/"
                                                     f"resourceGroups/{self.resource_group}/providers/"
                                                     f"Microsoft.Storage/storageAccounts/{self.account}",
                                                     "credential": {"credentialType": "SAS",
                                                                    "sasUri": f"{self.blob_url(container)}?{sas}"}},
                     "pendingUploadId": uuid.uuid4().hex, "pendingUploadType": "TemporaryBlobReference"}

    def _asset_put(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        with self.engine.lock:  # a version is created once, whoever asks at the same time (Azure's PUT is atomic)
            return self._asset_put_locked(m, body, q)

    def _asset_put_locked(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        kind, name, version = m.group("kind"), unquote(m.group("name")), unquote(m.group("version"))
        self.check_body(kind, body)
        props = dict(body["properties"])
        existing = (self.assets[kind].get(name) or {}).get(version)
        if existing is not None:
            if kind == "models" or kind == "data":
                raise ServiceError(409, "UserError", f"{kind[:-1].capitalize()} {name}:{version} already exists; "
                                                     f"versions cannot be changed")
            return 200, existing
        self._verify_storage(kind, name, version, props)
        if kind == "components" and isinstance(props.get("componentSpec"), dict):
            # the service names the spec after the URL: a component sent without a version reads back with one
            props["componentSpec"] = {"name": name, "version": version, **props["componentSpec"]}
        return 201, self._store_asset(kind, name, version, props)

    def _store_asset(self, kind: str, name: str, version: str, props: dict[str, Any]) -> dict[str, Any]:
        """Keep a new asset version (a model's flavors read from its MLmodel) and register it with the engine."""
        if kind == "models" and not props.get("flavors"):
            props["flavors"] = self._model_flavors(name, version, props)
        resource = {"id": f"{self.ws_id}/{kind}/{name}/versions/{version}", "name": version,
                    "type": f"{PROVIDER}/workspaces/{kind}/versions", "systemData": system_data(),
                    "properties": {**props, "provisioningState": "Succeeded"}}
        self.assets[kind].setdefault(name, {})[version] = resource
        if kind == "models":
            self._register_model(name, version, props)
        elif kind == "data":
            self._register_data(name, version, props)
        return resource

    def _verify_storage(self, kind: str, name: str, version: str, props: Mapping[str, Any]) -> None:
        """An asset whose files were never uploaded is refused, as the service refuses it."""
        uri = props.get({"codes": "codeUri", "models": "modelUri", "data": "dataUri"}.get(kind, ""))
        if kind == "environments":
            uri = (props.get("build") or {}).get("contextUri")
        if not uri:
            return
        location = self.locate(str(uri))
        if location is None:
            return  # a URL outside the workspace's storage (public data): read when used
        container, prefix = location
        if not self.engine.blob.exists(container, prefix) and not self.engine.blob.names(container, prefix.rstrip("/")):
            raise ServiceError(400, "UserError", f"{kind[:-1].capitalize()} {name}:{version}: nothing was uploaded "
                                                 f"at {uri}")

    def _model_flavors(self, name: str, version: str, props: Mapping[str, Any]) -> dict[str, Any]:
        """The flavors of an MLflow model, read from its MLmodel file, as the service fills them in."""
        if str(props.get("modelType")).lower() != "mlflow_model":
            return {}
        import yaml  # type: ignore[import-untyped]

        location = self.locate(str(props.get("modelUri") or ""))
        text = None
        if location is not None:
            container, prefix = location
            candidates = [n for n in self.engine.blob.names(container, prefix.rstrip("/"))
                          if n.rsplit("/", 1)[-1] == "MLmodel"]
            if candidates:
                text = self.engine.blob.get(container, min(candidates, key=len)).decode()
        if text is None:
            raise ServiceError(400, "UserError", f"Model {name}:{version} is an mlflow_model, but no MLmodel file "
                                                 f"was found at {props.get('modelUri')}")
        flavors = (yaml.safe_load(text) or {}).get("flavors") or {}
        return {flavor: {"data": {k: json.dumps(v) if isinstance(v, (dict, list)) else str(v)
                                  for k, v in (values or {}).items()}} for flavor, values in flavors.items()}

    def locate(self, uri: str) -> tuple[str, str] | None:
        """(container, blob path or prefix) of a storage URL or ``azureml://...datastores/<d>/paths/<p>`` URI."""
        if uri.startswith("azureml://"):
            found = re.search(r"/datastores/(?P<ds>[^/]+)/paths/(?P<path>.*)$", uri)
            if found is None or found.group("ds") not in self.containers():
                raise ServiceError(400, "UserError", f"{uri} does not name a datastore of the workspace")
            return self.containers()[found.group("ds")], unquote(found.group("path"))
        parsed = urlparse(uri)
        if parsed.netloc != f"{self.account}{BLOB_HOST_SUFFIX}":
            return None
        container, _, blob = parsed.path.lstrip("/").partition("/")
        return container, unquote(blob)

    def _register_model(self, name: str, version: str, props: Mapping[str, Any]) -> None:
        # the engine keeps one registry for both APIs: versions 1, 2... per name
        entry = self.engine.register_model(name, str(props.get("modelUri")), run_id=(props.get("properties") or {})
                                           .get("azureml.sourceRunId") or props.get("jobName"), experiment=None,
                                           description=props.get("description"), tags=props.get("tags") or {},
                                           properties=props.get("properties") or {},
                                           framework=props.get("modelType"))
        if str(entry.version) != version:
            resource = self.assets["models"][name].pop(version)
            resource["name"] = str(entry.version)
            resource["id"] = f"{self.ws_id}/models/{name}/versions/{entry.version}"
            self.assets["models"][name][str(entry.version)] = resource

    def _register_data(self, name: str, version: str, props: Mapping[str, Any]) -> None:
        uri = str(props.get("dataUri") or "")
        location = self.locate(uri)
        datastore = next((d for d, c in self.engine.datastores.items() if location and c == location[0]), None)
        files = [(datastore, location[1].rstrip("/"))] if location and datastore else []
        self.engine.register_dataset(name, {"v2": dict(props)}, files=files,
                                     urls=[] if location else [uri], description=props.get("description"))

    # -- jobs ------------------------------------------------------------------------------------------
    def _job_put(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        name = m.group("name")
        self.check_body("jobs", body)
        props = body["properties"]
        if name in self.jobs:
            raise ServiceError(409, "UserError", f"Job {name!r} already exists; job names are unique in a workspace")
        if props.get("jobType") != "Pipeline":
            raise ServiceError(400, "UserError", f"the fake service runs pipeline jobs; got jobType "
                                                 f"{props.get('jobType')!r}")
        job, outputs_map = self.pipeline_job(name, props)
        record = self.engine.submit(job, run_id=name)
        record.properties.update({"azureml.runsource": "azureml.PipelineRun", "amlstep.api": "v2"})
        entry = {"name": name, "body": body, "outputs_map": outputs_map, "created": time.time()}
        self.jobs[name] = entry
        self.submissions.append(self.summarize(name, props, outputs_map, job))
        self.engine.start(name)
        return 201, self.job_payload(name)

    def _job_get(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        name = m.group("name")
        if name in self.jobs:
            return 200, self.job_payload(name)
        record = self.engine.runs.get(name)
        if record is not None and self.step_job(record) is not None:
            return 200, self.child_payload(record)
        if record is not None and record.run_type == "automl.child":
            return 200, self.trial_payload(record)
        raise ServiceError(404, "UserError", f"Job {name!r} was not found in workspace {self.workspace_name()!r}.")

    def _job_list(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        return 200, {"value": [self.job_payload(n) for n in self.jobs]}

    def _job_cancel(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        """``jobs.begin_cancel``: the engine stops the job (``CancelRequested``, then ``Canceled``)."""
        name = m.group("name")
        if name not in self.jobs:
            raise ServiceError(404, "UserError", f"Job {name!r} was not found.")
        self.engine.cancel(name)
        return 202, None

    def job_payload(self, name: str) -> dict[str, Any]:
        entry = self.jobs[name]
        record = self.engine.run(name)
        props = json.loads(json.dumps(entry["body"]["properties"]))
        props["status"] = record.status
        props.setdefault("properties", {}).update({k: v for k, v in record.properties.items()
                                                   if k.startswith("azureml.")})
        props["services"] = {"Studio": {"endpoint": f"{self.base_url()}/studio/runs/{name}", "jobServiceType":
                                        "Studio"},
                             "Tracking": {"endpoint": f"azureml://{self.host()}/mlflow/v1.0{self.ws_id}",
                                          "jobServiceType": "Tracking"}}
        for port, output in (props.get("outputs") or {}).items():
            found = self._pipeline_output(name, port)
            if found is not None:
                output["uri"] = self.datastore_uri(found[1])
        return {"id": f"{self.ws_id}/jobs/{name}", "name": name, "type": f"{PROVIDER}/workspaces/jobs",
                "systemData": system_data(entry["created"]), "properties": props}

    def _pipeline_output(self, name: str, port: str) -> tuple[str, str] | None:
        """(datastore, path) of a pipeline output, from the step output bound to it (through pipeline nodes)."""
        bound = self.jobs[name]["outputs_map"].get(port)
        state = self.engine.pipelines.get(name)
        run_id = state.step_runs.get(bound[0]) if state and bound else None
        if bound is None or run_id is None:
            return None
        return self.engine.run(run_id).outputs.get(bound[1])

    def child_payload(self, record: RunRecord) -> dict[str, Any]:
        node = self.step_job(record) or {}
        types = node.get("output_types") or {}
        props: dict[str, Any] = {"displayName": node["display_name"], "experimentName": record.experiment,
                                 "status": record.status,
                                 "services": {"Studio": {"endpoint": f"{self.base_url()}/studio/runs/{record.id}",
                                                         "jobServiceType": "Studio"}},
                                 "properties": {k: v for k, v in record.properties.items()}, "tags": {},
                                 "outputs": {port: {"jobOutputType": types.get(port, "uri_folder"),
                                                    "uri": self.datastore_uri(path, datastore),
                                                    "mode": "ReadWriteMount"}
                                             for port, (datastore, path) in record.outputs.items()}}
        if record.target:
            props["computeId"] = f"{self.ws_id}/computes/{record.target}"
        if node["type"] == "pipeline":
            props.update({"jobType": "Pipeline", "jobs": {}, "settings": {}})
        elif node["type"] == "automl":
            props.update({"jobType": "AutoML", "taskDetails": {"taskType": node["task"].capitalize(),
                                                               "targetColumnName": node["target_column_name"],
                                                               "trainingData": {"jobInputType": "mltable",
                                                                                "uri": node["training_uri"]}}})
        else:
            props.update({"jobType": "Command", "command": node["command"], "environmentId": node["environment_id"],
                          "codeId": node["code_id"]})
        return {"id": f"{self.ws_id}/jobs/{record.id}", "name": record.id, "type": f"{PROVIDER}/workspaces/jobs",
                "systemData": system_data(record.created), "properties": props}

    def trial_payload(self, record: RunRecord) -> dict[str, Any]:
        """An AutoML trial (a child run of an AutoML job) as the jobs API shows it: a command job running AutoML's
        driver script in the AutoML environment, with the trial's properties (its pipeline spec, its score)."""
        props: dict[str, Any] = {"jobType": "Command", "displayName": record.name, "experimentName": record.experiment,
                                 "status": record.status, "command": "python automl_driver.py",
                                 "environmentId": "azureml://registries/azureml/environments/AzureML-AutoML/labels/"
                                                  "latest",
                                 "services": {"Studio": {"endpoint": f"{self.base_url()}/studio/runs/{record.id}",
                                                         "jobServiceType": "Studio"}},
                                 "properties": dict(record.properties), "tags": dict(record.tags), "outputs": {}}
        if record.target:
            props["computeId"] = f"{self.ws_id}/computes/{record.target}"
        return {"id": f"{self.ws_id}/jobs/{record.id}", "name": record.id, "type": f"{PROVIDER}/workspaces/jobs",
                "systemData": system_data(record.created), "properties": props}

    # -- a pipeline job into engine steps (v2_jobs reads the nodes) ---------------------------------------
    def pipeline_job(self, name: str, props: Mapping[str, Any]) -> tuple[PipelineJob, dict[str, Any]]:
        """The engine's job for a pipeline job's ``properties``, and what each pipeline output is bound to."""
        builder = Builder(self, name, props)
        try:
            job = builder.build()
        except Refusal as refusal:
            raise _Refused(refusal.where, refusal.code, [_problem(refusal.where, refusal.code,
                                                                  refusal.message)]) from None
        assert builder.root is not None
        outputs_map = {port: (node, out_port) for port, (node, out_port, _) in builder.root.output_map.items()}
        return job, outputs_map

    def _resolve_input(self, where: str, value: Any, scope: Any) -> tuple[str, Any]:
        """("literal", text) | ("data", Data) | ("absent", None): a node input followed in its pipeline."""
        try:
            return scope.resolve(where, value)  # type: ignore[no-any-return]
        except Refusal as refusal:
            raise _Refused(refusal.where, refusal.code, [_problem(refusal.where, refusal.code,
                                                                  refusal.message)]) from None

    def _binding(self, where: str, port: str, resolved: tuple[str, Any]) -> InputBinding:
        kind, value = resolved
        if kind != "data":
            raise _Refused(where, "InvalidValue", [_problem(where, "InvalidValue", f"expected data (a data asset, a "
                                                                                   f"URI or another job's output), "
                                                                                   f"got {value!r}")])
        return Builder(self, "", {}).binding(port, value, None)

    def empty_snapshot(self) -> str:
        """The snapshot of a component without code (a command such as ``echo``)."""
        if "code-empty" not in self.engine.snapshots:
            self.engine.add_snapshot("code-empty", {})
        return "code-empty"

    def _environment(self, where: str, reference: Any) -> tuple[EnvironmentSpec, str]:
        curated = environments.curated_environment(reference)   # the azureml registry's, by URI or AzureML-<name>
        if curated is not None:
            return curated, str(reference)
        found = ARM_ID.match(str(reference or ""))
        if found is None or found.group("kind").lower() != "environments":
            raise _Refused(f"{where}.componentId", "InvalidValue",
                           [_problem(f"{where}.componentId", "InvalidValue", f"the component's environment must be a "
                                                                             f"registered environment, got {reference!r}")])
        env = self.asset("environments", found.group("name"), found.group("version"))
        props = env["properties"]
        env_id = env["id"]
        name = f"{found.group('name')}:{found.group('version')}"
        if props.get("build"):
            return self._build_context(name, props["build"]), env_id
        return environments.from_conda(name, props.get("condaFile") or {}, image=props.get("image")), env_id

    def _build_context(self, name: str, build: Mapping[str, Any]) -> EnvironmentSpec:
        """What a Docker build context declares: the conda file its Dockerfile installs, wheels copied into it."""
        location = self.locate(str(build.get("contextUri")))
        if location is None:
            raise ServiceError(400, "UserError", f"environment {name}: the build context must be in the workspace's "
                                                 f"storage, got {build.get('contextUri')}")
        container, prefix = location
        prefix = prefix.rstrip("/")
        dockerfile_path = str(build.get("dockerfilePath") or "Dockerfile")
        try:
            dockerfile = self.engine.blob.get(container, f"{prefix}/{dockerfile_path}").decode()
        except Exception:
            raise ServiceError(400, "UserError", f"environment {name}: the build context has no "
                                                 f"{dockerfile_path}") from None
        copies, conda_file = read_dockerfile(name, dockerfile)

        def in_context(image_path: str) -> str | None:
            for target, source in copies.items():
                if image_path == target or image_path.startswith(target + "/"):
                    return (source + image_path[len(target):]).lstrip("./")
            return None

        conda_source = in_context(conda_file)
        if conda_source is None:
            raise ServiceError(400, "UserError", f"environment {name}: {conda_file} is not copied into the image")
        conda = self.engine.blob.get(container, f"{prefix}/{conda_source}").decode()
        wheels = {}
        for line in conda.splitlines():
            item = line.strip().lstrip("- ").strip()
            if item.endswith(".whl") and item.startswith("/"):
                source = in_context(item)
                if source is None or not self.engine.blob.exists(container, f"{prefix}/{source}"):
                    raise ServiceError(400, "UserError", f"environment {name}: wheel {item} is not in the build "
                                                         f"context")
                wheels[item] = self.blob_url(container, f"{prefix}/{source}")
        return environments.from_conda(name, conda, image=environments.dockerfile_image(dockerfile), wheels=wheels)

    def _snapshot(self, where: str, reference: Any) -> str:
        found = ARM_ID.match(str(reference or ""))
        if found is None or found.group("kind").lower() != "codes":
            raise _Refused(f"{where}.componentId", "InvalidValue",
                           [_problem(f"{where}.componentId", "InvalidValue", f"the component's code must be a "
                                                                             f"registered code version, got "
                                                                             f"{reference!r}")])
        code = self.asset("codes", found.group("name"), found.group("version"))
        snapshot_id = f"code-{found.group('name')}-{found.group('version')}"
        if snapshot_id not in self.engine.snapshots:
            location = self.locate(str(code["properties"].get("codeUri")))
            if location is None:
                raise ServiceError(400, "UserError", f"code {found.group('name')}: codeUri is not in the workspace's "
                                                     f"storage")
            container, prefix = location
            prefix = prefix.rstrip("/")
            # a folder's files; a single file's code (code: ./x.py) is the container's root, holding that file
            files = {name[len(prefix) + 1:] if prefix else name: (container, name)
                     for name in self.engine.blob.names(container, prefix) if not prefix or name.startswith(prefix + "/")}
            if not files and self.engine.blob.exists(container, prefix):
                files = {prefix.rsplit("/", 1)[-1]: (container, prefix)}
            self.engine.add_snapshot(snapshot_id, files)
        return snapshot_id

    def _automl_step(self, pipeline: str, node_name: str, node: Mapping[str, Any], pipeline_inputs: Any,
                     compute: str, force_rerun: bool) -> StepJob:
        where = f"properties.jobs.{node_name}"

        def resolve(value: Any, path: str) -> Any:
            if isinstance(value, dict):
                return {k: resolve(v, f"{path}.{k}") for k, v in value.items()}
            if isinstance(value, list):
                return [resolve(v, f"{path}[{i}]") for i, v in enumerate(value)]
            found = BINDING.match(value) if isinstance(value, str) else None
            if found is not None and found.group(1) == "inputs":
                kind, resolved = self._resolve_input(path, value, pipeline_inputs)
                return resolved if kind == "literal" else value
            return value

        settings_node = {k: resolve(v, f"{where}.{k}") for k, v in node.items()
                         if k not in ("training_data", "validation_data", "test_data", "outputs")}
        for required in ("task", "target_column_name", "training_data"):
            if not node.get(required):
                raise _Refused(f"{where}.{required}", "RequiredField",
                               [_problem(f"{where}.{required}", "RequiredField", "required property is missing")])
        task = task_of_node({**settings_node, **{p: node[p] for p in ("validation_data",) if node.get(p)}})
        problems = check_task(task, where)   # what the REST models and Azure AutoML's limits refuse
        if problems:
            raise _Refused(problems[0].target, problems[0].code, problems)
        bindings = {}
        training_uri = ""
        for port in ("training_data", "validation_data"):
            if node.get(port):
                resolved = self._resolve_input(f"{where}.{port}", node[port], pipeline_inputs)
                bindings[port] = self._binding(f"{where}.{port}", port, resolved)
                training_uri = training_uri or str(node[port])
        settings = settings_of_task(task)
        outputs = {}
        for port in (node.get("outputs") or {}):
            if port != "best_model":
                raise _Refused(f"{where}.outputs.{port}", "InvalidValue",
                               [_problem(f"{where}.outputs.{port}", "InvalidValue", "AutoML jobs have one output, "
                                                                                    "best_model")])
            outputs[port] = OutputSpec(port=port, datastore="workspaceblobstore",
                                       path="azureml/{run-id}/{output-name}", training_output="MLflowModel")
        fingerprint = hashlib.sha256(json.dumps(settings_node, sort_keys=True, default=str).encode()).hexdigest()
        step = StepJob(node_id=node_name, name=node.get("display_name") or node_name, kind="automl", compute=compute,
                       allow_reuse=not force_rerun, identity=fingerprint, inputs=bindings, outputs=outputs,
                       automl_settings=settings)
        step.v2 = {"type": "automl", "display_name": step.name, "task": str(node.get("task")),  # type: ignore[attr-defined]
                   "target_column_name": str(node.get("target_column_name")), "training_uri": training_uri,
                   "output_types": {port: "mlflow_model" for port in outputs}}
        return step

    def summarize(self, name: str, props: Mapping[str, Any], outputs: Mapping[str, Any], job: PipelineJob
                  ) -> dict[str, Any]:
        """A stable summary of a submission, for tests."""
        return {"name": name, "experiment": job.experiment, "parameters": dict(job.parameters),
                "steps": [{"node": s.node_id, "name": s.name, "kind": s.kind, "compute": s.compute,
                           "allow_reuse": s.allow_reuse, **_command_summary(s),
                           "environment": None if s.environment is None else {"name": s.environment.name,
                                                                               "python": s.environment.python,
                                                                               "pip": list(s.environment.pip)},
                           "inputs": {p: {"dataset": list(b.dataset) if b.dataset else None,
                                          "producer": list(b.producer) if b.producer else None}
                                      for p, b in s.inputs.items()},
                           "outputs": sorted(s.outputs), "automl": dict(s.automl_settings),
                           "identity": getattr(s, "v2", {}).get("identity")} for s in job.steps]}

    def step_job(self, record: RunRecord) -> dict[str, Any] | None:
        """What the job of a step run (or of a pipeline node's run) looks like, or None for runs that are no
        pipeline step."""
        state = self.engine.pipelines.get(record.root_id or "")
        if state is None or record.node_id is None:
            return None
        step: Any = next((s for s in state.job.steps if s.node_id == record.node_id), None)
        if step is None:
            step = state.job.groups.get(record.node_id)
        return getattr(step, "v2", None)

    def identity(self, record: RunRecord) -> str:
        """The identity a step run's job runs with (``UserIdentity`` gets the on-behalf-of token endpoint)."""
        node = self.step_job(record) or {}
        return str(node.get("identity") or "AMLToken")

    # -- run history (what jobs.list(parent_job_name=...), jobs.download and jobs.stream read) -----------
    def output_assets(self, record: RunRecord) -> dict[str, tuple[str, str, str]]:
        """output name -> (asset id, asset type, datastore URI) of a v2 run: a step's outputs, or the
        pipeline outputs bound to them."""
        found: dict[str, tuple[str, str, str]] = {}
        node = self.step_job(record)
        if node is not None:
            for port, (datastore, path) in record.outputs.items():
                kind = (node.get("output_types") or {}).get(port, "uri_folder")
                found[port] = self._asset_of(record.reused_from or record.id, port, kind, datastore, path)
        elif record.id in self.jobs:
            entry = self.jobs[record.id]
            for port, output in ((entry["body"]["properties"].get("outputs") or {}).items()):
                where = self._pipeline_output(record.id, port)
                if where is not None:
                    kind = str((output or {}).get("jobOutputType") or "uri_folder")
                    found[port] = self._asset_of(record.id, port, kind, *where)
        return found

    def _asset_of(self, run_id: str, port: str, kind: str, datastore: str, path: str) -> tuple[str, str, str]:
        model = kind in ("mlflow_model", "custom_model", "triton_model")
        asset = (f"azureml://locations/{self.location}/workspaces/{self.workspace_id}/"
                 f"{'models' if model else 'data'}/azureml_{run_id}_output_{'mlflow_log_model' if model else 'data'}_"
                 f"{port}/versions/1")
        # run history types data outputs by the DataType enum (uri_file, uri_folder, mltable: what azure-ai-ml's
        # jobs.download compares with) and models by their asset type
        rest_type = {"mlflow_model": "MLFlowModel", "custom_model": "CustomModel", "triton_model": "TritonModel",
                     "uri_file": "uri_file", "mltable": "mltable"}.get(kind, "uri_folder")
        uri = self.datastore_uri(path.rstrip("/") + "/", datastore)
        self.resolved[asset] = uri
        return asset, rest_type, uri

    def run_dto(self, record: RunRecord) -> dict[str, Any]:
        node = self.step_job(record) or {}
        experiment = self.engine.experiment(record.experiment)
        display = node.get("display_name") or (record.name if record.id not in self.jobs else
                                                self.jobs[record.id]["body"]["properties"].get("displayName"))
        error = None
        if record.error:
            error = {"error": {"code": record.error.get("code", "UserError"), "message": record.error.get("message"),
                               "details": []}}
        return {"runId": record.id, "runUuid": record.id, "parentRunId": record.parent_id,
                "rootRunId": record.root_id or record.id, "experimentId": experiment["id"],
                "createdUtc": now_iso(record.created), "createdBy": {"userName": "fake@example.com"},
                "status": record.status, "displayName": display, "name": record.name,
                "startTimeUtc": now_iso(record.started) if record.started else None,
                "endTimeUtc": now_iso(record.ended) if record.ended else None, "error": error,
                "properties": {**record.properties, **({"azureml.reusedrunid": record.reused_from}
                                                       if record.reused_from else {})},
                "tags": dict(record.tags), "compute": {"target": record.target} if record.target else None,
                "runType": record.run_type, "hidden": False,
                "outputs": {port: {"assetId": asset, "type": kind}
                            for port, (asset, kind, _) in self.output_assets(record).items()},
                "services": {}}

    def _history_rundata(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        record = self.engine.run(str((body or {}).get("runId")))
        return 200, {"runMetadata": self.run_dto(record), "runDefinition": None, "jobSpecification": None,
                     "systemSettings": None}

    def _resolve_data_uris(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        wanted = list((body or {}).get("values") or [])
        return 200, {"values": {asset: {"uri": self.resolved[asset], "type": "UriFolder"}
                                for asset in wanted if asset in self.resolved}}

    def _resolve_model_uris(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        wanted = list((body or {}).get("values") or [])
        return 200, {"values": {asset: {"path": self.resolved[asset], "type": "MLFlowModel"}
                                for asset in wanted if asset in self.resolved}}

    # -- MLflow tracking -----------------------------------------------------------------------------------
    def _mlflow_run(self, run_id: str) -> RunRecord:
        record = self.engine.runs.get(run_id)
        if record is None:
            raise _MlflowError(404, "RESOURCE_DOES_NOT_EXIST", f"Run '{run_id}' not found")
        return record

    def mlflow_run(self, record: RunRecord) -> dict[str, Any]:
        latest: dict[str, dict[str, Any]] = {}
        for entry in record.metrics:
            if isinstance(entry["value"], (int, float)) and not isinstance(entry["value"], bool):
                latest[entry["name"]] = {"key": entry["name"], "value": float(entry["value"]),
                                         "timestamp": int(entry["time"] * 1000), "step": entry.get("step") or 0}
        experiment = self.engine.experiment(record.experiment)
        tags = [{"key": k, "value": str(v)} for k, v in {**record.properties, **record.tags}.items()]
        if record.parent_id:
            tags.append({"key": "mlflow.parentRunId", "value": record.parent_id})
        tags.append({"key": "mlflow.runName", "value": record.name})
        return {"info": {"run_id": record.id, "run_uuid": record.id, "run_name": record.name,
                         "experiment_id": experiment["id"], "user_id": "fake@example.com",
                         "status": MLFLOW_STATUS.get(record.status, "RUNNING"),
                         "start_time": int((record.started or record.created) * 1000),
                         "end_time": int(record.ended * 1000) if record.ended else None,
                         "artifact_uri": f"azureml://{self.host()}/mlflow/v1.0{self.ws_id}/experiments/"
                                         f"{experiment['id']}/runs/{record.id}/artifacts",
                         "lifecycle_stage": "active"},
                "data": {"metrics": list(latest.values()), "params": [], "tags": tags}}

    def _mlflow(self, function: Callable[[], Any]) -> tuple[int, Any]:
        try:
            return 200, function()
        except _MlflowError as exc:
            return exc.status, {"error_code": exc.code, "message": exc.message}

    # -- MLflow's model registry (mlflow.register_model in a step): the workspace's models -------------------
    def _mlflow_registered_model(self, name: str) -> dict[str, Any]:
        versions = self.assets["models"].get(name)
        if versions is None:
            raise _MlflowError(404, "RESOURCE_DOES_NOT_EXIST", f"Registered Model with name={name} not found")
        created = min((v["systemData"]["createdAt"] for v in versions.values()), default=None)
        stamp = int(time.time() * 1000) if created is None else _millis(created)
        latest = [self._mlflow_model_version(name, max(versions, key=int))] if versions else []
        return {"name": name, "creation_timestamp": stamp, "last_updated_timestamp": stamp, "latest_versions": latest}

    def _mlflow_model_version(self, name: str, version: str) -> dict[str, Any]:
        resource = (self.assets["models"].get(name) or {}).get(version)
        if resource is None:
            raise _MlflowError(404, "RESOURCE_DOES_NOT_EXIST", f"Model Version (name={name}, version={version}) "
                                                               f"not found")
        props = resource["properties"]
        stamp = _millis(resource["systemData"]["createdAt"])
        return {"name": name, "version": version, "creation_timestamp": stamp, "last_updated_timestamp": stamp,
                "source": props.get("modelUri"), "run_id": props.get("jobName") or "", "status": "READY",
                "current_stage": "None", "description": props.get("description") or "",
                "tags": [{"key": k, "value": str(v)} for k, v in (props.get("tags") or {}).items()]}

    def _mlflow_logged_models_search(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        """MLflow 3's logged models (``/api/2.0/mlflow/logged-models``): Azure ML's tracking server does not implement
        them and answers 404 (Azure/azureml-examples#3885: ``mlflow.sklearn.log_model`` fails so under the curated
        sklearn-1.5 image's newer MLflow); so does the fake."""
        raise ServiceError(404, "NotFound", "The MLflow logged-models API (/api/2.0/mlflow/logged-models) is not "
                                            "supported by the Azure ML tracking server")

    def _mlflow_registered_model_create(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        name = str((body or {}).get("name") or "")

        def run() -> Any:
            if not name:
                raise _MlflowError(400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'name'.")
            with self.engine.lock:
                if name in self.assets["models"]:
                    raise _MlflowError(400, "RESOURCE_ALREADY_EXISTS", f"Registered Model (name={name}) already "
                                                                       f"exists.")
                self.assets["models"][name] = {}
            return {"registered_model": self._mlflow_registered_model(name)}
        return self._mlflow(run)

    def _mlflow_registered_model_get(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        name = (q.get("name") or [""])[0]
        return self._mlflow(lambda: {"registered_model": self._mlflow_registered_model(name)})

    def _mlflow_model_version_get(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        name, version = (q.get("name") or [""])[0], (q.get("version") or [""])[0]
        return self._mlflow(lambda: {"model_version": self._mlflow_model_version(name, version)})

    def _mlflow_model_version_create(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        """A version from a run's artifacts (``runs:/<id>/<path>`` as the client resolved it: the run's artifact
        URI and the path): an mlflow_model asset of the workspace, refused when no MLmodel is there."""
        body = body or {}
        name, source, run_id = str(body.get("name") or ""), str(body.get("source") or ""), body.get("run_id")

        def run() -> Any:
            found = re.search(r"/runs/(?P<run>[^/]+)/artifacts/?(?P<path>.*)$", source)
            if not name or found is None or found.group("run") not in self.engine.runs:
                raise _MlflowError(400, "INVALID_PARAMETER_VALUE", f"Unable to create a model version of {name!r} "
                                                                   f"from source {source!r}: not a run's artifacts")
            record = self.engine.run(found.group("run"))
            prefix = found.group("path").strip("/")
            files = {n: where for n, where in record.files.items() if not prefix or n.startswith(prefix + "/")}
            if not any(n.rsplit("/", 1)[-1] == "MLmodel" for n in files):
                raise _MlflowError(400, "INVALID_PARAMETER_VALUE", f"Unable to create a model version of {name!r}: "
                                                                   f"no MLmodel file in run {record.id}'s artifacts "
                                                                   f"under {prefix or '/'}")
            uri = (f"azureml://datastores/workspaceartifactstore/paths/ExperimentRun/dcid.{record.id}/"
                   f"{prefix + '/' if prefix else ''}")
            with self.engine.lock:
                versions = self.assets["models"].setdefault(name, {})
                version = str(max((int(v) for v in versions if v.isdigit()), default=0) + 1)
                props = {"modelUri": uri, "modelType": "mlflow_model", "jobName": run_id or record.id,
                         "description": body.get("description") or "",
                         "tags": {t["key"]: t["value"] for t in body.get("tags") or []},
                         "properties": {"azureml.sourceRunId": run_id or record.id}}
                self._store_asset("models", name, version, props)
                version = max(self.assets["models"][name], key=int)
            return {"model_version": self._mlflow_model_version(name, version)}
        return self._mlflow(run)

    def _mlflow_experiment_by_name(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        name = (q.get("experiment_name") or [""])[0]

        def run() -> Any:
            if name not in self.engine.experiments:
                raise _MlflowError(404, "RESOURCE_DOES_NOT_EXIST", f"Could not find experiment with name '{name}'")
            return {"experiment": self._mlflow_experiment(self.engine.experiments[name])}
        return self._mlflow(run)

    def _mlflow_experiment_get(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        wanted = (q.get("experiment_id") or [""])[0]

        def run() -> Any:
            found = self.engine.experiment_by_id(wanted)
            if found is None:
                raise _MlflowError(404, "RESOURCE_DOES_NOT_EXIST", f"No Experiment with id={wanted} exists")
            return {"experiment": self._mlflow_experiment(found)}
        return self._mlflow(run)

    @staticmethod
    def _mlflow_experiment(entry: Mapping[str, Any]) -> dict[str, Any]:
        return {"experiment_id": entry["id"], "name": entry["name"], "lifecycle_stage": "active",
                "creation_time": int(entry["created"] * 1000), "tags": []}

    def _mlflow_run_get(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        run_id = (q.get("run_id") or q.get("run_uuid") or [""])[0]
        return self._mlflow(lambda: {"run": self.mlflow_run(self._mlflow_run(run_id))})

    def _mlflow_runs_search(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        body = body or {}
        wanted_experiments = set(body.get("experiment_ids") or [])
        parent = None
        found = re.search(r"tags\.[`\"']?mlflow\.parentRunId[`\"']?\s*=\s*['\"]([^'\"]+)['\"]",
                          str(body.get("filter") or ""))
        if found:
            parent = found.group(1)
        records = [r for r in self.engine.runs.values()
                   if (not wanted_experiments or self.engine.experiment(r.experiment)["id"] in wanted_experiments)
                   and (parent is None or r.parent_id == parent)]
        records.sort(key=lambda r: r.number)
        return 200, {"runs": [self.mlflow_run(r) for r in records]}

    def _mlflow_run_create(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        body = body or {}

        def run() -> Any:
            experiment = self.engine.experiment_by_id(str(body.get("experiment_id")))
            if experiment is None:
                raise _MlflowError(404, "RESOURCE_DOES_NOT_EXIST", f"No Experiment with id="
                                                                   f"{body.get('experiment_id')} exists")
            tags = {t["key"]: t["value"] for t in body.get("tags") or []}
            record = self.engine.create_run(experiment["name"], "mlflow", body.get("run_name") or
                                            tags.get("mlflow.runName") or "run",
                                            parent_id=tags.get("mlflow.parentRunId"), status="Running")
            record.tags.update({k: v for k, v in tags.items() if not k.startswith("mlflow.")})
            return {"run": self.mlflow_run(record)}
        return self._mlflow(run)

    def _mlflow_run_update(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        body = body or {}

        def run() -> Any:
            record = self._mlflow_run(str(body.get("run_id") or body.get("run_uuid")))
            status = {"FINISHED": "Completed", "FAILED": "Failed", "KILLED": "Canceled",
                      "RUNNING": "Running"}.get(str(body.get("status")))
            if status and record.run_type == "mlflow":
                self.engine.set_status(record, status)
            return {"run_info": self.mlflow_run(record)["info"]}
        return self._mlflow(run)

    def _log(self, run_id: str, name: str, value: Any, step: Any) -> None:
        self._mlflow_run(run_id)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise _MlflowError(400, "INVALID_PARAMETER_VALUE", f"Got invalid value {value!r} for metric "
                                                               f"'{name}'") from None
        self.engine.log_metric(run_id, name, number, step=int(step or 0))

    def _mlflow_log_metric(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        body = body or {}

        def run() -> Any:
            self._log(str(body.get("run_id") or body.get("run_uuid")), str(body.get("key")), body.get("value"),
                      body.get("step"))
            return {}
        return self._mlflow(run)

    def _mlflow_log_batch(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        body = body or {}

        def run() -> Any:
            run_id = str(body.get("run_id"))
            record = self._mlflow_run(run_id)
            for metric in body.get("metrics") or []:
                self._log(run_id, str(metric.get("key")), metric.get("value"), metric.get("step"))
            for item in list(body.get("tags") or []) + list(body.get("params") or []):
                record.tags[str(item.get("key"))] = str(item.get("value"))
            return {}
        return self._mlflow(run)

    def _mlflow_set_tag(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        body = body or {}

        def run() -> Any:
            self._mlflow_run(str(body.get("run_id") or body.get("run_uuid"))).tags[str(body.get("key"))] = \
                str(body.get("value"))
            return {}
        return self._mlflow(run)

    _mlflow_set_param = _mlflow_set_tag

    def _mlflow_metric_history(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        run_id = (q.get("run_id") or q.get("run_uuid") or [""])[0]
        key = (q.get("metric_key") or [""])[0]

        def run() -> Any:
            record = self._mlflow_run(run_id)
            return {"metrics": [{"key": key, "value": float(e["value"]), "timestamp": int(e["time"] * 1000),
                                 "step": e.get("step") or 0} for e in record.metrics if e["name"] == key]}
        return self._mlflow(run)


class _Refused(ServiceError):
    """A request body the service's schema refuses: 400 with the first problem as the message."""

    def __init__(self, target: str, code: str, problems: list[Any]) -> None:
        message = "; ".join(p.message for p in problems[:5])
        super().__init__(400, "UserError", f"The request is invalid: {message}")
        self.target = target
        self.problems = problems


class _MlflowError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _problem(target: str, code: str, message: str) -> Any:
    return Problem(target, code, f"{target}: {message}")


def _command_summary(step: StepJob) -> dict[str, Any]:
    """command (with ``<input:X>``/``<output:Y>`` where paths go), and script and arguments when it is
    ``python SCRIPT.py ARGS``."""
    if step.shell is None:
        return {"command": None, "script": step.script, "arguments": [[t.kind, t.value] for t in step.argv]}
    marks = {"input_path": "<input:{}>", "output_path": "<output:{}>"}
    text = "".join(t.value if t.kind == "literal" else marks[t.kind].format(t.value) for t in step.shell)
    try:
        words = shlex.split(text)
    except ValueError:
        words = []
    if len(words) >= 2 and words[0] in ("python", "python3") and words[1].endswith(".py"):
        found = [re.fullmatch(r"<(input|output):(.+)>", w) for w in words[2:]]
        arguments = [[f"{m.group(1)}_path", m.group(2)] if m else ["literal", w] for m, w in zip(found, words[2:])]
        return {"command": text, "script": words[1], "arguments": arguments}
    return {"command": text, "script": None, "arguments": []}


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)


def read_dockerfile(name: str, dockerfile: str) -> tuple[dict[str, str], str]:
    """What a build context's Dockerfile does, as far as the fake builds it: its COPY lines (image path ->
    context path) and the conda file it installs; refused as a build would fail or run the wrong Python."""
    copies: dict[str, str] = {}   # image path -> context path
    conda_file, prefix_env, path = None, None, ""
    for line in dockerfile.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        instruction = words[0].upper()
        if instruction == "COPY" and len(words) == 3:
            copies[words[2].rstrip("/")] = words[1].rstrip("/")
        elif instruction == "RUN" and "conda env update" in line and "--file" in words:
            conda_file = words[words.index("--file") + 1]
        elif instruction == "RUN" and "conda env create" in line and "-p" in words and {"-f", "--file"} & set(words):
            conda_file = words[words.index("-f" if "-f" in words else "--file") + 1]
            prefix_env = words[words.index("-p") + 1].rstrip("/")
        elif instruction == "ENV" and len(words) >= 2 and words[1].startswith("PATH="):
            path = words[1][len("PATH="):]
        elif instruction not in ("FROM", "COPY", "RUN", "ENV", "WORKDIR"):
            raise ServiceError(400, "UserError", f"environment {name}: the fake builds Dockerfiles of FROM, COPY, "
                                                 f"ENV and RUN conda env create/update lines; got {instruction}")
    if conda_file is None:
        raise ServiceError(400, "UserError", f"environment {name}: the Dockerfile installs no conda file "
                                             f"(RUN conda env create -p PREFIX -f FILE, or conda env update --file)")
    if prefix_env is not None and path.split(":")[0] != f"{prefix_env}/bin":
        raise ServiceError(400, "UserError", f"environment {name}: the conda environment created in {prefix_env} is "
                                             f"not first on PATH (ENV PATH={prefix_env}/bin:$PATH), so the job's "
                                             f"python would be the base image's, without the environment's packages")
    return copies, conda_file


def _millis(iso: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 time as ``system_data`` writes it."""
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
