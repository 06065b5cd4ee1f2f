"""What wraps every answer, defined once for the Flask app and the lean presign path (lean.py).

The headers every answer carries (CORS for a configured origin, no-store) come from
:func:`answer_headers`: Flask's ``after_request`` hook :func:`cors_headers` and the lean path
(app.py) both write exactly its list. The gates a request must pass before the lean path may answer
it (exactly ``application/json``, one plain Content-Length within ``SIGNER_MAX_BODY``, a Host
Flask's routing takes) are :func:`plain_json_length`; the Flask path's own gates read the
same ``JSON`` and ``max_body``. A concern added to the app as another hook would be skipped
on the hot path: tests/test_lean_path.py lists the app's hooks and fails on one it does not
know, so it goes here instead (or the lean path hands such requests to Flask).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from ..config import Config

if TYPE_CHECKING:  # typing only: not loaded in the workers
    from wsgiref.types import WSGIEnvironment

JSON = "application/json"

# On every answer: signatures must never be cached.
NO_STORE_HEADERS = (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"))


def answer_headers(cfg: Config, origin: str | None) -> tuple[tuple[str, str], ...]:
    """The headers added to every answer, in order: CORS when ``origin`` may call us, then no-store."""
    if origin and cfg.allows_origin(origin):
        return (("Access-Control-Allow-Origin", origin), ("Vary", "Origin"), *NO_STORE_HEADERS)
    return NO_STORE_HEADERS


def is_plain_json(environ: WSGIEnvironment) -> bool:
    """Content-Type exactly ``application/json``: a plain comparison, no parsing (the usual case)."""
    return environ.get("CONTENT_TYPE") == JSON


def plain_json_length(environ: WSGIEnvironment, max_body: int) -> int | None:
    """The body's length when the lean path may take the request, or None when Flask decides
    (and may refuse): a Content-Type other than exactly JSON; chunked, a missing, malformed or
    too large Content-Length (``max_body``, Flask's MAX_CONTENT_LENGTH); a Host Flask's routing
    may refuse."""
    if not is_plain_json(environ):
        return None
    length = environ.get("CONTENT_LENGTH") or ""
    if (
        "HTTP_TRANSFER_ENCODING" in environ
        or not (length.isascii() and length.isdigit())
        or len(length) > 18  # int() refuses over 4300 digits; werkzeug then reads the length as 0
        or int(length) > max_body
    ):
        return None  # chunked, malformed or too large: Flask says so
    if not routable(environ.get("HTTP_HOST", "")):
        return None  # Flask's routing may refuse this Host (400): it decides
    return int(length)


@lru_cache(maxsize=64)
def routable(host: str) -> bool:
    """Whether Flask's routing surely takes this Host header: werkzeug's Map.bind IDNA-encodes
    the name (lower-cased, port cut) and answers 400 BadHost when it cannot (``a..b``, a label
    over 63 letters). Werkzeug first replaces a Host with characters no host has by ``""``,
    which always encodes; such a Host is declined here all the same and Flask answers it, so a
    True here is always one for Flask too. Without a Host header Flask uses the server's own
    name. Cached by the raw header: a service sees few distinct hosts."""
    try:
        host.lower().partition(":")[0].encode("idna")
    except UnicodeError:
        return False
    return True
