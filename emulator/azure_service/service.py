"""The fake Azure ML service: one HTTP server on 127.0.0.1 in front of the engine and the blob store.

    with FakeAzureML() as fake:
        ws = fake.workspace()              # a real azureml.core.Workspace talking to the fake
        run = Experiment(ws, "x").submit(pipeline)
        run.wait_for_completion()          # the steps really ran: in venvs, from the shipped wheels
        fake.submissions[-1]               # what the SDK posted, as a stable summary

One port serves three things: the service's REST API (JSON, plain HTTP, for the SDK's service
calls), ``CONNECT`` tunnels to ``<account>.blob.core.windows.net`` with TLS terminated by the fake
(for the SDK's blob transfers; clients set ``HTTPS_PROXY`` and ``REQUESTS_CA_BUNDLE``, see
:meth:`FakeAzureML.environment`), and ``/blob/...`` read-only over plain HTTP (for the Rust data
runtime, which does not use proxies). The one other host it tunnels to is the public CDN the SDK v2
client fetches the MLTable schema from: with no network, it answers 404 at once (the client then
skips its schema check, as it does whenever that download fails). Nothing binds anything but 127.0.0.1.

What it accepts: requests addressed to it by a loopback name (``Host: 127.0.0.1:<port>`` or
``localhost:<port>``: a web page that renamed itself to 127.0.0.1, DNS rebinding, is refused), bearer
tokens and SAS signatures it issued (:mod:`.tokens`), bodies of at most ``max_body`` bytes framed by a
``Content-Length`` or chunked (400, 411 or 413 otherwise); a client that sends nothing for
``request_timeout`` seconds in the middle of a request is disconnected. Each problem is one line on
stderr (``fake-azure: ...``), never a traceback.
"""

from __future__ import annotations

import collections
import ipaddress
import json
import re
import shutil
import socket
import ssl
import stat
import sys
import tempfile
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence
from urllib.parse import parse_qs, urlparse

from framework.backends.azure.endpoint import CONFIG_MARKER

from . import blobstore
from .automl import run_automl_step
from .blobstore import BLOB_HOST_SUFFIX, SCHEMA_HOSTS, BlobStore, CertificateAuthority
from .compute import Compute, PackageIndex, find_pythons
from .engine import ComputeTarget, Engine, RunRecord
from .v1 import V1Api, summarize_submission
from .tokens import Tokens
from .v2 import AML_RESOURCE, V2Api

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
RESOURCE_GROUP = "amlstep-fake-rg"
WORKSPACE = "amlstep-fake-ws"
WORKSPACE_ID = "11111111-1111-1111-1111-111111111111"
TENANT = "22222222-2222-2222-2222-222222222222"
LOCATION = "westeurope"
ACCOUNT = "amlstepfakestorage"
DATASTORE_CONTAINER = f"azureml-blobstore-{WORKSPACE_ID}"

# The environment the SDK needs to talk to the fake (and to nothing else).
SDK_ENVIRONMENT = {
    "HBI_WORKSPACE_JOB": "true",          # stops Application Insights telemetry
    "AZUREML_CURRENT_CLOUD": "AzureCloud",  # the built-in cloud list: no call to the ARM metadata URL
    "AZUREML_AUTOML_SCENARIO": "AutoML",  # otherwise AutoML asks extra endpoints about pip mirrors
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
# The largest request body the service reads (413 beyond). The SDKs upload a file in one Put Blob up to 64 MiB
# and in 4 MiB blocks beyond (azure-storage-blob and the copy azureml-core vendors: max_single_put_size,
# max_block_size); 100 MiB was also Azure's own limit for one block before service version 2019-12-12.
MAX_BODY = 100 * 1024 * 1024
# Seconds a client may send nothing in the middle of a request (an idle keep-alive connection is closed
# quietly after as long).
REQUEST_TIMEOUT = 60.0
# the lifetime of the tokens a config.json carries (they end with the service anyway: its secret is in memory)
CONFIG_TOKEN_LIFETIME = 10 * 365 * 24 * 3600


class FakeAzureML:
    """The fake service. Start it (or use it as a context manager), point a Workspace at it.

    Args:
        computes: compute clusters that exist at start (``cpu-cluster`` by default).
        datasets: tabular datasets registered at start: name -> local CSV files (uploaded to the
            default datastore, as ``Dataset.Tabular.from_delimited_files`` over them would be).
        execute: run what is submitted (default); False accepts submissions and completes every
            step at once without running anything (what the dry run needs).
        auth_error: answer every workspace call with 401 (an expired or wrong login).
        compute_error: make compute creation fail with this message (e.g. a quota).
        root: where the service keeps its state (blobs, runs); a temporary folder by default,
            removed at :meth:`stop`.
        cache_dir: where built environments are kept (shared between services, e.g. for a test
            session); inside ``root`` by default.
        port: the port to listen on (0: any free port).
        web_files: local copies of public URLs that jobs read as inputs (URL -> file), served in their
            place (offline tests, or data that is no longer online).
        web_fetch: fetch other public URLs a job reads from the network, as Azure does (default); False
            fails such a step with a message naming the URL.
        max_body: the largest request body read, in bytes (413 beyond).
        request_timeout: seconds a client may send nothing in the middle of a request before it is disconnected.
        index_url, find_links, offline: where environment builds get the packages the fake does not
            already have: pip's own configuration (PyPI unless configured otherwise) by default; else
            this index URL, these find-links folders or URLs, and with ``offline`` no index at all (only
            the find-links). Tests build offline from a folder of wheels.
        pythons: interpreters of other Python versions (``{"3.8": "/usr/bin/python3.8"}``) to build the
            environments that ask for them on; by default this machine's (``python3.X`` on PATH, pyenv's).
            An environment asking for a Python without an interpreter here runs on the fake's own, noted.
    """

    def __init__(self, *, computes: tuple[str, ...] = ("cpu-cluster",),
                 datasets: Mapping[str, Sequence[str | Path]] | None = None, execute: bool = True,
                 auth_error: bool = False, compute_error: str | None = None, root: str | Path | None = None,
                 cache_dir: str | Path | None = None, port: int = 0, workspace_name: str | None = None,
                 web_files: Mapping[str, str | Path] | None = None, web_fetch: bool = True,
                 max_body: int = MAX_BODY, request_timeout: float = REQUEST_TIMEOUT,
                 index_url: str | None = None, find_links: Sequence[str | Path] = (), offline: bool = False,
                 pythons: Mapping[str, str | Path] | None = None) -> None:
        self._own_root = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="amlstep-fake-azure-"))
        private_folder(self.root)
        self._port = port
        self.max_body = max_body
        self.request_timeout = request_timeout
        # what clients must show: tokens signed with a secret of this instance (held in memory only)
        self.tokens = Tokens(TENANT)
        self.token = self.tokens.issue(lifetime=CONFIG_TOKEN_LIFETIME)
        self.client_tokens = {AML_RESOURCE: self.tokens.issue(audience=AML_RESOURCE, lifetime=CONFIG_TOKEN_LIFETIME)}
        self._workspace_name = workspace_name
        self.blob = BlobStore(self.root / "blobs", ACCOUNT)
        self.ca = CertificateAuthority(self.root / "tls")
        # environment builds install from a package index as Azure's image build does: pip's configuration
        # (PyPI) by default, or the index, find-links folders and offline mode given here
        self.compute = Compute(Path(cache_dir) if cache_dir else self.root / "cache",
                               index=PackageIndex(index_url=index_url, find_links=tuple(str(f) for f in find_links),
                                                  offline=offline),
                               pythons=find_pythons() if pythons is None else pythons)
        self.engine = Engine(self.root, self.blob, self.compute,
                             datastores={"workspaceblobstore": DATASTORE_CONTAINER, "workspacefilestore":
                                         f"azureml-filestore-{WORKSPACE_ID}"},
                             runtime_env=self._runtime_env, execute=execute, runners={"automl": run_automl_step},
                             web_files={url: Path(path) for url, path in (web_files or {}).items()},
                             web_fetch=web_fetch)
        where = dict(workspace_name=lambda: self.workspace_name, subscription=SUBSCRIPTION,
                     resource_group=RESOURCE_GROUP, workspace_id=WORKSPACE_ID, tenant=TENANT, location=LOCATION,
                     account=ACCOUNT, container=DATASTORE_CONTAINER, compute_error=compute_error,
                     auth_error=auth_error, tokens=self.tokens)
        self.api = V1Api(self.engine, base_url=lambda: self.base_url, **where)
        self.api_v2 = V2Api(self.engine, base_url=lambda: self.tls_url, **where)
        for name in computes:
            self.engine.computes[name] = ComputeTarget(name=name, vm_size="STANDARD_D2_V2")
        self._initial_datasets = dict(datasets or {})
        self.requests: list[dict[str, Any]] = []
        self.unhandled: list[str] = []
        self.problems: collections.deque[str] = collections.deque(maxlen=1000)   # what log_problem said
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._outage: Outage | None = None
        self.restarts = 0

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> FakeAzureML:
        """Listen on 127.0.0.1 in a daemon thread."""
        if self._server is not None:
            return self
        self._listen()
        # a client in this process sets these (environment(), environment_v2()); environment builds leave them out
        self.compute.client_settings = {self.base_url, self.tls_url, str(self.ca.ca_file)}
        for name, files in self._initial_datasets.items():
            self.add_dataset(name, files)
        return self

    def _listen(self) -> None:
        fake = self

        class Handler(_Handler):
            service = fake
            timeout = fake.request_timeout

        self._server = _Server(("127.0.0.1", self._port), Handler)
        self._port = int(self._server.server_address[1])  # a restart listens on the same port
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-azureml", daemon=True)
        self._thread.start()

    def _close(self) -> None:
        """Stop listening and drop every open connection (what clients see when the service goes away)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.drop_connections()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def stop(self) -> None:
        """Stop listening, cancel the pipelines still running and wait for them to stop (their step processes are
        killed: they run in process groups of their own, which a Ctrl-C of the service does not reach), remove a
        temporary state folder."""
        if self._outage is not None:
            self._outage._ended = True
        self._close()
        for run_id, state in list(self.engine.pipelines.items()):
            if state.thread is not None and state.thread.is_alive():
                self.engine.cancel(run_id)
        for state in list(self.engine.pipelines.values()):
            if state.thread is not None:
                state.thread.join(timeout=120)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- outages and restarts (test-side controls) --------------------------------------------------
    def outage(self, seconds: float | None = None, *, refuse: bool = False,
               clock: Callable[[], float] = time.monotonic, retry_after: int | None = 1) -> Outage:
        """Cut clients off from now on, for ``seconds`` on ``clock`` (None: until ``Outage.end()``).

        The run history, the registry and running pipelines carry on (Azure's compute does not stop when
        its front end is unreachable). Requests to the service's API are answered ``503 Service
        Unavailable`` (with ``Retry-After``, as Azure's front end does), or, with ``refuse``, the port stops
        listening and open connections are dropped: connections are refused or reset. Blob transfers
        through the service's storage tunnel go on in the 503 form (storage is another service).
        ``clock`` lets a test run the outage on the same clock as the client it injects it into.
        """
        if self._outage is not None and self._outage.active:
            raise RuntimeError("the fake Azure ML service is already cut off")
        self._outage = Outage(self, seconds, refuse=refuse, clock=clock, retry_after=retry_after)
        if refuse:
            self._close()
        self._outage.watch()
        return self._outage

    def restart(self, down_seconds: float = 0.0, *, clock: Callable[[], float] = time.monotonic) -> Outage | None:
        """Stop the service and start it again on the same port, its state kept (runs, registry, blobs).

        Open connections are dropped and requests in flight get no answer; pipelines that run go on. With
        ``down_seconds`` (on ``clock``) the port refuses connections that long before it listens again.
        """
        self.restarts += 1
        if down_seconds:
            return self.outage(down_seconds, refuse=True, clock=clock)
        self._close()
        self._listen()
        return None

    def __enter__(self) -> FakeAzureML:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if not self._port:  # bound once: the same port while an outage or a restart closes it
            raise RuntimeError("the fake Azure ML service is not started")
        return int(self._port)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        """The same port over TLS: the SDK v2 API (azure-core sends bearer tokens over https only)."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def workspace_name(self) -> str:
        # the default name carries the port: the SDK caches service endpoints per workspace in memory,
        # and a name reused across fakes would reach a stopped one
        return self._workspace_name or f"{WORKSPACE}-{self.port}"

    # -- what clients need -------------------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        """Environment variables a client process needs to reach this fake (and nothing else)."""
        return {**SDK_ENVIRONMENT, "AZUREML_DISCOVERY_SERVICE_ENDPOINT": self.base_url + "/discovery",
                "HTTPS_PROXY": self.base_url, "https_proxy": self.base_url,
                "REQUESTS_CA_BUNDLE": str(self.ca.ca_file)}

    def environment_v2(self) -> dict[str, str]:
        """Environment variables an SDK v2 client needs to reach this fake: its cloud, its CA, its blob proxy."""
        return {"HBI_WORKSPACE_JOB": "true", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                "ARM_CLOUD_METADATA_URL": f"{self.tls_url}/metadata/endpoints?api-version=2019-05-01",
                "AZUREML_CURRENT_CLOUD": self.api_v2.cloud_name(), "HTTPS_PROXY": self.base_url, "https_proxy": self.base_url,
                "REQUESTS_CA_BUNDLE": str(self.ca.ca_file), "AZURE_CORE_COLLECT_TELEMETRY": "false"}

    def ml_client(self) -> Any:
        """A real ``azure.ai.ml.MLClient`` for this fake (the process environment must hold :meth:`environment_v2`)."""
        from azure.ai.ml import MLClient

        from framework.backends.azure.sdk_v2.client import FakeServiceCredential

        return MLClient(FakeServiceCredential(TENANT, self.token, self.client_tokens), SUBSCRIPTION, RESOURCE_GROUP,
                        self.workspace_name)

    def workspace(self, name: str | None = None) -> Any:
        """A real ``azureml.core.Workspace`` whose every call goes to this fake.

        The process environment must hold :meth:`environment` (the fixture sets it).
        """
        from azureml.core import Workspace

        return Workspace(SUBSCRIPTION, RESOURCE_GROUP, name or self.workspace_name,
                         auth=fake_authentication(self.base_url, self.token), _disable_service_check=True,
                         _workspace_id=WORKSPACE_ID, _location=LOCATION)

    def config(self) -> dict[str, Any]:
        """A workspace ``config.json`` for this fake; amlstep recognises it by ``amlstep_fake_service``."""
        return {"subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP,
                "workspace_name": self.workspace_name,
                CONFIG_MARKER: {"endpoint": self.base_url, "token": self.token, "tokens": dict(self.client_tokens),
                                "workspace_id": WORKSPACE_ID,
                                "location": LOCATION, "tenant_id": TENANT, "ca_bundle": str(self.ca.ca_file),
                                "tls_endpoint": self.tls_url, "cloud": self.api_v2.cloud_name(),
                                "arm_cloud_metadata_url": f"{self.tls_url}/metadata/endpoints?api-version=2019-05-01"}}

    def _runtime_env(self, record: RunRecord) -> dict[str, str]:
        """What Azure's compute sets in a step's environment (read by ``Run.get_context()``)."""
        root = self.engine.runs.get(record.root_id or record.id)
        if root is not None and root.properties.get("amlstep.api") == "v2":
            return self._runtime_env_v2(record)
        token = self.tokens.issue(f"run:{record.id}", lifetime=24 * 3600)
        return {**SDK_ENVIRONMENT, **self.environment(),
                "AZUREML_RUN_ID": record.id, "AZUREML_ARM_SUBSCRIPTION": SUBSCRIPTION,
                "AZUREML_ARM_RESOURCEGROUP": RESOURCE_GROUP, "AZUREML_ARM_WORKSPACE_NAME": self.workspace_name,
                "AZUREML_ARM_PROJECT_NAME": record.experiment,
                "AZUREML_EXPERIMENT_ID": self.engine.experiment(record.experiment)["id"],
                "AZUREML_WORKSPACE_ID": WORKSPACE_ID, "AZUREML_RUN_TOKEN": token,
                "AZUREML_RUN_TOKEN_EXPIRY": str(int(time.time()) + 24 * 3600),
                "AZUREML_SERVICE_ENDPOINT": self.base_url, "AZUREML_ROOT_RUN_ID": record.root_id or record.id,
                "AZUREML_PARENT_RUN_ID": record.parent_id or "", "AZUREML_RUN_CONFIGURATION": "",
                "AZUREML_DATA_CONTAINER_ID": "dcid." + record.id}

    def step_ca_bundle(self) -> Path:
        """The certificate authorities a step trusts: the system's and the fake's (made once per service).

        A step's clients verify the fake's TLS endpoint through ``REQUESTS_CA_BUNDLE`` (requests) and
        ``SSL_CERT_FILE`` (Python's ssl module, OpenSSL): azureml-core's ``Run.get_context()`` in an SDK v2
        job fetches ``ARM_CLOUD_METADATA_URL`` with urllib, which ignores ``REQUESTS_CA_BUNDLE``. The system's
        authorities stay in the bundle, so what a step fetches from the internet still verifies.
        """
        import ssl

        bundle = self.root / "tls" / "step-ca-bundle.pem"
        if not bundle.is_file():
            paths = ssl.get_default_verify_paths()
            system = ""
            for candidate in (paths.cafile, paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt"):
                if candidate and Path(candidate).is_file():
                    system = Path(candidate).read_text()
                    break
            bundle.parent.mkdir(parents=True, exist_ok=True)
            bundle.write_text(system.rstrip() + "\n" + self.ca.ca_file.read_text())
        return bundle

    def _runtime_env_v2(self, record: RunRecord) -> dict[str, str]:
        """What Azure sets in an SDK v2 job's environment: the workspace, MLflow tracking, the job's tokens."""
        experiment = self.engine.experiment(record.experiment)
        token = self.tokens.issue(f"run:{record.id}", audience=AML_RESOURCE)
        bundle = str(self.step_ca_bundle())
        env = {**self.environment_v2(), "REQUESTS_CA_BUNDLE": bundle, "SSL_CERT_FILE": bundle,
               "AZUREML_RUN_ID": record.id, "AZUREML_ARM_SUBSCRIPTION": SUBSCRIPTION,
               "AZUREML_ARM_RESOURCEGROUP": RESOURCE_GROUP, "AZUREML_ARM_WORKSPACE_NAME": self.workspace_name,
               "AZUREML_ARM_PROJECT_NAME": record.experiment, "AZUREML_WORKSPACE_ID": WORKSPACE_ID,
               "AZUREML_EXPERIMENT_ID": experiment["id"],
               "AZUREML_ROOT_RUN_ID": record.root_id or record.id, "AZUREML_PARENT_RUN_ID": record.parent_id or "",
               "AZUREML_RUN_TOKEN": token, "AZUREML_SERVICE_ENDPOINT": self.tls_url,
               # set by Azure's execution service (azureml-core's service_discovery reads it before asking ARM)
               "AZUREML_DISCOVERY_SERVICE_ENDPOINT": f"{self.tls_url}/discovery",
               # as Azure sets it in a job, trailing "?" included (mlflow/mlflow#7806, microsoft/MLOps#74)
               "MLFLOW_TRACKING_URI": f"azureml://127.0.0.1:{self.port}/mlflow/v1.0{self.api_v2.ws_id}?",
               "MLFLOW_RUN_ID": record.id, "MLFLOW_EXPERIMENT_ID": experiment["id"],
               "MLFLOW_EXPERIMENT_NAME": record.experiment, "MLFLOW_TRACKING_TOKEN": token}
        if self.api_v2.identity(record) == "UserIdentity":
            env["OBO_ENDPOINT"] = self.api_v2.obo_endpoint(record.id)
        return env

    # -- state helpers -----------------------------------------------------------------------------
    def add_dataset(self, name: str, files: Sequence[str | Path]) -> Any:
        """Upload local CSV files to the default datastore and register them as tabular dataset ``name``."""
        stored = []
        for file in files:
            path = f"datasets/{name}/{Path(file).name}"
            self.blob.put_file(DATASTORE_CONTAINER, path, Path(file))
            stored.append(("workspaceblobstore", path))
        uris = [f"azureml://subscriptions/{SUBSCRIPTION}/resourcegroups/{RESOURCE_GROUP}/workspaces/"
                f"{self.workspace_name}/datastores/{d}/paths/{p}" for d, p in stored]
        return self.engine.register_dataset(name, tabular_dataflow(uris), files=stored)

    def register_urls(self, name: str, urls: list[str]) -> Any:
        """Register a tabular dataset reading ``urls`` (what a dataset from public URLs looks like)."""
        return self.engine.register_dataset(name, tabular_dataflow(urls), urls=list(urls))

    def wait(self, run_id: str | None = None, timeout: float = 600) -> str:
        """Wait for a pipeline run (the last submitted by default) to end; returns its status."""
        return self.engine.wait(run_id or self.last_pipeline_run(), timeout)

    @property
    def submissions(self) -> list[dict[str, Any]]:
        return self.api.submissions

    @property
    def raw_submissions(self) -> list[dict[str, Any]]:
        return self.api.raw_submissions

    @property
    def created_computes(self) -> list[dict[str, Any]]:
        return self.api.created_computes

    @property
    def routes(self) -> list[Any]:
        return self.api.routes

    def summary(self, index: int = -1) -> dict[str, Any]:
        """The stable summary of a recorded submission (the last by default)."""
        return self.submissions[index]

    def step_runs(self, run_id: str | None = None) -> dict[str, RunRecord]:
        """The step runs of a pipeline run (the last submitted by default), by step name."""
        return {r.name: r for r in self.engine.children(run_id or self.last_pipeline_run())}

    def last_pipeline_run(self) -> str:
        """The id of the pipeline run submitted last, through either API."""
        if not self.engine.pipelines:
            raise LookupError("no pipeline was submitted to the fake service")
        return list(self.engine.pipelines)[-1]

    def step_log(self, step_run: RunRecord) -> str:
        for name in ("azureml-logs/70_driver_log.txt", "azureml-logs/20_image_build_log.txt"):
            if name in step_run.files:
                return self.engine.read_file(step_run.id, name).decode("utf-8", "replace")
        return ""

    @property
    def models(self) -> dict[str, list[Any]]:
        return self.engine.models

    # -- request handling --------------------------------------------------------------------------
    def handle_service(self, method: str, path: str, query: str, headers: Mapping[str, str],
                       body: Any, tls: bool = False) -> tuple[int, Any, dict[str, str]]:
        parsed = parse_qs(query)
        try:
            handler = None
            # SDK v2 clients (TLS only); run history is shared with the SDK v1 API, and MLflow's tracking is one
            # API for both (a v1 workspace's get_mlflow_tracking_uri() in a step reaches it too)
            if tls or path.startswith("/mlflow/"):
                status, response, extra, handler = self.api_v2.dispatch(method, path, parsed, headers, body)
            if handler is None:
                status, response, extra, handler = self.api.dispatch(method, path, parsed, headers, body)
        except Exception as exc:  # report, never crash the server
            self.log_problem(f"{method} {path}: the fake service failed: {_described(exc)}")
            status, response, extra, handler = 500, {"error": {"code": "FakeServiceError", "message": repr(exc),
                                                               "details": []}}, {}, "error"
        if handler == "token_check":
            self.log_problem(f"{method} {path}: refused ({status}): {_message(response)}")
        with self._lock:
            if handler is None:
                self.unhandled.append(f"{method} {path}")
            self.requests.append({"method": method, "path": path, "query": query, "status": status,
                                  "handler": handler})
        return status, response, extra

    def handle_blob(self, method: str, path: str, query: str, headers: Mapping[str, str],
                    body: bytes) -> tuple[int, dict[str, str], bytes]:
        parsed = parse_qs(query, keep_blank_values=True)
        refused = self.tokens.blob_problem(parsed, headers)
        if refused is not None:
            self.log_problem(f"blob {method} {path}: refused ({refused[0]}): {refused[2]}")
            status, out_headers, data = blobstore.error_response(blobstore.BlobError(*refused))
        else:
            status, out_headers, data = blobstore.handle(self.blob, method, path, parsed, headers, body,
                                                         authorized=blobstore.is_authorized(parsed, headers))
        with self._lock:
            self.requests.append({"method": method, "path": "blob:" + path, "query": query, "status": status,
                                  "handler": "blob"})
        return status, out_headers, data

    def handle_public_blob(self, method: str, path: str, headers: Mapping[str, str]) -> tuple[int, dict[str, str],
                                                                                               bytes]:
        """``/blob/<account>/<container>/<name>``: read-only, for the data runtime of dataset definitions."""
        account, _, rest = path.removeprefix("/blob/").partition("/")
        if account != ACCOUNT or method not in ("GET", "HEAD"):
            return blobstore.error_response(blobstore.BlobError(404, "ResourceNotFound",
                                                                "The specified resource does not exist."))
        return blobstore.handle(self.blob, method, "/" + rest, {}, headers, b"", authorized=True)

    def log_problem(self, text: str) -> None:
        """One line on stderr about a request the service refused or could not finish (kept in :attr:`problems`)."""
        line = " ".join(text.split())
        self.problems.append(line)
        try:
            print(f"fake-azure: {line}", file=sys.stderr, flush=True)
        except (OSError, ValueError):
            pass


def private_folder(folder: Path) -> None:
    """Create ``folder`` readable by its owner only; refuse an existing one every user may write to.

    The service keeps code it runs there (snapshots, built environments): another user who could write
    into it could make it run theirs.
    """
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
        return
    mode = folder.stat().st_mode
    if stat.S_ISDIR(mode) and mode & stat.S_IWOTH:
        raise ValueError(f"the state folder {folder} may be written by every user (mode "
                              f"{stat.S_IMODE(mode):04o}); the fake service runs code it keeps there: give a "
                              f"folder only you may write to")


def tabular_dataflow(paths: list[str]) -> str:
    """The dataflow ``Dataset.Tabular.from_delimited_files(paths)`` registers (the rslex YAML form)."""
    listed = "\n".join(f"  - file: \"{p}\"" for p in paths) or "  - file: \"https://example.invalid/empty.csv\""
    return json.dumps({"blocks": [], "meta": {"RsDataflow": (
        f"---\ntype: mltable\npaths:\n{listed}\ntransformations:\n  - read_delimited:\n      path_column: Path\n"
        "      include_path_column: false\n      encoding: utf8\n      support_multi_line: false\n"
        "      delimiter: \",\"\n      header: all_files_same_headers\n      infer_column_types: true\n")}})


class Outage:
    """An outage of a fake service (:meth:`FakeAzureML.outage`): ``refused`` counts the requests it turned away."""

    def __init__(self, service: FakeAzureML, seconds: float | None, *, refuse: bool, clock: Callable[[], float],
                 retry_after: int | None) -> None:
        self.service, self.seconds, self.refuse, self.clock = service, seconds, refuse, clock
        self.retry_after = retry_after
        self.started = clock()
        self.refused = 0
        self._ended = False

    @property
    def active(self) -> bool:
        if self._ended:
            return False
        if self.seconds is not None and self.clock() - self.started >= self.seconds:
            self.end()
            return False
        return True

    def end(self) -> None:
        """Answer again (a refused port listens again)."""
        if self._ended:
            return
        self._ended = True
        if self.refuse and self.service._server is None:
            self.service._listen()

    def watch(self) -> None:
        """Ends the outage when its time is up, even when nobody asks (a refusing port must listen again)."""
        if self.seconds is None:
            return

        def wait() -> None:
            while self.active:
                time.sleep(0.02)

        threading.Thread(target=wait, name="fake-azureml-outage", daemon=True).start()

    def turn_away(self, handler: BaseHTTPRequestHandler) -> bool:
        """Whether ``handler``'s request is refused now (answered 503, or its connection dropped)."""
        if not self.active:
            return False
        with self.service._lock:
            self.refused += 1
        if self.refuse:
            handler.close_connection = True
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return True
        body = json.dumps({"error": {"code": "ServiceUnavailable", "message": "The service is temporarily "
                                     "unavailable. Please retry the request later.", "details": []}}).encode()
        handler.send_response(503)
        headers = {"Content-Type": "application/json; charset=utf-8", "Content-Length": str(len(body))}
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(body)
        return True


class _Refused(Exception):
    """A request the service refuses before any route sees it: its status and what to say."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class _ClientGone(Exception):
    """The client closed the connection in the middle of a request."""


# the code of a refusal by status: (the APIs' JSON shape, the blob store's)
_REFUSAL_CODES = {400: ("BadRequest", "InvalidInput"), 411: ("LengthRequired", "MissingContentLengthHeader"),
                  413: ("RequestEntityTooLarge", "RequestBodyTooLarge")}


def _described(exc: BaseException) -> str:
    """One line for an exception: what it is and where it was raised (file:line), never a traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _message(response: Any) -> str:
    error = response.get("error") if isinstance(response, dict) else None
    return str(error.get("message")) if isinstance(error, dict) else str(response)


def _is_loopback(name: str) -> bool:
    if name.rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.open_connections: set[Any] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self.open_connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self.open_connections.discard(request)

    def drop_connections(self) -> None:
        """Reset every connection still open (keep-alive connections of clients, tunnels)."""
        with self._connections_lock:
            found = list(self.open_connections)
        for request in found:
            try:
                request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def service(self) -> FakeAzureML:
        return self.RequestHandlerClass.service  # type: ignore[attr-defined, no-any-return]

    def finish_request(self, request: Any, client_address: Any) -> None:
        """One port, two protocols: a TLS ClientHello (first byte 0x16) gets TLS, anything else plain HTTP."""
        request.settimeout(self.service.request_timeout)  # the TLS handshake and the first byte too
        try:
            first = request.recv(1, socket.MSG_PEEK)
        except OSError:
            return
        handler: Any = self.RequestHandlerClass
        if first != b"\x16":
            handler(request, client_address, self)
            return
        try:
            tls = handler.service.ca.server_context().wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            if not isinstance(exc, (ConnectionError, TimeoutError)):
                self.service.log_problem(f"{_address(client_address)}: TLS handshake failed: "
                                         f"{getattr(exc, 'reason', None) or exc} (does the client trust the "
                                         f"fake service's certificate authority?)")
            return

        class TlsHandler(handler):  # type: ignore[misc, valid-type]
            tls = True

        # the TLS socket takes the connection over: the server's own close of ``request`` no longer reaches it
        with self._connections_lock:
            self.open_connections.add(tls)
        try:
            TlsHandler(tls, client_address, self)
        finally:
            with self._connections_lock:
                self.open_connections.discard(tls)
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line per connection that ended in an error (a client gone, a timeout, a bug): never a traceback."""
        exc = sys.exc_info()[1]
        who = _address(client_address)
        if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
            self.service.log_problem(f"{who}: the client closed the connection in the middle of a request "
                                     f"({type(exc).__name__})")
        elif isinstance(exc, TimeoutError):
            self.service.log_problem(f"{who}: the client read nothing for {self.service.request_timeout:g} s: "
                                     f"connection closed")
        elif isinstance(exc, ssl.SSLError):
            self.service.log_problem(f"{who}: TLS error: {exc.reason or exc}")
        elif exc is not None:
            self.service.log_problem(f"{who}: the fake service failed: {_described(exc)}")


def _address(client_address: Any) -> str:
    try:
        return f"{client_address[0]}:{client_address[1]}"
    except (TypeError, IndexError):
        return str(client_address)


class _Handler(BaseHTTPRequestHandler):
    service: FakeAzureML
    protocol_version = "HTTP/1.1"
    tls_host: str | None = None
    tls = False
    timeout = REQUEST_TIMEOUT  # the service's request_timeout (set per service)

    def log_message(self, *args: Any) -> None:
        pass

    def log_error(self, format: str, *args: Any) -> None:
        """What http.server says about a request it refused (a bad request line, too many headers...): one line."""
        text = format % args
        if text.startswith("Request timed out"):
            text = f"the client sent nothing for {self.timeout:g} s in the middle of a request: connection closed"
        self.service.log_problem(f"{_address(self.client_address)}: {text}")

    def handle_one_request(self) -> None:
        """As http.server's, but a keep-alive connection on which no request begins in time is closed quietly."""
        try:
            if not self.rfile.peek(1):  # type: ignore[attr-defined]  # a BufferedReader (rbufsize -1)
                self.close_connection = True
                return
        except OSError:  # timed out, reset, a TLS error
            self.close_connection = True
            return
        super().handle_one_request()

    # -- reading a request ------------------------------------------------------------------------------
    def _host_problem(self) -> str | None:
        """Why the ``Host`` header does not name this service (None when it does): loopback names, this port."""
        port = self.service.port
        expected = f"127.0.0.1:{port} or localhost:{port}"
        values = self.headers.get_all("Host") or []
        if len(values) != 1:
            return (f"the request has {'no' if not values else 'several'} Host header{'s' if values else ''}; the "
                    f"fake service answers requests for {expected}")
        value = values[0].strip()
        match = re.fullmatch(r"(\[[^\]]*\]|[^:\[\]]*)(?::([0-9]{1,5}))?", value)
        given_port = int(match.group(2)) if match and match.group(2) else (443 if self.tls else 80)
        if match is None or not _is_loopback(match.group(1).lower()) or given_port != port:
            return (f"the Host header {value!r} does not name this service: it answers requests for {expected} "
                    f"only (a web page that reaches 127.0.0.1 under another name is refused)")
        return None

    def _read_body(self, kind: str, method: str) -> bytes:
        """The request's body, framed by Content-Length or chunked; refuses what it cannot trust or hold."""
        limit = self.service.max_body
        encodings = self.headers.get_all("Transfer-Encoding") or []
        lengths = [v.strip() for value in self.headers.get_all("Content-Length") or [] for v in value.split(",")]
        if encodings:
            if lengths:
                raise _Refused(400, "the request has both Transfer-Encoding and Content-Length; send one of them")
            codings = [c.strip().lower() for value in encodings for c in value.split(",") if c.strip()]
            if codings != ["chunked"]:
                raise _Refused(400, f"Transfer-Encoding {', '.join(encodings)!r} is not supported; send "
                                    f"Content-Length or chunked")
            return self._read_chunked(limit)
        if lengths:
            if len(set(lengths)) != 1 or not re.fullmatch(r"[0-9]+", lengths[0]):
                raise _Refused(400, f"Content-Length {', '.join(self.headers.get_all('Content-Length') or [])!r} "
                                    f"is not a number of bytes")
            length = int(lengths[0])
            if length > limit:
                raise _Refused(413, f"the request body of {length} bytes is larger than the {limit} bytes the fake "
                                    f"service reads in one request (the SDKs upload larger files in blocks)")
            return self._read_exactly(length)
        if kind == "blob" and method in ("PUT", "POST"):  # Azure Storage requires the length of an upload
            raise _Refused(411, "The Content-Length header was not specified.")
        return b""

    def _read_exactly(self, length: int) -> bytes:
        parts, remaining = [], length
        while remaining:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                raise _ClientGone(f"the client closed the connection after {length - remaining} of the {length} "
                                  f"bytes of the request body")
            parts.append(chunk)
            remaining -= len(chunk)
        return b"".join(parts)

    def _read_chunked(self, limit: int) -> bytes:
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1026)
            if not line:
                raise _ClientGone("the client closed the connection in the middle of a chunked request body")
            if not line.endswith(b"\n"):
                raise _Refused(400, "malformed chunked body: a chunk-size line longer than 1024 bytes")
            size = line.split(b";", 1)[0].strip()
            if not re.fullmatch(rb"[0-9A-Fa-f]{1,16}", size):
                raise _Refused(400, f"malformed chunked body: chunk size {size[:20].decode('latin-1')!r} is not a "
                                    f"hexadecimal number")
            if int(size, 16) == 0:
                break
            total += int(size, 16)
            if total > limit:
                raise _Refused(413, f"the chunked request body is larger than the {limit} bytes the fake service "
                                    f"reads in one request (the SDKs upload larger files in blocks)")
            parts.append(self._read_exactly(int(size, 16)))
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise _Refused(400, "malformed chunked body: a chunk is longer than its size says")
        for _ in range(100):  # trailer fields, then the empty line
            line = self.rfile.readline(8194)
            if not line:
                raise _ClientGone("the client closed the connection in the middle of a chunked request body")
            if line in (b"\r\n", b"\n"):
                return b"".join(parts)
        raise _Refused(400, "malformed chunked body: more than 100 trailer lines")

    def _refuse(self, kind: str, method: str, status: int, message: str) -> None:
        """Answer ``status`` in the shape of what was asked (an API's JSON error, a blob store's XML), and close."""
        self.service.log_problem(f"{_address(self.client_address)}: {method} {self.path[:200]}: refused ({status}): "
                                 f"{message}")
        self.close_connection = True  # what follows on this connection cannot be trusted to be a request
        json_code, blob_code = _REFUSAL_CODES.get(status, ("BadRequest", "InvalidInput"))
        if kind in ("blob", "public"):
            status, headers, data = blobstore.error_response(blobstore.BlobError(status, blob_code, message))
            self._send(status, {**headers, "Connection": "close"}, data, method)
            return
        api = self.service.api_v2 if self.tls else self.service.api
        status, response = api.error(status, json_code, message)
        self._send(status, {"Content-Type": "application/json; charset=utf-8", "Connection": "close"},
                   json.dumps(response).encode(), method)

    def _send(self, status: int, headers: Mapping[str, str], data: bytes, method: str) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if method != "HEAD" and data:
            self.wfile.write(data)

    def _handle(self, method: str) -> None:
        url = urlparse(self.path)
        if self.tls_host in SCHEMA_HOSTS:  # no network here: answered at once, not left to the client's retries
            self._send(404, {"Content-Type": "text/plain"}, b"the fake Azure ML service has no copy of Microsoft's "
                       b"public schemas; the SDK skips its client-side check, as it does whenever this download "
                       b"fails\n", method)
            return
        # inside a CONNECT tunnel: the blob store (the tunnel's host was checked); else the service's own names only
        kind = "blob" if self.tls_host else "public" if url.path.startswith("/blob/") else "service"
        problem = None if self.tls_host else self._host_problem()
        try:
            if problem is not None:
                raise _Refused(400, problem)
            raw = self._read_body(kind, method)
        except _Refused as refused:
            self._refuse(kind, method, refused.status, refused.message)
            return
        except _ClientGone as gone:
            self.service.log_problem(f"{_address(self.client_address)}: {method} {self.path[:200]}: {gone}")
            self.close_connection = True
            return
        except TimeoutError:
            self.service.log_problem(f"{_address(self.client_address)}: {method} {self.path[:200]}: the client sent "
                                     f"nothing for {self.timeout:g} s in the middle of the request body: connection "
                                     f"closed")
            self.close_connection = True
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        outage = self.service._outage
        if outage is not None and (outage.refuse or kind != "blob") and outage.turn_away(self):
            return
        if kind == "blob":
            status, out, data = self.service.handle_blob(method, url.path, url.query, headers, raw)
            self._send(status, out, data, method)
            return
        if kind == "public":
            status, out, data = self.service.handle_public_blob(method, url.path, headers)
            self._send(status, out, data, method)
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")[:2000]
        status, response, extra = self.service.handle_service(method, url.path, url.query, headers, body, tls=self.tls)
        data = b"" if response is None else json.dumps(response).encode()
        self._send(status, {"Content-Type": "application/json; charset=utf-8", **extra}, data, method)

    def do_CONNECT(self) -> None:  # noqa: N802
        host = self.path.split(":")[0]
        outage = self.service._outage
        if outage is not None and outage.refuse and outage.turn_away(self):
            return
        if not host.endswith(BLOB_HOST_SUFFIX) and host not in SCHEMA_HOSTS:
            self._send(403, {"Content-Type": "text/plain"}, f"the fake Azure ML service tunnels only to "
                                                            f"*{BLOB_HOST_SUFFIX}, not {host}\n".encode(), "GET")
            self.close_connection = True
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        try:
            tls = self.service.ca.server_context().wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError):
            self.close_connection = True
            return

        class TunnelHandler(type(self)):  # type: ignore[misc]
            tls_host = host

        try:
            TunnelHandler(tls, self.client_address, self.server)
        except (ssl.SSLError, ConnectionError, socket.timeout, OSError):
            pass
        finally:
            try:
                tls.close()
            except OSError:
                pass
        self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")


def fake_authentication(base_url: str, token: str) -> Any:
    """An ``azureml`` authentication object that hands out ``token`` and sends ARM calls to ``base_url``."""
    from framework.backends.azure.endpoint import token_authentication

    return token_authentication(base_url, token, SUBSCRIPTION, TENANT)


def iter_routes(service: FakeAzureML) -> Iterator[str]:
    """The routes the fake serves, ``METHOD pattern`` (for the docs)."""
    for method, pattern, _ in service.routes:
        yield f"{method} {pattern.pattern}"


__all__ = ["FakeAzureML", "Outage", "fake_authentication", "summarize_submission", "iter_routes", "SDK_ENVIRONMENT",
           "CONFIG_MARKER"]
