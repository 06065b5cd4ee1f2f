"""The patched s3rver (tests/e2e/patch-s3rver.js) accepts correct SigV4 on virtual-hosted
requests and still refuses bad ones, for header and query-string auth alike."""

from __future__ import annotations

import pytest

from signer import Bucket, Credentials, presign_url, sign_headers
from tests.conftest import ACCESS_KEY, SECRET_KEY
from tests.e2e.conftest import BUCKET
from tests.e2e.test_curl import curl

GOOD = Credentials(ACCESS_KEY, SECRET_KEY)
WRONG = Credentials(ACCESS_KEY, "wrong-secret-wrong-secret")
UNKNOWN = Credentials("AKIDUNKNOWN00000", SECRET_KEY)


@pytest.fixture
def vhost(s3rver) -> Bucket:
    return Bucket(BUCKET, endpoint_url=f"http://s3.localhost:{s3rver}", addressing_style="virtual")


def put_with_headers(bucket: Bucket, creds: Credentials, key: str, body: bytes, tamper: bool = False) -> int:
    url = bucket.object_url(key)
    headers = sign_headers(creds, "PUT", url, headers={"Content-Type": "text/plain"}, body=body)
    if tamper:
        headers["Authorization"] = headers["Authorization"][:-1] + ("0" if headers["Authorization"][-1] != "0" else "1")
    args = [arg for name, value in {**headers, "Content-Type": "text/plain"}.items() for arg in ("-H", f"{name}: {value}")]
    return curl("-X", "PUT", "--data-binary", body.decode(), *args, url)[0]


def test_header_auth_on_vhost(vhost) -> None:
    assert put_with_headers(vhost, GOOD, "uploads/patch/ok.txt", b"ok") == 200
    assert put_with_headers(vhost, GOOD, "uploads/patch/t.txt", b"ok", tamper=True) == 403
    assert put_with_headers(vhost, WRONG, "uploads/patch/w.txt", b"ok") == 403
    assert put_with_headers(vhost, UNKNOWN, "uploads/patch/u.txt", b"ok") == 403


def test_query_auth_on_vhost(vhost, tmp_path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("x")
    good = presign_url(GOOD, vhost, "uploads/patch/q.txt", method="PUT").url
    assert curl("-T", str(path), good)[0] == 200
    assert curl("-T", str(path), presign_url(WRONG, vhost, "uploads/patch/q.txt", method="PUT").url)[0] == 403
    assert curl("-T", str(path), good.replace("/q.txt", "/r.txt"))[0] == 403
    path_style_signature_on_vhost = presign_url(GOOD, Bucket(BUCKET, endpoint_url=vhost.endpoint_url), "uploads/patch/q.txt",
                                                method="PUT").url.split("?", 1)[1]
    assert curl("-T", str(path), vhost.object_url("uploads/patch/q.txt") + "?" + path_style_signature_on_vhost)[0] == 403
