"""benchmarks/instructions.py counts what its driver does: the driver must really answer presigns
through this checkout's wsgi.py (a driver that failed early would count start-up only)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.instructions import DRIVER, driver_environment

ROOT = Path(__file__).resolve().parent.parent


def test_the_driver_answers_presigns_through_wsgi_py() -> None:
    done = subprocess.run([sys.executable, "-c", DRIVER, "5"], cwd=ROOT, env=driver_environment(),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    audit = [line for line in done.stderr.splitlines() if line.startswith("audit {")]
    assert len(audit) == 305  # 300 to warm up and 5 counted, each one grant: the lean path signed them all


def test_a_refused_request_stops_the_driver() -> None:
    done = subprocess.run([sys.executable, "-c", DRIVER, "5"], cwd=ROOT, env=driver_environment("not-the-token"),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "401" in done.stderr
