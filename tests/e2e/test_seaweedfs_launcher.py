"""The SeaweedFS launcher itself: loopback only, signatures checked, data kept across restarts,
a taken port refused at once."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from signer import Credentials
from tests.conftest import ACCESS_KEY, SECRET_KEY
from tests.e2e.conftest import BUCKET
from tests.seaweedfs import PortInUse, SeaweedFS, seaweedfs


def test_checks_signatures(weed: SeaweedFS) -> None:
    assert weed.request("PUT", "launcher/ok.txt", body=b"ok")[0] == 200
    assert weed.get_object("launcher/ok.txt") == b"ok"
    wrong = SeaweedFS(weed.port, weed.bucket, Credentials(ACCESS_KEY, "not-the-secret-key-0123456789"))
    assert wrong.request("GET", "launcher/ok.txt")[0] == 403


def test_listens_on_loopback_only(weed: SeaweedFS) -> None:
    """Nothing answers on a non-loopback address of this machine at the S3 port."""
    addresses = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    for address in addresses - {"127.0.0.1"}:
        if address.startswith("127."):
            continue
        with socket.socket() as sock, pytest.raises(OSError):
            sock.settimeout(1)
            sock.connect((address, weed.port))


def test_keeps_data_and_refuses_a_taken_port(tmp_path: Path, weed: SeaweedFS) -> None:
    with pytest.raises(PortInUse, match=f"port {weed.port} "):
        with seaweedfs(tmp_path, ACCESS_KEY, SECRET_KEY, BUCKET, port=weed.port):
            pass
    for attempt in range(2):
        with seaweedfs(tmp_path / "data", ACCESS_KEY, SECRET_KEY, BUCKET) as store:
            if attempt == 0:
                assert store.request("PUT", "kept.txt", body=b"kept")[0] == 200
            assert store.get_object("kept.txt") == b"kept"
