"""`python -m services.up.bound -- COMMAND ...`: run COMMAND so that it dies with `make up`.

supervisord starts each program in a process group of its own, so when `make up` is killed hard (a
SIGKILL of its group, a closed terminal) supervisord dies and its programs would live on, holding
their ports (the next `make up` then finds them taken). Each program is started through this wrapper
instead: it runs COMMAND in its own process group (the one supervisord gave it) and, the moment its
parent is gone (it is reparented) or it is told to stop, ends the whole group, COMMAND's children
included (Celery's pool, MLflow's uvicorn): SIGTERM, then SIGKILL after STOP_SECONDS.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time

STOP_SECONDS = 15.0
PR_SET_PDEATHSIG = 1
WATCH_SECONDS = 0.5


def _end_group(child: subprocess.Popen) -> None:
    """SIGTERM to the group (this process's handler, `stop`, has already run), then SIGKILL to what is
    left, this process included. Runs on a thread of its own (signal handlers cannot be set here)."""
    group = os.getpgrp()
    try:
        os.killpg(group, signal.SIGTERM)
        child.wait(STOP_SECONDS)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        pass
    os.killpg(group, signal.SIGKILL)


def _die_with_parent() -> None:
    """In the child before it execs COMMAND: SIGKILL it if this wrapper dies (Linux's PR_SET_PDEATHSIG),
    so even a wrapper killed outright leaves no program behind."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def main(argv: list[str]) -> int:
    command = argv[1:] if argv[:1] == ["--"] else argv
    if not command:
        raise SystemExit("usage: python -m services.up.bound -- COMMAND [ARGS...]")
    if os.getpgrp() != os.getpid():
        os.setpgid(0, 0)  # a group of our own to end whole (supervisord already gives one)
    parent = os.getppid()
    child = subprocess.Popen(command, preexec_fn=_die_with_parent)
    stopping = threading.Event()

    def stop(*_args: object) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=_end_group, args=(child,), daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def watch() -> None:
        while child.poll() is None:
            if os.getppid() != parent:  # supervisord died, however it died
                stop()
                return
            time.sleep(WATCH_SECONDS)

    threading.Thread(target=watch, daemon=True).start()
    code = child.wait()
    if stopping.is_set():
        while True:  # _end_group ends the group, this process with it
            time.sleep(1)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # it exited by itself: nothing of it may outlive it either
    os.killpg(os.getpgrp(), signal.SIGTERM)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
