"""The CLI's progress bar: nothing at all where the output is not a terminal (logs, pipes, CI), and
an ETA only while the job runs, from the rate since it started running (queued time not counted)."""

from __future__ import annotations

import io
import time

from bplab.progress import ProgressBar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_when_the_output_is_not_a_terminal():
    out = io.StringIO()
    bar = ProgressBar(out)
    for step in range(0, 100, 10):
        bar.update(step, 100, 0.5, "running")
    bar.close()
    assert out.getvalue() == ""


def test_eta_counts_from_running_and_ends_with_the_job():
    out = Terminal()
    bar = ProgressBar(out)
    bar.update(0, 100, None, "queued")
    assert "ETA" not in out.getvalue()
    bar.update(10, 100, 0.7, "running")
    time.sleep(0.05)
    bar.update(20, 100, 0.6, "running")
    assert "ETA" in out.getvalue().split("\r")[-1]
    bar.update(20, 100, 0.6, "cancelled")
    assert "ETA" not in out.getvalue().split("\r")[-1] and "cancelled" in out.getvalue().split("\r")[-1]
    bar.close()
    assert out.getvalue().endswith("\n")


def test_tqdm_starts_when_the_job_runs_and_ends_with_its_state():
    from functools import partial

    from tqdm import tqdm

    from bplab.progress import TqdmProgress

    out = io.StringIO()
    bar = TqdmProgress(partial(tqdm, file=out, mininterval=0))
    bar.update(0, 100, None, "queued")
    assert out.getvalue() == ""  # no bar (and no rate) while queued
    bar.update(10, 100, 0.7, "running")
    bar.update(40, 100, 0.5, "running")
    bar.update(40, 100, 0.5, "cancelled")
    bar.close()
    last = out.getvalue().split("\r")[-1]
    assert "40/100" in last and "cancelled loss 0.5" in last


def test_where_progress_goes():
    from bplab.progress import ProgressBar, in_notebook, progress_for

    assert not in_notebook()  # pytest is no Jupyter kernel
    assert progress_for(None, io.StringIO()) is None  # a log or a pipe: nothing
    assert progress_for(False, Terminal()) is None
    assert isinstance(progress_for(None, Terminal()), ProgressBar)
