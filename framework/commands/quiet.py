"""Keep the CLI's output amlstep's own while a remote backend's SDK works: its noise goes to a log file.

The Azure ML SDKs warn (dozens of ``DeprecationWarning``\\ s from their dependencies) and draw upload
progress bars on stderr. While ``amlstep run`` drives a backend other than the local one, warnings
and whatever the SDK writes to ``sys.stderr`` go to ``<workspace>/logs/sdk.log`` instead. amlstep's
own messages are unaffected: the backend's ``echo`` stream, the live display and the command's
result were bound to the real stderr before.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, TextIO

SDK_LOG = Path("logs") / "sdk.log"


@contextlib.contextmanager
def sdk_output_to_log(workspace_path: Path, what: str) -> Iterator[Path]:
    """Send warnings and stray stderr writes to ``<workspace>/logs/sdk.log`` for the block (to nowhere when the
    workspace has no ``logs`` folder yet, as before a first run: a dry run creates no workspace); yields the log."""
    path = Path(workspace_path) / SDK_LOG
    if not path.parent.is_dir():
        path = Path(os.devnull)
    with open(path, "a", encoding="utf-8", buffering=1) as log, warnings.catch_warnings():
        log.write(f"-- {time.strftime('%Y-%m-%d %H:%M:%S')} {what}\n")
        warnings.simplefilter("default")

        def to_log(message: Any, category: type[Warning], filename: str, lineno: int, file: TextIO | None = None,
                   line: str | None = None) -> None:
            log.write(warnings.formatwarning(message, category, filename, lineno, line))

        warnings.showwarning = to_log
        with contextlib.redirect_stderr(log):
            try:
                yield path
            finally:
                sys.stderr.flush()
