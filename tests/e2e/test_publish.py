"""Publish against SeaweedFS with two buckets: the service's server-side copies (CopyObject,
UploadPartCopy) are signed by our own code and checked by the store; every copy is compared
byte for byte with what was uploaded. Refusals copy nothing (the public bucket's listing is
unchanged)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests

from signer import Bucket
from signer.service.storage import (
    SourceChanged,
    StorageError,
    copy_large_object,
    head_object,
    list_multipart_uploads,
)
from tests.conftest import ALICE_TOKEN, BOB_TOKEN
from tests.e2e.conftest import service
from tests.seaweedfs import SeaweedFS

PUBLIC = "public-bucket"
MiB = 1024 * 1024
SLUG = r"[a-z2-7]{26}"


@pytest.fixture(scope="module")
def stores(weed) -> tuple[SeaweedFS, SeaweedFS]:
    """The session's SeaweedFS bucket and a second one in the same store, to publish to."""
    weed.create_bucket(PUBLIC)
    return weed, SeaweedFS(weed.port, PUBLIC, weed.credentials, weed.region)


@pytest.fixture(scope="module")
def signer(stores, tmp_path_factory) -> Iterator[str]:
    """Publishing to the second bucket; uploads limited to 1 MB of images, PDFs and text."""
    with service(tmp_path_factory.mktemp("publish"), SIGNER_PUBLISH_BUCKET=PUBLIC, **stores[0].signer_env("path")) as url:
        yield url


def auth(token: str = ALICE_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(base: str, key: str, body: bytes, content_type: str = "image/png", token: str = ALICE_TOKEN) -> None:
    signed = requests.post(f"{base}/v1/presign", json={"method": "PUT", "key": key, "content_type": content_type,
                                                       "content_length": len(body)}, headers=auth(token), timeout=10)
    assert signed.status_code == 200, signed.text
    put = requests.put(signed.json()["url"], data=body, headers=signed.json()["headers"], timeout=30)
    assert put.status_code == 200, put.text


def publish(base: str, token: str = ALICE_TOKEN, **body: object) -> requests.Response:
    return requests.post(f"{base}/v1/uploads/publish", json=body, headers=auth(token), timeout=60)


def listing(store: SeaweedFS, prefix: str = "") -> list[str]:
    status, _, body = store.request("GET", "", f"list-type=2&prefix={prefix}")
    assert status == 200, body
    return re.findall(r"<Key>([^<]+)</Key>", body.decode())


def test_publish_copies_byte_exact_under_the_template_name(signer, stores) -> None:
    uploads, public = stores
    body = os.urandom(300 * 1024)
    upload(signer, "uploads/alice/holiday photo ü.png", body)
    answer = publish(signer, key="uploads/alice/holiday photo ü.png", filename="Holiday Photo.PNG")
    assert answer.status_code == 200, answer.text
    published = answer.json()
    today = datetime.now(UTC)  # the upload's Last-Modified: this test ran today (UTC), give or take midnight
    assert re.fullmatch(rf"public/alice/{today:%Y/%m/%d}/holiday-photo-{SLUG}\.png", published["key"]), published
    assert published == {
        "source_key": "uploads/alice/holiday photo ü.png", "bucket": PUBLIC, "key": published["key"],
        "url": Bucket(PUBLIC, "us-east-1", uploads.path_endpoint, "path").object_url(published["key"]),
        "size": len(body), "content_type": "image/png", "etag": published["etag"], "copied": True,
    }
    status, headers, copied = public.request("GET", published["key"])
    assert (status, copied, headers["content-type"]) == (200, body, "image/png")
    assert uploads.get_object("uploads/alice/holiday photo ü.png") == body  # the original stays

    again = publish(signer, key="uploads/alice/holiday photo ü.png", filename="Holiday Photo.PNG")
    assert again.status_code == 200 and again.json() == {**published, "copied": False}, again.text
    assert listing(public, "public/alice/") == [published["key"]]  # one public object, not two


def test_refusals_copy_nothing(signer, stores) -> None:
    uploads, public = stores
    upload(signer, "uploads/alice/mine.png", b"\x89PNG alice's")
    status, _, _ = uploads.request("PUT", "uploads/alice/too-big.png", body=b"x" * 1_000_001,
                                   headers={"Content-Type": "image/png"})  # placed in the store directly
    assert status == 200
    status, _, _ = uploads.request("PUT", "uploads/alice/page.html", body=b"<script>", headers={"Content-Type": "text/html"})
    assert status == 200
    before = listing(public)
    cases = [
        (BOB_TOKEN, {"key": "uploads/alice/mine.png"}, 403, "key_not_allowed"),  # another caller's key
        (BOB_TOKEN, {"key": "uploads/alice/nothing-here.png"}, 403, "key_not_allowed"),  # the same answer: no oracle
        (ALICE_TOKEN, {"key": "uploads/alice/not-uploaded-yet.png"}, 404, "object_not_found"),
        (ALICE_TOKEN, {"key": "uploads/alice/too-big.png"}, 403, "too_large"),
        (ALICE_TOKEN, {"key": "uploads/alice/page.html"}, 403, "content_type_not_allowed"),
        (ALICE_TOKEN, {}, 400, "missing_field"),
        (ALICE_TOKEN, {"key": "uploads/alice/mine.png", "filename": ""}, 400, "invalid_input"),
        (ALICE_TOKEN, {"key": "uploads/alice/mine.png", "bucket": PUBLIC}, 400, "unknown_field"),
    ]
    for token, body, status, code in cases:
        answer = publish(signer, token, **body)
        assert (answer.status_code, answer.json()["code"]) == (status, code), (body, answer.text)
    assert listing(public) == before
    # what breaks the rules is deleted, as the finish step deletes it; another caller's request touches nothing
    assert uploads.get_object("uploads/alice/too-big.png") is None and uploads.get_object("uploads/alice/page.html") is None
    assert uploads.get_object("uploads/alice/mine.png") == b"\x89PNG alice's"
    assert requests.post(f"{signer}/v1/uploads/publish", json={"key": "uploads/alice/mine.png"}, timeout=10).status_code == 401


def test_multipart_copy_part_by_part_is_byte_exact_and_a_failure_leaves_nothing(stores) -> None:
    """The over-5-GiB path with small ranges (S3's minimum part is 5 MiB): UploadPartCopy with
    x-amz-copy-source-range, then complete; a range the store refuses aborts the upload."""
    uploads, public = stores
    body = os.urandom(11 * MiB + 123)
    status, _, _ = uploads.request("PUT", "uploads/alice/big.bin", body=body, headers={"Content-Type": "image/png"})
    assert status == 200
    source = Bucket(uploads.bucket, "us-east-1", uploads.path_endpoint, "path")
    target = Bucket(PUBLIC, "us-east-1", uploads.path_endpoint, "path")
    info = head_object(uploads.credentials, source, "uploads/alice/big.bin")
    assert info is not None
    ranges = [(0, 5 * MiB - 1), (5 * MiB, 10 * MiB - 1), (10 * MiB, len(body) - 1)]
    copy_large_object(uploads.credentials, target, "parts/big.bin", source, "uploads/alice/big.bin", len(body),
                      content_type="image/png", source_etag=info.etag, ranges=ranges)
    status, headers, copied = public.request("GET", "parts/big.bin")
    assert (status, copied, headers["content-type"]) == (200, body, "image/png")

    with pytest.raises(StorageError, match="InvalidRange"):
        copy_large_object(uploads.credentials, target, "parts/broken.bin", source, "uploads/alice/big.bin", len(body),
                          content_type="image/png", source_etag=info.etag, ranges=[(0, 5 * MiB - 1), (5 * MiB, len(body) + 10)])
    with pytest.raises(SourceChanged):
        copy_large_object(uploads.credentials, target, "parts/stale.bin", source, "uploads/alice/big.bin", len(body),
                          content_type="image/png", source_etag='"0123456789abcdef0123456789abcdef"', ranges=ranges)
    assert list_multipart_uploads(uploads.credentials, target, "parts/") == []  # both aborted
    assert listing(public, "parts/") == ["parts/big.bin"]


@pytest.fixture(scope="module")
def on_upload(stores, tmp_path_factory) -> Iterator[str]:
    """Publishing on upload, into the upload bucket itself under published/, deleting the original."""
    with service(tmp_path_factory.mktemp("publish-on-upload"), SIGNER_PUBLISH_BUCKET=stores[0].bucket,
                 SIGNER_PUBLISH_PREFIX="published/", SIGNER_PUBLISH_ON_UPLOAD="true", SIGNER_PUBLISH_DELETE_SOURCE="true",
                 SIGNER_PUBLISH_URL="https://cdn.example/", SIGNER_MAX_SIZE=str(20 * MiB),
                 **stores[0].signer_env("path")) as url:
        yield url


def test_companion_complete_publishes_a_multipart_upload(on_upload, stores) -> None:
    uploads, _ = stores
    created = requests.post(f"{on_upload}/s3/multipart", json={"filename": "scan.pdf", "type": "application/pdf"},
                            headers=auth(), timeout=10).json()
    body, parts = os.urandom(5 * MiB + 1000), []
    for number, chunk in enumerate((body[:5 * MiB], body[5 * MiB:]), 1):
        url = requests.get(f"{on_upload}/s3/multipart/{created['uploadId']}/{number}", params={"key": created["key"]},
                           headers=auth(), timeout=10).json()["url"]
        parts.append({"PartNumber": number, "ETag": requests.put(url, data=chunk, timeout=30).headers["ETag"]})
    done = requests.post(f"{on_upload}/s3/multipart/{created['uploadId']}/complete", params={"key": created["key"]},
                         json={"parts": parts}, headers=auth(), timeout=60)
    assert done.status_code == 200, done.text
    published = done.json()["published"]
    assert re.fullmatch(rf"published/alice/\d{{4}}/\d{{2}}/\d{{2}}/{SLUG}\.pdf", published["key"]), published
    assert published["url"] == f"https://cdn.example/{published['key']}"
    status, headers, copied = uploads.request("GET", published["key"])
    assert (status, copied, headers["content-type"]) == (200, body, "application/pdf")
    assert uploads.get_object(created["key"]) is None  # SIGNER_PUBLISH_DELETE_SOURCE


def test_fine_uploader_success_publishes_and_a_second_publish_finds_the_original_gone(on_upload, stores) -> None:
    uploads, _ = stores
    body = os.urandom(4000)
    upload(on_upload, "uploads/alice/fu-0123.jpg", body, "image/jpeg")
    form = {"key": "uploads/alice/fu-0123.jpg", "bucket": uploads.bucket, "name": "Beach.jpeg", "uuid": "0123"}
    success = requests.post(f"{on_upload}/s3/success", data=form, headers=auth(), timeout=60)
    assert success.status_code == 200, success.text
    answer = success.json()
    assert answer["success"] is True and re.fullmatch(rf"published/alice/.*/beach-{SLUG}\.jpg", answer["published"]["key"])
    assert uploads.get_object(answer["published"]["key"]) == body
    assert uploads.get_object("uploads/alice/fu-0123.jpg") is None
    again = publish(on_upload, key="uploads/alice/fu-0123.jpg")
    assert (again.status_code, again.json()["code"]) == (404, "object_not_found")


@pytest.fixture(scope="module")
def sweeping(stores, tmp_path_factory) -> Iterator[str]:
    """Publishing on upload to the second bucket, sweeping every second: for the uploads whose
    completion the service never sees (Uppy's signRequest mode)."""
    with service(tmp_path_factory.mktemp("publish-by-sweep"), SIGNER_PUBLISH_BUCKET=PUBLIC, SIGNER_PUBLISH_ON_UPLOAD="true",
                 SIGNER_FINISH_INTERVAL="1", SIGNER_MAX_SIZE=str(20 * MiB), **stores[0].signer_env("path")) as url:
        yield url


def sign_request(base: str, **body: object) -> dict:
    answer = requests.post(f"{base}/v1/sign-request", json=body, headers=auth(), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_for_public(public: SeaweedFS, prefix: str, before: set[str], count: int, seconds: float = 40.0) -> list[str]:
    """The keys under ``prefix`` that were not there ``before``, once there are ``count`` of them."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = sorted(set(listing(public, prefix)) - before)
        if len(found) >= count:
            return found
        time.sleep(0.5)
    return sorted(set(listing(public, prefix)) - before)


def test_the_sweepers_publish_what_uppys_sign_request_mode_completes_itself(sweeping, stores) -> None:
    """Uppy's signRequest mode completes uploads without the service: once a sweeper has verified
    one, it publishes it (SIGNER_PUBLISH_ON_UPLOAD), a simple upload and a multipart one alike."""
    uploads, public = stores
    before = set(listing(public, "public/alice/"))  # the other tests' copies
    small = os.urandom(3000)
    form = sign_request(sweeping, method="PUT", key="sweep/small.png", contentType="image/png")
    posted = requests.post(form["url"], data=form["fields"], files={"file": ("small.png", small, "image/png")}, timeout=30)
    assert posted.status_code in (200, 204), posted.text

    big = os.urandom(5 * MiB + 2000)
    create = sign_request(sweeping, method="POST", key="sweep/big.pdf", contentType="application/pdf")
    created = requests.post(create["url"], headers=create["headers"], timeout=30)
    upload_id = re.search(r"<UploadId>([^<]+)</UploadId>", created.text)[1]
    etags = []
    for number, chunk in enumerate((big[:5 * MiB], big[5 * MiB:]), 1):
        part = sign_request(sweeping, method="PUT", key=create["key"], uploadId=upload_id, partNumber=number)
        etags.append(requests.put(part["url"], data=chunk, headers=part["headers"], timeout=30).headers["ETag"])
    complete = sign_request(sweeping, method="POST", key=create["key"], uploadId=upload_id)
    xml = "<CompleteMultipartUpload>" + "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>" for n, etag in enumerate(etags, 1)
    ) + "</CompleteMultipartUpload>"
    done = requests.post(complete["url"], data=xml.encode(), headers=complete["headers"], timeout=60)
    assert done.status_code == 200 and b"<Error>" not in done.content, done.text

    published = wait_for_public(public, "public/alice/", before, 2)
    assert len(published) == 2, published
    copies = {key.rsplit(".", 1)[1]: public.get_object(key) for key in published}
    assert copies == {"png": small, "pdf": big}  # byte-exact, the extension from the checked type
    assert uploads.get_object(form["key"]) == small  # the original stays (no SIGNER_PUBLISH_DELETE_SOURCE)
    time.sleep(3)
    assert sorted(set(listing(public, "public/alice/")) - before) == published  # once, not at every sweep


def test_a_type_a_browser_runs_as_a_page_is_not_published_as_one(stores) -> None:
    """With no SIGNER_ALLOWED_CONTENT_TYPES any type may be uploaded; a public copy that kept
    text/html (or SVG, XML) would be a page anyone can be sent to on the public origin. It gets no
    extension (publish.EXTENSIONS), and no such type either: it is published as bytes to download."""
    from signer.service.finish import Finish
    from signer.service.publish import PublishSettings
    from signer.service.publish import publish as publish_upload
    from signer.service.rules import Rules

    uploads, public = stores
    source = Bucket(uploads.bucket, uploads.region, uploads.path_endpoint, "path")
    finish = Finish(lambda: uploads.credentials, source, "uploads/")
    settings = PublishSettings(Bucket(PUBLIC, uploads.region, uploads.path_endpoint, "path"), b"s" * 32)
    caller = Rules(key_prefix="uploads/").for_caller("carol")  # any type allowed
    for name, content_type in (("page.html", "text/html; charset=utf-8"), ("art.svg", "image/svg+xml"),
                               ("feed.xml", "application/xml"), ("photo.png", "image/png")):
        key = f"uploads/carol/{name}"
        assert uploads.request("PUT", key, body=b"<svg onload=alert(1)>", headers={"Content-Type": content_type})[0] == 200
        published = publish_upload(finish, settings, caller, "carol", key)
        status, headers, _ = public.request("GET", published.key)
        served = headers["content-type"]
        assert status == 200 and served == ("image/png" if name == "photo.png" else "application/octet-stream"), served
