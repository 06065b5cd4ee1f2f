"""Buckets, endpoints, addressing styles and key encoding (signer/s3.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signer import Bucket, SigningError, encode_key, presign_url
from signer.errors import InvalidBucket, InvalidKey
from signer.s3 import check_key
from tests.helpers import BUCKET, CREDS, NOW


def test_keys_are_encoded_once_and_not_normalised() -> None:
    url = presign_url(CREDS, BUCKET, "a//b/./c/../d é+%.txt", now=NOW).url
    assert url.startswith("https://uploads-bucket.s3.amazonaws.com/a//b/./c/../d%20%C3%A9%2B%25.txt?")


def test_custom_endpoint_keeps_port_and_drops_default_port() -> None:
    assert presign_url(CREDS, Bucket("b-1", endpoint_url="http://127.0.0.1:9000"), "k", now=NOW).url.startswith(
        "http://127.0.0.1:9000/b-1/k?"
    )
    assert presign_url(CREDS, Bucket("b-1", endpoint_url="https://minio.test:443"), "k", now=NOW).url.startswith(
        "https://minio.test/b-1/k?"
    )
    vhost = Bucket("b-1", endpoint_url="http://s3.localhost:9000", addressing_style="virtual")
    assert presign_url(CREDS, vhost, "k", now=NOW).url.startswith("http://b-1.s3.localhost:9000/k?")


@pytest.mark.parametrize(
    "name",
    ["", "ab", "a" * 64, "Upper", "under_score", "-leading", "trailing-", "a..b", "192.168.1.1", "xn--abc",
     "bucket-s3alias", "sthree-x", "has space", "dot.-dash"],
)
def test_bucket_names_s3_rejects(name: str) -> None:
    with pytest.raises(InvalidBucket):
        Bucket(name)


def test_key_rules() -> None:
    with pytest.raises(InvalidKey):
        presign_url(CREDS, BUCKET, "é" * 513, now=NOW)  # 1026 bytes
    with pytest.raises(InvalidKey):
        presign_url(CREDS, BUCKET, "bad\ud800surrogate", now=NOW)
    presign_url(CREDS, BUCKET, "é" * 512, now=NOW)  # 1024 bytes is allowed


@pytest.mark.parametrize(
    "call",
    [
        lambda: Bucket("b-1", region="../evil"),
        lambda: Bucket("b-1", endpoint_url="ftp://x"),
        lambda: Bucket("b-1", endpoint_url="http://127.0.0.1:9000/prefix"),
        lambda: Bucket("b-1", endpoint_url="http://127.0.0.1:9000", addressing_style="virtual"),
        lambda: Bucket("b-1", addressing_style="sideways"),
    ],
)
def test_bad_input_raises_the_library_error(call) -> None:
    with pytest.raises(SigningError):
        call()


@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=300))
def test_encode_key_equals_botocore(key: str) -> None:
    """Keys as botocore writes them in the path of an S3 call (its REST serializer quotes the
    ``{Key+}`` label with ``/`` and ``~`` kept): the independent oracle."""
    from botocore.utils import percent_encode

    assert encode_key(key) == percent_encode(key, safe="/~")


@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=400))
def test_check_key_takes_exactly_what_fits_in_1024_bytes(key: str) -> None:
    if len(key.encode("utf-8")) <= 1024:
        assert check_key(key) == key
    else:
        with pytest.raises(InvalidKey):
            check_key(key)
