"""/s3/success and /s3/files against a real S3-compatible server (moto) on loopback,
through our own stdlib S3 client; no mocks of our HTTP code."""

from __future__ import annotations

import pytest

from signer import Bucket, Credentials
from signer.service.config import load_config
from signer.service.storage import StorageError, delete_object, head_object
from signer.service.web.app import create_app
from tests.conftest import ACCESS_KEY, SECRET_KEY, bearer, env_with
from tests.helpers import moto_bucket
from tests.servers import free_port


@pytest.fixture
def store(s3_url):
    """A boto3 client (test-only, to arrange and inspect the bucket) and a fresh bucket."""
    with moto_bucket(s3_url, "uploads-bucket") as s3:
        yield s3


@pytest.fixture
def client(s3_url, store):  # noqa: ARG001 - the bucket must exist first
    return create_app(load_config(env_with(SIGNER_ENDPOINT_URL=s3_url))).test_client()


def keys(store) -> list[str]:
    return [item["Key"] for item in store.list_objects_v2(Bucket="uploads-bucket").get("Contents", [])]


def test_head_and_delete_with_our_client(s3_url, store) -> None:
    bucket = Bucket("uploads-bucket", endpoint_url=s3_url)
    creds = Credentials(ACCESS_KEY, SECRET_KEY)
    store.put_object(Bucket="uploads-bucket", Key="uploads/ü b+c.png", Body=b"12345", ContentType="image/png")
    info = head_object(creds, bucket, "uploads/ü b+c.png")
    assert (info.size, info.content_type) == (5, "image/png")
    assert head_object(creds, bucket, "uploads/missing.png") is None
    delete_object(creds, bucket, "uploads/ü b+c.png")
    assert keys(store) == []


def test_unreachable_store_is_a_clean_error() -> None:
    bucket = Bucket("uploads-bucket", endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StorageError):
        head_object(Credentials(ACCESS_KEY, SECRET_KEY), bucket, "k", timeout=2)


def test_success_confirms_an_object(client, store) -> None:
    store.put_object(Bucket="uploads-bucket", Key="uploads/alice/x.png", Body=b"abc", ContentType="image/png")
    response = client.post("/s3/success", data={"key": "uploads/alice/x.png", "bucket": "uploads-bucket",
                                                "uuid": "u", "name": "x.png", "etag": "e"}, headers=bearer())
    assert response.status_code == 200, response.json
    assert response.json == {"success": True, "key": "uploads/alice/x.png", "size": 3}


def test_success_refuses_missing_other_users_and_other_buckets(client, store) -> None:
    store.put_object(Bucket="uploads-bucket", Key="uploads/bob/x.png", Body=b"abc", ContentType="image/png")
    cases = [
        {"key": "uploads/alice/missing.png", "bucket": "uploads-bucket"},
        {"key": "uploads/bob/x.png", "bucket": "uploads-bucket"},
        {"key": "uploads/alice/x.png", "bucket": "other-bucket"},
        {"bucket": "uploads-bucket"},
    ]
    for form in cases:
        response = client.post("/s3/success", data=form, headers=bearer())
        assert response.status_code == (404 if "missing" in form.get("key", "") else 400), form
        assert response.json["invalid"] is True
    assert keys(store) == ["uploads/bob/x.png"]


def test_success_removes_an_object_that_breaks_the_rules(client, store) -> None:
    store.put_object(Bucket="uploads-bucket", Key="uploads/alice/big.png", Body=b"x" * 1000001, ContentType="image/png")
    store.put_object(Bucket="uploads-bucket", Key="uploads/alice/page.html", Body=b"<html>", ContentType="text/html")
    for key in ("uploads/alice/big.png", "uploads/alice/page.html"):
        response = client.post("/s3/success", data={"key": key, "bucket": "uploads-bucket"}, headers=bearer())
        assert response.status_code == 400
    assert keys(store) == []


def test_delete_endpoint_honours_allowed_methods(client, store) -> None:
    """Without DELETE in SIGNER_ALLOWED_METHODS (the default) Fine Uploader's delete endpoint deletes nothing."""
    store.put_object(Bucket="uploads-bucket", Key="uploads/alice/x.png", Body=b"abc")
    response = client.delete("/s3/files/u1?key=uploads/alice/x.png&bucket=uploads-bucket", headers=bearer())
    assert response.status_code == 400 and response.json["code"] == "method_not_allowed"
    assert keys(store) == ["uploads/alice/x.png"]


def test_delete_endpoint(s3_url, store) -> None:
    client = create_app(load_config(env_with(SIGNER_ENDPOINT_URL=s3_url, SIGNER_ALLOWED_METHODS="GET,PUT,DELETE"))).test_client()
    store.put_object(Bucket="uploads-bucket", Key="uploads/alice/x.png", Body=b"abc")
    store.put_object(Bucket="uploads-bucket", Key="uploads/bob/x.png", Body=b"abc")
    refused = client.delete("/s3/files/u1?key=uploads/bob/x.png&bucket=uploads-bucket", headers=bearer())
    assert refused.status_code == 400
    assert client.delete("/s3/files/u1?key=uploads/alice/x.png&bucket=uploads-bucket", headers={}).status_code == 401
    response = client.delete("/s3/files/u1?key=uploads/alice/x.png&bucket=uploads-bucket", headers=bearer())
    assert response.status_code == 200 and response.json["success"] is True
    assert keys(store) == ["uploads/bob/x.png"]
