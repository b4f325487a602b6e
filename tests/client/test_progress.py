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
