"""A one-line progress bar for terminals: step of total, loss, rate and ETA."""

from __future__ import annotations

import time
from typing import TextIO


class ProgressBar:
    def __init__(self, stream: TextIO, width: int = 30):
        self.stream, self.width = stream, width
        self.started = time.monotonic()
        self.first_step: int | None = None

    def update(self, done: int, total: int, loss: float | None, status: str, unit: str = "steps") -> None:
        if self.first_step is None:
            self.first_step = done
        fraction = done / total if total else 0.0
        filled = int(self.width * fraction)
        elapsed = time.monotonic() - self.started
        rate = (done - self.first_step) / elapsed if elapsed > 0 else 0.0
        eta = f"ETA {((total - done) / rate):.0f}s" if rate > 0 and done < total else ""
        loss_text = f" loss {loss:.4g}" if loss is not None else ""
        line = f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} {unit}{loss_text} {status} {eta}"
        self.stream.write(line.ljust(100)[:120])
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()
