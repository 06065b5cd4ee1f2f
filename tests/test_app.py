"""Every endpoint and every refusal through Flask's test client; signatures against botocore."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC
from urllib.parse import parse_qs, urlsplit

import pytest
from freezegun import freeze_time

from signer.service.config import load_config
from signer.service.errors import ConfigError
from tests import fineuploader_samples as fu
from tests.conftest import ACCESS_KEY, ALICE_TOKEN, BOB_TOKEN, SECRET_KEY, bearer, env_with
from tests.helpers import BUCKET, CREDS, FROZEN
from tests.oracle import client_for
from tests.test_fineuploader import botocore_signature


def post_json(client, path, body, headers=None, **kwargs):
    return client.post(path, data=json.dumps(body), content_type="application/json", headers=bearer() if headers is None else headers, **kwargs)


# --- /v1/presign --------------------------------------------------------------------

@freeze_time(FROZEN)
def test_presign_put_matches_botocore(client) -> None:
    response = post_json(client, "/v1/presign", {
        "method": "PUT", "key": "uploads/alice/cat.png", "content_type": "image/png", "content_length": 1234,
        "expires_in": 600,
    })
    assert response.status_code == 200, response.json
    body = response.json
    expected = client_for(CREDS, BUCKET).generate_presigned_url(
        "put_object",
        Params={"Bucket": "uploads-bucket", "Key": "uploads/alice/cat.png", "ContentType": "image/png", "ContentLength": 1234,
                "IfNoneMatch": "*"},  # SIGNER_OVERWRITE=deny, the default
        ExpiresIn=600,
    )
    assert body == {
        "method": "PUT",
        "url": expected,
        "headers": {"Content-Type": "image/png", "Content-Length": "1234", "If-None-Match": "*"},
        "bucket": "uploads-bucket",
        "key": "uploads/alice/cat.png",
        "expires_at": "2026-11-23T08:10:00Z",
    }
    assert response.headers["Cache-Control"] == "no-store"


@freeze_time(FROZEN)
def test_presign_get_matches_botocore(client) -> None:
    response = post_json(client, "/v1/presign", {"method": "GET", "key": "uploads/alice/ü b+%.png"})
    expected = client_for(CREDS, BUCKET).generate_presigned_url(
        "get_object", Params={"Bucket": "uploads-bucket", "Key": "uploads/alice/ü b+%.png"}, ExpiresIn=300
    )
    assert response.json["url"] == expected
    assert response.json["headers"] == {}


@freeze_time(FROZEN)
def test_presign_with_filename_chooses_the_key(client) -> None:
    response = post_json(client, "/v1/presign", {"method": "PUT", "filename": "My Cat.PNG", "content_type": "image/png", "content_length": 5})
    key = response.json["key"]
    assert re.fullmatch(r"uploads/alice/2026/11/23/[0-9a-f-]{36}\.png", key)
    assert urlsplit(response.json["url"]).path == f"/{key}"


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"method": "PUT", "key": "uploads/bob/x.png", "content_type": "image/png", "content_length": 1}, 403, "key_not_allowed"),
        ({"method": "PUT", "key": "uploads/alice/../bob/x.png", "content_type": "image/png", "content_length": 1}, 403, "key_not_allowed"),
        ({"method": "PUT", "key": "uploads/alice/x\r\n.png", "content_type": "image/png", "content_length": 1}, 403, "key_not_allowed"),
        ({"method": "PUT", "key": "uploads/alice/" + "a" * 1020, "content_type": "image/png", "content_length": 1}, 403, "key_not_allowed"),
        ({"method": "PUT", "key": "uploads/alice/x.html", "content_type": "text/html", "content_length": 1}, 403, "content_type_not_allowed"),
        ({"method": "PUT", "key": "uploads/alice/x.png", "content_length": 1}, 403, "content_type_not_allowed"),
        ({"method": "PUT", "key": "uploads/alice/x.png", "content_type": "image/png"}, 400, "content_length_required"),
        ({"method": "PUT", "key": "uploads/alice/x.png", "content_type": "image/png", "content_length": 1000001}, 403, "too_large"),
        ({"method": "PUT", "key": "uploads/alice/x.png", "content_type": "image/png", "content_length": -1}, 400, "invalid_input"),
        ({"method": "PUT", "key": "uploads/alice/x.png", "content_type": "image/png", "content_length": 1, "expires_in": 901}, 403, "expiry_too_long"),
        ({"method": "PUT", "key": "uploads/alice/x.png", "content_type": "image/png", "content_length": 1, "expires_in": 0}, 400, "invalid_expiry"),
        ({"method": "PUT", "key": "uploads/alice/x.png", "content_type": "image/png", "content_length": 1, "expires_in": "60"}, 400, "invalid_expiry"),
        ({"method": "DELETE", "key": "uploads/alice/x.png"}, 403, "method_not_allowed"),
        ({"method": "PATCH", "key": "uploads/alice/x.png"}, 403, "method_not_allowed"),
        ({"method": ["PUT"], "key": "uploads/alice/x.png"}, 400, "invalid_input"),
        ({"method": "GET", "filename": "x.png"}, 400, "invalid_input"),
        ({"method": "GET", "key": "uploads/alice/x.png", "content_type": "image/png"}, 400, "invalid_input"),
        ({"method": "PUT", "key": "uploads/alice/x.png", "filename": "x.png"}, 400, "invalid_input"),
        ({"method": "PUT"}, 400, "missing_field"),
        ({"key": "uploads/alice/x.png"}, 400, "missing_field"),
        ({"method": "PUT", "key": 7}, 400, "invalid_key"),
        ({"method": "PUT", "key": "uploads/alice/x.png", "bucket": "other"}, 400, "unknown_field"),
        ({"method": "PUT", "key": "uploads/alice/x.png", "content_length": None}, 400, "invalid_input"),
    ],
)
def test_presign_refusals(client, body, status, code) -> None:
    response = post_json(client, "/v1/presign", body)
    assert response.status_code == status, response.json
    assert response.json["code"] == code
    assert "url" not in response.json and "signature" not in json.dumps(response.json).lower()


def test_delete_can_be_allowed(make_client) -> None:
    client = make_client(SIGNER_ALLOWED_METHODS="GET,PUT,DELETE")
    assert post_json(client, "/v1/presign", {"method": "DELETE", "key": "uploads/alice/x.png"}).status_code == 200


def test_no_size_limit_means_no_length_needed(make_client) -> None:
    client = make_client(SIGNER_MAX_SIZE=None, SIGNER_ALLOWED_CONTENT_TYPES=None, SIGNER_OVERWRITE="allow")
    response = post_json(client, "/v1/presign", {"method": "PUT", "key": "uploads/alice/x.bin"})
    assert response.status_code == 200
    assert response.json["headers"] == {}  # allow: today's behaviour, nothing but what was asked


# --- /v1/post-policy ---------------------------------------------------------------

@freeze_time(FROZEN)
def test_post_policy_matches_botocore_and_rules(client) -> None:
    response = post_json(client, "/v1/post-policy", {"key": "uploads/alice/cat.png", "content_type": "image/png"})
    assert response.status_code == 200, response.json
    body = response.json
    expected = client_for(CREDS, BUCKET).generate_presigned_post(
        "uploads-bucket", "uploads/alice/cat.png",
        Fields={"Content-Type": "image/png"},
        Conditions=[["content-length-range", 0, 1000000], {"Content-Type": "image/png"}],
        ExpiresIn=300,
    )
    assert body["url"] == expected["url"]
    assert body["fields"] == expected["fields"]
    assert list(body["fields"])[0] == "key" and list(body["fields"])[-1] == "x-amz-signature"
    policy = json.loads(base64.b64decode(body["fields"]["policy"]))
    assert ["content-length-range", 0, 1000000] in policy["conditions"]
    assert body["expires_at"] == "2026-11-23T08:05:00Z"


@freeze_time(FROZEN)
def test_post_policy_smaller_max_size(client) -> None:
    response = post_json(client, "/v1/post-policy", {"filename": "a.pdf", "content_type": "application/pdf", "max_size": 10})
    policy = json.loads(base64.b64decode(response.json["fields"]["policy"]))
    assert ["content-length-range", 0, 10] in policy["conditions"]
    assert response.json["key"].startswith("uploads/alice/2026/11/23/")


@pytest.mark.parametrize(
    "body, status",
    [
        ({"key": "uploads/alice/x.png", "content_type": "image/png", "max_size": 1000001}, 403),
        ({"key": "uploads/alice/x.png", "content_type": "text/plain"}, 403),
        ({"key": "uploads/alice/x.png"}, 403),
        ({"key": "uploads/x.png", "content_type": "image/png"}, 403),
        ({"key": "uploads/alice/x.png", "content_type": "image/png", "expires_in": 10**6}, 403),
        ({"key": "uploads/alice/x.png", "content_type": "image/png", "acl": "public-read"}, 400),
    ],
)
def test_post_policy_refusals(client, body, status) -> None:
    response = post_json(client, "/v1/post-policy", body)
    assert response.status_code == status
    assert "fields" not in response.json


# --- authentication ------------------------------------------------------------------

GOOD_PUT = {"method": "PUT", "key": "uploads/alice/x.png", "content_type": "image/png", "content_length": 1}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": f"Basic {ALICE_TOKEN}"},
     {"Authorization": "Bearer "}, {"Authorization": ALICE_TOKEN}, {"Authorization": f"Bearer {ALICE_TOKEN[:-1]}"}],
)
def test_missing_or_wrong_tokens_get_401(client, headers) -> None:
    response = post_json(client, "/v1/presign", GOOD_PUT, headers=headers)
    assert response.status_code == 401
    assert response.json["code"] == "unauthorized"
    assert ALICE_TOKEN not in response.get_data(as_text=True)


def test_token_names_are_identities(client) -> None:
    assert post_json(client, "/v1/presign", GOOD_PUT, headers=bearer(BOB_TOKEN)).status_code == 403
    assert client.get("/v1/whoami", headers=bearer(BOB_TOKEN)).json == {"identity": "bob", "key_prefix": "uploads/bob/"}


def test_gateway_user_header_only_from_trusted_proxies(make_client) -> None:
    client = make_client(SIGNER_USER_HEADER="X-Auth-User", SIGNER_TRUSTED_PROXIES="10.0.0.5")
    as_gateway = {"REMOTE_ADDR": "10.0.0.5"}
    as_stranger = {"REMOTE_ADDR": "203.0.113.9"}
    response = client.get("/v1/whoami", headers={"X-Auth-User": "carol"}, environ_base=as_gateway)
    assert response.json == {"identity": "carol", "key_prefix": "uploads/user/carol/"}
    # A forged header from anyone else is ignored: no identity, no token, no entry.
    assert client.get("/v1/whoami", headers={"X-Auth-User": "carol"}, environ_base=as_stranger).status_code == 401
    forged = client.get("/v1/whoami", headers={"X-Auth-User": "carol", **bearer()}, environ_base=as_stranger)
    assert forged.json["identity"] == "alice"
    bad = client.get("/v1/whoami", headers={"X-Auth-User": "../bob"}, environ_base=as_gateway)
    assert bad.status_code == 401
    for name in ("anonymous", "Anonymous", "ANONYMOUS"):
        reserved = client.get("/v1/whoami", headers={"X-Auth-User": name}, environ_base=as_gateway)
        assert reserved.status_code == 401, name


def test_gateway_users_and_token_names_never_share_a_folder(make_client) -> None:
    """A gateway user named like a token (alice) gets <prefix>user/alice/, never the token's
    <prefix>alice/; and when a trusted gateway names a user, that user wins over a token."""
    client = make_client(SIGNER_USER_HEADER="X-Auth-User", SIGNER_TRUSTED_PROXIES="10.0.0.5")
    as_gateway = {"REMOTE_ADDR": "10.0.0.5"}
    gateway_alice = client.get("/v1/whoami", headers={"X-Auth-User": "alice"}, environ_base=as_gateway).json
    token_alice = client.get("/v1/whoami", headers=bearer()).json
    assert gateway_alice["key_prefix"] == "uploads/user/alice/"
    assert token_alice["key_prefix"] == "uploads/alice/"
    body = {"method": "PUT", "key": "uploads/alice/x.png", "content_type": "image/png", "content_length": 1}
    response = client.post("/v1/presign", data=json.dumps(body), content_type="application/json",
                           headers={"X-Auth-User": "alice"}, environ_base=as_gateway)
    assert response.status_code == 403 and response.json["code"] == "key_not_allowed"
    both = client.get("/v1/whoami", headers={"X-Auth-User": "carol", **bearer()}, environ_base=as_gateway).json
    assert both == {"identity": "carol", "key_prefix": "uploads/user/carol/"}


@pytest.mark.parametrize("name", ["user", "User", "anonymous", "Anonymous", "ANONYMOUS", "uSeR"])
def test_reserved_token_names_in_any_case(name) -> None:
    with pytest.raises(ConfigError, match="SIGNER_API_TOKENS"):
        load_config(env_with(SIGNER_API_TOKENS=f"{name}:{ALICE_TOKEN}"))


def test_anonymous_mode(make_client, caplog) -> None:
    with caplog.at_level("WARNING"):
        client = make_client(SIGNER_API_TOKENS=None, SIGNER_ALLOW_ANONYMOUS="true")
    assert "ANYONE" in caplog.text
    first = client.get("/v1/whoami").json
    assert first["identity"].startswith("anon-") and first["key_prefix"].startswith("uploads/anonymous/")


def visitor_cookie(response) -> str | None:
    """The visitor cookie a response sets, checking its attributes."""
    headers = [value for value in response.headers.getlist("Set-Cookie") if value.startswith("signer_visitor=")]
    if not headers:
        return None
    (header,) = headers
    attributes = [part.strip().lower() for part in header.split(";")]
    assert "httponly" in attributes and "samesite=lax" in attributes and "path=/" in attributes
    return header.split(";", 1)[0].split("=", 1)[1]


def test_each_anonymous_visitor_has_its_own_folder(make_client) -> None:
    """Two visitors never share a prefix; each keeps its own through its signed cookie and
    cannot sign for the other's keys; a forged or tampered cookie is a new visitor."""
    first, second = (make_client(SIGNER_API_TOKENS=None, SIGNER_ALLOW_ANONYMOUS="true") for _ in range(2))
    answer_a, answer_b = first.get("/v1/whoami"), second.get("/v1/whoami")
    prefix_a, prefix_b = answer_a.json["key_prefix"], answer_b.json["key_prefix"]
    assert prefix_a != prefix_b and prefix_a.startswith("uploads/anonymous/") and prefix_b.startswith("uploads/anonymous/")
    cookie_a = visitor_cookie(answer_a)
    assert cookie_a and "Secure" not in answer_a.headers["Set-Cookie"]
    assert answer_a.headers["Signer-Anonymous"].startswith("new visitor: no token and no visitor cookie")
    again = first.get("/v1/whoami")  # the test client sends the cookie back
    assert again.json["key_prefix"] == prefix_a and visitor_cookie(again) is None
    assert "Signer-Anonymous" not in again.headers  # a visitor who keeps its cookie is told nothing
    body = {"method": "PUT", "key": prefix_a + "x.png", "content_type": "image/png", "content_length": 1}
    assert post_json(first, "/v1/presign", body, headers={}).status_code == 200
    assert post_json(second, "/v1/presign", body, headers={}).status_code == 403
    first.set_cookie("signer_visitor", cookie_a[:-2] + ("AA" if not cookie_a.endswith("AA") else "BB"))
    tampered = first.get("/v1/whoami")
    assert tampered.json["key_prefix"] != prefix_a and visitor_cookie(tampered)


def test_visitor_cookie_is_issued_on_any_answer_secure_over_https(make_client) -> None:
    client = make_client(SIGNER_API_TOKENS=None, SIGNER_ALLOW_ANONYMOUS="true")
    assert visitor_cookie(client.get("/healthz"))
    secure = make_client(SIGNER_API_TOKENS=None, SIGNER_ALLOW_ANONYMOUS="true").get(
        "/healthz", base_url="https://signer.example")
    assert "secure" in [part.strip().lower() for part in secure.headers["Set-Cookie"].split(";")]
    # Token callers and services without anonymous mode get no cookie.
    assert visitor_cookie(make_client().get("/healthz")) is None
    assert visitor_cookie(make_client(SIGNER_ALLOW_ANONYMOUS="true").get("/v1/whoami", headers=bearer())) is None


def test_visitor_cookie_holds_across_workers_and_with_a_configured_secret(make_client) -> None:
    """Two apps (two gunicorn workers, two replicas) with the same configuration accept each
    other's cookies; with SIGNER_COOKIE_SECRET set, only apps with that secret do."""
    env = {"SIGNER_API_TOKENS": None, "SIGNER_ALLOW_ANONYMOUS": "true"}
    worker_1, worker_2 = make_client(**env), make_client(**env)
    answer = worker_1.get("/v1/whoami")
    worker_2.set_cookie("signer_visitor", visitor_cookie(answer))
    assert worker_2.get("/v1/whoami").json == answer.json
    secret = "s" * 40
    configured_1, configured_2 = make_client(**env, SIGNER_COOKIE_SECRET=secret), make_client(**env)
    answer = configured_1.get("/v1/whoami")
    configured_2.set_cookie("signer_visitor", visitor_cookie(answer))
    assert configured_2.get("/v1/whoami").json != answer.json
    with pytest.raises(ConfigError, match="SIGNER_COOKIE_SECRET"):
        load_config(env_with(SIGNER_COOKIE_SECRET="short"))


def test_start_up_warns_about_unknown_variables(make_client, caplog) -> None:
    with caplog.at_level("WARNING"):
        make_client(SIGNER_ALLOW_ANONYMUS="true")
    assert "SIGNER_ALLOW_ANONYMUS is not a setting of this service" in caplog.text


def test_anonymous_beside_named_callers_cannot_reach_their_folders(make_client, caplog) -> None:
    with caplog.at_level("WARNING"):
        client = make_client(SIGNER_ALLOW_ANONYMOUS="true")
    assert "each visitor under 'uploads/anonymous/<id>/'" in caplog.text  # the banner names the real prefix
    assert client.get("/v1/whoami").json["key_prefix"].startswith("uploads/anonymous/")
    body = {"method": "PUT", "key": "uploads/alice/x.png", "content_type": "image/png", "content_length": 1}
    assert post_json(client, "/v1/presign", body, headers={}).status_code == 403
    assert post_json(client, "/v1/presign", body).status_code == 200


# --- Fine Uploader endpoints -----------------------------------------------------------

def fine_uploader_client(make_client, **overrides: str | None):
    return make_client(SIGNER_ENDPOINT_URL="http://s3.localhost:9000", SIGNER_ADDRESSING_STYLE="virtual", **overrides)


@freeze_time(FROZEN)
def test_fine_uploader_policy(make_client) -> None:
    from datetime import datetime

    now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    document = fu.policy(now, access_key=ACCESS_KEY, bucket="uploads-bucket", key="uploads/alice/x.png")
    response = post_json(fine_uploader_client(make_client), "/s3/signature?v4=true", document)
    assert response.status_code == 200, response.json
    assert json.loads(base64.b64decode(response.json["policy"])) == document
    assert response.json["signature"] == botocore_signature(response.json["policy"], secret=SECRET_KEY)


@freeze_time(FROZEN)
@pytest.mark.parametrize("kind", ["initiate", "part", "abort"])  # complete lists parts first: tests/test_companion.py
def test_fine_uploader_headers(make_client, kind) -> None:
    import hashlib
    from datetime import datetime

    now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    raw = fu.headers_string(kind, now, host="uploads-bucket.s3.localhost:9000", key="uploads/alice/x.png")
    client = fine_uploader_client(make_client, SIGNER_ALLOWED_METHODS="GET,PUT,HEAD,DELETE")
    response = post_json(client, "/s3/signature?v4=true", {"headers": raw})
    assert response.status_code == 200, response.json
    lines = raw.split("\n")
    hashed = hashlib.sha256("\n".join(lines[3:]).encode()).hexdigest()
    assert response.json == {"signature": botocore_signature("\n".join(lines[:3] + [hashed]), secret=SECRET_KEY)}


@freeze_time(FROZEN)
@pytest.mark.parametrize(
    "path, body",
    [
        ("/s3/signature", {"headers": "x"}),  # no v4=true: a v2 request
        ("/s3/signature?v4=false", {"headers": "x"}),
        ("/s3/signature?v4=true", {"headers": "AWS4-HMAC-SHA256\n20261123T080000Z\n"}),
        ("/s3/signature?v4=true", {"headers": "x", "extra": 1}),
        ("/s3/signature?v4=true", {"expiration": "2026-11-23T08:05:00.000Z", "conditions": [{"bucket": "other"}]}),
        ("/s3/signature?v4=true", {"conditions": []}),
    ],
)
def test_fine_uploader_refusals_are_400_invalid(make_client, path, body) -> None:
    response = post_json(fine_uploader_client(make_client), path, body)
    assert response.status_code == 400
    assert response.json["invalid"] is True
    assert response.json["error"]
    assert "signature" not in response.json and "policy" not in response.json


def test_fine_uploader_v2_message(client) -> None:
    response = post_json(client, "/s3/signature", {"headers": "x"})
    assert "version 4" in response.json["error"]


def test_fine_uploader_needs_auth(client) -> None:
    response = post_json(client, "/s3/signature?v4=true", {"headers": "x"}, headers={})
    assert response.status_code == 401 and response.json["invalid"] is True


# --- malformed requests never 500 -------------------------------------------------------

@pytest.mark.parametrize(
    "data, content_type",
    [
        ("{", "application/json"),
        ('{"key": "uploads/alice/x.png", "key": "uploads/bob/x.png"}', "application/json"),
        ("[1, 2]", "application/json"),
        ("null", "application/json"),
        ('{"key": NaN}', "application/json"),
        ("\xff", "application/json"),
        ('{"key": "uploads/alice/x.png"}', "text/plain"),
        ('{"key": "uploads/alice/x.png"}', None),
    ],
)
def test_malformed_bodies_are_4xx_json(client, data, content_type) -> None:
    for path in ("/v1/presign", "/v1/post-policy", "/s3/signature?v4=true"):
        response = client.post(path, data=data, content_type=content_type, headers=bearer())
        assert 400 <= response.status_code < 500, (path, response.status_code)
        assert response.is_json and response.json["error"]


def test_body_cap(client) -> None:
    response = client.post("/v1/presign", data="x" * (64 * 1024 + 1), content_type="application/json", headers=bearer())
    assert response.status_code == 413
    assert response.json["code"] == "body_too_large"


def test_unknown_paths_and_methods_are_json(client) -> None:
    assert client.get("/nope").status_code == 404
    response = client.get("/v1/presign")
    assert response.status_code == 405 and response.is_json


# --- CORS, health, OpenAPI -------------------------------------------------------------

def test_cors_preflight_only_for_configured_origins(client) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    response = client.options("/s3/signature", headers=preflight)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    refused = client.options("/s3/signature", headers={**preflight, "Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused.headers
    simple = post_json(client, "/v1/presign", GOOD_PUT, headers={**bearer(), "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in simple.headers


def test_health_and_openapi(client) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ready", "credentials": {"provider": "environment", "expires_at": None},
                                          "store_clock_offset_s": 0}
    document = client.get("/openapi.json").json
    assert document["openapi"].startswith("3.1")
    assert {"/v1/presign", "/v1/post-policy", "/s3/signature", "/s3/success", "/s3/files/{uuid}", "/healthz",
            "/readyz"} <= set(document["paths"])


def test_secrets_never_in_responses(client) -> None:
    bodies = [
        post_json(client, "/v1/presign", GOOD_PUT).get_data(as_text=True),
        post_json(client, "/v1/presign", {"key": "x"}).get_data(as_text=True),
        post_json(client, "/v1/post-policy", {"key": "uploads/alice/x.png", "content_type": "image/png"}).get_data(as_text=True),
        client.get("/openapi.json").get_data(as_text=True),
    ]
    for text in bodies:
        assert SECRET_KEY not in text and ALICE_TOKEN not in text and BOB_TOKEN not in text
    query = parse_qs(urlsplit(json.loads(bodies[0])["url"]).query)
    assert set(query) == {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                          "X-Amz-SignedHeaders", "X-Amz-Signature"}


def test_every_error_code_is_in_the_openapi_document(client) -> None:
    """One table: each code the service can send is listed once, with its status, in /openapi.json."""
    from signer.service.web.statuses import CODES

    document = client.get("/openapi.json").json
    listed = document["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
    assert listed == list(CODES) and len(set(listed)) == len(listed)
    sent = {status for status, _ in CODES.values()}
    declared = {int(status) for path in document["paths"].values() for operation in path.values()
                for status in operation["responses"]}
    assert declared - {200, 204} <= sent, "OpenAPI declares a status no code is sent with"
    assert document["info"]["version"] == __import__("signer").__version__


def test_every_raised_code_is_listed() -> None:
    """A refusal raised with a literal code anywhere in the service names a code of its own kind
    (NotAllowed("key_not_allowed", …)), and every such code is listed with a status."""
    import re
    from pathlib import Path

    from signer.service import errors
    from signer.service.web import statuses
    from signer.service.web.statuses import CODES

    kinds = {kind.__name__: kind for kind in (*errors.KINDS, statuses.Envelope)}
    root = Path(__file__).resolve().parent.parent / "signer"
    raised = {match for path in root.rglob("*.py")
              for match in re.findall(rf'\b({"|".join(kinds)})\(\s*"([a-z_]+)"', path.read_text(encoding="utf-8"))}
    assert len(raised) > 25
    assert {(kind, code) for kind, code in raised if code not in kinds[kind].CODES} == set()
    assert {code for _, code in raised} <= set(CODES)


@pytest.mark.parametrize("key", ["uploads/alice/${filename}", "uploads/alice/a${x}b.png"])
def test_a_key_cannot_let_the_uploader_choose_its_name(client, key) -> None:
    """presign_post reads a key ending in ${filename} as 'any key starting with what precedes
    it': the service must never hand that choice to the caller."""
    for path, body in (("/v1/post-policy", {"key": key, "content_type": "image/png"}),
                       ("/v1/presign", {"method": "PUT", "key": key, "content_type": "image/png", "content_length": 1})):
        response = post_json(client, path, body)
        assert response.status_code == 403 and response.json["code"] == "key_not_allowed", (path, response.json)
