"""The one table code -> HTTP status, in the web layer only.

The service core raises refusals by meaning (``service/errors.py``: Malformed, NotAllowed…) and
says nothing of HTTP; here each kind gets its status. The HTTP envelope's own refusals (routing,
body size, media type, the front's deadline and caps) are :class:`Envelope` codes, each with its
status. ``/openapi.json`` lists :data:`CODES`; the library's errors are answered by their code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from ..errors import (
    KINDS,
    Conflict,
    Malformed,
    NotAllowed,
    NotFound,
    Refused,
    StoreFailed,
    Throttled,
    Unauthenticated,
    Unavailable,
)


class Envelope(Refused):
    """The HTTP request was refused before any rule was looked at (the web layer and the front)."""

    CODES: ClassVar[Mapping[str, str]] = {
        "no_such_route": "no endpoint at this path",
        "wrong_http_method": "the endpoint does not take this HTTP method",
        "request_timeout": "the request did not arrive in time (SIGNER_REQUEST_TIMEOUT)",
        "body_too_large": "the request body is above SIGNER_MAX_BODY",
        "unsupported_media_type": "the body must be application/json",
        "too_many_connections": "this address holds SIGNER_MAX_CONNECTIONS_PER_PEER connections already",
        "headers_too_large": "the request line and headers are above 16 KiB",
        "malformed_request": "the request is not well-formed HTTP/1.1",
        "uri_too_long": "the request line is above 8000 bytes",
        "app_unavailable": "the service did not answer in time; nothing was signed, try again",
        "internal_error": "a bug; nothing was signed",
    }


KIND_STATUS: Mapping[type[Refused], int] = {
    Malformed: 400, Unauthenticated: 401, NotAllowed: 403, NotFound: 404, Conflict: 409, Throttled: 429, StoreFailed: 502,
    Unavailable: 503,
}
ENVELOPE_STATUS: Mapping[str, int] = {
    "no_such_route": 404,
    "wrong_http_method": 405,
    "request_timeout": 408,
    "body_too_large": 413,
    "unsupported_media_type": 415,
    "too_many_connections": 429,
    "headers_too_large": 431,
    "malformed_request": 400,
    "uri_too_long": 414,
    "app_unavailable": 503,
    "internal_error": 500,
}

CODES: dict[str, tuple[int, str]] = dict(sorted(
    [*((code, (KIND_STATUS[kind], meaning)) for kind in KINDS for code, meaning in kind.CODES.items()),
     *((code, (ENVELOPE_STATUS[code], meaning)) for code, meaning in Envelope.CODES.items())],
    key=lambda item: item[1][0],
))
"""Every code the service can send, with its status and what it means."""


def status_of(code: str) -> int:
    """The HTTP status for ``code``; an unlisted code is a bug, answered as one."""
    return CODES.get(code, (500, ""))[0]
