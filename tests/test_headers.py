"""Authorization-header signing (signer/headers.py), byte for byte against botocore (the oracle)."""

from __future__ import annotations

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from freezegun import freeze_time
from hypothesis import given
from hypothesis import strategies as st

from signer import Credentials, SigningError, sign_headers
from signer.errors import InvalidHeader
from tests.helpers import BUCKET, CREDS, NOW
from tests.oracle import buckets, credentials, header_values, moments, object_keys


def botocore_headers(creds: Credentials, method, url, headers, body, region, moment) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    with freeze_time(moment):
        S3SigV4Auth(
            BotoCredentials(creds.access_key, creds.secret_key, creds.session_token), "s3", region
        ).add_auth(request)
    return dict(request.headers.items())


signable_header_names = st.sampled_from(
    ["Content-Type", "Range", "x-amz-acl", "x-amz-meta-a", "If-Match", "Cache-Control", "x-amz-storage-class"]
)


@given(
    st.sampled_from(["GET", "PUT", "HEAD", "DELETE", "POST"]),
    object_keys(),
    buckets(),
    credentials(),
    st.dictionaries(signable_header_names, header_values, max_size=4),
    st.binary(max_size=64),
    st.sampled_from(["", "uploads=", "partNumber=2&uploadId=a%2Fb", "uploadId=xyz", "acl=", "max-keys=2&prefix=J"]),
    moments,
)
def test_sign_headers_equals_botocore(method, key, bucket, creds, headers, body, query, moment) -> None:
    url = bucket.object_url(key) + (f"?{query}" if query else "")
    expected = botocore_headers(creds, method, url, headers, body, bucket.region, moment)
    ours = sign_headers(creds, method, url, headers=headers, body=body, region=bucket.region, now=moment)
    assert ours["Authorization"] == expected["Authorization"]
    assert ours["X-Amz-Date"] == expected["X-Amz-Date"]
    assert ours["X-Amz-Content-SHA256"] == expected["X-Amz-Content-SHA256"]
    assert ours.get("X-Amz-Security-Token") == expected.get("X-Amz-Security-Token")


def test_unsigned_payload_header_mode() -> None:
    headers = sign_headers(CREDS, "PUT", BUCKET.object_url("k"), unsigned_payload=True, now=NOW)
    assert headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"


def test_header_injection_is_refused_in_header_signing() -> None:
    with pytest.raises(InvalidHeader):
        sign_headers(CREDS, "GET", BUCKET.object_url("k"), headers={"Range": "bytes=0-1\r\nx: y"}, now=NOW)


@pytest.mark.parametrize(
    "call",
    [
        lambda: sign_headers(CREDS, "GET", "ftp://example.com/k", now=NOW),
        lambda: sign_headers(CREDS, "GET", "not a url", now=NOW),
        lambda: sign_headers(CREDS, "GET", BUCKET.object_url("k"), region="US EAST", now=NOW),
    ],
)
def test_bad_input_raises_the_library_error(call) -> None:
    with pytest.raises(SigningError):
        call()
