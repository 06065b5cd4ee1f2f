"""The Flask application: parse -> authenticate -> rules -> sign -> JSON. Nothing else.

All signing decisions live in :mod:`signer.rules` and :mod:`signer.fineuploader`;
this layer only translates HTTP to calls and exceptions to JSON errors.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from .callers import Caller, identify
from .config import Config, load_config
from .errors import InvalidInput, SigningError
from .fineuploader import Signer, parse_json_object, sign_multipart_headers, sign_policy_document
from .openapi import openapi_document
from .post_policy import presign_post
from .presign import presign_url
from .proxy import PEER_ADDRESS, TrustedProxies
from .s3client import delete_object, head_object, list_objects
from .sigv4 import current_time

log = logging.getLogger("signer")

api = Blueprint("api", __name__)
fineuploader = Blueprint("fineuploader", __name__)
meta = Blueprint("meta", __name__)


def config() -> Config:
    return current_app.extensions["signer_config"]


def signer() -> Signer:
    cfg = config()
    return Signer(cfg.credentials, cfg.bucket, cfg.rules)


def caller() -> Caller:
    """Authenticate once per request (constant-time token comparison in callers.py)."""
    if "caller" not in g:
        g.caller = identify(config(), request.headers, request.environ.get(PEER_ADDRESS, request.remote_addr))
    return g.caller


def json_body(allowed: set[str]) -> dict[str, Any]:
    """A strict JSON object body with only the ``allowed`` fields."""
    if request.mimetype != "application/json":
        raise InvalidInput("Content-Type must be application/json", code="unsupported_media_type")
    body = parse_json_object(request.get_data(cache=True))
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return body


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def chosen_key(body: dict[str, Any], identity: str | None, now: datetime) -> str:
    """The caller proposes a ``key`` (checked) or a ``filename`` (we choose the key)."""
    rules = config().rules
    if ("key" in body) == ("filename" in body):
        raise InvalidInput("give exactly one of 'key' and 'filename'")
    if "key" in body:
        return rules.check_key(body["key"], identity)
    return rules.new_key(body["filename"], identity, now)


# --- the JSON API ------------------------------------------------------------------

@api.post("/v1/presign")
def presign() -> Response:
    who = caller()
    body = json_body({"method", "key", "filename", "content_type", "content_length", "expires_in"})
    cfg, now = config(), current_time()
    rules = cfg.rules
    method = rules.check_method(body.get("method", "PUT"))
    if method != "PUT" and "filename" in body:
        raise InvalidInput(f"{method} needs an existing object's 'key', not a 'filename'")
    key = chosen_key(body, who.identity, now)
    headers: dict[str, str] = {}
    if method == "PUT":
        content_type = rules.check_content_type(body.get("content_type"))
        if content_type:
            headers["Content-Type"] = content_type
        if "content_length" in body:
            headers["Content-Length"] = str(rules.check_size(body["content_length"], "content_length"))
        elif rules.max_size is not None:
            raise InvalidInput(
                f"content_length is required: uploads are limited to {rules.max_size} bytes and the "
                "signed length is how S3 enforces it",
                code="content_length_required",
            )
    elif "content_type" in body or "content_length" in body:
        raise InvalidInput(f"content_type and content_length apply to PUT, not {method}")
    expires_in = rules.check_expires(body.get("expires_in"))
    url = presign_url(
        cfg.credentials, cfg.bucket, key, method=method, expires_in=expires_in, headers=headers, now=now
    )
    log.info("presigned %s for %s (%s)", method, who.identity or "-", who.via)
    return jsonify(
        method=method, url=url.url, headers=url.headers, bucket=cfg.bucket.name, key=key,
        expires_at=iso(url.expires_at),
    )


@api.post("/v1/post-policy")
def post_policy() -> Response:
    who = caller()
    body = json_body({"key", "filename", "content_type", "max_size", "expires_in"})
    cfg, now = config(), current_time()
    rules = cfg.rules
    key = chosen_key(body, who.identity, now)
    content_type = rules.check_content_type(body.get("content_type"))
    if "max_size" in body:
        length_range: tuple[int, int] | None = rules.size_range(0, body["max_size"])
    else:
        length_range = (0, rules.max_size) if rules.max_size is not None else None
    form = presign_post(
        cfg.credentials, cfg.bucket, key, expires_in=rules.check_expires(body.get("expires_in")),
        content_type=content_type, content_length_range=length_range, now=now,
    )
    log.info("signed POST policy for %s (%s)", who.identity or "-", who.via)
    return jsonify(url=form.url, fields=form.fields, bucket=cfg.bucket.name, key=key, expires_at=iso(form.expires_at))


@api.get("/v1/objects")
def objects() -> Response:
    """The caller's own objects (at most 100), for the demo page and quick checks."""
    who = caller()
    cfg = config()
    prefix = cfg.rules.prefix_for(who.identity)
    items = list_objects(cfg.credentials, cfg.bucket, prefix, timeout=cfg.s3_timeout)
    return jsonify(prefix=prefix, objects=items)


@api.get("/v1/whoami")
def whoami() -> Response:
    """Lets a client (the demo page, Fine Uploader's key function) learn where it may write."""
    who = caller()
    return jsonify(identity=who.identity, key_prefix=config().rules.prefix_for(who.identity))


# --- Fine Uploader -----------------------------------------------------------------

@fineuploader.post("/s3/signature")
def fine_uploader_signature() -> Response:
    who = caller()
    if request.args.get("v4") != "true":
        raise InvalidInput(
            "only signature version 4 is supported: set signature.version to 4 in Fine Uploader",
            code="signature_version",
        )
    body = json_body({"headers", "expiration", "conditions"})
    now = current_time()
    if "headers" in body:
        if len(body) != 1:
            raise InvalidInput("a 'headers' request must have no other fields")
        answer = sign_multipart_headers(body["headers"], signer(), who.identity, now)
    else:
        answer = sign_policy_document(body, signer(), who.identity, now)
    log.info("signed Fine Uploader %s for %s", "headers" if "headers" in body else "policy", who.identity or "-")
    return jsonify(answer)


def _form_field(name: str) -> str:
    value = request.values.get(name)
    if not value:
        raise InvalidInput(f"'{name}' is required")
    return value


def _check_bucket(name: str) -> None:
    if name != config().bucket.name:
        raise InvalidInput(f"bucket must be {config().bucket.name!r}", code="bucket_not_allowed")


@fineuploader.post("/s3/success")
def fine_uploader_success() -> Response:
    """Confirm the upload landed, and remove it if it breaks the rules after all
    (a chunked upload's total size cannot be bounded by its signatures)."""
    who = caller()
    cfg = config()
    _check_bucket(_form_field("bucket"))
    key = cfg.rules.check_key(_form_field("key"), who.identity)
    info = head_object(cfg.credentials, cfg.bucket, key, timeout=cfg.s3_timeout)
    if info is None:
        raise InvalidInput("the object was not found in the bucket", code="not_found")
    try:
        cfg.rules.check_size(info.size, "uploaded object size")
        cfg.rules.check_content_type(info.content_type, required=False)
    except SigningError:
        delete_object(cfg.credentials, cfg.bucket, key, timeout=cfg.s3_timeout)
        raise
    return jsonify(success=True, key=key, size=info.size)


@fineuploader.delete("/s3/files/<uuid>")
def fine_uploader_delete(uuid: str) -> Response:
    who = caller()
    cfg = config()
    _check_bucket(_form_field("bucket"))
    key = cfg.rules.check_key(_form_field("key"), who.identity)
    delete_object(cfg.credentials, cfg.bucket, key, timeout=cfg.s3_timeout)
    return jsonify(success=True, key=key)


# --- health and description ---------------------------------------------------------

@meta.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@meta.get("/readyz")
def readyz() -> Response:
    # A Config exists only when the environment was valid (see config.load_config).
    return jsonify(status="ready")


@meta.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document(request.host_url.rstrip("/") + request.script_root))


# --- errors and CORS ----------------------------------------------------------------

def _error(status: int, code: str, message: str) -> Response:
    body: dict[str, Any] = {"error": message, "code": code}
    if request.path.startswith("/s3/"):
        body["invalid"] = True  # Fine Uploader shows 'error'
    response = jsonify(body)
    response.status_code = status
    return response


def handle_signing_error(exc: SigningError) -> Response:
    log.info("refused %s %s: %s", request.method, request.path, exc.code)
    status = exc.status
    if status == 403 and request.path.startswith("/s3/"):
        status = 400  # Fine Uploader's protocol: a refused signature is a 400
    return _error(status, exc.code, exc.message)


def handle_http_error(exc: HTTPException) -> Response:
    code = (exc.name or "error").lower().replace(" ", "_")
    response = _error(exc.code or 400, code, exc.description or exc.name or "error")
    for name, value in exc.get_headers():  # e.g. Allow on a 405
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def handle_unexpected(exc: Exception) -> Response:
    log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.path)
    return _error(500, "internal_error", "internal error")


_CORS_ALLOW_HEADERS = "Authorization, Content-Type, Cache-Control, X-Requested-With"


def _origin_allowed(origin: str | None) -> bool:
    origins = config().cors_origins
    return bool(origin) and (origin in origins or "*" in origins)


def cors_preflight() -> Response | None:
    if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
        return None
    if not _origin_allowed(request.headers.get("Origin")):
        return _error(403, "cors_origin_not_allowed", "this origin may not call the signing service")
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = _CORS_ALLOW_HEADERS
    response.headers["Access-Control-Max-Age"] = "600"
    return response


def cors_headers(response: Response) -> Response:
    origin = request.headers.get("Origin")
    if _origin_allowed(origin):
        response.headers["Access-Control-Allow-Origin"] = origin  # type: ignore[assignment]
        response.vary.add("Origin")
    response.headers["Cache-Control"] = "no-store"  # signatures must never be cached
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def create_app(cfg: Config | None = None) -> Flask:
    """The application factory; configuration is read once, here."""
    cfg = cfg or load_config()
    app = Flask(__name__)
    app.extensions["signer_config"] = cfg
    app.config["MAX_CONTENT_LENGTH"] = cfg.max_body
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.before_request(cors_preflight)
    app.after_request(cors_headers)
    app.register_error_handler(SigningError, handle_signing_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
    for blueprint in (api, fineuploader, meta):
        app.register_blueprint(blueprint)
    app.wsgi_app = TrustedProxies(app.wsgi_app, cfg.trusted_proxies)  # type: ignore[method-assign]
    if cfg.demo_page:
        from .demo import demo

        app.register_blueprint(demo)
    if cfg.allow_anonymous:
        log.warning("SIGNER_ALLOW_ANONYMOUS is on: ANYONE who can reach this service may upload under %r",
                    cfg.rules.key_prefix)
    return app
