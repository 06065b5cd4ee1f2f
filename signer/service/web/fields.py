"""Each JSON endpoint's fields, declared once: name -> JSON Schema (type, bounds, description).

The views accept exactly these names (:func:`context.json_body` refuses any other with
``unknown_field``), and ``/openapi.json`` documents the request bodies from the same tables, so
the two cannot drift. What a value must be to be *signed* is still decided by the rules
(``service/rules.py``), with messages that name the rule; the schemas say it for readers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..checksums import DIGEST_BYTES, base64_length

Schema = Mapping[str, Any]


@dataclass(frozen=True)
class Body:
    """One endpoint's JSON object: its fields, the ones required, and alternatives (one of)."""

    properties: Mapping[str, Schema]
    required: tuple[str, ...] = ()
    one_of: tuple[str, ...] = ()
    """Exactly one of these names is required (``key`` or ``filename``)."""
    description: str | None = None
    names: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", frozenset(self.properties))

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of the body, for /openapi.json."""
        schema: dict[str, Any] = {"type": "object", "additionalProperties": False}
        if self.description:
            schema["description"] = self.description
        if self.required:
            schema["required"] = list(self.required)
        if self.one_of:
            schema["oneOf"] = [{"required": [name]} for name in self.one_of]
        schema["properties"] = {name: dict(value) for name, value in self.properties.items()}
        return schema


EXPIRES = {"type": "integer", "minimum": 1, "maximum": 604800, "description": "Seconds; at most SIGNER_MAX_EXPIRES."}
KEY = {"type": "string", "minLength": 1, "description": "Object key under your prefix (see /v1/whoami)."}
FILENAME = {"type": "string", "minLength": 1, "description": "Let the service choose the key; only the extension is kept."}
KIND = {"type": "string", "description": "The upload kind (SIGNER_CONFIG, docs/kinds.md); default: `default`, "
        "or the kind of a /kinds/<name>/ path."}
CHECKSUMS = {
    f"checksum_{algorithm}": {"type": "string", "minLength": base64_length(size), "maxLength": base64_length(size),
                              "description": f"Base64 of the {algorithm.upper()} digest ({size} bytes); signed as "
                              f"x-amz-checksum-{algorithm}. At most one checksum."}
    for algorithm, size in DIGEST_BYTES.items()
}

PRESIGN = Body({
    "method": {"type": "string", "enum": ["GET", "PUT", "HEAD", "DELETE"]},
    "key": KEY,
    "filename": FILENAME,
    "content_type": {"type": "string", "description": "PUT only; signed, so send it as given."},
    "content_length": {"type": "integer", "minimum": 0, "description": "PUT only; required when SIGNER_MAX_SIZE is set."},
    **CHECKSUMS,
    "expires_in": EXPIRES,
    "kind": KIND,
}, required=("method",), one_of=("key", "filename"))

POST_POLICY = Body({
    "key": KEY,
    "filename": FILENAME,
    "content_type": {"type": "string"},
    "max_size": {"type": "integer", "minimum": 0},
    **CHECKSUMS,
    "expires_in": EXPIRES,
    "kind": KIND,
}, one_of=("key", "filename"))

SIGN_REQUEST = Body({
    "method": {"type": "string", "enum": ["GET", "PUT", "POST", "DELETE", "HEAD"]},
    "key": {"type": "string", "minLength": 1, "description": "Uppy's proposed key; outside your prefix the service "
            "chooses one and answers it in key."},
    "contentType": {"type": "string"},
    "uploadId": {"type": "string"},
    "partNumber": {"type": "integer", "minimum": 1},
    **CHECKSUMS,
    "checksum_algorithm": {"type": "string", "enum": [algorithm.upper() for algorithm in DIGEST_BYTES],
                           "description": "Creating a multipart upload only."},
    "kind": KIND,
}, required=("method", "key"))

PUBLISH = Body({
    "key": KEY,
    "filename": {"type": "string", "minLength": 1, "description": "Makes the public name readable (a-z, 0-9 and "
                 "hyphens are kept); the extension comes from the type."},
    "kind": KIND,
}, required=("key",))

COMPANION_CREATE = Body({"filename": FILENAME, "type": {"type": "string"}, "metadata": {"type": "object"}},
                        required=("filename",))

COMPANION_COMPLETE = Body({"parts": {"type": "array", "minItems": 1, "items": {
    "type": "object", "required": ["PartNumber", "ETag"],
    "properties": {"PartNumber": {"type": "integer"}, "ETag": {"type": "string"}},
}}}, required=("parts",))

FINE_UPLOADER_SIGNATURE = Body({
    "expiration": {"type": "string", "description": "A policy document's expiration (simple uploads)."},
    "conditions": {"type": "array", "description": "A policy document's conditions (simple uploads)."},
    "headers": {"type": "string", "description": "The string to sign of one multipart request (chunked uploads)."},
}, description="A policy document {expiration, conditions} or {headers: <string to sign>}.")
