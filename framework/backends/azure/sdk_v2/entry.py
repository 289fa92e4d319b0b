"""What runs on the cluster under SDK v2: a plugin step inside a ``command`` job, with an MLflow run context.

The command a v2 component runs is the same entry script as under SDK v1, with ``--amlstep-sdk v2``:

    python amlstep_entry.py --amlstep-sdk v2 --amlstep-step NAME --amlstep-plugin PLUGIN --amlstep-code HASH
        [--param NAME VALUE]... [--input PORT PATH]... [--output PORT PATH]...

Azure mounts each input at PATH: an ``mltable`` input is a folder with an ``MLTable`` file (read
into a DataFrame for tabular ports), an ``mlflow_model`` a model folder (handed over as its
``Path``), other folders as under SDK v1. After the step, each tabular output gets an ``MLTable``
file beside its CSV, so AutoML and other ``mltable`` consumers can read it.

The run context speaks SDK v2's services, the way v2 jobs do:

- metrics go through **MLflow** to the job's run (``MLFLOW_TRACKING_URI``/``MLFLOW_RUN_ID``, which
  Azure sets in every job). Azure's tracking URI is ``azureml://<host>/mlflow/v1.0/...``, which
  needs the ``azureml-mlflow`` plugin; without it the URI is used as ``https://<host>/<path>`` (its trailing
  ``?`` dropped) with the job's token (``MLFLOW_TRACKING_TOKEN``), which is what the plugin does;
- ``context.register_model`` registers in the workspace with ``MLClient.models.create_or_update``
  (an ``mlflow_model`` when the folder holds an ``MLmodel`` file, else a ``custom_model``),
  authenticated as the user who submitted the job (``AzureMLOnBehalfOfCredential``: the compiler
  gives command nodes the user's identity), or with the compute's managed identity.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ....context import RunContext
from ....errors import StepExecutionError
from ....execution import execute_step, load_inputs
from ....manager import get_plugin_manager
from ....steps import DataType
from .. import entry, mltable
from ..follower import registered_key

AZUREML_SCHEME = "azureml://"


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    return entry.parse_arguments(argv, sdk="v2", ports=("param", "input", "output"), description=__doc__.splitlines()[0])


def tracking_uri(environ: Mapping[str, str] | None = None) -> str | None:
    """The MLflow tracking URI of the job, usable by plain mlflow (``azureml://`` -> ``https://``).

    Azure sets ``azureml://<region>.api.azureml.ms/mlflow/v1.0/subscriptions/<sub>/resourceGroups/<rg>/providers/
    Microsoft.MachineLearningServices/workspaces/<ws>?`` in a job, with a trailing ``?`` (mlflow/mlflow#7806). The
    ``azureml-mlflow`` plugin reads it as a URL (``urlparse``: the host, and the workspace from the path; a query
    holds only deprecated auth parameters) and sends ``MLFLOW_TRACKING_TOKEN`` as the bearer token; without the
    plugin amlstep does the same: ``https://<host><path>``, query and fragment dropped, so that plain mlflow's
    ``/api/2.0/mlflow/...`` lands after the workspace path, not in a query string.
    """
    from urllib.parse import urlsplit

    environ = os.environ if environ is None else environ
    uri = environ.get("MLFLOW_TRACKING_URI")
    if not uri or not uri.startswith(AZUREML_SCHEME):
        return uri
    try:
        import azureml.mlflow  # noqa: F401  # the plugin understands azureml:// itself

        return uri
    except ImportError:
        parts = urlsplit(uri)
        return f"https://{parts.netloc}{parts.path.rstrip('/')}"


@dataclass(frozen=True)
class RegisteredModelV2:
    """A model version registered through ``MLClient`` (``version`` as a number, like SDK v1's)."""

    name: str
    version: int
    id: str
    type: str


class MlflowRunContext(RunContext):
    """The run context of a step in an SDK v2 job: MLflow for metrics, ``MLClient`` for the registry."""

    backend = "azure"

    def __init__(self, *, step_name: str, params: Mapping[str, Any], output_dirs: Mapping[str, Path],
                 input_datasets: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
                 ml_client: Any = None) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        run_id = self.environ.get("MLFLOW_RUN_ID") or self.environ.get("AZUREML_RUN_ID") or "offline"
        super().__init__(run_id=run_id, step_name=step_name,
                         experiment_name=self.environ.get("AZUREML_ARM_PROJECT_NAME", "offline"),
                         pipeline_run_id=self.environ.get("AZUREML_ROOT_RUN_ID"), params=params,
                         input_datasets=input_datasets, output_dirs=output_dirs)
        self._ml_client = ml_client
        self._client: Any = None
        self._steps: dict[str, int] = {}

    # -- MLflow -----------------------------------------------------------------------------
    def mlflow(self) -> Any:
        """An ``MlflowClient`` for the job's tracking server."""
        if self._client is None:
            try:
                from mlflow.tracking import MlflowClient
            except ImportError as exc:
                raise StepExecutionError(f"step {self.step_name!r}: logging metrics under SDK v2 needs mlflow "
                                         f"(mlflow-skinny) in the step's environment", step=self.step_name) from exc
            uri = tracking_uri(self.environ)
            if not uri:
                raise StepExecutionError(f"step {self.step_name!r}: MLFLOW_TRACKING_URI is not set; SDK v2 jobs get "
                                         f"it from Azure ML", step=self.step_name)
            self._client = MlflowClient(tracking_uri=uri)
        return self._client

    def _next_step(self, name: str) -> int:
        step = self._steps.get(name, 0)
        self._steps[name] = step + 1
        return step

    def log(self, name: str, value: Any, description: str = "") -> None:
        """Numbers become MLflow metrics (a name logged again gets the next step); other values tags."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    self.mlflow().set_tag(self.id, name, value)
                    return
            else:
                self.mlflow().set_tag(self.id, name, str(value))
                return
        self.mlflow().log_metric(self.id, name, float(value), step=self._next_step(name))

    def log_row(self, name: str, description: str = "", **values: Any) -> None:
        for column, value in values.items():
            self.log(f"{name}.{column}", value, description)

    def log_table(self, name: str, value: dict[str, list[Any]], description: str = "") -> None:
        for column, items in value.items():
            self.log_list(f"{name}.{column}", list(items), description)

    def get_metrics(self) -> dict[str, Any]:
        return dict(self.mlflow().get_run(self.id).data.metrics)

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        for key, value in properties.items():
            self.mlflow().set_tag(self.id, key, str(value))

    # -- the workspace's model registry -------------------------------------------------------
    def ml_client(self) -> Any:
        if self._ml_client is None:
            from azure.ai.ml import MLClient

            env = self.environ
            missing = [k for k in ("AZUREML_ARM_SUBSCRIPTION", "AZUREML_ARM_RESOURCEGROUP", "AZUREML_ARM_WORKSPACE_NAME")
                       if not env.get(k)]
            if missing:
                raise StepExecutionError(f"step {self.step_name!r}: cannot reach the workspace's registry: "
                                         f"{', '.join(missing)} not set (Azure ML sets them in every job)",
                                         step=self.step_name)
            self._ml_client = MLClient(job_credential(env), env["AZUREML_ARM_SUBSCRIPTION"],
                                       env["AZUREML_ARM_RESOURCEGROUP"], env["AZUREML_ARM_WORKSPACE_NAME"])
        return self._ml_client

    def register_model(self, model_name: str, model_path: str | Path, *, description: str = "",
                       tags: Mapping[str, Any] | None = None,
                       properties: Mapping[str, Any] | None = None) -> RegisteredModelV2:
        from azure.ai.ml.entities import Model

        path = Path(model_path)
        kind = "mlflow_model" if (path / "MLmodel").is_file() else "custom_model"
        model = Model(path=str(path), name=model_name, type=kind, description=description or None,
                      tags={k: str(v) for k, v in (tags or {}).items()} or None,
                      properties={**{k: str(v) for k, v in (properties or {}).items()},
                                  "azureml.sourceRunId": self.id} if self.id != "offline" else None)
        registered = self.ml_client().models.create_or_update(model)
        version = int(registered.version) if str(registered.version).isdigit() else registered.version
        try:  # the job says what it registered: amlstep reads it back (``predict azure:NAME:VERSION``)
            self.mlflow().set_tag(self.id, registered_key(registered.name, version), f"{registered.name}:{version}")
        except Exception as exc:
            print(f"amlstep: could not note model {registered.name}:{version} on the job: {exc}")
        return RegisteredModelV2(name=registered.name, version=version, id=registered.id, type=kind)

    def child_run(self, name: str, *, run_id: str | None = None,
                  properties: Mapping[str, Any] | None = None) -> Any:
        client = self.mlflow()
        parent = client.get_run(self.id)
        tags = {"mlflow.parentRunId": self.id, "mlflow.runName": name,
                **{k: str(v) for k, v in (properties or {}).items()}}
        return _MlflowChild(client, client.create_run(parent.info.experiment_id, tags=tags))


class _MlflowChild:
    def __init__(self, client: Any, run: Any) -> None:
        self.client, self.id = client, run.info.run_id

    def log(self, name: str, value: Any, description: str = "") -> None:
        self.client.log_metric(self.id, name, float(value))

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        for name, value in metrics.items():
            self.log(name, value)

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        for key, value in properties.items():
            self.client.set_tag(self.id, key, str(value))

    def complete(self) -> None:
        self.client.set_terminated(self.id, "FINISHED")

    def fail(self, error: str, status: str = "Failed") -> None:
        self.client.set_tag(self.id, "error", error)
        self.client.set_terminated(self.id, "KILLED" if status == "Canceled" else "FAILED")


def job_credential(environ: Mapping[str, str]) -> Any:
    """The credential a job uses to call the workspace: the submitting user's (OBO), else the compute's identity."""
    if environ.get("OBO_ENDPOINT"):
        from azure.ai.ml.identity import AzureMLOnBehalfOfCredential

        return AzureMLOnBehalfOfCredential()
    from azure.identity import ManagedIdentityCredential

    client_id = environ.get("DEFAULT_IDENTITY_CLIENT_ID")
    return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()


def input_locations(spec: Any, inputs: Sequence[tuple[str, str]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(locations for ``load_inputs``, values handed over as they are) from ``--input PORT PATH`` pairs."""
    locations: dict[str, Any] = {}
    direct: dict[str, Any] = {}
    for port, text in inputs:
        path = Path(text)
        declared = spec.input(port)
        if declared is not None and declared.type is DataType.TABULAR and path.is_dir() and mltable.is_mltable(path):
            direct[port] = mltable.read(path, f"input {port!r}")
        elif declared is not None and declared.type is DataType.MODEL and (path / "MLmodel").is_file():
            direct[port] = path  # an MLflow model is a folder: the step gets the folder
        else:
            locations[port] = path
    return locations, direct


def run_step(args: argparse.Namespace, *, plugins: Any = None, environ: Mapping[str, str] | None = None,
             ml_client: Any = None) -> None:
    """Run the step the arguments name; raise StepExecutionError naming it on failure."""
    plugins = plugins or get_plugin_manager()
    spec = plugins.step(args.plugin, f"step {args.step!r}")
    entry.check_code(args, spec, plugins)  # the shipped wheel must hold the code the job was compiled from
    params = entry.step_params(spec, dict(args.param), args.step)
    locations, direct = input_locations(spec, args.input)
    inputs = load_inputs(spec, args.step, locations)
    inputs.update(direct)
    output_dirs = entry.output_folders(args.output)
    context = MlflowRunContext(step_name=args.step, params=params, output_dirs=output_dirs,
                               input_datasets={**locations, **{k: Path(v) for k, v in args.input if k in direct}},
                               environ=environ, ml_client=ml_client)
    execute_step(spec, args.step, inputs, params, context, output_dirs)
    for port, folder in output_dirs.items():
        declared = spec.output(port)
        if declared is not None and declared.type is DataType.TABULAR and not mltable.is_mltable(folder):
            mltable.write(folder)


def main(argv: Sequence[str] | None = None, *, plugins: Any = None) -> None:
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    print(f"amlstep: step {args.step!r}, plugin {args.plugin!r}, code {args.code} (SDK v2)", flush=True)
    run_step(args, plugins=plugins)
