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
    credentials are usable; says which provider and when they expire, never a secret."""
    status = config().credentials_status()
    credentials = {
        "provider": status.provider,
        "expires_at": iso(status.expiration) if status.expiration else None,
    }
    if not status.usable:
        return json_response({"status": "unavailable", "code": "credentials_unavailable",
                              "error": status.error or "no valid credentials", "credentials": credentials}, 503)
    return json_response({"status": "ready", "credentials": credentials})


@meta.get("/openapi.json")
def openapi() -> Response:
    return json_response(openapi_document(request.script_root or "/"))
