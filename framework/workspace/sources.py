"""Fetching dataset sources: local files, or URLs downloaded once into the workspace cache."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import WorkspaceError

DOWNLOAD_TIMEOUT_SECONDS = 30


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def fetch(source: str, cache_dir: Path) -> Path:
    """A local path for ``source``: the file itself, or a cached download of the URL."""
    if not is_url(source):
        path = Path(source).expanduser()
        if not path.is_file():
            raise WorkspaceError(f"dataset source {source!r} does not exist or is not a file")
        if not os.access(path, os.R_OK):
            raise WorkspaceError(f"dataset source {source!r} is not readable")
        return path
    name = os.path.basename(source.split("?", 1)[0]) or "download"
    target = cache_dir / f"{hashlib.sha256(source.encode()).hexdigest()[:16]}-{name}"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".download-")
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(source, timeout=DOWNLOAD_TIMEOUT_SECONDS) as resp:
            shutil.copyfileobj(resp, out)
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        Path(tmp).unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise WorkspaceError(f"could not download {source}: {reason}") from exc
    return target
