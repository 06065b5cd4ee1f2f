"""Instructions per ``POST /v1/presign`` in process, counted by valgrind: this checkout against another.

Run from the repository root (Debian: apt-get install valgrind):
    .venv/bin/python -m benchmarks.instructions --compare ../before [--requests 1500]

Why a count and not a time: on a shared 2-core machine the CPU time of the same request moves by
10 % and more from one run to the next, more than the 5 % a change may cost. callgrind counts the
instructions the process executes, which repeat to within a fraction of a percent whatever else the
machine does. Each checkout's own ``wsgi.py`` is loaded exactly as gunicorn loads it (its audit
lines, its lean path) and called through WSGI with the request of benchmarks/service.py; the count
of a run with no request is subtracted from one with ``--requests``, so start-up drops out. What a
count cannot see (system calls, the GIL handed between gunicorn's threads) benchmarks/service.py
measures, side by side under gunicorn.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.service import ENV, TOKEN
from benchmarks.wsgi import BODY, environ

DRIVER = """
import io, json, os, sys
sys.path.insert(0, os.getcwd())
import wsgi
fixed = json.loads(os.environ["BENCH_ENVIRON"])
body = os.environ["BENCH_BODY"].encode()
def call():
    environ = {**fixed, "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.version": (1, 0)}
    status = []
    out = b"".join(wsgi.app(environ, lambda line, headers, exc_info=None: status.append(line)))
    assert status[0].startswith("200"), (status, out[:200])
for _ in range(300):  # warm: imports, caches
    call()
import gc
gc.collect()
gc.freeze()
for _ in range(int(sys.argv[1])):
    call()
"""
"""Runs in the other checkout, so it imports nothing of this one: the request comes in the
environment, as :func:`driver_environment` writes it."""


def driver_environment(token: str = TOKEN) -> dict[str, str]:
    """The service's settings and benchmarks/wsgi.py's request, for :data:`DRIVER`: its WSGI
    environ less the stream objects the driver makes itself, and the body."""
    request = {name: value for name, value in environ().items()
               if name not in ("wsgi.input", "wsgi.errors", "wsgi.version")}
    request["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return {**os.environ, **ENV, "BENCH_ENVIRON": json.dumps(request), "BENCH_BODY": BODY.decode()}


def instructions(checkout: Path, requests: int) -> int:
    """Instructions of one run of the driver in ``checkout`` (its stderr, the audit lines, to /dev/null)."""
    env = driver_environment()
    with tempfile.NamedTemporaryFile("r", suffix=".log") as log:
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", f"--log-file={log.name}",
             sys.executable, "-c", DRIVER, str(requests)],
            cwd=checkout, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
        )
        report = log.read()
    found = re.search(r"Collected : (\d+)", report)
    if result.returncode != 0 or not found:
        raise SystemExit(f"valgrind in {checkout} failed (exit {result.returncode}):\n{report[-2000:]}")
    return int(found[1])


def per_request(checkout: Path, requests: int) -> float:
    """The two runs at once (a core each): a count does not depend on what else runs."""
    with ThreadPoolExecutor(2) as pool:
        loaded, idle = pool.map(lambda count: instructions(checkout, count), (requests, 0))
    return (loaded - idle) / requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compare", metavar="DIR", required=True, help="the other checkout (e.g. a git worktree)")
    parser.add_argument("--requests", type=int, default=1500)
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 1
    here, there = Path.cwd(), Path(args.compare).resolve()
    ours, theirs = per_request(here, args.requests), per_request(there, args.requests)
    print(f"instructions per POST /v1/presign in process (callgrind, {args.requests} requests, start-up subtracted)\n")
    print(f"{'--compare ' + str(there):50} {theirs:10,.0f}")
    print(f"{'this checkout':50} {ours:10,.0f}")
    print(f"\n--compare / this checkout: {theirs / ours:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
