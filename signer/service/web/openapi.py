"""The OpenAPI 3.1 description of the HTTP API (served at /openapi.json)."""

from __future__ import annotations

from typing import Any

from ... import __version__
from . import fields
from .statuses import CODES

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
        "invalid": {"type": "boolean", "description": "Present on Fine Uploader's /s3/* answers (not on /s3/params "
                    "and /s3/multipart*, Uppy's Companion endpoints, whose status text carries the message)."},
    },
}
_SUCCESS = {"type": "object", "required": ["success"], "properties": {"success": {"type": "boolean"}}}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}


def _signed_answer(**extra: dict[str, Any]) -> dict[str, Any]:
    """What both signing endpoints answer: the URL, bucket, key and expiry, plus ``extra``."""
    properties = {name: {"type": "string"} for name in ("url", "bucket", "key", "expires_at")}
    return {"type": "object", "required": [*extra, *properties], "properties": {**extra, **properties}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {
        str(status): {"description": "Refused", **_json({"$ref": "#/components/schemas/Error"})}
        for status in statuses
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _query(name: str, required: bool = True, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": {"type": "string", **schema}}


def _path(name: str, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1, **schema}}


_UPLOAD_ID = _path("uploadId")
_UPLOAD_KEY = _query("key", description="The key /s3/multipart answered.")
_COMPANION_ERRORS = (400, 401, 403, 404, 409, 413, 415, 502)
_URL_ANSWER = {"type": "object", "required": ["url"], "properties": {"url": {"type": "string"}, "expires": {"type": "integer"}}}


def _companion_paths(secured: list[dict[str, list[str]]]) -> dict[str, Any]:
    """Uppy's Companion S3 protocol (``new AwsS3({ companionEndpoint })``)."""
    tag = ["Uppy Companion S3"]
    return {
        "/s3/params": {"get": {
            "summary": "A POST form for a simple upload; the service chooses the key", "tags": tag, "security": secured,
            "parameters": [_query("filename", minLength=1), _query("type", required=False)],
            "responses": {"200": {"description": "Signed form", **_json({
                "type": "object", "required": ["method", "url", "fields"],
                "properties": {"method": {"type": "string"}, "url": {"type": "string"}, "fields": _STRING_MAP,
                               "key": {"type": "string"}, "expires": {"type": "integer"}, "headers": _STRING_MAP},
            })}, **_errors(*_COMPANION_ERRORS)},
        }},
        "/s3/multipart": {"post": {
            "summary": "Create a multipart upload (the service creates it, Content-Type signed)", "tags": tag,
            "security": secured,
            "requestBody": {"required": True, **_json(fields.COMPANION_CREATE.schema())},
            "responses": {"200": {"description": "Created", **_json({
                "type": "object", "required": ["key", "uploadId"],
                "properties": {"key": {"type": "string"}, "uploadId": {"type": "string"}},
            })}, **_errors(*_COMPANION_ERRORS)},
        }},
        "/s3/multipart/{uploadId}": {
            "get": {
                "summary": "The uploaded parts (Uppy resumes from them)", "tags": tag, "security": secured,
                "parameters": [_UPLOAD_ID, _UPLOAD_KEY],
                "responses": {"200": {"description": "Parts", **_json({"type": "array", "items": {
                    "type": "object", "required": ["PartNumber", "ETag", "Size"],
                    "properties": {"PartNumber": {"type": "integer"}, "ETag": {"type": "string"}, "Size": {"type": "integer"}},
                }})}, **_errors(*_COMPANION_ERRORS)},
            },
            "delete": {
                "summary": "Abort the upload (cancel)", "tags": tag, "security": secured,
                "parameters": [_UPLOAD_ID, _UPLOAD_KEY],
                "responses": {"200": {"description": "Aborted", **_json({"type": "object"})}, **_errors(*_COMPANION_ERRORS)},
            },
        },
        "/s3/multipart/{uploadId}/{partNumber}": {"get": {
            "summary": "A presigned URL for one part", "tags": tag, "security": secured,
            "parameters": [_UPLOAD_ID, _path("partNumber"), _UPLOAD_KEY],
            "responses": {"200": {"description": "Signed", **_json(_URL_ANSWER)}, **_errors(*_COMPANION_ERRORS)},
        }},
        "/s3/multipart/{uploadId}/batch": {"get": {
            "summary": "Presigned URLs for several parts (older @uppy/aws-s3-multipart)", "tags": tag, "security": secured,
            "parameters": [_UPLOAD_ID, _UPLOAD_KEY, _query("partNumbers", description="Comma-separated, at most 100.")],
            "responses": {"200": {"description": "Signed", **_json({
                "type": "object", "required": ["presignedUrls"], "properties": {"presignedUrls": _STRING_MAP},
            })}, **_errors(*_COMPANION_ERRORS)},
        }},
        "/s3/multipart/{uploadId}/complete": {"post": {
            "summary": "Complete: the service sums exactly these parts, aborts over SIGNER_MAX_SIZE, else completes",
            "tags": tag, "security": secured, "parameters": [_UPLOAD_ID, _UPLOAD_KEY],
            "requestBody": {"required": True, **_json(fields.COMPANION_COMPLETE.schema())},
            "responses": {"200": {"description": "Completed", **_json({
                "type": "object", "required": ["location", "bucket", "key"],
                "properties": {**{name: {"type": "string"} for name in ("location", "bucket", "key")},
                               "published": {"type": "object", "description": "With SIGNER_PUBLISH_ON_UPLOAD: where "
                                             "the upload was published", "required": ["key", "url"],
                                             "properties": {"key": {"type": "string"}, "url": {"type": "string"}}}},
            })}, **_errors(*_COMPANION_ERRORS, 409)},
        }},
    }


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
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description":
                                           "an API token (SIGNER_API_TOKENS) or a JWT from SIGNER_JWT_ISSUER"}},
            "schemas": {"Error": _ERROR},
        },
        "paths": {
            "/v1/presign": {
                "post": {
                    "summary": "A presigned URL for one S3 call",
                    "security": secured,
                    "requestBody": {"required": True, **_json(fields.PRESIGN.schema())},
                    "responses": {
                        "200": {"description": "Signed", **_json(_signed_answer(
                            method={"type": "string"}, headers=_STRING_MAP,
                        ))},
                        **_errors(400, 401, 403, 404, 413, 415),
                    },
                }
            },
            "/v1/post-policy": {
                "post": {
                    "summary": "A signed browser POST form (policy + fields)",
                    "security": secured,
                    "requestBody": {"required": True, **_json(fields.POST_POLICY.schema())},
                    "responses": {
                        "200": {"description": "Signed; send fields first and the file last",
                                **_json(_signed_answer(fields=_STRING_MAP))},
                        **_errors(400, 401, 403, 404, 413, 415),
                    },
                }
            },
            "/v1/sign-request": {
                "post": {
                    "summary": "One step of Uppy's signRequest mode (simple upload or any multipart step)",
                    "security": secured,
                    "requestBody": {"required": True, **_json(fields.SIGN_REQUEST.schema())},
                    "responses": {
                        "200": {"description": "Signed: {url, headers, key}, or {url, fields, key} (a POST form) for a "
                                "simple PUT", **_json({
                                    "type": "object", "required": ["url", "key"],
                                    "properties": {"url": {"type": "string"}, "key": {"type": "string"},
                                                   "headers": _STRING_MAP, "fields": _STRING_MAP},
                                })},
                        **_errors(400, 401, 403, 404, 413, 415, 502),
                    },
                }
            },
            "/v1/uploads/publish": {
                "post": {
                    "summary": "Publish the caller's own finished upload: checked, then copied by S3 to the public "
                               "bucket under a name the service chooses (SIGNER_PUBLISH_BUCKET)",
                    "security": secured,
                    "requestBody": {"required": True, **_json(fields.PUBLISH.schema())},
                    "responses": {
                        "200": {"description": "Published (copied is false when it already was)", **_json({
                            "type": "object",
                            "required": ["source_key", "bucket", "key", "url", "size", "content_type", "etag", "copied"],
                            "properties": {
                                **{name: {"type": "string"} for name in ("source_key", "bucket", "key", "url")},
                                "size": {"type": "integer"}, "content_type": {"type": ["string", "null"]},
                                "etag": {"type": ["string", "null"]}, "copied": {"type": "boolean"},
                            },
                        })},
                        **_errors(400, 401, 403, 404, 409, 413, 415, 502),
                    },
                }
            },
            "/v1/objects": {
                "get": {
                    "summary": "The caller's objects under its prefix (at most 100)",
                    "security": secured, "parameters": [_query("kind", required=False)],
                    "responses": {
                        "200": {"description": "Listing", **_json({
                            "type": "object",
                            "required": ["prefix", "objects"],
                            "properties": {
                                "prefix": {"type": "string"}, "kind": {"type": "string"}, "bucket": {"type": "string"},
                                "kinds": {"type": "array", "items": {"type": "string"},
                                          "description": "With SIGNER_CONFIG: the upload kinds this caller may use."},
                                "objects": {"type": "array", "items": {
                                    "type": "object", "required": ["key", "size"],
                                    "properties": {"key": {"type": "string"}, "size": {"type": "integer"}},
                                }},
                            },
                        })},
                        **_errors(401, 403, 404, 502),
                    },
                }
            },
            "/v1/whoami": {
                "get": {
                    "summary": "The caller's identity and the key prefix it may write under",
                    "security": secured, "parameters": [_query("kind", required=False)],
                    "responses": {
                        "200": {"description": "Identity", **_json({
                            "type": "object",
                            "required": ["identity", "key_prefix"],
                            "properties": {"identity": {"type": ["string", "null"]}, "key_prefix": {"type": "string"},
                                           "kind": {"type": "string"}, "bucket": {"type": "string"},
                                "kinds": {"type": "array", "items": {"type": "string"},
                                          "description": "With SIGNER_CONFIG: the upload kinds this caller may use."},},
                        })},
                        **_errors(401, 403, 404),
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
                    "parameters": [
                        {"name": "v4", "in": "query", "required": True, "schema": {"type": "string", "enum": ["true"]}},
                    ],
                    "requestBody": {"required": True, **_json(fields.FINE_UPLOADER_SIGNATURE.schema())},
                    "responses": {
                        "200": {"description": "Signed", **_json({
                            "type": "object",
                            "required": ["signature"],
                            "properties": {"policy": {"type": "string"}, "signature": {"type": "string"}},
                        })},
                        **_errors(400, 401, 409, 413, 415, 502),
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
                        "200": {"description": "Confirmed (with SIGNER_PUBLISH_ON_UPLOAD, published: {key, url})",
                                **_json(_SUCCESS)},
                        **_errors(400, 401, 404, 409, 413, 502),
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
                        "200": {"description": "Deleted", **_json(_SUCCESS)},
                        **_errors(400, 401, 502),
                    },
                }
            },
            **_companion_paths(secured),
            "/healthz": {
                "get": {"summary": "Process is up", "responses": {"200": {"description": "OK", **_json({"type": "object"})}}},
            },
            "/readyz": {"get": {"summary": "Configuration is valid and the signing credentials are usable", "responses": {
                "200": {"description": "Ready: the credentials' provider and expiry, the store clock's offset in seconds",
                        **_json({"type": "object"})},
                "503": {"description": "The credentials expired and could not be refreshed", **_json({"type": "object"})}}}},
        },
    }
