"""Environments as Azure ML's image build reads them: conda files, pip lines, base images, curated environments.

An API hands the engine an :class:`~.engine.EnvironmentSpec`; this module makes one from what each API
carries (SDK v1: the run configuration's ``environment`` with its ``python.condaDependencies`` and
``docker.baseImage``; SDK v2: an environment version's ``condaFile`` and ``image``, or a reference to a
curated environment), with what the fake knows about Azure's side of it (:mod:`.image_build`):

- **curated environments** of the ``azureml`` registry (``azureml://registries/azureml/environments/
  sklearn-1.5/labels/latest``, or the workspace short name ``azureml:AzureML-sklearn-1.5@latest``): their
  definitions (image, Python, conda and pip packages) in ``data/curated_environments.json``, derived from
  Microsoft's Azure/azureml-assets repository (the commit and paths are in the file);
- **base images**: ``mcr.microsoft.com/azureml/...`` images Microsoft has published (the release notes of
  Azure/AzureML-Containers, same file); an image in that namespace that is not among them does not exist,
  and the image build fails as ``docker pull`` does. Images of other registries cannot be checked offline;
  ``python:<version>`` images (Docker Hub's official Python image) give the environment's Python;
- **conda packages** read as the pip distributions of the same name (the few whose PyPI name differs are
  mapped), since the fake builds with pip; conda's own tooling (``pip``, ``setuptools``) and packages
  that are not Python distributions are left out, with a note.

What the fake cannot honour is never silently ignored: :func:`conda_to_pip` and friends return notes that
the build writes in the step's log.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from .engine import EnvironmentSpec, ServiceError
from .image_build import (MCR_AZUREML, MINIMUM_PYTHON, ImageMissing, check_image, conda_to_pip,  # noqa: F401
                          python_version, source_note, split_image, table)

REGISTRY_REFERENCE = re.compile(r"^azureml://registries/(?P<registry>[^/]+)/environments/(?P<name>[^/]+)"
                                r"(?:/(?P<how>versions|labels)/(?P<which>[^/]+))?/?$", re.IGNORECASE)
WORKSPACE_CURATED = re.compile(r"^(?:azureml:)?(?P<name>AzureML-[^:@/]+)(?::(?P<version>[^@/:]+)|@(?P<label>[^/@]+))?$",
                               re.IGNORECASE)


# -- curated environments ------------------------------------------------------------------------
def curated_reference(reference: Any) -> tuple[str, str | None, str | None] | None:
    """``(name in the registry, version, label)`` when ``reference`` names an ``azureml`` registry environment
    (a registry URI, or a workspace short name ``AzureML-<name>``); None for anything else."""
    text = str(reference or "").strip()
    found = REGISTRY_REFERENCE.match(text)
    if found:
        if found.group("registry").lower() != "azureml":
            raise ServiceError(404, "UserError", f"Registry {found.group('registry')!r} was not found; the fake "
                                                 f"service holds the azureml registry only")
        how, which = found.group("how"), found.group("which")
        return (found.group("name"), which if how and how.lower() == "versions" else None,
                which if how and how.lower() == "labels" else None)
    found = WORKSPACE_CURATED.match(text)
    if found:
        return found.group("name")[len("AzureML-"):], found.group("version"), found.group("label")
    return None


def curated_environment(reference: Any) -> EnvironmentSpec | None:
    """The curated environment ``reference`` names, or None when it names none; refused (404, as Azure answers
    for an environment that does not exist) when it names one the registry does not hold."""
    parsed = curated_reference(reference)
    if parsed is None:
        return None
    name, version, label = parsed
    known = {e["name"].lower(): e for e in table()["environments"]}
    entry = known.get(name.lower())
    published = {i["name"][len(MCR_AZUREML + "curated/"):].lower(): i["name"] for i in table()["base_images"]
                 if i["name"].startswith(MCR_AZUREML + "curated/")}
    if entry is None and name.lower() in published:   # in azureml-assets, but not among the table's definitions
        curated_name = published[name.lower()].rsplit("/", 1)[-1]
        return EnvironmentSpec(name=f"AzureML-{curated_name}", python=None, pip=[], image=published[name.lower()],
                               curated=curated_name,
                               notes=[f"curated environment {curated_name} ({source_note()}): its definition is not "
                                      f"in the fake's table; the fake's own packages stand in for its image"])
    if entry is None:
        from framework.errors import did_you_mean

        raise ServiceError(404, "UserError", f"Environment {name!r} was not found in registry azureml "
                                             f"(asked as {str(reference)!r})"
                                             f"{did_you_mean(name, [e['name'] for e in table()['environments']])}; "
                                             f"the curated environments the fake service knows: "
                                             f"{', '.join(e['name'] for e in table()['environments'])}")
    notes = [f"curated environment {entry['name']} ({entry['path']} in {source_note()}): image {entry['image']}, "
             f"Python {entry['python']}; Azure runs it as a prebuilt image"]
    if label and label.lower() != "latest" or version:
        asked = f"label {label!r}" if label else f"version {version!r}"
        notes.append(f"{asked} of curated environment {entry['name']} read as the definition above (the fake "
                     f"knows one definition of each curated environment)")
    if entry.get("gpu"):
        notes.append(f"curated environment {entry['name']} is a GPU image; the fake runs on this machine's CPU")
    return EnvironmentSpec(name=f"AzureML-{entry['name']}", python=entry.get("python"), pip=list(entry["pip"]),
                           conda=list(entry["conda"]), image=entry.get("image"), curated=entry["name"], notes=notes)


# -- base images ---------------------------------------------------------------------------------
def dockerfile_image(dockerfile: str) -> str | None:
    """The image the last stage of a Dockerfile is built ``FROM`` (None when it has no FROM line)."""
    image = None
    for line in dockerfile.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].upper() == "FROM":
            image = next((w for w in words[1:] if not w.startswith("--")), None)
    return image


# -- conda files ---------------------------------------------------------------------------------
def read_conda(doc: Any) -> tuple[str | None, list[str], list[str], list[str]]:
    """``(python, conda packages, pip lines, channels)`` of a conda specification (a mapping or YAML text)."""
    if isinstance(doc, str):
        import yaml  # type: ignore[import-untyped]

        try:
            doc = yaml.safe_load(doc) or {}
        except yaml.YAMLError as exc:
            raise ServiceError(400, "UserError", f"the environment's conda file is not valid YAML: {exc}") from None
    if not isinstance(doc, Mapping):
        raise ServiceError(400, "UserError", "the environment's conda file must be a mapping with dependencies")
    python: str | None = None
    conda: list[str] = []
    pip: list[str] = []
    for item in doc.get("dependencies") or []:
        if isinstance(item, Mapping):
            pip += [str(line) for line in item.get("pip") or []]
        elif isinstance(item, str):
            name = re.split(r"[\s=<>!~]", item.split("::")[-1].strip(), maxsplit=1)[0].lower()
            if name == "python":
                python = item.split("::")[-1].strip()[len("python"):].strip().lstrip("=") or None
            elif item.strip():
                conda.append(item.strip())
    return python, conda, pip, [str(c) for c in doc.get("channels") or []]


def from_conda(name: str, conda_doc: Any, *, image: str | None = None,
               wheels: Mapping[str, str] | None = None) -> EnvironmentSpec:
    """An environment from a conda specification (and the image it is built on); pip lines naming wheel
    paths in the image become the blob URLs ``wheels`` maps them to."""
    python, conda, pip, _ = read_conda(conda_doc if conda_doc is not None else {})
    pip = [(wheels or {}).get(line, line) for line in pip]
    return EnvironmentSpec(name=name, python=python, pip=pip, conda=conda, image=image)


def from_v1_environment(environment: Mapping[str, Any], default_name: str) -> EnvironmentSpec:
    """An SDK v1 run configuration's ``environment``: conda dependencies, user-managed or not, base image."""
    python_section = environment.get("python") or {}
    docker = environment.get("docker") or {}
    name = str(environment.get("name") or default_name)
    curated = None
    if name.lower().startswith("azureml-"):   # a curated environment (Environment.get(ws, "AzureML-..."))
        try:
            curated = curated_environment(name)
        except ServiceError:
            curated = None
    image = docker.get("baseImage") or None
    if python_section.get("userManagedDependencies"):
        spec = EnvironmentSpec(name=name, python=None, pip=[], image=image)
        spec.notes.append("user-managed dependencies: Azure installs nothing and runs the image's python "
                          f"({python_section.get('interpreterPath') or 'python'}); the fake runs its own")
    else:
        spec = from_conda(name, python_section.get("condaDependencies") or {}, image=image)
    if docker.get("baseDockerfile"):
        spec.notes.append("the environment's Dockerfile (docker.baseDockerfile) is not run by the fake")
    if curated is not None:
        spec.curated = curated.curated
        spec.notes = curated.notes + spec.notes
    return spec


# -- SDK v1's environment definitions ---------------------------------------------------------------
def v1_definition(spec: EnvironmentSpec, version: str) -> dict[str, Any]:
    """An environment in SDK v1's shape (``Environment._serialize_to_dict``), as ``Environment.get`` reads it."""
    dependencies: list[Any] = ([f"python={spec.python}"] if spec.python else []) + list(spec.conda)
    if spec.pip:
        dependencies.append({"pip": list(spec.pip)})
    return {"name": spec.name, "version": version,
            "python": {"interpreterPath": "python", "userManagedDependencies": False,
                       "condaDependencies": {"name": "project_environment", "channels": ["conda-forge"],
                                             "dependencies": dependencies},
                       "baseCondaEnvironment": None},
            "environmentVariables": {}, "docker": {"baseImage": spec.image, "platform": {"os": "Linux",
                                                                                         "architecture": "amd64"},
                                                   "baseDockerfile": None, "buildContext": None,
                                                   "baseImageRegistry": {"address": None, "username": None,
                                                                         "password": None},
                                                   "enabled": False, "arguments": []},
            "spark": {"repositories": [], "packages": [], "precachePackages": True},
            "inferencingStackVersion": None, "r": None}


class V1Environments:
    """``/environment/v1.0/.../environments/...``: the environments a v1 client registers (``Environment.register``),
    and the curated ones (``Environment.get(ws, "AzureML-sklearn-1.5")``). Names starting with ``AzureML`` or
    ``Microsoft`` are reserved for curated environments (azureml-core's ``Environment`` docstring), so registering
    one is refused."""

    RESERVED = ("azureml", "microsoft")

    def __init__(self) -> None:
        self.registered: dict[str, list[dict[str, Any]]] = {}

    def routes(self, route: Any, prefix: str) -> None:
        base = prefix + r"/environments"
        route("GET", base + r"/?$", self.list)
        route("GET", base + r"/(?P<name>[^/]+)/labels/(?P<label>[^/]+)$", self.get)
        route("GET", base + r"/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?$", self.get)
        route("PUT", base + r"/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?$", self.put)

    def get(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        from urllib.parse import unquote

        name = unquote(m.group("name"))
        version = m.groupdict().get("version")
        versions = self.registered.get(name)
        if versions:
            if version is None:
                return 200, versions[-1]
            found = next((v for v in versions if str(v.get("version")) == str(version)), None)
            if found is not None:
                return 200, found
        elif name.lower().startswith("azureml-"):
            try:
                spec = curated_environment(name)
            except ServiceError:
                spec = None
            if spec is not None:
                return 200, v1_definition(spec, version or "1")
        raise ServiceError(404, "NotFound", f"Environment {name}" + (f" version {version}" if version else "")
                           + " was not found in the workspace")

    def put(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        from urllib.parse import unquote

        name = unquote(m.group("name"))
        if name.lower().startswith(self.RESERVED):
            raise ServiceError(400, "UserError", f"Environment name {name!r} is invalid: the prefixes 'AzureML' and "
                                                 f"'Microsoft' are reserved for curated environments")
        if not isinstance(body, Mapping):
            raise ServiceError(400, "UserError", "the environment definition must be a JSON object")
        versions = self.registered.setdefault(name, [])
        definition = {"name": name, "version": str(len(versions) + 1),
                      **{k[0].lower() + k[1:]: v for k, v in body.items() if k not in ("Name", "name")}}
        versions.append(definition)
        return 200, definition

    def list(self, m: Any, body: Any, q: Any) -> tuple[int, Any]:
        curated = [v1_definition(spec, "1") for spec in
                   (curated_environment(f"AzureML-{e['name']}") for e in table()["environments"]) if spec]
        return 200, {"value": [v[-1] for v in self.registered.values()] + curated, "continuationToken": None}
