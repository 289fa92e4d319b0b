"""Derive ``curated_environments.json`` from a clone of Microsoft's Azure/azureml-assets repository.

Each curated environment of the ``azureml`` registry is defined there under
``assets/<area>/environments/<name>/``: ``asset.yaml`` (its name), ``spec.yaml`` (description, tags),
``context/Dockerfile`` (the base image it is built ``FROM``) and, for most, ``context/conda_dependencies.yaml``
(Python version, conda and pip packages). This script reads those files at one commit and writes the
table the fake service ships: facts about each environment (names, image, Python, package specs),
with the source (repository, commit, path) of each, never the files themselves.

    python derive_curated.py ASSETS_GIT_DIR CONTAINERS_GIT_DIR > curated_environments.json

The base images (``mcr.microsoft.com/azureml/<name>``) come from the README of Azure/AzureML-Containers
(Microsoft's release notes of Azure ML's base images: the supported ones in its table, and every image
its history names, since "all released image versions remain available after the deprecation date"),
and from the images the curated environments are built ``FROM``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

# the curated environments the fake knows by name: the ones Microsoft's examples (Azure/azureml-examples)
# use, and the common general-purpose ones
WANTED = ("training/general/environments/sklearn-1.5", "training/general/environments/sklearn-1.1",
          "training/general/environments/sklearn-1.0", "training/general/environments/lightgbm-3.3",
          "training/general/environments/tensorflow-2.16-cuda12", "training/general/environments/tensorflow-2.16-cuda11",
          "training/general/environments/acpt-pytorch-2.8-cuda12.6", "training/automl/environments/ai-ml-automl",
          "pipelines/environments/mldesigner", "pipelines/environments/mldesigner-minimal",
          "inference/environments/minimal-py311-inference", "inference/environments/mlflow-py312-inference")
REPOSITORY = "Azure/azureml-assets"
CONTAINERS = "Azure/AzureML-Containers"
MCR = "mcr.microsoft.com/azureml/"


def base_images(containers_git: str, assets_git: str, assets_commit: str) -> tuple[str, list[dict[str, object]]]:
    """(commit, images): every ``mcr.microsoft.com/azureml`` base image the release notes ever named, and
    those the curated environments are built from; the supported ones (the README's table today) with the
    Python of their Miniconda."""
    def git(*args: str, git_dir: str = containers_git) -> str:
        return subprocess.run(["git", "--git-dir", git_dir, *args], capture_output=True, text=True,
                              check=True).stdout

    commit = git("rev-parse", "HEAD").strip()
    readme = git("show", f"{commit}:README.md")
    supported = {}
    for row in re.finditer(r"^\| *((?:openmpi|intelmpi)[^ |]+) *\|[^|]*\|([^|]*)\|", readme, re.MULTILINE):
        found = re.search(r"py3(\d+)", row.group(2))
        supported[row.group(1)] = f"3.{found.group(1)}" if found else None
    named: set[str] = set(supported)
    for old in git("log", "--format=%H", "--", "README.md").split():
        text = git("show", f"{old}:README.md")
        named.update(re.findall(r"\b((?:openmpi|intelmpi)[0-9.]+-[a-z0-9.-]*ubuntu[0-9]+\.[0-9]+)\b", text))
    assets = git("grep", "-h", "-o", "-E", "FROM mcr.microsoft.com/azureml/[A-Za-z0-9._/-]+", assets_commit,
                 git_dir=assets_git)
    named.update(line.split(MCR, 1)[1] for line in assets.splitlines() if MCR in line)
    images = [{"name": MCR + name, "supported": name in supported, "python": supported.get(name)}
              for name in sorted(named)]
    return commit, images


def show(git_dir: str, commit: str, path: str) -> str | None:
    done = subprocess.run(["git", "--git-dir", git_dir, "show", f"{commit}:{path}"], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def unpinned(spec: str) -> str:
    """``azureml-core=={{latest-pypi-version}}`` (a template the asset build fills in) -> ``azureml-core``."""
    return re.sub(r"\s*[=<>~!]=?\s*\{\{[^}]*\}\}", "", spec).split("#")[0].strip()


def derive(git_dir: str, commit: str, containers_git: str) -> dict[str, object]:
    import yaml  # type: ignore[import-untyped]

    environments = []
    for folder in WANTED:
        base = f"assets/{folder}"
        asset = yaml.safe_load(show(git_dir, commit, f"{base}/asset.yaml") or "{}")
        spec = yaml.safe_load(show(git_dir, commit, f"{base}/spec.yaml") or "{}") or {}
        dockerfile = show(git_dir, commit, f"{base}/context/Dockerfile") or ""
        stages = [line.split()[1] for line in dockerfile.splitlines() if line.upper().startswith("FROM ")]
        image = stages[-1].split(":{{")[0] if stages else None
        conda_text = show(git_dir, commit, f"{base}/context/conda_dependencies.yaml")
        python, conda, pip = None, [], []
        if conda_text:
            for item in (yaml.safe_load(conda_text) or {}).get("dependencies") or []:
                if isinstance(item, dict):
                    pip += [unpinned(str(p)) for p in item.get("pip") or []]
                elif str(item).startswith("python="):
                    python = str(item).split("=", 1)[1]
                else:
                    conda.append(str(item).split("#")[0].strip())
        else:
            found = re.search(r"python=(\d+\.\d+)", dockerfile)
            python = found.group(1) if found else None
        name = asset["name"]
        environments.append({
            "name": name, "workspace_name": f"AzureML-{name}", "path": base,
            "description": " ".join(str(spec.get("description") or "").split()),
            "image": image, "gpu": bool(re.search(r"cuda|gpu", f"{image} {name}", re.IGNORECASE)),
            "python": python or (spec.get("tags") or {}).get("Python"),
            "conda": conda, "pip": [p for p in pip if p],
            "packages_listed": conda_text is not None,
        })
    containers_commit, images = base_images(containers_git, git_dir, commit)
    listing = subprocess.run(["git", "--git-dir", git_dir, "ls-tree", "-r", "--name-only", commit, "assets"],
                             capture_output=True, text=True, check=True).stdout
    # every curated environment's image is published as mcr.microsoft.com/azureml/curated/<name>
    curated = sorted({m.group(1) for m in re.finditer(r"/environments/([^/]+)/asset\.yaml$", listing, re.MULTILINE)})
    images += [{"name": f"{MCR}curated/{name}", "supported": True, "python": None} for name in curated
               if not any(i["name"] == f"{MCR}curated/{name}" for i in images)]
    return {"source": {"repository": REPOSITORY, "commit": commit,
                       "note": "derived by emulator/azure_service/data/derive_curated.py from each environment's "
                               "asset.yaml, spec.yaml, context/Dockerfile and context/conda_dependencies.yaml"},
            "base_images_source": {"repository": CONTAINERS, "commit": containers_commit, "path": "README.md",
                                   "note": "the supported images' table, and every image named in the file's "
                                           "history; plus the images the curated environments above are built "
                                           "FROM"},
            "environments": environments, "base_images": images}


if __name__ == "__main__":
    git_dir, containers = sys.argv[1], sys.argv[2]
    commit = subprocess.run(["git", "--git-dir", git_dir, "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    json.dump(derive(git_dir, commit, containers), sys.stdout, indent=1)
    sys.stdout.write("\n")
