"""The OpenAPI 3.1 description of the HTTP API (served at /openapi.json)."""

from __future__ import annotations

from typing import Any

from ... import __version__
from ..errors import CODES

_ERROR = {
    "type": "object",
    "required": ["error", "code"],
    "properties": {
        "error": {"type": "string", "description": "What was wrong, for a human."},
        "code": {
            "type": "string",
            "enum": list(CODES),
            "description": "Machine-readable reason; the status each code is sent with: "
            + "; ".join(f"{code} ({status}: {meaning})" for code, (status, meaning) in CODES.items()),
        },
        "invalid": {"type": "boolean", "description": "Present on /s3/* answers (Fine Uploader)."},
    },
}
_EXPIRES = {"type": "integer", "minimum": 1, "maximum": 604800, "description": "Seconds; at most SIGNER_MAX_EXPIRES."}
_KEY = {"type": "string", "minLength": 1, "description": "Object key under your prefix (see /v1/whoami)."}
_FILENAME = {"type": "string", "minLength": 1, "description": "Let the service choose the key; only the extension is kept."}


_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}


def _signed_answer(**extra: dict[str, Any]) -> dict[str, Any]:
    """What both signing endpoints answer: the URL, bucket, key and expiry, plus ``extra``."""
    properties = {name: {"type": "string"} for name in ("url", "bucket", "key", "expires_at")}
    return {"type": "object", "required": [*extra, *properties], "properties": {**extra, **properties}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {
        str(status): {"description": "Refused", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for status in statuses
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def openapi_document(server_url: str) -> dict[str, Any]:
    secured: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sigv4-signer",
            "version": __version__,
            "description": "Signs S3 uploads and downloads (AWS Signature Version 4) within configured rules.",
        },
        "servers": [{"url": server_url}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": _ERROR},
        },
        "paths": {
            "/v1/presign": {
                "post": {
                    "summary": "A presigned URL for one S3 call",
                    "security": secured,
                    "requestBody": {"required": True, **_json({
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["method"],
                        "oneOf": [{"required": ["key"]}, {"required": ["filename"]}],
                        "properties": {
                            "method": {"type": "string", "enum": ["GET", "PUT", "HEAD", "DELETE"]},
                            "key": _KEY,
                            "filename": _FILENAME,
                            "content_type": {"type": "string", "description": "PUT only; signed, so send it as given."},
                            "content_length": {"type": "integer", "minimum": 0, "description": "PUT only; required when SIGNER_MAX_SIZE is set."},
                            "expires_in": _EXPIRES,
                        },
                    })},
                    "responses": {
                        "200": {"description": "Signed", **_json(_signed_answer(
                            method={"type": "string"}, headers=_STRING_MAP,
                        ))},
                        **_errors(400, 401, 403, 413, 415),
                    },
                }
            },
            "/v1/post-policy": {
                "post": {
                    "summary": "A signed browser POST form (policy + fields)",
                    "security": secured,
                    "requestBody": {"required": True, **_json({
                        "type": "object",
                        "additionalProperties": False,
                        "oneOf": [{"required": ["key"]}, {"required": ["filename"]}],
                        "properties": {
                            "key": _KEY,
                            "filename": _FILENAME,
                            "content_type": {"type": "string"},
                            "max_size": {"type": "integer", "minimum": 0},
                            "expires_in": _EXPIRES,
                        },
                    })},
                    "responses": {
                        "200": {"description": "Signed; send fields first and the file last",
                                **_json(_signed_answer(fields=_STRING_MAP))},
                        **_errors(400, 401, 403, 413, 415),
                    },
                }
            },
            "/v1/objects": {
                "get": {
                    "summary": "The caller's objects under its prefix (at most 100)",
                    "security": secured,
                    "responses": {
                        "200": {"description": "Listing", **_json({
                            "type": "object",
                            "required": ["prefix", "objects"],
                            "properties": {
                                "prefix": {"type": "string"},
                                "objects": {"type": "array", "items": {
                                    "type": "object", "required": ["key", "size"],
                                    "properties": {"key": {"type": "string"}, "size": {"type": "integer"}},
                                }},
                            },
                        })},
                        **_errors(401, 502),
                    },
                }
            },
            "/v1/whoami": {
                "get": {
                    "summary": "The caller's identity and the key prefix it may write under",
                    "security": secured,
                    "responses": {
                        "200": {"description": "Identity", **_json({
                            "type": "object",
                            "required": ["identity", "key_prefix"],
                            "properties": {"identity": {"type": ["string", "null"]}, "key_prefix": {"type": "string"}},
                        })},
                        **_errors(401),
                    },
                }
            },
            "/v1/doctor": {
                "get": {
                    "summary": "Check the store with signed requests (bearer-token callers only); writes and "
                               "deletes probe objects under <prefix>signer-doctor-<id>/",
                    "security": secured,
                    "responses": {
                        "200": {"description": "Findings; healthy is false when any check failed", **_json({
                            "type": "object",
                            "required": ["healthy", "findings"],
                            "properties": {
                                "healthy": {"type": "boolean"},
                                "findings": {"type": "array", "items": {
                                    "type": "object", "required": ["check", "ok", "message", "fix"],
                                    "properties": {"check": {"type": "string"}, "ok": {"type": ["boolean", "null"]},
                                                   "message": {"type": "string"}, "fix": {"type": "string"}},
                                }},
                            },
                        })},
                        **_errors(401, 403),
                    },
                }
            },
            "/s3/signature": {
                "post": {
                    "summary": "Fine Uploader signature endpoint (signature.version 4)",
                    "security": secured,
                    "parameters": [{"name": "v4", "in": "query", "required": True, "schema": {"type": "string", "enum": ["true"]}}],
                    "requestBody": {"required": True, **_json({
                        "type": "object",
                        "description": "A policy document {expiration, conditions} or {headers: <string to sign>}.",
                    })},
                    "responses": {
                        "200": {"description": "Signed", **_json({
                            "type": "object",
                            "required": ["signature"],
                            "properties": {"policy": {"type": "string"}, "signature": {"type": "string"}},
                        })},
                        **_errors(400, 401, 413, 415),
                    },
                }
            },
            "/s3/success": {
                "post": {
                    "summary": "Fine Uploader uploadSuccess: confirm the object landed within the rules",
                    "security": secured,
                    "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
                        "type": "object",
                        "required": ["key", "bucket"],
                        "properties": {name: {"type": "string"} for name in ("key", "uuid", "name", "bucket", "etag")},
                    }}}},
                    "responses": {
                        "200": {"description": "Confirmed", **_json({"type": "object", "required": ["success"], "properties": {"success": {"type": "boolean"}}})},
                        **_errors(400, 401, 404, 413, 502),
                    },
                }
            },
            "/s3/files/{uuid}": {
                "delete": {
                    "summary": "Fine Uploader deleteFile",
                    "security": secured,
                    "parameters": [
                        {"name": "uuid", "in": "path", "required": True, "schema": {"type": "string"}},
                        {"name": "key", "in": "query", "required": True, "schema": {"type": "string"}},
                        {"name": "bucket", "in": "query", "required": True, "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": {"description": "Deleted", **_json({"type": "object", "required": ["success"], "properties": {"success": {"type": "boolean"}}})},
                        **_errors(400, 401, 502),
                    },
                }
            },
            "/healthz": {"get": {"summary": "Process is up", "responses": {"200": {"description": "OK", **_json({"type": "object"})}}}},
            "/readyz": {"get": {"summary": "Configuration is valid", "responses": {"200": {"description": "Ready", **_json({"type": "object"})}}}},
        },
    }
