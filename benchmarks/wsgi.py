"""CPU per request of the three WSGI apps of benchmarks/service.py, called in-process.

Run from the repository root:  .venv/bin/python -m benchmarks.wsgi [--rounds 101]

No HTTP server and no load generator: each app is called through WSGI with the same
request (``POST /v1/presign``, JSON body, bearer token), in interleaved rounds in random
order, timed with this thread's CPU time, so the figure is the Flask-level work the
project controls, steady even on a shared machine. gunicorn's own per-request work (HTTP
parsing, the socket) comes on top of every row alike; benchmarks/service.py measures it all.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from benchmarks.service import ENV, PRESIGN_BODY, TOKEN

BODY = json.dumps(PRESIGN_BODY).encode()


def environ() -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/v1/presign", "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(BODY), "wsgi.errors": sys.stderr, "wsgi.multithread": False,
        "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0), "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(BODY)), "HTTP_HOST": "127.0.0.1:8080", "HTTP_AUTHORIZATION": f"Bearer {TOKEN}",
    }


def call(app: Callable[..., Iterable[bytes]]) -> bytes:
    status: list[str] = []
    def start_response(line: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:  # noqa: ARG001
        status.append(line)

    result = app(environ(), start_response)
    try:
        body = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    if not status[0].startswith("200"):
        raise RuntimeError(f"{status[0]}: {body[:200]!r}")
    return body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=101)
    parser.add_argument("--calls", type=int, default=50, help="calls per app per round")
    args = parser.parse_args()
    os.environ.update(ENV)
    from signer.service.web.app import create_app

    signer = create_app()
    os.environ["BENCH_BODY_BYTES"] = str(len(call(signer)))
    from benchmarks.apps import bare, boto3_app

    apps = {"signer /v1/presign": signer, "bare Flask (same-size JSON)": bare, "Flask + boto3": boto3_app}
    for app in apps.values():
        call(app)  # warm: imports, the boto3 client, caches
    # Under gunicorn each app has a process of its own; here they share one heap, and boto3's
    # many objects would make every full garbage collection slower for all rows. Freeze what
    # exists now so each row pays only for its own garbage.
    gc.collect()
    gc.freeze()
    per_request: dict[str, list[float]] = {name: [] for name in apps}
    shuffle = random.Random(0)
    for _ in range(args.rounds):
        order = list(apps)
        shuffle.shuffle(order)
        for name in order:
            app = apps[name]
            start = time.thread_time()
            for _ in range(args.calls):
                call(app)
            per_request[name].append((time.thread_time() - start) / args.calls)
    print(f"{args.rounds} interleaved rounds x {args.calls} calls, thread CPU time; median (25th-75th percentile)\n")
    for name, times in per_request.items():
        low, median, high = statistics.quantiles(times, n=4, method="inclusive")
        print(f"{name:30} {median * 1e6:8.1f} µs  ({low * 1e6:.1f}-{high * 1e6:.1f})")
    ours, bare_times, boto = (per_request[name] for name in apps)
    print()
    print(f"signer / bare:  {statistics.median(o / b for o, b in zip(ours, bare_times, strict=True)):.2f}x")
    print(f"boto3 / signer: {statistics.median(t / o for o, t in zip(ours, boto, strict=True)):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
