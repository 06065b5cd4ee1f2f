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
The envelope (the gates before it may answer, the headers on its answer) is web/envelope.py's,
the same code as Flask's. tests/test_lean_path.py sends the same requests with and without it
and compares the answers, and fails on a Flask hook the envelope does not account for.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TYPE_CHECKING

from werkzeug.datastructures import EnvironHeaders

from ...post_policy import policy_json as json_text
from ..callers import Caller, identify
from ..config import Config
from ..errors import StoreFailed, Throttled, Unavailable
from ..jsonbody import checked_fields, parse_json_object
from .api import DECIDED, PRESIGN_FIELDS, presign_answer
from .envelope import JSON, answer_headers, plain_json_length
from .kindpath import PREFIX as KIND_PREFIX
from .proxy import peer_address

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
        path = environ.get("PATH_INFO")
        if not self.applies or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        path_kind = None
        if path != "/v1/presign":  # or /kinds/<name>/v1/presign (web/kindpath.py), the kind's
            if not (path and path.startswith(KIND_PREFIX) and path.endswith("/v1/presign")):
                return self.app(environ, start_response)
            path_kind = path[len(KIND_PREFIX):-len("/v1/presign")]
            if not path_kind or "/" in path_kind:
                return self.app(environ, start_response)
        size = plain_json_length(environ, self.config.max_body)
        if size is None:
            return self.app(environ, start_response)  # the envelope's gates: Flask decides (and may refuse)
        try:  # before the body, as the view does: an unknown caller cannot make us wait for one
            who = identify(self.config, EnvironHeaders(environ), peer_address(environ))
        except Exception:  # noqa: BLE001 - Refused or unforeseen: Flask decides again and answers
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(size)
        environ["wsgi.input"] = io.BytesIO(body)  # Flask reads it again if it answers after all
        answer = self._answer(who, body, environ, path_kind) if len(body) == size else None
        if answer is None:
            return self.app(environ, start_response)
        payload = json_text(answer).encode()
        start_response("200 OK", [("Content-Type", JSON), ("Content-Length", str(len(payload))),
                                  *answer_headers(self.config, environ.get("HTTP_ORIGIN"))])  # as app.cors_headers
        return [payload]

    def _answer(self, who: Caller, body: bytes, environ: WSGIEnvironment,
                path_kind: str | None) -> dict[str, object] | None:
        """The view's answer, or None when Flask should answer (a refusal, or anything unforeseen).
        A refusal that came after work was done (the store, the credentials, the caller's share:
        a marker may be written already) is handed to Flask as decided, never done again: a frozen
        store would otherwise cost two timeouts and two markers (issue #31)."""
        try:
            return presign_answer(self.config, who, checked_fields(parse_json_object(body), PRESIGN_FIELDS),
                                  path_kind)
        except (StoreFailed, Throttled, Unavailable) as exc:
            environ[DECIDED] = exc
            return None
        except Exception:  # noqa: BLE001 - a refusal or anything unforeseen: Flask decides again and answers
            return None
