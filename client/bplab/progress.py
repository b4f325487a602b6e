"""Progress while waiting for a job or a sweep: tqdm's notebook widget in Jupyter (with the
`[notebook]` extra), a one-line bar on a terminal, nothing anywhere else (a log, a pipe, CI: no
carriage-return bars in logs). The ETA counts from when the job started running, never queued time."""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol, TextIO


class Progress(Protocol):
    def update(self, done: int, total: int, loss: float | None, status: str, unit: str = "steps") -> None: ...
    def close(self) -> None: ...


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (IPython's ZMQ shell), where stderr is no terminal but a person watches."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def progress_for(show: bool | None, stream: TextIO | None = None) -> Progress | None:
    """The bar to show: `show=None` decides by where the output goes, False shows none."""
    stream = stream or sys.stderr
    if show is False:
        return None
    if in_notebook():
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return None
        return TqdmProgress(tqdm)
    live = bool(getattr(stream, "isatty", lambda: False)())
    return ProgressBar(stream) if live or show else None


class ProgressBar:
    """The terminal's bar: step of total, loss, state and ETA on one line redrawn with `\\r`."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
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


class TqdmProgress:
    """tqdm's bar (in a notebook, its widget), created when the job starts running so its rate and
    ETA leave queued time out; the state and loss ride in its postfix."""

    def __init__(self, tqdm_class: type, **options: Any) -> None:
        self.tqdm_class, self.options, self.bar = tqdm_class, options, None

    def update(self, done: int, total: int, loss: float | None, status: str, unit: str = "steps") -> None:
        if self.bar is None:
            if status == "queued":
                return
            self.bar = self.tqdm_class(total=total, initial=done, unit=unit.rstrip("s") or unit, **self.options)
        self.bar.update(done - self.bar.n)
        self.bar.set_postfix_str(f"{status}" + (f" loss {loss:.4g}" if loss is not None else ""), refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
