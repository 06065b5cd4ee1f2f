"""The Fine Uploader protocol adapter: signatures checked against botocore, every refusal."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from signer import Bucket, Credentials
from signer.errors import SigningError
from signer.service.errors import Refused
from signer.service.fineuploader import FineUploader
from signer.service.jsonbody import parse_json_object
from signer.service.rules import Rules
from tests import fineuploader_samples as fu
from tests.helpers import ACCESS_KEY as ACCESS
from tests.helpers import (
    FORBIDDEN,
    MALFORMED,
    NOW,
    refused,
)
from tests.helpers import SECRET_KEY as SECRET

BUCKET = Bucket("uploads-bucket", endpoint_url="http://s3.localhost:9000", addressing_style="virtual")
RULES = Rules(max_size=1000000, allowed_content_types=("image/*",), max_expires=900,
              allowed_methods=frozenset({"GET", "PUT", "HEAD", "DELETE"}))


@dataclass(frozen=True)
class Signer:
    """Our keys, our bucket, our rules: what a FineUploader adapter is built from."""

    credentials: Credentials
    bucket: Bucket
    rules: Rules


def sign_policy_document(document: dict, signer: Signer, identity: str | None, now: datetime) -> dict[str, str]:
    return FineUploader(signer.credentials, signer.bucket, signer.rules.for_caller(identity), now).sign_policy(document)


def sign_multipart_headers(raw: object, signer: Signer, identity: str | None, now: datetime) -> dict[str, str]:
    return FineUploader(signer.credentials, signer.bucket, signer.rules.for_caller(identity), now).sign_headers(raw)


SIGNER = Signer(Credentials(ACCESS, SECRET), BUCKET, RULES)
KEY = "uploads/alice/2026/11/23/4b6c0f1e-1d2a-4c8e-9f0a-1a2b3c4d5e6f.png"


def botocore_signature(text: str, date: str = "20261123", region: str = "us-east-1", secret: str = SECRET) -> str:
    """The oracle: botocore's SigV4 signature of ``text`` with the day's signing key."""
    request = AWSRequest()
    request.context["timestamp"] = f"{date}T000000Z"
    return SigV4Auth(BotoCredentials(ACCESS, secret), "s3", region).signature(text, request)


def sample_policy(**changes) -> dict:
    return fu.policy(NOW, **{"access_key": ACCESS, "bucket": "uploads-bucket", "key": KEY, **changes})


def test_policy_is_signed_as_s3_expects() -> None:
    document = sample_policy()
    answer = sign_policy_document(json.loads(json.dumps(document)), SIGNER, "alice", NOW)
    assert json.loads(base64.b64decode(answer["policy"])) == document
    assert answer["signature"] == botocore_signature(answer["policy"])


def test_policy_with_session_token() -> None:
    signer = Signer(Credentials(ACCESS, SECRET, "session/token=="), BUCKET, RULES)
    answer = sign_policy_document(sample_policy(token="session/token=="), signer, "alice", NOW)
    assert answer["signature"] == botocore_signature(answer["policy"])
    with refused(FORBIDDEN):
        sign_policy_document(sample_policy(), signer, "alice", NOW)  # token condition missing
    with refused(FORBIDDEN):
        sign_policy_document(sample_policy(token="forged"), signer, "alice", NOW)


def with_condition(document: dict, index: int, value) -> dict:
    document["conditions"][index] = value
    return document


@pytest.mark.parametrize(
    "document, error",
    [
        (sample_policy(key="uploads/bob/x.png"), FORBIDDEN),
        (sample_policy(key="uploads/alice/../bob/x.png"), FORBIDDEN),
        (sample_policy(content_type="text/html"), FORBIDDEN),
        (sample_policy(content_type=""), FORBIDDEN),
        (sample_policy(size=(0, 1000001)), FORBIDDEN),
        (sample_policy(acl="public-read"), FORBIDDEN),
        (with_condition(sample_policy(), 1, {"bucket": "someone-elses-bucket"}), FORBIDDEN),
        (with_condition(sample_policy(), 6, {"x-amz-credential": "OTHERKEY/20261123/us-east-1/s3/aws4_request"}), FORBIDDEN),
        (with_condition(sample_policy(), 6, {"x-amz-credential": f"{ACCESS}/20261123/eu-west-1/s3/aws4_request"}), FORBIDDEN),
        (with_condition(sample_policy(), 7, {"x-amz-date": "20261123T100000Z"}), FORBIDDEN),
        (with_condition(sample_policy(), 4, {"x-amz-algorithm": "AWS4-HMAC-SHA1"}), FORBIDDEN),
        (with_condition(sample_policy(), 5, ["starts-with", "$key", "uploads/"]), FORBIDDEN),
        (with_condition(sample_policy(), 5, ["starts-with", "$key", ""]), FORBIDDEN),
        (with_condition(sample_policy(), 5, ["starts-with", "$key", "uploads/alice/"]), FORBIDDEN),
        (sample_policy(key="uploads/alice/${filename}"), FORBIDDEN),
        (with_condition(sample_policy(), 2, ["starts-with", "$Content-Type", ""]), FORBIDDEN),
        (with_condition(sample_policy(), 3, {"success_action_redirect": "https://evil.example/"}), FORBIDDEN),
        (with_condition(sample_policy(), 3, {"x-amz-website-redirect-location": "/x"}), FORBIDDEN),
        (with_condition(sample_policy(), 3, {"bucket": "uploads-bucket"}), FORBIDDEN),  # twice
        (with_condition(sample_policy(), 3, ["content-length-range", "0", "10"]), FORBIDDEN),  # twice
        (with_condition(sample_policy(), 3, ["content-length-range", "-1", "10"]), MALFORMED),
        (with_condition(sample_policy(), 3, ["content-length-range", "0", "1e3"]), MALFORMED),
        (with_condition(sample_policy(), 3, {"a": 1, "b": 2}), MALFORMED),
        (with_condition(sample_policy(), 3, ["matches", "$key", ".*"]), MALFORMED),
        (with_condition(sample_policy(), 3, {"x-amz-meta-a": "line\r\nbreak"}), MALFORMED),
        (with_condition(sample_policy(), 3, {"x-amz-meta-a": 5}), MALFORMED),
        ({**sample_policy(), "expiration": "2026-11-23T07:59:00.000Z"}, FORBIDDEN),
        ({**sample_policy(), "expiration": "2026-11-24T08:00:00.000Z"}, FORBIDDEN),
        ({**sample_policy(), "expiration": "tomorrow"}, MALFORMED),
        ({**sample_policy(), "extra": 1}, MALFORMED),
        ({"expiration": sample_policy()["expiration"], "conditions": []}, MALFORMED),
        ({"expiration": sample_policy()["expiration"], "conditions": {"bucket": "x"}}, MALFORMED),
    ],
)
def test_policy_refusals(document, error) -> None:
    with refused(error):
        sign_policy_document(document, SIGNER, "alice", NOW)


def test_policy_without_required_conditions() -> None:
    for index, name in [(1, "bucket"), (5, "key"), (4, "x-amz-algorithm"), (6, "x-amz-credential"), (7, "x-amz-date")]:
        document = sample_policy()
        del document["conditions"][index]
        with refused(FORBIDDEN, match=name):
            sign_policy_document(document, SIGNER, "alice", NOW)


CAPTURED = json.loads((Path(__file__).parent / "vectors/fineuploader/captured-5.16.2.json").read_text())


@pytest.mark.parametrize("index", range(len(CAPTURED["requests"])))
def test_captured_fine_uploader_requests(index: int) -> None:
    """Bodies the real library sent (captured in Chromium), signed and checked against botocore."""
    bucket = Bucket(CAPTURED["bucket"], endpoint_url=CAPTURED["endpoint"], addressing_style="virtual")
    rules = Rules(max_size=CAPTURED["max_size"], allowed_content_types=("application/octet-stream",), max_expires=900)
    signer = Signer(Credentials(CAPTURED["access_key"], SECRET), bucket, rules)
    body = parse_json_object(CAPTURED["requests"][index].encode())
    if "headers" in body:
        lines = body["headers"].split("\n")
        now = datetime.strptime(lines[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        answer = sign_multipart_headers(body["headers"], signer, CAPTURED["identity"], now)
        hashed = hashlib.sha256("\n".join(lines[3:]).encode()).hexdigest()
        assert answer == {"signature": botocore_signature("\n".join(lines[:3] + [hashed]))}
        with refused(FORBIDDEN):
            sign_multipart_headers(body["headers"], signer, "bob", now)  # another user's folder
    else:
        stamp = next(c["x-amz-date"] for c in body["conditions"] if isinstance(c, dict) and "x-amz-date" in c)
        now = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        answer = sign_policy_document(body, signer, CAPTURED["identity"], now)
        assert json.loads(base64.b64decode(answer["policy"])) == body
        assert answer["signature"] == botocore_signature(answer["policy"])
        with refused(FORBIDDEN):
            sign_policy_document(body, signer, "bob", now)


@pytest.mark.parametrize("kind", ["initiate", "part", "complete", "abort"])
def test_multipart_calls_are_signed_as_s3_expects(kind: str) -> None:
    raw = fu.headers_string(kind, NOW, host=BUCKET.host, key=KEY)
    answer = sign_multipart_headers(raw, SIGNER, "alice", NOW)
    lines = raw.split("\n")
    hashed = hashlib.sha256("\n".join(lines[3:]).encode()).hexdigest()
    expected = botocore_signature("\n".join(lines[:3] + [hashed]))
    assert answer == {"signature": expected}


def test_abort_is_part_of_uploading() -> None:
    """Aborting one's own multipart upload deletes no object: signed with the default methods
    (no DELETE), refused where uploads are not allowed at all (no PUT)."""
    raw = fu.headers_string("abort", NOW, host=BUCKET.host, key=KEY)
    default = Signer(SIGNER.credentials, BUCKET, Rules(max_size=1000000, allowed_content_types=("image/*",)))
    assert sign_multipart_headers(raw, default, "alice", NOW)["signature"]
    read_only = Signer(SIGNER.credentials, BUCKET, Rules(max_size=1000000, allowed_methods=frozenset({"GET", "HEAD"})))
    with refused(FORBIDDEN, match="no PUT"):
        sign_multipart_headers(raw, read_only, "alice", NOW)


def test_path_style_multipart_uses_bucket_in_path() -> None:
    bucket = Bucket("uploads-bucket", endpoint_url="http://127.0.0.1:9000")
    signer = Signer(SIGNER.credentials, bucket, RULES)
    raw = fu.headers_string("part", NOW, host="127.0.0.1:9000", key=KEY, path_prefix="/uploads-bucket")
    assert sign_multipart_headers(raw, signer, "alice", NOW)["signature"]
    with refused(FORBIDDEN):
        sign_multipart_headers(fu.headers_string("part", NOW, host="127.0.0.1:9000", key=KEY), signer, "alice", NOW)


def test_unicode_keys_must_arrive_encoded() -> None:
    key = "uploads/alice/ü b.png"
    assert sign_multipart_headers(fu.headers_string("part", NOW, host=BUCKET.host, key=key), SIGNER, "alice", NOW)
    raw = fu.headers_string("part", NOW, host=BUCKET.host, key="uploads/alice/ab.png").replace("/ab.png", "/a b.png")
    with refused(MALFORMED):
        sign_multipart_headers(raw, SIGNER, "alice", NOW)


def mutate(raw: str, old: str, new: str) -> str:
    assert old in raw
    return raw.replace(old, new, 1)


INITIATE = fu.headers_string("initiate", NOW, host=BUCKET.host, key=KEY)
PART = fu.headers_string("part", NOW, host=BUCKET.host, key=KEY)


@pytest.mark.parametrize(
    "raw, error",
    [
        (fu.headers_string("part", NOW, host=BUCKET.host, key="uploads/bob/x.png"), FORBIDDEN),
        (fu.headers_string("part", NOW, host="evil.s3.localhost:9000", key=KEY), FORBIDDEN),
        (fu.headers_string("part", NOW, host=BUCKET.host, key=KEY, region="eu-west-1"), FORBIDDEN),
        (fu.headers_string("part", NOW, host=BUCKET.host, key=KEY, part=10001), MALFORMED),
        (fu.headers_string("part", NOW, host=BUCKET.host, key=KEY, part=0), MALFORMED),
        (fu.headers_string("initiate", NOW, host=BUCKET.host, key=KEY, content_type="text/html"), FORBIDDEN),
        (fu.headers_string("part", NOW, host=BUCKET.host, key=KEY, extra={"Content-Type": "image/png"}), FORBIDDEN),
        (fu.headers_string("initiate", NOW, host=BUCKET.host, key=KEY, extra={"x-amz-acl": "public-read"}), FORBIDDEN),
        (fu.headers_string("part", NOW, host=BUCKET.host, key=KEY, extra={"x-amz-copy-source": "other/x"}), FORBIDDEN),
        (fu.headers_string("part", NOW, host=BUCKET.host, key=KEY, upload_id="a&b=c"), FORBIDDEN),
        (mutate(PART, "PUT\n", "GET\n"), FORBIDDEN),
        (mutate(PART, "PUT\n", "DELETE\n"), FORBIDDEN),
        (mutate(PART, "partNumber=1&uploadId=VXBsb2FkSWQ", "acl="), FORBIDDEN),
        (mutate(PART, "partNumber=1&uploadId=VXBsb2FkSWQ", ""), FORBIDDEN),
        (mutate(INITIATE, "uploads=", "uploads=&x-id=CopyObject"), FORBIDDEN),
        (mutate(PART, "20261123T080000Z", "20261123T090000Z"), FORBIDDEN),
        (mutate(PART, "x-amz-date:20261123T080000Z", "x-amz-date:20261123T080001Z"), MALFORMED),
        (mutate(PART, "AWS4-HMAC-SHA256\n", "AWS4-HMAC-SHA1\n"), MALFORMED),
        (mutate(PART, "host:", "host:evil\r\nhost:"), MALFORMED),
        (mutate(PART, "host:", "x-injected:1\nhost:"), MALFORMED),  # signed list no longer matches
        (mutate(PART, "\n\nhost;", "\nx-amz-acl:public-read\n\nhost;"), MALFORMED),
        (PART + "\nextra", MALFORMED),
        (PART.replace("\n", "\r\n"), MALFORMED),
        ("", MALFORMED),
        (None, MALFORMED),
        (["not", "a", "string"], MALFORMED),
        ("AWS4-HMAC-SHA256\n" * 2000, MALFORMED),
    ],
)
def test_multipart_refusals(raw, error) -> None:
    with refused(error):
        sign_multipart_headers(raw, SIGNER, "alice", NOW)


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"[]", b'"x"', b'{"a": 1, "a": 2}', b'{"a": NaN}', b'{"a": Infinity}', b"\xff\xfe", b"[" * 100000],
)
def test_strict_json(body: bytes) -> None:
    with pytest.raises((SigningError, Refused)):
        parse_json_object(body)


def test_a_policy_never_outlives_temporary_credentials() -> None:
    """The client chooses the policy's expiration; with credentials that expire sooner the
    service signs (and returns) their expiry instead, as every other plan caps expires_in."""
    from datetime import timedelta

    expiring = Credentials(ACCESS, SECRET, "session/token==", expiration=NOW + timedelta(seconds=90))
    signer = Signer(expiring, BUCKET, RULES)
    answer = sign_policy_document(sample_policy(token="session/token=="), signer, "alice", NOW)
    assert json.loads(base64.b64decode(answer["policy"]))["expiration"] == "2026-11-23T08:01:30.000Z"
    assert answer["signature"] == botocore_signature(answer["policy"])
    long_lived = Signer(Credentials(ACCESS, SECRET, "session/token==", expiration=NOW + timedelta(hours=1)), BUCKET, RULES)
    document = sample_policy(token="session/token==")
    answer = sign_policy_document(document, long_lived, "alice", NOW)
    assert json.loads(base64.b64decode(answer["policy"]))["expiration"] == document["expiration"]
