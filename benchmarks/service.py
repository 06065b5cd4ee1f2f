"""The running service under gunicorn against a bare Flask endpoint and a Flask + boto3 one,
side by side: requests/s and, steadier on a shared machine, server CPU per request.

Run from the repository root:
    .venv/bin/python -m benchmarks.service [--rounds 5] [--seconds 3] [--connections 16] [--compare DIR]
    .venv/bin/python -m benchmarks.service --metrics   # the service with metrics on against off, alone
Needs wrk (Debian: apt-get install wrk) and the test requirements (boto3 for the comparison).

All servers run at once, each under gunicorn.conf.py (the Dockerfile's settings) on
127.0.0.1. Each round drives every target once with wrk, in an order rotated per round, so
the targets share the machine's moods alike. Server CPU is utime+stime of the master,
its workers and its front (HAProxy) from /proc/<pid>/stat (plus the master's reaped children, so a worker recycled
by max_requests still counts), read just before and after each wrk run; the load generator
is not counted. Reports medians over rounds with the spread (min-max), worker RSS, the
ratios the targets are stated in, and then a run in which one worker is SIGKILLed half-way.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.servers import free_port, running

TOKEN = "bench-token-0123456789abcdef"
ENV = {
    "AWS_ACCESS_KEY_ID": "AKIDBENCHMARK0001",
    "AWS_SECRET_ACCESS_KEY": "benchmark-secret-key-not-real",
    "SIGNER_BUCKET": "bench-bucket",
    "SIGNER_API_TOKENS": f"bench:{TOKEN}",
    "SIGNER_MAX_SIZE": "10000000",
    "SIGNER_ALLOWED_CONTENT_TYPES": "image/*",
    "SIGNER_MAX_EXPIRES": "900",
}
PRESIGN_BODY = {"method": "PUT", "key": "uploads/bench/cat photo ü.jpg", "content_type": "image/jpeg",
                "content_length": 12345}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def fine_uploader_policy() -> dict:
    now = datetime.now(UTC)
    # 14 minutes: under SIGNER_MAX_EXPIRES (900 s), and longer than a --rounds 15 run (5 minutes expired mid-run)
    return {"expiration": (now + timedelta(minutes=14)).strftime("%Y-%m-%dT%H:%M:%S.000Z"), "conditions": [
        {"acl": "private"}, {"bucket": ENV["SIGNER_BUCKET"]}, {"Content-Type": "image/jpeg"},
        {"success_action_status": "200"}, {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
        {"key": "uploads/bench/0b7a3c9e.jpg"},
        {"x-amz-credential": f"{ENV['AWS_ACCESS_KEY_ID']}/{now:%Y%m%d}/us-east-1/s3/aws4_request"},
        {"x-amz-date": now.strftime("%Y%m%dT%H%M%SZ")}, {"x-amz-meta-qqfilename": "cat.jpg"},
        ["content-length-range", "0", "10000000"]]}


def wrk_script(directory: Path, body: dict) -> Path:
    path = directory / f"post-{abs(hash(json.dumps(body)))}.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {TOKEN}"\n'
        # count non-2xx answers as errors in the summary line
        "done = function(summary, latency, requests) end\n"
    )
    return path


def run_wrk(url: str, script: Path, seconds: int, connections: int) -> dict:
    result = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, timeout=seconds + 60,
    )
    out = result.stdout
    def number(pattern: str, default: float = 0.0) -> float:
        match = re.search(pattern, out)
        return float(match.group(1)) if match else default
    def latency(percent: str) -> float:
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": number(r"Requests/sec:\s+([\d.]+)"),
        "requests": int(number(r"(\d+) requests in")),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non2xx": int(number(r"Non-2xx or 3xx responses: (\d+)")),
        "socket_errors": sum(int(x) for x in socket.groups()) if socket else 0,
        "raw": out,
    }


def children(master: int) -> list[int]:
    """Every process the master started: its workers and the front (HAProxy)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def is_front(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "haproxy"
    except OSError:
        return False


def worker_pids(master: int) -> list[int]:
    """The master's gunicorn workers (not the front)."""
    return [pid for pid in children(master) if not is_front(pid)]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _ticks(pid: int, children_too: bool) -> int:
    """utime+stime (and cutime+cstime for the master) in clock ticks; 0 if the process is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return utime + stime + (cutime + cstime if children_too else 0)


def server_cpu_seconds(master: int) -> float:
    """CPU used so far by a gunicorn master, its live workers and the workers it has reaped."""
    return (_ticks(master, True) + sum(_ticks(pid, False) for pid in children(master))) / CLOCK_TICKS


def gunicorn(app: str, port: int, workers: int | None) -> list[str]:
    command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
               "--access-logfile", "/dev/null"]
    return command + (["--workers", str(workers)] if workers else []) + [app]


class Target:
    """One row: a server (shared by rows on the same app), a path and a body."""

    def __init__(self, name: str, url: str, master: int, script: Path) -> None:
        self.name, self.url, self.master, self.script = name, url, master, script
        self.runs: list[dict] = []

    def run(self, seconds: int, connections: int) -> None:
        before = server_cpu_seconds(self.master)
        result = run_wrk(self.url, self.script, seconds, connections)
        cpu = server_cpu_seconds(self.master) - before
        result["cpu_us"] = cpu / result["requests"] * 1e6 if result["requests"] else float("nan")
        self.runs.append(result)

    def median(self, field: str) -> float:
        return statistics.median(run[field] for run in self.runs)

    def spread(self, field: str) -> tuple[float, float]:
        values = [run[field] for run in self.runs]
        return min(values), max(values)


def ratio_text(values: list[float], target: str) -> str:
    return f"{statistics.median(values):.2f}x (rounds {min(values):.2f}-{max(values):.2f}; target {target})"


def side_by_side(args: argparse.Namespace, work: Path) -> tuple[list[Target], dict[str, float], dict[str, int]]:
    env = {**os.environ, **ENV}
    with ExitStack() as stack:
        signer_port = free_port()
        signer = stack.enter_context(running(gunicorn("wsgi:app", signer_port, args.workers),
                                             f"http://127.0.0.1:{signer_port}/healthz", env=env,
                                             log_path=work / "signer.log"))
        probe = urllib.request.Request(
            f"http://127.0.0.1:{signer_port}/v1/presign", data=json.dumps(PRESIGN_BODY).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        )
        body_bytes = len(urllib.request.urlopen(probe, timeout=10).read())
        env["BENCH_BODY_BYTES"] = str(body_bytes)
        servers, ports = {"signer": signer}, {"signer": signer_port}
        for name, app in (("bare", "benchmarks.apps:bare"), ("hashing", "benchmarks.apps:hashing"),
                          ("noop", "benchmarks.apps:noop"), ("boto3", "benchmarks.apps:boto3_app")):
            ports[name] = port = free_port()
            servers[name] = stack.enter_context(running(gunicorn(app, port, args.workers), f"http://127.0.0.1:{port}/",
                                                        env=env, log_path=work / f"{name}.log"))
        if args.compare:  # another checkout's service, under its own gunicorn.conf.py, for before/after,
            # against one more server of this checkout that serves nothing else: the "signer" server
            # also takes /s3/signature's load (more garbage, twice the worker recycling), and two
            # copies of one commit compared that way differed by 4 %.
            for name, checkout in (("this", Path.cwd()), ("before", Path(args.compare).resolve())):
                ports[name] = port = free_port()
                servers[name] = stack.enter_context(running(
                    gunicorn("wsgi:app", port, args.workers), f"http://127.0.0.1:{port}/healthz", env=env,
                    log_path=work / f"{name}.log", cwd=checkout))
        presign_script = wrk_script(work, PRESIGN_BODY)
        targets = [
            Target("signer POST /v1/presign", f"http://127.0.0.1:{ports['signer']}/v1/presign",
                   servers["signer"].pid, presign_script),
            Target("signer POST /s3/signature", f"http://127.0.0.1:{ports['signer']}/s3/signature?v4=true",
                   servers["signer"].pid, wrk_script(work, fine_uploader_policy())),
            Target("bare Flask (same-size JSON)", f"http://127.0.0.1:{ports['bare']}/v1/presign",
                   servers["bare"].pid, presign_script),
            Target("bare Flask + HMAC-SHA256", f"http://127.0.0.1:{ports['hashing']}/v1/presign",
                   servers["hashing"].pid, presign_script),
            Target("no-op WSGI (server floor)", f"http://127.0.0.1:{ports['noop']}/v1/presign",
                   servers["noop"].pid, presign_script),
            Target("Flask + boto3 presign", f"http://127.0.0.1:{ports['boto3']}/v1/presign",
                   servers["boto3"].pid, presign_script),
        ]
        pair: list[Target] = []
        if args.compare:
            pair = [Target("this checkout, alone", f"http://127.0.0.1:{ports['this']}/v1/presign",
                           servers["this"].pid, presign_script),
                    Target("--compare POST /v1/presign", f"http://127.0.0.1:{ports['before']}/v1/presign",
                           servers["before"].pid, presign_script)]
            targets += pair
        for target in targets:  # warm-up: imports, clients, caches; not counted
            run_wrk(target.url, target.script, 1, args.connections)
        for round_number in range(args.rounds):
            shift = round_number % len(targets)
            order = targets[shift:] + targets[:shift]
            if pair and round_number % 2:  # the compared pair: each goes first in half the rounds
                first, second = order.index(pair[0]), order.index(pair[1])
                order[first], order[second] = order[second], order[first]
            for target in order:
                target.run(args.seconds, args.connections)
        rss = {name: max((rss_mib(pid) for pid in worker_pids(server.pid)), default=float("nan"))
               for name, server in servers.items()}
        workers = len(worker_pids(signer.pid))
    return targets, rss, {"workers": workers, "body_bytes": body_bytes}


def table(targets: list[Target]) -> None:
    print(f"{'target':30} {'req/s':>7} {'(min-max)':>13} {'CPU µs/req':>11} {'(min-max)':>13} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'errors':>6}")
    for target in targets:
        errors = sum(run["non2xx"] + run["socket_errors"] for run in target.runs)
        rps_low, rps_high = target.spread("rps")
        cpu_low, cpu_high = target.spread("cpu_us")
        print(f"{target.name:30} {target.median('rps'):7.0f} {rps_low:6.0f}-{rps_high:<6.0f} "
              f"{target.median('cpu_us'):11.0f} {cpu_low:6.0f}-{cpu_high:<6.0f} {target.median('p50_ms'):7.2f} "
              f"{target.median('p99_ms'):7.2f} {errors:6d}")


def metrics_side_by_side(args: argparse.Namespace, work: Path) -> int:
    """The same service twice, at once: SIGNER_METRICS_BIND unset and set (docs/metrics.md). Server
    CPU counts the metrics aggregator too (a child of the master). A presign, and a refusal (403),
    which records one event more."""
    env = {**os.environ, **ENV}
    refused_body = {**PRESIGN_BODY, "key": "uploads/someone-else/x.jpg"}
    with ExitStack() as stack:
        targets: list[Target] = []
        for name, extra in (("off", {}), ("on", {"SIGNER_METRICS_BIND": f"127.0.0.1:{free_port()}"})):
            port = free_port()
            server = stack.enter_context(running(gunicorn("wsgi:app", port, args.workers),
                                                 f"http://127.0.0.1:{port}/healthz", env={**env, **extra},
                                                 log_path=work / f"metrics-{name}.log"))
            targets.append(Target(f"presign, metrics {name}", f"http://127.0.0.1:{port}/v1/presign", server.pid,
                                  wrk_script(work, PRESIGN_BODY)))
            targets.append(Target(f"refused (403), metrics {name}", f"http://127.0.0.1:{port}/v1/presign", server.pid,
                                  wrk_script(work, refused_body)))
        for target in targets:
            run_wrk(target.url, target.script, 1, args.connections)
        for round_number in range(args.rounds):
            shift = round_number % len(targets)
            for target in targets[shift:] + targets[:shift]:
                target.run(args.seconds, args.connections)
    print(f"{args.rounds} rounds x {args.seconds}s per target, order rotated each round; wrk -t2 -c{args.connections}; "
          f"gunicorn.conf.py, both servers up at once; {os.cpu_count()} cores, load generator on the same machine\n")
    table(targets)
    print()
    off, off_refused, on, on_refused = targets
    print("presign CPU per request, metrics on / off: " + ratio_text(
        [b["cpu_us"] / a["cpu_us"] for a, b in zip(off.runs, on.runs, strict=True)], "<= 1.05x"))
    print("refused CPU per request, metrics on / off: " + ratio_text(
        [b["cpu_us"] / a["cpu_us"] for a, b in zip(off_refused.runs, on_refused.runs, strict=True)], "<= 1.05x"))
    return 0


def kill_one_worker(seconds: int, connections: int, work: Path) -> dict:
    port = free_port()
    env = {**os.environ, **ENV}
    with running(gunicorn("wsgi:app", port, None), f"http://127.0.0.1:{port}/healthz", env=env,
                 log_path=work / "kill.log") as process:
        url = f"http://127.0.0.1:{port}/v1/presign"
        script = wrk_script(work, PRESIGN_BODY)
        deadline = time.monotonic() + 30
        seen: list[int] = []
        while time.monotonic() < deadline and (len(seen) < 5 or len(set(seen[-5:])) > 1 or not seen[-1]):
            seen.append(len(worker_pids(process.pid)))  # let every worker boot before the load starts
            time.sleep(0.2)
        before = worker_pids(process.pid)
        load = subprocess.Popen(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
                                stdout=subprocess.PIPE, text=True)
        time.sleep(seconds / 2)
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        out, _ = load.communicate(timeout=seconds + 60)
        time.sleep(2)
        after = worker_pids(process.pid)
        healthy = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).status == 200
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = int((re.search(r"Non-2xx or 3xx responses: (\d+)", out) or [0, 0])[1])
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = sum(int(x) for x in socket.groups()) if socket else 0
    return {"requests": requests, "failed": non2xx + errors, "workers_before": len(before),
            "workers_after": len(after), "victim_replaced": victim not in after, "healthy_after": healthy}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3, help="seconds per target per round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=None, help="default: gunicorn.conf.py's")
    parser.add_argument("--no-kill", action="store_true", help="skip the SIGKILL run")
    parser.add_argument("--metrics", action="store_true", help="only the service with metrics on against off")
    parser.add_argument("--compare", metavar="DIR", help="also run DIR's service (another checkout, e.g. a git "
                        "worktree of an older commit) as a row, for before/after in one run")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_WORK_DIR")) as tmp:
        work = Path(tmp)
        if args.metrics:
            return metrics_side_by_side(args, work)
        targets, rss, facts = side_by_side(args, work)
        workers, body_bytes = facts["workers"], facts["body_bytes"]
        killed = None if args.no_kill else kill_one_worker(args.seconds * 2, args.connections, work)
    print(f"{args.rounds} rounds x {args.seconds}s per target, order rotated each round; wrk -t2 -c{args.connections}; "
          f"gunicorn.conf.py ({workers} workers per server, all servers up at once); {os.cpu_count()} cores, "
          f"load generator on the same machine; response body {body_bytes} bytes\n")
    table(targets)
    presign, _, bare, _, noop, boto = targets[:6]
    per_round = list(zip(presign.runs, bare.runs, boto.runs, strict=True))
    print()
    print("/v1/presign CPU per request / bare:  " + ratio_text(
        [ours["cpu_us"] / base["cpu_us"] for ours, base, _ in per_round], "<= 1.15x"))
    print("boto3 CPU per request / /v1/presign: " + ratio_text(
        [theirs["cpu_us"] / ours["cpu_us"] for ours, _, theirs in per_round], ">= 2x"))
    print("/v1/presign req/s / bare:            " + ratio_text(
        [ours["rps"] / base["rps"] for ours, base, _ in per_round], "none; CPU is the steadier measure"))
    print("/v1/presign req/s / boto3:           " + ratio_text(
        [ours["rps"] / theirs["rps"] for ours, _, theirs in per_round], "none"))
    print("boto3 CPU per request / no-op WSGI: " + ratio_text(
        [theirs["cpu_us"] / floor["cpu_us"] for floor, theirs in zip(noop.runs, boto.runs, strict=True)],
        "none; the most any app could reach against boto3 under these server settings"))
    if args.compare:
        this, before = targets[6:8]
        print("--compare / this checkout, CPU per request: " + ratio_text(
            [old["cpu_us"] / new["cpu_us"] for old, new in zip(before.runs, this.runs, strict=True)], "none")
            + f"; ratio of the medians {before.median('cpu_us') / this.median('cpu_us'):.2f}x")
    print("worker RSS after the runs (largest worker): " + ", ".join(
        f"{name} {value:.1f} MiB" + (" (target <= 32)" if name == "signer" else "") for name, value in rss.items()))
    if killed:
        print()
        print(f"SIGKILL of one worker half-way through a {args.seconds * 2}s run: {killed['failed']} failed of "
              f"{killed['requests']} requests; workers {killed['workers_before']} -> {killed['workers_after']} "
              f"(killed one replaced: {killed['victim_replaced']}), healthy after: {killed['healthy_after']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
