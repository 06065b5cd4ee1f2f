"""The service's refusals: one exception, one table of codes.

Every code the service can send is listed here once, with its HTTP status and what it
means; the Flask layer turns a :class:`Refused` (or a library
:class:`signer.errors.SigningError`, by its ``code``) into JSON through this table, and
``/openapi.json`` lists it. Nothing else decides a status.
"""

from __future__ import annotations

CODES: dict[str, tuple[int, str]] = {
    # 400: the request is malformed
    "invalid_input": (400, "a field is malformed"),
    "invalid_json": (400, "the body is not a strict JSON object (UTF-8, no duplicate keys)"),
    "missing_field": (400, "a required field is missing"),
    "unknown_field": (400, "a field this endpoint does not take"),
    "invalid_key": (400, "the key is not a usable object key"),
    "invalid_expiry": (400, "expires_in is not a whole number of seconds >= 1"),
    "invalid_time": (400, "a time is malformed"),
    "invalid_header": (400, "a header name or value cannot be signed"),
    "invalid_bucket": (400, "a bucket name is malformed"),
    "content_length_required": (400, "a size limit is set, so the exact size must be signed"),
    "invalid_checksum": (400, "a checksum is not the strict base64 of its algorithm's digest, or more than one is given"),
    "checksum_required": (400, "SIGNER_REQUIRE_CHECKSUM is on, so a PUT must declare a checksum"),
    "signature_version": (400, "only signature version 4 is signed"),
    # 401: who is calling is unknown
    "unauthorized": (401, "authentication is missing or wrong"),
    # 403: well formed, outside the rules
    "key_not_allowed": (403, "the key is outside the caller's prefix or breaks the key rules"),
    "content_type_not_allowed": (403, "the content type is missing or not allowed"),
    "too_large": (403, "the size is above SIGNER_MAX_SIZE, or no size limit would be signed"),
    "expiry_too_long": (403, "the lifetime is above SIGNER_MAX_EXPIRES"),
    "expired": (403, "the request's expiration is in the past"),
    "method_not_allowed": (403, "the method is not in SIGNER_ALLOWED_METHODS"),
    "acl_not_allowed": (403, "the ACL is not in SIGNER_ALLOWED_ACLS"),
    "clock_skew": (403, "a client-chosen date is too far from server time"),
    "policy_not_allowed": (403, "a POST policy condition is not allowed"),
    "bucket_not_allowed": (403, "another bucket or host than the configured one"),
    "header_not_allowed": (403, "a header that may not be signed for this call"),
    "operation_not_allowed": (403, "an S3 operation this endpoint does not sign"),
    "credential_mismatch": (403, "the credential scope or session token is not this service's"),
    "cors_origin_not_allowed": (403, "the browser origin is not in SIGNER_CORS_ORIGINS"),
    "doctor_not_allowed": (403, "only bearer-token callers may run the store checks"),
    "publish_not_configured": (403, "publishing is not set up: SIGNER_PUBLISH_BUCKET is not set"),
    # other statuses
    "object_not_found": (404, "the object is not in the bucket"),
    "upload_not_found": (404, "no such multipart upload for this key (finished, aborted, or another caller's)"),
    "no_such_route": (404, "no endpoint at this path"),
    "wrong_http_method": (405, "the endpoint does not take this HTTP method"),
    "request_timeout": (408, "the whole request did not arrive within SIGNER_REQUEST_TIMEOUT seconds"),
    "object_exists": (409, "an object exists at this key and SIGNER_OVERWRITE=deny"),
    "object_changed": (409, "the object changed while it was being published; publish it again"),
    "body_too_large": (413, "the request body is above SIGNER_MAX_BODY"),
    "unsupported_media_type": (415, "the body must be application/json"),
    "too_many_connections": (429, "this address holds SIGNER_MAX_CONNECTIONS_PER_PEER connections already"),
    "headers_too_large": (431, "the request line and headers are above 16 KiB"),
    "internal_error": (500, "a bug; nothing was signed"),
    "storage_error": (502, "the store could not be reached or answered something unusable"),
    "invalid_credentials": (503, "the signing credentials are unusable"),
    "credentials_unavailable": (503, "the signing credentials expired and could not be refreshed; retry later"),
}


def status_of(code: str) -> int:
    """The HTTP status for ``code``; an unlisted code is a bug, answered as one."""
    return CODES.get(code, (500, ""))[0]


class Refused(Exception):
    """The service will not do what was asked; ``code`` is a key of :data:`CODES`."""

    def __init__(self, code: str, message: str) -> None:
        if code not in CODES:
            raise KeyError(f"unlisted error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return status_of(self.code)


class ConfigError(Exception):
    """Bad or missing configuration: the service refuses to start, naming the variable."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
