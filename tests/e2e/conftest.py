"""Real peers for end-to-end tests: SeaweedFS (checks SigV4 signatures and POST policies) and the service under gunicorn, each on 127.0.0.1 and a free port, stopped by PID."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import ACCESS_KEY, SECRET_KEY, env_with
from tests.seaweedfs import INSTALL_HINT, SeaweedFS, find_weed, seaweedfs
from tests.servers import ROOT, SERVER_LOGS, free_port, running

BUCKET = "uploads-bucket"
FINE_UPLOADER = ROOT / "node_modules" / "fine-uploader" / "s3.fine-uploader"


def require_node_peers() -> None:
    """Fine Uploader, installed by npm ci (scripts/test.sh does it)."""
    if not (FINE_UPLOADER / "s3.fine-uploader.core.min.js").is_file():
        message = "the npm peers are not installed: run npm ci (scripts/test.sh does; Debian: apt-get install npm)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def require_weed() -> str:
    """The `weed` binary; skip without it on a developer machine, fail under CI=true."""
    weed = find_weed()
    if not weed:
        message = f"SeaweedFS is not installed: {INSTALL_HINT}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return weed


@pytest.fixture(scope="session")
def weed(tmp_path_factory) -> Iterator[SeaweedFS]:
    """SeaweedFS `weed mini` on 127.0.0.1 with bucket BUCKET and the tests' credentials as its one
    identity; path style at ``weed.path_endpoint``, virtual-hosted at ``weed.virtual_endpoint``
    (``<bucket>.s3.localhost:<port>``). ``weed.signer_env(style)`` points the service at it."""
    require_weed()
    directory = tmp_path_factory.mktemp("seaweedfs")
    log = directory.parent / "seaweedfs.log"
    SERVER_LOGS.append(log)
    with seaweedfs(directory / "data", ACCESS_KEY, SECRET_KEY, BUCKET, log=log) as store:
        yield store


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


def path_style(store: SeaweedFS) -> dict[str, str]:
    return store.signer_env("path")


def virtual_hosted(store: SeaweedFS) -> dict[str, str]:
    return store.signer_env("virtual")


@pytest.fixture(scope="module", params=["path", "virtual"])
def signer_service(request, weed, tmp_path_factory) -> Iterator[str]:
    """The service in front of SeaweedFS, in both addressing styles."""
    with service(tmp_path_factory.mktemp("service"), **weed.signer_env(request.param)) as url:
        yield url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/e2e is end to end: `-m "not e2e"` runs the fast suite alone."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)
