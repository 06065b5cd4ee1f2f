"""benchmarks/instructions.py counts what its driver does: the driver must really answer presigns
through this checkout's wsgi.py (a driver that failed early would count start-up only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.instructions import DRIVER
from benchmarks.service import ENV, PRESIGN_BODY, TOKEN

ROOT = Path(__file__).resolve().parent.parent


def test_the_driver_answers_presigns_through_wsgi_py() -> None:
    env = {**os.environ, **ENV, "BENCH_BODY": json.dumps(PRESIGN_BODY), "BENCH_TOKEN": TOKEN}
    done = subprocess.run([sys.executable, "-c", DRIVER, "5"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    audit = [line for line in done.stderr.splitlines() if line.startswith("audit {")]
    assert len(audit) == 305  # 300 to warm up and 5 counted, each one grant: the lean path signed them all


def test_a_refused_request_stops_the_driver() -> None:
    env = {**os.environ, **ENV, "BENCH_BODY": json.dumps(PRESIGN_BODY), "BENCH_TOKEN": "not-the-token"}
    done = subprocess.run([sys.executable, "-c", DRIVER, "5"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode != 0 and "401" in done.stderr
