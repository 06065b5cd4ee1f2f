"""The Flask application: parse -> authenticate -> plan -> sign -> JSON. Nothing else.

Every decision about what to sign lives in :mod:`signer.service.rules` and the protocol
adapters; this layer only translates HTTP to calls and refusals to JSON errors.
"""

from __future__ import annotations

import logging
import os

from flask import Flask, Response, request

from ..config import WARNED, Config, load_config
from .api import api
from .companion import companion
from .context import config, issue_visitor_cookie
from .envelope import answer_headers
from .fineuploader import fineuploader
from .kindpath import KindPaths
from .lean import LeanPresign
from .meta import meta
from .proxy import TrustedProxies
from .responses import error_response, register_error_handlers

log = logging.getLogger("signer")

_CORS_ALLOW_HEADERS = "Authorization, Content-Type, Cache-Control, X-Requested-With"


def cors_preflight() -> Response | None:
    environ = request.environ  # plain dict lookups: this runs before every request
    if environ["REQUEST_METHOD"] != "OPTIONS" or "HTTP_ACCESS_CONTROL_REQUEST_METHOD" not in environ:
        return None
    if not config().allows_origin(request.headers.get("Origin")):
        return error_response("cors_origin_not_allowed", "this origin may not call the signing service")
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = _CORS_ALLOW_HEADERS
    response.headers["Access-Control-Max-Age"] = "600"
    return response


def cors_headers(response: Response) -> Response:
    """The envelope's headers (envelope.answer_headers) on every answer Flask gives, as the lean path writes them."""
    for name, value in answer_headers(config(), request.environ.get("HTTP_ORIGIN")):
        if name == "Vary":
            response.vary.add(value)  # joined to any Vary the view set
        else:
            response.headers[name] = value
    return response


def create_app(cfg: Config | None = None, *, lean: bool = True) -> Flask:
    """The application factory; configuration is read once, here. ``lean=False`` leaves out
    the lean presign path (web/lean.py), so tests can compare the answers with and without it."""
    cfg = cfg or load_config()
    app = Flask(__name__)
    app.extensions["signer_config"] = cfg
    _ = cfg.jwt  # the issuer's key cache, made once before the worker's threads share it
    app.config["MAX_CONTENT_LENGTH"] = cfg.max_body
    app.before_request(cors_preflight)
    app.after_request(cors_headers)
    app.after_request(issue_visitor_cookie)
    register_error_handlers(app)  # plain JSON; Fine Uploader's and Companion's blueprints have their own shapes
    for blueprint in (api, companion, fineuploader, meta):
        app.register_blueprint(blueprint)
    kinds = KindPaths(app.wsgi_app)
    inner = LeanPresign(kinds, cfg) if lean else kinds
    app.wsgi_app = TrustedProxies(inner, cfg.trusted_proxies)  # type: ignore[method-assign]
    if cfg.demo_page:
        from .demo import demo

        app.register_blueprint(demo)
    if cfg.allow_anonymous:
        log.warning("SIGNER_ALLOW_ANONYMOUS is on: ANYONE who can reach this service may upload, each visitor "
                    "under %r (bound to a signed cookie)", cfg.rules.prefix_for("anonymous/<id>"))
    if os.environ.get(WARNED) != "1":  # gunicorn's master said them once already
        for warning in cfg.warnings:
            log.warning("%s", warning)
    return app
