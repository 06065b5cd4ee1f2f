"""The service's own multipart calls (create, list parts, complete, abort) against a real
S3-compatible server (moto) on loopback; boto3 only arranges and inspects, as an oracle."""

from __future__ import annotations

import pytest

from signer import Bucket, Credentials
from signer.service.storage import (
    UploadNotFound,
    abort_multipart_upload,
    complete_multipart_upload,
    create_multipart_upload,
    list_multipart_uploads,
    list_parts,
)
from tests.conftest import ACCESS_KEY, SECRET_KEY
from tests.helpers import moto_bucket

MIB = 1024 * 1024
CREDS = Credentials(ACCESS_KEY, SECRET_KEY)


@pytest.fixture
def store(s3_url):
    with moto_bucket(s3_url, "mp-bucket") as s3:
        yield s3


@pytest.fixture
def bucket(s3_url) -> Bucket:
    return Bucket("mp-bucket", endpoint_url=s3_url)


def test_create_list_complete(store, bucket) -> None:
    key = "uploads/alice/ü b+c.bin"
    upload_id = create_multipart_upload(CREDS, bucket, key, "image/png")
    assert [u["UploadId"] for u in store.list_multipart_uploads(Bucket="mp-bucket")["Uploads"]] == [upload_id]
    assert list_multipart_uploads(CREDS, bucket, "uploads/alice/") == [{"key": key, "upload_id": upload_id}]
    first = store.upload_part(Bucket="mp-bucket", Key=key, UploadId=upload_id, PartNumber=1, Body=b"a" * (5 * MIB))
    second = store.upload_part(Bucket="mp-bucket", Key=key, UploadId=upload_id, PartNumber=2, Body=b"b" * 10)
    parts = list_parts(CREDS, bucket, key, upload_id)
    assert [(p.number, p.etag, p.size) for p in parts] == [(1, first["ETag"], 5 * MIB), (2, second["ETag"], 10)]
    complete_multipart_upload(CREDS, bucket, key, upload_id, [(p.number, p.etag) for p in parts])
    head = store.head_object(Bucket="mp-bucket", Key=key)
    assert (head["ContentLength"], head["ContentType"]) == (5 * MIB + 10, "image/png")
    assert store.list_multipart_uploads(Bucket="mp-bucket").get("Uploads", []) == []


def test_list_parts_follows_pages(store, bucket, monkeypatch) -> None:
    key = "uploads/alice/many.bin"
    upload_id = create_multipart_upload(CREDS, bucket, key, None)
    for number in range(1, 4):
        store.upload_part(Bucket="mp-bucket", Key=key, UploadId=upload_id, PartNumber=number, Body=b"x" * number)
    import signer.service.storage as storage

    real_query, pages = storage._query, []

    def one_part_a_page(**params):
        pages.append(params)
        return real_query(max_parts=1, **params)

    monkeypatch.setattr(storage, "_query", one_part_a_page)
    assert [(p.number, p.size) for p in list_parts(CREDS, bucket, key, upload_id)] == [(1, 1), (2, 2), (3, 3)]
    assert [page.get("part_number_marker") for page in pages] == [None, 1, 2]


def test_abort_and_unknown_upload(store, bucket) -> None:
    key = "uploads/alice/gone.bin"
    upload_id = create_multipart_upload(CREDS, bucket, key, None)
    abort_multipart_upload(CREDS, bucket, key, upload_id)
    assert store.list_multipart_uploads(Bucket="mp-bucket").get("Uploads", []) == []
    with pytest.raises(UploadNotFound):
        list_parts(CREDS, bucket, key, upload_id)
    abort_multipart_upload(CREDS, bucket, key, upload_id)  # already gone: fine
