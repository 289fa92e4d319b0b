"""A fake of the Azure Machine Learning service (SDK v1 REST subset) on 127.0.0.1, for offline tests.

The real ``azureml`` SDK talks to it: it builds, validates and submits pipelines, waits for them
(finished or failed), creates compute clusters and registers datasets, and the fake records what
was submitted. Stdlib only on the server side; ``azureml`` is imported only by :meth:`workspace`.

    with FakeAzureML() as fake:
        ws = fake.workspace()              # a real azureml.core.Workspace talking to the fake
        ...Experiment(ws, "x").submit(pipeline)...
        fake.submissions[0]["steps"]       # what the SDK posted, as a stable summary

These are private REST shapes, written against azureml-core 1.61 / azureml-pipeline 1.62: re-check
them when upgrading the SDK. ``framework.testing.azure`` wraps this in a pytest fixture.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import parse_qs, urlparse

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
RESOURCE_GROUP = "amlstep-fake-rg"
WORKSPACE = "amlstep-fake-ws"
WORKSPACE_ID = "11111111-1111-1111-1111-111111111111"
TENANT = "22222222-2222-2222-2222-222222222222"
LOCATION = "westeurope"
CONTAINER = "azureml-blobstore-fake"
ACCOUNT = "amlstepfakestorage"

# The environment the SDK needs to talk to the fake (and to nothing else).
SDK_ENVIRONMENT = {
    "HBI_WORKSPACE_JOB": "true",          # stops Application Insights telemetry
    "AZUREML_CURRENT_CLOUD": "AzureCloud",  # the built-in cloud list: no call to the ARM metadata URL
    "AZUREML_AUTOML_SCENARIO": "AutoML",  # otherwise AutoML asks extra endpoints about pip mirrors
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}

WS_PATH = (r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
           r"Microsoft.MachineLearningServices/workspaces/(?P<ws>[^/]+)")
AUTOML_KEYS = ("task_type", "primary_metric", "iterations", "experiment_timeout_minutes",
               "iteration_timeout_minutes", "featurization", "label_column_name", "compute_target",
               "n_cross_validations", "enable_early_stopping", "max_concurrent_iterations")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _new_id() -> str:
    return str(uuid.uuid4())


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    # the SDK's own error formatting crashes without "details"
    return status, {"error": {"code": code, "message": message, "details": []}}


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


FAKE_TOKEN = ".".join([_b64({"alg": "none", "typ": "JWT"}),
                       _b64({"exp": 4102444800, "tid": TENANT, "oid": "33333333-3333-3333-3333-333333333333",
                             "upn": "fake@example.com", "appid": "amlstep-fake"}), "c2ln"])


class FakeAzureML:
    """The fake service. Start it (or use it as a context manager), point a Workspace at it.

    Args:
        computes: compute clusters that exist at start (``cpu-cluster`` by default).
        datasets: datasets registered at start (name -> list of sources).
        run_seconds: how long a submitted pipeline stays Running.
        outcome: "Finished" or "Failed" for every submitted pipeline run.
        failed_step: with outcome "Failed", the step (node name) that fails; default the first.
        failure_message: the service's error message for the failed step.
        auth_error: answer every workspace call with 401 (an expired or wrong login).
        compute_error: make compute creation fail with this message.
    """

    def __init__(self, *, computes: tuple[str, ...] = ("cpu-cluster",),
                 datasets: Mapping[str, list[str]] | None = None, run_seconds: float = 0.0,
                 outcome: str = "Finished", failed_step: str | None = None,
                 failure_message: str = "UserError: the step script exited with code 1",
                 auth_error: bool = False, compute_error: str | None = None) -> None:
        self.run_seconds = run_seconds
        self.outcome = outcome
        self.failed_step = failed_step
        self.failure_message = failure_message
        self.auth_error = auth_error
        self.compute_error = compute_error
        self.computes: dict[str, dict[str, Any]] = {}
        for name in computes:
            self.computes[name] = self._compute_payload(name, "STANDARD_D2_V2", 0, 1)
        self.datasets: dict[str, list[dict[str, Any]]] = {}
        for name, sources in (datasets or {}).items():
            self._register_dataset(name, {"sources": list(sources)})
        self.requests: list[dict[str, Any]] = []
        self.unhandled: list[str] = []
        self.raw_submissions: list[dict[str, Any]] = []
        self.submissions: list[dict[str, Any]] = []
        self.experiments: dict[str, dict[str, Any]] = {}
        self.modules: dict[str, dict[str, Any]] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.pipeline_runs: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.created_computes: list[dict[str, Any]] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = []
        self._add_routes()

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FakeAzureML:
        """Listen on 127.0.0.1 (a free port) in a daemon thread."""
        if self._server is not None:
            return self
        fake = self

        class Handler(_Handler):
            service = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-azureml", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and join the server thread."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeAzureML:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake Azure ML service is not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """Environment variables the SDK needs to reach this fake (and to skip telemetry)."""
        return {**SDK_ENVIRONMENT, "AZUREML_DISCOVERY_SERVICE_ENDPOINT": self.base_url + "/discovery"}

    def workspace(self, name: str | None = None) -> Any:
        """A real ``azureml.core.Workspace`` whose every call goes to this fake.

        The process environment must hold :meth:`environment` (the fixture sets it). The default
        name carries the port: the SDK caches service endpoints per workspace in memory, and a
        name reused across fakes would reach a stopped one.
        """
        from azureml.core import Workspace

        name = name or f"{WORKSPACE}-{self.port}"
        return Workspace(SUBSCRIPTION, RESOURCE_GROUP, name, auth=fake_authentication(self.base_url),
                         _disable_service_check=True, _workspace_id=WORKSPACE_ID, _location=LOCATION)

    def summary(self, index: int = -1) -> dict[str, Any]:
        """The stable summary of a recorded submission (the last by default)."""
        return self.submissions[index]

    # -- state -------------------------------------------------------------------------------------
    def _compute_payload(self, name: str, vm_size: str, min_nodes: int, max_nodes: int,
                         state: str = "Succeeded") -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
                  f"Microsoft.MachineLearningServices/workspaces/{WORKSPACE}/computes/{name}",
            "name": name, "location": LOCATION, "tags": {},
            "type": "Microsoft.MachineLearningServices/workspaces/computes",
            "properties": {"computeType": "AmlCompute", "isAttachedCompute": False, "description": None,
                           "resourceId": None, "provisioningState": state, "provisioningErrors": None,
                           "computeLocation": LOCATION,
                           "properties": {"vmSize": vm_size, "vmPriority": "Dedicated", "subnet": None,
                                          "currentNodeCount": 0, "targetNodeCount": 0,
                                          "allocationState": "Steady",
                                          "nodeStateCounts": {"idleNodeCount": 0, "runningNodeCount": 0,
                                                              "preparingNodeCount": 0, "unusableNodeCount": 0,
                                                              "leavingNodeCount": 0, "preemptedNodeCount": 0},
                                          "scaleSettings": {"minNodeCount": min_nodes, "maxNodeCount": max_nodes,
                                                            "nodeIdleTimeBeforeScaleDown": "PT120S"}}}}

    def add_dataset(self, name: str, sources: list[str]) -> dict[str, Any]:
        """Register (a new version of) dataset ``name``, as if it came from ``sources``."""
        with self._lock:
            return self._register_dataset(name, {"sources": list(sources)})

    def _register_dataset(self, name: str, definition: dict[str, Any]) -> dict[str, Any]:
        versions = self.datasets.setdefault(name, [])
        entry = {"name": name, "version": len(versions) + 1, "id": _new_id(), "saved_id": _new_id(),
                 "definition": definition, "created": _now()}
        versions.append(entry)
        return entry

    def _experiment(self, name: str) -> dict[str, Any]:
        return self.experiments.setdefault(name, {"experimentId": _new_id(), "name": name, "createdUtc": _now(),
                                                  "tags": {}})

    # -- routes ----------------------------------------------------------------------------------
    def _route(self, method: str, pattern: str, function: Callable[..., Any]) -> None:
        self.routes.append((method, re.compile(pattern), function))

    def _add_routes(self) -> None:
        arm = "^" + WS_PATH
        datastore = "^/datastore/v1.0" + WS_PATH
        pipelines = "^/pipelines/v1.0" + WS_PATH
        rp = "^/rp/workspaces" + WS_PATH
        history = "^/history/v1.0" + WS_PATH
        content = "^/content/v[12].0" + WS_PATH
        dataset = "^/dataset/v1.0" + WS_PATH
        r = self._route
        r("GET", r"^/discovery$", self._discovery)
        r("GET", arm + "$", self._arm_workspace)
        r("PUT", arm + r"/computes/(?P<name>[^/]+)$", self._compute_create)
        r("GET", r"^/operations/(?P<id>[^/]+)$", self._operation)
        r("GET", datastore + r"/default$", self._datastore)
        r("GET", datastore + r"/datastores/(?P<name>[^/]+)$", self._datastore)
        r("GET", pipelines + r"/DataTypes$", self._datatypes)
        r("POST", pipelines + r"/DataTypes$", lambda m, body, q: (200, body))
        r("GET", rp + r"/computes$", lambda m, body, q: (200, {"value": list(self.computes.values())}))
        r("GET", rp + r"/computes/(?P<name>[^/]+)$", self._compute_get)
        r("GET", arm + r"/computes/(?P<name>[^/]+)$", self._compute_get)
        r("POST", r"^/jasmine/v1.0" + WS_PATH + r"/experimentids/[^/]+/validation$", lambda m, body, q: (204, None))
        r("GET", history + r"/experiments/(?P<name>[^/]+)$", self._experiment_get)
        r("POST", history + r"/experiments/(?P<name>[^/]+)$", self._experiment_get)
        r("GET", content + r"/snapshots/latest/metadata$", lambda m, body, q: (200, {"id": None, "root": {}}))
        r("POST", content + r"/snapshots/getblob$", lambda m, body, q: (200, {"fileNodes": []}))
        r("POST", content + r"/snapshots/(?P<id>[0-9a-f-]{36})$", lambda m, body, q: (200, {"id": m.group("id")}))
        r("GET", pipelines + r"/Modules/Hash/(?P<hash>[^/]+)$", self._module_by_hash)
        r("POST", pipelines + r"/Modules$", self._module_create)
        r("GET", pipelines + r"/Modules/(?P<id>[^/]+)$", self._module_get)
        r("GET", pipelines + r"/DataSources/Hash/(?P<hash>[^/]+)$", self._datasource_by_hash)
        r("POST", pipelines + r"/DataSources$", self._datasource_create)
        r("GET", pipelines + r"/DataSources/(?P<id>[^/]+)$", self._datasource_get)
        r("POST", pipelines + r"/(Experiments|PipelineRuns)/Unsubmitted/CreationInfoWithGraph$", self._run_create)
        r("POST", pipelines + r"/(Experiments|PipelineRuns)/Submit/(?P<id>[^/]+)$", self._run_submit)
        r("GET", pipelines + r"/PipelineRuns/(?P<id>[^/]+)/PipelineRunOutputs/(?P<name>[^/]+)$", self._run_output)
        r("GET", pipelines + r"/PipelineRuns/(?P<id>[0-9a-f-]{36})/StepRuns$", self._step_runs)
        r("GET", pipelines + r"/(Experiments|PipelineRuns)/(?P<id>[0-9a-f-]{36})$", self._run_get)
        r("GET", history + r"/(experiments|experimentids)/[^/]+/runs/(?P<id>[^/]+)$", self._history_run)
        r("GET", history + r"/(experiments|experimentids)/[^/]+/runs/(?P<id>[^/]+)/children$", self._history_children)
        r("GET", history + r"/(experiments|experimentids)/[^/]+/runs/(?P<id>[^/]+)/details$", self._history_details)
        r("GET", r"^/artifact/v2.0" + WS_PATH + r"/artifacts/prefix/contentinfo/.*$",
          lambda m, body, q: (200, {"value": [], "continuationToken": None}))
        r("GET", dataset + r"/datasets/query/name=(?P<name>[^/]+)$", self._dataset_by_name)
        r("GET", dataset + r"/datasets$", self._dataset_list)
        r("POST", dataset + r"/datasets$", self._dataset_register)
        r("GET", r"^/+data/v1.0" + WS_PATH + r"/dataversion/(?P<id>[^/]+)/versions/[^/]+$", self._dataversion)

    def _discovery(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        keys = ["api", "catalog", "experimentation", "gallery", "history", "hyperdrive", "labeling",
                "modelmanagement", "pipelines", "studiocoreservices", "cert", "studio"]
        return 200, {k: self.base_url for k in keys}

    def _arm_workspace(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        return 200, {"id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
                           f"Microsoft.MachineLearningServices/workspaces/{m.group('ws')}",
                     "name": m.group("ws"), "location": LOCATION, "type": "Microsoft.MachineLearningServices/workspaces",
                     "properties": {"discoveryUrl": self.base_url + "/discovery", "workspaceId": WORKSPACE_ID}}

    def _datastore(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        name = m.groupdict().get("name") or "workspaceblobstore"
        return 200, {"name": name, "dataStoreType": "AzureBlob", "hasBeenValidated": True,
                     "azureStorageSection": {"accountName": ACCOUNT, "containerName": CONTAINER,
                                             "endpoint": "core.windows.net", "protocol": "https",
                                             "credentialType": "None", "subscriptionId": SUBSCRIPTION,
                                             "resourceGroup": RESOURCE_GROUP}}

    def _datatypes(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        kinds = ["AnyFile", "AzureBlobReference", "AzureDataLakeReference", "AzureFilesReference",
                 "AzureSqlDatabaseReference", "AzurePostgresDatabaseReference", "AzureDataLakeGen2Reference",
                 "AzureMLDataset", "AzureMySqlDatabaseReference", "DBFSReference", "AnyDirectory"]
        return 200, [{"Id": d, "Name": d, "Description": d, "IsDirectory": d == "AnyDirectory",
                      "ParentDataTypeIds": [], "EntityStatus": "Active"} for d in kinds]

    # computes
    def _compute_get(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        found = self.computes.get(m.group("name"))
        return (200, found) if found else _error(404, "NotFound", f"compute {m.group('name')!r} not found")

    def _compute_create(self, m: Any, body: Any, q: Any) -> tuple[int, Any, dict[str, str]]:
        name = m.group("name")
        props = ((body or {}).get("properties") or {}).get("properties") or {}
        scale = props.get("scaleSettings") or {}
        record = {"name": name, "vm_size": props.get("vmSize"), "min_nodes": scale.get("minNodeCount"),
                  "max_nodes": scale.get("maxNodeCount"), "idle_seconds_before_scaledown":
                      scale.get("nodeIdleTimeBeforeScaleDown"), "vm_priority": props.get("vmPriority")}
        self.created_computes.append(record)
        operation = _new_id()
        if self.compute_error:
            self.operations[operation] = {"status": "Failed", "error": {"code": "QuotaExceeded",
                                                                        "message": self.compute_error}}
            failed = self._compute_payload(name, props.get("vmSize") or "STANDARD_D2_V2", 0, 1, state="Failed")
            failed["properties"]["provisioningErrors"] = [{"error": {"code": "QuotaExceeded",
                                                                     "message": self.compute_error}}]
            self.computes[name] = failed
        else:
            self.operations[operation] = {"status": "Succeeded"}
            self.computes[name] = self._compute_payload(name, props.get("vmSize") or "STANDARD_D2_V2",
                                                        scale.get("minNodeCount") or 0, scale.get("maxNodeCount") or 1)
        payload = self._compute_payload(name, props.get("vmSize") or "STANDARD_D2_V2", 0, 1, state="Creating")
        return 201, payload, {"Azure-AsyncOperation": f"{self.base_url}/operations/{operation}"}

    def _operation(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        found = self.operations.get(m.group("id"))
        return (200, found) if found else _error(404, "NotFound", "operation not found")

    # experiments and snapshots
    def _experiment_get(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        return 200, self._experiment(m.group("name"))

    # modules and data sources
    @staticmethod
    def _interface(si: dict[str, Any] | None) -> dict[str, Any]:
        si = si or {}

        def params(items: Any) -> list[dict[str, Any]]:
            return [{"Name": p.get("Name"), "DefaultValue": p.get("DefaultValue"), "IsOptional": p.get("IsOptional"),
                     "Type": p.get("ParameterType")} for p in (items or [])]

        return {"Parameters": params(si.get("Parameters")), "MetadataParameters": params(si.get("MetadataParameters")),
                "Ports": {"Inputs": [{"Name": i.get("Name"), "DataTypesIds": i.get("DataTypeIdsList"),
                                      "IsOptional": i.get("IsOptional")} for i in si.get("Inputs") or []],
                          "Outputs": [{"Name": o.get("Name"), "DataTypeId": o.get("DataTypeId")}
                                      for o in si.get("Outputs") or []]},
                "DataPathParameters": [], "DataPathParameterList": []}

    def _module_info(self, module: dict[str, Any]) -> dict[str, Any]:
        return {"Data": module, "Interface": self._interface(module.get("StructuredInterface"))}

    def _module_by_hash(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        for module in self.modules.values():
            if module["IdentifierHash"] == m.group("hash"):
                return 200, self._module_info(module)
        return _error(404, "NotFound", "module not found")

    def _module_create(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        module_id = _new_id()
        entity = {k: body.get(k) for k in ("Name", "Description", "IsDeterministic", "ModuleExecutionType",
                                           "StructuredInterface", "IdentifierHash", "ModuleType", "StepType",
                                           "Runconfig", "CloudSettings", "Properties")}
        entity.update({"Id": module_id, "UploadState": "Completed", "EntityStatus": "Active", "DataLocation": None,
                       "CreatedDate": _now(), "LastModifiedDate": _now()})
        self.modules[module_id] = entity
        return 200, entity

    def _module_get(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        module = self.modules.get(m.group("id"))
        return (200, self._module_info(module)) if module else _error(404, "NotFound", "module not found")

    def _datasource_by_hash(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        for source in self.datasources.values():
            if source.get("IdentifierHash") == m.group("hash"):
                return 200, source
        return _error(404, "NotFound", "datasource not found")

    def _datasource_create(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        source_id = _new_id()
        entity = dict(body, Id=source_id, UploadState="Completed", EntityStatus="Active")
        self.datasources[source_id] = entity
        return 200, entity

    def _datasource_get(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        source = self.datasources.get(m.group("id"))
        return (200, source) if source else _error(404, "NotFound", "datasource not found")

    # pipeline runs
    def _run_create(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        run_id = _new_id()
        experiment = (q.get("experimentName") or ["?"])[0]
        creation = body.get("CreationInfo") or {}
        graph = body.get("Graph") or {}
        run = {"id": run_id, "description": creation.get("Description"), "graph_id": _new_id(),
               "status": "NotStarted", "created": _now(), "submitted": False,
               "params": creation.get("ParameterAssignments") or {}, "experiment": experiment,
               "nsteps": len(graph.get("ModuleNodes") or []), "body": body, "number": len(self.pipeline_runs) + 1}
        self.pipeline_runs[run_id] = run
        raw = {"experimentName": experiment, "modules": json.loads(json.dumps(self.modules)),
               "datasources": json.loads(json.dumps(self.datasources)), "submission": body, "run_id": run_id,
               "dataset_names": {e[k]: e["name"] for versions in self.datasets.values() for e in versions
                                 for k in ("id", "saved_id")}}
        self.raw_submissions.append(raw)
        summary = summarize_submission(raw)
        self.submissions.append(summary)
        run["node_names"] = [s["name"] for s in summary["steps"]]
        return 200, self._run_entity(run)

    def _run_submit(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        run = self.pipeline_runs.get(m.group("id"))
        if not run:
            return _error(404, "NotFound", "pipeline run not found")
        run["submitted"], run["status"], run["started"] = True, "Running", time.time()
        if body:
            run["params"] = {**run["params"], **(body.get("ParameterAssignments") or {})}
        submission = self.submissions[[r["run_id"] for r in self.raw_submissions].index(run["id"])]
        submission["submitted_parameters"] = dict(run["params"])
        return 200, None

    def _advance(self, run: dict[str, Any]) -> dict[str, Any]:
        if run["submitted"] and run["status"] == "Running" and time.time() - run["started"] >= self.run_seconds:
            run["status"], run["end"] = self.outcome, _now()
            if self.outcome == "Failed":
                names = run.get("node_names") or ["?"]
                run["failed_step"] = self.failed_step or names[0]
        return run

    def _run_entity(self, run: dict[str, Any]) -> dict[str, Any]:
        self._advance(run)
        return {"Id": run["id"], "Description": run["description"], "GraphId": run["graph_id"],
                "Status": {"StatusCode": run["status"], "CreationTime": run["created"], "EndTime": run.get("end")},
                "IsSubmitted": run["submitted"], "HasErrors": False, "HasWarnings": False, "UploadState": "Completed",
                "ParameterAssignments": run["params"], "RunHistoryExperimentName": run["experiment"],
                "RunSource": "SDK", "RunType": "SDK", "TotalRunSteps": run["nsteps"], "tags": {}, "Properties": {},
                "EntityStatus": "Active", "CreatedDate": run["created"], "LastModifiedDate": _now()}

    def _run_get(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        run = self.pipeline_runs.get(m.group("id"))
        return (200, self._run_entity(run)) if run else _error(404, "NotFound", "pipeline run not found")

    def _step_runs(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        return 200, []

    def _failure(self, run: dict[str, Any]) -> dict[str, Any] | None:
        if run["status"] != "Failed":
            return None
        message = f"step {run.get('failed_step')!r} failed: {self.failure_message}"
        return {"error": {"code": "UserError", "message": message, "details": []}}

    def _run_dto(self, run: dict[str, Any]) -> dict[str, Any]:
        self._advance(run)
        status = {"Finished": "Completed"}.get(run["status"], run["status"])
        return {"runId": run["id"], "rootRunId": run["id"], "runNumber": run["number"],
                "dataContainerId": "dcid." + run["id"], "experimentId": self._experiment(run["experiment"])["experimentId"],
                "name": run["experiment"], "status": status, "runType": "azureml.PipelineRun",
                "createdUtc": run["created"], "startTimeUtc": run["created"] if run["submitted"] else None,
                "endTimeUtc": run.get("end"), "target": None, "tags": {"azureml.pipelineComponent": "pipelinerun"},
                "properties": {"azureml.runsource": "azureml.PipelineRun", "runSource": "SDK", "runType": "SDK",
                               "azureml.parameters": json.dumps(run["params"]), "azureml.pipelineid": ""},
                "runDefinition": None, "warnings": None, "error": self._failure(run)}

    def _history_run(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        run = self.pipeline_runs.get(m.group("id"))
        return (200, self._run_dto(run)) if run else _error(404, "NotFound", "run not found")

    def _history_children(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        return 200, {"value": [], "continuationToken": None}

    def _history_details(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        run = self.pipeline_runs.get(m.group("id"))
        if not run:
            return _error(404, "NotFound", "run not found")
        dto = self._run_dto(run)
        details = {k: dto[k] for k in ("runId", "target", "status", "startTimeUtc", "endTimeUtc", "error",
                                       "warnings", "properties", "tags")}
        return 200, {**details, "logFiles": {}, "inputDatasets": [], "outputDatasets": [], "runDefinition": None}

    def _run_output(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        run = self.pipeline_runs.get(m.group("id"))
        if not run:
            return _error(404, "NotFound", "pipeline run not found")
        return 200, {"DataTypeId": "AnyDirectory", "LogicalSizeInBytes": 0, "PhysicalSizeInBytes": 0, "Hash": None,
                     "DataLocation": {"StorageType": "AzureBlob", "StorageId": None, "Uri": None,
                                      "DataReference": {"Type": "AzureBlob", "AzureBlobReference": {
                                          "Container": CONTAINER, "Account": ACCOUNT,
                                          "RelativePath": f"azureml/{run['id']}/{m.group('name')}",
                                          "AmlDataStoreName": "workspaceblobstore"}}}}

    # datasets
    def _dataset_dto(self, entry: dict[str, Any]) -> dict[str, Any]:
        return {"datasetId": entry["id"], "name": entry["name"], "datasetType": "tabular", "isVisible": True,
                "description": "", "tags": {}, "createdTime": entry["created"], "modifiedTime": entry["created"],
                "latest": {"datasetId": entry["id"], "versionId": str(entry["version"]),
                           "savedDatasetId": entry["saved_id"], "dataflow": FAKE_DATAFLOW,
                           "properties": {}, "isVisible": True, "createdTime": entry["created"]}}

    def _dataset_by_name(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        versions = self.datasets.get(m.group("name"))
        if not versions:
            return _error(404, "NotFound", f"dataset {m.group('name')!r} not found")
        wanted = (q.get("versionId") or [None])[0]
        if wanted is not None and not 1 <= int(wanted) <= len(versions):
            return _error(404, "NotFound", f"dataset {m.group('name')!r} has no version {wanted}")
        entry = versions[-1] if wanted is None else versions[int(wanted) - 1]
        return 200, self._dataset_dto(entry)

    def _dataversion(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        if m.group("id").startswith("unregistered-"):  # the RSLex form of a saved dataset
            return 200, {"legacyDataflow": FAKE_RSLEX_YAML}
        return _error(404, "NotFound", f"data asset {m.group('id')!r} not found")

    def _dataset_list(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        return 200, {"value": [self._dataset_dto(v[-1]) for v in self.datasets.values()], "continuationToken": None}

    def _dataset_register(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        name = str((body or {}).get("name"))
        latest = (body or {}).get("latest") or {}
        entry = self._register_dataset(name, {"dataflow": latest.get("dataflow"), "description": body.get("description")})
        return 200, self._dataset_dto(entry)

    # dispatch
    def handle(self, method: str, path: str, query: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            parsed_query = parse_qs(query)
            handler_name = None
            status: int
            response: Any
            headers: dict[str, str] = {}
            if self.auth_error and path.startswith(("/subscriptions", "/rp/", "/datastore/", "/pipelines/",
                                                    "/history/", "/dataset/")):
                status, response = _error(401, "AuthenticationFailed",
                                          "The access token is invalid or expired (fake service)")
                handler_name = "auth_error"
            else:
                status, response = _error(404, "NotFound", f"fake Azure ML: unhandled {method} {path}")
                for route_method, pattern, function in self.routes:
                    if route_method != method:
                        continue
                    match = pattern.match(path)
                    if match:
                        handler_name = getattr(function, "__name__", "route")
                        try:
                            result = function(match, body, parsed_query)
                        except Exception as exc:  # report, never crash the server
                            traceback.print_exc()
                            result = _error(500, "FakeServiceError", repr(exc))
                        status, response = result[0], result[1]
                        if len(result) > 2:
                            headers = result[2]  # type: ignore[misc]
                        break
            if handler_name is None:
                self.unhandled.append(f"{method} {path}")
            self.requests.append({"method": method, "path": path, "query": query, "status": status,
                                  "handler": handler_name})
            return status, response, headers


FAKE_RSLEX_YAML = ("paths:\n  - pattern: \"https://example.invalid/fake.csv\"\ntransformations:\n"
                   "  - read_delimited:\n      delimiter: \",\"\n      header: all_files_same_headers\n"
                   "      encoding: utf8\n")
# A minimal Tabular dataflow (what Dataset.Tabular.from_delimited_files makes) for datasets the fake hands out.
FAKE_DATAFLOW = json.dumps({"blocks": [], "meta": {"RsDataflow": (
    "---\ntype: mltable\npaths:\n  - pattern: \"https://example.invalid/fake.csv\"\ntransformations:\n"
    "  - read_delimited:\n      path_column: Path\n      include_path_column: false\n      encoding: utf8\n"
    "      support_multi_line: false\n      delimiter: \",\"\n      header: all_files_same_headers\n")}})


class _Handler(BaseHTTPRequestHandler):
    service: FakeAzureML
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                raw += self.rfile.read(size)
                self.rfile.readline()
        url = urlparse(self.path)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")[:2000]
        status, response, headers = self.service.handle(method, url.path, url.query, body)
        data = b"" if response is None else json.dumps(response).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")


def fake_authentication(base_url: str) -> Any:
    """An ``azureml`` authentication object that hands out a fake token and sends ARM calls to ``base_url``."""
    from azureml.core.authentication import AbstractAuthentication

    class FakeAuthentication(AbstractAuthentication):
        def _get_arm_token(self) -> str:
            return FAKE_TOKEN

        def _get_graph_token(self) -> str:
            return FAKE_TOKEN

        def _get_azureml_client_token(self) -> str:
            return FAKE_TOKEN

        def _get_all_subscription_ids(self) -> tuple[list[str], str]:
            return [SUBSCRIPTION], TENANT

        def _get_workspace(self, *args: Any, **kwargs: Any) -> None:
            return None

        def _get_arm_end_point(self) -> str:
            return base_url

        def _get_cloud_type(self) -> Any:
            import copy

            cloud = copy.deepcopy(super()._get_cloud_type())
            cloud.endpoints.resource_manager = base_url + "/"
            return cloud

        def _get_service_client(self, client_class: Any, subscription_id: str, subscription_bound: bool = True,
                                base_url: str | None = None, is_check_subscription: bool = True) -> Any:
            return super()._get_service_client(client_class, subscription_id, subscription_bound=subscription_bound,
                                               base_url=self._get_arm_end_point(), is_check_subscription=False)

    return FakeAuthentication()


# -- the submission summary ----------------------------------------------------------------------
def _values(params: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {p["Name"]: p.get("Value") for p in params or []}


def summarize_submission(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A stable, diff-able summary of what the SDK submitted: steps, edges, parameters, AutoML settings."""
    submission, modules = raw["submission"], raw["modules"]
    graph = submission.get("Graph") or {}
    node_names = {n["Id"]: modules[n["ModuleId"]]["Name"] for n in graph.get("ModuleNodes") or []}
    datasource_names = {}
    known = raw.get("dataset_names") or {}
    for node in graph.get("DatasetNodes") or []:
        reference = _dataset_node_name(node)
        datasource_names[node["Id"]] = "dataset:" + str(known.get(reference, reference))
    for node in graph.get("DataSourceNodes") or []:
        datasource_names[node["Id"]] = "datasource:" + str(node.get("Name") or node["Id"])
    steps = []
    for node in graph.get("ModuleNodes") or []:
        module = modules[node["ModuleId"]]
        interface = module.get("StructuredInterface") or {}
        params, meta = _values(node.get("ModuleParameters")), _values(node.get("ModuleMetadataParameters"))
        step: dict[str, Any] = {
            "name": module["Name"],
            "type": module.get("StepType"),
            "allow_reuse": module.get("IsDeterministic"),
            "arguments": [[a.get("ValueType"), a.get("Value")] for a in interface.get("Arguments") or []],
            "inputs": sorted(i["Name"] for i in interface.get("Inputs") or []),
            "outputs": sorted(o["Name"] for o in interface.get("Outputs") or [] if not o["Name"].startswith("_")),
            "training_outputs": {o["Name"]: o["TrainingOutput"]["TrainingOutputType"]
                                 for o in interface.get("Outputs") or [] if o.get("TrainingOutput")},
        }
        if module.get("StepType") == "AutoMLStep":
            config = json.loads(meta.get("AutoMLConfig") or "{}")
            settings = json.loads(config.get("aml_settings_json_string") or "{}")
            step["compute_target"] = params.get("target")
            step["script"] = None
            step["automl"] = {k: settings.get(k) for k in AUTOML_KEYS}
        else:
            step["compute_target"] = params.get("Target")
            step["script"] = params.get("Script")
        steps.append(step)

    def port(end: Mapping[str, Any], source: bool) -> str:
        node = end.get("NodeId")
        if node is None:
            return "pipeline_output:" + str(end.get("GraphPortName"))
        name = node_names.get(node) or datasource_names.get(node) or node
        return f"{name}.{end.get('PortName')}" if node in node_names else str(name)

    edges = sorted([port(e["SourceOutputPort"], True), port(e["DestinationInputPort"], False)]
                   for e in graph.get("Edges") or [])
    interface = submission.get("GraphInterface") or {}
    creation = submission.get("CreationInfo") or {}
    return {
        "run_id": raw.get("run_id"),
        "experiment": raw.get("experimentName"),
        "pipeline_parameters": {p["Name"]: p.get("DefaultValue") for p in interface.get("Parameters") or []},
        "submitted_parameters": dict(creation.get("ParameterAssignments") or {}),
        "continue_on_step_failure": creation.get("ContinueExperimentOnNodeFailure"),
        "steps": sorted(steps, key=lambda s: s["name"]),
        "edges": edges,
    }


def _dataset_node_name(node: Mapping[str, Any]) -> Any:
    value = node.get("DataSetDefinition") or {}
    value = value.get("Value") or value
    ref = value.get("DataSetReference") or value.get("SavedDataSetReference") or {}
    return ref.get("Id") or ref.get("Name") or node.get("Id")


def iter_routes(service: FakeAzureML) -> Iterator[str]:
    """The routes the fake serves, ``METHOD pattern`` (for the docs)."""
    for method, pattern, _ in service.routes:
        yield f"{method} {pattern.pattern}"
