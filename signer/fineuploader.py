"""The Fine Uploader S3 signature protocol (``signature.version: 4``), with no Flask in it.

Fine Uploader asks the server to sign two kinds of things
(https://docs.fineuploader.com/branch/master/endpoint_handling/s3.html):

* a **policy document** (JSON) for simple POST uploads -> ``{"policy", "signature"}``;
* a **headers** string for each multipart REST call of a chunked upload ->
  ``{"signature"}``. The string is ``AWS4-HMAC-SHA256\\n<date>\\n<scope>\\n<canonical
  request>`` with the canonical request *not* hashed; we hash it ourselves.

Both are built in the browser, so both are hostile input: every condition and every
line is checked against :class:`signer.rules.Rules` before anything is signed, and what
is signed is exactly what was checked.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn
from urllib.parse import unquote

from .credentials import Credentials
from .errors import InvalidInput, RuleViolation
from .post_policy import SUCCESS_STATUSES, sign_policy
from .rules import Rules
from .s3 import CONTROL_CHARACTERS, Bucket, encode_key
from .sigv4 import (
    ALGORITHM,
    UNSIGNED_PAYLOAD,
    credential_scope,
    sign_string_to_sign,
    string_to_sign,
    utc_from_parts,
)

MAX_CONDITIONS = 64
MAX_PART_NUMBER = 10000
SSE_VALUES = frozenset({"AES256", "aws:kms", "aws:kms:dsse"})
STORAGE_CLASSES = frozenset({"STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING"})
_EXPIRATION = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,3})?Z")
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_UPLOAD_ID = re.compile(r"[A-Za-z0-9%._~-]{1,1024}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Signer:
    """What a Fine Uploader signature needs to know: our keys, our bucket, our rules."""

    credentials: Credentials
    bucket: Bucket
    rules: Rules


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Strict JSON: UTF-8, an object at the top, no duplicate keys, no NaN/Infinity.
    Duplicates matter: S3 and Python might pick different values of a repeated key."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, value in pairs:
            if name in result:
                raise InvalidInput(f"JSON has the key {name!r} twice", code="invalid_json")
            result[name] = value
        return result

    def no_constants(name: str) -> Any:
        raise InvalidInput(f"JSON must not contain {name}", code="invalid_json")

    try:
        document = json.loads(body.decode("utf-8"), object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput("request body must be a JSON object", code="invalid_json") from None
    except RecursionError:
        raise InvalidInput("request body is nested too deeply", code="invalid_json") from None
    if not isinstance(document, dict):
        raise InvalidInput("request body must be a JSON object", code="invalid_json")
    return document


# --- policy documents --------------------------------------------------------------

def sign_policy_document(document: dict[str, Any], signer: Signer, identity: str | None, now: datetime) -> dict[str, str]:
    """Check a Fine Uploader policy document, then sign it: ``{"policy", "signature"}``."""
    stamp = check_policy_document(document, signer, identity, now)
    encoded = base64.b64encode(json.dumps(document).encode("utf-8")).decode("ascii")
    return {
        "policy": encoded,
        "signature": sign_policy(signer.credentials.secret_key, encoded, stamp[:8], signer.bucket.region),
    }


def _condition(condition: Any) -> tuple[str, str, Any]:
    """(field name lower-cased, operator, value) of one condition, in any of S3's forms."""
    if isinstance(condition, dict) and len(condition) == 1:
        ((name, value),) = condition.items()
        if isinstance(name, str):
            return name.lower(), "eq", value
    if isinstance(condition, list) and len(condition) == 3 and isinstance(condition[0], str):
        operator = condition[0].lower()
        if operator == "content-length-range":
            return "content-length-range", "range", (condition[1], condition[2])
        if operator in ("eq", "starts-with") and isinstance(condition[1], str) and condition[1].startswith("$"):
            return condition[1][1:].lower(), operator, condition[2]
    raise InvalidInput(f"policy condition {json.dumps(condition)[:80]} is not a form S3 accepts")


def _size(value: Any) -> int:
    """Fine Uploader writes content-length-range bounds as strings of digits."""
    if isinstance(value, str) and value.isdigit() and len(value) <= 16:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidInput("content-length-range bounds must be whole numbers")


def check_policy_document(document: dict[str, Any], signer: Signer, identity: str | None, now: datetime) -> str:
    """Refuse anything but a policy our rules allow; return its x-amz-date."""
    rules, bucket, credentials = signer.rules, signer.bucket, signer.credentials
    if set(document) != {"expiration", "conditions"}:
        raise InvalidInput("policy must have exactly 'expiration' and 'conditions'")
    _check_expiration(document["expiration"], rules, now)
    conditions = document["conditions"]
    if not isinstance(conditions, list) or not 1 <= len(conditions) <= MAX_CONDITIONS:
        raise InvalidInput(f"policy conditions must be a list of 1 to {MAX_CONDITIONS} conditions")

    seen: dict[str, tuple[str, Any]] = {}
    for raw in conditions:
        name, operator, value = _condition(raw)
        if name in seen:
            raise RuleViolation(f"policy has more than one condition on {name!r}", code="policy_not_allowed")
        seen[name] = (operator, value)
        if name == "content-length-range":
            rules.size_range(_size(value[0]), _size(value[1]))
            continue
        if not isinstance(value, str) or CONTROL_CHARACTERS.search(value):
            raise InvalidInput(f"policy condition {name!r} must have a text value without control characters")
        _check_policy_field(name, operator, value, signer, identity, now)

    for required in ("bucket", "key", "x-amz-algorithm", "x-amz-credential", "x-amz-date"):
        if required not in seen:
            raise RuleViolation(f"policy must have a {required!r} condition", code="policy_not_allowed")
    if rules.allowed_content_types and "content-type" not in seen:
        raise RuleViolation("policy must have a Content-Type condition: " + rules.allowed_types_text(), code="content_type_not_allowed")
    if rules.max_size is not None and "content-length-range" not in seen:
        raise RuleViolation(
            f"policy must have a content-length-range condition (maximum {rules.max_size} bytes)", code="too_large"
        )
    if credentials.session_token and "x-amz-security-token" not in seen:
        raise RuleViolation("policy must carry the session token condition", code="policy_not_allowed")
    stamp = seen["x-amz-date"][1]
    expected = f"{credentials.access_key}/{credential_scope(stamp[:8], bucket.region, 's3')}"
    if seen["x-amz-credential"][1] != expected:
        raise RuleViolation(
            f"x-amz-credential must be {expected!r} (our access key, the policy's date, region {bucket.region})",
            code="credential_mismatch",
        )
    return stamp


def _check_expiration(expiration: Any, rules: Rules, now: datetime) -> None:
    match = _EXPIRATION.fullmatch(expiration) if isinstance(expiration, str) else None
    if not match:
        raise InvalidInput("policy expiration must look like 2026-01-31T12:00:00.000Z")
    try:
        moment = utc_from_parts(match.groups())
    except ValueError:
        raise InvalidInput("policy expiration is not a real date") from None
    remaining = (moment - now).total_seconds()
    if remaining <= 0:
        raise RuleViolation("policy expiration is in the past", code="expired")
    if remaining > rules.max_expires + rules.clock_skew:
        raise RuleViolation(
            f"policy expiration is more than {rules.max_expires} seconds away", code="expiry_too_long"
        )


_EXACT_FIELDS = frozenset({
    "bucket", "acl", "success_action_status", "x-amz-algorithm", "x-amz-credential", "x-amz-date",
    "x-amz-security-token", "x-amz-server-side-encryption", "x-amz-storage-class",
})


def _check_policy_field(name: str, operator: str, value: str, signer: Signer, identity: str | None, now: datetime) -> None:
    """One condition against the rules; anything not named here is refused."""
    rules = signer.rules
    if name == "key":
        if operator == "eq":
            rules.check_key(value, identity)
        else:
            rules.check_key_prefix(value, identity)
    elif name == "content-type":
        if operator == "eq":
            rules.check_content_type(value)
        else:
            rules.check_content_type_prefix(value)
    elif name.startswith("x-amz-meta-") and _HEADER_NAME.fullmatch(name):
        if len(value) > 2048:
            _refuse(f"{name} is longer than 2048 characters")
    elif name not in _EXACT_FIELDS:
        _refuse(f"policy condition on {name!r} is not allowed")
    elif operator != "eq":
        _refuse(f"policy condition on {name!r} must be an exact match")
    elif name == "bucket" and value != signer.bucket.name:
        _refuse(f"bucket must be {signer.bucket.name!r}", "bucket_not_allowed")
    elif name == "acl":
        rules.check_acl(value)
    elif name == "success_action_status" and value not in SUCCESS_STATUSES:
        _refuse("success_action_status must be 200, 201 or 204")
    elif name == "x-amz-algorithm" and value != ALGORITHM:
        _refuse(f"x-amz-algorithm must be {ALGORITHM}")
    elif name == "x-amz-date":
        rules.check_amz_date(value, now)
    elif name == "x-amz-security-token":
        _check_token(value, signer.credentials)
    elif name == "x-amz-server-side-encryption" and value not in SSE_VALUES:
        _refuse("x-amz-server-side-encryption must be AES256 or aws:kms")
    elif name == "x-amz-storage-class" and value not in STORAGE_CLASSES:
        _refuse("x-amz-storage-class is not a known class")
    # x-amz-credential is checked against x-amz-date once both are known


def _refuse(message: str, code: str = "policy_not_allowed") -> NoReturn:
    raise RuleViolation(message, code=code)


def _check_token(value: str, credentials: Credentials) -> None:
    ours = (credentials.session_token or "").encode()
    if not ours or not hmac.compare_digest(value.encode("utf-8", "replace"), ours):
        _refuse("x-amz-security-token does not match this service's credentials", "credential_mismatch")


# --- multipart "headers" strings -----------------------------------------------------

_COMMON_HEADERS = frozenset({"host", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"})
_EXTRA_HEADERS = {
    "initiate": frozenset(
        {"content-type", "x-amz-acl", "x-amz-server-side-encryption", "x-amz-storage-class", "cache-control",
         "content-disposition"}
    ),
    "part": frozenset({"content-md5"}),
    "complete": frozenset({"content-type", "content-md5"}),
    "abort": frozenset(),
}


def sign_multipart_headers(to_sign_raw: Any, signer: Signer, identity: str | None, now: datetime) -> dict[str, str]:
    """Check a Fine Uploader multipart string, hash its canonical request, sign it."""
    hashed = check_multipart_string(to_sign_raw, signer, identity, now)
    return {"signature": sign_string_to_sign(signer.credentials.secret_key, hashed)}


def check_multipart_string(raw: Any, signer: Signer, identity: str | None, now: datetime) -> str:
    """Refuse anything but an initiate / upload-part / complete / abort call on an allowed
    key of our bucket; return the string to sign with the canonical request hashed."""
    rules, bucket = signer.rules, signer.bucket
    if not isinstance(raw, str) or len(raw) > 16384:
        raise InvalidInput("'headers' must be a string of at most 16384 characters")
    if re.search(r"[\x00-\x09\x0b-\x1f\x7f]", raw):
        raise InvalidInput("'headers' must not contain control characters other than newlines (CR/LF injection?)")
    lines = raw.split("\n")
    if len(lines) < 10 or lines[0] != ALGORITHM:
        raise InvalidInput(f"'headers' must be a SigV4 string to sign starting with {ALGORITHM}")
    stamp, scope, method, uri, query = lines[1], lines[2], lines[3], lines[4], lines[5]
    rules.check_amz_date(stamp, now)
    if scope != credential_scope(stamp[:8], bucket.region, "s3"):
        raise RuleViolation(
            f"credential scope must be {credential_scope(stamp[:8], bucket.region, 's3')!r}", code="credential_mismatch"
        )
    rest = lines[6:]
    blank = rest.index("") if "" in rest else -1
    if blank < 1 or len(rest) != blank + 3:
        raise InvalidInput("canonical request must be: method, path, query, headers, blank line, signed headers, hash")
    header_lines, signed, payload_hash = rest[:blank], rest[blank + 1], rest[blank + 2]

    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if not sep or not _HEADER_NAME.fullmatch(name) or name in headers:
            raise InvalidInput(f"canonical header line {line[:60]!r} is malformed or repeated")
        headers[name] = value
    if list(headers) != sorted(headers) or signed != ";".join(headers):
        raise InvalidInput("signed headers must list the canonical headers, sorted")
    if payload_hash != UNSIGNED_PAYLOAD and not _HEX64.fullmatch(payload_hash):
        raise InvalidInput("payload hash must be a hex SHA-256 or UNSIGNED-PAYLOAD")

    kind = _multipart_kind(method, query)
    key = _key_from_path(uri, bucket)
    rules.check_key(key, identity)
    _check_multipart_headers(kind, headers, stamp, payload_hash, signer)
    canonical = "\n".join(lines[3:])
    return string_to_sign(stamp, scope, canonical)


def _multipart_kind(method: str, query: str) -> str:
    pairs = [part.partition("=") for part in query.split("&")] if query else []
    names = [name for name, _, _ in pairs]
    values = {name: value for name, _, value in pairs}
    if method == "POST" and names == ["uploads"] and values["uploads"] == "":
        return "initiate"
    if method == "PUT" and names == ["partNumber", "uploadId"]:
        number = values["partNumber"]
        if not number.isdigit() or not 1 <= int(number) <= MAX_PART_NUMBER:
            raise InvalidInput(f"partNumber must be 1 to {MAX_PART_NUMBER}")
        kind = "part"
    elif method == "POST" and names == ["uploadId"]:
        kind = "complete"
    elif method == "DELETE" and names == ["uploadId"]:
        kind = "abort"
    else:
        raise RuleViolation(
            "only multipart calls are signed: POST ?uploads, PUT ?partNumber=&uploadId=, POST ?uploadId=, "
            "DELETE ?uploadId=",
            code="operation_not_allowed",
        )
    if not _UPLOAD_ID.fullmatch(values["uploadId"]):
        raise InvalidInput("uploadId is missing or malformed")
    return kind


def _key_from_path(uri: str, bucket: Bucket) -> str:
    """The object key from the canonical URI: ``/<key>`` virtual-hosted, ``/<bucket>/<key>``
    path-style. It must be encoded exactly as S3 will encode it, or S3 would refuse anyway."""
    prefix = "/" if bucket.virtual_hosted else f"/{bucket.name}/"
    if not uri.startswith(prefix) or len(uri) == len(prefix):
        raise RuleViolation(f"canonical path must be {prefix}<key> for bucket {bucket.name!r}", code="bucket_not_allowed")
    encoded = uri[len(prefix):]
    try:
        key = unquote(encoded, errors="strict")
    except UnicodeDecodeError:
        raise InvalidInput("key in the canonical path is not UTF-8") from None
    if encode_key(key) != encoded:
        raise InvalidInput("key in the canonical path must be percent-encoded the S3 way")
    return key


def _check_multipart_headers(kind: str, headers: dict[str, str], stamp: str, payload_hash: str, signer: Signer) -> None:
    rules, credentials = signer.rules, signer.credentials
    for name in headers:
        if name not in _COMMON_HEADERS and name not in _EXTRA_HEADERS[kind] and not (
            kind == "initiate" and name.startswith("x-amz-meta-")
        ):
            raise RuleViolation(f"header {name!r} may not be signed for this call", code="header_not_allowed")
    if headers.get("host") != signer.bucket.host:
        raise RuleViolation(f"host must be {signer.bucket.host!r}", code="bucket_not_allowed")
    if headers.get("x-amz-date") != stamp:
        raise InvalidInput("x-amz-date header must equal the string's date")
    if headers.get("x-amz-content-sha256") != payload_hash:
        raise InvalidInput("x-amz-content-sha256 header must equal the payload hash")
    if "x-amz-security-token" in headers or credentials.session_token:
        _check_token(headers.get("x-amz-security-token", ""), credentials)
    if kind == "initiate":
        # Fine Uploader v4 does not sign Content-Type on initiate; when it is signed it must be
        # allowed. Either way /s3/success checks the finished object's type.
        rules.check_content_type(headers.get("content-type"), required=False)
        rules.check_acl(headers.get("x-amz-acl", "private"))
        if headers.get("x-amz-server-side-encryption", "AES256") not in SSE_VALUES:
            _refuse("x-amz-server-side-encryption must be AES256 or aws:kms")
        if headers.get("x-amz-storage-class", "STANDARD") not in STORAGE_CLASSES:
            _refuse("x-amz-storage-class is not a known class")
