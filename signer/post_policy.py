"""Browser POST uploads: the policy document, its signature and the form fields.

https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from .credentials import Credentials
from .errors import InvalidHeader, InvalidInput
from .s3 import Bucket, check_key
from .sigv4 import (
    ALGORITHM,
    CONTROL_CHARACTERS,
    EPOCH,
    HEADER_NAME,
    amz_date,
    check_expires,
    credential_scope,
    keyed_signature,
    signing_hmac,
    utc_moment,
    whole_seconds,
)

FILENAME_VARIABLE = "${filename}"
CANNED_ACLS = frozenset(
    {
        "private",
        "public-read",
        "public-read-write",
        "aws-exec-read",
        "authenticated-read",
        "bucket-owner-read",
        "bucket-owner-full-control",
        "log-delivery-write",
    }
)
SUCCESS_STATUSES = frozenset({"200", "201", "204"})
_CHECKSUM_FIELD = re.compile(r"x-amz-checksum-(sha256|sha1|crc32|crc32c|crc64nvme)")


def _made_once_json_encoder() -> Callable[[Any], str]:
    """``json.dumps`` with its default settings (botocore's policy text, byte for byte), by a
    C encoder made once: ``json.dumps`` builds a new one on every call, about 2.5 µs of a
    ~20 µs ``presign_post``. No circular-reference check (a policy is a tree), so the encoder
    keeps no state between calls and threads may share it. Plain ``json.dumps`` where the C
    accelerator is missing or does not agree."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return json.dumps
    defaults = json.JSONEncoder()
    encode = make(None, defaults.default, json.encoder.encode_basestring_ascii, None,
                  defaults.key_separator, defaults.item_separator, False, False, True)

    def dumps(document: Any) -> str:
        return "".join(encode(document, 0))

    sample = {"expiration": "2026-01-01T00:00:00Z", "conditions": [["a", 1, 2], {"k": "é\"\\\n"}, True, None]}
    return dumps if dumps(sample) == json.dumps(sample) else json.dumps


policy_json = _made_once_json_encoder()


class PostForm(NamedTuple):
    """Everything a browser form (or ``curl -F``) needs to POST one upload.
    (A NamedTuple, like :class:`signer.presign.PresignedURL`: as immutable, cheaper to build.)"""

    url: str
    fields: dict[str, str]
    policy: dict[str, Any]
    expires_at: datetime


def _field_value(name: str, value: object) -> str:
    if not isinstance(value, str) or CONTROL_CHARACTERS.search(value):
        raise InvalidInput(f"{name} must be text without control characters")
    return value


def presign_post(
    credentials: Credentials,
    bucket: Bucket,
    key: str,
    *,
    expires_in: int = 3600,
    content_type: str | None = None,
    content_type_prefix: str | None = None,
    content_length_range: tuple[int, int] | None = None,
    acl: str | None = None,
    success_action_status: str | None = None,
    metadata: Mapping[str, str] | None = None,
    checksum: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> PostForm:
    """Sign a POST policy for one upload and return the form.

    ``key`` is exact, or ends with ``${filename}`` to allow any key starting with what
    precedes it (S3 substitutes the uploaded file's name). ``content_type`` is exact and
    becomes a field; ``content_type_prefix`` (``"image/"``) lets the client set its own
    ``Content-Type`` field within it. The caller must send ``fields`` in order and put
    the ``file`` field **last**: S3 ignores every field after the file. ``checksum``
    (``{"x-amz-checksum-sha256": base64}``, or another ``x-amz-checksum-<alg>``) becomes a
    field and an exact condition: the store compares it with the file.

    Conditions are written in the order botocore writes them (caller's conditions, then
    bucket, key and the x-amz-* ones), so its generate_presigned_post is an exact oracle.
    """
    expires_in = check_expires(expires_in)
    if not isinstance(key, str) or not key:
        raise InvalidInput("key must be a non-empty string")
    check_key(key)  # length and unicode rules (the key is not in the URL: no need to encode it)
    if content_type is not None and content_type_prefix is not None:
        raise InvalidInput("give content_type or content_type_prefix, not both")
    stamp, expires_at, expiration = _post_times(whole_seconds(utc_moment(now)), expires_in)
    scope = credential_scope(stamp[:8], bucket.region, "s3")

    fields: dict[str, str] = {"key": key}
    conditions: list[Any] = []
    if content_length_range is not None:
        low, high = _length_range(content_length_range)
        conditions.append(["content-length-range", low, high])
    if content_type is not None:
        fields["Content-Type"] = _field_value("content_type", content_type)
        conditions.append({"Content-Type": content_type})
    if content_type_prefix is not None:
        conditions.append(
            ["starts-with", "$Content-Type", _field_value("content_type_prefix", content_type_prefix)]
        )
    if acl is not None:
        if acl not in CANNED_ACLS:
            raise InvalidInput(f"acl must be one of {', '.join(sorted(CANNED_ACLS))}")
        fields["acl"] = acl
        conditions.append({"acl": acl})
    if success_action_status is not None:
        if success_action_status not in SUCCESS_STATUSES:
            raise InvalidInput("success_action_status must be '200', '201' or '204'")
        fields["success_action_status"] = success_action_status
        conditions.append({"success_action_status": success_action_status})
    for name, value in (metadata or {}).items():
        if not isinstance(name, str) or not HEADER_NAME.fullmatch(name):
            raise InvalidHeader(f"metadata name {name!r} is not a valid header name")
        field = f"x-amz-meta-{name.lower()}"
        fields[field] = _field_value(field, value)
        conditions.append({field: value})
    for name, value in (checksum or {}).items():
        if not isinstance(name, str) or not _CHECKSUM_FIELD.fullmatch(name):
            raise InvalidHeader(f"checksum field {name!r} is not x-amz-checksum-<algorithm>")
        fields[name] = _field_value(name, value)
        conditions.append({name: value})

    conditions.append({"bucket": bucket.name})
    if key.endswith(FILENAME_VARIABLE):
        conditions.append(["starts-with", "$key", key[: -len(FILENAME_VARIABLE)]])
    else:
        conditions.append({"key": key})
    amz_fields = {
        "x-amz-algorithm": ALGORITHM,
        "x-amz-credential": f"{credentials.access_key}/{scope}",
        "x-amz-date": stamp,
    }
    if credentials.session_token:
        amz_fields["x-amz-security-token"] = credentials.session_token
    conditions.extend([{name: value} for name, value in amz_fields.items()])
    fields.update(amz_fields)

    policy = {"expiration": expiration, "conditions": conditions}
    encoded = binascii.b2a_base64(policy_json(policy).encode("utf-8"), newline=False).decode("ascii")  # base64
    fields["policy"] = encoded
    fields["x-amz-signature"] = sign_policy(credentials.secret_key, encoded, stamp[:8], bucket.region)
    return PostForm(bucket.base_url, fields, policy, expires_at)


@lru_cache(maxsize=32)  # small: an entry is useful only within its second
def _post_times(second: int, expires_in: int) -> tuple[str, datetime, str]:
    """(X-Amz-Date, expiry moment, the policy's expiration text) for a whole second since
    the epoch: the same all second long, so made once per second and expiry."""
    expires_at = EPOCH + timedelta(seconds=second + expires_in)
    return amz_date(EPOCH + timedelta(seconds=second)), expires_at, policy_expiration(expires_at)


def policy_expiration(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` (what ``strftime("%Y-%m-%dT%H:%M:%SZ")`` writes, for less)."""
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)


def sign_policy(secret_key: str, policy_base64: str, date: str, region: str) -> str:
    """The POST signature: HMAC of the base64 policy text with the day's S3 signing key
    (pre-keyed and cached beside it: :func:`signer.sigv4.signing_hmac`)."""
    return keyed_signature(signing_hmac(secret_key, date, region, "s3"), policy_base64)


def _length_range(value: tuple[int, int]) -> tuple[int, int]:
    try:
        low, high = value
    except (TypeError, ValueError):
        raise InvalidInput("content_length_range must be a (min, max) pair") from None
    for bound in (low, high):
        if isinstance(bound, bool) or not isinstance(bound, int) or bound < 0:
            raise InvalidInput("content_length_range bounds must be whole numbers >= 0")
    if low > high:
        raise InvalidInput("content_length_range minimum must not exceed its maximum")
    return low, high
