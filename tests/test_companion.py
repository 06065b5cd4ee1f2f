"""Uppy's Companion S3 protocol and /v1/sign-request against a real S3-compatible server
(moto) on loopback: the service creates, lists, completes and aborts uploads itself. boto3
only arranges and inspects the bucket (an oracle); parts go up through the presigned URLs."""

from __future__ import annotations

import base64
import json
from datetime import UTC

import pytest
import requests

from signer.service.config import load_config
from signer.service.web.app import create_app
from tests.conftest import BOB_TOKEN, bearer, env_with
from tests.helpers import moto_bucket

MIB = 1024 * 1024
BUCKET = "uploads-bucket"


@pytest.fixture
def store(s3_url):
    with moto_bucket(s3_url, BUCKET) as s3:
        yield s3


def make(s3_url, **overrides):
    return create_app(load_config(env_with(SIGNER_ENDPOINT_URL=s3_url, **overrides))).test_client()


@pytest.fixture
def client(s3_url, store):  # noqa: ARG001 - the bucket must exist first
    return make(s3_url, SIGNER_MAX_SIZE=str(12 * MIB))  # the default SIGNER_ALLOWED_METHODS: GET,PUT,HEAD


def uploads(store) -> list[str]:
    return [u["Key"] for u in store.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]


def objects(store) -> list[str]:
    """The bucket's objects, without the finish step's markers (uploads/.signer/)."""
    return [item["Key"] for item in store.list_objects_v2(Bucket=BUCKET).get("Contents", [])
            if not item["Key"].startswith("uploads/.signer/")]


def markers(store) -> list[str]:
    return [item["Key"] for item in store.list_objects_v2(Bucket=BUCKET, Prefix="uploads/.signer/").get("Contents", [])]


def create(client, name="cat.png", type_="image/png", headers=None):
    return client.post("/s3/multipart", json={"filename": name, "type": type_, "metadata": {"name": name}},
                       headers=headers or bearer())


def put_parts(client, key, upload_id, sizes):
    parts = []
    for number, size in enumerate(sizes, 1):
        answer = client.get(f"/s3/multipart/{upload_id}/{number}", query_string={"key": key}, headers=bearer())
        assert answer.status_code == 200, answer.json
        response = requests.put(answer.json["url"], data=bytes([number]) * size, timeout=30)
        assert response.status_code == 200
        parts.append({"PartNumber": number, "ETag": response.headers["ETag"]})
    return parts


def test_params_is_a_post_form_with_size_and_type(client) -> None:
    answer = client.get("/s3/params?filename=cat.png&type=image/png&metadata[name]=cat.png", headers=bearer())
    assert answer.status_code == 200, answer.json
    assert answer.json["method"] == "POST" and answer.json["fields"]["key"].startswith("uploads/alice/")
    policy = json.loads(base64.b64decode(answer.json["fields"]["policy"]))
    assert ["content-length-range", 0, 12 * MIB] in policy["conditions"]
    assert {"Content-Type": "image/png"} in policy["conditions"]


def test_disallowed_type_is_refused_with_a_meaningful_status_text(client, store) -> None:
    for answer in (client.get("/s3/params?filename=x.html&type=text/html", headers=bearer()), create(client, "x.html", "text/html")):
        assert answer.status_code == 403
        assert answer.json["code"] == "content_type_not_allowed" and "invalid" not in answer.json
        assert "text/html" in answer.status and "not allowed" in answer.status
    assert uploads(store) == []


def test_create_parts_list_complete(client, store) -> None:
    created = create(client)
    assert created.status_code == 200, created.json
    key, upload_id = created.json["key"], created.json["uploadId"]
    assert key.startswith("uploads/alice/") and key.endswith(".png") and uploads(store) == [key]
    parts = put_parts(client, key, upload_id, [5 * MIB, 1000])
    listed = client.get(f"/s3/multipart/{upload_id}", query_string={"key": key}, headers=bearer())
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed.json] == [
        (1, parts[0]["ETag"], 5 * MIB), (2, parts[1]["ETag"], 1000)]
    done = client.post(f"/s3/multipart/{upload_id}/complete", query_string={"key": key}, json={"parts": parts},
                       headers=bearer())
    assert done.status_code == 200, done.json
    assert done.json["key"] == key and done.json["bucket"] == BUCKET and done.json["location"].endswith(key.split("/")[-1])
    head = store.head_object(Bucket=BUCKET, Key=key)
    assert (head["ContentLength"], head["ContentType"]) == (5 * MIB + 1000, "image/png")
    assert uploads(store) == []


def test_batch_signs_several_parts(client) -> None:
    created = create(client).json
    answer = client.get(f"/s3/multipart/{created['uploadId']}/batch",
                        query_string={"key": created["key"], "partNumbers": "1,2"}, headers=bearer())
    assert answer.status_code == 200 and set(answer.json["presignedUrls"]) == {"1", "2"}
    assert "partNumber=2" in answer.json["presignedUrls"]["2"]


def test_over_size_is_refused_at_complete_and_leaves_nothing(s3_url, store) -> None:
    client = make(s3_url, SIGNER_MAX_SIZE=str(6 * MIB))
    created = create(client).json
    parts = put_parts(client, created["key"], created["uploadId"], [5 * MIB, MIB + 1])
    done = client.post(f"/s3/multipart/{created['uploadId']}/complete", query_string={"key": created["key"]},
                       json={"parts": parts}, headers=bearer())
    assert done.status_code == 403 and done.json["code"] == "too_large" and "aborted" in done.status
    assert uploads(store) == [] and objects(store) == []


def test_part_numbers_are_bounded_by_the_size_limit(client) -> None:
    created = create(client).json  # 12 MiB: at most 3 parts of >= 5 MiB but the last
    for number, status in (("0", 400), ("3", 200), ("4", 400), ("10001", 400), ("x", 404), ("١", 404)):
        answer = client.get(f"/s3/multipart/{created['uploadId']}/{number}", query_string={"key": created["key"]},
                            headers=bearer())
        assert answer.status_code == status, (number, answer.json)


def test_complete_refuses_parts_that_were_not_uploaded(client, store) -> None:
    created = create(client).json
    parts = put_parts(client, created["key"], created["uploadId"], [1000])
    forged = [{"PartNumber": 1, "ETag": '"0123"'}]
    for body in ({"parts": forged}, {"parts": parts + [{"PartNumber": 2, "ETag": parts[0]["ETag"]}]}, {"parts": []}):
        done = client.post(f"/s3/multipart/{created['uploadId']}/complete", query_string={"key": created["key"]},
                           json=body, headers=bearer())
        assert done.status_code == 400, body
    assert uploads(store) == [created["key"]]


def test_another_caller_cannot_touch_an_upload(client, store) -> None:
    created = create(client).json
    parts = put_parts(client, created["key"], created["uploadId"], [1000])
    bob = bearer(BOB_TOKEN)
    query = {"key": created["key"]}
    attempts = [
        client.post(f"/s3/multipart/{created['uploadId']}/complete", query_string=query, json={"parts": parts}, headers=bob),
        client.delete(f"/s3/multipart/{created['uploadId']}", query_string=query, headers=bob),
        client.get(f"/s3/multipart/{created['uploadId']}", query_string=query, headers=bob),
        client.get(f"/s3/multipart/{created['uploadId']}/2", query_string=query, headers=bob),
    ]
    assert [a.status_code for a in attempts] == [403] * 4
    assert all(a.json["code"] == "key_not_allowed" for a in attempts)
    bob_key = create(client, headers=bob).json["key"]  # bob's own key with alice's upload id: S3 does not know it
    answer = client.post(f"/s3/multipart/{created['uploadId']}/complete", query_string={"key": bob_key},
                         json={"parts": parts}, headers=bob)
    assert answer.status_code == 404 and answer.json["code"] == "upload_not_found"
    assert created["key"] in uploads(store) and objects(store) == []


def test_abort_leaves_no_upload(client, store) -> None:
    created = create(client).json
    put_parts(client, created["key"], created["uploadId"], [1000])
    answer = client.delete(f"/s3/multipart/{created['uploadId']}", query_string={"key": created["key"]}, headers=bearer())
    assert answer.status_code == 200
    assert uploads(store) == [] and objects(store) == []


def test_abort_needs_no_delete_but_uploads(s3_url, store) -> None:
    """Aborting one's own upload is part of uploading: the default SIGNER_ALLOWED_METHODS
    (GET,PUT,HEAD) allows it (the `client` fixture, test above); without PUT a cancel aborts nothing."""
    created = create(make(s3_url, SIGNER_MAX_SIZE=str(12 * MIB))).json
    client = make(s3_url, SIGNER_MAX_SIZE=str(12 * MIB), SIGNER_ALLOWED_METHODS="GET,HEAD")
    answer = client.delete(f"/s3/multipart/{created['uploadId']}", query_string={"key": created["key"]}, headers=bearer())
    assert answer.status_code == 403 and answer.json["code"] == "method_not_allowed"
    assert uploads(store) == [created["key"]]


def test_fine_uploader_endpoints_keep_their_error_shape(client) -> None:
    answer = client.post("/s3/signature?v4=true", json={"headers": "nope"}, headers=bearer())
    assert answer.status_code == 400 and answer.json["invalid"] is True


# --- /v1/sign-request (Uppy's signRequest mode) -------------------------------------------

def sign(client, **body):
    return client.post("/v1/sign-request", json=body, headers=bearer())


def test_sign_request_simple_put_is_a_post_form_under_our_key(client) -> None:
    answer = sign(client, method="PUT", key="abc-cat.png", contentType="image/png")
    assert answer.status_code == 200, answer.json
    key = answer.json["key"]
    assert key.startswith("uploads/alice/") and key.endswith(".png") and answer.json["fields"]["key"] == key
    policy = json.loads(base64.b64decode(answer.json["fields"]["policy"]))
    assert ["content-length-range", 0, 12 * MIB] in policy["conditions"]
    assert sign(client, method="PUT", key="x.html", contentType="text/html").status_code == 403


def test_sign_request_multipart_flow(client, store) -> None:
    created = sign(client, method="POST", key="abc-big.png")
    assert created.status_code == 200, created.json
    key = created.json["key"]
    answer = requests.post(created.json["url"], timeout=10)
    upload_id = answer.text.split("<UploadId>")[1].split("</UploadId>")[0]
    etags = []
    for number, size in ((1, 5 * MIB), (2, 10)):
        url = sign(client, method="PUT", key=key, uploadId=upload_id, partNumber=number).json["url"]
        etags.append(requests.put(url, data=b"z" * size, timeout=30).headers["ETag"])
    listed = requests.get(sign(client, method="GET", key=key, uploadId=upload_id).json["url"], timeout=10)
    assert listed.status_code == 200 and listed.text.count("<Part>") == 2
    url = sign(client, method="POST", key=key, uploadId=upload_id).json["url"]
    xml = "<CompleteMultipartUpload>" + "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in enumerate(etags, 1)) + "</CompleteMultipartUpload>"
    assert requests.post(url, data=xml, timeout=30).status_code == 200
    assert store.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == 5 * MIB + 10
    other = sign(client, method="DELETE", key="uploads/bob/x.png", uploadId=upload_id)
    assert other.status_code == 403


def test_sign_request_complete_is_refused_and_aborted_over_size(s3_url, store) -> None:
    client = make(s3_url, SIGNER_MAX_SIZE=str(6 * MIB))
    key = sign(client, method="POST", key="big.png").json["key"]
    upload_id = store.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    for number, size in ((1, 5 * MIB), (2, MIB + 1)):
        url = sign(client, method="PUT", key=key, uploadId=upload_id, partNumber=number).json["url"]
        requests.put(url, data=b"z" * size, timeout=30)
    refused = sign(client, method="POST", key=key, uploadId=upload_id)
    assert refused.status_code == 403 and refused.json["code"] == "too_large"
    assert uploads(store) == [] and objects(store) == []


# --- Fine Uploader's complete: the same pre-completion size check (issue #9 item 4) -------

def fine_uploader_complete(client, s3_url, key, upload_id):
    from datetime import datetime

    from tests import fineuploader_samples as fu

    now = datetime.now(UTC).replace(microsecond=0)
    raw = fu.headers_string("complete", now, host=s3_url.split("//")[1], key=key, upload_id=upload_id,
                            path_prefix=f"/{BUCKET}")
    return client.post("/s3/signature?v4=true", json={"headers": raw}, headers=bearer())


def test_fine_uploader_complete_is_refused_and_aborted_over_size(s3_url, store) -> None:
    client = make(s3_url, SIGNER_MAX_SIZE=str(6 * MIB))
    key = "uploads/alice/fu.png"
    upload_id = store.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    store.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=b"a" * (5 * MIB))
    small = fine_uploader_complete(client, s3_url, key, upload_id)
    assert small.status_code == 200 and set(small.json) == {"signature"}, small.json
    store.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=2, Body=b"b" * (MIB + 1))
    refused = fine_uploader_complete(client, s3_url, key, upload_id)
    assert refused.status_code == 400 and refused.json["code"] == "too_large" and refused.json["invalid"] is True
    assert uploads(store) == [] and objects(store) == []
    assert len(markers(store)) == 1  # the signed complete left its check in the store
