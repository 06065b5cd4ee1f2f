"""Throughput of the running service under gunicorn, measured with wrk, against a bare Flask
endpoint (the framework's ceiling) and a Flask endpoint calling boto3, in one run.

Run:  .venv/bin/python benchmarks/service.py [--seconds 10] [--connections 32]
Needs wrk (Debian: apt-get install wrk) and the test requirements (boto3 for the comparison).

Every server uses gunicorn.conf.py (the Dockerfile's settings: sync workers, 2*CPU+1) on
127.0.0.1. Prints requests/s, p50/p99 latency, errors and worker RSS per target, the ratios,
and then a run in which one worker is SIGKILLed half-way.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import free_port, running  # noqa: E402

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


def fine_uploader_policy() -> dict:
    now = datetime.now(timezone.utc)
    return {"expiration": (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z"), "conditions": [
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


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def gunicorn(app: str, port: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
            "--access-logfile", "/dev/null", app]


def measure(name: str, app: str, path: str, body: dict, seconds: int, connections: int, work: Path) -> dict:
    port = free_port()
    env = {**os.environ, **ENV}
    with running(gunicorn(app, port), f"http://127.0.0.1:{port}/healthz" if app == "wsgi:app" else
                 f"http://127.0.0.1:{port}/", env=env, log_path=work / (re.sub(r"\W+", "-", name) + ".log")) as process:
        url = f"http://127.0.0.1:{port}{path}"
        run_wrk(url, wrk_script(work, body), 2, connections)  # warm-up: imports, clients, caches
        result = run_wrk(url, wrk_script(work, body), seconds, connections)
        workers = worker_pids(process.pid)
        result["rss_mib"] = max(rss_mib(pid) for pid in workers) if workers else float("nan")
        result["workers"] = len(workers)
    result["name"] = name
    return result


def kill_one_worker(seconds: int, connections: int, work: Path) -> dict:
    port = free_port()
    env = {**os.environ, **ENV}
    with running(gunicorn("wsgi:app", port), f"http://127.0.0.1:{port}/healthz", env=env,
                 log_path=work / "kill.log") as process:
        url = f"http://127.0.0.1:{port}/v1/presign"
        script = wrk_script(work, PRESIGN_BODY)
        deadline = time.monotonic() + 30
        while len(worker_pids(process.pid)) < (os.cpu_count() or 1) * 2 + 1 and time.monotonic() < deadline:
            time.sleep(0.2)  # let every worker boot before the load starts
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
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = [
            measure("signer POST /v1/presign", "wsgi:app", "/v1/presign", PRESIGN_BODY, args.seconds, args.connections, work),
            measure("signer POST /s3/signature", "wsgi:app", "/s3/signature?v4=true", fine_uploader_policy(),
                    args.seconds, args.connections, work),
            measure("bare Flask endpoint", "benchmarks.apps:bare", "/v1/presign", PRESIGN_BODY, args.seconds,
                    args.connections, work),
            measure("Flask + boto3 presign", "benchmarks.apps:boto3_app", "/v1/presign", PRESIGN_BODY, args.seconds,
                    args.connections, work),
        ]
        killed = kill_one_worker(args.seconds, args.connections, work)
    print(f"wrk -t2 -c{args.connections} -d{args.seconds}s, gunicorn.conf.py ({rows[0]['workers']} sync workers), "
          f"{os.cpu_count()} cores, load generator on the same machine\n")
    print(f"{'target':28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'worker RSS MiB':>15}")
    for row in rows:
        errors = row["non2xx"] + row["socket_errors"]
        print(f"{row['name']:28} {row['rps']:9.0f} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} {errors:7d} {row['rss_mib']:15.1f}")
    presign, signature, bare, boto = rows
    print()
    print(f"/v1/presign   = {presign['rps'] / bare['rps']:.0%} of the bare endpoint (target >= 90%)")
    print(f"/s3/signature = {signature['rps'] / bare['rps']:.0%} of the bare endpoint")
    print(f"/v1/presign   = {presign['rps'] / boto['rps']:.1f}x the boto3 endpoint (target >= 3x)")
    print(f"worker RSS    = {presign['rss_mib']:.1f} MiB vs {boto['rss_mib']:.1f} MiB for boto3 (target: below)")
    print()
    print(f"SIGKILL of one worker half-way through a {args.seconds}s run: {killed['failed']} failed of "
          f"{killed['requests']} requests; workers {killed['workers_before']} -> {killed['workers_after']} "
          f"(killed one replaced: {killed['victim_replaced']}), healthy after: {killed['healthy_after']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
