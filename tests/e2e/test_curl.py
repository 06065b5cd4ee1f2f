"""The real curl binary against SeaweedFS, a store that checks signatures and POST policies,
with URLs and forms from the running service, in both addressing styles: whatever the store
refuses here, it refused on its own judgement."""

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
from tests.e2e.conftest import path_style, service, virtual_hosted
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
def test_presigned_put_then_get_round_trips(signer_service, weed, upload_file, key) -> None:
    data = upload_file.read_bytes()
    weed.request("DELETE", key)  # both styles share the bucket, and SIGNER_OVERWRITE=deny keeps what is there
    put = api(signer_service, "/v1/presign", {"method": "PUT", "key": key, "content_type": "text/plain",
                                               "content_length": len(data)})
    assert put["headers"] == {"Content-Type": "text/plain", "Content-Length": str(len(data)), "If-None-Match": "*"}
    status, body = curl("-T", str(upload_file), *header_args(put["headers"]), put["url"])
    assert status == 200, body
    get = api(signer_service, "/v1/presign", {"method": "GET", "key": key})
    status, body = curl(get["url"])
    assert status == 200 and body == data


def test_tampered_expired_wrong_method_and_wrong_type_are_rejected(signer_service, weed, upload_file) -> None:
    data = upload_file.read_bytes()
    key = "uploads/alice/guarded.txt"
    weed.request("DELETE", key)  # the other addressing style's run put it there
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
    assert curl("-T", str(upload_file), "-H", "Content-Type: text/plain", url)[0] == 403  # signed If-None-Match left out
    assert curl("-T", str(upload_file), *header_args(put["headers"]), url)[0] == 200
    assert curl("-T", str(upload_file), *header_args(put["headers"]), url)[0] == 412  # replayed: the object exists
    weed.request("DELETE", key)
    time.sleep(3.5)
    assert curl("-T", str(upload_file), *header_args(put["headers"]), url)[0] == 403  # expired


def test_wrong_secret_is_rejected_by_the_store(weed, upload_file, tmp_path) -> None:
    """The judge can say no: the same flow signed with a wrong secret fails."""
    with service(tmp_path, AWS_SECRET_ACCESS_KEY="not-the-right-secret-at-all", **path_style(weed)) as base:
        put = api(base, "/v1/presign", {"method": "PUT", "key": "uploads/alice/x.txt", "content_type": "text/plain",
                                        "content_length": upload_file.stat().st_size})
        assert curl("-T", str(upload_file), *header_args(put["headers"]), put["url"])[0] == 403


def form_args(fields: dict[str, str]) -> list[str]:
    """--form-string: curl -F would read a value starting with @ or < as a file and cut at ';'."""
    return [arg for name, value in fields.items() for arg in ("--form-string", f"{name}={value}")]


def post_form(form: dict, path: Path, **replace: str) -> tuple[int, bytes]:
    fields = {**form["fields"], **replace}
    return curl(*form_args(fields), "-F", f"file=@{path}", form["url"])  # fields first, file last


def test_post_policy_with_curl_form(signer_service, tmp_path) -> None:
    payload = b"%PDF-1.4 tiny"
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(payload)
    form = api(signer_service, "/v1/post-policy", {"filename": "report; x=1.pdf", "content_type": "application/pdf"})
    status, body = post_form(form, pdf)
    assert status in (200, 201, 204), body
    key = form["key"]
    assert key.startswith("uploads/alice/") and key.endswith(".pdf")
    get = api(signer_service, "/v1/presign", {"method": "GET", "key": key})
    assert curl(get["url"])[1] == payload
    status, head = curl("-D", "-", "-o", "/dev/null", get["url"])
    assert b"content-type: application/pdf" in head.lower()


def test_the_store_enforces_every_post_condition(signer_service, weed, tmp_path) -> None:
    """Each condition of the signed policy is checked by SeaweedFS itself, not by us."""
    small, big = tmp_path / "small.pdf", tmp_path / "big.pdf"
    small.write_bytes(b"%PDF-1.4 small")
    big.write_bytes(b"%PDF" + b"x" * 1_000_000)  # BASE_ENV's SIGNER_MAX_SIZE is 1000000
    form = api(signer_service, "/v1/post-policy", {"filename": "doc.pdf", "content_type": "application/pdf"})
    key = form["key"]

    status, body = post_form(form, big)
    assert status == 400 and b"EntityTooLarge" in body, body
    status, body = post_form(form, small, key="uploads/bob/stolen.pdf")
    assert status == 403, body
    status, body = post_form(form, small, **{"Content-Type": "text/html"})
    assert status == 403, body
    policy = json.loads(base64.b64decode(form["fields"]["policy"]))
    policy["conditions"] = [c for c in policy["conditions"] if not (isinstance(c, list) and c[0] == "content-length-range")]
    tampered = base64.b64encode(json.dumps(policy).encode()).decode()
    status, body = post_form(form, big, policy=tampered)
    assert status == 403 and b"SignatureDoesNotMatch" in body, body
    assert weed.get_object(key) is None and weed.get_object("uploads/bob/stolen.pdf") is None

    short = api(signer_service, "/v1/post-policy", {"filename": "late.pdf", "content_type": "application/pdf",
                                                     "expires_in": 1})
    time.sleep(2.2)
    status, body = post_form(short, small)
    assert status == 403 and b"expired" in body.lower(), body
    assert weed.get_object(short["key"]) is None

    status, body = post_form(form, small)  # the untouched form still works
    assert status in (200, 201, 204), body
    assert weed.get_object(key) == b"%PDF-1.4 small"


def test_unsigned_amz_header_is_refused_by_the_store(signer_service, weed, upload_file) -> None:
    """An x-amz-* header added to a presigned request is not covered by the signature: refused."""
    weed.request("PUT", "uploads/alice/secret-source.txt", body=b"not yours")
    data = upload_file.read_bytes()
    key = "uploads/alice/copy-target.txt"
    put = api(signer_service, "/v1/presign", {"method": "PUT", "key": key, "content_type": "text/plain",
                                               "content_length": len(data)})
    extra = ["-H", f"x-amz-copy-source: /{weed.bucket}/uploads/alice/secret-source.txt"]
    status, body = curl("-T", str(upload_file), *header_args(put["headers"]), *extra, put["url"])
    assert status == 403, body
    assert weed.get_object(key) is None


def test_cli_url_works_with_curl(weed, upload_file) -> None:
    for style in (path_style(weed), virtual_hosted(weed)):
        environ = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIGNER_"))},
                   **env_with(**style)}
        result = subprocess.run(
            [sys.executable, "-m", "signer", "presign", "PUT", "uploads/cli/cat.jpg", "--content-type", "image/jpeg",
             "--content-length", str(upload_file.stat().st_size), "--expires", "300"], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        weed.request("DELETE", "uploads/cli/cat.jpg")  # one key for both styles; SIGNER_OVERWRITE=deny
        assert curl("-T", str(upload_file), "-H", "Content-Type: image/jpeg", "-H", "If-None-Match: *",
                    result.stdout.strip())[0] == 200
