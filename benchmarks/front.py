"""The same attacks against two stacks side by side: this checkout (HAProxy in front of gunicorn's
gthread) and another checkout given with --compare (e.g. the commit before issue #25, whose own
worker read requests in its event loop). Per attack: how the checks from another address fared
(/healthz and a real presign, each must answer within 2 s), whether the service itself answered
or closed every attacking connection within its deadline, the whole stack's CPU seconds during
the attack (master, workers and the front) and its memory afterwards (RSS of every process,
summed). Also the stack's memory at rest.

With --nginx, a third stack: Debian's nginx in front of stock gthread (SIGNER_FRONT=none on a Unix
socket), configured as slow-clients.md suggests (client_header_timeout and client_body_timeout at
SIGNER_REQUEST_TIMEOUT, limit_conn per address with 429, request buffering on).

Run from the repository root (the stacks start at once, each on 127.0.0.1):
    .venv/bin/python -m benchmarks.front [--seconds 12] [--compare DIR] [--nginx]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from benchmarks.service import children, rss_mib, server_cpu_seconds
from tests.conftest import env_with
from tests.processes import spawn, stop
from tests.servers import free_port, running
from tests.test_slow_clients import (
    ATTACKS,
    CUT_WITHIN,
    Crowd,
    presign_request,
    raise_fd_limit,
)

IDLE = "500 idle and kept-alive connections"


def stack_pids(masters: list[int]) -> list[int]:
    """The masters and everything they started (workers, the front)."""
    return [pid for master in masters for pid in (master, *children(master))]


def stack_rss_mib(masters: list[int]) -> float:
    """Every process's RSS, summed (shared pages count once per process)."""
    total = 0.0
    for pid in stack_pids(masters):
        try:
            total += rss_mib(pid)
        except OSError:
            continue  # gone meanwhile
    return total


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


def attack_once(name: str, base: str, masters: list[int], attack: str, seconds: float) -> str:
    port = int(base.rsplit(":", 1)[1])
    crowd = crowd_for(attack, port)
    cpu_before = sum(server_cpu_seconds(master) for master in masters)
    times: list[float | None] = []
    with crowd.running():
        time.sleep(1.5)
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            for request in (f"{base}/healthz", presign_request(base)):
                times.append(check(request))
            time.sleep(0.3)
    cpu = sum(server_cpu_seconds(master) for master in masters) - cpu_before
    answered = [t for t in times if t is not None]
    slow = sum(1 for t in times if t is None or t >= 2.0)
    lifetimes = [c.ended - c.opened for c in crowd.clients if c.ended is not None]
    left = len(crowd.open())
    cut = "yes" if not left and max(lifetimes, default=0) < CUT_WITHIN else f"no ({left} left open)"
    worst = f"{max(answered):.2f}s" if answered else "-"
    return (f"| {name} | {attack} | {len(times) - slow}/{len(times)} | {worst} | {cut} | {cpu:.2f} | "
            f"{stack_rss_mib(masters):.1f} |")


NGINX = """{user}worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    limit_conn_zone $binary_remote_addr zone=peers:10m;
    server {{
        listen 127.0.0.1:{port};
        client_header_timeout 5s;
        client_body_timeout 5s;
        keepalive_timeout 5s;
        client_max_body_size 64k;
        client_body_buffer_size 64k;
        limit_conn peers 64;
        limit_conn_status 429;
        location / {{
            proxy_pass http://unix:{socket};
            proxy_request_buffering on;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--compare", metavar="DIR", help="another checkout, run under its own gunicorn.conf.py")
    parser.add_argument("--nginx", action="store_true", help="also nginx in front of stock gthread")
    args = parser.parse_args()
    raise_fd_limit()
    stacks = {"HAProxy + gthread (this checkout)": Path.cwd()}
    if args.compare:
        stacks["--compare"] = Path(args.compare).resolve()
    environ = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIGNER_"))}, **env_with()}
    print("| stack | attack | checks within 2 s | slowest check | every attacker cut in time | stack CPU s | "
          "stack RSS MiB after |")
    print("|---|---|---|---|---|---|---|")
    with ExitStack() as started, tempfile.TemporaryDirectory() as work:
        servers: dict[str, tuple[str, list[int]]] = {}
        for name, root in stacks.items():
            port = free_port()
            command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind",
                       f"127.0.0.1:{port}", "wsgi:app"]
            process = started.enter_context(running(command, f"http://127.0.0.1:{port}/healthz", env=environ,
                                                    cwd=root))
            servers[name] = (f"http://127.0.0.1:{port}", [process.pid])
        if args.nginx:
            port, socket_path = free_port(), f"{work}/gunicorn.sock"
            command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"unix:{socket_path}",
                       "wsgi:app"]
            app = started.enter_context(_gunicorn_on(command, socket_path, {**environ, "SIGNER_FRONT": "none"}))
            config = Path(work, "nginx.conf")
            # as root, nginx's workers would run as nobody, who cannot open gunicorn's 0700 socket
            user = "user root;\n" if os.geteuid() == 0 else ""
            config.write_text(NGINX.format(user=user, work=work, port=port, socket=socket_path))
            front = started.enter_context(running(["nginx", "-c", str(config), "-g", "daemon off;"],
                                                  f"http://127.0.0.1:{port}/healthz"))
            servers["nginx + gthread"] = (f"http://127.0.0.1:{port}", [front.pid, app.pid])
        time.sleep(2)
        rest = {name: stack_rss_mib(pids) for name, (_, pids) in servers.items()}
        for attack in [*ATTACKS, IDLE]:
            for name, (base, pids) in servers.items():
                print(attack_once(name, base, pids, attack, args.seconds), flush=True)
                time.sleep(CUT_WITHIN)  # let the stack settle between runs
    print("stack RSS at rest (MiB): " + ", ".join(f"{name} {value:.1f}" for name, value in rest.items()))
    return 0


@contextmanager
def _gunicorn_on(command: list[str], socket_path: str, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """gunicorn on a Unix socket (nothing to poll over TCP): started once the socket exists."""
    process = spawn(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not Path(socket_path).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        yield process
    finally:
        stop(process)


if __name__ == "__main__":
    sys.exit(main())
