"""A one-line progress bar for terminals: step of total, loss, rate and ETA. Where the output is not
a terminal (a log, a pipe, CI) it writes nothing: no carriage-return bars in logs."""

from __future__ import annotations

import time
from typing import TextIO


class ProgressBar:
    def __init__(self, stream: TextIO, width: int = 30):
        self.stream, self.width = stream, width
        self.live = bool(getattr(stream, "isatty", lambda: False)())
        self.started: float | None = None  # when the job was first seen running: the rate counts from there
        self.first_step = 0

    def update(self, done: int, total: int, loss: float | None, status: str, unit: str = "steps") -> None:
        if not self.live:
            return
        if status == "running" and self.started is None:
            self.started, self.first_step = time.monotonic(), done
        fraction = done / total if total else 0.0
        filled = int(self.width * fraction)
        eta = ""
        if status == "running" and self.started is not None and done < total:  # queued time and ended jobs have no ETA
            elapsed = time.monotonic() - self.started
            rate = (done - self.first_step) / elapsed if elapsed > 0 else 0.0
            eta = f"ETA {((total - done) / rate):.0f}s" if rate > 0 else ""
        loss_text = f" loss {loss:.4g}" if loss is not None else ""
        line = f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} {unit}{loss_text} {status} {eta}"
        self.stream.write(line.ljust(100)[:120])
        self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()
