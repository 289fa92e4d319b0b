"""The fake's compute: environments built from what a job declares, and step processes run in them.

**Environments.** Azure builds an image per environment: conda + ``pip install`` of the declared
requirements. The fake builds a venv instead and keeps it, keyed by what was declared (the pip
lines, with each shipped wheel by its sha256), so a test session builds each environment once:

- heavy libraries come from a *base layer*: the site-packages of the interpreter running the fake,
  seen through a folder of links that leaves out every editable install (``__editable__*``
  finders, ``.pth`` files) and every distribution that declares ``amlstep`` entry points (amlstep
  itself and step plugins). So a step can import pandas or scikit-learn without installing them,
  but never the developer's checkout of a plugin: plugin code comes only from a shipped wheel;
- a named requirement (``pandas==2.2.3``) must be satisfied by a distribution of the base layer,
  else the build fails with pip's message naming it, as Azure's image build log does;
- a requirement that is a URL must be a wheel in the fake's blob store (where
  ``Environment.add_private_pip_wheel`` uploads); it is installed with ``pip install --no-deps``;
- option lines (``--extra-index-url ...``) are ignored: there is no index.

**Processes.** A step runs as ``<venv python> <script> <arguments>`` in its snapshot folder, with
an environment made from nothing but what Azure's compute sets (run id, workspace, token, service
endpoints, data paths) plus a private ``HOME``; its output is the step's log.
"""

from __future__ import annotations

import hashlib
import json
import os
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
from typing import TYPE_CHECKING, Mapping

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


class Compute:
    """Builds and caches step environments under ``cache_dir``."""

    def __init__(self, cache_dir: Path, python: str | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.python = python or sys.executable
        self._lock = threading.Lock()
        self._base: Path | None = None
        self._base_dists: dict[str, str] | None = None
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
            self._base_dists = {_canonical(d.metadata["Name"]): d.version
                                for d in metadata.distributions(path=[str(self.base_layer())])
                                if d.metadata["Name"]}
        return self._base_dists

    # -- environments ------------------------------------------------------------------------------
    def environment(self, spec: EnvironmentSpec, blob: BlobStore) -> Path:
        """The python of the environment ``spec`` declares, built on first use."""
        from .blobstore import parse_blob_url

        log: list[str] = [f"Building environment {spec.name!r} (python {spec.python or 'as the base image'})"]
        wheels: list[tuple[str, bytes]] = []
        named: list[str] = []
        for line in spec.pip:
            text = line.strip()
            if not text or text.startswith("-"):
                continue
            if text.startswith(("http://", "https://")):
                where = parse_blob_url(text)
                if where is None or where[0] != blob.account or not blob.exists(where[1], where[2]):
                    log.append(f"ERROR: Could not install requirement {text} because of HTTP error 404 Client "
                               f"Error: The specified blob does not exist. for URL {text}")
                    raise ImageBuildError(f"could not fetch {text}: no such blob in the workspace's storage",
                                          "\n".join(log))
                wheels.append((Path(where[2]).name, blob.get(where[1], where[2])))
            else:
                named.append(text)
        self._check_named(named, log)
        key = hashlib.sha256(json.dumps({"python": f"{sys.version_info[0]}.{sys.version_info[1]}",
                                         "named": sorted(named),
                                         "wheels": sorted(hashlib.sha256(d).hexdigest() for _, d in wheels),
                                         "base": self.base_layer().name}).encode()).hexdigest()[:20]
        target = self.cache_dir / "envs" / key
        python = target / "bin" / "python"
        with self._lock:
            started = time.time()
            if python.exists():
                self.builds.append({"key": key, "name": spec.name, "built": False, "seconds": 0.0})
                return python
            partial = self.cache_dir / "envs" / f".{key}.{os.getpid()}"
            shutil.rmtree(partial, ignore_errors=True)
            partial.parent.mkdir(parents=True, exist_ok=True)
            self._build(partial, wheels, log)
            try:
                partial.rename(target)
            except OSError:
                shutil.rmtree(partial, ignore_errors=True)
            self.builds.append({"key": key, "name": spec.name, "built": True, "seconds": time.time() - started})
        return python

    def _check_named(self, named: list[str], log: list[str]) -> None:
        from packaging.requirements import InvalidRequirement, Requirement

        available = self.base_distributions()
        for text in named:
            try:
                requirement = Requirement(text)
            except InvalidRequirement as exc:
                log.append(f"ERROR: Invalid requirement: {text!r}: {exc}")
                raise ImageBuildError(f"invalid requirement {text!r}", "\n".join(log)) from None
            if requirement.marker is not None and not requirement.marker.evaluate():
                continue
            version = available.get(_canonical(requirement.name))
            if version is None or (requirement.specifier and not requirement.specifier.contains(version,
                                                                                                prereleases=True)):
                versions = f"(from versions: {version})" if version else "(from versions: none)"
                log.append(f"ERROR: Could not find a version that satisfies the requirement {text} {versions}")
                log.append(f"ERROR: No matching distribution found for {text}")
                raise ImageBuildError(f"No matching distribution found for {text}", "\n".join(log))
            log.append(f"Requirement already satisfied: {text} (base image has {requirement.name} {version})")

    def _build(self, folder: Path, wheels: list[tuple[str, bytes]], log: list[str]) -> None:
        def run(command: list[str]) -> None:
            done = subprocess.run(command, capture_output=True, text=True, env=_tool_env(self.cache_dir / "home"))
            log.append("$ " + " ".join(command) + "\n" + done.stdout + done.stderr)
            if done.returncode != 0:
                raise ImageBuildError(f"{Path(command[0]).name} {' '.join(command[1:3])} failed: "
                                      f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}", "\n".join(log))

        run([self.python, "-m", "venv", "--without-pip", str(folder)])
        purelib = subprocess.run([str(folder / "bin" / "python"), "-c",
                                  "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True,
                                 env=_tool_env(self.cache_dir / "home")).stdout.strip()
        Path(purelib, "_amlstep_base_layer.pth").write_text(str(self.base_layer()) + "\n")
        if wheels:
            downloads = folder / "wheels"
            downloads.mkdir()
            paths = []
            for name, data in wheels:
                (downloads / name).write_bytes(data)
                paths.append(str(downloads / name))
            run([self.python, "-m", "pip", "--python", str(folder / "bin" / "python"), "install", "--no-deps",
                 "--no-index", "--no-cache-dir", "--no-compile", "--disable-pip-version-check",
                 "--no-warn-script-location", "-q", *paths])
            shutil.rmtree(downloads)


def _tool_env(home: Path | None = None) -> dict[str, str]:
    """The environment for venv and pip: no PYTHONPATH, no index, nothing from the caller's venv, and a
    private HOME (pip's helpers leave files there, e.g. ``~/.rustup/settings.toml`` via a rustup proxy)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV", "CONDA"))} | {"PIP_NO_INPUT": "1"}
    if home is not None:
        home.mkdir(parents=True, exist_ok=True)
        env["HOME"] = str(home)
    return env


@dataclass
class StepProcess:
    """``python script argv...`` (or, given ``shell``, that command line run by bash, as an SDK v2 job's command
    is) in ``cwd`` with only ``env`` (plus PATH, HOME, LANG)."""

    python: Path
    script: str
    argv: list[str]
    env: Mapping[str, str]
    cwd: Path
    home: Path
    timeout: float | None = None
    shell: str | None = None

    def run(self) -> tuple[int, str]:
        script = self.cwd / self.script
        if self.shell is None and not script.is_file():
            return 2, f"{self.python}: can't open file {str(script)!r}: [Errno 2] No such file or directory\n"
        self.home.mkdir(parents=True, exist_ok=True)
        env = {"PATH": f"{self.python.parent}:/usr/local/bin:/usr/bin:/bin", "HOME": str(self.home),
               "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg", **self.env}
        try:
            command = ["/bin/bash", "-c", self.shell] if self.shell is not None else \
                [str(self.python), self.script, *self.argv]
            done = subprocess.run(command, cwd=self.cwd, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            output = (exc.stdout or b"").decode("utf-8", "replace")
            return -9, output + f"\nThe run exceeded its maximum duration of {self.timeout:g} seconds and was stopped\n"
        return done.returncode, done.stdout.decode("utf-8", "replace")
