"""Fine Uploader's multipart complete against SeaweedFS through the running service (issue #9,
item 4): the service lists the parts with its own signed request before signing a complete and
refuses (aborting the upload) over SIGNER_MAX_SIZE; and when the client grows the upload after
that and completes anyway, the service's own scheduled check deletes the finished object,
without any /s3/success call. Fine Uploader's chunked uploads need virtual-hosted addressing."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest
import requests

from tests import fineuploader_samples as fu
from tests.conftest import bearer
from tests.e2e.conftest import service

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def signer(weed, tmp_path_factory):
    with service(tmp_path_factory.mktemp("complete-service"), SIGNER_MAX_SIZE=str(6 * MiB),
                 **weed.signer_env("virtual")) as url:
        yield url


def start(weed, key: str, sizes: list[int]) -> str:
    status, _, body = weed.request("POST", key, "uploads=")
    assert status == 200, body
    upload_id = re.search(r"<UploadId>([^<]+)</UploadId>", body.decode()).group(1)
    for number, size in enumerate(sizes, 1):
        add_part(weed, key, upload_id, number, size)
    return upload_id


def add_part(weed, key: str, upload_id: str, number: int, size: int) -> str:
    status, headers, _ = weed.request("PUT", key, f"partNumber={number}&uploadId={upload_id}", body=b"p" * size)
    assert status == 200
    return headers["etag"]


def sign_complete(signer: str, weed, key: str, upload_id: str) -> requests.Response:
    now = datetime.now(UTC).replace(microsecond=0)
    raw = fu.headers_string("complete", now, host=f"{weed.bucket}.s3.localhost:{weed.port}", key=key, upload_id=upload_id)
    return requests.post(f"{signer}/s3/signature?v4=true", json={"headers": raw}, headers=bearer(), timeout=15)


def uploads(weed, prefix: str) -> list[str]:
    status, _, body = weed.request("GET", "", f"prefix={prefix}&uploads=")
    assert status == 200
    return re.findall(r"<UploadId>([^<]+)</UploadId>", body.decode())


def test_complete_is_refused_and_the_upload_aborted_when_the_parts_exceed_the_limit(signer, weed) -> None:
    key = "uploads/alice/fu-over.bin"
    upload_id = start(weed, key, [5 * MiB, 2 * MiB])
    answer = sign_complete(signer, weed, key, upload_id)
    assert answer.status_code == 400 and answer.json()["code"] == "too_large", answer.text
    assert uploads(weed, "uploads/alice/fu-over") == []
    assert weed.get_object(key) is None


def test_an_object_grown_after_signing_is_deleted_by_the_services_own_check(signer, weed) -> None:
    key = "uploads/alice/fu-grown.bin"
    upload_id = start(weed, key, [5 * MiB])
    first = weed.request("GET", key, f"uploadId={upload_id}")[2].decode()
    answer = sign_complete(signer, weed, key, upload_id)
    assert answer.status_code == 200 and set(answer.json()) == {"signature"}, answer.text
    etags = [re.search(r"<ETag>([^<]+)</ETag>", first).group(1), add_part(weed, key, upload_id, 2, 2 * MiB)]
    body = "<CompleteMultipartUpload>" + "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in enumerate(etags, 1)
    ) + "</CompleteMultipartUpload>"
    status, _, _ = weed.request("POST", key, f"uploadId={upload_id}", body=body.encode())
    assert status == 200 and len(weed.get_object(key) or b"") == 7 * MiB  # the client completed: 7 MiB exist
    deadline = time.monotonic() + 20
    while weed.get_object(key) is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert weed.get_object(key) is None, "the service did not delete the over-size object"
