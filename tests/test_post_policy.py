"""POST policies: byte for byte against botocore's generate_presigned_post, and refusals."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta

import pytest
from freezegun import freeze_time
from hypothesis import given
from hypothesis import strategies as st

from signer import Credentials, SigningError, presign_post
from tests.helpers import BUCKET, CREDS, NOW
from tests.oracle import buckets, client_for, credentials, expiries, header_values, metadata_names, moments, object_keys


@st.composite
def post_requests(draw):
    """(our keyword arguments, botocore's Fields, botocore's Conditions) for the same form."""
    kwargs: dict = {}
    fields: dict[str, str] = {}
    conditions: list = []
    if draw(st.booleans()):
        low = draw(st.integers(0, 10**6))
        high = draw(st.integers(low, 5 * 10**9))
        kwargs["content_length_range"] = (low, high)
        conditions.append(["content-length-range", low, high])
    content = draw(st.sampled_from(["none", "exact", "prefix"]))
    if content == "exact":
        kwargs["content_type"] = fields["Content-Type"] = draw(header_values)
        conditions.append({"Content-Type": kwargs["content_type"]})
    elif content == "prefix":
        kwargs["content_type_prefix"] = draw(st.sampled_from(["image/", "", "text/"]))
        conditions.append(["starts-with", "$Content-Type", kwargs["content_type_prefix"]])
    if draw(st.booleans()):
        kwargs["acl"] = fields["acl"] = draw(st.sampled_from(["private", "public-read", "bucket-owner-full-control"]))
        conditions.append({"acl": kwargs["acl"]})
    if draw(st.booleans()):
        kwargs["success_action_status"] = fields["success_action_status"] = draw(st.sampled_from(["200", "201", "204"]))
        conditions.append({"success_action_status": kwargs["success_action_status"]})
    metadata = draw(st.dictionaries(metadata_names, header_values, max_size=3))
    if metadata:
        kwargs["metadata"] = metadata
        for name, value in metadata.items():
            fields[f"x-amz-meta-{name}"] = value
            conditions.append({f"x-amz-meta-{name}": value})
    key = draw(object_keys())
    if draw(st.booleans()):
        key = key[:900] + "${filename}"
    return key, kwargs, fields, conditions


@given(post_requests(), buckets(), credentials(), expiries, moments)
def test_presign_post_equals_botocore(request, bucket, creds, expires_in, moment) -> None:
    key, kwargs, fields, conditions = request
    with freeze_time(moment):
        expected = client_for(creds, bucket).generate_presigned_post(
            bucket.name, key, Fields=fields, Conditions=conditions, ExpiresIn=expires_in
        )
    ours = presign_post(creds, bucket, key, expires_in=expires_in, now=moment, **kwargs)
    assert ours.url == expected["url"]
    assert ours.fields["policy"] == expected["fields"]["policy"]
    assert ours.fields["x-amz-signature"] == expected["fields"]["x-amz-signature"]
    assert ours.fields == expected["fields"]
    assert json.loads(base64.b64decode(ours.fields["policy"])) == ours.policy
    assert ours.expires_at == moment + timedelta(seconds=expires_in)


def test_field_order_key_first_signature_last() -> None:
    form = presign_post(CREDS, BUCKET, "uploads/a.png", content_type="image/png", acl="private", now=NOW)
    names = list(form.fields)
    assert names[0] == "key"
    assert names[-2:] == ["policy", "x-amz-signature"]
    assert "file" not in names


def test_policy_conditions_are_exact() -> None:
    creds = Credentials("AKIDEXAMPLE12345", "secret", "session")
    form = presign_post(
        creds,
        BUCKET,
        "uploads/alice/${filename}",
        expires_in=600,
        content_type_prefix="image/",
        content_length_range=(1, 1000),
        now=NOW,
    )
    assert form.policy == {
        "expiration": "2026-11-23T08:10:00Z",
        "conditions": [
            ["content-length-range", 1, 1000],
            ["starts-with", "$Content-Type", "image/"],
            {"bucket": "uploads-bucket"},
            ["starts-with", "$key", "uploads/alice/"],
            {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
            {"x-amz-credential": "AKIDEXAMPLE12345/20261123/us-east-1/s3/aws4_request"},
            {"x-amz-date": "20261123T080000Z"},
            {"x-amz-security-token": "session"},
        ],
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"expires_in": 0},
        {"expires_in": 604801},
        {"content_length_range": (10, 1)},
        {"content_length_range": (-1, 10)},
        {"content_length_range": (1,)},
        {"content_length_range": (1.5, 10)},
        {"acl": "everyone-write"},
        {"success_action_status": "302"},
        {"content_type": "a\r\nb"},
        {"content_type": "image/png", "content_type_prefix": "image/"},
        {"metadata": {"bad name": "v"}},
        {"metadata": {"ok": "line\nbreak"}},
        {"now": datetime(2026, 1, 1)},
    ],
)
def test_refusals(kwargs) -> None:
    with pytest.raises(SigningError):
        presign_post(CREDS, BUCKET, "uploads/a", **kwargs)


@pytest.mark.parametrize("key", ["", "x" * 1025, "bad\ud800"])
def test_bad_keys(key) -> None:
    with pytest.raises(SigningError):
        presign_post(CREDS, BUCKET, key, now=NOW)
