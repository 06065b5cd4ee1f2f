"""Per-request values for the blueprints: the configuration, the caller, the strict JSON body."""

from __future__ import annotations

import ipaddress
from collections.abc import Set
from typing import Any

from flask import Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from ..callers import VISITOR_COOKIE, VISITOR_COOKIE_MAX_AGE, Caller, identify
from ..config import Config
from ..errors import Malformed, Refused
from ..finish import Finish
from ..flows import Asking
from ..jsonbody import checked_fields, parse_json_object
from ..kinds import Kind
from ..rules import JSON_FIELDS, CallerRules, FieldNames
from .envelope import JSON, is_plain_json
from .proxy import peer_address
from .statuses import Envelope


def config() -> Config:
    cfg: Config = current_app.extensions["signer_config"]
    return cfg


def caller(cfg: Config | None = None) -> Caller:
    """Authenticate once per request (constant-time token comparison in callers.py).
    A view that already holds the configuration passes it (one lookup per request)."""
    if "caller" not in g:
        g.caller = identify(cfg or config(), request.headers, peer_address(request.environ),
                            request.cookies.get(VISITOR_COOKIE))
    found: Caller = g.caller
    return found


def pending_owner(who: Caller) -> str:
    """Whom an upload's marker counts against (SIGNER_MAX_PENDING_PER_CALLER): the caller, by its
    folder (an API token and an app user of one name are two callers, a gateway's and a JWT's user
    of one name one), or, for anonymous visitors, who can take a new identity at will, their address
    (an IPv6 client's /64, which one host usually has whole)."""
    if who.via != "anonymous":
        return who.folder
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return "anonymous"
    network = ipaddress.ip_network(f"{address}/64", strict=False) if address.version == 6 else address
    return f"anonymous@{network}"


KIND_PATH = "signer.kind"
"""Where :class:`KindPaths` leaves the kind a ``/kinds/<name>/…`` path names."""


def kind(cfg: Config | None = None, named: object = None) -> Kind:
    """The upload kind of this request: named by its path (``/kinds/<name>/``) or by a JSON
    body's ``kind`` (``named``), else ``default``; 404 when unknown, 403 when not this caller's.
    Decided once per request; a JSON view passes its body's name on the first call."""
    if "kind" not in g:
        cfg = cfg or config()
        g.kind = choose_kind(cfg, caller(cfg).via, request.environ.get(KIND_PATH), named)
    found: Kind = g.kind
    return found


def choose_kind(cfg: Config, via: str, from_path: str | None, from_body: object) -> Kind:
    """The path's kind and the body's must agree when both are given (the lean path calls this too)."""
    if from_path is not None and from_body is not None and from_body != from_path:
        raise Malformed("invalid_input", "kind in the body differs from the kind in the path")
    return cfg.kinds.choose(from_body if from_body is not None else from_path, via)


def kind_of_body(body: dict[str, Any]) -> object:
    """A JSON body's ``kind``, taken out of it (the plans do not take it)."""
    return body.pop("kind", None)


def asking(cfg: Config | None = None, named: object = None) -> Asking:
    """Who asks under which kind, for a flow (signer/service/flows.py)."""
    cfg = cfg or config()
    who = caller(cfg)
    return Asking.of(cfg, who, kind(cfg, named), pending_owner(who))


def kind_finish(cfg: Config | None = None) -> Finish:
    """The finish step of this request's kind (its bucket, its prefix)."""
    cfg = cfg or config()
    return cfg.finish_of(kind(cfg))


def caller_rules(cfg: Config | None = None, names: FieldNames = JSON_FIELDS) -> CallerRules:
    """The rules of this request's kind, bound to the caller's folder."""
    cfg = cfg or config()
    return kind(cfg).rules.for_caller(caller(cfg).folder, names)


NEW_VISITOR_HEADER = "Signer-Anonymous"
NEW_VISITOR_NOTE = ("new visitor: no token and no visitor cookie were sent, so this request was a new anonymous "
                    "caller with its own folder; send Authorization: Bearer <token>, or keep the cookie")


def issue_visitor_cookie(response: Response) -> Response:
    """In anonymous mode, a visitor without a valid cookie gets one on any answer (the demo
    page included): HttpOnly, SameSite=Lax, Secure over https. The id inside is random and
    signed (signer/service/callers.py); the web layer only carries it."""
    if not config().allow_anonymous:
        return response
    who = g.get("caller")
    if who is None:
        try:
            who = caller()
        except Refused:
            return response
    if who.new_cookie:
        response.set_cookie(
            VISITOR_COOKIE, who.new_cookie, max_age=VISITOR_COOKIE_MAX_AGE, path=request.script_root or "/",
            secure=request.is_secure, httponly=True, samesite="Lax",
        )
        # A client that keeps no cookies (curl without a token) is a new visitor on every request, each
        # in a folder of its own: say so, where it can be seen (issue #29, item 4).
        response.headers[NEW_VISITOR_HEADER] = NEW_VISITOR_NOTE
    return response


def json_body(allowed: Set[str]) -> dict[str, Any]:
    """A strict JSON object body with only the ``allowed`` fields, none of them null."""
    if not is_plain_json(request.environ) and request.mimetype != JSON:
        raise Envelope("unsupported_media_type", "Content-Type must be application/json")
    try:
        body = request.get_data(cache=True)
    except HTTPException:
        raise  # the body cap (413), answered as such
    except Exception:  # noqa: BLE001 - the server's body reader refused the framing (e.g. a trailer it will not take)
        raise Envelope("malformed_request", "the request body is not well-formed HTTP/1.1") from None
    return checked_fields(parse_json_object(body), allowed)
