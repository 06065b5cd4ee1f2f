"""JSON responses and the one error handler: code -> status through signer.service.errors.CODES."""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, request
from werkzeug.exceptions import HTTPException

from ...errors import SigningError
from ...post_policy import policy_expiration
from ...post_policy import policy_json as json_text
from ..errors import Refused, status_of

log = logging.getLogger("signer")

# Werkzeug's own refusals (routing, body size), named in our table.
_HTTP_CODES = {404: "no_such_route", 405: "wrong_http_method", 413: "body_too_large"}

iso = policy_expiration  # YYYY-MM-DDTHH:MM:SSZ, as POST policies write their expiration


def json_response(body: Any, status: int = 200) -> Response:
    """``json.dumps``'s text (by an encoder made once): cheaper than ``jsonify``, and it keeps
    the field order."""
    return Response(json_text(body), status=status, content_type="application/json")


def is_companion_path(path: str) -> bool:
    """Uppy's Companion S3 endpoints (``/s3/params``, ``/s3/multipart…``), not Fine Uploader's."""
    return path == "/s3/params" or path == "/s3/multipart" or path.startswith("/s3/multipart/")


def is_fine_uploader_path(path: str) -> bool:
    return path.startswith("/s3/") and not is_companion_path(path)


def reason_phrase(message: str) -> str:
    """The message as an HTTP reason phrase (printable ASCII, short): Uppy shows only the
    status text of a failed Companion call."""
    text = "".join(char if " " <= char <= "~" else "?" for char in message)
    return text[:200].rstrip() or "refused"


def error_response(code: str, message: str, status: int | None = None) -> Response:
    body: dict[str, Any] = {"error": message, "code": code}
    if is_fine_uploader_path(request.path):
        body["invalid"] = True  # Fine Uploader shows 'error'
    response = json_response(body, status or status_of(code))
    if is_companion_path(request.path):
        response.status = f"{response.status_code} {reason_phrase(message)}"
    return response


def handle_refused(exc: Refused | SigningError) -> Response:
    log.info("refused %s %s: %s", request.method, request.path, exc.code)
    status = status_of(exc.code)
    if status == 403 and is_fine_uploader_path(request.path):
        status = 400  # Fine Uploader's protocol: a refused signature is a 400
    return error_response(exc.code, exc.message, status)


def handle_http_error(exc: HTTPException) -> Response:
    code = _HTTP_CODES.get(exc.code or 400, "invalid_input")
    response = error_response(code, exc.description or exc.name or "error")
    for name, value in exc.get_headers():  # e.g. Allow on a 405
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def handle_unexpected(exc: Exception) -> Response:
    log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.path)
    return error_response("internal_error", "internal error")
