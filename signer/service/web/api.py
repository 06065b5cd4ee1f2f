"""The plain JSON API (``/v1``): translate JSON to the request plan and the plan's result to JSON."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, request

from ...sigv4 import current_time
from .. import metrics
from ..callers import Caller
from ..checksums import CHECKSUM_FIELDS
from ..completion import guard_parts, refuse_existing
from ..config import Config
from ..doctor import healthy, run_doctor
from ..errors import NotAllowed
from ..finish import Expectation, expect_upload
from ..publish import publish, required
from ..rules import SIGN_REQUEST_FIELDS, PostPlan
from ..storage import list_objects
from . import fields
from .context import caller, caller_rules, config, json_body, pending_owner
from .responses import iso, json_response

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
    return json_response(presign_answer(cfg, caller(cfg), json_body(PRESIGN_FIELDS)))


def presign_answer(cfg: Config, who: Caller, body: dict[str, Any]) -> dict[str, Any]:
    """The answer to ``POST /v1/presign`` (or a refusal), without Flask: the view above and
    the lean path (web/lean.py) both return exactly this."""
    rules = cfg.rules.for_caller(who.folder)
    credentials = cfg.credentials  # first: a refresh may take a moment, and the date is signed after it
    now = current_time()
    plan = rules.plan_presign(now=now, valid_until=credentials.expiration, **body)
    url = plan.sign(credentials, cfg.bucket, now)
    answer = {
        "method": plan.method, "url": url.url, "headers": url.headers, "bucket": cfg.bucket.name,
        "key": plan.key, "expires_at": iso(url.expires_at),
    }
    if plan.method == "PUT" and cfg.webhook is not None:  # bounded: only reported; the hot path skips it all
        expect_upload(cfg.finish, Expectation.of(rules, who.identity, plan.key), protocol="presign",
                      signed_until=url.expires_at, clock_skew=cfg.rules.clock_skew, bounded=True, now=now,
                      owner=pending_owner(who))
    log.info("presigned %s for %s (%s)", plan.method, who.identity or "-", who.via)
    metrics.signed("presign", plan.method)
    return answer


@api.post("/v1/post-policy")
def post_policy() -> Response:
    cfg = config()
    who, rules = caller(cfg), caller_rules(cfg)
    body = json_body(fields.POST_POLICY.names)
    credentials = cfg.credentials  # first: a refresh may take a moment, and the date is signed after it
    now = current_time()
    plan = rules.plan_post_policy(now=now, valid_until=credentials.expiration, **body)
    form = plan.sign(credentials, cfg.bucket, now)
    expect_upload(cfg.finish, Expectation.of(rules, who.identity, plan.key), protocol="post-policy",
                  signed_until=form.expires_at, clock_skew=cfg.rules.clock_skew, bounded=True, now=now, owner=pending_owner(who))
    log.info("signed POST policy for %s (%s)", who.identity or "-", who.via)
    metrics.signed("post-policy", "POST")
    return json_response({
        "url": form.url, "fields": form.fields, "bucket": cfg.bucket.name, "key": plan.key,
        "expires_at": iso(form.expires_at),
    })


@api.post("/v1/sign-request")
def sign_request() -> Response:
    """Uppy's ``signRequest`` mode: one S3 step of a simple or multipart upload. A simple PUT
    is answered with a POST form (its policy carries the size range); a complete is signed
    only after the uploaded parts fit the size limit, and the object is checked afterwards."""
    who = caller()
    body = json_body(fields.SIGN_REQUEST.names)
    cfg = config()
    rules = cfg.rules.for_caller(who.folder, SIGN_REQUEST_FIELDS)
    credentials = cfg.credentials  # first: a refresh may take a moment, and the date is signed after it
    now = current_time()
    step = rules.plan_sign_request(
        method=body.get("method"), key=body.get("key"), content_type=body.get("contentType"),
        upload_id=body.get("uploadId"), part_number=body.get("partNumber"), now=now,
        valid_until=credentials.expiration, checksums={name: body.get(name) for name in CHECKSUM_FIELDS},
        checksum_algorithm=body.get("checksum_algorithm"),
    )
    if step.operation == "complete":
        assert step.upload_id is not None
        if cfg.rules.deny_overwrite:  # refused here, not by the store after a marker is written (issue #25)
            refuse_existing(credentials, cfg.bucket, step.plan.key, timeout=cfg.s3_timeout)
        guard_parts(credentials, cfg.bucket, rules, step.plan.key, step.upload_id, timeout=cfg.s3_timeout)
    log.info("signed %s for %s (%s)", step.operation, who.identity or "-", who.via)
    expected = Expectation.of(rules, who.identity, step.plan.key)
    if isinstance(step.plan, PostPlan):
        form = step.plan.sign(credentials, cfg.bucket, now)
        expect_upload(cfg.finish, expected, protocol="sign-request", signed_until=form.expires_at,
                      clock_skew=cfg.rules.clock_skew, bounded=True, now=now, owner=pending_owner(who))
        metrics.signed("sign-request", "POST")
        return json_response({"url": form.url, "fields": form.fields, "key": step.plan.key})
    url = step.plan.sign(credentials, cfg.bucket, now)
    if step.operation == "complete":  # the browser sends it: checked once it has happened
        expect_upload(cfg.finish, expected, protocol="sign-request", signed_until=url.expires_at,
                      clock_skew=cfg.rules.clock_skew, upload_id=step.upload_id, now=now,
                      owner=pending_owner(who))
    metrics.signed("sign-request", step.plan.method)
    return json_response({"url": url.url, "headers": url.headers, "key": step.plan.key})


@api.post("/v1/uploads/publish")
def publish_upload() -> Response:
    """Copy the caller's own finished upload to the public bucket (server-side, checked first)."""
    cfg = config()
    who, rules = caller(cfg), caller_rules(cfg)
    body = json_body(fields.PUBLISH.names)
    settings = required(cfg.publish)
    published = publish(cfg.finish, settings, rules, who.identity, body.get("key"), body.get("filename"))
    log.info("published an upload for %s (%s)%s", who.identity or "-", who.via, "" if published.copied else ", again")
    return json_response(published.as_json())


@api.get("/v1/objects")
def objects() -> Response:
    """The caller's own objects (at most 100), for the demo page and quick checks."""
    caller()
    cfg, prefix = config(), caller_rules().prefix
    items = [item for item in list_objects(cfg.credentials, cfg.bucket, prefix, timeout=cfg.s3_timeout)
             if not cfg.rules.is_reserved_key(str(item["key"]))]  # the service's own markers are not the caller's
    return json_response({"prefix": prefix, "objects": items})


@api.get("/v1/whoami")
def whoami() -> Response:
    """Lets a client (the demo page, Fine Uploader's key function) learn where it may write."""
    who = caller()
    return json_response({"identity": who.identity, "key_prefix": caller_rules().prefix})


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
