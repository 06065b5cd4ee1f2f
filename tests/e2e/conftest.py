"""Real peers for end-to-end tests: SeaweedFS (checks SigV4 signatures and POST policies), s3rver,
and the service under gunicorn, each on 127.0.0.1 and a free port, stopped by PID."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import ACCESS_KEY, SECRET_KEY, env_with
from tests.seaweedfs import INSTALL_HINT, SeaweedFS, find_weed, seaweedfs
from tests.servers import ROOT, SERVER_LOGS, free_port, require_tool, running

BUCKET = "uploads-bucket"
S3RVER = ROOT / "node_modules" / "@20minutes" / "s3rver"


def require_node_peers() -> str:
    node = require_tool("node", "install Node.js (Debian: apt-get install nodejs npm), then run npm ci")
    if not S3RVER.is_dir():
        message = "the npm peers are not installed: run npm ci (scripts/test.sh does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return node


@pytest.fixture(scope="session")
def weed(tmp_path_factory) -> Iterator[SeaweedFS]:
    """SeaweedFS `weed mini` on 127.0.0.1 with bucket BUCKET and the tests' credentials as its one
    identity; path style at ``weed.path_endpoint``, virtual-hosted at ``weed.virtual_endpoint``
    (``<bucket>.s3.localhost:<port>``). ``weed.signer_env(style)`` points the service at it."""
    if not find_weed():
        message = f"SeaweedFS is not installed: {INSTALL_HINT}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    directory = tmp_path_factory.mktemp("seaweedfs")
    log = directory.parent / "seaweedfs.log"
    SERVER_LOGS.append(log)
    with seaweedfs(directory / "data", ACCESS_KEY, SECRET_KEY, BUCKET, log=log) as store:
        yield store


@pytest.fixture(scope="session")
def s3rver(tmp_path_factory) -> Iterator[int]:
    """A signature-checking S3 on 127.0.0.1; path-style at 127.0.0.1:<port>, virtual-hosted at
    <bucket>.s3.localhost:<port>. Its CORS rules allow any origin."""
    node = require_node_peers()
    port = free_port()
    directory = tmp_path_factory.mktemp("s3rver")
    command = [node, str(ROOT / "tests/e2e/s3rver.js"), str(port), str(directory), BUCKET, ACCESS_KEY, SECRET_KEY, "*"]
    with running(command, f"http://127.0.0.1:{port}/", log_path=directory.parent / "s3rver.log"):
        yield port


@contextmanager
def service(tmp_path: Path, **overrides: str | None) -> Iterator[str]:
    """The signing service under gunicorn (the Dockerfile's config file), one worker."""
    port = free_port()
    overrides = {"SIGNER_ALLOWED_CONTENT_TYPES": "image/*,application/pdf,text/plain", **overrides}
    environ = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIGNER_"))},
               **env_with(**overrides)}
    command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
               "--workers", "2", "wsgi:app"]
    with running(command, f"http://127.0.0.1:{port}/healthz", env=environ, log_path=tmp_path / f"service-{port}.log"):
        yield f"http://127.0.0.1:{port}"


def path_style(port: int) -> dict[str, str]:
    return {"SIGNER_ENDPOINT_URL": f"http://127.0.0.1:{port}", "SIGNER_ADDRESSING_STYLE": "path"}


def virtual_hosted(port: int) -> dict[str, str]:
    return {"SIGNER_ENDPOINT_URL": f"http://s3.localhost:{port}", "SIGNER_ADDRESSING_STYLE": "virtual"}


@pytest.fixture(scope="module", params=["path", "virtual"])
def signer_service(request, s3rver, tmp_path_factory) -> Iterator[str]:
    """The service in front of s3rver, in both addressing styles."""
    style = path_style(s3rver) if request.param == "path" else virtual_hosted(s3rver)
    with service(tmp_path_factory.mktemp("service"), **style) as url:
        yield url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/e2e is end to end: `-m "not e2e"` runs the fast suite alone."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)
