"""The Azure ML SDK v1 API in front of the engine: the private REST shapes ``azureml-core`` speaks.

Written against azureml-core 1.61 / azureml-pipeline 1.62 (re-check when upgrading the SDK). Each
route turns a request into engine calls and renders engine records back into the SDK's shapes.
A pipeline submission (``CreationInfoWithGraph``) becomes a :class:`~.engine.PipelineJob`: module
nodes become steps, ``StructuredInterface.Arguments`` become command lines (``Parameter`` values
resolved from the submitted assignments; ``Input``/``Output`` and the ``DatasetOutputConfig:`` /
``DatasetConsumptionConfig:`` literals become data paths), the node's ``Runconfig`` environment
becomes the environment to build, the AutoML module's ``AutoMLConfig`` its settings.

Service-side checks made here, as Azure makes them (beside those of every request, :mod:`.api`):
a pipeline names compute targets that exist; snapshot files were uploaded before the snapshot is
created.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator, Mapping

from . import environments
from .api import VM_SIZES, WS_PATH, Api, client_of, instance_properties
from .blobstore import parse_blob_url
from .engine import (ComputeTarget, DatasetVersion, Engine, InputBinding, ModelVersion,
                     OutputSpec, PipelineJob, RunRecord, ServiceError, StepJob, Token, new_id, now_iso)

EXPERIMENT = r"/(?:experiments/(?P<experiment>[^/]+)|experimentids/(?P<experiment_id>[^/]+))"
AUTOML_KEYS = ("task_type", "primary_metric", "iterations", "experiment_timeout_minutes",
               "iteration_timeout_minutes", "featurization", "label_column_name", "compute_target",
               "n_cross_validations", "enable_early_stopping", "max_concurrent_iterations")
STATUS_CODES = {"NotStarted": "0", "Queued": "1", "Running": "2", "Failed": "3", "Completed": "4",
                "Canceled": "5"}


RSLEX_DATASTORE_MESSAGE = (
    "The fake Azure ML service cannot serve a datastore to the data runtime (azureml-dataprep's Rust engine): it "
    "reads https://{account}.blob.core.windows.net by itself, ignoring HTTPS_PROXY, and offline that host does not "
    "resolve to the fake. Read the data through a dataset the service hands out instead (Dataset.get_by_name: its "
    "definition reads the fake over http://127.0.0.1), e.g. from_delimited_files(..., validate=False, "
    "infer_column_types=False).register(...) first, then Dataset.get_by_name(workspace, name).")


def error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    # the SDK's own error formatting crashes without "details"
    return status, {"error": {"code": code, "message": message, "details": []}}


class V1Api(Api):
    """Routes of the SDK v1 REST API, answered from ``engine``."""

    ARM_PREFIXES = ("/subscriptions/", "/rp/workspaces/")
    COMPUTE_RECORD = ("name", "vm_size", "min_nodes", "max_nodes", "idle_seconds_before_scaledown", "vm_priority")

    def __init__(self, engine: Engine, **where: Any) -> None:
        self.modules: dict[str, dict[str, Any]] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.pipeline_runs: dict[str, dict[str, Any]] = {}      # run id -> submission entity
        self.raw_submissions: list[dict[str, Any]] = []
        self.submissions: list[dict[str, Any]] = []
        self.pending_snapshot_blobs: dict[str, tuple[str, str]] = {}
        self.assets: dict[str, dict[str, Any]] = {}
        self.environments = environments.V1Environments()
        super().__init__(engine, **where)

    def error(self, status: int, code: str, message: str) -> tuple[int, Any]:
        return error(status, code, message)

    def _add_routes(self) -> None:
        arm = "^" + WS_PATH
        r = self._route
        ds = "^/datastore/v1.0" + WS_PATH
        pipelines = "^/pipelines/v1.0" + WS_PATH
        rp = "^/rp/workspaces" + WS_PATH
        history = "^/history/v1.0" + WS_PATH
        content = "^/content/v[12].0" + WS_PATH
        dataset = "^/dataset/v1.0" + WS_PATH
        artifact = "^/artifact/v2.0" + WS_PATH
        models = "^/modelmanagement/v1.0" + WS_PATH
        run = history + EXPERIMENT + r"/runs/(?P<id>[^/]+)"
        r("GET", r"^/discovery$", self._discovery)
        r("GET", arm + "$", self._arm_workspace)
        r("PUT", arm + r"/computes/(?P<name>[^/]+)$", self._compute_put)
        r("POST", arm + r"/checkComputeNameAvailability$", self._compute_name_check)
        r("GET", arm + r"/computes/(?P<name>[^/]+)$", self._compute_get)
        r("GET", r"^/operations/(?P<id>[^/]+)$", self._operation)
        r("GET", ds + r"/default$", self._datastore)
        r("GET", ds + r"/datastores/(?P<name>[^/]+)$", self._datastore)
        r("GET", pipelines + r"/DataTypes$", self._datatypes)
        r("POST", pipelines + r"/DataTypes$", lambda m, body, q: (200, body))
        r("GET", rp + "$", self._arm_workspace)   # Run.get_context() in a job reads its workspace this way
        r("GET", rp + r"/computes$", self._compute_list)
        r("GET", r"^/subscriptions/[^/]+/providers/Microsoft.MachineLearningServices/locations/[^/]+/vmSizes$",
          self._vm_sizes)
        r("GET", rp + r"/computes/(?P<name>[^/]+)$", self._compute_get)
        r("POST", r"^/jasmine/v1.0" + WS_PATH + r"/experimentids/[^/]+/validation$", lambda m, body, q: (204, None))
        # experiments, snapshots
        r("GET", history + r"/experiments/(?P<name>[^/]+)$", self._experiment_get)
        r("POST", history + r"/experiments/(?P<name>[^/]+)$", self._experiment_get)
        r("GET", content + r"/snapshots/latest/metadata$", lambda m, body, q: (200, {"id": None, "root": {}}))
        r("POST", content + r"/snapshots/getblob$", self._snapshot_blobs)
        r("POST", content + r"/snapshots/(?P<id>[0-9a-f-]{36})$", self._snapshot_create)
        # modules, data sources, pipeline runs
        r("GET", pipelines + r"/Modules/Hash/(?P<hash>[^/]+)$", self._module_by_hash)
        r("POST", pipelines + r"/Modules$", self._module_create)
        r("GET", pipelines + r"/Modules/(?P<id>[^/]+)$", self._module_get)
        r("GET", pipelines + r"/DataSources/Hash/(?P<hash>[^/]+)$", self._datasource_by_hash)
        r("POST", pipelines + r"/DataSources$", self._datasource_create)
        r("GET", pipelines + r"/DataSources/(?P<id>[^/]+)$", self._datasource_get)
        r("POST", pipelines + r"/(Experiments|PipelineRuns)/Unsubmitted/CreationInfoWithGraph$", self._run_create)
        r("POST", pipelines + r"/(Experiments|PipelineRuns)/Submit/(?P<id>[^/]+)$", self._run_submit)
        r("GET", pipelines + r"/PipelineRuns/(?P<id>[^/]+)/PipelineRunOutputs/(?P<name>[^/]+)$", self._run_output)
        graph = pipelines + r"/(Experiments|PipelineRuns)/(?P<id>[0-9a-f-]{36})"
        r("POST", graph + r"/Graph/Node/StatusCode$", self._node_status_code)
        r("POST", graph + r"/Graph/Node/Status$", self._node_status)
        r("POST", graph + r"/Graph/AllNodes/Status$", self._all_node_statuses)
        r("POST", graph + r"/Graph/AllNodes/StatusCode$", self._all_node_status_codes)
        r("POST", graph + r"/Outputs$", self._node_outputs)
        r("POST", graph + r"/Graph/Shareable/(?P<kind>STDOUT|STDERR|JobLog)$", self._node_log)
        r("GET", pipelines + r"/PipelineRuns/(?P<id>[0-9a-f-]{36})/StepRuns$", self._step_runs)
        r("DELETE", pipelines + r"/PipelineRuns/(?P<id>[0-9a-f-]{36})/Execution$", self._run_cancel)
        r("GET", pipelines + r"/(Experiments|PipelineRuns)/(?P<id>[0-9a-f-]{36})$", self._run_get)
        # run history
        r("GET", run + r"$", self._history_run)
        r("PATCH", run + r"$", self._history_patch)
        r("POST", run + r"$", self._history_patch)
        r("GET", run + r"/children$", self._history_children)
        r("POST", run + r"/events$", self._history_event)
        r("POST", history + EXPERIMENT + r"/batch/events$", self._history_events)
        r("POST", history + EXPERIMENT + r"/runs:query$", self._runs_query)
        r("GET", history + r"/experiments$", self._experiment_list)
        r("POST", history + r"/experiments:query$", self._experiment_list)
        r("GET", run + r"/metricsingest/wait$", lambda m, body, q: (200, {}))
        r("GET", run + r"/details$", self._history_details)
        r("POST", run + r"/batch/metrics$", self._metrics_post)
        r("POST", history + r"/runs/(?P<id>[^/]+)/batch/metrics$", self._metrics_post)
        r("POST", r"^/metric/v2.0" + WS_PATH + r"/runs/(?P<id>[^/]+)/batchsync$", self._metrics_post_v2)
        r("POST", r"^/metric/v2.0" + WS_PATH + r"/runs/(?P<id>[^/]+)/batch$", self._metrics_post_v2)
        r("POST", history + r"/experiments/(?P<experiment>[^/]+)/metrics:query$", self._metrics_query)
        r("POST", history + r"/experimentids/(?P<experiment_id>[^/]+)/metrics:query$", self._metrics_query)
        r("POST", r"^/metric/v2.0" + WS_PATH + r"/runs/(?P<id>[^/]+)/list$", self._metrics_list_v2)
        r("POST", r"^/metric/v2.0" + WS_PATH + r"/runs/(?P<id>[^/]+)/full$", self._metrics_full_v2)
        r("GET", r"^/metric/v2.0" + WS_PATH + r"/runs/(?P<id>[^/]+)/lastvalues$", self._metrics_last_v2)
        r("POST", r"^/metric/v2.0" + WS_PATH + r"/runs/(?P<id>[^/]+)/lastvalues$", self._metrics_last_v2)
        # artifacts
        r("POST", artifact + r"/artifacts/batch/metadata/(?P<origin>[^/]+)/(?P<container>[^/]+)$",
          self._artifacts_create)
        r("GET", artifact + r"/artifacts/prefix/contentinfo/(?P<origin>[^/]+)/(?P<container>[^/]+)(/(?P<path>.*))?$",
          self._artifacts_list)
        r("GET", artifact + r"/artifacts/contentinfo/(?P<origin>[^/]+)/(?P<container>[^/]+)/(?P<path>.+)$",
          self._artifact_info)
        r("GET", artifact + r"/artifacts/(?P<origin>[^/]+)/(?P<container>[^/]+)$", self._artifacts_list)
        # a run's artifacts by experiment (name or id) and run: what azureml-mlflow's artifact repository reads
        by_run = history + r"/experiment(?:s|ids)/[^/]+/runs/(?P<run>[^/]+)/artifacts"
        r("GET", by_run + r"(?:/path)?$", self._run_artifacts)
        r("GET", by_run + r"/prefix/contentinfo$", self._run_artifacts_content)
        r("GET", by_run + r"/contentinfo$", self._run_artifact_content)
        r("GET", by_run + r"/metadata$", self._run_artifact_metadata)
        # datasets
        r("GET", dataset + r"/datasets/query/name=(?P<name>[^/]+)$", self._dataset_by_name)
        r("GET", dataset + r"/datasets/query/savedDatasetId=(?P<id>[^/]+)$", self._dataset_by_saved_id)
        r("GET", dataset + r"/datasets$", self._dataset_list)
        r("POST", dataset + r"/datasets$", self._dataset_register)
        r("POST", dataset + r"/datasets/register$", self._dataset_register)
        r("GET", dataset + r"/datasets/(?P<id>[0-9a-f-]{36})$", self._dataset_by_id)
        r("GET", dataset + r"/saveddatasets/(?P<id>[^/]+)$", self._saved_dataset)
        r("GET", r"^/+data/v1.0" + WS_PATH + r"/dataversion/(?P<id>[^/]+)/versions/[^/]+$", self._dataversion)
        # models
        r("POST", models + r"/assets$", self._model_asset_create)
        r("GET", models + r"/assets/(?P<id>[^/]+)$", self._model_asset_get)
        r("POST", models + r"/models$", self._model_register)
        r("GET", models + r"/models$", self._model_list)
        r("GET", models + r"/models/(?P<id>[^/]+)$", self._model_get)
        self.environments.routes(r, r"^/environment/v1\.0" + WS_PATH)

    # -- workspace, datastores, computes -------------------------------------------------------------
    def _arm_workspace(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        return 200, {"id": f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/"
                           f"Microsoft.MachineLearningServices/workspaces/{m.group('ws')}",
                     "name": m.group("ws"), "location": self.location,
                     "type": "Microsoft.MachineLearningServices/workspaces",
                     "properties": {"discoveryUrl": self.base_url() + "/discovery", "workspaceId": self.workspace_id}}

    def _datastore(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        name = m.groupdict().get("name") or "workspaceblobstore"
        container = self.engine.datastores.get(name)
        if container is None:
            raise ServiceError(404, "NotFound", f"Datastore {name!r} was not found in the workspace")
        if "azureml-dataprep-rslex" in client_of(self.request):
            # The data runtime reads a datastore at https://<account>.blob.core.windows.net, connecting itself
            # (no proxy; the host is fixed), and retries for minutes when that name does not resolve. Offline
            # it cannot reach this fake's storage: say so at once instead.
            raise ServiceError(400, "UserError", RSLEX_DATASTORE_MESSAGE.format(account=self.account))
        return 200, {"name": name, "dataStoreType": "AzureBlob", "hasBeenValidated": True, "isDefault":
                     name == "workspaceblobstore",
                     "azureStorageSection": {"accountName": self.account, "containerName": container,
                                             "endpoint": "core.windows.net", "protocol": "https",
                                             "credentialType": "Sas", "credential": "sv=2021-08-06&sr=c&sp=racwdl"
                                                                                     f"&sig={self.tokens.sas_signature}",
                                             "sasToken": f"sv=2021-08-06&sr=c&sp=racwdl&sig={self.tokens.sas_signature}",
                                             "subscriptionId": self.subscription,
                                             "resourceGroup": self.resource_group}}

    def _vm_sizes(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        """The VM sizes of the region (``ComputeInstance``/``AmlCompute`` creation lists them first)."""
        sizes = [{"name": size, "family": "standardFamily", "vCPUs": 2, "gpus": 0, "osVhdSizeMB": 1047552,
                  "maxResourceVolumeMB": 102400, "memoryGB": 7.0, "lowPriorityCapable": True, "premiumIO": True,
                  "supportedComputeTypes": ["AmlCompute", "ComputeInstance"]} for size in VM_SIZES]
        return 200, {"value": sizes, "amlCompute": sizes}   # azureml-core 1.61 reads "amlCompute"

    def _datatypes(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        kinds = ["AnyFile", "AzureBlobReference", "AzureDataLakeReference", "AzureFilesReference",
                 "AzureSqlDatabaseReference", "AzurePostgresDatabaseReference", "AzureDataLakeGen2Reference",
                 "AzureMLDataset", "AzureMySqlDatabaseReference", "DBFSReference", "AnyDirectory"]
        return 200, [{"Id": d, "Name": d, "Description": d, "IsDirectory": d == "AnyDirectory",
                      "ParentDataTypeIds": [], "EntityStatus": "Active"} for d in kinds]

    def compute_payload(self, target: ComputeTarget, state: str | None = None) -> dict[str, Any]:
        if target.kind == "ComputeInstance":
            return {"id": f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/"
                          f"Microsoft.MachineLearningServices/workspaces/ws/computes/{target.name}",
                    "name": target.name, "location": self.location, "tags": {},
                    "type": "Microsoft.MachineLearningServices/workspaces/computes",
                    "properties": {"computeType": "ComputeInstance", "isAttachedCompute": False, "description": None,
                                   "createdOn": now_iso(), "modifiedOn": now_iso(),
                                   "resourceId": None, "provisioningState": state or target.state,
                                   "provisioningErrors": target.errors or None, "computeLocation": self.location,
                                   "properties": instance_properties(target)}}
        return {
            "id": f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/"
                  f"Microsoft.MachineLearningServices/workspaces/ws/computes/{target.name}",
            "name": target.name, "location": self.location, "tags": {},
            "type": "Microsoft.MachineLearningServices/workspaces/computes",
            "properties": {"computeType": "AmlCompute", "isAttachedCompute": False, "description": None,
                           "resourceId": None, "provisioningState": state or target.state,
                           "provisioningErrors": target.errors or None, "computeLocation": self.location,
                           "properties": {"vmSize": target.vm_size, "vmPriority": target.priority, "subnet": None,
                                          "currentNodeCount": 0, "targetNodeCount": 0, "allocationState": "Steady",
                                          "nodeStateCounts": {"idleNodeCount": 0, "runningNodeCount": 0,
                                                              "preparingNodeCount": 0, "unusableNodeCount": 0,
                                                              "leavingNodeCount": 0, "preemptedNodeCount": 0},
                                          "scaleSettings": {"minNodeCount": target.min_nodes,
                                                            "maxNodeCount": target.max_nodes,
                                                            "nodeIdleTimeBeforeScaleDown":
                                                                f"PT{target.idle_seconds}S"}}}}

    # -- experiments and snapshots -------------------------------------------------------------------
    def _experiment_dto(self, name: str) -> dict[str, Any]:
        entry = self.engine.experiment(name)
        return {"experimentId": entry["id"], "name": name, "createdUtc": now_iso(entry["created"]), "tags": {}}

    def _experiment_get(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        return 200, self._experiment_dto(m.group("name"))

    def _experiment_list(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        """``ws.experiments`` / ``Experiment.list(ws)``: every experiment, oldest first."""
        names = sorted(self.engine.experiments, key=lambda n: self.engine.experiments[n]["created"])
        return 200, {"value": [self._experiment_dto(n) for n in names], "continuationToken": None, "nextLink": None}

    def _snapshot_blobs(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        names = list((body or {}).get("FileNames") or [])
        batch = new_id()
        nodes = []
        for name in names:
            blob = f"{batch}/{name}"
            self.pending_snapshot_blobs[name] = ("snapshots", blob)
            nodes.append({"fullName": name, "blobUri": self.sas_url("snapshots", blob)})
        return 200, {"fileNodes": nodes}

    def _snapshot_create(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        files: dict[str, tuple[str, str]] = {}
        parent = (body or {}).get("ParentSnapshotId")
        if parent and parent in self.engine.snapshots:
            files.update(self.engine.snapshots[parent])
        for node in ((body or {}).get("FileRevisionList") or {}).get("FileNodes") or []:
            where = parse_blob_url(str(node.get("BlobUri") or ""))
            if where is None or where[0] != self.account:
                raise ServiceError(400, "UserError", f"snapshot file {node.get('FullName')!r} points at "
                                                     f"{node.get('BlobUri')!r}, not at the workspace's storage")
            files[str(node["FullName"])] = (where[1], where[2])
        tree = (body or {}).get("DirTreeNode") or {}
        listed = set(_tree_files(tree))
        files = {k: v for k, v in files.items() if k in listed} if listed else files
        self.engine.add_snapshot(m.group("id"), files)
        return 200, {"id": m.group("id")}

    # -- modules and data sources --------------------------------------------------------------------
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
        raise ServiceError(404, "NotFound", "module not found")

    def _module_create(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        module_id = new_id()
        entity = {k: body.get(k) for k in ("Name", "Description", "IsDeterministic", "ModuleExecutionType",
                                           "StructuredInterface", "IdentifierHash", "ModuleType", "StepType",
                                           "Runconfig", "CloudSettings", "Properties", "StorageId")}
        entity.update({"Id": module_id, "UploadState": "Completed", "EntityStatus": "Active", "DataLocation": None,
                       "CreatedDate": now_iso(), "LastModifiedDate": now_iso()})
        self.modules[module_id] = entity
        return 200, entity

    def _module_get(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        module = self.modules.get(m.group("id"))
        if module is None:
            raise ServiceError(404, "NotFound", "module not found")
        return 200, self._module_info(module)

    def _datasource_by_hash(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        for source in self.datasources.values():
            if source.get("IdentifierHash") == m.group("hash"):
                return 200, source
        raise ServiceError(404, "NotFound", "datasource not found")

    def _datasource_create(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        source_id = new_id()
        entity = dict(body, Id=source_id, UploadState="Completed", EntityStatus="Active")
        self.datasources[source_id] = entity
        return 200, entity

    def _datasource_get(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        source = self.datasources.get(m.group("id"))
        if source is None:
            raise ServiceError(404, "NotFound", "datasource not found")
        return 200, source

    # -- pipeline runs -------------------------------------------------------------------------------
    def _run_create(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        experiment = (q.get("experimentName") or ["?"])[0]
        creation = body.get("CreationInfo") or {}
        raw = {"experimentName": experiment, "modules": json.loads(json.dumps(self.modules)),
               "datasources": json.loads(json.dumps(self.datasources)), "submission": body,
               "dataset_names": {v: e.name for versions in self.engine.datasets.values() for e in versions
                                 for v in (e.id, e.saved_id)}}
        job = self.job_from_graph(experiment, body, creation.get("ParameterAssignments") or {},
                                  creation.get("DataPathAssignments") or {})
        record = self.engine.submit(job)
        raw["run_id"] = record.id
        entity = {"id": record.id, "graph_id": new_id(), "submitted": False, "body": body, "job": job,
                  "params": dict(creation.get("ParameterAssignments") or {}), "nsteps": len(job.steps)}
        self.pipeline_runs[record.id] = entity
        self.raw_submissions.append(raw)
        summary = summarize_submission(raw)
        self.submissions.append(summary)
        return 200, self._run_entity(record.id)

    def _run_submit(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        entity = self.pipeline_runs.get(m.group("id"))
        if entity is None:
            raise ServiceError(404, "NotFound", "pipeline run not found")
        if body and (body.get("ParameterAssignments") or body.get("DataPathAssignments")):
            entity["params"] = {**entity["params"], **(body.get("ParameterAssignments") or {})}
            entity["data_paths"] = {**entity.get("data_paths", {}), **(body.get("DataPathAssignments") or {})}
            self._apply_parameters(entity["job"], entity["body"], entity["params"], entity["data_paths"])
        summary = self.submissions[[r["run_id"] for r in self.raw_submissions].index(m.group("id"))]
        summary["submitted_parameters"] = dict(entity["params"])
        entity["submitted"] = True
        self.engine.start(m.group("id"))
        return 200, None

    def _run_entity(self, run_id: str) -> dict[str, Any]:
        entity = self.pipeline_runs[run_id]
        record = self.engine.run(run_id)
        status = {"Completed": "Finished"}.get(record.status, record.status)
        return {"Id": run_id, "Description": record.description, "GraphId": entity["graph_id"],
                "Status": {"StatusCode": status, "CreationTime": now_iso(record.created),
                           "EndTime": now_iso(record.ended) if record.ended else None},
                "IsSubmitted": entity["submitted"], "HasErrors": False, "HasWarnings": False, "UploadState": "Completed",
                "ParameterAssignments": entity["params"], "RunHistoryExperimentName": record.experiment,
                "RunSource": "SDK", "RunType": "SDK", "TotalRunSteps": entity["nsteps"], "tags": {}, "Properties": {},
                "EntityStatus": "Active", "CreatedDate": now_iso(record.created), "LastModifiedDate": now_iso()}

    def _run_get(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        if m.group("id") not in self.pipeline_runs:
            raise ServiceError(404, "NotFound", "pipeline run not found")
        return 200, self._run_entity(m.group("id"))

    def _run_cancel(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        """``PipelineRun.cancel()``: the engine stops the pipeline run (``CancelRequested``, then ``Canceled``)."""
        if m.group("id") not in self.pipeline_runs:
            raise ServiceError(404, "NotFound", "pipeline run not found")
        self.engine.cancel(m.group("id"))
        return 200, None

    def _step_run_of(self, pipeline_run_id: str, node_id: str) -> RunRecord | None:
        state = self.engine.pipelines.get(pipeline_run_id)
        if state is None:
            raise ServiceError(404, "NotFound", "pipeline run not found")
        step_run_id = state.step_runs.get(node_id)
        return self.engine.run(step_run_id) if step_run_id else None

    def _node_status_dto(self, record: RunRecord | None) -> dict[str, Any]:
        if record is None:
            return {"StatusCode": "0", "Status": "NotStarted", "RunId": None}
        reuse = None
        if record.reused_from:
            original = self.engine.run(record.reused_from)
            reuse = {"ReusedRunId": original.id, "ReusedNodeId": original.node_id,
                     "ReusedPipelineRunId": original.parent_id}
        return {"StatusCode": STATUS_CODES.get(record.status, "0"), "StatusDetail": record.status,
                "RunId": record.reused_from or record.id, "ReuseInfo": reuse,
                "CreationTime": now_iso(record.created),
                "StartTime": now_iso(record.started) if record.started else None,
                "EndTime": now_iso(record.ended) if record.ended else None, "HasWarnings": False}

    @staticmethod
    def _node_of(body: Any) -> str:
        path = body if isinstance(body, list) else (body or {}).get("NodeIdPath") or []
        if not path:
            raise ServiceError(400, "BadArgument", "the request names no node (nodeIdPath)")
        return str(path[-1])

    def _node_status(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        return 200, self._node_status_dto(self._step_run_of(m.group("id"), self._node_of(body)))

    def _node_status_code(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        record = self._step_run_of(m.group("id"), self._node_of(body))
        return 200, STATUS_CODES.get(record.status, "0") if record else "0"

    def _all_node_statuses(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        state = self.engine.pipelines.get(m.group("id"))
        if state is None:
            raise ServiceError(404, "NotFound", "pipeline run not found")
        return 200, {s.node_id: self._node_status_dto(self._step_run_of(m.group("id"), s.node_id))
                     for s in state.job.steps}

    def _all_node_status_codes(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        _, statuses = self._all_node_statuses(m, body, q)
        return 200, {node: status["StatusCode"] for node, status in statuses.items()}

    def _node_log(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        record = self._step_run_of(m.group("id"), self._node_of(body))
        if record is None:
            return 200, ""
        for name in ("azureml-logs/70_driver_log.txt", "azureml-logs/20_image_build_log.txt"):
            if name in record.files:
                return 200, self.engine.read_file(record.id, name).decode("utf-8", "replace")
        return 200, ""

    def _output_dto(self, datastore: str, path: str) -> dict[str, Any]:
        return {"DataTypeId": "AnyDirectory", "LogicalSizeInBytes": 0, "PhysicalSizeInBytes": 0, "Hash": None,
                "DataLocation": {"StorageType": "AzureBlob", "StorageId": None, "Uri": None,
                                 "DataReference": {"Type": "AzureBlob", "AzureBlobReference": {
                                     "Container": self.engine.datastores.get(datastore), "Account": self.account,
                                     "RelativePath": path, "AmlDataStoreName": datastore}}}}

    def _node_outputs(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        record = self._step_run_of(m.group("id"), self._node_of(body))
        if record is None:
            return 200, {}
        return 200, {port: self._output_dto(*where) for port, where in record.outputs.items()}

    def _run_output(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        entity = self.pipeline_runs.get(m.group("id"))
        if entity is None:
            raise ServiceError(404, "NotFound", "pipeline run not found")
        graph = entity["body"].get("Graph") or {}
        for edge in graph.get("Edges") or []:
            if (edge.get("DestinationInputPort") or {}).get("GraphPortName") == m.group("name"):
                source = edge["SourceOutputPort"]
                record = self._step_run_of(m.group("id"), source["NodeId"])
                if record is None or record.status != "Completed":
                    raise ServiceError(400, "UserError", f"pipeline output {m.group('name')!r} is not available: "
                                                         f"its step has not completed")
                return 200, self._output_dto(*record.outputs[source["PortName"]])
        raise ServiceError(404, "NotFound", f"pipeline run {m.group('id')} has no output {m.group('name')!r}")

    def _step_runs(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        return 200, [self.run_dto(r) for r in self.engine.children(m.group("id"))]

    # -- run history ---------------------------------------------------------------------------------
    def run_dto(self, record: RunRecord) -> dict[str, Any]:
        experiment = self.engine.experiment(record.experiment)
        run_type = record.run_type
        tags = dict(record.tags)
        properties = dict(record.properties)
        if run_type == "azureml.PipelineRun":
            tags.setdefault("azureml.pipelineComponent", "pipelinerun")
            entity = self.pipeline_runs.get(record.id)
            properties.setdefault("azureml.parameters", json.dumps(entity["params"] if entity else {}))
            properties.setdefault("azureml.pipelineid", "")
            properties.setdefault("runSource", "SDK")
            properties.setdefault("runType", "SDK")
        return {"runId": record.id, "rootRunId": record.root_id or record.id, "parentRunId": record.parent_id,
                "runNumber": record.number, "dataContainerId": "dcid." + record.id,
                "experimentId": experiment["id"], "name": record.name, "displayName": record.name,
                "status": record.status, "runType": run_type, "createdUtc": now_iso(record.created),
                "startTimeUtc": now_iso(record.started) if record.started else None,
                "endTimeUtc": now_iso(record.ended) if record.ended else None, "target": record.target,
                "tags": tags, "properties": properties, "description": record.description,
                "runDefinition": None, "warnings": None, "hidden": False,
                "error": {"error": {**record.error, "details": []}} if record.error else None}

    def _history_patch(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        """Create or update a run (``Experiment.start_logging`` creates one this way; ``complete`` ends it)."""
        body = body or {}
        if m.group("id") not in self.engine.runs:
            experiment = m.groupdict().get("experiment")
            if experiment is None:
                found = self.engine.experiment_by_id(m.group("experiment_id") or "")
                if found is None:
                    raise ServiceError(404, "NotFound", f"Experiment {m.group('experiment_id')} was not found")
                experiment = found["name"]
            self.engine.create_run(experiment, str(body.get("runType") or "azureml.scriptrun"),
                                   str(body.get("name") or body.get("displayName") or m.group("id")),
                                   run_id=m.group("id"), parent_id=body.get("parentRunId"),
                                   status=str(body.get("status") or "NotStarted"), target=body.get("target"))
        record = self._history_record(m)
        if body.get("status") and body["status"] != record.status:
            self.engine.set_status(record, str(body["status"]))
        with self.engine.lock:
            for key, value in ((body or {}).get("properties") or {}).items():
                if key in record.properties and record.properties[key] != value:
                    raise ServiceError(409, "Conflict", f"Property {key!r} of run {record.id} is already set "
                                                        f"(properties are immutable)")
                record.properties[key] = value
            record.tags.update((body or {}).get("tags") or {})
            if (body or {}).get("description") is not None:
                record.description = body["description"]
        return 200, self.run_dto(record)

    EVENT_STATUS = {"Microsoft.MachineLearning.Run.Start": "Running",
                    "Microsoft.MachineLearning.Run.Completed": "Completed",
                    "Microsoft.MachineLearning.Run.Failed": "Failed",
                    "Microsoft.MachineLearning.Run.Canceled": "Canceled"}

    def _history_event(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        """A run's lifecycle event (``run.complete()``, ``run.fail()``, a started run): its status."""
        record = self._history_record(m)
        status = self.EVENT_STATUS.get(str((body or {}).get("name")))
        if status == "Canceled" and record.id in self.engine.pipelines:   # Run.cancel() of a pipeline run
            self.engine.cancel(record.id)
        elif status is not None and record.status not in ("Completed", "Failed", "Canceled"):
            self.engine.set_status(record, status)
        return 200, None

    def _history_events(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        for event in (body or {}).get("events") or []:
            record = self.engine.runs.get(str((event.get("data") or {}).get("RunId") or ""))
            status = self.EVENT_STATUS.get(str(event.get("name")))
            if record is not None and status is not None and record.status not in ("Completed", "Failed", "Canceled"):
                self.engine.set_status(record, status)
        return 200, {"errors": {}, "successfulEvents": []}

    def _runs_query(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        """``Experiment.get_runs()``: the experiment's top-level runs, newest first (filters on type, status and
        tags as the SDK sends them in ``filter``)."""
        experiment = m.groupdict().get("experiment")
        if experiment is None:
            found = self.engine.experiment_by_id(m.group("experiment_id") or "")
            experiment = found["name"] if found else None
        text = str((body or {}).get("filter") or "")
        runs = [r for r in self.engine.runs.values() if r.experiment == experiment]
        if "RootRunId" in text or "ParentRunId" not in text:
            runs = [r for r in runs if r.parent_id is None]
        for key, value in re.findall(r"(RunType|Status) eq '([^']*)'", text):
            runs = [r for r in runs if (r.run_type if key == "RunType" else r.status) == value]
        runs.sort(key=lambda r: -r.number)
        top = (body or {}).get("top")
        return 200, {"value": [self.run_dto(r) for r in runs[: int(top) if top else None]],
                     "continuationToken": None, "nextLink": None}

    def _metrics_post(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        record = self._history_record(m)
        for item in (body or {}).get("values") or (body or {}).get("Values") or []:
            name = item.get("name")
            cells = item.get("cells") or []
            for cell in cells:
                for key, value in cell.items():
                    self.engine.log_metric(record.id, name if len(cell) == 1 else key, value)
        return 200, {}

    def _metrics_post_v2(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        """``run.log``: a BatchMetricV2Dto, ``{"values": [{"name", "columns", "value": [{"data": {...}}]}]}``."""
        record = self._history_record(m)
        for item in (body or {}).get("values") or []:
            name = item.get("name")
            kind = ((item.get("properties") or {}).get("uxMetricType")) or "azureml.v1.scalar"
            for value in item.get("value") or []:
                data = value.get("data") or {}
                self.engine.log_metric(record.id, name, data.get(name, data if len(data) != 1 else
                                                         next(iter(data.values()))), value.get("step"))
                record.metrics[-1]["kind"] = kind
                record.metrics[-1]["columns"] = item.get("columns") or {}
        return 200, {"errors": []}

    def _metrics_query(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        run_ids = None
        text = json.dumps(body or {})
        found = re.findall(r"RunId eq '([^']+)'", text) or re.findall(r'"runId":\s*"([^"]+)"', text)
        if found:
            run_ids = set(found)
        values = []
        for record in list(self.engine.runs.values()):
            if run_ids is not None and record.id not in run_ids:
                continue
            for index, entry in enumerate(record.metrics):
                values.append({"runId": record.id, "metricId": f"{record.id}-{index}", "name": entry["name"],
                               "metricType": "azureml.v1.scalar", "createdUtc": now_iso(entry["time"]),
                               "dataContainerId": "dcid." + record.id, "columns": {entry["name"]: _column(entry)},
                               "cells": [{entry["name"]: entry["value"]}], "schema": None})
        return 200, {"value": values, "continuationToken": None}

    def _metrics_list_v2(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        record = self._history_record(m)
        names: dict[str, dict[str, Any]] = {}
        for entry in record.metrics:
            names.setdefault(entry["name"], entry)
        return 200, {"value": [{"metricKey": {"name": n, "namespace": None},
                                "columns": e.get("columns") or {n: _column(e)}} for n, e in names.items()],
                     "continuationToken": None}

    def _metrics_full_v2(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        record = self._history_record(m)
        name = (body or {}).get("metricName")
        entries = [e for e in record.metrics if e["name"] == name]
        if not entries:
            raise ServiceError(404, "NotFound", f"run {record.id} has no metric {name!r}")
        first = entries[0]
        return 200, {"dataContainerId": "dcid." + record.id, "name": name,
                     "columns": first.get("columns") or {name: _column(first)},
                     "properties": {"uxMetricType": first.get("kind") or "azureml.v1.scalar"},
                     "value": [{"metricId": f"{record.id}-{i}", "createdUtc": now_iso(e["time"]),
                                "step": e.get("step") if e.get("step") is not None else i,
                                "data": {name: e["value"]}} for i, e in enumerate(entries)],
                     "continuationToken": None}

    def _metrics_last_v2(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        record = self._history_record(m)
        latest: dict[str, dict[str, Any]] = {}
        for entry in record.metrics:
            latest[entry["name"]] = entry
        return 200, {"value": [{"name": n, "data": {n: e["value"]}, "createdUtc": now_iso(e["time"])}
                               for n, e in latest.items()]}

    # -- artifacts -----------------------------------------------------------------------------------
    def _artifact_blob(self, origin: str, container: str, path: str) -> str:
        return f"{origin}/{container}/{path}"

    def _artifacts_create(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        origin, container = m.group("origin"), m.group("container")
        artifacts, infos = {}, {}
        for item in (body or {}).get("paths") or (body or {}).get("Paths") or []:
            path = item.get("path") or item.get("Path")
            blob = self._artifact_blob(origin, container, path)
            if origin == "LocalUpload" and container == "azureml-private-packages" and \
                    self.engine.blob.exists("azureml", blob):
                raise ServiceError(409, "Conflict", f"Resource Conflict: ArtifactId {origin}/{container}/{path} "
                                                    f"already exists")
            artifacts[path] = {"artifactId": f"{origin}/{container}/{path}", "origin": origin,
                               "container": container, "path": path, "etag": None, "createdTime": now_iso()}
            infos[path] = {"contentUri": self.sas_url("azureml", blob), "origin": origin, "container": container,
                           "path": path}
            run_id = container.removeprefix("dcid.")
            if run_id in self.engine.runs:
                with self.engine.lock:
                    self.engine.runs[run_id].files[path] = ("azureml", blob)
        return 200, {"artifacts": artifacts, "artifactContentInformation": infos, "errors": {}}

    def _artifact_info(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        origin, container, path = m.group("origin"), m.group("container"), m.group("path")
        blob = self._artifact_blob(origin, container, path)
        run_id = container.removeprefix("dcid.")
        if run_id in self.engine.runs and path in self.engine.runs[run_id].files:
            blob = self.engine.runs[run_id].files[path][1]
        if not self.engine.blob.exists("azureml", blob):
            raise ServiceError(404, "NotFound", f"artifact {origin}/{container}/{path} not found")
        return 200, {"contentUri": self.sas_url("azureml", blob), "origin": origin, "container": container,
                     "path": path}

    def _artifacts_list(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        origin, container = m.group("origin"), m.group("container")
        prefix = (m.groupdict().get("path") or "").strip("/")
        run_id = container.removeprefix("dcid.")
        found = []
        if run_id in self.engine.runs:
            for path, (box, blob) in sorted(self.engine.runs[run_id].files.items()):
                if path.startswith(prefix):
                    found.append({"contentUri": self.sas_url(box, blob), "origin": origin, "container": container,
                                  "path": path})
        else:  # artifacts of no run (a model's files, uploaded under LocalUpload/...): what was uploaded there
            base = self._artifact_blob(origin, container, "")
            for blob in self.engine.blob.names("azureml", base + prefix):
                found.append({"contentUri": self.sas_url("azureml", blob), "origin": origin, "container": container,
                              "path": blob[len(base):]})
        return 200, {"value": found, "continuationToken": None}

    def _run_files(self, m: Any, q: Any) -> tuple[RunRecord, dict[str, tuple[str, str]]]:
        """The run the URL names and its files under the ``path`` query (a folder prefix or one file)."""
        record = self.engine.runs.get(m.group("run"))
        if record is None:
            raise ServiceError(404, "RunNotFound", f"Run {m.group('run')} was not found")
        prefix = ((q.get("path") or [""])[0]).strip("/")
        files = {path: where for path, where in sorted(record.files.items())
                 if not prefix or path == prefix or path.startswith(prefix + "/")}
        return record, files

    def _run_artifact(self, record: RunRecord, path: str, box: str, blob: str, content: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"origin": "ExperimentRun", "container": f"dcid.{record.id}", "path": path}
        if content:
            return {**entry, "contentUri": self.sas_url(box, blob)}
        return {**entry, "artifactId": f"ExperimentRun/dcid.{record.id}/{path}", "etag": None,
                "createdTime": now_iso(record.created)}

    def _run_artifacts(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        record, files = self._run_files(m, q)
        return 200, {"value": [self._run_artifact(record, p, *w, content=False) for p, w in files.items()],
                     "continuationToken": None, "nextLink": None}

    def _run_artifacts_content(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        record, files = self._run_files(m, q)
        return 200, {"value": [self._run_artifact(record, p, *w, content=True) for p, w in files.items()],
                     "continuationToken": None, "nextLink": None}

    def _one_run_artifact(self, m: Any, q: Any) -> tuple[RunRecord, str, tuple[str, str]]:
        record, files = self._run_files(m, q)
        path = ((q.get("path") or [""])[0]).strip("/")
        if path not in files:
            raise ServiceError(404, "NotFound", f"artifact {path!r} of run {record.id} not found")
        return record, path, files[path]

    def _run_artifact_content(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        record, path, where = self._one_run_artifact(m, q)
        return 200, self._run_artifact(record, path, *where, content=True)

    def _run_artifact_metadata(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        record, path, where = self._one_run_artifact(m, q)
        return 200, self._run_artifact(record, path, *where, content=False)

    # -- datasets ------------------------------------------------------------------------------------
    def local_dataflow(self, entry: DatasetVersion) -> Any:
        """The dataflow as handed out: datastore paths read over the fake's plain-http blob endpoint."""
        text = json.dumps(entry.definition) if not isinstance(entry.definition, str) else entry.definition

        def http(datastore: str, path: str) -> str:
            container = self.engine.datastores.get(datastore, datastore)
            return f"{self.base_url()}/blob/{self.account}/{container}/{path}"

        text = re.sub(r"azureml://subscriptions/[^/\"']+/resource[gG]roups/[^/\"']+/workspaces/[^/\"']+/datastores/"
                      r"([^/\"']+)/paths/([^\"'\\]+)", lambda g: http(g.group(1), g.group(2)), text)
        return text

    def dataset_dto(self, entry: DatasetVersion) -> dict[str, Any]:
        dataflow = self.local_dataflow(entry)
        if not isinstance(dataflow, str):
            dataflow = json.dumps(dataflow)
        version = {"datasetId": entry.id, "versionId": str(entry.version), "savedDatasetId": entry.saved_id,
                   "dataflow": dataflow, "properties": {}, "isVisible": True, "createdTime": now_iso(entry.created),
                   "datasetType": "tabular", "description": entry.description, "tags": entry.tags}
        return {"datasetId": entry.id, "name": entry.name, "datasetType": "tabular", "isVisible": True,
                "description": entry.description, "tags": entry.tags, "createdTime": now_iso(entry.created),
                "modifiedTime": now_iso(entry.created), "latest": version, "defaultCompareToVersion": None}

    def _dataset_by_name(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        wanted = (q.get("versionId") or [None])[0]
        entry = self.engine.dataset(m.group("name"), int(wanted) if wanted not in (None, "latest") else None)
        return 200, self.dataset_dto(entry)

    def _dataset_by_saved_id(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        entry = self.engine.dataset_by_id(m.group("id"))
        return 200, {"value": [self.dataset_dto(entry)] if entry else [], "continuationToken": None}

    def _dataset_by_id(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        entry = self.engine.dataset_by_id(m.group("id"))
        if entry is None:
            raise ServiceError(404, "NotFound", f"dataset {m.group('id')} not found")
        return 200, self.dataset_dto(entry)

    def _saved_dataset(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        entry = self.engine.dataset_by_id(m.group("id"))
        if entry is None:
            raise ServiceError(404, "NotFound", f"saved dataset {m.group('id')} not found")
        return 200, {"id": entry.saved_id, "datasetType": "tabular", "dataflow": self.local_dataflow(entry),
                     "properties": {}}

    def _dataversion(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        asset = m.group("id")
        entry = self.engine.dataset_by_id(asset.removeprefix("unregistered-"))
        if entry is None:
            raise ServiceError(404, "NotFound", f"data asset {asset!r} not found")
        return 200, {"legacyDataflow": rslex_yaml(self.local_dataflow(entry))}

    def _dataset_list(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        return 200, {"value": [self.dataset_dto(v[-1]) for v in self.engine.datasets.values()],
                     "continuationToken": None}

    def _dataset_register(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        with self.engine.lock:  # check and register at once, as the service does: no two identical versions
            return self._dataset_register_locked(m, body, q)

    def _dataset_register_locked(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        body = body or {}
        name = str(body.get("name"))
        latest = body.get("latest") or {}
        dataflow = latest.get("dataflow")
        existing = self.engine.datasets.get(name) or []
        if existing and (q.get("ifExistsOk") or ["false"])[0].lower() != "true":
            raise ServiceError(409, "Conflict", f"There is already a dataset registered under name {name!r}")
        for entry in existing:
            if entry.definition == dataflow:
                raise ServiceError(400, "UserError", f"An identical dataset has been registered as "
                                                     f"{name}:{entry.version} (name:version).")
        files, urls = _dataflow_sources(dataflow)
        entry = self.engine.register_dataset(name, dataflow, files=files, urls=urls,
                                             description=body.get("description"), tags=body.get("tags") or {})
        return 200, self.dataset_dto(entry)

    # -- models --------------------------------------------------------------------------------------
    def model_dto(self, entry: ModelVersion) -> dict[str, Any]:
        return {"id": entry.id, "name": entry.name, "version": entry.version, "description": entry.description,
                "url": entry.url, "mimeType": "application/json", "framework": entry.framework or "Custom",
                "frameworkVersion": None, "createdTime": now_iso(entry.created),
                "modifiedTime": now_iso(entry.created), "kvTags": entry.tags, "properties": entry.properties,
                "runId": entry.run_id, "experimentName": entry.experiment, "unpack": False,
                "createdBy": {"userName": "fake@example.com"}, "datasets": [], "resourceRequirements": None}

    def _model_asset_create(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        body = body or {}
        for artifact in body.get("artifacts") or []:
            prefix = str(artifact.get("prefix") or "").strip("/")
            if prefix and not self.engine.blob.names("azureml", prefix):
                raise ServiceError(400, "BadArgument", f"asset artifact prefix {prefix!r} holds no uploaded file")
        asset = {"id": new_id().replace("-", ""), "name": body.get("name"), "artifacts": body.get("artifacts") or [],
                 "kvTags": body.get("kvTags") or {}, "properties": body.get("properties") or {},
                 "runid": body.get("runid"), "type": body.get("type"), "createdTime": now_iso(), "meta": body.get("meta")}
        self.assets[asset["id"]] = asset
        return 200, asset

    def _model_asset_get(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        asset = self.assets.get(m.group("id"))
        if asset is None:
            raise ServiceError(404, "NotFound", f"asset {m.group('id')} not found")
        return 200, asset

    def _model_register(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        body = body or {}
        name = str(body.get("name") or "")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}", name):
            raise ServiceError(400, "BadArgument", f"Model name {name!r} is invalid: use letters, digits, '-', '_' "
                                                   f"and '.', starting with a letter or digit")
        url = str(body.get("url") or "")
        asset = re.match(r"aml://asset/(.+)", url)
        if asset is not None and asset.group(1) not in self.assets:
            raise ServiceError(400, "BadArgument", f"Model asset {asset.group(1)!r} does not exist")
        prefix = re.match(r"aml://artifacts?/(.+)", url)
        if prefix is not None and not self.engine.blob.names("azureml", prefix.group(1).strip("/")):
            raise ServiceError(400, "BadArgument", f"Model files at {url!r} were never uploaded")
        entry = self.engine.register_model(name, url, run_id=body.get("runId"), experiment=body.get("experimentName"),
                                           description=body.get("description"), tags=body.get("kvTags") or {},
                                           properties=body.get("properties") or {}, framework=body.get("framework"))
        return 200, self.model_dto(entry)

    def _model_get(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        from urllib.parse import unquote

        return 200, self.model_dto(self.engine.model(unquote(m.group("id"))))  # the SDK sends NAME%3AVERSION

    def _model_list(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        name = (q.get("name") or [None])[0]
        found = [e for versions in self.engine.models.values() for e in versions if name in (None, e.name)]
        found.sort(key=lambda e: (e.name, -e.version))
        return 200, {"value": [self.model_dto(e) for e in found], "nextLink": None}

    def _data_reference(self, node: Mapping[str, Any]) -> tuple[str, str] | None:
        """The (datastore, path) a graph's data node reads when it is a DataReference (a data source) or a
        DataPath pipeline parameter; None for dataset nodes."""
        source = self.datasources.get(str(node.get("DatasetId") or ""))
        if source is not None:
            return _location_of(source)
        name = node.get("DataPathParameterName")
        if name:
            value = getattr(self, "_data_paths", {}).get(name)
            if not value:
                raise ServiceError(400, "UserError", f"data path parameter {name!r} has no value and no default")
            found = _location_of(value)
            if found is None:
                raise ServiceError(400, "UserError", f"data path parameter {name!r} names no datastore: {value!r}")
            return found
        return None

    # -- submissions become jobs ---------------------------------------------------------------------
    def job_from_graph(self, experiment: str, body: Mapping[str, Any], assignments: Mapping[str, str],
                       data_paths: Mapping[str, Any] | None = None) -> PipelineJob:
        graph = body.get("Graph") or {}
        creation = body.get("CreationInfo") or {}
        interface = body.get("GraphInterface") or {}
        defaults = {p["Name"]: p.get("DefaultValue") for p in interface.get("Parameters") or []}
        values = {**defaults, **assignments}
        # DataPath pipeline parameters: their defaults, and what the submission assigns
        self._data_paths = {**{p["Name"]: p.get("DefaultValue") or {} for p in interface.get("DataPathParameters")
                               or []}, **dict(data_paths or creation.get("DataPathAssignments") or {})}
        dataset_nodes = {n["Id"]: n for n in graph.get("DatasetNodes") or []}
        edges_in: dict[tuple[str, str], Mapping[str, Any]] = {}
        for edge in graph.get("Edges") or []:
            destination = edge.get("DestinationInputPort") or {}
            if destination.get("NodeId"):
                edges_in[(destination["NodeId"], destination["PortName"])] = edge["SourceOutputPort"]
        steps = []
        for node in graph.get("ModuleNodes") or []:
            module = self.modules.get(node["ModuleId"])
            if module is None:
                raise ServiceError(400, "UserError", f"module {node['ModuleId']} of node {node['Id']} does not exist")
            steps.append(self._step(node, module, dataset_nodes, edges_in, values))
        return PipelineJob(experiment=experiment, steps=steps, description=creation.get("Description"),
                           continue_on_step_failure=bool(creation.get("ContinueExperimentOnNodeFailure")),
                           parameters={k: str(v) for k, v in values.items()})

    def _apply_parameters(self, job: PipelineJob, body: Mapping[str, Any], assignments: Mapping[str, str],
                          data_paths: Mapping[str, Any] | None = None) -> None:
        fresh = self.job_from_graph(job.experiment, body, assignments, data_paths)
        job.steps[:] = fresh.steps
        job.parameters = fresh.parameters

    def _step(self, node: Mapping[str, Any], module: Mapping[str, Any], dataset_nodes: Mapping[str, Any],
              edges_in: Mapping[tuple[str, str], Mapping[str, Any]], values: Mapping[str, Any]) -> StepJob:
        interface = module.get("StructuredInterface") or {}
        params: dict[str, Any] = {}
        for p in node.get("ModuleParameters") or []:
            value = p.get("Value")
            if str(p.get("ValueType")) in ("1", "GraphParameterName"):   # bound to a pipeline parameter
                value = values.get(str(value), value)
            params[p["Name"]] = value
        meta = {p["Name"]: p.get("Value") for p in node.get("ModuleMetadataParameters") or []}
        kind = "automl" if module.get("StepType") == "AutoMLStep" else "command"
        inputs: dict[str, InputBinding] = {}
        after: list[str] = []
        for port in interface.get("Inputs") or []:
            source = edges_in.get((node["Id"], port["Name"]))
            if source is None:
                continue
            if port["Name"].startswith("_run_after_input_"):   # step.run_after(other): an order, no data
                after.append(str(source["NodeId"]))
                continue
            mode = str(port.get("DataStoreMode") or "mount").lower()
            where = self._data_reference(dataset_nodes.get(source["NodeId"]) or {})
            if where is not None:   # a DataReference, or a DataPath pipeline parameter: a folder of a datastore
                inputs[port["Name"]] = InputBinding(port["Name"], mode, location=where)
            elif source["NodeId"] in dataset_nodes:
                reference = _dataset_reference(dataset_nodes[source["NodeId"]])
                entry = self.engine.dataset_by_id(str(reference.get("Id") or ""))
                if entry is None:
                    raise ServiceError(400, "UserError", f"step {module['Name']!r} input {port['Name']!r}: dataset "
                                                         f"{reference.get('Id')} does not exist in the workspace")
                version = int(reference.get("Version") or entry.version)
                inputs[port["Name"]] = InputBinding(port["Name"], mode, dataset=(entry.name, version))
            else:
                inputs[port["Name"]] = InputBinding(port["Name"], mode, producer=(source["NodeId"], source["PortName"]))
        settings_by_output = {s["Name"]: s for s in node.get("ModuleOutputSettings") or []}
        outputs: dict[str, OutputSpec] = {}
        for port in interface.get("Outputs") or []:
            if port["Name"].startswith("_"):
                continue
            setting = settings_by_output.get(port["Name"], {})
            options = setting.get("DatasetOutputOptions") or {}
            training = (port.get("TrainingOutput") or {}).get("TrainingOutputType")
            destination = (options.get("PathOnDatastore") or (options.get("DestinationPath") or {}).get("RelativePath"))
            if setting.get("DatasetRegistration") is not None or options:
                path = destination or "dataset/{run-id}/{output-name}"
            else:
                path = "azureml/{run-id}/{output-name}"
            outputs[port["Name"]] = OutputSpec(port["Name"], str(setting.get("DataStoreName") or
                                                                 port.get("DataStoreName") or "workspaceblobstore"),
                                               path, is_file=training is not None, training_output=training)
        identity = json.dumps({"module": module.get("IdentifierHash"), "params": params, "meta": meta},
                              sort_keys=True, default=str)
        compute = str(params.get("Target") or params.get("compute_target") or "")
        step = StepJob(node_id=node["Id"], name=str(module["Name"]), kind=kind, compute=compute,
                       allow_reuse=bool(module.get("IsDeterministic")), identity=identity, inputs=inputs,
                       outputs=outputs, after=after)
        if kind == "automl":
            config = json.loads(meta.get("AutoMLConfig") or "{}")
            settings = json.loads(config.get("aml_settings_json_string") or "{}")
            step.compute = str(settings.get("compute_target") or compute)
            step.automl_settings = settings
            return step
        step.script = str(params.get("Script") or "")
        step.snapshot_id = _snapshot_of(module)
        runconfig = json.loads(node.get("Runconfig") or module.get("Runconfig") or "{}")
        step.environment = environments.from_v1_environment(runconfig.get("environment") or {}, str(module["Name"]))
        max_seconds = runconfig.get("maxRunDurationSeconds")
        step.max_seconds = float(max_seconds) if max_seconds else None
        step.argv = []
        outputs_env: list[str] = []
        dataset_env: list[str] = []
        for argument in interface.get("Arguments") or []:
            kind_of, value = argument.get("ValueType"), str(argument.get("Value"))
            if kind_of == "Parameter":
                step.argv.append(Token("literal", str(params.get(value, values.get(value, "")))))
            elif kind_of == "Input":
                step.argv.append(Token("input_path", value))
            elif kind_of == "Output":
                step.argv.append(Token("output_path", value))
            elif value.startswith("DatasetOutputConfig:") and value.split(":", 1)[1] in step.outputs:
                step.argv.append(Token("output_path", value.split(":", 1)[1]))
            elif value.startswith("DatasetConsumptionConfig:") and value.split(":", 1)[1] in step.inputs:
                step.argv.append(Token("input_path", value.split(":", 1)[1]))
            else:
                step.argv.append(Token("literal", value))
        for port, binding in step.inputs.items():
            if binding.location is not None:   # a data reference: its path, as AZUREML_DATAREFERENCE_<name>
                step.env[f"AZUREML_DATAREFERENCE_{port}"] = [Token("input_path", port)]
            elif binding.dataset is not None and binding.mode == "direct":
                step.env[port] = [Token("input_dataset_id", port)]
                dataset_env.append(f"{port}:direct")
            else:
                step.env[port] = [Token("input_path", port)]
                step.env[f"AZUREML_DATAREFERENCE_{port}"] = [Token("input_path", port)]
                if binding.dataset is not None:
                    dataset_env.append(f"{port}:{binding.mode}")
        for port in step.outputs:
            step.env[port] = [Token("output_path", port)]
            step.env[f"AZUREML_DATAREFERENCE_{port}"] = [Token("output_path", port)]
            outputs_env.append(port)
        if dataset_env:
            step.env["AZUREML_DATASET_ENVIRONMENT_VARS"] = [Token("literal", ",".join(dataset_env) + ",")]
        if outputs_env:
            step.env["AZUREML_DATASET_FILE_OUTPUTS"] = [Token("literal", ";".join(outputs_env))]
        return step


def _location_of(reference: Mapping[str, Any]) -> tuple[str, str] | None:
    """(datastore, path) of a data source's or data path's reference, when it names one."""
    datastore = reference.get("DataStoreName") or reference.get("AmlDataStoreName")
    path = reference.get("PathOnDataStore") if "PathOnDataStore" in reference else reference.get("RelativePath")
    return (str(datastore), str(path or "").strip("/")) if datastore else None


def rslex_yaml(dataflow: Any) -> str:
    """The rslex YAML inside a dataflow (``meta.RsDataflow``), as the data service hands it out."""
    data = json.loads(dataflow) if isinstance(dataflow, str) else dataflow
    return str(((data or {}).get("meta") or {}).get("RsDataflow") or "")


def _column(entry: Mapping[str, Any]) -> str:
    value = entry["value"]
    return "Bool" if isinstance(value, bool) else "Int" if isinstance(value, int) else \
        "Double" if isinstance(value, float) else "String"


def _tree_files(tree: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Relative paths of the files in a snapshot's directory tree (the SDK's merkle tree JSON)."""
    children = tree.get("Children") or tree.get("children") or []
    for child in children.values() if isinstance(children, Mapping) else children:
        name = child.get("Name") or child.get("name")
        path = f"{prefix}{name}"
        kind = str(child.get("Type") or child.get("type") or "").lower()
        if kind in ("file", "1"):
            yield path
        else:
            yield from _tree_files(child, path + "/")


def _snapshot_of(module: Mapping[str, Any]) -> str | None:
    for key in ("StorageId", "SnapshotId"):
        if module.get(key):
            return str(module[key])
    return None


def _dataset_reference(node: Mapping[str, Any]) -> Mapping[str, Any]:
    value = node.get("DataSetDefinition") or {}
    value = value.get("Value") or value
    return value.get("DataSetReference") or value.get("SavedDataSetReference") or {}


def _dataflow_sources(dataflow: Any) -> tuple[list[tuple[str, str]], list[str]]:
    """(datastore, path) pairs and URLs a posted dataflow reads."""
    text = dataflow if isinstance(dataflow, str) else json.dumps(dataflow)
    text = text.replace('\\"', '"').replace("\\n", "\n")
    files = [(g.group(1), g.group(2)) for g in re.finditer(
        r"azureml://subscriptions/[^/\"']+/resource[gG]roups/[^/\"']+/workspaces/[^/\"']+/datastores/([^/\"']+)/"
        r"paths/([^\"'\s\\]+)", text)]
    urls = [u for u in re.findall(r"https?://[^\s\"'\\]+", text) if "azureml://" not in u]
    return files, urls


# -- the submission summary --------------------------------------------------------------------------
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
            step["compute_target"] = params.get("target") or settings.get("compute_target")
            step["script"] = None
            step["automl"] = {k: settings.get(k) for k in AUTOML_KEYS}
        else:
            step["compute_target"] = params.get("Target")
            step["script"] = params.get("Script")
        steps.append(step)

    def port(end: Mapping[str, Any]) -> str:
        node = end.get("NodeId")
        if node is None:
            return "pipeline_output:" + str(end.get("GraphPortName"))
        name = node_names.get(node) or datasource_names.get(node) or node
        return f"{name}.{end.get('PortName')}" if node in node_names else str(name)

    edges = sorted([port(e["SourceOutputPort"]), port(e["DestinationInputPort"])] for e in graph.get("Edges") or [])
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
    ref = _dataset_reference(node)
    return ref.get("Id") or ref.get("Name") or node.get("Id")
