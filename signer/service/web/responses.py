"""JSON responses and the error handlers: each refusal's status from web/statuses.py, and each
protocol's error shape (:class:`ErrorShape`) registered on the blueprint that serves it, so no
handler guesses the protocol from the URL."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from ...errors import SigningError
from ...post_policy import policy_expiration
from ...post_policy import policy_json as json_text
from .. import metrics
from ..errors import Refused
from .statuses import CODES, status_of

log = logging.getLogger("signer")

# Werkzeug's own refusals (routing, body size), named in our table.
_HTTP_CODES = {404: "no_such_route", 405: "wrong_http_method", 413: "body_too_large"}

iso = policy_expiration  # YYYY-MM-DDTHH:MM:SSZ, as POST policies write their expiration


def json_response(body: Any, status: int = 200) -> Response:
    """``json.dumps``'s text (by an encoder made once): cheaper than ``jsonify``, and it keeps
    the field order."""
    return Response(json_text(body), status=status, content_type="application/json")


@dataclass(frozen=True)
class ErrorShape:
    """How one protocol answers a refusal. ``invalid``: Fine Uploader shows ``error`` when the
    JSON has ``"invalid": true``. ``forbidden_as``: Fine Uploader's protocol answers a refused
    signature with 400, not 403. ``reason_in_status``: Uppy shows only the status text of a
    failed Companion call, so the message goes there."""

    invalid: bool = False
    forbidden_as: int | None = None
    reason_in_status: bool = False


PLAIN = ErrorShape()


def reason_phrase(message: str) -> str:
    """The message as an HTTP reason phrase (printable ASCII, short)."""
    text = "".join(char if " " <= char <= "~" else "?" for char in message)
    return text[:200].rstrip() or "refused"


def error_response(code: str, message: str, shape: ErrorShape = PLAIN) -> Response:
    """Every refusal the app answers comes here, and is counted by its code (a code of the table)."""
    metrics.refused(code if code in CODES else "internal_error")
    body: dict[str, Any] = {"error": message, "code": code}
    if shape.invalid:
        body["invalid"] = True
    status = status_of(code)
    if status == 403 and shape.forbidden_as is not None:
        status = shape.forbidden_as
    response = json_response(body, status)
    if shape.reason_in_status:
        response.status = f"{response.status_code} {reason_phrase(message)}"
    return response


_UNROUTED = "signer_unrouted_shapes"


def _unrouted_shape(shape: ErrorShape) -> ErrorShape:
    """A request no route took (404, 405) reaches no blueprint's handlers: it gets the shape of
    the blueprint that declared its path as its own (``paths``), else ``shape``."""
    if request.blueprint is not None:
        return shape
    path = request.path
    owners: list[tuple[tuple[str, ...], ErrorShape]] = current_app.extensions.get(_UNROUTED, [])
    for paths, owner in owners:
        if any(path == own or path.startswith(own + "/") for own in paths):
            return owner
    return shape


def register_error_handlers(target: Flask | Blueprint, shape: ErrorShape = PLAIN, *, paths: tuple[str, ...] = ()) -> None:
    """The handlers for refusals (the service's and the library's), HTTP errors and bugs, in
    ``shape``: on the app (plain JSON) and on each blueprint whose protocol has its own. A
    blueprint's ``paths`` are its URL space: a request there that no route takes is answered in
    its shape too."""
    if paths and isinstance(target, Blueprint):
        target.record_once(lambda state: state.app.extensions.setdefault(_UNROUTED, []).append((paths, shape)))

    def refused(exc: Refused | SigningError) -> Response:
        log.info("refused %s %s: %s", request.method, request.path, exc.code)
        return error_response(exc.code, exc.message, shape=shape)

    def http_error(exc: HTTPException) -> Response:
        code = _HTTP_CODES.get(exc.code or 400, "invalid_input")
        response = error_response(code, exc.description or exc.name or "error", shape=_unrouted_shape(shape))
        for name, value in exc.get_headers():  # e.g. Allow on a 405
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    def unexpected(exc: Exception) -> Response:
        log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.path)
        return error_response("internal_error", "internal error", shape=shape)

    target.register_error_handler(Refused, refused)
    target.register_error_handler(SigningError, refused)
    target.register_error_handler(HTTPException, http_error)
    target.register_error_handler(Exception, unexpected)
