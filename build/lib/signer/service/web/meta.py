"""Health, readiness and the API description."""

from __future__ import annotations

from flask import Blueprint, Response, request

from .context import config
from .openapi import openapi_document
from .responses import json_response

meta = Blueprint("meta", __name__)


@meta.get("/healthz")
def healthz() -> Response:
    return json_response({"status": "ok"})


@meta.get("/readyz")
def readyz() -> Response:
    # A Config exists only when the environment was valid (see config.load_config).
    config()
    return json_response({"status": "ready"})


@meta.get("/openapi.json")
def openapi() -> Response:
    return json_response(openapi_document(request.script_root or "/"))
