"""The same attacks against two stacks side by side: this checkout (HAProxy in front of gunicorn's
gthread) and another checkout given with --compare (e.g. the commit before issue #25, whose own
worker read requests in its event loop). Per attack: how the checks from another address fared
(/healthz and a real presign, each must answer within 2 s), whether the service itself answered
or closed every attacking connection within its deadline, the whole stack's CPU seconds during
the attack (master, workers and the front) and its memory afterwards (RSS of every process,
summed). Also the stack's memory at rest.

Run from the repository root (both stacks start at once, each on 127.0.0.1):
    .venv/bin/python -m benchmarks.front [--seconds 12] [--compare DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from benchmarks.service import children, server_cpu_seconds
from tests.conftest import env_with
from tests.servers import free_port, running
from tests.test_slow_clients import (
    ATTACKS,
    CUT_WITHIN,
    Crowd,
    presign_request,
    raise_fd_limit,
)

IDLE = "500 idle and kept-alive connections"


def stack_pids(master: int) -> list[int]:
    """The master and everything it started (workers, the front)."""
    return [master, *children(master)]


def stack_rss_mib(master: int) -> float:
    total = 0
    for pid in stack_pids(master):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def check(request: urllib.request.Request | str) -> float | None:
    """Seconds to answer, or None when it failed or took more than 5 s."""
    start = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
    except OSError:
        return None
    return time.monotonic() - start


def crowd_for(attack: str, port: int) -> Crowd:
    if attack == IDLE:
        keep_alive = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        return Crowd(port, 500, [f"127.0.0.{n}" for n in range(2, 22)], [b"", keep_alive])
    count, sources, opening, trickle = ATTACKS[attack]
    return Crowd(port, count, [f"127.0.0.{n}" for n in range(2, 2 + sources)], [opening(port)], trickle=trickle)


def attack_once(name: str, base: str, master: int, attack: str, seconds: float) -> str:
    port = int(base.rsplit(":", 1)[1])
    crowd = crowd_for(attack, port)
    cpu_before = server_cpu_seconds(master)
    times: list[float | None] = []
    with crowd.running():
        time.sleep(1.5)
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            for request in (f"{base}/healthz", presign_request(base)):
                times.append(check(request))
            time.sleep(0.3)
    cpu = server_cpu_seconds(master) - cpu_before
    answered = [t for t in times if t is not None]
    slow = sum(1 for t in times if t is None or t >= 2.0)
    lifetimes = [c.ended - c.opened for c in crowd.clients if c.ended is not None]
    left = len(crowd.open())
    cut = "yes" if not left and max(lifetimes, default=0) < CUT_WITHIN else f"no ({left} left open)"
    worst = f"{max(answered):.2f}s" if answered else "-"
    return (f"| {name} | {attack} | {len(times) - slow}/{len(times)} | {worst} | {cut} | {cpu:.2f} | "
            f"{stack_rss_mib(master):.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--compare", metavar="DIR", help="another checkout, run under its own gunicorn.conf.py")
    args = parser.parse_args()
    raise_fd_limit()
    stacks = {"this checkout": Path.cwd()}
    if args.compare:
        stacks["--compare"] = Path(args.compare).resolve()
    environ = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIGNER_"))}, **env_with()}
    print("| stack | attack | checks within 2 s | slowest check | every attacker cut in time | stack CPU s | "
          "stack RSS MiB after |")
    print("|---|---|---|---|---|---|---|")
    with ExitStack() as started:
        servers = {}
        for name, root in stacks.items():
            port = free_port()
            command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind",
                       f"127.0.0.1:{port}", "wsgi:app"]
            process = started.enter_context(running(command, f"http://127.0.0.1:{port}/healthz", env=environ,
                                                    cwd=root))
            servers[name] = (f"http://127.0.0.1:{port}", process.pid)
        time.sleep(2)
        rest = {name: stack_rss_mib(pid) for name, (_, pid) in servers.items()}
        for attack in [*ATTACKS, IDLE]:
            for name, (base, pid) in servers.items():
                print(attack_once(name, base, pid, attack, args.seconds), flush=True)
                time.sleep(CUT_WITHIN)  # let the stack settle between runs
    print("stack RSS at rest (MiB): " + ", ".join(f"{name} {value:.1f}" for name, value in rest.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
