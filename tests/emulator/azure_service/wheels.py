"""Tiny wheels built by the tests, so that environment builds install from a local folder: never from an index."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path
from typing import Sequence


def make_wheel(folder: Path, name: str, version: str, *, code: str = "", requires_python: str | None = None,
               requires: Sequence[str] = ()) -> Path:
    """A pure-Python wheel of one module ``<name>.py`` holding ``code`` (a valid wheel: METADATA, WHEEL, RECORD)."""
    folder.mkdir(parents=True, exist_ok=True)
    module = name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        metadata.append(f"Requires-Python: {requires_python}")
    metadata += [f"Requires-Dist: {r}" for r in requires]
    files = {f"{module}.py": (code or f"VERSION = {version!r}\n").encode(),
             f"{info}/METADATA": ("\n".join(metadata) + "\n").encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: amlstep-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    target = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return target
