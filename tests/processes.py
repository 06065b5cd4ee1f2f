"""Starting and stopping what the tests and scripts/run.sh start (standard library only: run.sh
has no pytest).

A server must die with the run however the run ends (issue #22, item 3). Each one is started
in its own process group (so one killpg reaches its workers too: gunicorn's, nginx's) and with
a parent-death signal (Linux ``PR_SET_PDEATHSIG``: the kernel SIGKILLs it when the process
that started it dies, even by SIGKILL). :func:`stop_all_at_exit` (tests/conftest.py calls
it) kills every group still running when the interpreter exits, and turns SIGTERM into
KeyboardInterrupt after killing them, so pytest still tears its fixtures down as after Ctrl-C.
tests/test_interrupted_run.py interrupts a real run both ways and looks for survivors.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import os
import signal
import subprocess
import sys
from typing import Any

PR_SET_PDEATHSIG = 1
RUNNING: dict[int, subprocess.Popen] = {}  # type: ignore[type-arg]  # process group -> its leader, until stopped


def _die_with(parent: int) -> None:
    """In the child, before exec: SIGKILL me when ``parent`` dies (Linux; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # it died before the signal was set
            os._exit(1)


def spawn(command: list[str], **options: Any) -> subprocess.Popen:  # type: ignore[type-arg]
    """``subprocess.Popen`` in a new session (its own process group), dying with this process,
    remembered until :func:`stop`."""
    process = subprocess.Popen(command, start_new_session=True, preexec_fn=functools.partial(_die_with, os.getpid()), **options)  # noqa: PLW1509
    RUNNING[process.pid] = process
    return process


def stop(process: subprocess.Popen) -> None:  # type: ignore[type-arg]
    """SIGTERM the process group, then SIGKILL it if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=10)
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait(timeout=10)
    _kill_group(process.pid)  # workers the leader left behind (it is gone; they share its group)
    RUNNING.pop(process.pid, None)


def _kill_group(group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_all() -> None:
    """SIGKILL every group still running (the run is ending: no time for graceful stops)."""
    for group in list(RUNNING):
        _kill_group(group)
        RUNNING.pop(group, None)


def _on_sigterm(signum: int, frame: object) -> None:
    kill_all()
    signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM ends the run at once
    raise KeyboardInterrupt  # pytest then tears down and reports, as after Ctrl-C


def stop_all_at_exit() -> None:
    """Servers die with this process: at exit, and on SIGTERM (see the module's docstring)."""
    atexit.register(kill_all)
    signal.signal(signal.SIGTERM, _on_sigterm)
