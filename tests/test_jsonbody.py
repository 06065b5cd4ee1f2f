"""Strict JSON request bodies (signer/service/jsonbody.py): what the standard json module takes,
less duplicate keys, NaN and Infinity, lone surrogates and null fields; through the API (the
shortcuts: duplicates found by counting, the surrogate walk only when the body has such an
escape) and called directly, against json.loads as the oracle."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signer.service.errors import Refused
from signer.service.jsonbody import checked_fields, parse_json_object
from tests.test_lean_path import PUT, post_raw


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


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), max_size=8), json_values, max_size=6),
       st.booleans())
def test_what_json_loads_reads_is_read_the_same(document: dict, ascii_only: bool) -> None:
    """Every object without duplicate keys, NaN or lone surrogates reads as json.loads reads it,
    written with or without \\u escapes."""
    body = json.dumps(document, ensure_ascii=ascii_only).encode("utf-8")
    assert parse_json_object(body) == json.loads(body)


@pytest.mark.parametrize(("body", "code", "words"), [
    (b'{"a": {"b": 1, "b": 2}}', "invalid_json", "'b' twice"),
    (b'{"a": [{"c": 1, "c": 1}]}', "invalid_json", "'c' twice"),
    (b'{"a": Infinity}', "invalid_json", "Infinity"),
    (b'{"a": "\xff"}', "invalid_json", "UTF-8"),
    (b"", "invalid_json", "UTF-8 JSON"),
    (b"[" * 100000 + b"]" * 100000, "invalid_json", "nested too deeply"),
    (b"null", "invalid_json", "must be a JSON object"),
    (b'{"a": ["x", {"b": "\\udc00"}]}', "invalid_input", "field 'a'"),
    (b'{"a\\ud800": 1}', "invalid_input", "a field name"),
])
def test_refusals_name_the_problem(body: bytes, code: str, words: str) -> None:
    with pytest.raises(Refused) as refused:
        parse_json_object(body)
    assert refused.value.code == code and words in refused.value.message


def test_fields_outside_the_allowed_set_or_null_are_refused() -> None:
    assert checked_fields({"a": 1, "b": "x"}, {"a", "b", "c"}) == {"a": 1, "b": "x"}
    with pytest.raises(Refused) as unknown:
        checked_fields({"z": 1, "a": 1, "y": 2}, {"a", "b"})
    assert unknown.value.code == "unknown_field" and unknown.value.message.startswith("unknown field(s): y, z; allowed: a, b")
    with pytest.raises(Refused) as null:
        checked_fields({"a": None, "b": None}, {"a", "b"})
    assert null.value.code == "invalid_input" and null.value.message.startswith("a, b must not be null")
