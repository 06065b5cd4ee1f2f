"""Every protocol records its upload through the one call (finish.expect_upload), before its
answer leaves: /v1/presign PUT and /v1/post-policy, Uppy's signRequest (simple and complete)
and Companion (params and complete), Fine Uploader (policy and chunked complete). Markers are
read back from the store (moto here: arranging only; tests/e2e/test_finish*.py use SeaweedFS)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests import fineuploader_samples as fu
from tests.conftest import ACCESS_KEY, bearer
from tests.helpers import moto_bucket
from tests.test_companion import BUCKET, make

HOOK = {"SIGNER_WEBHOOK_URL": "http://127.0.0.1:9/hook", "SIGNER_WEBHOOK_SECRET": "a-webhook-secret-of-32-characters-at-least"}


@pytest.fixture
def store(s3_url):
    with moto_bucket(s3_url, BUCKET) as s3:
        yield s3


def markers(store) -> list[dict]:
    found = store.list_objects_v2(Bucket=BUCKET, Prefix="uploads/.signer/pending/").get("Contents", [])
    return [json.loads(store.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()) for item in found]


def test_simple_uploads_are_recorded_only_with_a_webhook(s3_url, store) -> None:
    plain, told = make(s3_url), make(s3_url, **HOOK)
    for client in (plain, told):
        assert client.post("/v1/presign", json={"method": "PUT", "filename": "a.png", "content_type": "image/png",
                                                "content_length": 3}, headers=bearer()).status_code == 200
        assert client.post("/v1/post-policy", json={"filename": "b.png", "content_type": "image/png"},
                           headers=bearer()).status_code == 200
        assert client.post("/v1/presign", json={"method": "GET", "key": "uploads/alice/a.png"},
                           headers=bearer()).status_code == 200  # not an upload: never recorded
        assert client.post("/v1/sign-request", json={"method": "PUT", "key": "c.png", "contentType": "image/png"},
                           headers=bearer()).status_code == 200
        assert client.get("/s3/params?filename=d.png&type=image/png", headers=bearer()).status_code == 200
        now = datetime.now(UTC).replace(microsecond=0)
        document = fu.policy(now, access_key=ACCESS_KEY, bucket=BUCKET, key="uploads/alice/e.png")
        assert client.post("/s3/signature?v4=true", json=document, headers=bearer()).status_code == 200
    found = markers(store)
    assert sorted(marker["protocol"] for marker in found) == [
        "companion", "fine-uploader", "post-policy", "presign", "sign-request"]
    for marker in found:
        assert marker["state"] == "check" and marker["expect"]["identity"] == "alice"
        assert marker["expect"]["folder"] == "uploads/alice/" and marker["expect"]["key"].startswith("uploads/alice/")
        assert marker["expect"]["max_size"] == 1000000 and marker["upload_id"] is None
    assert any(marker["expect"]["key"] == "uploads/alice/e.png" for marker in found)
    assert client.get("/v1/objects", headers=bearer()).json["objects"] == []  # markers are not the caller's


def test_a_complete_the_client_sends_is_always_recorded(s3_url, store) -> None:
    client = make(s3_url)
    uploads = {}
    for name in ("a.png", "b.png"):
        key = f"uploads/alice/{name}"
        uploads[key] = store.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        store.upload_part(Bucket=BUCKET, Key=key, UploadId=uploads[key], PartNumber=1, Body=b"a" * 10)
    for _ in range(2):  # signed twice: one upload, one event id
        assert client.post("/v1/sign-request", json={"method": "POST", "key": "uploads/alice/a.png",
                                                     "uploadId": uploads["uploads/alice/a.png"]},
                           headers=bearer()).status_code == 200
    now = datetime.now(UTC).replace(microsecond=0)
    raw = fu.headers_string("complete", now, host=s3_url.split("//")[1], key="uploads/alice/b.png",
                            upload_id=uploads["uploads/alice/b.png"], path_prefix=f"/{BUCKET}")
    assert client.post("/s3/signature?v4=true", json={"headers": raw}, headers=bearer()).status_code == 200
    found = markers(store)
    assert {marker["protocol"] for marker in found} == {"fine-uploader", "sign-request"}
    assert {marker["expect"]["key"]: marker["upload_id"] for marker in found} == uploads
    assert len({marker["id"] for marker in found}) == 2


def test_a_store_that_cannot_take_the_marker_refuses_the_complete() -> None:
    client = make("http://127.0.0.1:9")  # nothing listens: the marker cannot be written
    answer = client.post("/v1/sign-request", json={"method": "POST", "key": "uploads/alice/a.png", "uploadId": "u1"},
                         headers=bearer())
    assert answer.status_code in (502, 503) and answer.json["code"] == "storage_error"
