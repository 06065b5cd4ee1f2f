"""The local default of scripts/run.sh: SeaweedFS (`weed mini`) on loopback with the local
credentials as its one identity and the bucket with CORS for the demo's origins, data kept in
.local-data/seaweedfs/ across restarts; then the service under gunicorn. Ctrl-C stops both.

``--check-bind`` only checks that SIGNER_BIND's port is free (run.sh's other mode uses it).
A port in use ends the run with one line and exit status 1.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from signer.service.config import load_config
from signer.service.errors import ConfigError
from signer.service.server import server_settings
from tests.seaweedfs import INSTALL_HINT, PortInUse, StoreFailed, port_is_free, seaweedfs

ROOT = Path(__file__).resolve().parent.parent  # run as `python -m scripts.local_store` from here

DATA = Path(os.environ.get("LOCAL_DATA_DIR") or ROOT / ".local-data").resolve()


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def say(message: str) -> None:
    print(f"run.sh: {message}", file=sys.stderr, flush=True)


def bind_port(bind: str) -> tuple[str, int] | None:
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "0.0.0.0", int(port)


def check_bind(bind: str) -> bool:
    """False (after one line) when SIGNER_BIND's port is taken on loopback."""
    parsed = bind_port(bind)
    if parsed and not port_is_free(parsed[1]):
        say(f"port {parsed[1]} is in use (another scripts/run.sh?); stop it or set SIGNER_BIND=127.0.0.1:<port>")
        return False
    return True


def answer(url: str, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
        return json.load(response)


def wait_for_service(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1)
            return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    return False


def banner(base: str, s3_endpoint: str, bucket: str) -> str:
    """What a user needs, read from the running service itself (so it cannot be wrong)."""
    visitor = answer(base + "/v1/whoami")["key_prefix"]  # a fresh visitor: <prefix>anonymous/<id>/
    anonymous = visitor.rstrip("/").rsplit("/", 1)[0] + "/<id>/ (one folder per browser, by cookie)"
    token = os.environ["SIGNER_API_TOKENS"].split(",")[0].partition(":")[2]
    named = answer(base + "/v1/whoami", token)
    return "\n".join([
        "local default ready (Ctrl-C stops it):",
        f"  demo page  {base}/  (anonymous: uploads under {anonymous})",
        f"  API token  {token}  (identity {named['identity']!r}: keys under {named['key_prefix']})",
        f"  S3         {s3_endpoint}, bucket {bucket!r} (SeaweedFS; key {os.environ['AWS_ACCESS_KEY_ID']},"
        f" secret {os.environ['AWS_SECRET_ACCESS_KEY']}: local only)",
        *([f"  publish    to bucket {os.environ['SIGNER_PUBLISH_BUCKET']!r} (POST /v1/uploads/publish; its objects "
           "are public)"] if os.environ.get("SIGNER_PUBLISH_BUCKET") else []),
        f"  data       {shown(DATA / 'seaweedfs')}/ (kept across restarts; delete it to start empty)",
    ])


def main() -> int:
    bind = os.environ.get("SIGNER_BIND", "127.0.0.1:8080")
    if sys.argv[1:] == ["--check-bind"]:
        return 0 if check_bind(bind) else 1
    port_text = os.environ.get("LOCAL_S3_PORT", "9000").strip()
    if not (port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536):
        say(f"LOCAL_S3_PORT must be a port number from 1 to 65535, got {port_text!r}")
        return 2
    s3_port = int(port_text)
    try:  # configuration errors before SeaweedFS starts, with the same one line the service gives
        server_settings(os.environ)
        load_config()
    except ConfigError as exc:
        say(f"configuration error: {exc.message}")
        return 2
    if not port_is_free(s3_port):
        say(f"port {s3_port} is in use (another scripts/run.sh?); stop it or set LOCAL_S3_PORT=<port>")
        return 1
    if not check_bind(bind):
        return 1
    bucket = os.environ["SIGNER_BUCKET"]
    DATA.mkdir(parents=True, exist_ok=True)
    lock = open(DATA / ".lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        say(f"{shown(DATA)}/ is in use by another scripts/run.sh (two SeaweedFS cannot share one folder); "
            "stop it, or give this one its own with LOCAL_DATA_DIR=<folder>")
        return 1
    say(f"starting SeaweedFS on 127.0.0.1:{s3_port} (log: {shown(DATA / 'seaweedfs.log')})")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background with SIGINT ignored
    try:
        public = os.environ.get("SIGNER_PUBLISH_BUCKET", "").strip()
        with seaweedfs(DATA / "seaweedfs", os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
                       bucket, port=s3_port, log=DATA / "seaweedfs.log",
                       public_read=(public,) if public and public != bucket else ()) as store:
            store.put_cors([o.strip() for o in os.environ.get("SIGNER_CORS_ORIGINS", "").split(",") if o.strip()])
            if public and public != bucket:
                store.create_bucket(public)  # published objects: anyone may GET one, nobody may list
            say(f"starting the service on {bind}")
            service = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"],
                                       cwd=ROOT)
            try:
                host, port = bind_port(bind) or ("127.0.0.1", 8080)
                base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
                if wait_for_service(base, service):
                    print(banner(base, os.environ["SIGNER_ENDPOINT_URL"], bucket), flush=True)
                return service.wait()
            except KeyboardInterrupt:
                return 0
            finally:
                if service.poll() is None:
                    service.terminate()
                try:
                    service.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    service.kill()
                say("stopped SeaweedFS and the service")
    except PortInUse as exc:
        say(f"{exc}; stop what uses it or set LOCAL_S3_PORT=<port>")
        return 1
    except StoreFailed as exc:
        say(f"SeaweedFS did not start: {exc} (see {shown(DATA / 'seaweedfs.log')}; {INSTALL_HINT})")
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
