"""Starting and stopping what the tests and scripts/run.sh start (standard library only: run.sh
has no pytest).

A server must die with the run however the run ends (issue #22, item 3). Each one is started
in its own process group (so one killpg reaches its workers too: gunicorn's, nginx's) and with
a parent-death signal (Linux ``PR_SET_PDEATHSIG``: the kernel SIGKILLs it when the process
that started it dies, even by SIGKILL). :func:`stop_all_at_exit` (tests/conftest.py calls
it) kills every group still running when the interpreter exits, and turns SIGTERM into
KeyboardInterrupt after killing them, so pytest still tears its fixtures down as after Ctrl-C.
A run killed outright (SIGKILL) leaves the groups' other members (nginx's workers outlive their
master): each group is noted in .test-servers/ with the run that started it, and the next run
kills the groups of runs that are gone. tests/test_interrupted_run.py interrupts a real run
each way and looks for survivors.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1
RUNNING: dict[int, subprocess.Popen] = {}  # type: ignore[type-arg]  # process group -> its leader, until stopped
NOTES = Path(__file__).resolve().parent.parent / ".test-servers"  # one file per group a test run started
_noting = False  # only test runs note their groups (scripts/run.sh uses the launchers too)


def _die_with(parent: int) -> None:
    """In the child, before exec: SIGKILL me when ``parent`` dies (Linux; elsewhere a no-op). And
    Ctrl-C works on it whoever started this run: a shell that runs a job in the background without
    job control starts it with SIGINT ignored, which every child would inherit (issue #29, item 3)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # it died before the signal was set
            os._exit(1)


def spawn(command: list[str], **options: Any) -> subprocess.Popen:  # type: ignore[type-arg]
    """``subprocess.Popen`` in a new session (its own process group), dying with this process,
    remembered until :func:`stop`."""
    process = subprocess.Popen(command, start_new_session=True, preexec_fn=functools.partial(_die_with, os.getpid()), **options)
    RUNNING[process.pid] = process
    if _noting:
        NOTES.mkdir(exist_ok=True)
        (NOTES / str(process.pid)).write_text(json.dumps({"run": os.getpid(), "started": _start_time(os.getpid())}))
    return process


def _start_time(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot): a PID and its start time name one process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _forget(group: int) -> None:
    RUNNING.pop(group, None)
    (NOTES / str(group)).unlink(missing_ok=True)


def reap_leftovers() -> None:
    """Kill the groups noted by runs that are gone (killed before they could stop them)."""
    for note in NOTES.glob("*") if NOTES.is_dir() else ():
        try:
            run = json.loads(note.read_text())
            group = int(note.name)
        except (OSError, ValueError):
            note.unlink(missing_ok=True)
            continue
        if run["started"] is not None and _start_time(run["run"]) == run["started"]:
            continue  # that run is still going (another terminal)
        if _session_leaders(group):
            _kill_group(group)
        note.unlink(missing_ok=True)


def _session_leaders(group: int) -> bool:
    """Whether processes of ``group`` are still in the session it was started as (a group a
    reused PID made since would not be)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and int(fields[3]) == group:
            return True
    return False


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
    _forget(process.pid)


def _kill_group(group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_all() -> None:
    """SIGKILL every group still running (the run is ending: no time for graceful stops)."""
    for group in list(RUNNING):
        _kill_group(group)
        _forget(group)


def _on_sigterm(signum: int, frame: object) -> None:  # noqa: ARG001 - signal.signal's handler signature
    kill_all()
    signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM ends the run at once
    raise KeyboardInterrupt  # pytest then tears down and reports, as after Ctrl-C


def stop_all_at_exit() -> None:
    """Servers die with this process: at exit, on SIGTERM, and, if it is killed outright, at the
    next run (see the module's docstring)."""
    global _noting
    _noting = True
    reap_leftovers()
    atexit.register(kill_all)
    signal.signal(signal.SIGTERM, _on_sigterm)
