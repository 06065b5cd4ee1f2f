"""Health, readiness and the API description."""

from __future__ import annotations

from flask import Blueprint, Response, request

from .context import config
from .openapi import openapi_document
from .responses import iso, json_response

meta = Blueprint("meta", __name__)


@meta.get("/healthz")
def healthz() -> Response:
    return json_response({"status": "ok"})


@meta.get("/readyz")
def readyz() -> Response:
    """Ready when the configuration is valid (a Config exists only then) and the signing
    credentials are usable; says which provider and when they expire, never a secret, and how
    far the store's clock is from this worker's, as its last sweep read it (``store_clock_offset_s``:
    the finish step names markers in the store's time, so a skew delays nothing; beyond 15 minutes
    the store refuses every signature). With SIGNER_JWT_ISSUER, the issuer's key set: how many keys,
when last fetched, and ``state`` ``stale`` when the last fetch failed and the last good keys serve."""
    cfg = config()
    status = cfg.credentials_status()
    offset = cfg.finish.clock.offset
    credentials = {
        "provider": status.provider,
        "expires_at": iso(status.expiration) if status.expiration else None,
    }
    answer: dict[str, object] = {}
    if cfg.jwt is not None:  # JWTs are one kind of caller: stale or missing keys are said, not a 503
        if cfg.jwt.keys.status().state == "none":
            cfg.jwt.keys.refresh_soon()  # beside this answer, at most once per 30 s: the next one knows
        keys = cfg.jwt.keys.status()
        answer["jwt"] = {"issuer": keys.issuer, "keys": keys.keys, "state": keys.state,
                         "fetched_at": iso(keys.fetched_at) if keys.fetched_at else None, "error": keys.error}
    if not status.usable:
        return json_response({"status": "unavailable", "code": "credentials_unavailable",
                              "error": status.error or "no valid credentials", "credentials": credentials,
                              "store_clock_offset_s": offset, **answer}, 503)
    return json_response({"status": "ready", "credentials": credentials, "store_clock_offset_s": offset, **answer})


@meta.get("/openapi.json")
def openapi() -> Response:
    return json_response(openapi_document(request.script_root or "/"))
