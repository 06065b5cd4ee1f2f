"""The service's refusals, by meaning (as the library's ``signer/errors.py``).

Each class is one kind of refusal and lists the codes it may carry, with what each means; a
code names the rule, and the message says it for a human (no secret in it). No HTTP status in
here: the web layer maps each kind to a status (``web/responses.py``), and each protocol's
blueprint shapes its own error answers. :func:`refusal` builds the right kind for a code known
only at run time (a check's verdict, a protocol's answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar


class Refused(Exception):
    """The service will not do what was asked; ``code`` is one of the class's :attr:`CODES`."""

    CODES: ClassVar[Mapping[str, str]] = {}

    def __init__(self, code: str, message: str) -> None:
        if code not in type(self).CODES:
            raise KeyError(f"{code!r} is not a code of {type(self).__name__}")
        super().__init__(message)
        self.code = code
        self.message = message


class Malformed(Refused):
    """The request is malformed: a field, header, time or key that cannot be read or signed."""

    CODES: ClassVar[Mapping[str, str]] = {
        "invalid_input": "a field is malformed",
        "invalid_json": "the body is not a strict JSON object (UTF-8, no duplicate keys)",
        "missing_field": "a required field is missing",
        "unknown_field": "a field this endpoint does not take",
        "invalid_key": "the key is not a usable object key",
        "invalid_expiry": "expires_in is not a whole number of seconds >= 1",
        "invalid_time": "a time is malformed",
        "invalid_header": "a header name or value cannot be signed",
        "invalid_bucket": "a bucket name is malformed",
        "content_length_required": "a size limit is set, so the exact size must be signed",
        "invalid_checksum": "a checksum is not the strict base64 of its algorithm's digest, or more than one is given",
        "checksum_required": "SIGNER_REQUIRE_CHECKSUM is on, so a PUT must declare a checksum",
        "signature_version": "only signature version 4 is signed",
    }


class Unauthenticated(Refused):
    """Who is calling is unknown: authentication is missing or wrong."""

    CODES: ClassVar[Mapping[str, str]] = {
        "unauthorized": "authentication is missing or wrong",
        "token_malformed": "the bearer JWT cannot be read",
        "token_header": "the JWT names its own key (jku, x5u, jwk, x5c), which is never trusted",
        "token_algorithm": "the JWT's alg is not in SIGNER_JWT_ALGORITHMS or does not fit its key",
        "token_unknown_key": "the JWT's kid is not in the issuer's key set",
        "token_signature": "the JWT's signature does not verify",
        "token_expired": "the JWT has expired (exp)",
        "token_not_yet_valid": "the JWT is not valid yet (nbf, iat)",
        "token_issuer": "the JWT is from another issuer than SIGNER_JWT_ISSUER",
        "token_audience": "the JWT is not for SIGNER_JWT_AUDIENCE",
        "token_claims": "the JWT lacks a required claim (exp, iss, aud)",
        "token_identity": "the JWT's identity claim is not a safe folder name",
        "token_invalid": "the JWT is not valid",
    }


class NotAllowed(Refused):
    """Well formed, but outside the rules (SIGNER_* settings, the caller's folder, the protocol)."""

    CODES: ClassVar[Mapping[str, str]] = {
        "key_not_allowed": "the key is outside the caller's prefix or breaks the key rules",
        "content_type_not_allowed": "the content type is missing or not allowed",
        "too_large": "the size is above SIGNER_MAX_SIZE, or no size limit would be signed",
        "expiry_too_long": "the lifetime is above SIGNER_MAX_EXPIRES",
        "expired": "the request's expiration is in the past",
        "method_not_allowed": "the method is not in SIGNER_ALLOWED_METHODS",
        "acl_not_allowed": "the ACL is not in SIGNER_ALLOWED_ACLS",
        "clock_skew": "a client-chosen date is too far from server time",
        "policy_not_allowed": "a POST policy condition is not allowed",
        "bucket_not_allowed": "another bucket or host than the configured one",
        "header_not_allowed": "a header that may not be signed for this call",
        "operation_not_allowed": "an S3 operation this endpoint does not sign",
        "credential_mismatch": "the credential scope or session token is not this service's",
        "cors_origin_not_allowed": "the browser origin is not in SIGNER_CORS_ORIGINS",
        "doctor_not_allowed": "only bearer-token callers may run the store checks",
        "publish_not_configured": "publishing is not set up: SIGNER_PUBLISH_BUCKET is not set",
        "content_mismatch": "the uploaded bytes are not the declared type (the kind's check_content)",
        "kind_not_allowed": "this caller may not use the upload kind (its callers, SIGNER_CONFIG)",
    }


class NotFound(Refused):
    """What the request names is not there (an object, a multipart upload)."""

    CODES: ClassVar[Mapping[str, str]] = {
        "object_not_found": "the object is not in the bucket",
        "upload_not_found": "no such multipart upload for this key (finished, aborted, or another caller's)",
        "unknown_kind": "no upload kind of this name (SIGNER_CONFIG)",
    }


class Conflict(Refused):
    """The store holds something else than the request expects (an existing key, a changed object)."""

    CODES: ClassVar[Mapping[str, str]] = {
        "object_exists": "an object exists at this key and SIGNER_OVERWRITE=deny",
        "object_changed": "the object changed while it was being published; publish it again",
    }


class StoreFailed(Refused):
    """The store could not be reached or answered something unusable."""

    CODES: ClassVar[Mapping[str, str]] = {
        "storage_error": "the store could not be reached or answered something unusable",
    }


class Unavailable(Refused):
    """The service cannot sign now (its credentials, the JWT issuer's keys)."""

    CODES: ClassVar[Mapping[str, str]] = {
        "invalid_credentials": "the signing credentials are unusable",
        "credentials_unavailable": "the signing credentials expired and could not be refreshed; retry later",
        "token_keys_unavailable": "the JWT issuer's keys have never been fetched; retry later",
    }


class Throttled(Refused):
    """This caller has asked for more than its share; later, it may ask again."""

    CODES: ClassVar[Mapping[str, str]] = {
        "too_many_pending": "this caller has SIGNER_MAX_PENDING_PER_CALLER uploads waiting for the finish step already",
    }


KINDS: tuple[type[Refused], ...] = (Malformed, Unauthenticated, NotAllowed, NotFound, Conflict, Throttled, StoreFailed,
                                    Unavailable)
"""Every kind of refusal the service core raises, in the order /openapi.json lists their codes."""


def refusal(code: str, message: str) -> Refused:
    """The refusal of the kind that carries ``code`` (for a code known only at run time)."""
    for kind in KINDS:
        if code in kind.CODES:
            return kind(code, message)
    raise KeyError(f"unlisted error code {code!r}")


class ConfigError(Exception):
    """Bad or missing configuration: the service refuses to start, naming the variable."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
