"""Start peer servers on 127.0.0.1 and a free port; stop them by PID."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.processes import spawn, stop

ROOT = Path(__file__).resolve().parent.parent
SERVER_LOGS: list[Path] = []  # every server log of the run, scanned for secrets at the end (conftest.py)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered at {url} within {timeout}s")


@contextmanager
def running(command: list[str], ready_url: str, env: dict[str, str] | None = None, log_path: Path | None = None,
            timeout: float = 30.0, cwd: Path = ROOT) -> Iterator[subprocess.Popen]:
    """Run ``command`` in its own process group until the block ends, or this process does; kill it by PID."""
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    if log_path:
        SERVER_LOGS.append(log_path)
    process = spawn(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_http(ready_url, timeout, process)
        yield process
    finally:
        stop(process)
        if log_path:
            log.close()


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[str]:
    """Serve ``server`` (bound to 127.0.0.1) from a daemon thread until the block ends; yields its URL."""
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def require_tool(name: str, install_hint: str) -> str:
    """A peer tool's path; skip without it on a user's machine, fail without it in CI."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed; {install_hint}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def moto_server(port: int | None = None) -> Iterator[str]:
    """moto's S3 in server mode (a plain store: it does not check signatures), on ``port`` or a free one."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    with running([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], f"{url}/moto-api/"):
        yield url
