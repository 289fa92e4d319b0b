"""What Azure ML's image build knows, from Microsoft's sources: base images, curated environments' table,
Python versions, conda packages read as pip distributions.

``data/curated_environments.json`` is derived (``data/derive_curated.py``) from Azure/azureml-assets (each
curated environment's definition) and Azure/AzureML-Containers (the base images' release notes); the
commits and paths are in the file. Nothing here knows the engine: :mod:`.environments` reads what the APIs
send into an :class:`~.engine.EnvironmentSpec`, :mod:`.compute` builds it with these.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data" / "curated_environments.json"
MCR_AZUREML = "mcr.microsoft.com/azureml/"
# azureml-core's default conda specification (azureml/core/conda_dependencies.py, 1.61): "Currently Azure
# ML only supports 3.8 and later."
MINIMUM_PYTHON = (3, 8)
# conda packages whose pip distribution has another name
CONDA_TO_PIP = {"py-xgboost": "xgboost", "py-xgboost-cpu": "xgboost", "pytorch": "torch", "pytorch-cpu": "torch",
                "py-opencv": "opencv-python", "matplotlib-base": "matplotlib", "tensorflow-gpu": "tensorflow",
                "lightgbm-cpu": "lightgbm", "pyyaml": "PyYAML", "pytables": "tables", "msgpack-python": "msgpack",
                "python-dateutil": "python-dateutil", "scikit-learn-intelex": "scikit-learn-intelex"}
# conda packages that the build tooling provides (the fake builds with its own pip)
CONDA_TOOLING = {"pip", "setuptools", "wheel", "conda", "python_abi"}
# conda packages that are not Python distributions (system libraries, compilers, CUDA, MPI...)
CONDA_NOT_PYTHON = re.compile(r"^(_.*|lib.*|mkl.*|intel-openmp|blas|openblas|cudatoolkit|cuda.*|cudnn|nccl|openmpi|"
                              r"mpich|gcc.*|gxx.*|gfortran.*|ca-certificates|certifi-conda|openssl|tk|xz|zlib|"
                              r"ncurses|readline|sqlite|bzip2|ld_impl.*|r-.*|r|nodejs|git|make|cmake|swig|"
                              r"graphviz|ffmpeg|llvm.*|tbb|icu|pcre.*|jpeg|libpng|freetype)$")


@lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    """The shipped table: ``source``, ``environments`` (curated), ``base_images``."""
    return json.loads(DATA.read_text())


def source_note() -> str:
    src = table()["source"]
    return f"{src['repository']}@{src['commit'][:12]}"


# -- base images ---------------------------------------------------------------------------------
def split_image(image: str) -> tuple[str, str]:
    """``(repository, tag)`` of an image reference (``latest`` when no tag; a digest counts as a tag)."""
    text = image.strip()
    if "@" in text:
        repository, digest = text.split("@", 1)
        return repository, digest
    last = text.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = text.rsplit(":", 1)
        return repository, tag
    return text, "latest"


def check_image(image: str | None) -> tuple[str | None, list[str]]:
    """``(python of the image when known, notes)``; raises :class:`ImageMissing` for an image in Azure ML's
    namespace that Microsoft never published (the build's ``docker pull`` fails)."""
    if not image:
        return None, []
    repository, tag = split_image(image)
    if repository.lower().startswith(MCR_AZUREML):
        known = {i["name"].lower(): i for i in table()["base_images"]}
        entry = known.get(repository.lower())
        if entry is None:
            raise ImageMissing(image, repository, tag)
        notes = [f"base image {image}: the fake runs the environment on this machine, not in the image"]
        if not entry["supported"]:
            notes.append(f"base image {repository} is deprecated (not in the supported images of "
                         f"{table()['base_images_source']['repository']}); Azure still pulls released tags")
        if re.search(r"cuda", repository, re.IGNORECASE):
            notes.append(f"base image {repository} is a GPU image; the fake runs on this machine's CPU")
        return entry.get("python"), notes
    bare = repository.lower().removeprefix("docker.io/").removeprefix("library/")
    if bare == "python":
        found = re.match(r"^(\d+)\.(\d+)", tag)
        if found:
            return f"{found.group(1)}.{found.group(2)}", [f"base image {image}: Docker Hub's Python {found.group(1)}."
                                                          f"{found.group(2)} image, run as a virtual environment"]
        return None, [f"base image {image}: Docker Hub's Python image of tag {tag!r} (its newest Python); the fake "
                      f"runs the environment on its own Python"]
    return None, [f"base image {image}: an image outside Azure ML's registry, not checked (the fake cannot pull "
                  f"images); the environment runs on this machine"]


class ImageMissing(Exception):
    """A base image that does not exist: the image build's ``docker pull`` fails."""

    def __init__(self, image: str, repository: str, tag: str) -> None:
        self.image = image
        known = sorted(i["name"].removeprefix(MCR_AZUREML) for i in table()["base_images"] if i["supported"]
                       and not i["name"].startswith(MCR_AZUREML + "curated/"))
        from framework.errors import did_you_mean

        hint = did_you_mean(repository.removeprefix(MCR_AZUREML), known)
        self.log = (f"Step 1/N : FROM {image}\n"
                    f"Error response from daemon: manifest for {repository}:{tag} not found: manifest unknown: "
                    f"manifest tagged by \"{tag}\" is not found\n")
        super().__init__(f"base image {image} was not found: manifest unknown{hint}; Azure ML's supported base "
                         f"images: {', '.join(MCR_AZUREML + k for k in known)}")


def python_version(spec: str | None) -> tuple[int, int] | None:
    """``(3, 10)`` of a conda python spec (``3.10``, ``3.10.4``, ``3.10.*``, ``>=3.10``), None when unreadable."""
    found = re.search(r"(\d+)\.(\d+)", spec or "")
    return (int(found.group(1)), int(found.group(2))) if found else None


def conda_to_pip(package: str) -> tuple[str | None, str | None]:
    """``(pip requirement, note)`` for a conda package spec: ``numpy=1.22`` -> ``numpy==1.22.*``; conda's tooling
    and packages that are not Python distributions give ``(None, note)``."""
    text = package.split("::")[-1].split("#")[0].strip()
    found = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", text)
    if not found:
        return None, f"conda package {package!r} not read"
    name, version = found.group(1), found.group(2).strip()
    lowered = name.lower()
    if lowered in CONDA_TOOLING:
        return None, f"conda package {package}: the fake builds with its own {lowered}"
    if CONDA_NOT_PYTHON.match(lowered):
        return None, f"conda package {package} is not a Python distribution; not installed (Azure installs it " \
                     f"from conda channels)"
    pip_name = CONDA_TO_PIP.get(lowered, name)
    if version:
        parts = version.split("=")
        if version.startswith("=") and not version.startswith("=="):      # name=1.2 (conda's fuzzy pin)
            pinned = version.lstrip("=").split("=")[0]
            version = f"=={pinned}" + ("" if pinned.endswith("*") else ".*")
        elif version[0].isdigit():                                        # "name 1.2.*" (space form)
            pinned = parts[0].split()[0]
            version = f"=={pinned}"
        elif version.startswith("=="):
            version = "==" + version[2:].split("=")[0]
    note = None if pip_name == name else f"conda package {name} installed as the pip distribution {pip_name}"
    return f"{pip_name}{version}", note
