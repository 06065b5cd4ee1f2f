"""Presigned URLs, byte for byte against botocore (the oracle). Header signing: tests/test_headers.py;
buckets and keys: tests/test_s3.py."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st

from signer import Credentials, SigningError, presign_url, sign_headers
from signer.errors import InvalidExpiry, InvalidHeader, InvalidInput, InvalidTime
from signer.service.errors import Refused
from tests.helpers import BUCKET, CREDS, NOW
from tests.oracle import (
    buckets,
    client_for,
    credentials,
    expiries,
    header_values,
    metadata_names,
    moments,
    object_keys,
)

CHECKSUM_PARAMS = {"x-amz-checksum-sha256": "ChecksumSHA256", "x-amz-checksum-crc32": "ChecksumCRC32",
                   "x-amz-checksum-crc32c": "ChecksumCRC32C", "x-amz-checksum-crc64nvme": "ChecksumCRC64NVME"}
_DIGEST_SIZES = {"x-amz-checksum-sha256": 32, "x-amz-checksum-crc32": 4, "x-amz-checksum-crc32c": 4,
                 "x-amz-checksum-crc64nvme": 8}
checksums = st.one_of(st.just({}), st.sampled_from(sorted(_DIGEST_SIZES)).flatmap(
    lambda name: st.binary(min_size=_DIGEST_SIZES[name], max_size=_DIGEST_SIZES[name]).map(
        lambda digest: {name: base64.b64encode(digest).decode()})))
"""None, or one ``x-amz-checksum-<alg>`` header with a digest of its algorithm's size, in base64."""


@st.composite
def operations(draw):
    """(botocore operation, its params, our method, our query, our headers), same call."""
    key = draw(object_keys())
    kind = draw(st.sampled_from(["get", "put", "head", "delete", "initiate", "part", "complete", "abort", "download"]))
    if kind == "put":
        params: dict = {"Key": key}
        headers: dict[str, str] = {}
        if draw(st.booleans()):
            params["ContentType"] = headers["Content-Type"] = draw(header_values)
        if draw(st.booleans()):
            params["ACL"] = headers["x-amz-acl"] = draw(st.sampled_from(["private", "public-read"]))
        if draw(st.booleans()):
            params["ServerSideEncryption"] = headers["x-amz-server-side-encryption"] = "AES256"
        meta = draw(st.dictionaries(metadata_names, header_values, max_size=3))
        if meta:
            params["Metadata"] = meta
            headers.update({f"x-amz-meta-{name}": value for name, value in meta.items()})
        checksum = draw(checksums)
        if checksum:
            (name, value), = checksum.items()
            params[CHECKSUM_PARAMS[name]] = headers[name] = value
        if draw(st.booleans()):
            params["IfNoneMatch"] = headers["If-None-Match"] = "*"  # SIGNER_OVERWRITE=deny
        return "put_object", params, "PUT", [], headers
    simple = {"get": ("get_object", "GET"), "head": ("head_object", "HEAD"), "delete": ("delete_object", "DELETE")}
    if kind in simple:
        operation, method = simple[kind]
        return operation, {"Key": key}, method, [], {}
    upload_id = draw(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40))
    if kind == "initiate":
        return "create_multipart_upload", {"Key": key}, "POST", [("uploads", "")], {}
    if kind == "part":
        part = draw(st.integers(1, 10000))
        checksum = draw(checksums)
        part_params = {"Key": key, "PartNumber": part, "UploadId": upload_id}
        part_params.update({CHECKSUM_PARAMS[name]: value for name, value in checksum.items()})
        return (
            "upload_part",
            part_params,
            "PUT",
            [("partNumber", str(part)), ("uploadId", upload_id)],
            checksum,
        )
    if kind == "complete":
        conditional = draw(st.booleans())
        return ("complete_multipart_upload", {"Key": key, "UploadId": upload_id, **({"IfNoneMatch": "*"} if conditional else {})},
                "POST", [("uploadId", upload_id)], {"If-None-Match": "*"} if conditional else {})
    if kind == "abort":
        return "abort_multipart_upload", {"Key": key, "UploadId": upload_id}, "DELETE", [("uploadId", upload_id)], {}
    disposition = draw(header_values)
    return (
        "get_object",
        {"Key": key, "ResponseContentDisposition": disposition},
        "GET",
        [("response-content-disposition", disposition)],
        {},
    )


@given(operations(), buckets(), credentials(), expiries, moments)
def test_presign_url_equals_botocore(operation, bucket, creds, expires_in, moment) -> None:
    name, params, method, query, headers = operation
    with freeze_time(moment):
        expected = client_for(creds, bucket).generate_presigned_url(
            name, Params={"Bucket": bucket.name, **params}, ExpiresIn=expires_in
        )
    ours = presign_url(
        creds, bucket, params["Key"], method=method, expires_in=expires_in, query=query, headers=headers, now=moment
    )
    assert ours.url == expected
    assert ours.method == method
    assert ours.headers == headers
    assert ours.expires_at == moment + timedelta(seconds=expires_in)


def test_session_token_is_in_the_url_and_signed() -> None:
    creds = Credentials("AKIDEXAMPLE12345", "secret", "token/with+chars=")
    url = presign_url(creds, BUCKET, "a.txt", now=NOW).url
    assert "X-Amz-Security-Token=token%2Fwith%2Bchars%3D&X-Amz-Signature=" in url


def test_credentials_repr_hides_secret_and_token() -> None:
    creds = Credentials("AKIDEXAMPLE12345", "super-secret-value", "session-token-value")
    assert "super-secret-value" not in repr(creds)
    assert "session-token-value" not in repr(creds)
    assert "super-secret-value" not in str(creds)


@pytest.mark.parametrize("expires_in", [0, -1, 604801, 10**9, 1.5, "60", True, None])
def test_expiry_outside_range_is_an_error_not_a_clamp(expires_in) -> None:
    with pytest.raises(InvalidExpiry):
        presign_url(CREDS, BUCKET, "k", expires_in=expires_in, now=NOW)


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(InvalidTime):
        presign_url(CREDS, BUCKET, "k", now=datetime(2026, 1, 1))
    with pytest.raises(InvalidTime):
        sign_headers(CREDS, "GET", BUCKET.object_url("k"), now=datetime(2026, 1, 1))


def test_other_timezones_are_converted_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    here = presign_url(CREDS, BUCKET, "k", now=datetime(2026, 11, 23, 10, 0, tzinfo=plus_two)).url
    assert here == presign_url(CREDS, BUCKET, "k", now=NOW).url


def test_freezegun_drives_the_default_clock() -> None:
    with freeze_time("2026-11-23 08:00:00"):
        assert presign_url(CREDS, BUCKET, "k").url == presign_url(CREDS, BUCKET, "k", now=NOW).url


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain\r\nx-amz-acl: public-read"},
        {"Content-Type": "text/plain\nx"},
        {"Content-Type": "a\rb"},
        {"Content-Type": "a\x00b"},
        {"Bad\r\nName": "v"},
        {"Bad Name": "v"},
        {"": "v"},
        {"x-amz-meta-a:b": "v"},
        {"Host": "evil.example"},
        {"Authorization": "AWS4-HMAC-SHA256 ..."},
    ],
)
def test_header_injection_is_refused(headers) -> None:
    with pytest.raises(InvalidHeader):
        presign_url(CREDS, BUCKET, "k", method="PUT", headers=headers, now=NOW)


@pytest.mark.parametrize(
    "call",
    [
        lambda: presign_url(CREDS, BUCKET, "k", method="PATCH", now=NOW),
        lambda: presign_url(CREDS, BUCKET, "k", query={"X-Amz-Signature": "0"}, now=NOW),
        lambda: presign_url(CREDS, BUCKET, "k", query={"x-amz-credential": "x"}, now=NOW),
        lambda: Credentials("", "s"),
        lambda: Credentials("AK ID", "s"),
        lambda: Credentials("AKID", ""),
        lambda: Credentials("AKID", "s", "tok\nen"),
    ],
)
def test_bad_input_raises_the_library_error(call) -> None:
    with pytest.raises(SigningError):
        call()


def test_error_messages_never_contain_the_secret() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    creds = Credentials("AKIDEXAMPLE12345", secret, "tok")
    for call in (
        lambda: presign_url(creds, BUCKET, "k", expires_in=0, now=NOW),
        lambda: presign_url(creds, BUCKET, "k", headers={"X": "a\nb"}, now=NOW),
        lambda: presign_url(creds, BUCKET, "k", now=datetime(2026, 1, 1)),
    ):
        with pytest.raises(SigningError) as caught:
            call()
        assert secret not in str(caught.value)
        assert secret not in repr(caught.value)
    assert not isinstance(InvalidInput("x"), ValueError)  # errors by meaning, not ValueError subclasses


@settings(max_examples=60)
@given(st.binary(max_size=64), object_keys(), buckets(), credentials(), moments)
def test_the_plan_for_a_checksummed_put_under_deny_equals_botocore(data, key, bucket, creds, moment) -> None:
    """What /v1/presign and the CLI sign (the plan) for a file's SHA-256 with SIGNER_OVERWRITE=deny
    is botocore's presigned put_object with ChecksumSHA256 and IfNoneMatch, byte for byte."""
    from signer.service.rules import Rules

    value = base64.b64encode(hashlib.sha256(data).digest()).decode()
    object_key = "uploads/" + key.lstrip(".")  # within the prefix; the key rules are tested elsewhere
    rules = Rules(overwrite="deny", max_expires=604800).for_caller(None)
    try:
        plan = rules.plan_presign(method="PUT", key=object_key, content_length=len(data), checksum_sha256=value,
                                  expires_in=900, now=moment)
    except Refused:
        return  # a dot segment or a control character: refused before signing, nothing to compare
    with freeze_time(moment):
        expected = client_for(creds, bucket).generate_presigned_url("put_object", Params={
            "Bucket": bucket.name, "Key": object_key, "ContentLength": len(data), "ChecksumSHA256": value,
            "IfNoneMatch": "*"}, ExpiresIn=900)
    signed = plan.sign(creds, bucket, moment)
    assert signed.url == expected
    assert signed.headers == {"Content-Length": str(len(data)), "x-amz-checksum-sha256": value, "If-None-Match": "*"}
