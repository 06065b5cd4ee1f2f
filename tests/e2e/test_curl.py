"""The real curl binary against a server that checks signatures (s3rver), with URLs and
forms from the running service, in both addressing styles."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ALICE_TOKEN, env_with
from tests.e2e.conftest import BUCKET, path_style, service, virtual_hosted
from tests.servers import ROOT, require_tool

KEYS = ["uploads/alice/plain.txt", "uploads/alice/with space.txt", "uploads/alice/ünïcödé 猫.txt",
        "uploads/alice/a+b%20c%.txt", "uploads/alice/dir//x~y*z'!(1).txt"]


def curl(*args: str) -> tuple[int, bytes]:
    """Run curl; return (HTTP status, body)."""
    binary = require_tool("curl", "install it with: apt-get install curl")
    result = subprocess.run([binary, "-s", "-o", "-", "-w", "\n%{http_code}", *args], capture_output=True, timeout=60)
    body, _, status = result.stdout.rpartition(b"\n")
    return int(status or 0), body


def api(base: str, path: str, body: dict, token: str = ALICE_TOKEN) -> dict:
    request = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def header_args(headers: dict[str, str]) -> list[str]:
    return [arg for name, value in headers.items() if name != "Content-Length" for arg in ("-H", f"{name}: {value}")]


@pytest.fixture
def upload_file(tmp_path) -> Path:
    path = tmp_path / "upload.txt"
    path.write_bytes(os.urandom(512) + "ünïcödé".encode())
    return path


@pytest.mark.parametrize("key", KEYS)
def test_presigned_put_then_get_round_trips(signer_service, upload_file, tmp_path, key) -> None:
    data = upload_file.read_bytes()
    put = api(signer_service, "/v1/presign", {"method": "PUT", "key": key, "content_type": "text/plain",
                                               "content_length": len(data)})
    assert put["headers"] == {"Content-Type": "text/plain", "Content-Length": str(len(data))}
    status, body = curl("-T", str(upload_file), *header_args(put["headers"]), put["url"])
    assert status == 200, body
    get = api(signer_service, "/v1/presign", {"method": "GET", "key": key})
    status, body = curl(get["url"])
    assert status == 200 and body == data


def test_tampered_expired_wrong_method_and_wrong_type_are_rejected(signer_service, upload_file) -> None:
    data = upload_file.read_bytes()
    key = "uploads/alice/guarded.txt"
    put = api(signer_service, "/v1/presign", {"method": "PUT", "key": key, "content_type": "text/plain",
                                               "content_length": len(data), "expires_in": 2})
    url = put["url"]
    tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
    assert curl("-T", str(upload_file), "-H", "Content-Type: text/plain", tampered)[0] == 403
    assert curl("-T", str(upload_file), "-H", "Content-Type: text/html", url)[0] == 403
    other_key = url.replace("guarded.txt", "other.txt")
    assert curl("-T", str(upload_file), "-H", "Content-Type: text/plain", other_key)[0] == 403
    get = api(signer_service, "/v1/presign", {"method": "GET", "key": key})["url"]
    assert curl("-T", str(upload_file), "-H", "Content-Type: text/plain", get)[0] == 403  # GET URL used to PUT
    assert curl("-X", "DELETE", url)[0] == 403  # PUT URL used to DELETE
    assert curl("-T", str(upload_file), "-H", "Content-Type: text/plain", url)[0] == 200
    time.sleep(3.5)
    assert curl("-T", str(upload_file), "-H", "Content-Type: text/plain", url)[0] == 403  # expired


def test_wrong_secret_is_rejected_by_the_store(s3rver, upload_file, tmp_path) -> None:
    """The judge can say no: the same flow signed with a wrong secret fails."""
    with service(tmp_path, AWS_SECRET_ACCESS_KEY="not-the-right-secret-at-all", **path_style(s3rver)) as base:
        put = api(base, "/v1/presign", {"method": "PUT", "key": "uploads/alice/x.txt", "content_type": "text/plain",
                                        "content_length": upload_file.stat().st_size})
        assert curl("-T", str(upload_file), *header_args(put["headers"]), put["url"])[0] == 403


def test_post_policy_with_curl_form(signer_service, tmp_path) -> None:
    payload = b"%PDF-1.4 tiny"
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(payload)
    form = api(signer_service, "/v1/post-policy", {"filename": "report.pdf", "content_type": "application/pdf"})
    args = [arg for name, value in form["fields"].items() for arg in ("-F", f"{name}={value}")]
    status, body = curl(*args, "-F", f"file=@{pdf}", form["url"])  # fields first, file last
    assert status in (200, 201, 204), body
    key = form["key"]
    assert key.startswith("uploads/alice/") and key.endswith(".pdf")
    get = api(signer_service, "/v1/presign", {"method": "GET", "key": key})
    assert curl(get["url"])[1] == payload
    status, head = curl("-D", "-", "-o", "/dev/null", get["url"])
    assert b"content-type: application/pdf" in head.lower()

    # s3rver does not check policies, so check the policy itself: every rule is in it, exactly.
    policy = json.loads(base64.b64decode(form["fields"]["policy"]))
    conditions = policy["conditions"]
    assert {"bucket": BUCKET} in conditions
    assert {"key": key} in conditions
    assert ["content-length-range", 0, 1000000] in conditions
    assert {"Content-Type": "application/pdf"} in conditions
    assert policy["expiration"] == form["expires_at"]
    assert {"x-amz-algorithm": "AWS4-HMAC-SHA256"} in conditions
    names = {name for condition in conditions if isinstance(condition, dict) for name in condition}
    assert names == {"Content-Type", "bucket", "key", "x-amz-algorithm", "x-amz-credential", "x-amz-date"}


def test_cli_url_works_with_curl(s3rver, upload_file) -> None:
    for style in (path_style(s3rver), virtual_hosted(s3rver)):
        environ = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIGNER_"))},
                   **env_with(**style)}
        result = subprocess.run(
            [sys.executable, "-m", "signer", "presign", "PUT", "uploads/cli/cat.jpg", "--content-type", "image/jpeg",
             "--expires", "300"], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert curl("-T", str(upload_file), "-H", "Content-Type: image/jpeg", result.stdout.strip())[0] == 200
