"""The plain JSON API (``/v1``): translate JSON to the request plan and the plan's result to JSON."""

from __future__ import annotations

import logging

from flask import Blueprint, Response

from ...sigv4 import current_time
from ..storage import list_objects
from .context import caller, caller_rules, config, json_body
from .responses import iso, json_response

log = logging.getLogger("signer")
api = Blueprint("api", __name__)


@api.post("/v1/presign")
def presign() -> Response:
    cfg = config()
    who, rules = caller(cfg), caller_rules(cfg)
    body = json_body({"method", "key", "filename", "content_type", "content_length", "expires_in"})
    now = current_time()
    plan = rules.plan_presign(now=now, **body)
    url = plan.sign(cfg.credentials, cfg.bucket, now)
    log.info("presigned %s for %s (%s)", plan.method, who.identity or "-", who.via)
    return json_response({
        "method": plan.method, "url": url.url, "headers": url.headers, "bucket": cfg.bucket.name,
        "key": plan.key, "expires_at": iso(url.expires_at),
    })


@api.post("/v1/post-policy")
def post_policy() -> Response:
    cfg = config()
    who, rules = caller(cfg), caller_rules(cfg)
    body = json_body({"key", "filename", "content_type", "max_size", "expires_in"})
    now = current_time()
    plan = rules.plan_post_policy(now=now, **body)
    form = plan.sign(cfg.credentials, cfg.bucket, now)
    log.info("signed POST policy for %s (%s)", who.identity or "-", who.via)
    return json_response({
        "url": form.url, "fields": form.fields, "bucket": cfg.bucket.name, "key": plan.key,
        "expires_at": iso(form.expires_at),
    })


@api.get("/v1/objects")
def objects() -> Response:
    """The caller's own objects (at most 100), for the demo page and quick checks."""
    caller()
    cfg, prefix = config(), caller_rules().prefix
    items = list_objects(cfg.credentials, cfg.bucket, prefix, timeout=cfg.s3_timeout)
    return json_response({"prefix": prefix, "objects": items})


@api.get("/v1/whoami")
def whoami() -> Response:
    """Lets a client (the demo page, Fine Uploader's key function) learn where it may write."""
    who = caller()
    return json_response({"identity": who.identity, "key_prefix": caller_rules().prefix})
