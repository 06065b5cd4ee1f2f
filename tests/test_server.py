"""The server setup in gunicorn.conf.py, run for real: its settings, and slow clients.

Fifty connections that send half a request line and stall must not stop /healthz and
/v1/presign from answering within a second (issue #9, item 8): the worker reads each whole
request before a thread sees it, so a stalled client holds no thread (more in
tests/test_slow_clients.py).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack

import pytest

from signer.service.config import ConfigError
from signer.service.server import available_cpus, server_settings
from tests.conftest import ALICE_TOKEN, env_with
from tests.servers import ROOT, free_port, running

STALLED = 50


def test_available_cpus_follows_affinity_and_quota() -> None:
    assert available_cpus(8, None, None) == 8
    assert available_cpus(8, 200000, 100000) == 2  # cpu.max "200000 100000"
    assert available_cpus(8, 150000, 100000) == 2  # 1.5 CPUs round up
    assert available_cpus(1, 400000, 100000) == 1  # affinity is the tighter limit
    assert available_cpus(4, 50000, 100000) == 1
    assert available_cpus(0, None, None) == 1


def test_server_settings_defaults_and_overrides() -> None:
    assert server_settings({}, cpus=2) == server_settings({"SIGNER_BIND": "0.0.0.0:8080"}, cpus=2)
    settings = server_settings({}, cpus=2)
    assert (settings.bind, settings.workers) == ("0.0.0.0:8080", 3)
    settings = server_settings({"SIGNER_BIND": "[::1]:9000", "SIGNER_WORKERS": "5", "SIGNER_THREADS": "8"}, cpus=2)
    assert (settings.bind, settings.workers, settings.threads) == ("[::1]:9000", 5, 8)
    assert (settings.request_timeout, settings.connections_per_peer, settings.max_body) == (5, 64, 65536)
    settings = server_settings({"SIGNER_REQUEST_TIMEOUT": "12", "SIGNER_MAX_CONNECTIONS_PER_PEER": "3",
                                "SIGNER_MAX_BODY": "2048", "SIGNER_TRUSTED_PROXIES": "10.1.0.0/16"}, cpus=2)
    assert (settings.request_timeout, settings.connections_per_peer, settings.max_body) == (12, 3, 2048)
    assert [str(network) for network in settings.trusted_proxies] == ["10.1.0.0/16"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [("SIGNER_WORKERS", "abc"), ("SIGNER_WORKERS", "0"), ("SIGNER_WORKERS", "\u0663"), ("SIGNER_THREADS", "-1"),
     ("SIGNER_BIND", "8091"), ("SIGNER_BIND", "0.0.0.0:99999"), ("SIGNER_BIND", ":8080"), ("SIGNER_BIND", "host"),
     ("SIGNER_REQUEST_TIMEOUT", "0"), ("SIGNER_REQUEST_TIMEOUT", "2.5"), ("SIGNER_MAX_CONNECTIONS_PER_PEER", "0"),
     ("SIGNER_MAX_CONNECTIONS_PER_PEER", "many"), ("SIGNER_TRUSTED_PROXIES", "10.0.0.0/33")],
)
def test_server_settings_refuse_bad_values(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        server_settings({variable: value}, cpus=2)
    assert caught.value.message.startswith(variable)


def gunicorn(port: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "wsgi:app"]


@pytest.mark.parametrize("value", ["abc", "8091"])
def test_gunicorn_refuses_bad_server_settings_with_one_line(value: str) -> None:
    variable = "SIGNER_WORKERS" if value == "abc" else "SIGNER_BIND"
    command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"]
    result = subprocess.run(command, cwd=ROOT, env={**os.environ, **env_with(), variable: value},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"sigv4-signer: configuration error: {variable} must be "
        + ("a whole number, got 'abc'" if value == "abc" else "host:port (e.g. 0.0.0.0:8080) or unix:/path, got '8091'")
    ]


def timed(request: urllib.request.Request) -> tuple[int, float]:
    start = time.monotonic()
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, time.monotonic() - start


def test_stalled_clients_do_not_stop_the_service(tmp_path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, **env_with()}
    with running(gunicorn(port), f"{base}/healthz", env=env, log_path=tmp_path / "gunicorn.log"), ExitStack() as stack:
        for _ in range(STALLED):
            stalled = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
            stalled.sendall(b"GET /heal")  # half a request line, then nothing
        time.sleep(1.0)  # let every worker pick its share up
        presign = urllib.request.Request(
            f"{base}/v1/presign", method="POST", data=json.dumps({"method": "GET", "key": "uploads/alice/a.txt"}).encode(),
            headers={"Authorization": f"Bearer {ALICE_TOKEN}", "Content-Type": "application/json"},
        )
        for _ in range(5):
            for request in (urllib.request.Request(f"{base}/healthz"), presign):
                status, seconds = timed(request)
                assert status == 200
                assert seconds < 1.0, f"{request.full_url} took {seconds:.2f}s under {STALLED} stalled clients"


def test_check_config_checks_the_server_settings_too() -> None:
    command = [sys.executable, "-m", "signer", "check-config"]
    result = subprocess.run(command, cwd=ROOT, env={**os.environ, **env_with(), "SIGNER_BIND": "8091"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("configuration error: SIGNER_BIND must be host:port")


def test_the_configuration_serves_an_app_that_is_not_the_service(tmp_path) -> None:
    """benchmarks/ runs its comparison apps under the same gunicorn.conf.py: a worker whose app
    is not the service starts no finish-step sweeper and serves (it failed to boot once)."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
               "--workers", "1", "benchmarks.apps:noop"]
    with running(command, f"http://127.0.0.1:{port}/", env=env_with(), log_path=tmp_path / "noop.log"):
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/presign", timeout=5).status == 200
