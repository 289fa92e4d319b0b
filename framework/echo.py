"""The stream a run echoes its progress to, until writing to it fails."""

from __future__ import annotations

import io
from typing import TextIO


class Echo(io.TextIOBase):
    """``stream`` until a write or flush to it fails (a pipe whose reader is gone: ``amlstep run ... | head``): then
    nothing more. The steps' log files and the run history keep every line, so a closed terminal fails no run and no
    step."""

    def __init__(self, stream: TextIO) -> None:
        self.stream: TextIO | None = stream

    def write(self, text: str) -> int:
        if self.stream is not None:
            try:
                self.stream.write(text)
                self.stream.flush()
            except OSError:  # BrokenPipeError, mostly
                self.stream = None
        return len(text)

    def flush(self) -> None:
        if self.stream is not None:
            try:
                self.stream.flush()
            except OSError:
                self.stream = None
