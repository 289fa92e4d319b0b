"""An SDK v2 pipeline job into engine steps: nodes, bindings, data, commands, pipeline components.

What azure-ai-ml 1.35 sends for a pipeline job (``properties.jobs``, each node in the CLI v2 YAML
schema's form: ``componentId``, ``computeId``, ``inputs``/``outputs`` as ``job_input_type`` /
``job_output_type`` dicts or ``${{parent...}}`` bindings) is read here on the service's terms:

- **data inputs**: registered data assets (their ARM ids), datastore URIs
  (``azureml://datastores/<name>/paths/<path>``, the long form too, which is what a local folder
  becomes once the SDK has uploaded it: ``.../paths/LocalUpload/<hash>/<folder>``), the workspace's
  own blob URLs, public ``http(s)`` URLs (fetched when the step starts, as the job's data step
  does), upstream outputs; read as ``uri_file``, ``uri_folder``, ``mltable`` or a model type, in
  the mode asked (``ro_mount`` by default, ``download``, ``rw_mount``, ``direct``, ``eval_*``);
- **outputs** where the job says (a ``path`` on a datastore, with ``${{name}}`` and
  ``${{output_name}}``; else ``azureml/<run id>/<output name>`` on the default datastore), mounted
  read-write or uploaded when the step ends (``mode: upload``), bound to the pipeline's outputs;
- **commands** as Azure runs them: any command line, run by bash in the code snapshot, with
  ``${{inputs.X}}`` / ``${{outputs.Y}}`` replaced by values and paths and ``$[[...]]`` optional
  parts kept only when every input they name is given;
- **typed inputs** checked against the component's declaration (``integer``, ``number``,
  ``boolean``, ``enum``, ``min``/``max``) and refused as the service refuses them;
- **pipeline nodes** (``type: pipeline``, pipeline components, nested to any depth): their steps
  become engine steps of one group each (a run of its own, parent of its steps' runs), their inputs
  and outputs bound through, their compute given as an input or inherited.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import unquote, urlparse

from .blobstore import BLOB_HOST_SUFFIX
from .engine import InputBinding, OutputSpec, PipelineJob, StepGroup, StepJob, Token

if TYPE_CHECKING:
    from .v2 import V2Api

BINDING = re.compile(r"^\$\{\{\s*parent\.(inputs|jobs|outputs)\.([A-Za-z0-9_\-]+)(?:\.outputs\.([A-Za-z0-9_\-]+))?"
                     r"\s*\}\}$")
EMBEDDED_INPUT = re.compile(r"\$\{\{\s*parent\.inputs\.([A-Za-z0-9_\-]+)\s*\}\}")
PLACEHOLDER = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z0-9_\-]+)\s*\}\}")
OPTIONAL_PART = re.compile(r"\$\[\[(.*?)\]\]", re.DOTALL)
DATASTORE_URI = re.compile(r"^azureml://(?:subscriptions/[^/]+/resource[gG]roups/[^/]+/workspaces/[^/]+/)?"
                           r"datastores/(?P<ds>[^/]+)/paths/(?P<path>.*)$")
ARM_DATA = re.compile(r"^(?:azureml:)?/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
                      r"Microsoft.MachineLearningServices/workspaces/[^/]+/data/(?P<name>[^/]+)"
                      r"(?:/versions/(?P<version>[^/]+))?$", re.IGNORECASE)
DATA_TYPES = ("uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model")
# the REST spellings of input and output modes (InputDeliveryMode, OutputDeliveryMode) -> the engine's
MODES = {"readonlymount": "ro_mount", "readwritemount": "rw_mount", "download": "download", "upload": "upload",
         "direct": "direct", "evalmount": "eval_mount", "evaldownload": "eval_download"}
LITERAL_TYPES = {"integer": "Integer", "number": "Number", "boolean": "Boolean", "string": "String"}
DEFAULT_OUTPUT_PATH = "azureml/{run-id}/{output-name}"


def mode_of(value: Any, default: str) -> str:
    if not value:
        return default
    key = str(value).replace("_", "").replace("-", "").lower()
    return MODES.get(key, default)


def type_of(value: Any, default: str = "uri_folder") -> str:
    text = str(value or "").lower().replace("urifolder", "uri_folder").replace("urifile", "uri_file")
    return text if text in DATA_TYPES else default


def iso_seconds(value: Any) -> float | None:
    """Seconds of an ISO 8601 duration (``PT1H30M``) or a number of seconds; None when absent."""
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    found = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?", str(value).strip())
    if found is None:
        try:
            return float(value)
        except ValueError:
            return None
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in found.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


@dataclass
class Data:
    """A data input once its binding is followed: where it reads, as what, how."""

    kind: str = "uri_folder"
    mode: str | None = None
    dataset: tuple[str, int | None] | None = None
    producer: tuple[str, str] | None = None
    location: tuple[str, str] | None = None
    url: str | None = None


@dataclass
class Target:
    """Where an output goes, as far as the job says (None: the service's default)."""

    datastore: str | None = None
    path: str | None = None
    mode: str | None = None
    kind: str | None = None


def target_of(value: Mapping[str, Any]) -> Target:
    """An output's settings (``uri``, ``mode``, ``job_output_type``) as a Target."""
    uri = value.get("uri")
    datastore = path = None
    if uri:
        found = DATASTORE_URI.match(str(uri))
        if found is not None:
            datastore = found.group("ds")
            path = (unquote(found.group("path")).rstrip("/").replace("${{name}}", "{run-id}")
                    .replace("${{output_name}}", "{output-name}"))
    kind = value.get("job_output_type") or value.get("jobOutputType")
    mode = value.get("mode")
    return Target(datastore, path, mode_of(mode, "") or None if mode else None,
                  type_of(kind, "") or None if kind and kind != "literal" else None)


class Refusal(Exception):
    """A node the service refuses: (where, code, message); the API turns it into its error shape."""

    def __init__(self, where: str, code: str, message: str) -> None:
        super().__init__(message)
        self.where, self.code, self.message = where, code, message


class Scope:
    """One pipeline level (the job, or a pipeline node's component): its nodes, inputs and outputs."""

    def __init__(self, builder: Builder, where: str, prefix: str, group: str | None, nodes: Mapping[str, Any],
                 inputs: Mapping[str, tuple[str, Any]], outputs: Mapping[str, Target], default_compute: str | None,
                 is_root: bool = False) -> None:
        self.builder, self.where, self.prefix, self.group = builder, where, prefix, group
        self.nodes = dict(nodes)
        self.inputs = dict(inputs)                 # name -> ("literal", text) | ("data", Data) | ("absent", None)
        self.outputs = dict(outputs)               # name -> Target
        self.default_compute = default_compute
        self.is_root = is_root
        self.output_map: dict[str, tuple[str, str, str]] = {}   # output -> (leaf node id, port, kind)
        self.built: dict[str, Any] = {}            # node name -> StepJob | Scope (pipeline node)
        self.building: set[str] = set()

    # -- bindings --------------------------------------------------------------------------------------------
    def resolve(self, where: str, value: Any) -> tuple[str, Any]:
        """A node input's value: ("literal", text) | ("data", Data) | ("absent", None)."""
        if isinstance(value, dict):
            kind = value.get("job_input_type") or value.get("jobInputType")
            if kind in (None, "literal"):
                return self.resolve(where, value.get("value"))
            data = self.builder.data_of_uri(where, value.get("uri"), type_of(kind))
            data.mode = mode_of(value.get("mode"), "") or None
            return "data", data
        if isinstance(value, str):
            found = BINDING.match(value)
            if found is not None:
                return self.binding(where, *found.groups())
            if EMBEDDED_INPUT.search(value):
                def literal(match: re.Match[str]) -> str:
                    kind, text = self.binding(where, "inputs", match.group(1), None)
                    if kind != "literal":
                        raise Refusal(where, "InvalidValue", f"binds data input {match.group(1)!r} inside a text")
                    return str(text or "")
                return "literal", EMBEDDED_INPUT.sub(literal, value)
        if value is None:
            return "absent", None
        return "literal", str(value).lower() if isinstance(value, bool) else str(value)

    def binding(self, where: str, scope: str, key: str, port: str | None) -> tuple[str, Any]:
        if scope == "inputs":
            if key in self.inputs:
                return self.inputs[key]
            if self.is_root:
                raise Refusal(where, "InvalidValue", f"binds pipeline input {key!r}, which the job does not have")
            return "absent", None
        if scope == "jobs" and port is not None:
            node_id, out_port, kind = self.node_output(where, key, port)
            return "data", Data(kind=kind, producer=(node_id, out_port))
        raise Refusal(where, "InvalidValue", f"an input cannot bind the pipeline's outputs ({key!r})")

    def node_output(self, where: str, node: str, port: str) -> tuple[str, str, str]:
        """(leaf node id, port, type) of output ``port`` of sibling ``node`` (followed into pipeline nodes)."""
        if node not in self.nodes:
            raise Refusal(where, "InvalidValue", f"binds an output of job {node!r}, which this pipeline does not "
                                                 f"have; its jobs: {', '.join(self.nodes) or '(none)'}")
        built = self.build(node)
        if isinstance(built, Scope):
            if port not in built.output_map:
                raise Refusal(where, "InvalidValue", f"binds output {port!r} of pipeline job {node!r}, which no job "
                                                     f"inside it writes")
            return built.output_map[port]
        if port not in built.outputs:
            raise Refusal(where, "InvalidValue", f"binds output {port!r} of job {node!r}, which it does not have; its "
                                                 f"outputs: {', '.join(built.outputs) or '(none)'}")
        return built.node_id, port, built.outputs[port].kind

    def compute(self, where: str, node: Mapping[str, Any]) -> str | None:
        value = node.get("computeId") or node.get("compute")
        if isinstance(value, str) and BINDING.match(value):
            kind, text = self.resolve(f"{where}.compute", value)
            value = text if kind == "literal" else None
        return arm_name(value) or self.default_compute

    # -- nodes -----------------------------------------------------------------------------------------------
    def build_all(self) -> None:
        for name in self.nodes:
            self.build(name)

    def build(self, name: str) -> Any:
        if name in self.built:
            return self.built[name]
        where = f"{self.where}.{name}"
        if name in self.building:
            raise Refusal(where, "InvalidValue", "the pipeline's jobs bind each other's outputs in a cycle")
        self.building.add(name)
        node = self.nodes[name]
        if not isinstance(node, dict):
            raise Refusal(where, "InvalidType", "expected an object")
        kind = node.get("type")
        if kind == "pipeline":
            built: Any = self.builder.pipeline_node(self, name, node)
        elif kind == "command":
            built = self.builder.command_node(self, name, node)
        elif kind == "automl":
            built = self.builder.automl_node(self, name, node)
        else:
            raise Refusal(f"{where}.type", "InvalidValue", f"the fake service runs command, automl and pipeline "
                                                           f"jobs, got {kind!r}")
        self.built[name] = built
        self.building.discard(name)
        return built

    def bind_outputs(self, where: str, node_id: str, node: Mapping[str, Any], declared: Mapping[str, Any]
                     ) -> dict[str, Target]:
        """Each declared output's target; outputs bound to this pipeline's outputs are recorded there."""
        targets: dict[str, Target] = {}
        given = node.get("outputs") or {}
        for port in given:
            if port not in declared:
                raise Refusal(f"{where}.outputs.{port}", "InvalidValue", f"the component has no such output; its "
                                                                         f"outputs: {', '.join(declared) or '(none)'}")
        for port, spec in declared.items():
            value = given.get(port)
            declared_type = type_of((spec or {}).get("type") if isinstance(spec, dict) else None)
            declared_mode = mode_of((spec or {}).get("mode") if isinstance(spec, dict) else None, "") or None
            target = Target(kind=declared_type, mode=declared_mode)
            bound = value.get("value") if isinstance(value, dict) else value
            found = BINDING.match(bound) if isinstance(bound, str) else None
            if found is not None:
                if found.group(1) != "outputs":
                    raise Refusal(f"{where}.outputs.{port}", "InvalidValue", "an output binds only to the pipeline's "
                                                                             "outputs (${{parent.outputs.NAME}})")
                outer = self.outputs.get(found.group(2))
                if outer is None and self.is_root:
                    raise Refusal(f"{where}.outputs.{port}", "InvalidValue", f"binds pipeline output "
                                                                             f"{found.group(2)!r}, which the job does "
                                                                             f"not declare")
                outer = outer or Target()
                target = Target(outer.datastore, outer.path, outer.mode or declared_mode, declared_type)
                self.output_map[found.group(2)] = (node_id, port, declared_type)
            elif isinstance(value, dict):
                given_target = target_of(value)
                target = Target(given_target.datastore, given_target.path, given_target.mode or declared_mode,
                                given_target.kind or declared_type)
            targets[port] = target
        return targets


class Builder:
    """Turns one pipeline job's ``properties`` into the engine's :class:`PipelineJob`."""

    def __init__(self, api: V2Api, name: str, props: Mapping[str, Any]) -> None:
        self.api, self.name, self.props = api, name, props
        settings = props.get("settings") or {}
        self.force_rerun = bool(settings.get("force_rerun"))
        self.default_datastore = arm_name(settings.get("default_datastore") or settings.get("defaultDatastore")) \
            or "workspaceblobstore"
        self.steps: list[StepJob] = []
        self.groups: dict[str, StepGroup] = {}
        self.root: Scope | None = None
        self.unchecked: list[tuple[str, str | None]] = []

    def build(self) -> PipelineJob:
        props = self.props
        settings = props.get("settings") or {}
        nodes = props.get("jobs") or {}
        if not nodes:
            raise Refusal("properties.jobs", "RequiredField", "a pipeline job needs at least one job")
        inputs: dict[str, tuple[str, Any]] = {}
        for key, value in (props.get("inputs") or {}).items():
            if isinstance(value, dict) and (value.get("jobInputType") or value.get("job_input_type")) not in \
                    (None, "literal"):
                data = self.data_of_uri(f"properties.inputs.{key}", value.get("uri"),
                                        type_of(value.get("jobInputType") or value.get("job_input_type")),
                                        check=False)
                data.mode = mode_of(value.get("mode"), "") or None
                inputs[key] = ("data", data)
            else:
                raw = value.get("value") if isinstance(value, dict) else value
                inputs[key] = ("literal", "" if raw is None else str(raw))
        outputs = {key: target_of(value or {}) for key, value in (props.get("outputs") or {}).items()}
        default_compute = arm_name(settings.get("default_compute") or settings.get("defaultCompute"))
        self.root = Scope(self, "properties.jobs", "", None, nodes, inputs, outputs, default_compute, is_root=True)
        self.root.build_all()
        for name, version in self.unchecked:   # the pipeline's data assets exist (checked after the nodes' settings)
            self.api.asset("data", name, version)
        parameters = {k: text for k, (kind, text) in inputs.items() if kind == "literal"}
        return PipelineJob(experiment=props.get("experimentName") or "Default", steps=self.steps,
                           description=props.get("description"),
                           continue_on_step_failure=bool(settings.get("continue_on_step_failure")),
                           parameters=parameters, groups=self.groups)

    # -- data ------------------------------------------------------------------------------------------------
    def data_of_uri(self, where: str, uri: Any, kind: str, check: bool = True) -> Data:
        """What a data input's URI names; a data asset's existence is checked now, or with ``check=False`` once
        the pipeline's nodes are read (a node's refused settings are answered first, as the service does)."""
        text = str(uri or "")
        found = ARM_DATA.match(text)
        if found is not None:
            name, version = found.group("name"), found.group("version")
            if check:
                self.api.asset("data", name, version)
            else:
                self.unchecked.append((name, version))
            return Data(kind=kind, dataset=(name, int(version) if version and version.isdigit() else None))
        found = DATASTORE_URI.match(text)
        if found is not None:
            datastore = found.group("ds")
            if datastore not in self.api.containers():
                raise Refusal(where, "InvalidValue", f"{text}: datastore {datastore!r} does not exist in the "
                                                     f"workspace; its datastores: {', '.join(self.api.containers())}")
            return Data(kind=kind, location=(datastore, unquote(found.group("path")).rstrip("/")))
        parsed = urlparse(text)
        if parsed.scheme == "https" and parsed.netloc == f"{self.api.account}{BLOB_HOST_SUFFIX}":
            container, _, blob = parsed.path.lstrip("/").partition("/")
            datastore = next((d for d, c in self.api.containers().items() if c == container), None)
            if datastore is None:
                raise Refusal(where, "InvalidValue", f"{text}: container {container!r} is no datastore of the "
                                                     f"workspace")
            return Data(kind=kind, location=(datastore, unquote(blob).rstrip("/")))
        if parsed.scheme in ("http", "https") and parsed.netloc:
            return Data(kind=kind, url=text)
        raise Refusal(where, "InvalidValue", f"input {text!r} is neither a data asset, a datastore URI "
                                             f"(azureml://datastores/NAME/paths/PATH) nor an http(s) URL")

    def binding(self, port: str, data: Data, declared_type: str | None) -> InputBinding:
        dataset = None
        if data.dataset is not None:
            name, version = data.dataset
            dataset = (name, version or self.api.engine.dataset(name).version)
        kind = data.kind if data.producer is None else (declared_type or data.kind)
        return InputBinding(port=port, mode=data.mode or "ro_mount", dataset=dataset, producer=data.producer,
                            location=data.location, url=data.url, kind=kind)

    # -- nodes -----------------------------------------------------------------------------------------------
    def component(self, where: str, node: Mapping[str, Any], kind: str) -> dict[str, Any]:
        found = re.match(r"^(?:azureml:)?/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
                         r"Microsoft.MachineLearningServices/workspaces/[^/]+/components/(?P<name>[^/]+)"
                         r"/versions/(?P<version>[^/]+)$", str(node.get("componentId") or ""), re.IGNORECASE)
        if found is None:
            raise Refusal(f"{where}.componentId", "RequiredField", f"a {kind} job in a pipeline needs the ARM id of a "
                                                                   f"registered component")
        spec = dict(self.api.asset("components", found.group("name"), found.group("version"))["properties"]
                    .get("componentSpec") or {})
        if str(spec.get("type") or "command") != kind:
            raise Refusal(f"{where}.componentId", "InvalidValue", f"a {kind} job needs a {kind} component, got a "
                                                                  f"{spec.get('type')} component")
        return spec

    def literal_inputs(self, scope: Scope, where: str, node: Mapping[str, Any], declared: Mapping[str, Any]
                       ) -> tuple[dict[str, str], dict[str, Data]]:
        """The node's inputs as the component declares them: literals (checked) and data, defaults filled in."""
        literals: dict[str, str] = {}
        data: dict[str, Data] = {}
        for port, value in (node.get("inputs") or {}).items():
            if port not in declared:
                raise Refusal(f"{where}.inputs.{port}", "InvalidValue", f"the component has no such input; its "
                                                                        f"inputs: {', '.join(declared) or '(none)'}")
            kind, resolved = scope.resolve(f"{where}.inputs.{port}", value)
            if kind == "literal":
                literals[port] = resolved
            elif kind == "data":
                data[port] = resolved
        for port, spec in declared.items():
            spec = spec if isinstance(spec, dict) else {}
            if port not in literals and port not in data:
                if spec.get("default") is not None:
                    default = spec["default"]
                    literals[port] = str(default).lower() if isinstance(default, bool) else str(default)
                elif not spec.get("optional"):
                    raise Refusal(f"{where}.inputs.{port}", "RequiredField", f"required input {port!r} is not bound "
                                                                             f"and has no default")
            if port in literals:
                check_literal(f"{where}.inputs.{port}", port, literals[port], spec)
            elif port in data and str(spec.get("type") or "").lower() in LITERAL_TYPES:
                raise Refusal(f"{where}.inputs.{port}", "InvalidValue", f"input {port!r} is a "
                                                                        f"{spec.get('type')}, not data")
        return literals, data

    def command_node(self, scope: Scope, name: str, node: Mapping[str, Any]) -> StepJob:
        api = self.api
        where = f"{scope.where}.{name}"
        node_id = scope.prefix + name
        spec = self.component(where, node, "command")
        command = spec.get("command")
        if not isinstance(command, str) or not command.strip():
            raise Refusal(f"{where}.componentId", "RequiredField", "the component has no command")
        declared_inputs = dict(spec.get("inputs") or {})
        declared_outputs = dict(spec.get("outputs") or {})
        literals, data = self.literal_inputs(scope, where, node, declared_inputs)
        bindings = {port: self.binding(port, d, type_of((declared_inputs[port] or {}).get("type"), d.kind)
                                       if isinstance(declared_inputs[port], dict) else None)
                    for port, d in data.items()}
        outputs = {}
        for port, target in scope.bind_outputs(where, node_id, node, declared_outputs).items():
            outputs[port] = OutputSpec(port=port, datastore=target.datastore or self.default_datastore,
                                       path=target.path or DEFAULT_OUTPUT_PATH, mode=target.mode or "rw_mount",
                                       kind=target.kind or "uri_folder")
        shell = command_tokens(f"{where}.componentId", command, literals, bindings, outputs)
        environment, env_id = api._environment(where, spec.get("environment"))
        code_id = spec.get("code")
        snapshot = api._snapshot(where, code_id) if code_id else api.empty_snapshot()
        variables = {**(spec.get("environment_variables") or {}), **(node.get("environment_variables") or {}),
                     **(node.get("environmentVariables") or {})}
        identity = node.get("identity") or {}
        identity_type = identity.get("identity_type") or identity.get("identityType") or "AMLToken"
        limits = node.get("limits") or {}
        compute = scope.compute(where, node)
        if not compute:
            raise Refusal(f"{where}.compute", "RequiredField", "no compute for this job and no "
                                                               "settings.default_compute")
        fingerprint = hashlib.sha256(json.dumps({"command": command, "environment": env_id, "code": snapshot,
                                                 "literals": literals, "variables": variables,
                                                 "outputs": {p: [o.mode, o.kind] for p, o in outputs.items()}},
                                                sort_keys=True, default=str).encode()).hexdigest()
        step = StepJob(node_id=node_id, name=node.get("display_name") or name, kind="command", compute=compute,
                       allow_reuse=bool(spec.get("is_deterministic", True)) and not self.force_rerun,
                       identity=fingerprint, inputs=bindings, outputs=outputs, snapshot_id=snapshot, script=None,
                       environment=environment, shell=shell, group=scope.group,
                       env={k: [Token("literal", str(v))] for k, v in variables.items()},
                       max_seconds=iso_seconds(limits.get("timeout")))
        step.v2 = {"type": "command", "display_name": step.name, "command": command,  # type: ignore[attr-defined]
                   "environment_id": env_id, "code_id": str(code_id or "").removeprefix("azureml:") or None,
                   "identity": identity_type, "output_types": {p: o.kind for p, o in outputs.items()},
                   "node": name}
        self.steps.append(step)
        return step

    def automl_node(self, scope: Scope, name: str, node: Mapping[str, Any]) -> StepJob:
        where = f"{scope.where}.{name}"
        compute = scope.compute(where, node)
        if not compute:
            raise Refusal(f"{where}.compute", "RequiredField", "no compute for this job and no "
                                                               "settings.default_compute")
        step = self.api._automl_step(self.name, name, node, scope, compute, self.force_rerun)
        step.node_id = scope.prefix + name
        step.group = scope.group
        targets = scope.bind_outputs(where, step.node_id, node, {port: {"type": "mlflow_model"}
                                                                 for port in step.outputs})
        for port, target in targets.items():
            spec = step.outputs[port]
            spec.datastore = target.datastore or self.default_datastore
            spec.path = target.path or DEFAULT_OUTPUT_PATH
            spec.kind = "mlflow_model"
        step.v2["node"] = name  # type: ignore[attr-defined]
        self.steps.append(step)
        return step

    def pipeline_node(self, scope: Scope, name: str, node: Mapping[str, Any]) -> Scope:
        where = f"{scope.where}.{name}"
        spec = self.component(where, node, "pipeline")
        declared_inputs = dict(spec.get("inputs") or {})
        declared_outputs = dict(spec.get("outputs") or {})
        literals, data = self.literal_inputs(scope, where, node, declared_inputs)
        inputs: dict[str, tuple[str, Any]] = {**{k: ("literal", v) for k, v in literals.items()},
                                              **{k: ("data", v) for k, v in data.items()}}
        group_id = scope.prefix + name
        targets = scope.bind_outputs(where, group_id, node, declared_outputs)
        group = StepGroup(node_id=group_id, name=node.get("display_name") or name, group=scope.group)
        group.v2 = {"type": "pipeline", "display_name": group.name, "node": name,  # type: ignore[attr-defined]
                    "output_types": {p: t.kind or "uri_folder" for p, t in targets.items()}}
        self.groups[group_id] = group
        inner = Scope(self, f"{where}.jobs", group_id + "/", group_id, spec.get("jobs") or {}, inputs, targets,
                      scope.compute(where, node))
        inner.build_all()
        for port, (leaf, leaf_port, _) in inner.output_map.items():
            group.outputs[port] = (leaf, leaf_port)
        # this pipeline's outputs bound to the node's outputs are written by the steps inside it
        for outer, (bound_node, bound_port, _) in list(scope.output_map.items()):
            if bound_node == group_id and bound_port in inner.output_map:
                scope.output_map[outer] = inner.output_map[bound_port]
        return inner


def check_literal(where: str, port: str, value: str, spec: Mapping[str, Any]) -> None:
    """Refuse a literal the component's declaration refuses (type, enum, min, max), as the service does."""
    kind = str(spec.get("type") or "string").lower()
    type_name = LITERAL_TYPES.get(kind)
    if type_name is None:   # a data type given as text: a path or URI, read when the step runs
        return
    number: float | None = None
    try:
        if kind == "integer":
            number = int(value.strip())
        elif kind == "number":
            number = float(value.strip())
        elif kind == "boolean" and value.strip().lower() not in ("true", "false"):
            raise ValueError(value)
    except ValueError:
        raise Refusal(where, "InvalidValue", f"The value {value!r} of input {port!r} is not a valid {type_name}; "
                                             f"the component declares {port!r} as type {kind!r}") from None
    enum = spec.get("enum")
    if enum and value not in [str(e) for e in enum]:
        raise Refusal(where, "InvalidValue", f"The value {value!r} of input {port!r} is not one of its allowed "
                                             f"values: {', '.join(str(e) for e in enum)}")
    for bound, wrong in (("min", lambda n, b: n < b), ("max", lambda n, b: n > b)):
        if number is not None and spec.get(bound) not in (None, ""):
            limit = float(spec[bound])
            if wrong(number, limit):
                raise Refusal(where, "InvalidValue", f"The value {value!r} of input {port!r} is "
                                                     f"{'less' if bound == 'min' else 'greater'} than its {bound} "
                                                     f"{spec[bound]}")


def command_tokens(where: str, command: str, literals: Mapping[str, str], bindings: Mapping[str, InputBinding],
                   outputs: Mapping[str, OutputSpec]) -> list[Token]:
    """The command line with ``${{inputs.X}}``/``${{outputs.Y}}`` replaced as Azure does, as tokens the engine
    fills in with paths; ``$[[...]]`` parts kept only when every input they name is given."""
    def given(found: re.Match[str]) -> bool:
        scope, port = found.groups()
        return scope == "outputs" or port in literals or port in bindings

    def optional(found: re.Match[str]) -> str:
        inner = found.group(1)
        return inner if all(given(m) for m in PLACEHOLDER.finditer(inner)) else ""

    text = OPTIONAL_PART.sub(optional, command)
    tokens: list[Token] = []
    position = 0
    for found in PLACEHOLDER.finditer(text):
        tokens.append(Token("literal", text[position:found.start()]))
        scope, port = found.groups()
        if scope == "inputs" and port in literals:
            tokens.append(Token("literal", literals[port]))
        elif scope == "inputs" and port in bindings:
            tokens.append(Token("input_path", port))
        elif scope == "outputs" and port in outputs:
            tokens.append(Token("output_path", port))
        elif scope == "inputs":
            raise Refusal(where, "InvalidValue", f"the command names inputs.{port}, which is optional and not given: "
                                                 f"put it in an optional part, $[[... ${{{{inputs.{port}}}}} ...]]")
        else:
            raise Refusal(where, "InvalidValue", f"the command names {scope}.{port}, which the component does not "
                                                 f"declare")
        position = found.end()
    tokens.append(Token("literal", text[position:]))
    return [t for t in tokens if t.kind != "literal" or t.value]


def arm_name(value: Any) -> str | None:
    """The asset name an ARM id or ``azureml:`` reference ends with (None for an empty value)."""
    if not value:
        return None
    text = str(value)
    if text.startswith("azureml:"):
        text = text[len("azureml:"):]
    return text.rstrip("/").rsplit("/", 1)[-1]
