"""The plain JSON API (``/v1``): parse the JSON, call one flow (signer/service/flows.py), answer JSON."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, request

from ..callers import Caller
from ..config import Config
from ..doctor import healthy, run_doctor
from ..errors import NotAllowed
from ..flows import Asking
from ..flows import objects as list_own
from ..flows import post_policy as sign_post_policy
from ..flows import presign as sign_presign
from ..flows import publish_upload as publish_own
from ..flows import sign_request as sign_step
from ..flows import whoami as who_is
from . import fields
from .context import asking, caller, choose_kind, config, json_body, kind_of_body
from .responses import json_response

DECIDED = "signer.presign_refused"
"""Where the lean path (web/lean.py) leaves a refusal that came after work was done."""
log = logging.getLogger("signer")
api = Blueprint("api", __name__)


PRESIGN_FIELDS = fields.PRESIGN.names


@api.post("/v1/presign")
def presign() -> Response:
    decided = request.environ.get(DECIDED)
    if decided is not None:  # the lean path did the work and was refused after it: answered, not done again
        raise decided
    cfg = config()
    caller(cfg)  # authenticate before reading the body
    body = json_body(PRESIGN_FIELDS)
    return json_response(sign_presign(asking(cfg, kind_of_body(body)), body))


def presign_answer(cfg: Config, who: Caller, body: dict[str, Any], path_kind: str | None = None) -> dict[str, Any]:
    """The answer to ``POST /v1/presign`` (or a refusal), without Flask, for the lean path
    (web/lean.py): the same flow as the view above. Never an anonymous visitor (Flask's cookie)."""
    chosen = choose_kind(cfg, who.via, path_kind, body.pop("kind", None))
    return sign_presign(Asking.of(cfg, who, chosen, who.folder), body)  # pending_owner, for a caller never anonymous


@api.post("/v1/post-policy")
def post_policy() -> Response:
    caller()
    body = json_body(fields.POST_POLICY.names)
    return json_response(sign_post_policy(asking(named=kind_of_body(body)), body))


@api.post("/v1/sign-request")
def sign_request() -> Response:
    """Uppy's ``signRequest`` mode: one S3 step of a simple or multipart upload."""
    caller()
    body = json_body(fields.SIGN_REQUEST.names)
    return json_response(sign_step(asking(named=kind_of_body(body)), body))


@api.post("/v1/uploads/publish")
def publish_upload() -> Response:
    """Copy the caller's own finished upload to the kind's public bucket (server-side, checked first)."""
    caller()
    body = json_body(fields.PUBLISH.names)
    return json_response(publish_own(asking(named=kind_of_body(body)), body))


@api.get("/v1/objects")
def objects() -> Response:
    """The caller's own objects (at most 100) of the kind (``?kind=`` or the path), for the demo page."""
    return json_response(list_own(asking(named=request.args.get("kind"))))


@api.get("/v1/whoami")
def whoami() -> Response:
    """Lets a client (the demo page, Fine Uploader's key function) learn where it may write, and which kinds."""
    return json_response(who_is(asking(named=request.args.get("kind"))))


@api.get("/v1/doctor")
def doctor() -> Response:
    """The store checks of ``python -m signer doctor``, for bearer-token callers only: they
    write probe objects outside the caller's prefix, so no gateway user or visitor may."""
    who = caller()
    if who.via != "token":
        raise NotAllowed("doctor_not_allowed", "only bearer-token callers may run the store checks")
    findings = run_doctor(config())
    log.info("doctor run by %s: %s", who.identity, "healthy" if healthy(findings) else "problems found")
    return json_response({"healthy": healthy(findings), "findings": [finding.as_json() for finding in findings]})
