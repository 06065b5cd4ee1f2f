"""``POST /v1/presign`` without Flask's machinery, for the one answer that is hot: a success.

Under gunicorn most of a presign request's CPU went to the server and to Flask (request and
response objects, contexts, routing, hooks), not to deciding and signing (README, Speed).
This WSGI layer answers the plain case itself with the very same parts as the Flask view:
the strict JSON parser, ``identify()``, ``api.presign_answer`` (the plan and the signature),
the same headers. Anything else goes to Flask untouched: other paths, a missing or too
large Content-Length, a Transfer-Encoding, a Content-Type other than exactly
``application/json``, a Host Flask's routing refuses, anonymous visitors (their cookie is
Flask's), and every refusal or error, which Flask then decides again and answers through the
one error handler. So this path only ever answers 200. Like the view, it knows the caller
before it reads the body: an unknown caller is refused without waiting for one.
tests/test_lean_path.py sends the same requests with and without it and compares the answers.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

from werkzeug.datastructures import EnvironHeaders

from ...post_policy import policy_json as json_text
from ..callers import Caller, identify
from ..config import Config
from ..jsonbody import checked_fields, parse_json_object
from .api import PRESIGN_FIELDS, presign_answer
from .proxy import peer_address
from .responses import NO_STORE_HEADERS

if TYPE_CHECKING:  # typing only: not loaded in the workers
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

class LeanPresign:
    """WSGI middleware in front of the Flask app: answers a successful ``POST /v1/presign``
    itself and hands every other request to ``app`` as it came (the body put back)."""

    def __init__(self, app: WSGIApplication, config: Config) -> None:
        self.app = app
        self.config = config
        self.applies = not config.allow_anonymous  # anonymous visitors need Flask's cookie handling

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if (
            not self.applies
            or environ.get("PATH_INFO") != "/v1/presign"
            or environ.get("REQUEST_METHOD") != "POST"
            or environ.get("CONTENT_TYPE") != "application/json"
        ):
            return self.app(environ, start_response)
        length = environ.get("CONTENT_LENGTH") or ""
        if (
            "HTTP_TRANSFER_ENCODING" in environ
            or not (length.isascii() and length.isdigit())
            or len(length) > 18  # int() refuses over 4300 digits; werkzeug then reads the length as 0
            or int(length) > self.config.max_body
        ):
            return self.app(environ, start_response)  # chunked, malformed or too large: Flask says so
        if not _routable(environ.get("HTTP_HOST", "")):
            return self.app(environ, start_response)  # Flask's routing may refuse this Host (400): it decides
        try:  # before the body, as the view does: an unknown caller cannot make us wait for one
            who = identify(self.config, EnvironHeaders(environ), peer_address(environ))
        except Exception:  # noqa: BLE001 - Refused or unforeseen: Flask decides again and answers
            return self.app(environ, start_response)
        size = int(length)
        body = environ["wsgi.input"].read(size)
        environ["wsgi.input"] = io.BytesIO(body)  # Flask reads it again if it answers after all
        answer = self._answer(who, body) if len(body) == size else None
        if answer is None:
            return self.app(environ, start_response)
        payload = json_text(answer).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        origin = environ.get("HTTP_ORIGIN")
        if origin and self.config.allows_origin(origin):
            headers += [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
        start_response("200 OK", [*headers, *NO_STORE_HEADERS])  # as json_response, then app.cors_headers
        return [payload]

    def _answer(self, who: Caller, body: bytes) -> dict[str, object] | None:
        """The view's answer, or None when Flask should answer (a refusal, or anything unforeseen)."""
        try:
            return presign_answer(self.config, who, checked_fields(parse_json_object(body), PRESIGN_FIELDS))
        except Exception:  # noqa: BLE001 - a refusal or anything unforeseen: Flask decides again and answers
            return None


@lru_cache(maxsize=64)
def _routable(host: str) -> bool:
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
