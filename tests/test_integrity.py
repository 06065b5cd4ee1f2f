"""Checksums and no-overwrite, signed in (issue #20): what each endpoint signs, against botocore,
and what it refuses before signing. The store's side is tests/e2e/test_integrity.py."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import zlib

import pytest
from freezegun import freeze_time

from signer.service.checksums import base64_length, check_checksum, declared_checksum
from signer.service.errors import Refused
from tests import fineuploader_samples as fu
from tests.conftest import ACCESS_KEY, SECRET_KEY, bearer, env_with
from tests.helpers import BUCKET, CREDS, FROZEN, NOW
from tests.oracle import client_for
from tests.servers import ROOT

DATA = b"the bytes of file A\n"
SHA256 = base64.b64encode(hashlib.sha256(DATA).digest()).decode()
CRC32 = base64.b64encode(zlib.crc32(DATA).to_bytes(4, "big")).decode()
CRC64 = base64.b64encode(bytes(range(8))).decode()


def post_json(client, path, body):
    return client.post(path, data=json.dumps(body), content_type="application/json", headers=bearer())


# --- the values ------------------------------------------------------------------------

def test_base64_lengths_are_s3s() -> None:
    assert (base64_length(32), base64_length(4), base64_length(8)) == (44, 8, 12)
    assert len(SHA256) == 44 and len(CRC32) == 8 and len(CRC64) == 12


@pytest.mark.parametrize(("field", "value"), [
    ("checksum_sha256", SHA256), ("checksum_crc32", CRC32), ("checksum_crc32c", "AAAAAA=="),
    ("checksum_crc64nvme", CRC64),
])
def test_a_well_formed_checksum_becomes_its_header(field, value) -> None:
    assert check_checksum(field, value) == (f"x-amz-checksum-{field.removeprefix('checksum_')}", value)


@pytest.mark.parametrize(("field", "value"), [
    ("checksum_sha256", SHA256[:-1]),                 # too short
    ("checksum_sha256", SHA256 + "="),                # too long
    ("checksum_sha256", SHA256.rstrip("=") + "A"),    # 44 characters, no padding: 33 bytes
    ("checksum_sha256", "-" + SHA256[1:]),            # URL-safe alphabet
    ("checksum_sha256", " " + SHA256[1:]),            # a space
    ("checksum_sha256", SHA256[:42] + "B="),          # stray low bits: not the canonical spelling
    ("checksum_sha256", hashlib.sha256(DATA).hexdigest()),  # hex, not base64
    ("checksum_crc32", CRC32.rstrip("=")),            # unpadded
    ("checksum_crc32", "A=AAAA=="),                   # padding inside
    ("checksum_crc32", SHA256),                       # another algorithm's length
    ("checksum_crc64nvme", CRC32),
    ("checksum_sha256", 12345),
    ("checksum_sha256", ["x"]),
])
def test_a_malformed_checksum_is_refused_naming_the_field(field, value) -> None:
    with pytest.raises(Refused) as caught:
        check_checksum(field, value)
    assert caught.value.code == "invalid_checksum" and field in caught.value.message


def test_one_checksum_at_most() -> None:
    with pytest.raises(Refused, match="checksum_sha256 and checksum_crc32"):
        declared_checksum({"checksum_sha256": SHA256, "checksum_crc32": CRC32})
    assert declared_checksum({"checksum_sha256": None, "checksum_crc32": None}) == {}


# --- /v1/presign -------------------------------------------------------------------------

@freeze_time(FROZEN)
@pytest.mark.parametrize(("field", "param"), [("checksum_sha256", "ChecksumSHA256"), ("checksum_crc32", "ChecksumCRC32")])
def test_presign_put_signs_the_checksum_and_no_overwrite_as_botocore_does(client, field, param) -> None:
    value = SHA256 if field == "checksum_sha256" else CRC32
    answer = post_json(client, "/v1/presign", {"method": "PUT", "key": "uploads/alice/a.png", "content_type": "image/png",
                                               "content_length": len(DATA), field: value})
    assert answer.status_code == 200, answer.json
    expected = client_for(CREDS, BUCKET).generate_presigned_url("put_object", Params={
        "Bucket": "uploads-bucket", "Key": "uploads/alice/a.png", "ContentType": "image/png",
        "ContentLength": len(DATA), param: value, "IfNoneMatch": "*"}, ExpiresIn=300)
    assert answer.json["url"] == expected
    assert answer.json["headers"] == {"Content-Type": "image/png", "Content-Length": str(len(DATA)),
                                      f"x-amz-{field.replace('_', '-')}": value, "If-None-Match": "*"}


def test_presign_refuses_a_bad_checksum_before_signing(client) -> None:
    base = {"method": "PUT", "key": "uploads/alice/a.png", "content_type": "image/png", "content_length": 1}
    for extra in ({"checksum_sha256": SHA256[:-2]}, {"checksum_crc32": "not base64"},
                  {"checksum_sha256": SHA256, "checksum_crc32c": CRC32}):
        answer = post_json(client, "/v1/presign", {**base, **extra})
        assert answer.status_code == 400 and answer.json["code"] == "invalid_checksum", answer.json
        assert "url" not in answer.json and next(iter(extra)) in answer.json["error"]
    get = post_json(client, "/v1/presign", {"method": "GET", "key": "uploads/alice/a.png", "checksum_sha256": SHA256})
    assert get.status_code == 400 and "PUT" in get.json["error"]


def test_overwrite_allow_signs_no_condition(make_client) -> None:
    answer = post_json(make_client(SIGNER_OVERWRITE="allow"), "/v1/presign", {
        "method": "PUT", "key": "uploads/alice/a.png", "content_type": "image/png", "content_length": 1})
    assert "If-None-Match" not in answer.json["headers"] and "if-none-match" not in answer.json["url"]


def test_require_checksum_refuses_a_put_without_one(make_client) -> None:
    client = make_client(SIGNER_REQUIRE_CHECKSUM="true")
    base = {"method": "PUT", "key": "uploads/alice/a.png", "content_type": "image/png", "content_length": 1}
    refused = post_json(client, "/v1/presign", base)
    assert refused.status_code == 400 and refused.json["code"] == "checksum_required"
    assert post_json(client, "/v1/presign", {**base, "checksum_crc64nvme": CRC64}).status_code == 200
    assert post_json(client, "/v1/presign", {"method": "GET", "key": "uploads/alice/a.png"}).status_code == 200


@pytest.mark.parametrize("value", ["maybe", "DENY ME"])
def test_a_bad_overwrite_setting_stops_start_up(value) -> None:
    from signer.service.config import load_config
    from signer.service.errors import ConfigError

    with pytest.raises(ConfigError, match="SIGNER_OVERWRITE"):
        load_config(env_with(SIGNER_OVERWRITE=value))


# --- /v1/post-policy -------------------------------------------------------------------------

@freeze_time(FROZEN)
def test_post_policy_carries_the_checksum_as_field_and_condition_as_botocore_does(client) -> None:
    answer = post_json(client, "/v1/post-policy", {"key": "uploads/alice/a.png", "content_type": "image/png",
                                                   "checksum_sha256": SHA256})
    assert answer.status_code == 200, answer.json
    expected = client_for(CREDS, BUCKET).generate_presigned_post(
        "uploads-bucket", "uploads/alice/a.png",
        Fields={"Content-Type": "image/png", "x-amz-checksum-sha256": SHA256},
        Conditions=[["content-length-range", 0, 1000000], {"Content-Type": "image/png"},
                    {"x-amz-checksum-sha256": SHA256}],
        ExpiresIn=300)
    assert answer.json["fields"] == expected["fields"]
    bad = post_json(client, "/v1/post-policy", {"key": "uploads/alice/a.png", "content_type": "image/png",
                                                "checksum_sha256": "A" * 44})
    assert bad.status_code == 400 and bad.json["code"] == "invalid_checksum"


# --- /v1/sign-request ------------------------------------------------------------------------

def sign(client, **body):
    return client.post("/v1/sign-request", json=body, headers=bearer())


def same_url(ours: str, theirs: str) -> bool:
    """The same URL but for the order of the operation's own parameters (botocore puts
    uploadId first, we partNumber; the signature covers them sorted)."""
    split = lambda url: (url.split("?")[0], sorted(url.split("?")[1].split("&")))  # noqa: E731
    return split(ours) == split(theirs)


@pytest.fixture
def moto_client(s3_url):
    """The service in front of moto (a complete lists the parts first), and moto's boto3 client."""
    from signer.service.config import load_config
    from signer.service.web.app import create_app
    from tests.helpers import moto_bucket

    def build(**overrides):
        return create_app(load_config(env_with(SIGNER_ENDPOINT_URL=s3_url, **overrides))).test_client()

    with moto_bucket(s3_url, "uploads-bucket") as store:
        yield build, store


def test_sign_request_part_complete_and_create_sign_what_botocore_signs(moto_client, s3_url) -> None:
    from signer import Bucket as OurBucket

    build, store = moto_client
    client, key = build(), "uploads/alice/big.png"
    upload = store.create_multipart_upload(Bucket="uploads-bucket", Key=key)["UploadId"]
    oracle = client_for(CREDS, OurBucket("uploads-bucket", endpoint_url=s3_url))
    with freeze_time(FROZEN):
        check_sign_request_steps(client, oracle, key, upload)


def check_sign_request_steps(client, oracle, key, upload) -> None:
    part = sign(client, method="PUT", key=key, uploadId=upload, partNumber=1, checksum_crc32=CRC32)
    assert part.status_code == 200, part.json
    assert same_url(part.json["url"], oracle.generate_presigned_url("upload_part", Params={
        "Bucket": "uploads-bucket", "Key": key, "UploadId": upload, "PartNumber": 1, "ChecksumCRC32": CRC32},
        ExpiresIn=300))
    assert part.json["headers"] == {"x-amz-checksum-crc32": CRC32}
    complete = sign(client, method="POST", key=key, uploadId=upload)
    assert complete.status_code == 200, complete.json
    assert complete.json["headers"] == {"If-None-Match": "*"}  # Uppy 6.3.1 sends the headers we answer
    assert complete.json["url"] == oracle.generate_presigned_url("complete_multipart_upload", Params={
        "Bucket": "uploads-bucket", "Key": key, "UploadId": upload, "IfNoneMatch": "*"}, ExpiresIn=300)
    create = sign(client, method="POST", key=key, checksum_algorithm="SHA256")
    assert create.status_code == 200 and create.json["headers"] == {"x-amz-checksum-algorithm": "SHA256"}
    assert create.json["url"] == oracle.generate_presigned_url("create_multipart_upload", Params={
        "Bucket": "uploads-bucket", "Key": key, "ChecksumAlgorithm": "SHA256"}, ExpiresIn=300)


def test_sign_request_refuses_checksums_where_they_do_not_apply(client) -> None:
    key, upload = "uploads/alice/big.png", "VXBsb2FkSWQ"
    for body in ({"method": "POST", "key": key, "uploadId": upload, "checksum_sha256": SHA256},
                 {"method": "PUT", "key": key, "uploadId": upload, "partNumber": 1, "checksum_sha256": "x"},
                 {"method": "POST", "key": key, "checksum_algorithm": "MD5"},
                 {"method": "POST", "key": key, "checksum_algorithm": "sha256"},
                 {"method": "PUT", "key": key, "uploadId": upload, "partNumber": 1, "checksum_algorithm": "SHA256"}):
        answer = sign(client, **body)
        assert answer.status_code == 400 and "url" not in answer.json, (body, answer.json)


def test_sign_request_simple_upload_form_carries_the_checksum(client) -> None:
    answer = sign(client, method="PUT", key="a.png", contentType="image/png", checksum_sha256=SHA256)
    assert answer.status_code == 200, answer.json
    policy = json.loads(base64.b64decode(answer.json["fields"]["policy"]))
    assert {"x-amz-checksum-sha256": SHA256} in policy["conditions"]
    assert answer.json["fields"]["x-amz-checksum-sha256"] == SHA256


def test_sign_request_complete_under_allow_signs_no_condition(moto_client) -> None:
    build, store = moto_client
    upload = store.create_multipart_upload(Bucket="uploads-bucket", Key="uploads/alice/b.png")["UploadId"]
    answer = sign(build(SIGNER_OVERWRITE="allow"), method="POST", key="uploads/alice/b.png", uploadId=upload)
    assert answer.status_code == 200, answer.json
    assert answer.json["headers"] == {}


# --- Fine Uploader's strings -----------------------------------------------------------------

def test_fine_uploader_complete_may_sign_if_none_match_star_only() -> None:
    from signer import Bucket, Credentials
    from signer.service.fineuploader import FineUploader
    from signer.service.rules import Rules

    bucket = Bucket("uploads-bucket")
    adapter = FineUploader(Credentials(ACCESS_KEY, SECRET_KEY), bucket, Rules().for_caller("alice"), NOW)
    text = lambda **extra: fu.headers_string("complete", NOW, host=bucket.host, key="uploads/alice/a.png",  # noqa: E731
                                             extra=extra or None)
    assert adapter.check_multipart(text(**{"If-None-Match": "*"})).conditional is True
    assert adapter.check_multipart(text()).conditional is False  # Fine Uploader 5.16.2: the service HEADs instead
    with pytest.raises(Refused, match="if-none-match"):
        adapter.check_multipart(text(**{"If-None-Match": '"etag"'}))


# --- the CLI -------------------------------------------------------------------------------

def run_cli(*args: str, cwd=ROOT) -> subprocess.CompletedProcess[str]:
    environ = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "AWS_ACCESS_KEY_ID": ACCESS_KEY,
               "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "SIGNER_BUCKET": "uploads-bucket", "AWS_EC2_METADATA_DISABLED": "true"}
    return subprocess.run([sys.executable, "-m", "signer", *args], cwd=cwd, env=environ, capture_output=True,
                          text=True, timeout=30)


def test_cli_checksum_sha256_takes_a_value_or_hashes_a_file(tmp_path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(DATA)
    by_value = run_cli("presign", "PUT", "uploads/a.bin", "--checksum-sha256", SHA256, "--json")
    by_file = run_cli("presign", "PUT", "uploads/a.bin", "--checksum-sha256", str(path), "--json")
    assert by_value.returncode == 0 and by_file.returncode == 0, by_value.stderr + by_file.stderr
    for result in (by_value, by_file):
        assert json.loads(result.stdout)["headers"] == {"x-amz-checksum-sha256": SHA256, "If-None-Match": "*"}
    missing = run_cli("presign", "PUT", "uploads/a.bin", "--checksum-sha256", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "--checksum-sha256" in missing.stderr and missing.stdout == ""
    assert "no such file" in missing.stderr


def test_cli_a_file_named_like_a_checksum_is_given_as_a_path(tmp_path) -> None:
    """A well-formed value is always the value; ``./NAME`` (no '.' in base64) is always a file."""
    named = SHA256.replace("/", "_")[:43] + "="  # base64-looking, a valid file name
    (tmp_path / named).write_bytes(DATA)
    result = run_cli("presign", "PUT", "uploads/a.bin", "--checksum-sha256", f"./{named}", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["headers"]["x-amz-checksum-sha256"] == SHA256


def test_require_checksum_refuses_part_signatures_whose_clients_send_none(moto_client) -> None:
    """Uppy's Companion part URLs and Fine Uploader's part strings carry no checksum: refused."""
    build, store = moto_client
    client = build(SIGNER_REQUIRE_CHECKSUM="true")
    created = client.post("/s3/multipart", json={"filename": "a.png", "type": "image/png"}, headers=bearer())
    assert created.status_code == 200, created.json
    key, upload_id = created.json["key"], created.json["uploadId"]
    part = client.get(f"/s3/multipart/{upload_id}/1", query_string={"key": key}, headers=bearer())
    assert part.status_code == 400 and part.json["code"] == "checksum_required"
    signed = sign(client, method="PUT", key=key, uploadId=upload_id.rpartition(".")[0], partNumber=1,
                  checksum_sha256=SHA256)
    assert signed.status_code == 200 and signed.json["headers"] == {"x-amz-checksum-sha256": SHA256}


def test_fine_uploader_part_checksum_is_checked_and_required_when_configured() -> None:
    from signer import Bucket, Credentials
    from signer.service.fineuploader import FineUploader
    from signer.service.rules import Rules

    bucket = Bucket("uploads-bucket")
    adapter = FineUploader(Credentials(ACCESS_KEY, SECRET_KEY), bucket,
                           Rules(require_checksum=True).for_caller("alice"), NOW)
    text = lambda **extra: fu.headers_string("part", NOW, host=bucket.host, key="uploads/alice/a.png",  # noqa: E731
                                             extra=extra or None)
    with pytest.raises(Refused) as caught:
        adapter.check_multipart(text())
    assert caught.value.code == "checksum_required"
    assert adapter.check_multipart(text(**{"x-amz-checksum-crc32": CRC32})).kind == "part"
    with pytest.raises(Refused) as caught:
        adapter.check_multipart(text(**{"x-amz-checksum-crc32": SHA256}))
    assert caught.value.code == "invalid_checksum"
