"""The Fine Uploader S3 signature protocol (``signature.version: 4``), with no Flask in it.

Fine Uploader asks the server to sign two kinds of things
(https://docs.fineuploader.com/branch/master/endpoint_handling/s3.html):

* a **policy document** (JSON) for simple POST uploads -> ``{"policy", "signature"}``.
  Fine Uploader 5.16.2 puts the returned ``policy`` string into its form verbatim, so the
  service may add what the rules need (a ``content-length-range`` under a size limit)
  and sign exactly what it returns;
* a **headers** string for each multipart REST call of a chunked upload ->
  ``{"signature"}``. The string is ``AWS4-HMAC-SHA256\\n<date>\\n<scope>\\n<canonical
  request>`` with the canonical request *not* hashed; we hash it ourselves.

Both are built in the browser, so both are hostile input: every condition and every
line is checked against the caller's rules before anything is signed, and what is
signed is exactly what was checked.
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

from ..credentials import Credentials
from ..post_policy import SUCCESS_STATUSES, sign_policy
from ..s3 import Bucket, encode_key
from ..sigv4 import (
    ALGORITHM,
    CONTROL_CHARACTERS,
    DIGITS,
    HEADER_NAME,
    HEX_SHA256,
    UNSIGNED_PAYLOAD,
    credential_scope,
    signature,
    signing_key,
    string_to_sign,
    utc_from_parts,
)
from .checksums import DIGEST_BYTES, check_checksum
from .errors import Malformed, NotAllowed, Unavailable, refusal
from .rules import CallerRules

MAX_CONDITIONS = 64
SSE_VALUES = frozenset({"AES256", "aws:kms", "aws:kms:dsse"})
STORAGE_CLASSES = frozenset({"STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING"})
_EXPIRATION = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]{1,3})?Z")
_UPLOAD_ID = re.compile(r"[A-Za-z0-9%._~-]{1,1024}")
_EXACT_FIELDS = frozenset({
    "bucket", "acl", "success_action_status", "x-amz-algorithm", "x-amz-credential", "x-amz-date",
    "x-amz-security-token", "x-amz-server-side-encryption", "x-amz-storage-class",
})
# Only Content-Type may be a prefix: a key prefix would let the uploader choose the rest of
# the key (dot segments, control characters), which the key rules exist to prevent.
_STARTS_WITH_FIELDS = frozenset({"content-type"})
_COMMON_HEADERS = frozenset({"host", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"})
_EXTRA_HEADERS = {
    "initiate": frozenset(
        {"content-type", "x-amz-acl", "x-amz-server-side-encryption", "x-amz-storage-class", "cache-control",
         "content-disposition"}
    ),
    "part": frozenset({"content-md5", *(f"x-amz-checksum-{algorithm}" for algorithm in DIGEST_BYTES)}),
    "complete": frozenset({"content-type", "content-md5", "if-none-match"}),
    "abort": frozenset(),
}


@dataclass(frozen=True)
class MultipartCall:
    """One checked multipart REST call: what it is, on which key, and its string to sign."""

    kind: str  # "initiate", "part", "complete" or "abort"
    key: str
    upload_id: str | None
    to_sign: str
    date: str
    conditional: bool = False
    """A complete that signs ``if-none-match:*``: the store itself refuses an existing key.
    (Fine Uploader 5.16.2 never sends it; a client that does is spared our HEAD.)"""


@dataclass(frozen=True)
class FineUploader:
    """Fine Uploader's signature requests for one caller at one moment."""

    credentials: Credentials
    bucket: Bucket
    caller: CallerRules
    now: datetime

    # --- policy documents ----------------------------------------------------------

    def sign_policy(self, document: dict[str, Any]) -> dict[str, str]:
        """Check a policy document, add what the rules require, sign it:
        ``{"policy", "signature"}``."""
        stamp, conditions, expiration = self.check_policy(document)
        encoded = base64.b64encode(
            json.dumps({"expiration": expiration, "conditions": conditions}).encode("utf-8")
        ).decode("ascii")
        return {
            "policy": encoded,
            "signature": sign_policy(self.credentials.secret_key, encoded, stamp[:8], self.bucket.region),
        }

    def check_policy(self, document: dict[str, Any]) -> tuple[str, list[Any], str]:
        """Refuse anything but a policy our rules allow; return its x-amz-date and the
        conditions to sign (the client's, plus a size range when a limit is set and the
        client sent none: Fine Uploader only sends one when ``validation.sizeLimit`` is set)."""
        rules, bucket, credentials = self.caller.rules, self.bucket, self.credentials
        if set(document) != {"expiration", "conditions"}:
            raise Malformed("invalid_input", "policy must have exactly 'expiration' and 'conditions'")
        expiration = self._check_expiration(document["expiration"])
        conditions = document["conditions"]
        if not isinstance(conditions, list) or not 1 <= len(conditions) <= MAX_CONDITIONS:
            raise Malformed("invalid_input", f"policy conditions must be a list of 1 to {MAX_CONDITIONS} conditions")

        seen: dict[str, Any] = {}
        for raw in conditions:
            name, operator, value = _condition(raw)
            if name in seen:
                raise NotAllowed("policy_not_allowed", f"policy has more than one condition on {name!r}")
            seen[name] = value
            if name == "content-length-range":
                rules.size_range(*value)
                continue
            if not isinstance(value, str) or CONTROL_CHARACTERS.search(value):
                raise Malformed("invalid_input", f"policy condition {name!r} must have a text value without control characters")
            if operator == "starts-with" and name not in _STARTS_WITH_FIELDS:
                _refuse(f"policy condition on {name!r} must be an exact match")
            self._check_policy_field(name, operator, value)

        for required in ("bucket", "key", "x-amz-algorithm", "x-amz-credential", "x-amz-date"):
            if required not in seen:
                _refuse(f"policy must have a {required!r} condition")
        if rules.allowed_content_types and "content-type" not in seen:
            raise NotAllowed(
                "content_type_not_allowed",
                "policy must have a Content-Type condition: " + rules.allowed_types_text(),
            )
        if credentials.session_token and "x-amz-security-token" not in seen:
            _refuse("policy must carry the session token condition")
        stamp = seen["x-amz-date"]
        expected = f"{credentials.access_key}/{credential_scope(stamp[:8], bucket.region, 's3')}"
        if seen["x-amz-credential"] != expected:
            raise NotAllowed(
                "credential_mismatch",
                f"x-amz-credential must be {expected!r} (our access key, the policy's date, region {bucket.region})",
            )
        signed = list(conditions)
        if rules.max_size is not None and "content-length-range" not in seen:
            signed.append(["content-length-range", 0, rules.max_size])
        return stamp, signed, expiration

    def policy_expires(self, document: dict[str, Any]) -> datetime:
        """When a policy :meth:`sign_policy` accepted stops being valid (at the latest)."""
        match = _EXPIRATION.fullmatch(document["expiration"])
        assert match is not None  # checked by sign_policy
        return utc_from_parts(match.groups())

    def _check_expiration(self, expiration: Any) -> str:
        """At most SIGNER_MAX_EXPIRES from server time (clock skew is for client dates,
        not for how long a signature lives); the expiration to sign, capped at the moment
        temporary credentials expire (a policy never outlives its credentials)."""
        match = _EXPIRATION.fullmatch(expiration) if isinstance(expiration, str) else None
        if not match:
            raise Malformed("invalid_time", "policy expiration must look like 2026-01-31T12:00:00.000Z")
        try:
            moment = utc_from_parts(match.groups())
        except ValueError:
            raise Malformed("invalid_time", "policy expiration is not a real date") from None
        remaining = (moment - self.now).total_seconds()
        max_expires = self.caller.rules.max_expires
        if remaining <= 0:
            raise NotAllowed("expired", "policy expiration is in the past")
        if remaining > max_expires:
            raise NotAllowed("expiry_too_long", f"policy expiration is more than {max_expires} seconds away")
        valid_until = self.credentials.expiration
        if valid_until is not None and moment > valid_until:
            if valid_until <= self.now:
                raise Unavailable("credentials_unavailable", "the signing credentials have expired")
            return valid_until.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return str(expiration)

    def _check_policy_field(self, name: str, operator: str, value: str) -> None:
        """One condition against the rules; anything not named here is refused."""
        caller, rules = self.caller, self.caller.rules
        if name == "key":
            caller.check_key(value) if operator == "eq" else caller.check_key_prefix(value)
        elif name == "content-type":
            rules.check_content_type(value) if operator == "eq" else rules.check_content_type_prefix(value)
        elif name.startswith("x-amz-meta-") and HEADER_NAME.fullmatch(name):
            if len(value) > 2048:
                _refuse(f"{name} is longer than 2048 characters")
        elif name not in _EXACT_FIELDS:
            _refuse(f"policy condition on {name!r} is not allowed")
        elif name == "bucket" and value != self.bucket.name:
            _refuse(f"bucket must be {self.bucket.name!r}", "bucket_not_allowed")
        elif name == "acl":
            rules.check_acl(value)
        elif name == "success_action_status" and value not in SUCCESS_STATUSES:
            _refuse("success_action_status must be 200, 201 or 204")
        elif name == "x-amz-algorithm" and value != ALGORITHM:
            _refuse(f"x-amz-algorithm must be {ALGORITHM}")
        elif name == "x-amz-date":
            rules.check_amz_date(value, self.now)
        elif name == "x-amz-security-token":
            _check_token(value, self.credentials)
        elif name == "x-amz-server-side-encryption" and value not in SSE_VALUES:
            _refuse("x-amz-server-side-encryption must be AES256 or aws:kms")
        elif name == "x-amz-storage-class" and value not in STORAGE_CLASSES:
            _refuse("x-amz-storage-class is not a known class")
        # x-amz-credential is checked against x-amz-date once both are known

    # --- multipart "headers" strings -------------------------------------------------

    def sign_headers(self, raw: Any) -> dict[str, str]:
        """Check a multipart string, hash its canonical request, sign it: ``{"signature"}``."""
        return self.sign_call(self.check_multipart(raw))

    def sign_call(self, call: MultipartCall) -> dict[str, str]:
        """Sign a call :meth:`check_multipart` returned (the caller may check more first)."""
        key = signing_key(self.credentials.secret_key, call.date, self.bucket.region, "s3")
        return {"signature": signature(key, call.to_sign)}

    def check_multipart(self, raw: Any) -> MultipartCall:
        """Refuse anything but an initiate / upload-part / complete / abort call on an allowed
        key of our bucket; return it with the canonical request hashed."""
        rules, bucket = self.caller.rules, self.bucket
        if not isinstance(raw, str) or len(raw) > 16384:
            raise Malformed("invalid_input", "'headers' must be a string of at most 16384 characters")
        lines = raw.split("\n")
        if any(CONTROL_CHARACTERS.search(line) for line in lines):
            raise Malformed("invalid_input",
                            "'headers' must not contain control characters other than newlines (CR/LF injection?)")
        if len(lines) < 10 or lines[0] != ALGORITHM:
            raise Malformed("invalid_input", f"'headers' must be a SigV4 string to sign starting with {ALGORITHM}")
        stamp, scope, method, uri, query = lines[1], lines[2], lines[3], lines[4], lines[5]
        rules.check_amz_date(stamp, self.now)
        expected_scope = credential_scope(stamp[:8], bucket.region, "s3")
        if scope != expected_scope:
            raise NotAllowed("credential_mismatch", f"credential scope must be {expected_scope!r}")
        rest = lines[6:]
        blank = rest.index("") if "" in rest else -1
        if blank < 1 or len(rest) != blank + 3:
            raise Malformed(
                "invalid_input", "canonical request must be: method, path, query, headers, blank line, signed headers, hash"
            )
        header_lines, signed, payload_hash = rest[:blank], rest[blank + 1], rest[blank + 2]

        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep or not HEADER_NAME.fullmatch(name) or name != name.lower() or name in headers:
                raise Malformed("invalid_input", f"canonical header line {line[:60]!r} is malformed or repeated")
            headers[name] = value
        if list(headers) != sorted(headers) or signed != ";".join(headers):
            raise Malformed("invalid_input", "signed headers must list the canonical headers, sorted")
        if payload_hash != UNSIGNED_PAYLOAD and not HEX_SHA256.fullmatch(payload_hash):
            raise Malformed("invalid_input", "payload hash must be a hex SHA-256 or UNSIGNED-PAYLOAD")

        kind, upload_id, part_number = _multipart_kind(method, query)
        if kind == "abort":
            rules.check_abort_allowed()
        elif kind == "initiate":
            rules.check_uploads_allowed()
        if part_number is not None:
            self.caller.check_part_number(part_number)
        key = self.caller.check_key(_key_from_path(uri, bucket))
        self._check_multipart_headers(kind, headers, stamp, payload_hash)
        to_sign = string_to_sign(stamp, scope, "\n".join(lines[3:]))
        return MultipartCall(kind, key, upload_id, to_sign, stamp[:8], headers.get("if-none-match") == "*")

    def _check_multipart_headers(self, kind: str, headers: dict[str, str], stamp: str, payload_hash: str) -> None:
        rules, credentials = self.caller.rules, self.credentials
        for name in headers:
            if name not in _COMMON_HEADERS and name not in _EXTRA_HEADERS[kind] and not (
                kind == "initiate" and name.startswith("x-amz-meta-")
            ):
                raise NotAllowed("header_not_allowed", f"header {name!r} may not be signed for this call")
        if headers.get("host") != self.bucket.host:
            raise NotAllowed("bucket_not_allowed", f"host must be {self.bucket.host!r}")
        if headers.get("x-amz-date") != stamp:
            raise Malformed("invalid_input", "x-amz-date header must equal the string's date")
        if headers.get("x-amz-content-sha256") != payload_hash:
            raise Malformed("invalid_input", "x-amz-content-sha256 header must equal the payload hash")
        if "x-amz-security-token" in headers or credentials.session_token:
            _check_token(headers.get("x-amz-security-token", ""), credentials)
        if headers.get("if-none-match", "*") != "*":
            _refuse("if-none-match may only be '*' (no overwrite)", "header_not_allowed")
        if kind == "part":
            sums = {name: value for name, value in headers.items() if name.startswith("x-amz-checksum-")}
            for name, value in sums.items():
                check_checksum("checksum_" + name.removeprefix("x-amz-checksum-"), value, name)
            if len(sums) > 1:
                raise Malformed("invalid_checksum", "give one x-amz-checksum-* header, not several")
            if not sums and rules.require_checksum:
                raise Malformed("checksum_required", "a checksum is required (SIGNER_REQUIRE_CHECKSUM): sign the "
                              "part's x-amz-checksum-sha256 (Fine Uploader 5.16.2 cannot)")
        if kind == "initiate":
            # Fine Uploader v4 does not sign Content-Type on initiate; when it is signed it must be
            # allowed. Either way the finished object's type is checked (see /s3/success).
            rules.check_content_type(headers.get("content-type"), required=False)
            rules.check_acl(headers.get("x-amz-acl", "private"))
            if headers.get("x-amz-server-side-encryption", "AES256") not in SSE_VALUES:
                _refuse("x-amz-server-side-encryption must be AES256 or aws:kms")
            if headers.get("x-amz-storage-class", "STANDARD") not in STORAGE_CLASSES:
                _refuse("x-amz-storage-class is not a known class")


def policy_key(conditions: list[Any]) -> str:
    """The key of a policy :meth:`FineUploader.sign_policy` accepted (an exact ``key`` condition)."""
    for raw in conditions:
        name, operator, value = _condition(raw)
        if name == "key" and operator == "eq":
            return str(value)
    raise Malformed("invalid_input", "policy has no exact key condition")


def _condition(condition: Any) -> tuple[str, str, Any]:
    """(field name lower-cased, operator, value) of one condition, in S3's forms. A size
    range is accepted only as ``["content-length-range", min, max]`` with whole-number
    bounds: S3 reads no other form as a size limit."""
    if isinstance(condition, dict) and len(condition) == 1:
        ((name, value),) = condition.items()
        if isinstance(name, str) and name.lower() != "content-length-range":
            return name.lower(), "eq", value
    if isinstance(condition, list) and len(condition) == 3 and isinstance(condition[0], str):
        operator = condition[0].lower()
        if operator == "content-length-range":
            return "content-length-range", "range", (_size(condition[1]), _size(condition[2]))
        if (operator in ("eq", "starts-with") and isinstance(condition[1], str) and condition[1].startswith("$")
                and condition[1][1:].lower() != "content-length-range"):
            return condition[1][1:].lower(), operator, condition[2]
    raise Malformed("invalid_input", f"policy condition {json.dumps(condition)[:80]} is not a form S3 accepts")


def _size(value: Any) -> int:
    """Fine Uploader writes content-length-range bounds as strings of ASCII digits."""
    if isinstance(value, str) and DIGITS.fullmatch(value) and len(value) <= 16:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise Malformed("invalid_input", "content-length-range bounds must be whole numbers")


def _multipart_kind(method: str, query: str) -> tuple[str, str | None, str | None]:
    """(kind, upload id, part number) of a multipart call's query."""
    pairs = [part.partition("=") for part in query.split("&")] if query else []
    names = [name for name, _, _ in pairs]
    values = {name: value for name, _, value in pairs}
    if method == "POST" and names == ["uploads"] and values["uploads"] == "":
        return "initiate", None, None
    if method == "PUT" and names == ["partNumber", "uploadId"]:
        kind = "part"
    elif method == "POST" and names == ["uploadId"]:
        kind = "complete"
    elif method == "DELETE" and names == ["uploadId"]:
        kind = "abort"
    else:
        raise NotAllowed(
            "operation_not_allowed",
            "only multipart calls are signed: POST ?uploads, PUT ?partNumber=&uploadId=, POST ?uploadId=, "
            "DELETE ?uploadId=",
        )
    if not _UPLOAD_ID.fullmatch(values["uploadId"]):
        raise Malformed("invalid_input", "uploadId is missing or malformed")
    return kind, unquote(values["uploadId"]), values.get("partNumber")


def _key_from_path(uri: str, bucket: Bucket) -> str:
    """The object key from the canonical URI: ``/<key>`` virtual-hosted, ``/<bucket>/<key>``
    path-style. It must be encoded exactly as S3 will encode it, or S3 would refuse anyway."""
    prefix = "/" if bucket.virtual_hosted else f"/{bucket.name}/"
    if not uri.startswith(prefix) or len(uri) == len(prefix):
        raise NotAllowed("bucket_not_allowed", f"canonical path must be {prefix}<key> for bucket {bucket.name!r}")
    encoded = uri[len(prefix):]
    try:
        key = unquote(encoded, errors="strict")
    except UnicodeDecodeError:
        raise Malformed("invalid_key", "key in the canonical path is not UTF-8") from None
    if encode_key(key) != encoded:
        raise Malformed("invalid_key", "key in the canonical path must be percent-encoded the S3 way")
    return key


def _refuse(message: str, code: str = "policy_not_allowed") -> NoReturn:
    raise refusal(code, message)


def _check_token(value: str, credentials: Credentials) -> None:
    ours = (credentials.session_token or "").encode()
    if not ours or not hmac.compare_digest(value.encode("utf-8", "replace"), ours):
        _refuse("x-amz-security-token does not match this service's credentials", "credential_mismatch")
