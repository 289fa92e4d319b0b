"""Shipping the code a step needs to the cluster: wheels built here, pinned requirements. SDK-neutral.

Nothing a step runs is fetched by name from a package index: amlstep and the plugin's distribution
are built into wheels from what is installed here (an editable install: from its project folder,
so the code that ships is the code on disk; a regular install: repacked from its installed files),
and shipped with the submission. Their third-party requirements (pandas, scikit-learn...) come
from the index, pinned to the versions installed here.

A wheel's file name carries a build tag made from its content hash
(``amlstep-0.1.0-0sha1a2b3c4d5e6f-py3-none-any.whl``): the workspace stores private wheels by file
name, so two different builds of the same version never share a name, and an environment that
names a wheel names its content. Wheels are reproducible (``SOURCE_DATE_EPOCH``) and cached by the
hash of their sources, so a process builds each once.

The SDK v1 compiler attaches the wheels with ``Environment.add_private_pip_wheel``; an SDK v2
compiler can put the same files in a command component's code folder or conda file.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import unquote, urlparse

from ...errors import BackendError

# What never goes into a source copy (version control, virtualenvs, caches, build output).
IGNORED_NAMES = {".git", ".hg", ".svn", ".venv", "venv", ".tox", ".nox", "__pycache__", ".pytest_cache",
                 ".mypy_cache", ".ruff_cache", "build", "dist", "node_modules", ".ipynb_checkpoints", ".amlstep",
                 ".eggs"}
IGNORED_SUFFIXES = (".pyc", ".pyo", ".egg-info", ".whl")
REPRODUCIBLE_EPOCH = "315532800"  # 1980-01-01, the earliest date a zip file can hold
# What a step's entry script needs at run time besides the shipped wheels: the run context and
# named tabular inputs (Run.get_context(), TabularDataset.to_pandas_dataframe()).
RUNTIME_DISTRIBUTIONS = ("azureml-core", "azureml-dataset-runtime")


@dataclass(frozen=True)
class Wheel:
    """A wheel built here for shipping."""

    distribution: str
    version: str
    path: Path
    sha256: str
    source: str
    source_hash: str

    @property
    def filename(self) -> str:
        return self.path.name

    def describe(self) -> dict[str, str]:
        return {"name": self.distribution, "version": self.version, "file": self.filename, "sha256": self.sha256,
                "built_from": self.source}


@dataclass(frozen=True)
class Shipment:
    """What one step's environment is made of: wheels to ship and pinned requirements from the index."""

    wheels: tuple[Wheel, ...]
    requirements: tuple[str, ...]
    python: str

    def describe(self) -> dict[str, Any]:
        return {"python": self.python, "wheels": [w.describe() for w in self.wheels],
                "requirements": list(self.requirements)}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def distribution(name: str) -> metadata.Distribution:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise BackendError(f"distribution {name!r} is not installed, so it cannot be shipped to Azure") from None


def step_distributions(plugins: Any, binding: Any) -> list[str]:
    """The distributions a plugin step needs on the cluster: amlstep, and the plugin's own.

    Raises BackendError when the plugin is not part of an installed distribution (a plain folder
    on ``sys.path`` cannot be shipped), saying how to make it one.
    """
    owner = plugins.step_owners.get(binding.plugin)
    dist = plugins.distributions.get(owner or "")
    if not dist or dist == "unknown distribution":
        raise BackendError(
            f"step {binding.name!r}: plugin {binding.plugin!r} is not part of an installed distribution, so it "
            f"cannot be shipped to Azure; make it a package with an 'amlstep' entry point (`amlstep new-plugin "
            f"NAME` scaffolds one) and `pip install -e` it")
    names = ["amlstep"]
    if canonical(dist) != "amlstep":
        names.append(dist)
    return names


def editable_project(dist: metadata.Distribution) -> Path | None:
    """The project folder of an editable (``pip install -e``) or develop install, else None."""
    text = dist.read_text("direct_url.json")
    if text:
        info = json.loads(text)
        if (info.get("dir_info") or {}).get("editable") and str(info.get("url", "")).startswith("file:"):
            return Path(unquote(urlparse(info["url"]).path)).resolve()
    location = Path(str(getattr(dist, "_path", ""))).resolve()
    if location.suffix == ".egg-info" and "site-packages" not in location.parts:
        for folder in (location.parent, location.parent.parent):
            if (folder / "pyproject.toml").is_file() or (folder / "setup.py").is_file():
                return folder
    return None


def _source_files(project: Path) -> list[Path]:
    files = []
    for folder, dirs, names in os.walk(project):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if d not in IGNORED_NAMES and not d.endswith(IGNORED_SUFFIXES)
                         and not (here / d / "pyvenv.cfg").exists())
        for name in sorted(names):
            if not name.endswith(IGNORED_SUFFIXES) and not name.startswith(".coverage"):
                files.append(here / name)
    return files


def _hash_files(root: Path, files: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def _installed_files(dist: metadata.Distribution) -> tuple[Path, list[tuple[Path, str]]]:
    """The site folder and (absolute path, name in the wheel) of an installed distribution's files."""
    info = Path(str(getattr(dist, "_path", "")))
    site = info.parent
    found: list[tuple[Path, str]] = []
    listed = dist.files
    if listed:
        for item in listed:
            name = item.as_posix()
            if name.startswith("..") or "__pycache__" in item.parts or name.endswith((".pyc", ".pyo")):
                continue
            if item.parts and item.parts[0] == info.name and item.name in ("RECORD", "INSTALLER", "REQUESTED",
                                                                             "direct_url.json"):
                continue
            located = site / item
            if located.is_file():
                found.append((located, name))
        return site, found
    # no RECORD (a hand-made .dist-info): the top-level modules its entry points and top_level.txt name
    tops = {ep.value.split(":")[0].split(".")[0] for ep in dist.entry_points}
    tops |= {line.strip() for line in (dist.read_text("top_level.txt") or "").splitlines() if line.strip()}
    for top in sorted(tops):
        package, module = site / top, site / f"{top}.py"
        if package.is_dir():
            found += [(p, p.relative_to(site).as_posix()) for p in sorted(package.rglob("*"))
                      if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")]
        elif module.is_file():
            found.append((module, module.name))
    for entry in sorted(info.iterdir()):
        if entry.is_file() and entry.name not in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
            found.append((entry, f"{info.name}/{entry.name}"))
    return site, found


class WheelBuilder:
    """Builds (or finds in its cache) the wheels of installed distributions.

    Args:
        cache_dir: where built wheels are kept, by source hash (default: ``$AMLSTEP_WHEEL_CACHE``,
            else a temporary folder removed when the process exits).
    """

    _memory: dict[tuple[str, str], Wheel] = {}
    _lock = threading.Lock()

    def __init__(self, cache_dir: str | Path | None = None) -> None:
        chosen = cache_dir or os.environ.get("AMLSTEP_WHEEL_CACHE")
        self.cache_dir = Path(chosen) if chosen else _process_cache()
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    def wheel(self, name: str) -> Wheel:
        """The wheel of installed distribution ``name`` as it is on disk now."""
        dist = distribution(name)
        project = editable_project(dist)
        if project is not None:
            if not project.is_dir():
                raise BackendError(f"distribution {name!r} is installed in editable mode from {str(project)!r}, "
                                   f"which does not exist any more; reinstall it")
            files = _source_files(project)
            source_hash = _hash_files(project, files)
            source = f"project folder {project}"
        else:
            site, pairs = _installed_files(dist)
            if not pairs:
                raise BackendError(f"distribution {name!r} lists no files to ship (no RECORD); reinstall it "
                                   f"with pip")
            digest = hashlib.sha256()
            for path, arcname in sorted(pairs, key=lambda p: p[1]):
                digest.update(arcname.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
            source_hash = digest.hexdigest()
            source = f"installed files in {site}"
        key = (canonical(name), source_hash)
        with self._lock:
            cached = self._memory.get(key)
            if cached is not None and cached.path.is_file():
                return cached
            found = self._from_disk(dist, source_hash)
            if found is None:
                work = Path(tempfile.mkdtemp(prefix=".build-", dir=self.cache_dir))
                try:
                    built = (self._build_project(dist, project, files, work) if project is not None
                             else self._repack(dist, pairs, work))
                    found = self._store(dist, built, source, source_hash)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
            self._memory[key] = found
            return found

    def shipment(self, names: Iterable[str]) -> Shipment:
        """Wheels of ``names`` and the pinned third-party requirements they (and the runtime) need."""
        wheels = tuple(self.wheel(n) for n in names)
        return Shipment(wheels=wheels, requirements=tuple(pinned_requirements([w.distribution for w in wheels])),
                        python=python_version())

    # -- cache ---------------------------------------------------------------------------------------
    def _entry(self, dist: metadata.Distribution, source_hash: str) -> Path:
        return self.cache_dir / canonical(dist.metadata["Name"]) / source_hash[:32]

    def _from_disk(self, dist: metadata.Distribution, source_hash: str) -> Wheel | None:
        folder = self._entry(dist, source_hash)
        meta = folder / "wheel.json"
        if not meta.is_file():
            return None
        info = json.loads(meta.read_text())
        path = folder / info["file"]
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != info["sha256"]:
            return None
        return Wheel(info["distribution"], info["version"], path, info["sha256"], info["source"], source_hash)

    def _store(self, dist: metadata.Distribution, built: Path, source: str, source_hash: str) -> Wheel:
        data = built.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        name, version, *_rest, python, abi, platform = built.stem.split("-")
        filename = f"{name}-{version}-0sha{sha[:12]}-{python}-{abi}-{platform}.whl"
        folder = self._entry(dist, source_hash)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / filename
        partial = folder / f".{filename}.{os.getpid()}"
        partial.write_bytes(data)
        os.replace(partial, target)
        info = {"distribution": dist.metadata["Name"], "version": dist.version, "file": filename, "sha256": sha,
                "source": source}
        partial_info = folder / f".wheel.json.{os.getpid()}.{threading.get_ident()}"
        partial_info.write_text(json.dumps(info, indent=1))
        os.replace(partial_info, folder / "wheel.json")  # another process sharing the cache never reads half of it
        return Wheel(info["distribution"], dist.version, target, sha, source, source_hash)

    # -- building ------------------------------------------------------------------------------------
    def _build_project(self, dist: metadata.Distribution, project: Path, files: list[Path], work: Path) -> Path:
        """PEP 517 ``build_wheel`` of a copy of the project (the project folder is never written to)."""
        copy = work / "src"
        for file in files:
            target = copy / file.relative_to(project)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, target)
        backend, backend_path = _build_backend(project)
        out = work / "out"
        out.mkdir()
        script = ("import importlib, sys\n"
                  f"sys.path[:0] = {backend_path!r}\n"
                  f"module, _, attr = {backend!r}.partition(':')\n"
                  "hooks = importlib.import_module(module)\n"
                  "for part in filter(None, attr.split('.')):\n"
                  "    hooks = getattr(hooks, part)\n"
                  f"print('WHEEL=' + hooks.build_wheel({str(out)!r}))\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHONPATH"))}
        env["SOURCE_DATE_EPOCH"] = REPRODUCIBLE_EPOCH
        done = subprocess.run([sys.executable, "-c", script], cwd=copy, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            missing = re.search(r"No module named '([^']+)'", done.stderr or "")
            hint = (f"; its build backend {backend!r} is not installed here: pip install {missing.group(1)}"
                    if missing else "")
            if "invalid command 'bdist_wheel'" in (done.stderr or "") + (done.stdout or ""):
                hint = "; the setuptools installed here builds no wheel on its own: pip install 'setuptools>=70.1'"
            raise BackendError(f"could not build a wheel of distribution {dist.metadata['Name']!r} from "
                               f"{str(project)!r}{hint}: {' | '.join(tail)}")
        name = next(line[6:] for line in done.stdout.splitlines() if line.startswith("WHEEL="))
        return out / name

    def _repack(self, dist: metadata.Distribution, pairs: list[tuple[Path, str]], work: Path) -> Path:
        """A wheel of an installed distribution's own files (RECORD rewritten), byte-reproducible."""
        name = re.sub(r"[-.]+", "_", dist.metadata["Name"])
        info = f"{name}-{dist.version}.dist-info"
        entries: dict[str, bytes] = {}
        for path, arcname in pairs:
            if arcname.split("/")[0].endswith(".dist-info"):
                arcname = f"{info}/{arcname.split('/', 1)[1]}"
            entries[arcname] = path.read_bytes()
        entries.setdefault(f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: amlstep\nRoot-Is-Purelib: true\n"
                                            b"Tag: py3-none-any\n")
        if f"{info}/METADATA" not in entries:
            entries[f"{info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {dist.metadata['Name']}\n"
                                           f"Version: {dist.version}\n").encode()
        tag = _wheel_tag(entries[f"{info}/WHEEL"].decode())
        record = []
        for arcname, data in sorted(entries.items()):
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")
            record.append(f"{arcname},sha256={digest},{len(data)}")
        record.append(f"{info}/RECORD,,")
        entries[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
        target = work / f"{name}-{dist.version}-{tag}.whl"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for arcname in sorted(entries, key=lambda n: (n.split("/")[0].endswith(".dist-info"), n)):
                item = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
                item.external_attr = 0o644 << 16
                item.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(item, entries[arcname])
        return target


def _wheel_tag(wheel_file: str) -> str:
    tags = [line.split(":", 1)[1].strip() for line in wheel_file.splitlines() if line.startswith("Tag:")]
    return tags[0] if tags else "py3-none-any"


def _build_backend(project: Path) -> tuple[str, list[str]]:
    pyproject = project / "pyproject.toml"
    if pyproject.is_file():
        import tomllib

        system = tomllib.loads(pyproject.read_text()).get("build-system") or {}
        backend = system.get("build-backend")
        if backend:
            return backend, [str(project / p) for p in system.get("backend-path") or []]
    return "setuptools.build_meta:__legacy__", []


_PROCESS_CACHE: Path | None = None


def _process_cache() -> Path:
    global _PROCESS_CACHE
    if _PROCESS_CACHE is None or not _PROCESS_CACHE.is_dir():
        _PROCESS_CACHE = Path(tempfile.mkdtemp(prefix="amlstep-wheels-"))
        atexit.register(shutil.rmtree, _PROCESS_CACHE, True)
    return _PROCESS_CACHE


def pinned_requirements(shipped: Iterable[str], runtime: Iterable[str] = RUNTIME_DISTRIBUTIONS) -> list[str]:
    """``name==version`` for every requirement of the shipped distributions (and of the step runtime)
    that is not shipped itself, at the version installed here; sorted, without duplicates."""
    from packaging.requirements import Requirement

    shipped_names = {canonical(n) for n in shipped}
    pins: dict[str, str] = {}
    wanted: list[tuple[str, str]] = [(n, "the Azure step runtime") for n in runtime]
    for name in shipped:
        for text in distribution(name).requires or []:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            wanted.append((requirement.name, f"distribution {name!r}"))
    for name, needed_by in wanted:
        key = canonical(name)
        if key in shipped_names or key in pins:
            continue
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise BackendError(f"{needed_by} requires {name!r}, which is not installed here, so its version "
                               f"cannot be pinned for Azure; pip install {name}") from None
        pins[key] = f"{name}=={version}"
    return sorted(pins.values(), key=str.lower)


__all__ = ["Shipment", "Wheel", "WheelBuilder", "pinned_requirements", "step_distributions", "editable_project",
           "python_version", "RUNTIME_DISTRIBUTIONS"]
