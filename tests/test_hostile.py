"""A corpus of hostile requests against every endpoint: each gets a 4xx JSON answer with a
reason and nothing signed in it, never a 5xx."""

from __future__ import annotations

import json

import pytest
from freezegun import freeze_time

from tests import fineuploader_samples as fu
from tests.conftest import ACCESS_KEY, ALICE_TOKEN, BOB_TOKEN, bearer
from tests.helpers import FROZEN, NOW

KEY = "uploads/alice/x.png"
HOST = "uploads-bucket.s3.localhost:9000"
JSON_ENDPOINTS = ["/v1/presign", "/v1/post-policy", "/s3/signature?v4=true", "/v1/sign-request", "/s3/multipart",
                  "/v1/uploads/publish"]


def policy(**changes) -> dict:
    return fu.policy(NOW, **{"access_key": ACCESS_KEY, "bucket": "uploads-bucket", "key": KEY, **changes})


def headers(kind: str = "part", **changes) -> dict:
    return {"headers": fu.headers_string(kind, NOW, **{"host": HOST, "key": KEY, **changes})}


def replace_in(body: dict, old: str, new: str) -> dict:
    assert old in body["headers"]
    return {"headers": body["headers"].replace(old, new, 1)}


def with_condition(condition) -> dict:
    document = policy()
    document["conditions"].insert(0, condition)
    return document


RAW_BODIES = [
    b"", b"{", b'{"key": "uploads/alice/x.png"', b"[]", b"null", b"42", b'"string"', b"\x00\x01\x02",
    b"\xff\xfe{}", b'{"key": NaN}', b'{"key": 1e999}', b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000,
    json.dumps({"key": KEY, "key ": KEY}).encode()[:-1] + b', "key": "uploads/bob/x"}',
    b'{"key": "uploads/alice/x.png", "key": "uploads/bob/x.png"}',
]

WRONG_TYPES = [
    {"method": 5}, {"method": None}, {"key": ["uploads/alice/x"]}, {"key": {"a": 1}}, {"key": True},
    {"filename": 123}, {"content_type": 7}, {"content_length": "12"}, {"content_length": 1.5},
    {"content_length": True}, {"expires_in": [60]}, {"expires_in": 1e3}, {"max_size": "big"},
    {"headers": 42}, {"headers": ["x"]}, {"conditions": "all"}, {"expiration": 0},
]

HOSTILE_PRESIGN = [
    {"method": "PUT", "key": "uploads/alice/../bob/x.png", "content_type": "image/png", "content_length": 1},
    {"method": "PUT", "key": "uploads/alice/./x.png", "content_type": "image/png", "content_length": 1},
    {"method": "PUT", "key": "uploads/alice/x\r\nX-Amz-Acl: public-read", "content_type": "image/png", "content_length": 1},
    {"method": "PUT", "key": "uploads/alice/x\x00.png", "content_type": "image/png", "content_length": 1},
    {"method": "PUT", "key": "uploads/alice/" + "k" * 2000, "content_type": "image/png", "content_length": 1},
    {"method": "PUT", "key": "uploads/bob/x.png", "content_type": "image/png", "content_length": 1},
    {"method": "PUT", "key": "/uploads/alice/x.png", "content_type": "image/png", "content_length": 1},
    {"method": "PUT", "key": "uploads/alicex.png", "content_type": "image/png", "content_length": 1},
    {"method": "PUT", "key": KEY, "content_type": "image/png\r\nx-amz-acl: public-read", "content_length": 1},
    {"method": "PUT", "key": KEY, "content_type": "text/html", "content_length": 1},
    {"method": "PUT", "key": KEY, "content_type": "image/png", "content_length": 10**12},
    {"method": "PUT", "key": KEY, "content_type": "image/png", "content_length": 1, "expires_in": 604800},
    {"method": "PUT", "key": KEY, "content_type": "image/png", "content_length": 1, "expires_in": -1},
    {"method": "PUT", "key": KEY, "content_type": "image/png", "content_length": 1, "bucket": "other-bucket"},
    {"method": "PUT", "key": KEY, "content_type": "image/png", "content_length": 1, "host": "evil.example"},
    {"method": "POST", "key": KEY}, {"method": "GET\r\nX: y", "key": KEY}, {"method": "DELETE", "key": KEY},
    {"method": "PUT", "filename": "../../etc/passwd\n", "content_type": "image/png", "content_length": 1},
    # hostile but well formed: lone surrogates and non-ASCII digits must be refused, never a 500
    {"method": "PUT", "key": KEY, "content_type": "image/png\ud800", "content_length": 1},
    {"method": "PUT", "key": "uploads/alice/\udc80.png", "content_type": "image/png", "content_length": 1},
    {"method": "PUT", "filename": "\ud800.png", "content_type": "image/png", "content_length": 1},
    {"method": "PUT", "key": KEY, "content_type": "image/png; charset=\ud800", "content_length": 1},
]

HOSTILE_FINE_UPLOADER = [
    with_condition({"bucket": "other-bucket"}),
    with_condition(["starts-with", "$key", ""]),
    with_condition(["starts-with", "$key", "uploads/"]),
    with_condition({"success_action_redirect": "https://evil.example/"}),
    with_condition({"x-amz-website-redirect-location": "https://evil.example/"}),
    with_condition(["content-length-range", "0", "99999999999"]),
    # size ranges in forms S3 does not read as a limit, and digits that are not ASCII
    with_condition({"content-length-range": "00"}),
    with_condition(["eq", "$content-length-range", "0"]),
    with_condition(["starts-with", "$content-length-range", ""]),
    with_condition(["content-length-range", "\u0660", "\u0661\u0660"]),
    with_condition(["content-length-range", "0", "\u00b9"]),
    with_condition(["content-length-range", 5]),
    with_condition(["content-length-range", {}, {}]),
    with_condition({"content-length-range": 5}),
    with_condition({"content-length-range": {}}),
    with_condition({"content-length-range": []}),
    with_condition(["content-length-range"]),
    with_condition(["content-length-range", None, None]),
    with_condition(["content-length-range", "1", "2", "3"]),
    with_condition({}), with_condition([]), with_condition(5), with_condition(None), with_condition(["eq", 5, 5]),
    # lone surrogates in metadata names and values, key prefixes and types
    with_condition({"x-amz-meta-a\ud800": "b"}),
    with_condition({"x-amz-meta-a": "b\udc80"}),
    with_condition(["eq", "$x-amz-meta-a", "\ud800"]),
    with_condition(["starts-with", "$key", "uploads/alice/\ud800"]),
    with_condition({"Content-Type": "image/png\ud800"}),
    with_condition(["starts-with", "$Content-Type", "image/\ud800"]),
    {**policy(), "expiration": "2026-11-23T08:05:00.000Z\ud800"},
    {**policy(), "expiration": "\uff12026-11-23T08:05:00.000Z"},
    {"headers": headers()["headers"] + "\ud800"},
    {"headers": headers()["headers"].replace("partNumber=1", "partNumber=\u0661")},
    with_condition(["starts-with", "$bucket", "uploads"]),
    with_condition(["starts-with", "$x-amz-credential", ""]),
    with_condition({"acl": "public-read-write"}),
    with_condition({"x-amz-meta-evil": "a\r\nb"}),
    with_condition({"policy": "nested"}),
    policy(key="uploads/bob/x.png"), policy(key="uploads/alice/../../x"), policy(size=(0, 10**10)),
    policy(content_type="text/html"), policy(acl="public-read"),
    {**policy(), "expiration": "2027-01-01T00:00:00.000Z"},
    {**policy(), "expiration": "2020-01-01T00:00:00.000Z"},
    {**policy(), "extra": "field"},
    {"expiration": policy()["expiration"], "conditions": policy()["conditions"] * 20},
    headers(key="uploads/bob/x.png"), headers(host="evil.example:9000"), headers(region="eu-west-1"),
    headers(key="uploads/alice/../bob/x"), headers(part=99999), headers(upload_id=""),
    headers(kind="initiate", extra={"x-amz-acl": "public-read"}),
    headers(extra={"x-amz-copy-source": "uploads-bucket/uploads/bob/secret.png"}),
    replace_in(headers(), "host:", "host:evil\r\nhost:"),
    replace_in(headers(), "PUT\n", "GET\n"),
    replace_in(headers(), "partNumber=1&uploadId=VXBsb2FkSWQ", "acl="),
    replace_in(headers(), "partNumber=1&uploadId=VXBsb2FkSWQ", "x-id=CopyObject"),
    replace_in(headers(), "20261123T080000Z", "20250101T000000Z"),
    replace_in(headers(), "AWS4-HMAC-SHA256\n", "AWS4-HMAC-SHA1\n"),
    {"headers": "AWS4-HMAC-SHA256\n20261123T080000Z\n20261123/us-east-1/s3/aws4_request\n" + "0" * 64},
]


HOSTILE_SIGN_REQUEST = [
    {"method": "PUT", "key": KEY, "contentType": "text/html"},
    {"method": "PUT", "key": KEY, "contentType": "image/png\r\nx-amz-acl: public-read"},
    {"method": "PUT", "key": KEY, "contentType": "image/png\ud800"},
    {"method": "PUT", "key": "\ud800.png", "contentType": "image/png"},
    {"method": "PUT", "key": "x\x00.png", "contentType": "image/png"},
    {"method": "PUT", "key": KEY, "uploadId": "abc", "partNumber": 0},
    {"method": "PUT", "key": KEY, "uploadId": "abc", "partNumber": 10001},
    {"method": "PUT", "key": KEY, "uploadId": "abc", "partNumber": "\u0661"},
    {"method": "PUT", "key": KEY, "uploadId": "abc", "partNumber": True},
    {"method": "PUT", "key": KEY, "uploadId": "abc"},
    {"method": "PUT", "key": KEY, "uploadId": "a b\r\nX: y", "partNumber": 1},
    {"method": "PUT", "key": KEY, "uploadId": "", "partNumber": 1},
    {"method": "PUT", "key": KEY, "uploadId": 5, "partNumber": 1},
    {"method": "PUT", "key": "uploads/bob/x.png", "uploadId": "abc", "partNumber": 1},
    {"method": "DELETE", "key": "uploads/bob/x.png", "uploadId": "abc"},
    {"method": "POST", "key": "uploads/bob/x.png", "uploadId": "abc"},
    {"method": "GET", "key": "uploads/alice/../bob/x.png", "uploadId": "abc"},
    {"method": "PATCH", "key": KEY, "uploadId": "abc"},
    {"method": "GET", "key": KEY, "partNumber": 1},
    {"method": "GET", "key": KEY, "contentType": "image/png"},
    {"method": "DELETE", "key": KEY},
    {"method": "TRACE", "key": KEY},
    {"method": "PUT", "key": KEY, "contentType": "image/png", "content_length": 5},
]

COMPANION_ATTACKS = [
    ("GET", "/s3/params?filename=x.html&type=text/html", None),
    ("GET", "/s3/params?type=image/png", None),
    ("GET", "/s3/params?filename=x.png&type=image/png%0d%0aX:%20y", None),
    ("GET", "/s3/params?filename=x%00.png&type=image/png", None),
    ("POST", "/s3/multipart", {"filename": "x.html", "type": "text/html"}),
    ("POST", "/s3/multipart", {"filename": "x.png", "type": "image/png\ud800"}),
    ("POST", "/s3/multipart", {"filename": "", "type": "image/png"}),
    ("POST", "/s3/multipart", {"filename": "x.png", "type": "image/png", "key": "uploads/alice/x.png"}),
    ("GET", f"/s3/multipart/abc/1?key={KEY}", None),  # an upload id the service did not seal for this key
    ("GET", "/s3/multipart/abc.0123456789abcdef0123456789abcdef/1?key=uploads/bob/x.png", None),
    ("GET", f"/s3/multipart/abc/0?key={KEY}", None),
    ("GET", f"/s3/multipart/abc/99999?key={KEY}", None),
    ("GET", f"/s3/multipart/abc/%D9%A1?key={KEY}", None),
    ("GET", "/s3/multipart/abc/1", None),
    ("GET", f"/s3/multipart/abc/batch?key={KEY}&partNumbers=1,x", None),
    ("GET", f"/s3/multipart/abc/batch?key={KEY}", None),
    ("GET", f"/s3/multipart/abc?key={KEY}", None),
    ("DELETE", "/s3/multipart/abc?key=uploads/bob/x.png", None),
    ("POST", f"/s3/multipart/abc/complete?key={KEY}", {"parts": [{"PartNumber": 1, "ETag": "e"}]}),
    ("POST", f"/s3/multipart/abc/complete?key={KEY}", {"parts": "all"}),
    ("POST", "/s3/multipart/abc/complete?key=uploads/bob/x.png", {"parts": [{"PartNumber": 1, "ETag": "e"}]}),
    ("POST", f"/s3/multipart/abc/complete?key={KEY}", {"parts": [{"PartNumber": 1, "ETag": "e"}], "extra": 1}),
]


def assert_refused(response, allowed=range(400, 500)) -> None:
    assert response.status_code in allowed, (response.status_code, response.get_data(as_text=True)[:200])
    assert response.is_json, response.get_data(as_text=True)[:200]
    body = response.json
    assert isinstance(body.get("error"), str) and body["error"]
    assert isinstance(body.get("code"), str) and body["code"]
    text = json.dumps(body)
    for signed in ("X-Amz-Signature", "x-amz-signature", '"signature"', '"policy"', '"url"', '"fields"'):
        assert signed not in text


@freeze_time(FROZEN)
@pytest.mark.parametrize("path", JSON_ENDPOINTS)
@pytest.mark.parametrize("raw", RAW_BODIES, ids=range(len(RAW_BODIES)))
def test_malformed_json(client, path, raw) -> None:
    assert_refused(client.post(path, data=raw, content_type="application/json", headers=bearer()))


@freeze_time(FROZEN)
@pytest.mark.parametrize("path", JSON_ENDPOINTS)
@pytest.mark.parametrize("body", WRONG_TYPES, ids=range(len(WRONG_TYPES)))
def test_wrong_types(client, path, body) -> None:
    assert_refused(client.post(path, data=json.dumps(body), content_type="application/json", headers=bearer()))


@freeze_time(FROZEN)
@pytest.mark.parametrize("body", HOSTILE_PRESIGN, ids=range(len(HOSTILE_PRESIGN)))
def test_hostile_presign(client, body) -> None:
    for path in ("/v1/presign", "/v1/post-policy"):
        subset = {k: v for k, v in body.items() if path == "/v1/presign" or k not in ("method", "content_length")}
        response = client.post(path, data=json.dumps(subset), content_type="application/json", headers=bearer())
        if response.status_code == 200:  # e.g. a post-policy body without the presign-only fields
            assert path == "/v1/post-policy" and subset.get("key") == KEY
            continue
        assert_refused(response)


@freeze_time(FROZEN)
@pytest.mark.parametrize("body", HOSTILE_FINE_UPLOADER, ids=range(len(HOSTILE_FINE_UPLOADER)))
def test_hostile_fine_uploader(make_client, body) -> None:
    client = make_client(SIGNER_ENDPOINT_URL="http://s3.localhost:9000", SIGNER_ADDRESSING_STYLE="virtual")
    response = client.post("/s3/signature?v4=true", data=json.dumps(body), content_type="application/json",
                           headers=bearer())
    assert_refused(response, allowed=[400])
    assert response.json["invalid"] is True


@freeze_time(FROZEN)
@pytest.mark.parametrize("body", HOSTILE_SIGN_REQUEST, ids=range(len(HOSTILE_SIGN_REQUEST)))
def test_hostile_sign_request(client, body) -> None:
    assert_refused(client.post("/v1/sign-request", data=json.dumps(body), content_type="application/json",
                               headers=bearer()))


HOSTILE_PUBLISH_KEYS = sorted({body["key"] for body in HOSTILE_PRESIGN if "key" in body and body["key"] != KEY}) + [
    "uploads/bob/x.png", "uploads/alice/", "uploads/alice/${filename}", "public/alice/x.png", "", None, 7]


@freeze_time(FROZEN)
@pytest.mark.parametrize("key", HOSTILE_PUBLISH_KEYS, ids=range(len(HOSTILE_PUBLISH_KEYS)))
def test_hostile_publish(make_client, key) -> None:
    """Refused from the key alone, before any S3 call (this client has no store)."""
    client = make_client(SIGNER_PUBLISH_BUCKET="public-bucket")
    body = {"key": key, "filename": "x.png"} if key is not None else {"filename": "x.png"}
    assert_refused(client.post("/v1/uploads/publish", data=json.dumps(body), content_type="application/json",
                               headers=bearer()))


@freeze_time(FROZEN)
@pytest.mark.parametrize("method, path, body", COMPANION_ATTACKS, ids=range(len(COMPANION_ATTACKS)))
def test_hostile_companion(client, method, path, body) -> None:
    """Refused before any S3 call (this client has no store), with the real status and without
    Fine Uploader's "invalid" flag."""
    data = json.dumps(body) if body is not None else None
    response = client.open(path, method=method, data=data, content_type="application/json", headers=bearer())
    assert_refused(response)
    assert "invalid" not in response.json
    assert response.status.split(" ", 1)[1] not in ("BAD REQUEST", "FORBIDDEN", "NOT FOUND")  # a reason, for Uppy


@freeze_time(FROZEN)
def test_fine_uploader_version_2_is_refused_with_a_clear_message(client) -> None:
    for query in ("", "?v4=false", "?v4=1", "?v2=true"):
        response = client.post("/s3/signature" + query, data=json.dumps(policy()), content_type="application/json",
                               headers=bearer())
        assert_refused(response, allowed=[400])
        assert "version 4" in response.json["error"]


@pytest.mark.parametrize("path", JSON_ENDPOINTS + ["/s3/success", "/s3/files/x?key=uploads/alice/x&bucket=uploads-bucket",
                                                   "/v1/whoami", "/v1/objects"])
@pytest.mark.parametrize("auth", [None, "Bearer", "Bearer ", "Bearer nope", f"Token {ALICE_TOKEN}", ALICE_TOKEN,
                                  f"Bearer {ALICE_TOKEN}x", f"Bearer {BOB_TOKEN[:-2]}", "Bearer \u00e9\u00e9\u00e9",
                                  f"bearer  {ALICE_TOKEN[1:]}"])
def test_missing_or_wrong_tokens(client, path, auth) -> None:
    headers = {"Authorization": auth} if auth is not None else {}
    method = client.delete if path.startswith("/s3/files") else (client.get if path.startswith("/v1/wh") or
                                                                 path.startswith("/v1/obj") else client.post)
    response = method(path, data=json.dumps({"key": KEY}), content_type="application/json", headers=headers)
    assert_refused(response, allowed=[401])


@pytest.mark.parametrize("path", JSON_ENDPOINTS)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/jsonx", None])
def test_wrong_content_types(client, path, content_type) -> None:
    response = client.post(path, data=json.dumps({"key": KEY}), content_type=content_type, headers=bearer())
    assert_refused(response)


@pytest.mark.parametrize("path", JSON_ENDPOINTS + ["/s3/success"])
def test_bodies_over_the_cap(client, path) -> None:
    big = json.dumps({"key": KEY, "pad": "x" * (70 * 1024)})
    response = client.post(path, data=big, content_type="application/json", headers=bearer())
    assert_refused(response, allowed=[413])


# Form fields and query parameters arrive percent-encoded: invalid UTF-8 (an encoded lone
# surrogate, an overlong '/', a stray byte), NUL, CRLF, non-ASCII digits and huge values.
# (Werkzeug keeps undecodable sequences as literal text, e.g. 'uploads/alice/%FF.png': a valid key.)
HOSTILE_FORM_VALUES = ["%ED%A0%80", "%FF", "%00", "%C0%AF", "%ED%A0%80uploads/alice/x.png", "\u0661",
                       "uploads/alice/x%0D%0A.png", "uploads/alice/" + "x" * 5000, "uploads/alice/x%00.png",
                       "uploads/bob/x.png", "uploads/alice/../bob/x.png", ""]


@pytest.mark.parametrize("value", HOSTILE_FORM_VALUES, ids=range(len(HOSTILE_FORM_VALUES)))
@pytest.mark.parametrize("field", ["key", "bucket"])
def test_hostile_form_fields_and_query_parameters(make_client, field, value) -> None:
    """/s3/success and /s3/files refuse these before any call to the store (none is configured)."""
    client = make_client(SIGNER_ENDPOINT_URL="http://s3.localhost:1", SIGNER_ALLOWED_METHODS="GET,PUT,HEAD,DELETE")
    fields = {"bucket": "uploads-bucket" if field == "key" else value, "key": KEY if field == "bucket" else value}
    if field == "key" and value == "":
        fields["bucket"] = "other"
    form = f"bucket={fields['bucket']}&key={fields['key']}"
    assert_refused(client.post("/s3/success", data=form, content_type="application/x-www-form-urlencoded",
                               headers=bearer()))
    assert_refused(client.post(f"/s3/success?{form}", headers=bearer()))
    assert_refused(client.delete(f"/s3/files/x?{form}", headers=bearer()))
    assert_refused(client.post(f"/s3/signature?v4={value}", data=json.dumps(policy()),
                               content_type="application/json", headers=bearer()))


HOSTILE_HEADERS = [
    {"Authorization": "Bearer \xff\xfe"}, {"Authorization": "Bearer " + "\u00e9" * 5000},
    {"Authorization": "Bearer \u0661\u0662\u0663"}, {"Origin": "\xff"}, {"Cookie": "signer_visitor=\xff"},
    {"Cookie": "signer_visitor=" + "a" * 4000}, {"X-Forwarded-Proto": "\xff"}, {"X-Forwarded-Host": "\xff:99999999"},
    {"X-Forwarded-Prefix": "\xff"}, {"X-Forwarded-For": "\u0661.1.1.1"}, {"X-Auth-User": "\xff"},
]


@freeze_time(FROZEN)
@pytest.mark.parametrize("extra", HOSTILE_HEADERS, ids=range(len(HOSTILE_HEADERS)))
def test_hostile_header_values(make_client, extra) -> None:
    """Header values are latin-1 text from the wire: none of these makes a 5xx anywhere."""
    client = make_client(SIGNER_ALLOW_ANONYMOUS="true", SIGNER_USER_HEADER="X-Auth-User")
    for path in ("/v1/presign", "/v1/whoami", "/openapi.json", "/healthz", "/s3/signature?v4=true"):
        headers = {**bearer(), **extra}
        if path.startswith("/v1/presign") or path.startswith("/s3/"):
            response = client.post(path, data=json.dumps({"method": "GET", "key": KEY}), content_type="application/json",
                                   headers=headers)
        else:
            response = client.get(path, headers=headers)
        assert response.status_code < 500, (path, response.status_code)
        assert response.is_json


def test_odd_methods_and_paths(client) -> None:
    for method, path in [("PUT", "/v1/presign"), ("PATCH", "/s3/signature"), ("GET", "/s3/success"),
                         ("POST", "/healthz"), ("GET", "/../../etc/passwd"), ("GET", "/v1/presign%00"),
                         ("TRACE", "/v1/presign")]:
        response = client.open(path, method=method, headers=bearer())
        assert_refused(response)
