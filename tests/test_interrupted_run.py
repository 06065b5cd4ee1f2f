"""An interrupted test run leaves nothing running (issue #22, item 3).

A real run (scripts/test.sh, as a developer starts it) of tests/interrupted_run_target.py starts
SeaweedFS, gunicorn (two workers), nginx (two workers) and moto, and is then stopped with SIGINT
(Ctrl-C) or SIGTERM, or killed (SIGKILL; then the next run reaps what is left). Afterwards no
process may be left in any of their process groups, nor any of the processes seen in them before. Checked by process group and PID, never by name: other
runs on the same machine run the same servers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import require_weed
from tests.processes import spawn, stop
from tests.servers import ROOT, require_tool


def processes() -> dict[int, tuple[int, str]]:
    """Every process on the machine: PID -> (process group, start time), from /proc/<pid>/stat."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            if fields[0] != "Z":  # a zombie is dead already, waiting for its parent to reap it
                found[int(entry.name)] = (int(fields[2]), fields[19])
    return found


def members(groups: set[int]) -> dict[int, tuple[int, str]]:
    return {pid: info for pid, info in processes().items() if info[0] in groups}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_an_interrupted_run_leaves_no_server_running(tmp_path: Path, sig: signal.Signals) -> None:
    require_weed()
    require_tool("nginx", "install it with: apt-get install nginx")
    record = tmp_path / "groups.json"
    environ = {**os.environ, "SIGNER_TEST_RECORD": str(record)}
    with open(tmp_path / "run.log", "wb") as log:
        run = spawn(["bash", "scripts/test.sh", "tests/interrupted_run_target.py", "-q", "-p", "no:cacheprovider",
                     "--basetemp", str(tmp_path / "run")], cwd=ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while not record.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert record.exists(), (tmp_path / "run.log").read_text()
        time.sleep(0.5)
        groups = set(json.loads(record.read_text()).values())
        seen = members(groups)
        assert len(seen) >= 7, seen  # weed; gunicorn and its 2 workers; nginx and its 2; moto
        os.kill(run.pid, sig)  # the run itself, as Ctrl-C or `kill` would reach it (servers have their own groups)
        run.wait(timeout=60)

        def survivors() -> dict[int, tuple[int, str]]:
            """In one of the groups, or a process seen before (same PID and start time)."""
            return {pid: info for pid, info in processes().items() if info[0] in groups or seen.get(pid) == info}

        if sig == signal.SIGKILL:  # nginx's workers outlive it: the next run kills them before it starts
            subprocess.run(["bash", "scripts/test.sh", "tests/test_server.py", "-q", "-p", "no:cacheprovider",
                            "--collect-only"], cwd=ROOT, env=environ, capture_output=True, timeout=120, check=True)
        deadline = time.monotonic() + 10  # SIGKILLed ones may take a moment to go
        while survivors() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not survivors(), f"left running after {sig.name}: {survivors()}"
    finally:
        stop(run)
