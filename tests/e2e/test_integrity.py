"""Checksums and no-overwrite against SeaweedFS with the real curl (issue #20): every refusal of
other bytes or of an existing key here is the store's own (400 BadDigest, 412
PreconditionFailed), or the service's before it signs (400, 409). No mock store."""

from __future__ import annotations

import base64
import hashlib
import re
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from tests import fineuploader_samples as fu
from tests.conftest import bearer
from tests.e2e.conftest import service
from tests.e2e.test_curl import api, curl, form_args, header_args

A, B = b"file A: the bytes that were declared\n", b"file B: other bytes, same length!!!!\n"


@pytest.fixture(scope="module")
def signer(weed, tmp_path_factory):
    """The defaults (SIGNER_OVERWRITE=deny), virtual-hosted as Fine Uploader needs; DELETE for aborts."""
    with service(tmp_path_factory.mktemp("integrity"), SIGNER_ALLOWED_METHODS="GET,PUT,HEAD,DELETE",
                 **weed.signer_env("virtual")) as url:
        yield url


@pytest.fixture(scope="module")
def allowing(weed, tmp_path_factory):
    with service(tmp_path_factory.mktemp("integrity-allow"), SIGNER_OVERWRITE="allow",
                 **weed.signer_env("virtual")) as url:
        yield url


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    (tmp_path / "a.txt").write_bytes(A)
    (tmp_path / "b.txt").write_bytes(B)
    return tmp_path / "a.txt", tmp_path / "b.txt"


def presign_put(base: str, key: str, **extra: object) -> dict:
    return api(base, "/v1/presign", {"method": "PUT", "key": key, "content_type": "text/plain",
                                     "content_length": len(A), **extra})


@pytest.mark.parametrize(("field", "value"), [
    ("checksum_sha256", base64.b64encode(hashlib.sha256(A).digest()).decode()),
    ("checksum_crc32", base64.b64encode(zlib.crc32(A).to_bytes(4, "big")).decode()),
])
def test_a_signed_checksum_lets_a_land_and_the_store_refuses_b(signer, weed, files, field, value) -> None:
    file_a, file_b = files
    key = f"uploads/alice/sum-{field}.txt"
    weed.request("DELETE", key)
    put = presign_put(signer, key, **{field: value})
    assert put["headers"][f"x-amz-{field.replace('_', '-')}"] == value
    status, body = curl("-T", str(file_b), *header_args(put["headers"]), put["url"])
    assert status == 400 and b"BadDigest" in body, body
    assert weed.get_object(key) is None
    status, body = curl("-T", str(file_a), *header_args(put["headers"]), put["url"])
    assert status == 200, body
    assert weed.get_object(key) == A
    without = header_args({name: v for name, v in put["headers"].items() if not name.startswith("x-amz-checksum")})
    weed.request("DELETE", key)
    assert curl("-T", str(file_a), *without, put["url"])[0] == 403  # the signed checksum cannot be dropped


def test_an_invalid_checksum_is_a_400_before_signing(signer) -> None:
    for value in ("abc", "A" * 42 + "B=", hashlib.sha256(A).hexdigest(), "-" * 43 + "="):
        answer = requests.post(f"{signer}/v1/presign", json={"method": "PUT", "key": "uploads/alice/x.txt",
                                                              "content_type": "text/plain", "content_length": 1,
                                                              "checksum_sha256": value}, headers=bearer(), timeout=10)
        assert answer.status_code == 400 and answer.json()["code"] == "invalid_checksum", answer.text
        assert "checksum_sha256" in answer.json()["error"] and "url" not in answer.json()


def test_a_post_form_with_a_checksum_is_checked_by_the_store(signer, weed, files) -> None:
    file_a, file_b = files
    value = base64.b64encode(hashlib.sha256(A).digest()).decode()
    form = api(signer, "/v1/post-policy", {"filename": "a.txt", "content_type": "text/plain", "checksum_sha256": value})
    status, body = curl(*form_args(form["fields"]), "-F", f"file=@{file_b}", form["url"])
    assert status == 400 and b"BadDigest" in body, body
    dropped = {name: v for name, v in form["fields"].items() if name != "x-amz-checksum-sha256"}
    status, body = curl(*form_args(dropped), "-F", f"file=@{file_a}", form["url"])
    assert status == 403, body  # the policy's condition names the field
    status, body = curl(*form_args(form["fields"]), "-F", f"file=@{file_a}", form["url"])
    assert status in (200, 201, 204), body
    assert weed.get_object(form["key"]) == A


def test_deny_a_second_put_url_cannot_replace_an_object_and_allow_can(signer, allowing, weed, files) -> None:
    file_a, file_b = files
    key = "uploads/alice/once.txt"
    weed.request("DELETE", key)
    first, second = presign_put(signer, key), presign_put(signer, key)
    assert first["headers"]["If-None-Match"] == "*"
    assert curl("-T", str(file_a), *header_args(first["headers"]), first["url"])[0] == 200
    status, body = curl("-T", str(file_b), *header_args(second["headers"]), second["url"])
    assert status == 412 and b"PreconditionFailed" in body, body
    assert weed.get_object(key) == A
    replace = presign_put(allowing, key)
    assert "If-None-Match" not in replace["headers"]
    assert curl("-T", str(file_b), *header_args(replace["headers"]), replace["url"])[0] == 200
    assert weed.get_object(key) == B


def companion_upload(base: str, tmp_path: Path) -> tuple[str, str, list[dict]]:
    """A Companion multipart upload of one small part (sent by curl: Python does not resolve
    ``*.localhost``), up to (not including) the complete."""
    created = requests.post(f"{base}/s3/multipart", json={"filename": "big.txt", "type": "text/plain"},
                            headers=bearer(), timeout=10)
    assert created.status_code == 200, created.text
    key, upload_id = created.json()["key"], created.json()["uploadId"]
    part = requests.get(f"{base}/s3/multipart/{upload_id}/1", params={"key": key}, headers=bearer(), timeout=10)
    (tmp_path / "part").write_bytes(B)
    status, head = curl("-D", "-", "-o", "/dev/null", "-T", str(tmp_path / "part"), part.json()["url"])
    assert status == 200, head
    etag = re.search(rb"(?im)^etag: *(\S+)", head).group(1).decode()
    return key, upload_id, [{"PartNumber": 1, "ETag": etag}]


def complete(base: str, key: str, upload_id: str, parts: list[dict]) -> requests.Response:
    return requests.post(f"{base}/s3/multipart/{upload_id}/complete", params={"key": key}, json={"parts": parts},
                         headers=bearer(), timeout=30)


def test_companion_complete_onto_an_existing_key_fails_and_keeps_the_first_object(signer, allowing, weed,
                                                                                   tmp_path) -> None:
    key, upload_id, parts = companion_upload(signer, tmp_path)
    assert weed.request("PUT", key, body=A)[0] == 200  # the key fills up before the complete
    answer = complete(signer, key, upload_id, parts)
    assert answer.status_code == 409 and answer.json()["code"] == "object_exists", answer.text
    assert weed.get_object(key) == A
    assert weed.request("GET", key, f"uploadId={upload_id.rpartition('.')[0]}")[0] == 404  # aborted: no parts left

    key, upload_id, parts = companion_upload(allowing, tmp_path)
    assert weed.request("PUT", key, body=A)[0] == 200
    assert complete(allowing, key, upload_id, parts).status_code == 200
    assert weed.get_object(key) == B


def start(weed, key: str) -> tuple[str, str]:
    status, _, body = weed.request("POST", key, "uploads=")
    assert status == 200, body
    upload_id = re.search(r"<UploadId>([^<]+)</UploadId>", body.decode()).group(1)
    status, headers, _ = weed.request("PUT", key, f"partNumber=1&uploadId={upload_id}", body=B)
    return upload_id, headers["etag"]


def test_sign_request_complete_carries_if_none_match_and_the_store_enforces_it(signer, weed) -> None:
    key = "uploads/alice/sr-once.txt"
    weed.request("DELETE", key)
    upload_id, etag = start(weed, key)
    signed = requests.post(f"{signer}/v1/sign-request", json={"method": "POST", "key": key, "uploadId": upload_id},
                           headers=bearer(), timeout=10).json()
    assert signed["headers"] == {"If-None-Match": "*"}
    assert weed.request("PUT", key, body=A)[0] == 200  # someone else's object lands first
    xml = f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    status, body = curl("-X", "POST", "--data-binary", xml, *header_args(signed["headers"]), signed["url"])
    assert status == 412 and b"PreconditionFailed" in body, body
    assert weed.get_object(key) == A


def test_fine_uploader_complete_onto_an_existing_key_is_refused_before_signing(signer, weed) -> None:
    """Fine Uploader 5.16.2 cannot send If-None-Match on its complete: the service HEADs the key."""
    key = "uploads/alice/fu-once.txt"
    weed.request("DELETE", key)
    upload_id, _ = start(weed, key)
    host = f"{weed.bucket}.s3.localhost:{weed.port}"
    now = datetime.now(UTC).replace(microsecond=0)
    raw = fu.headers_string("complete", now, host=host, key=key, upload_id=upload_id)
    fresh = requests.post(f"{signer}/s3/signature?v4=true", json={"headers": raw}, headers=bearer(), timeout=15)
    assert fresh.status_code == 200 and set(fresh.json()) == {"signature"}, fresh.text
    assert weed.request("PUT", key, body=A)[0] == 200
    answer = requests.post(f"{signer}/s3/signature?v4=true", json={"headers": raw}, headers=bearer(), timeout=15)
    assert answer.status_code == 409 and answer.json()["code"] == "object_exists", answer.text
    assert "signature" not in answer.json() and weed.get_object(key) == A
