"""Stopping what the tests and scripts/run.sh start (standard library only: run.sh has no pytest)."""

from __future__ import annotations

import os
import signal
import subprocess


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
