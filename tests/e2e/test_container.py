"""The image, built from the Dockerfile by podman and run the way deploy/kubernetes runs it.

scripts/container_test.sh builds it (a stand-in python:3.11-slim made from Debian packages,
cached in podman's storage). Each container is published on 127.0.0.1 only and removed at the end.
Skips on a machine without podman (saying how to install it); under CI=true a missing tool fails.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ALICE_TOKEN
from tests.servers import ROOT, free_port, wait_for_http
from tests.test_slow_clients import raise_fd_limit, withstands

CONTAINERS_CONF = ROOT / "scripts" / "podman" / "containers.conf"
TOKEN = "container-test-token-" + uuid.uuid4().hex  # a secret only the running container is given
AWS_SECRET = "container-test-secret-" + uuid.uuid4().hex
RUNTIME_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIACONTAINERTEST000",
    "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
    "AWS_REGION": "eu-west-1",
    "SIGNER_BUCKET": "container-test-bucket",
    "SIGNER_API_TOKENS": f"webapp:{TOKEN}",
}
STOP_TIMEOUT = 10  # podman's and docker's default


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True, timeout=timeout,
                          check=check)


@pytest.fixture(scope="session")
def image() -> str:
    """Build the image once per run (cold ~2 min, warm seconds)."""
    result = subprocess.run(["bash", str(ROOT / "scripts" / "container_test.sh"), "build"], cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    if result.returncode == 3 and os.environ.get("CI") != "true":
        pytest.skip(result.stderr.strip().splitlines()[-1])
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def manifest_container() -> dict[str, Any]:
    deployment = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    return {**pod["containers"][0], "podSecurityContext": pod.get("securityContext", {})}


def manifest_run_options() -> list[str]:
    """podman options for the Deployment's security settings and resource limits."""
    container = manifest_container()
    security = {**container["podSecurityContext"], **container["securityContext"]}
    options = ["--user", f"{security['runAsUser']}:{security['runAsGroup']}"]
    if security.get("readOnlyRootFilesystem"):
        options += ["--read-only", "--read-only-tmpfs=false"]  # no tmpfs at all: none is needed
    if security.get("allowPrivilegeEscalation") is False:
        options += ["--security-opt", "no-new-privileges"]
    options += [f"--cap-drop={cap}" for cap in security["capabilities"]["drop"]]
    assert not security.get("privileged") and not security["capabilities"].get("add")
    limits = container["resources"]["limits"]
    options += ["--cpus", str(limits["cpu"]), "--memory", limits["memory"].replace("Mi", "m")]
    for item in container["env"]:
        if "value" in item and item["name"] not in ("SIGNER_TRUSTED_PROXIES",):
            options += ["-e", f"{item['name']}={item['value']}"]
    return options


@contextmanager
def container(image: str, *options: str, env: dict[str, str] | None = None, port: int = 8080) -> Iterator[tuple[str, str]]:
    """Run the image detached, published on 127.0.0.1 only; yield (name, base URL); remove it."""
    name = f"signer-test-{uuid.uuid4().hex[:12]}"
    host_port = free_port()
    env_options = [part for key, value in (env or RUNTIME_ENV).items() for part in ("-e", f"{key}={value}")]
    podman("run", "-d", "--name", name, "--health-interval=disable", "-p", f"127.0.0.1:{host_port}:{port}",
           *options, *env_options, image)
    base = f"http://127.0.0.1:{host_port}"
    try:
        yield name, base
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)


def call(base: str, path: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def logs(name: str) -> str:
    result = podman("logs", name, check=False)
    return result.stdout + result.stderr


def test_image_serves_under_the_manifests_security_settings(image: str) -> None:
    env = {**RUNTIME_ENV, "SIGNER_BUCKET": manifest_env("SIGNER_BUCKET")}
    with container(image, *manifest_run_options(), env=env) as (name, base):
        wait_for_http(f"{base}/healthz", timeout=30)
        assert call(base, "/healthz") == (200, {"status": "ok"})
        assert call(base, "/readyz")[0] == 200
        body = {"method": "GET", "key": f"uploads/webapp/{uuid.uuid4().hex}.txt"}
        status, answer = call(base, "/v1/presign", body, token=TOKEN)
        assert status == 200, answer
        assert answer["url"].startswith(f"https://{env['SIGNER_BUCKET']}.s3.eu-west-1.amazonaws.com/uploads/webapp/")
        status, answer = call(base, "/v1/presign", body)
        assert status == 401 and answer["code"]
        assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
        assert podman("exec", name, "id", "-g").stdout.strip() == "10001"
        assert podman("exec", name, "id", "-gn").stdout.strip() == "signer"  # the group exists
        status_lines = podman("exec", name, "cat", "/proc/self/status").stdout.splitlines()
        capabilities = {line.split(":")[0]: line.split()[1] for line in status_lines if line.startswith("Cap")}
        assert capabilities["CapEff"] == capabilities["CapPrm"] == capabilities["CapBnd"] == "0" * 16
        assert "NoNewPrivs:\t1" in status_lines
        write = podman("exec", name, "touch", "/app/x", check=False)
        assert write.returncode != 0 and "Read-only file system" in write.stderr
        # The manifest's CPU limit (cgroup quota), not the host's cores, sizes the workers: limit + 1.
        output = logs(name)
        assert output.count("Booting worker") == cpus(manifest_container()["resources"]["limits"]["cpu"]) + 1, output
        assert "control" not in output.lower() and "Traceback" not in output


def cpus(quantity: str | int) -> int:
    """A Kubernetes CPU quantity ("1", "1500m") as whole CPUs, rounded up."""
    text = str(quantity)
    millis = int(text[:-1]) if text.endswith("m") else int(float(text) * 1000)
    return -(-millis // 1000)


def manifest_env(name: str) -> str:
    return next(item["value"] for item in manifest_container()["env"] if item["name"] == name)


def test_healthcheck_follows_a_non_default_bind(image: str) -> None:
    env = {**RUNTIME_ENV, "SIGNER_BIND": "0.0.0.0:8091"}
    with container(image, "--read-only", "--cap-drop=ALL", env=env, port=8091) as (name, base):
        wait_for_http(f"{base}/healthz", timeout=30)
        assert podman("healthcheck", "run", name, check=False).returncode == 0
    config = json.loads(podman("image", "inspect", image).stdout)[0]
    assert config["Healthcheck"]["Test"][0] == "CMD"  # the docker format keeps HEALTHCHECK (OCI drops it)


def test_healthcheck_fails_where_nothing_listens(image: str) -> None:
    """The check really probes SIGNER_BIND: gunicorn moved elsewhere by its own flag fails it."""
    env = {**RUNTIME_ENV, "SIGNER_BIND": "0.0.0.0:8091", "GUNICORN_CMD_ARGS": "--bind 0.0.0.0:8092"}
    with container(image, "--read-only", "--cap-drop=ALL", env=env, port=8092) as (name, base):
        wait_for_http(f"{base}/healthz", timeout=30)
        assert podman("healthcheck", "run", name, check=False).returncode != 0


@pytest.mark.parametrize(("variable", "value", "line"), [
    ("SIGNER_API_TOKENS", "webapp:short", "SIGNER_API_TOKENS token for 'webapp' must be at least 16 characters"),
    ("SIGNER_WORKERS", "abc", "SIGNER_WORKERS must be a whole number, got 'abc'"),
    ("SIGNER_BIND", "8091", "SIGNER_BIND must be host:port (e.g. 0.0.0.0:8080) or unix:/path, got '8091'"),
])
def test_bad_configuration_exits_2_with_one_line(image: str, variable: str, value: str, line: str) -> None:
    name = f"signer-test-{uuid.uuid4().hex[:12]}"
    env = {**RUNTIME_ENV, variable: value}
    options = [part for key, val in env.items() for part in ("-e", f"{key}={val}")]
    try:
        result = podman("run", "--name", name, "--health-interval=disable", "--read-only", "--cap-drop=ALL",
                        *options, image, check=False)
        assert result.returncode == 2
        assert logs(name).strip().splitlines() == [f"sigv4-signer: configuration error: {line}"]
    finally:
        podman("rm", "-f", name, check=False)


def test_sigterm_drains_an_in_flight_request(image: str) -> None:
    with container(image, "--read-only", "--cap-drop=ALL") as (name, base):
        wait_for_http(f"{base}/healthz", timeout=30)
        port = int(base.rsplit(":", 1)[1])
        body = json.dumps({"method": "GET", "key": "uploads/webapp/drain.txt"}).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=15) as client:
            head = (f"POST /v1/presign HTTP/1.1\r\nHost: signer\r\nAuthorization: Bearer {TOKEN}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
            client.sendall(head.encode() + body[:10])  # in flight: the worker waits for the rest
            time.sleep(0.5)
            started = time.monotonic()
            stop = subprocess.Popen(["podman", "stop", "-t", str(STOP_TIMEOUT), name], env=podman_env(),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.5)  # SIGTERM has arrived; the request is still in flight
            client.sendall(body[10:])
            response = b""
            while chunk := client.recv(65536):
                response += chunk
        assert response.startswith(b"HTTP/1.1 200"), response[:200]
        assert stop.wait(timeout=STOP_TIMEOUT + 20) == 0
        stopped_after = time.monotonic() - started
        assert stopped_after < STOP_TIMEOUT, f"stopped after {stopped_after:.1f}s: SIGKILL, not a graceful exit"
        state = json.loads(podman("inspect", name).stdout)[0]["State"]
        assert state["ExitCode"] == 0, logs(name)[-2000:]


def test_no_secret_in_the_image(image: str, tmp_path: Path) -> None:
    """Run a container with the test secrets, then search the image's config, history and layers."""
    with container(image, "--read-only", "--cap-drop=ALL") as (_, base):
        wait_for_http(f"{base}/healthz", timeout=30)
    secrets = [TOKEN.encode(), AWS_SECRET.encode()]
    inspected = podman("image", "inspect", image).stdout + podman("history", "--no-trunc", image).stdout
    archive = tmp_path / "image.tar"
    podman("save", "--format", "docker-archive", "-o", str(archive), image, timeout=300)
    assert archive.stat().st_size > 10_000_000
    found = []
    with tarfile.open(archive) as outer:
        for member in outer.getmembers():
            data = outer.extractfile(member).read() if member.isfile() else b""
            found += [member.name for secret in secrets if secret in data]
            if member.isfile() and member.name.endswith(".tar"):  # a layer
                with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                    for item in layer.getmembers():
                        if item.isfile():
                            content = layer.extractfile(item).read()
                            found += [item.name for secret in secrets if secret in content]
    assert not found and not any(secret.decode() in inspected for secret in secrets)
    assert not any(key.startswith(("AWS_", "SIGNER_API")) for key in
                   (entry.split("=")[0] for entry in json.loads(podman("image", "inspect", image).stdout)[0]["Config"]["Env"]))


@pytest.fixture(scope="module")
def exposed(image: str) -> Iterator[str]:
    """The image with its default command and the manifest's security settings, on the host's
    network (so each attacker's own loopback address reaches it, as clients' addresses reach a
    pod), listening on a custom SIGNER_BIND on 127.0.0.1 only."""
    raise_fd_limit()
    port = free_port()
    env = {**RUNTIME_ENV, "SIGNER_API_TOKENS": f"alice:{ALICE_TOKEN}", "SIGNER_BIND": f"127.0.0.1:{port}"}
    name = f"signer-test-{uuid.uuid4().hex[:12]}"
    env_options = [part for key, value in env.items() for part in ("-e", f"{key}={value}")]
    podman("run", "-d", "--name", name, "--health-interval=disable", "--network", "host",
           *manifest_run_options(), *env_options, image)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=30)
        yield f"http://127.0.0.1:{port}"
        assert "Traceback" not in logs(name)
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)


@pytest.mark.parametrize("attack", ["unfinished 1.1 KiB chunk-size line", "unfinished 17 KiB trailer",
                                    "a body trickled a byte per 2 s", "500 idle and kept-alive connections"])
def test_the_attacks_of_issue_25_do_not_starve_the_image(exposed: str, attack: str) -> None:
    """The same attacks as tests/test_slow_clients.py, against the image as it runs in the pod."""
    withstands(exposed, attack)
