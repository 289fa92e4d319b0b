"""What the fake's two APIs share: routing, tokens, api-versions, long-running operations, computes, run history.

SDK v1's private REST shapes (:mod:`.v1`) and SDK v2's public ARM REST API (:mod:`.v2`) front the
same engine and make the same service-side checks; each subclass of :class:`Api` keeps only its
shapes: its routes (URL patterns), how it writes an error, a compute and a run.

A request goes through :meth:`Api.dispatch`: its route is looked up; the service checks, as Azure
does, that it carries a bearer token this service instance issued and that has not expired (every
route but the open ones: discovery, cloud metadata; see :mod:`.tokens`), that an ARM request carries
a well-formed ``api-version``, and that the workspace in the URL exists; then the route answers. A
:class:`~.engine.ServiceError` a route raises becomes the API's error shape.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Callable, Mapping
from urllib.parse import quote

from .blobstore import BLOB_HOST_SUFFIX
from .engine import ComputeTarget, Engine, RunRecord, ServiceError, new_id
from .tokens import Tokens

PROVIDER = "Microsoft.MachineLearningServices"
# a workspace in a URL (every workspace route of both APIs holds it)
WS_PATH = (r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
           r"Microsoft.MachineLearningServices/workspaces/(?P<ws>[^/]+)")
API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")

# The service's rules for compute names. AmlCompute clusters (Microsoft's "Create an Azure Machine Learning
# compute cluster", MicrosoftDocs/azure-docs articles/machine-learning/how-to-create-attach-compute-cluster.md,
# "Compute name"): 3 to 24 characters; letters, digits and '-'; starting with a letter; a '-' must be followed
# by at least one letter later in the name (so Microsoft's own `forecast-step-cluster-v2` and
# `gpu-v100-1GPU-cluster` are valid, `cpu-cluster-1` is not). Compute instances: the message the service answers
# for an invalid name (3 to 24 characters, numbers, letters and '-', starting with a letter, not ending in
# '-<digits>'). The 2-to-16 rule azureml-core states in azureml/core/compute/synapse.py is the Synapse attach's.
COMPUTE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{2,23}$")
COMPUTE_NAME_MESSAGE = ("Compute name {name!r} is invalid. It must be between 3 and 24 characters long, contain only "
                        "letters, digits and the '-' character, start with a letter, and every '-' must be followed "
                        "by at least one letter later in the name.")
# what the service answers (checkComputeNameAvailability's message, and the refusal) for an invalid instance name
INSTANCE_NAME_MESSAGE = ("A name for an Azure ML Compute Instance must be between 3 and 24 characters in length and "
                         "must use only numbers, letters and minus symbol (-)\uff0cmust start with letters. Numbers "
                         "cannot be the ending of the name if the previous character is a minus symbol (-). Please "
                         "specify a different Azure ML Instance name")


def compute_name_problem(name: str, kind: str = "AmlCompute") -> str | None:
    """The service's message for an invalid compute name of ``kind``, or None when the name is valid."""
    if kind == "ComputeInstance":
        valid = COMPUTE_NAME.match(name) is not None and re.search(r"-\d+$", name) is None
        return None if valid else INSTANCE_NAME_MESSAGE
    valid = COMPUTE_NAME.match(name) is not None and ("-" not in name or re.search(r"-[^A-Za-z]*$", name) is None)
    return None if valid else COMPUTE_NAME_MESSAGE.format(name=name)


# VM sizes the fake's region offers for AmlCompute (a subset of Azure's; case-insensitive, as Azure).
VM_SIZES = ("STANDARD_D1_V2", "STANDARD_D2_V2", "STANDARD_D3_V2", "STANDARD_D4_V2", "STANDARD_D5_V2",
            "STANDARD_D11_V2", "STANDARD_D12_V2", "STANDARD_D13_V2", "STANDARD_D14_V2", "STANDARD_DS2_V2",
            "STANDARD_DS3_V2", "STANDARD_DS4_V2", "STANDARD_DS5_V2", "STANDARD_DS11_V2", "STANDARD_DS12_V2",
            "STANDARD_D2_V3", "STANDARD_D4_V3", "STANDARD_D8_V3", "STANDARD_D2S_V3", "STANDARD_D4S_V3",
            "STANDARD_D8S_V3", "STANDARD_D16S_V3", "STANDARD_E2S_V3", "STANDARD_E4S_V3", "STANDARD_E8S_V3",
            "STANDARD_F2S_V2", "STANDARD_F4S_V2", "STANDARD_F8S_V2", "STANDARD_NC6", "STANDARD_NC12",
            "STANDARD_NC24", "STANDARD_NC6S_V3", "STANDARD_NC4AS_T4_V3", "STANDARD_ND40RS_V2")
# the service endpoints discovery names (all of them the fake itself)
DISCOVERY_KEYS = ("api", "catalog", "experimentation", "gallery", "history", "hyperdrive", "labeling",
                  "modelmanagement", "pipelines", "studiocoreservices", "cert", "studio")
# a SAS query as the service hands them out (``sig``: the instance's, see :mod:`.tokens`)
SAS = "sv=2021-08-06&sr=b&sp={permissions}&se=2099-01-01T00%3A00%3A00Z&sig={sig}"

Route = Callable[[re.Match[str], Any, Mapping[str, list[str]]], tuple[Any, ...]]


def client_of(request: Any) -> str:
    """The user agent of the request being answered ('' outside a request)."""
    return str((getattr(request, "headers", None) or {}).get("user-agent") or "")


def instance_properties(target: ComputeTarget) -> dict[str, Any]:
    """A compute instance's ``properties.properties`` as the service reports a running one."""
    return {"vmSize": target.vm_size, "state": "Running" if target.state == "Succeeded" else "CreateFailed",
            "applicationSharingPolicy": "Personal", "computeInstanceAuthorizationType": "personal",
            "sshSettings": {"sshPublicAccess": "Disabled", "adminUserName": "azureuser", "sshPort": 50000},
            "connectivityEndpoints": {"publicIpAddress": "127.0.0.1", "privateIpAddress": "127.0.0.1"},
            "applications": [], "errors": target.errors or [], "lastOperation": None, "osImageMetadata": None,
            "subnet": None, "status": None, "createdBy": {"userName": "fake@example.com"},
            "personalComputeInstanceSettings": None, "setupScripts": None, "schedules": None}


# -- the base of both APIs ---------------------------------------------------------------------------
class Api:
    """Routes answered from ``engine``, with the checks the service makes on every request.

    Subclasses add their routes in :meth:`_add_routes` and give their shapes: :meth:`error`,
    :meth:`compute_payload`, :meth:`run_dto`.
    """

    #: route names answered without a token
    OPEN_ROUTES: frozenset[str] = frozenset({"_discovery"})
    #: paths that are ARM requests (they need an api-version)
    ARM_PREFIXES: tuple[str, ...] = ("/subscriptions/",)
    #: check tokens and api-versions of requests no route answers (401 before 404)
    CHECK_UNROUTED = True
    AUTH_ERROR_MESSAGE = "The access token is invalid or expired (fake service)"
    #: what :attr:`created_computes` records of a compute request
    COMPUTE_RECORD: tuple[str, ...] = ("name", "vm_size", "min_nodes", "max_nodes")
    #: the query of a long-running operation's status URL
    OPERATION_QUERY = ""

    def __init__(self, engine: Engine, *, base_url: Callable[[], str], workspace_name: Callable[[], str],
                 subscription: str, resource_group: str, workspace_id: str, tenant: str, location: str,
                 account: str, container: str, compute_error: str | None = None, auth_error: bool = False,
                 tokens: Tokens | None = None) -> None:
        self.engine = engine
        self.tokens = tokens if tokens is not None else Tokens(tenant)
        self.base_url = base_url
        self.workspace_name = workspace_name
        self.subscription, self.resource_group = subscription, resource_group
        self.workspace_id, self.tenant, self.location = workspace_id, tenant, location
        self.account, self.container = account, container
        self.compute_error = compute_error
        self.auth_error = auth_error
        self.routes: list[tuple[str, re.Pattern[str], Route]] = []
        self.operations: dict[str, dict[str, Any]] = {}
        self.created_computes: list[dict[str, Any]] = []
        self.request = threading.local()     # the request being answered, per server thread
        self._add_routes()

    # -- shapes (each API its own) -----------------------------------------------------------------------
    def _add_routes(self) -> None:
        raise NotImplementedError

    def error(self, status: int, code: str, message: str) -> tuple[int, Any]:
        """An error in this API's shape."""
        raise NotImplementedError

    def render(self, exc: ServiceError) -> tuple[int, Any]:
        """A refusal a route raised, in this API's shape."""
        return self.error(exc.status, exc.code, exc.message)

    def unrouted(self, method: str, path: str) -> tuple[int, Any]:
        """The answer to a request no route matches."""
        return self.error(404, "NotFound", f"fake Azure ML: unhandled {method} {path}")

    def compute_payload(self, target: ComputeTarget, state: str | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def run_dto(self, record: RunRecord) -> dict[str, Any]:
        raise NotImplementedError

    # -- routing -------------------------------------------------------------------------------------------
    def _route(self, method: str, pattern: str, function: Route) -> None:
        self.routes.append((method, re.compile(pattern), function))

    def _match(self, method: str, path: str) -> tuple[Route, re.Match[str]] | None:
        for route_method, pattern, function in self.routes:
            if route_method == method:
                match = pattern.match(path)
                if match:
                    return function, match
        return None

    def dispatch(self, method: str, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str],
                 body: Any) -> tuple[int, Any, dict[str, str], str | None]:
        """(status, body, headers, handler name) for one request; handler None when no route matched."""
        found = self._match(method, path)
        refused = self._refused(path, found, query, headers)
        if refused is not None:
            check, (status, response) = refused
            return status, response, {}, check
        if found is None:
            status, response = self.unrouted(method, path)
            return status, response, {}, None
        function, match = found
        self.request.headers = headers   # for the few routes whose answer depends on the client
        try:
            result = function(match, body, query)
        except ServiceError as exc:
            result = self.render(exc)
        extra = result[2] if len(result) > 2 else {}
        return result[0], result[1], extra, getattr(function, "__name__", "route")

    def _refused(self, path: str, found: tuple[Route, re.Match[str]] | None, query: Mapping[str, list[str]],
                 headers: Mapping[str, str]) -> tuple[str, tuple[int, Any]] | None:
        """(the check, the answer) when the service refuses the request before any route sees it."""
        if found is None and not self.CHECK_UNROUTED:
            return None
        if found is None or getattr(found[0], "__name__", "") not in self.OPEN_ROUTES:
            if self.auth_error:
                return "auth_error", self.error(401, "AuthenticationFailed", self.AUTH_ERROR_MESSAGE)
            problem = self.tokens.problem(headers.get("authorization"))
            if problem is not None:
                return "token_check", self.error(401, *problem)
        if path.startswith(self.ARM_PREFIXES):
            versions = query.get("api-version") or []
            version = versions[0] if versions else None
            if version is None:
                return "api_version_check", self.error(400, "MissingApiVersionParameter",
                                                       "The api-version query parameter (?api-version=) is required "
                                                       "for all requests.")
            if not API_VERSION.match(version):
                return "api_version_check", self.error(400, "InvalidApiVersionParameter",
                                                       f"The api-version '{version}' is invalid. The supported "
                                                       f"versions are 'YYYY-MM-DD' dates, optionally with "
                                                       f"'-preview'.")
        groups = found[1].groupdict() if found is not None else {}
        if "ws" in groups and (groups["sub"], groups["rg"].lower(), groups["ws"]) != \
                (self.subscription, self.resource_group.lower(), self.workspace_name()):
            return "workspace_check", self.error(404, "ResourceNotFound",
                                                 f"The Resource '{PROVIDER}/workspaces/{groups['ws']}' under "
                                                 f"resource group '{groups['rg']}' was not found.")
        return None

    # -- ids and storage ------------------------------------------------------------------------------------
    @property
    def ws_id(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/{PROVIDER}/"
                f"workspaces/{self.workspace_name()}")

    def blob_url(self, container: str, blob: str = "") -> str:
        return f"https://{self.account}{BLOB_HOST_SUFFIX}/{container}" + (f"/{quote(blob)}" if blob else "")

    def sas_url(self, container: str, blob: str, permissions: str = "rcw") -> str:
        return f"{self.blob_url(container, blob)}?{SAS.format(permissions=permissions, sig=self.tokens.sas_signature)}"

    def _discovery(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        return 200, {key: self.base_url() for key in DISCOVERY_KEYS}

    # -- long-running operations ----------------------------------------------------------------------------
    def start_operation(self, error: Mapping[str, Any] | None = None) -> str:
        """A finished long-running operation (failed with ``error``, else succeeded); the URL to poll it."""
        operation = new_id()
        self.operations[operation] = {"id": operation, "name": operation,
                                      "status": "Failed" if error else "Succeeded",
                                      **({"error": dict(error)} if error else {})}
        return f"{self.base_url()}/operations/{operation}{self.OPERATION_QUERY}"

    def _operation(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        found = self.operations.get(m.group("id"))
        if found is None:
            raise ServiceError(404, "NotFound", "operation not found")
        return 200, found

    # -- computes -------------------------------------------------------------------------------------------
    def check_body(self, kind: str, body: Any) -> None:
        """Refuse a request body the service's schema refuses (SDK v2 checks every PUT; SDK v1 nothing)."""

    def _compute_list(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        return 200, {"value": [self.compute_payload(t) for t in self.engine.computes.values()]}

    def _compute_get(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        target = self.engine.computes.get(m.group("name"))
        if target is None:
            raise ServiceError(404, "ResourceNotFound", f"Compute {m.group('name')!r} was not found in workspace "
                                                        f"{self.workspace_name()!r}.")
        return 200, self.compute_payload(target)

    def _compute_put(self, m: Any, body: Any, q: Any) -> tuple[int, Any, dict[str, str]]:
        """Create an AmlCompute cluster or a compute instance (ARM's PUT of a ComputeResource), checked as the
        service checks it."""
        name = m.group("name")
        self.check_body("computes", body)
        kind = str(((body or {}).get("properties") or {}).get("computeType") or "AmlCompute")
        if kind not in ("AmlCompute", "ComputeInstance"):
            raise ServiceError(400, "BadArgument", f"The fake service creates AmlCompute clusters and compute "
                                                   f"instances; got computeType {kind!r}")
        props = ((body or {}).get("properties") or {}).get("properties") or {}
        scale = props.get("scaleSettings") or {}
        vm_size = str(props.get("vmSize") or "STANDARD_D2_V2")
        asked = {"name": name, "vm_size": props.get("vmSize"), "min_nodes": scale.get("minNodeCount"),
                 "max_nodes": scale.get("maxNodeCount"),
                 "idle_seconds_before_scaledown": scale.get("nodeIdleTimeBeforeScaleDown"),
                 "vm_priority": props.get("vmPriority")}
        self.created_computes.append({key: asked[key] for key in self.COMPUTE_RECORD})
        problem = compute_name_problem(name, kind)
        if problem is not None:
            raise ServiceError(400, "BadArgument", problem)
        if vm_size.upper() not in VM_SIZES:
            raise ServiceError(400, "BadArgument", f"The specified VM size {vm_size!r} is not supported for "
                                                   f"AmlCompute in region '{self.location}'. Supported sizes include "
                                                   f"STANDARD_D2_V2, STANDARD_D3_V2, STANDARD_DS3_V2 and "
                                                   f"STANDARD_NC6.")
        min_nodes, max_nodes = int(scale.get("minNodeCount") or 0), int(scale.get("maxNodeCount") or 1)
        if min_nodes > max_nodes:
            raise ServiceError(400, "BadArgument", f"minNodeCount ({min_nodes}) cannot be greater than "
                                                   f"maxNodeCount ({max_nodes})")
        idle = str(scale.get("nodeIdleTimeBeforeScaleDown") or "PT120S")
        target = ComputeTarget(name=name, vm_size=vm_size, min_nodes=min_nodes, max_nodes=max_nodes,
                               idle_seconds=int(re.sub(r"\D", "", idle) or 120),
                               priority=str(props.get("vmPriority") or "Dedicated"), kind=kind)
        error = None
        if self.compute_error:
            error = {"code": "QuotaExceeded", "message": self.compute_error}
            target.state = "Failed"
            target.errors = [{"error": dict(error)}]
        self.engine.computes[name] = target
        return 201, self.compute_payload(target, "Creating"), {"Azure-AsyncOperation": self.start_operation(error)}

    def _compute_name_check(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        """``checkComputeNameAvailability``: what azureml-core asks before creating a compute instance."""
        name = str((body or {}).get("Name") or (body or {}).get("name") or "")
        kind = "ComputeInstance" if "DataScienceInstance" in str((body or {}).get("Type") or (body or {})
                                                                  .get("type") or "") else "AmlCompute"
        problem = compute_name_problem(name, kind)
        if problem is not None:
            return 200, {"nameAvailable": False, "reason": "Invalid", "message": problem}
        if name in self.engine.computes:
            return 200, {"nameAvailable": False, "reason": "AlreadyExists",
                         "message": f"Compute with name {name} already exists."}
        return 200, {"nameAvailable": True, "reason": None, "message": None}

    # -- run history ------------------------------------------------------------------------------------------
    def _history_record(self, m: Any) -> RunRecord:
        return self.engine.run(m.group("id"))

    def _history_run(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        return 200, self.run_dto(self._history_record(m))

    def _history_children(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        self._history_record(m)
        return 200, {"value": [self.run_dto(r) for r in self.engine.children(m.group("id"))],
                     "continuationToken": None, "nextLink": None}

    def _history_details(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        record = self._history_record(m)
        dto = self.run_dto(record)
        logs = {name: self.sas_url(*where, permissions="r") for name, where in record.files.items()
                if name.startswith(("azureml-logs/", "user_logs/", "logs/"))}
        return 200, {**{k: dto[k] for k in ("runId", "status", "startTimeUtc", "endTimeUtc", "error", "properties",
                                             "tags", "parentRunId")},
                     "target": record.target, "logFiles": logs, "warnings": [], "inputDatasets": [],
                     "outputDatasets": [], "runDefinition": None, "services": {}}
