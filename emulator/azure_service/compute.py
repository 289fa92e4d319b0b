"""The fake's compute: environments built the way Azure's image build builds them, and step processes run in them.

**Environments.** Azure builds an image per environment: the base image, a conda environment with the
Python version and conda packages the environment asks for, then ``pip install`` of its pip lines, from
PyPI. The fake builds a venv instead and keeps it, keyed by what was declared (with each shipped wheel by
its sha256), so each environment is built once per cache folder:

- packages come from a **package index**, as on Azure: PyPI, or what pip is configured to use, by
  default; ``--index-url``, ``--find-links`` and ``--offline`` of ``amlstep fake-azure`` (and the fixture's
  options) replace that (then pip's own configuration is not read). Tests serve wheels from a folder;
- what the fake already has is not downloaded again: its own site-packages are a *base layer* seen
  through a folder of links that leaves out every editable install and every distribution that declares
  ``amlstep`` entry points (amlstep itself, step plugins), so plugin code comes only from a shipped wheel.
  A requirement the base layer satisfies is "already satisfied", as pip says; anything else is installed
  into the venv from the index (``pyjokes``, ``azureml-defaults``, a pin of another version);
- a requirement that is a URL must be a wheel in the fake's blob store (where
  ``Environment.add_private_pip_wheel`` uploads); it is installed with its dependencies, like any other;
- conda packages are installed as the pip distributions of the same name (:mod:`.environments`);
- an environment that asks for another Python than the fake's is built on an interpreter of that version
  when the machine has one (``python3.X`` on PATH, pyenv's versions, or ``--python VERSION=PATH``): a venv of
  that Python with everything the environment declares installed from the index, as Azure's image build
  installs it (no base layer: the fake's packages are built for its own Python). A curated environment is
  built the same way, from its definition, when an interpreter of its Python is found (and the fake is not
  ``--offline``); the step runs on that Python;
- what cannot be honoured here is checked as far as it can be, and written in the step's log as a
  fidelity note: a Python version the machine does not have (the requirements are resolved for it without
  installing them; pins the fake's Python cannot take fall back to the base layer's version), a Docker
  base image (one that does not exist fails the build; the known ones are listed in
  ``data/curated_environments.json``), a curated environment whose Python the machine lacks, or offline
  (Azure runs a prebuilt image: the base layer stands in for it, and the note lists what the image has that
  the base layer lacks).
  Python older than 3.8 is refused, as Azure ML supports 3.8 and later.

**Processes.** A step runs as ``<venv python> <script> <arguments>`` in its snapshot folder, with
an environment made from nothing but what Azure's compute sets (run id, workspace, token, service
endpoints, data paths) plus a private ``HOME``; its output is the step's log.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Iterator, Mapping

if TYPE_CHECKING:
    from .blobstore import BlobStore
    from .engine import EnvironmentSpec

ENTRY_POINT_GROUP = "amlstep"


class ImageBuildError(Exception):
    """An environment that cannot be built; ``log`` is the build log."""

    def __init__(self, message: str, log: str) -> None:
        super().__init__(message)
        self.log = log


def _canonical(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def _site_dirs() -> list[Path]:
    found = []
    for path in [*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]:
        if Path(path).is_dir() and Path(path) not in found:
            found.append(Path(path))
    return found


def _shipped_names(site_dir: Path) -> tuple[set[str], list[str]]:
    """Top-level names and dist-info folders of distributions that declare amlstep entry points."""
    names: set[str] = set()
    infos: list[str] = []
    for dist in metadata.distributions(path=[str(site_dir)]):
        if not any(ep.group == ENTRY_POINT_GROUP for ep in dist.entry_points):
            continue
        info = Path(str(dist._path))  # type: ignore[attr-defined]
        infos.append(info.name)
        top = dist.read_text("top_level.txt") or ""
        names.update(line.strip() for line in top.splitlines() if line.strip())
        for file in dist.files or []:
            first = file.parts[0] if file.parts else ""
            if first and not first.endswith((".dist-info", ".egg-info")) and first != "..":
                names.add(first.removesuffix(".py"))
    return names, infos


def find_pythons(search_path: str | None = None, pyenv_root: str | Path | None = None) -> dict[str, Path]:
    """This machine's Python interpreters by version (``{"3.10": Path(...)}``): ``python3.X`` on PATH, then
    pyenv's versions (``$PYENV_ROOT``, else ``~/.pyenv``), the newest patch release of each; the fake's own
    version is left out (its environments use the base layer)."""
    own = f"{sys.version_info[0]}.{sys.version_info[1]}"
    found: dict[str, Path] = {}
    for folder in (search_path if search_path is not None else os.environ.get("PATH", "")).split(os.pathsep):
        if not folder or not Path(folder).is_dir() or Path(folder).name == "shims":  # pyenv's shims pick by config
            continue
        for candidate in sorted(Path(folder).glob("python3.*")):
            version = candidate.name.removeprefix("python")
            if re.fullmatch(r"3\.\d+", version) and version != own and os.access(candidate, os.X_OK):
                found.setdefault(version, candidate)
    root = Path(pyenv_root or os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    releases = []
    for folder in root.iterdir() if root.is_dir() else []:
        parts = re.fullmatch(r"(3)\.(\d+)\.(\d+)", folder.name)
        if parts and (folder / "bin" / f"python3.{parts.group(2)}").exists():
            releases.append((tuple(int(x) for x in parts.groups()), folder))
    for (major, minor, _), folder in sorted(releases, reverse=True):
        version = f"{major}.{minor}"
        if version != own:
            found.setdefault(version, folder / "bin" / f"python{version}")
    return found


@dataclass(frozen=True)
class PackageIndex:
    """Where environment builds get packages: pip's own configuration (PyPI unless configured otherwise), or,
    when any option is given, exactly these (``--index-url``, ``--find-links`` folders or URLs, ``--offline``:
    no index at all, only the find-links)."""

    index_url: str | None = None
    find_links: tuple[str, ...] = ()
    offline: bool = False

    @property
    def explicit(self) -> bool:
        return bool(self.index_url or self.find_links or self.offline)

    def pip_args(self) -> list[str]:
        args = ["--no-index"] if self.offline else (["--index-url", self.index_url] if self.index_url else [])
        for link in self.find_links:
            args += ["--find-links", str(link)]
        return args

    def describe(self) -> str:
        where = "no index (offline)" if self.offline else (self.index_url or "pip's configured index (PyPI by default)")
        return where + "".join(f", find-links {link}" for link in self.find_links)


@dataclass
class BuiltEnvironment:
    """A built (or cached) environment: its python, the image build log, the fidelity notes for the step log."""

    python: Path
    log: str
    notes: list[str]


@dataclass
class _Requirement:
    text: str
    origin: str                      # "pip" | "conda"
    parsed: Any = None
    base_version: str | None = None
    satisfied: bool = False


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    """Held while one environment is built: fakes of other processes sharing ``cache_dir`` (pytest-xdist workers)
    wait and then find it built, instead of building it again. A no-op where ``fcntl`` is missing."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Compute:
    """Builds and caches step environments under ``cache_dir``."""

    def __init__(self, cache_dir: Path, python: str | None = None, index: PackageIndex | None = None,
                 pythons: Mapping[str, str | Path] | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.python = python or sys.executable
        self.index = index or PackageIndex()
        # interpreters of other Python versions ("3.8" -> its python): environments asking for one are built on it
        self.pythons = {version: Path(path) for version, path in (pythons or {}).items()}
        # what the service sets for its own clients (its URL as HTTPS_PROXY, its CA as REQUESTS_CA_BUNDLE): a
        # client in the service's process (a test, the corpus runner) leaves them in os.environ, and pip must
        # not send the package index through the fake
        self.client_settings: set[str] = set()
        self._lock = threading.Lock()
        self._base: Path | None = None
        self._base_dists: dict[str, str] | None = None
        self._base_requires_python: dict[str, str | None] = {}
        self.builds: list[dict[str, object]] = []     # what was built (or reused), for tests and timings

    # -- the base layer ----------------------------------------------------------------------------
    def base_layer(self) -> Path:
        """A folder of links to the fake's site-packages, without editable installs and amlstep plugins."""
        if self._base is not None:
            return self._base
        entries: list[tuple[str, Path]] = []
        excluded: set[str] = set()
        for site_dir in _site_dirs():
            names, infos = _shipped_names(site_dir)
            for item in sorted(site_dir.iterdir()):
                stem = item.name.removesuffix(".py")
                if (item.name.startswith("__editable__") or item.suffix == ".pth" or item.name in infos
                        or stem in names or item.name == "__pycache__"):
                    excluded.add(item.name)
                    continue
                entries.append((item.name, item))
        key = hashlib.sha256(json.dumps([[n, str(p)] for n, p in entries] + sorted(excluded)).encode()).hexdigest()
        base = self.cache_dir / f"base-{key[:16]}"
        if not base.is_dir():
            partial = self.cache_dir / f".base-{key[:16]}.{os.getpid()}.{threading.get_ident()}"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            seen: set[str] = set()
            for name, path in entries:
                if name not in seen:
                    (partial / name).symlink_to(path, target_is_directory=path.is_dir())
                    seen.add(name)
            try:
                partial.rename(base)
            except OSError:  # built meanwhile by another process
                shutil.rmtree(partial, ignore_errors=True)
        self._base = base
        return base

    def base_distributions(self) -> dict[str, str]:
        if self._base_dists is None:
            found: dict[str, str] = {}
            for dist in metadata.distributions(path=[str(self.base_layer())]):
                meta = dist.metadata
                name = meta["Name"] if "Name" in meta else None
                if name and _canonical(name) not in found:
                    found[_canonical(name)] = dist.version
                    self._base_requires_python[_canonical(name)] = (meta["Requires-Python"]
                                                                    if "Requires-Python" in meta else None)
            self._base_dists = found
        return self._base_dists

    # -- environments ------------------------------------------------------------------------------
    def environment(self, spec: EnvironmentSpec, blob: BlobStore) -> Path:
        """The python of the environment ``spec`` declares, built on first use."""
        return self.build(spec, blob).python

    def build(self, spec: EnvironmentSpec, blob: BlobStore) -> BuiltEnvironment:
        """Build (or find in the cache) the environment ``spec`` declares; raises :class:`ImageBuildError`."""
        from .blobstore import parse_blob_url
        from .image_build import MINIMUM_PYTHON, ImageMissing, check_image, conda_to_pip, python_version

        fake = sys.version_info[:2]
        log: list[str] = [f"Building environment {spec.name!r}" + (f" on image {spec.image}" if spec.image else "")
                          + f"; packages from {self.index.describe()}"]
        notes = list(spec.notes)
        try:
            image_python, image_notes = check_image(spec.image)
        except ImageMissing as exc:
            log.append(exc.log)
            raise ImageBuildError(str(exc), "\n".join(log)) from None
        notes += image_notes
        declared = bool(spec.pip or spec.conda)
        requested = spec.python or (image_python if not declared else None)
        version = python_version(requested)
        if version is not None and version < MINIMUM_PYTHON:
            log.append(f"ERROR: Python {requested} is not supported: Azure ML supports Python "
                       f"{'.'.join(map(str, MINIMUM_PYTHON))} and later (azureml-core needs it)")
            raise ImageBuildError(f"the environment asks for Python {requested}; Azure ML supports Python "
                                  f"{'.'.join(map(str, MINIMUM_PYTHON))} and later", "\n".join(log))
        other_python = version is not None and version != fake
        here = f"{fake[0]}.{fake[1]}"
        interpreter = self.pythons.get(f"{version[0]}.{version[1]}") if other_python and version else None
        if interpreter is not None and spec.curated and self.index.offline:
            notes.append(f"curated environment {spec.curated}: not built from its definition offline (its packages "
                         f"come from an index); the fake's packages stand in")
            interpreter = None
        if interpreter is not None:
            notes.append(f"Python {requested} requested: built on Python {_full_version(interpreter)} "
                         f"({interpreter}), everything the environment declares installed from "
                         f"{self.index.describe()}")
            other_python = False
        elif requested and version is None:
            notes.append(f"Python {requested!r} not read; the fake runs Python {here}")
        elif other_python:
            notes.append(f"Python {requested} requested: the fake has Python {here} only and runs the step on it; "
                         f"the requirements were checked for Python {requested} without installing them, and pins "
                         f"Python {here} cannot take use the fake's own version")
        elif requested is None and not spec.curated:
            notes.append(f"the environment pins no Python version: the fake's Python {here}")
        wheels: list[tuple[str, bytes]] = []
        options: list[str] = []
        requirements: list[_Requirement] = []
        for line in spec.pip:
            text = line.split(" #")[0].strip()
            if not text or text.startswith("#"):
                continue
            if text.startswith("-"):
                if self.index.offline and text.split()[0] in ("-i", "--index-url", "--extra-index-url", "-f",
                                                              "--find-links"):
                    notes.append(f"pip option {text!r} not used: the fake builds offline")
                else:
                    options.append(text)
            elif text.startswith(("http://", "https://")):
                where = parse_blob_url(text)
                if where is None or where[0] != blob.account or not blob.exists(where[1], where[2]):
                    log.append(f"ERROR: Could not install requirement {text} because of HTTP error 404 Client "
                               f"Error: The specified blob does not exist. for URL {text}")
                    raise ImageBuildError(f"could not fetch {text}: no such blob in the workspace's storage",
                                          "\n".join(log))
                wheels.append((Path(where[2]).name, blob.get(where[1], where[2])))
            else:
                requirements.append(_Requirement(text, "pip"))
        for package in spec.conda:
            converted, note = conda_to_pip(package)
            if note:
                notes.append(note)
            if converted:
                requirements.append(_Requirement(converted, "conda"))
        self._classify(requirements, log)
        if interpreter is not None:
            log.append(f"Python {requested}: {interpreter}")
            if spec.curated:
                notes.append(f"curated environment {spec.curated}: built from its definition as its image was; "
                             f"what it leaves unpinned is the index's newest here, and may be older in Azure's image")
            return self._built(spec, wheels, [r.text for r in requirements], options, requirements, log, notes,
                               interpreter)
        if spec.curated:
            return self._stand_in(spec, requirements, log, notes)
        if other_python:
            self._check_for_python(requested or "", version or fake, requirements, log, notes)
        install: list[str] = []
        for req in requirements:
            if req.satisfied:
                log.append(f"Requirement already satisfied: {req.text} (the fake has {req.parsed.name} "
                           f"{req.base_version})")
            elif req.parsed is None:
                continue  # a marker that does not apply
            elif other_python and req.base_version is not None:
                notes.append(f"{req.text} (for Python {requested}): the fake's Python {here} uses "
                             f"{req.parsed.name} {req.base_version}")
                log.append(f"Requirement {req.text} taken as {req.parsed.name}=={req.base_version} for Python {here}")
            else:
                install.append(req.text)
        return self._built(spec, wheels, install, options, requirements, log, notes)

    def _classify(self, requirements: list[_Requirement], log: list[str]) -> None:
        from packaging.requirements import InvalidRequirement, Requirement

        available = self.base_distributions()
        for req in requirements:
            try:
                parsed = Requirement(req.text)
            except InvalidRequirement as exc:
                log.append(f"ERROR: Invalid requirement: {req.text!r}: {exc}")
                raise ImageBuildError(f"invalid requirement {req.text!r}", "\n".join(log)) from None
            if parsed.marker is not None and not parsed.marker.evaluate():
                log.append(f"Ignoring {req.text}: markers {str(parsed.marker)!r} don't match your environment")
                continue
            req.parsed = parsed
            req.base_version = available.get(_canonical(parsed.name))
            req.satisfied = req.base_version is not None and (
                not parsed.specifier or parsed.specifier.contains(req.base_version, prereleases=True))

    def _check_for_python(self, requested: str, version: tuple[int, int], requirements: list[_Requirement],
                          log: list[str], notes: list[str]) -> None:
        """Requirements checked for a Python the fake does not have: the installed versions' ``Requires-Python``
        (offline), then pip's resolver for that Python without installing (``--dry-run --python-version``)."""
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        target = f"{version[0]}.{version[1]}"
        for req in requirements:
            if req.parsed is None or not req.satisfied:
                continue
            needs = self._base_requires_python.get(_canonical(req.parsed.name))
            try:
                fits = not needs or SpecifierSet(needs).contains(f"{target}.0", prereleases=True)
            except InvalidSpecifier:
                fits = True
            if fits:
                continue
            exact = [s for s in req.parsed.specifier if s.operator in ("==", "===") and "*" not in s.version]
            if exact:
                log += [f"ERROR: Ignored the following versions that require a different python version: "
                        f"{req.base_version} Requires-Python {needs}",
                        f"ERROR: Could not find a version that satisfies the requirement {req.text} (from versions: "
                        f"none)", f"ERROR: No matching distribution found for {req.text}"]
                raise ImageBuildError(f"No matching distribution found for {req.text}: {req.parsed.name} "
                                      f"{req.base_version} requires Python {needs}, the environment asks for "
                                      f"Python {requested}", "\n".join(log))
            notes.append(f"{req.parsed.name} {req.base_version} needs Python {needs}; whether another version "
                         f"fits Python {requested} is left to the index check")
        unchecked = [r.text for r in requirements if r.parsed is not None and not r.satisfied
                     and (r.base_version is None or not self.index.offline)]
        if self.index.offline:  # what the fake has at other versions cannot be resolved from a folder of wheels
            skipped = [r.text for r in requirements if r.parsed is not None and not r.satisfied and r.base_version]
            if skipped:
                notes.append(f"not checked for Python {requested} (offline): {', '.join(skipped)}")
        if not unchecked:
            return
        command = [self.python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                   "--disable-pip-version-check", "--no-input", "--python-version", target, "--only-binary=:all:",
                   *self.index.pip_args(), *(["--no-deps"] if self.index.offline else []), *unchecked]
        done = subprocess.run(command, capture_output=True, text=True, env=self._pip_env())
        output = (done.stdout + done.stderr).strip()
        log.append(f"$ pip install --dry-run --python-version {target} {' '.join(unchecked)}\n{output}")
        if done.returncode == 0:
            notes.append(f"requirements resolved for Python {requested}: {', '.join(unchecked)}")
            return
        if _python_refused(output):
            raise ImageBuildError(f"the requirements cannot be installed on Python {requested}: "
                                  f"{_last_error(output)}", "\n".join(log))
        notes.append(f"requirements not checked for Python {requested} (wheels only, {self.index.describe()}): "
                     f"{_last_error(output)}")

    def _stand_in(self, spec: EnvironmentSpec, requirements: list[_Requirement], log: list[str],
                  notes: list[str]) -> BuiltEnvironment:
        """A curated environment: the base layer stands in for its prebuilt image; the note says what differs."""
        missing = [r.text for r in requirements if r.parsed is not None and r.base_version is None]
        other = [f"{r.text} (the fake has {r.base_version})" for r in requirements
                 if r.parsed is not None and r.base_version is not None and not r.satisfied]
        if missing:
            notes.append(f"curated environment {spec.curated}: not among the fake's packages: {', '.join(missing)}")
        if other:
            notes.append(f"curated environment {spec.curated}: other versions here: {', '.join(other)}")
        notes.append(f"curated environment {spec.curated}: the fake stands its own packages in for the image's")
        log.append(f"curated environment {spec.curated}: prebuilt image stood in for by the fake's packages")
        return self._built(spec, [], [], [], [], log, notes)

    def _built(self, spec: EnvironmentSpec, wheels: list[tuple[str, bytes]], install: list[str], options: list[str],
               requirements: list[_Requirement], log: list[str], notes: list[str],
               interpreter: Path | None = None) -> BuiltEnvironment:
        """The environment built from these (``interpreter``: another Python's, without the base layer)."""
        key = hashlib.sha256(json.dumps({"python": f"{sys.version_info[0]}.{sys.version_info[1]}" if interpreter is None
                                         else f"{interpreter}={_full_version(interpreter)}",
                                         "install": sorted(install), "options": options,
                                         "satisfied": sorted(r.text for r in requirements
                                                             if r.satisfied and interpreter is None),
                                         "wheels": sorted(hashlib.sha256(d).hexdigest() for _, d in wheels),
                                         "base": self.base_layer().name if interpreter is None else None}
                                        ).encode()).hexdigest()[:20]
        target = self.cache_dir / "envs" / key
        python = target / "bin" / "python"
        with self._lock, _build_lock(self.cache_dir / "envs" / f".{key}.lock"):
            started = time.time()
            if python.exists():
                self.builds.append({"key": key, "name": spec.name, "built": False, "seconds": 0.0})
                log.append(f"Environment {key} found in the cache")
                return BuiltEnvironment(python, "\n".join(log) + "\n", notes)
            partial = self.cache_dir / "envs" / f".{key}.{os.getpid()}"
            shutil.rmtree(partial, ignore_errors=True)
            partial.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._build(partial, wheels, install, options, requirements, log, notes, interpreter)
            except ImageBuildError:
                shutil.rmtree(partial, ignore_errors=True)
                raise
            try:
                partial.rename(target)
            except OSError:
                shutil.rmtree(partial, ignore_errors=True)
            self.builds.append({"key": key, "name": spec.name, "built": True, "seconds": time.time() - started})
        return BuiltEnvironment(python, "\n".join(log) + "\n", notes)

    def _pip_env(self) -> dict[str, str]:
        """pip's environment: the user's pip configuration when no index option was given, else none of it."""
        env = _tool_env(self.cache_dir / "home", keep_pip=not self.index.explicit, drop=self.client_settings)
        if self.index.explicit:
            env["PIP_CONFIG_FILE"] = os.devnull
        else:  # the user's pip configuration, though HOME is private
            env["XDG_CONFIG_HOME"] = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return env

    def _build(self, folder: Path, wheels: list[tuple[str, bytes]], install: list[str], options: list[str],
               requirements: list[_Requirement], log: list[str], notes: list[str],
               interpreter: Path | None = None) -> None:
        def run(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
            done = subprocess.run(command, capture_output=True, text=True, env=env or _tool_env(self.cache_dir / "home",
                                                                                         drop=self.client_settings))
            log.append("$ " + " ".join(command) + "\n" + done.stdout + done.stderr)
            return done

        if interpreter is not None:  # another Python: its own venv and pip, nothing of the fake's
            done = run([str(interpreter), "-m", "venv", str(folder)])
            pip = [str(folder / "bin" / "python"), "-m", "pip"]
        else:
            done = run([self.python, "-m", "venv", "--without-pip", str(folder)])
            pip = [self.python, "-m", "pip", "--python", str(folder / "bin" / "python")]
        if done.returncode != 0:
            raise ImageBuildError(f"venv failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}",
                                  "\n".join(log))
        if interpreter is None:
            self._link_base_layer(folder)
        elif install and not self.index.offline:  # the image's pip is recent; the venv's bundled one backtracks for hours
            upgraded = run([*pip, "install", "--upgrade", "--disable-pip-version-check", "--no-input", "--quiet",
                            *self.index.pip_args(), "pip"], env=self._pip_env())
            if upgraded.returncode != 0:
                notes.append(f"pip not upgraded ({_last_error(upgraded.stdout + upgraded.stderr)}): the interpreter's "
                             f"bundled pip builds the environment")
        if not wheels and not install:
            return
        self._pip_install(pip, folder, wheels, install, options, requirements, log, notes, run)

    def _link_base_layer(self, folder: Path) -> None:
        purelib = subprocess.run([str(folder / "bin" / "python"), "-c",
                                  "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True,
                                 env=_tool_env(self.cache_dir / "home", drop=self.client_settings)).stdout.strip()
        Path(purelib, "_amlstep_base_layer.pth").write_text(str(self.base_layer()) + "\n")

    def _pip_install(self, pip: list[str], folder: Path, wheels: list[tuple[str, bytes]], install: list[str],
                     options: list[str], requirements: list[_Requirement], log: list[str], notes: list[str],
                     run: Any) -> None:
        downloads = folder / "wheels"
        downloads.mkdir()
        paths = []
        for name, data in wheels:
            (downloads / name).write_bytes(data)
            paths.append(str(downloads / name))
        conda_origin = {r.text for r in requirements if r.origin == "conda"}
        while True:
            (downloads / "requirements.txt").write_text("\n".join([*options, *paths, *install]) + "\n")
            done = run([*pip, "install",
                        "--no-cache-dir", "--no-compile", "--disable-pip-version-check", "--no-input",
                        "--no-warn-script-location", "--progress-bar", "off", *self.index.pip_args(),
                        "-r", str(downloads / "requirements.txt")], env=self._pip_env())
            if done.returncode == 0:
                break
            output = done.stdout + done.stderr
            failed = re.search(r"No matching distribution found for (\S+)", output)
            dropped = failed.group(1) if failed and failed.group(1) in conda_origin else None
            if dropped is None:
                raise ImageBuildError(_last_error(output), "\n".join(log))
            install = [r for r in install if r != dropped]
            notes.append(f"conda package {dropped}: no such pip distribution in {self.index.describe()}; not "
                         f"installed (Azure installs it from conda channels)")
        shutil.rmtree(downloads)


def _full_version(python: Path) -> str:
    """``3.8.18`` of an interpreter (``?`` when it does not run)."""
    if str(python) not in _VERSIONS:
        done = subprocess.run([str(python), "-c", "import platform; print(platform.python_version())"],
                              capture_output=True, text=True, env=_tool_env())
        _VERSIONS[str(python)] = done.stdout.strip() if done.returncode == 0 else "?"
    return _VERSIONS[str(python)]


_VERSIONS: dict[str, str] = {}


def _last_error(output: str) -> str:
    """The last ``ERROR:`` line of pip's output (or its last line)."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return (errors or lines or ["pip failed"])[-1].removeprefix("ERROR: ")


CLIENT_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
                    "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")


def _python_refused(output: str) -> bool:
    """Whether pip's dry run for another Python failed for that Python (as Azure's build would), not for what a
    dry run cannot do: pip names a package that requires a different Python, or the requirement it found no
    distribution for has versions it ignored for their Requires-Python. Otherwise (say a pin that only an sdist
    meets: a dry run for another Python takes wheels only, Azure's build compiles it) the check is inconclusive."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion, Version

    if re.search(r"Package '[^']+' requires a different Python", output):
        return True
    failed = re.findall(r"No matching distribution found for (\S+)", output)
    ignored = re.findall(r"require a different python version: (.*)", output, re.IGNORECASE)
    if not failed or not ignored:
        return False
    try:
        specifier = Requirement(failed[-1]).specifier
    except InvalidRequirement:
        return True
    for part in ignored[-1].split(";"):
        version = part.strip().split(" ", 1)[0]
        try:
            if specifier.contains(Version(version), prereleases=True):
                return True
        except InvalidVersion:
            continue
    return False


def _tool_env(home: Path | None = None, keep_pip: bool = False, drop: Collection[str] = ()) -> dict[str, str]:
    """The environment for venv and pip: no PYTHONPATH, nothing from the caller's venv (nor, unless ``keep_pip``,
    its ``PIP_*`` settings), none of the proxy and CA settings whose value is in ``drop`` (the fake's own, set for
    its clients), and a private HOME (pip's helpers leave files there, e.g. ``~/.rustup/settings.toml`` via a
    rustup proxy)."""
    dropped = {value.rstrip("/") for value in drop}
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "VIRTUAL_ENV", "CONDA")) and (keep_pip or not k.startswith("PIP_"))
           and not (k in CLIENT_VARIABLES and v.rstrip("/") in dropped)}
    env["PIP_NO_INPUT"] = "1"
    if home is not None:
        home.mkdir(parents=True, exist_ok=True)
        env["HOME"] = str(home)
    return env


@dataclass
class StepProcess:
    """``python script argv...`` (or, given ``shell``, that command line run by bash, as an SDK v2 job's command
    is) in ``cwd`` with only ``env`` (plus PATH, HOME, LANG). It runs in a process group of its own, killed whole
    past ``timeout`` seconds or once ``stop`` is set (its run canceled)."""

    python: Path
    script: str
    argv: list[str]
    env: Mapping[str, str]
    cwd: Path
    home: Path
    timeout: float | None = None
    shell: str | None = None
    stop: threading.Event | None = None

    #: how often a running step looks at ``stop``
    STOP_POLL = 0.1

    def run(self) -> tuple[int, str]:
        script = self.cwd / self.script
        if self.shell is None and not script.is_file():
            return 2, f"{self.python}: can't open file {str(script)!r}: [Errno 2] No such file or directory\n"
        self.home.mkdir(parents=True, exist_ok=True)
        env = {"PATH": f"{self.python.parent}:/usr/local/bin:/usr/bin:/bin", "HOME": str(self.home),
               "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg", **self.env}
        command = ["/bin/bash", "-c", self.shell] if self.shell is not None else \
            [str(self.python), self.script, *self.argv]
        if self.stop is not None and self.stop.is_set():
            return -9, "The run was canceled before it started\n"
        process = subprocess.Popen(command, cwd=self.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        why = ""
        while True:
            wait = None if self.stop is None else self.STOP_POLL
            if deadline is not None:
                wait = max(0.0, deadline - time.monotonic()) if wait is None else \
                    min(wait, max(0.0, deadline - time.monotonic()))
            try:
                out, _ = process.communicate(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                if self.stop is not None and self.stop.is_set():
                    why = "\nThe run was canceled; its process was stopped\n"
                elif deadline is not None and time.monotonic() >= deadline:
                    why = f"\nThe run exceeded its maximum duration of {self.timeout:g} seconds and was stopped\n"
                else:
                    continue
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, 9)
                out, _ = process.communicate()
                break
        output = (out or b"").decode("utf-8", "replace")
        return (-9, output + why) if why else (process.returncode, output)
