"""The lean request path refuses what the strict one did: the shortcuts in context.py
(duplicate keys found by counting, the surrogate walk only when the body has such an escape,
the plain Content-Type comparison first) and the CORS hooks reading the environ directly."""

from __future__ import annotations

import json

import pytest

from tests.conftest import bearer

PUT = {"method": "PUT", "key": "uploads/alice/cat.png", "content_type": "image/png", "content_length": 10}


def post_raw(client, text: str, content_type: str = "application/json", **headers: str):
    return client.post("/v1/presign", data=text.encode("utf-8"), headers={**bearer(), "Content-Type": content_type,
                                                                            **headers})


@pytest.mark.parametrize(
    "text",
    [
        '{"method": "PUT", "method": "GET", "key": "uploads/alice/a.png", "content_type": "a/b", "content_length": 1}',
        '{"method": "PUT", "key": "a.png", "content_type": "image/png", "content_length": 1, "key": "b.png"}',
        '{"method": "PUT", "key": "uploads/alice/cat.png", "content_type": "image/png", "content_length": NaN}',
        '{"method": "PUT", "key": "uploads/alice/cat.png", "content_type": "image/png", "content_length": -Infinity}',
        '["not", "an", "object"]',
    ],
)
def test_not_strict_json_is_refused(client, text: str) -> None:
    response = post_raw(client, text)
    assert response.status_code == 400 and response.json["code"] == "invalid_json"


@pytest.mark.parametrize("escape", ["\\ud800", "\\uDFFF", "\\uDbff"])
@pytest.mark.parametrize("where", ["key", "name"])
def test_lone_surrogate_escapes_are_refused_in_any_case(client, escape: str, where: str) -> None:
    body = json.dumps(PUT)
    text = body.replace("cat.png", f"cat{escape}.png") if where == "key" else body[:-1] + f', "x{escape}": 1}}'
    response = post_raw(client, text)
    assert response.status_code == 400 and response.json["code"] == "invalid_input"


def test_a_valid_surrogate_pair_and_an_escaped_backslash_pass(client) -> None:
    pair = post_raw(client, json.dumps(PUT).replace("cat.png", "cat\\ud83d\\udcf7.png"))
    assert pair.status_code == 200 and pair.json["key"] == "uploads/alice/cat\U0001f4f7.png"
    backslash = post_raw(client, json.dumps({**PUT, "key": "uploads/alice/c\\ud800.png"}))  # a backslash, then 'ud800'
    assert backslash.status_code == 200


def test_content_type_with_parameters_and_other_types(client) -> None:
    assert post_raw(client, json.dumps(PUT), "application/json; charset=utf-8").status_code == 200
    assert post_raw(client, json.dumps(PUT), "Application/JSON").status_code == 200
    assert post_raw(client, json.dumps(PUT), "text/plain").status_code == 415


def test_cors_hooks_without_and_with_an_origin(client) -> None:
    plain = post_raw(client, json.dumps(PUT))
    assert "Access-Control-Allow-Origin" not in plain.headers
    assert plain.headers["Cache-Control"] == "no-store" and plain.headers["X-Content-Type-Options"] == "nosniff"
    allowed = post_raw(client, json.dumps(PUT), Origin="https://app.example")
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    not_preflight = client.options("/v1/presign", headers={"Origin": "https://app.example"})
    assert not_preflight.status_code != 204  # no Access-Control-Request-Method: not a preflight
