"""signer/service/web/fields.py: each JSON endpoint's fields are declared once. Checked from the
outside: every field /openapi.json documents for a request body is accepted by that endpoint, and
any other name is refused with unknown_field, so the document and the validation cannot drift."""

from __future__ import annotations

import pytest

from tests.conftest import bearer

SAMPLE_PATHS = {"{uploadId}": "upload-1"}
"""Values for the path parameters of the documented paths."""


def json_bodies(document: dict) -> list[tuple[str, str, dict]]:
    """(method, path, request body schema) of every operation taking a JSON object."""
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if schema is not None:
                for name, value in SAMPLE_PATHS.items():
                    path = path.replace(name, value)
                found.append((method, path, schema))
    return found


def send(client, method: str, path: str, body: dict):
    query = "?v4=true" if path == "/s3/signature" else "?key=uploads/alice/a.png" if "/s3/multipart/" in path else ""
    return client.open(path + query, method=method.upper(), json=body, headers=bearer())


def code_of(answer) -> str | None:
    return (answer.get_json(silent=True) or {}).get("code")


@pytest.fixture
def document(client) -> dict:
    return client.get("/openapi.json").json


def test_every_json_endpoint_declares_its_fields(document) -> None:
    bodies = json_bodies(document)
    assert {path for _, path, _ in bodies} >= {"/v1/presign", "/v1/post-policy", "/v1/sign-request",
                                               "/v1/uploads/publish", "/s3/signature", "/s3/multipart",
                                               "/s3/multipart/upload-1/complete"}
    for method, path, schema in bodies:
        assert schema.get("additionalProperties") is False and schema["properties"], (method, path)
        for name, field in schema["properties"].items():
            assert field.get("type"), (path, name)


def test_every_documented_field_is_accepted(client, document) -> None:
    for method, path, schema in json_bodies(document):
        for name in schema["properties"]:
            answer = send(client, method, path, {name: None})
            assert code_of(answer) != "unknown_field", (method, path, name, answer.get_json())


def test_every_other_field_is_refused_as_unknown(client, document) -> None:
    for method, path, schema in json_bodies(document):
        for name in ("bucket", "Key", "acl", "x-amz-date", "unknown"):
            if name in schema["properties"]:
                continue
            answer = send(client, method, path, {name: "x"})
            assert (answer.status_code, code_of(answer)) == (400, "unknown_field"), (method, path, name)
