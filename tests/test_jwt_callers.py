"""Bearer JWTs from the app's OIDC issuer (signer/service/jwt_callers.py, issue #27): tokens the
tests make with their own keys, served by their own issuer on loopback (tests/jwt_issuer.py),
through the service's endpoints. The real provider (oidc-provider-mock) is in
tests/e2e/test_jwt_provider.py; Uppy in Chromium in tests/e2e/test_uppy_jwt.py."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signer.service.config import load_config
from signer.service.errors import ConfigError, Refused
from signer.service.jwt_callers import (
    MAX_AGE,
    REFETCH_AFTER,
    Issuer,
    KeyFetchError,
    KeySet,
    Verifier,
    checked_identity,
    fetch_json,
)
from signer.service.web.app import create_app
from tests import fineuploader_samples as fu
from tests.conftest import ACCESS_KEY, ALICE_TOKEN, env_with
from tests.jwt_issuer import AUDIENCE, Key, issuer_server, unsigned
from tests.servers import serving

PRESIGN = {"method": "PUT", "filename": "cat.png", "content_type": "image/png", "content_length": 10}


def jwt_env(issuer_url: str, **overrides: str | None) -> dict[str, str]:
    return env_with(**{"SIGNER_JWT_ISSUER": issuer_url, "SIGNER_JWT_AUDIENCE": f"other-app,{AUDIENCE}", **overrides})


def presign(client, token: str):
    return client.post("/v1/presign", data=json.dumps(PRESIGN), content_type="application/json",
                       headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def issuer():
    with issuer_server(Key.rsa("key-1"), Key.ec("key-ec")) as served:
        yield served


@pytest.fixture(scope="module")
def client(issuer):
    return create_app(load_config(jwt_env(issuer.url))).test_client()


# --- a good token ------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [0, 1], ids=["RS256", "ES256"])
def test_a_token_for_alice_presigns_under_her_user_folder(client, issuer, key) -> None:
    answer = presign(client, issuer.token("alice", issuer.keys[key]))
    assert answer.status_code == 200, answer.json
    assert answer.json["key"].startswith("uploads/user/alice/")
    assert client.get("/v1/whoami", headers={"Authorization": f"Bearer {issuer.token('alice')}"}).json[
        "key_prefix"] == "uploads/user/alice/"


def test_a_token_of_12_kib_is_checked_like_any_other(client, issuer) -> None:
    """Roles and groups make tokens of 8-16 KiB; the front admits 16 KiB of headers, so such a token
    is verified, not taken for something else ('the bearer token is not valid')."""
    token = issuer.token("alice", groups=[f"group-{n:04d}-" + "g" * 40 for n in range(200)])
    assert 12 * 1024 < len(token) < 16 * 1024
    answer = presign(client, token)
    assert answer.status_code == 200, answer.json
    assert answer.json["key"].startswith("uploads/user/alice/")


def test_api_tokens_still_name_their_callers_beside_jwts(client) -> None:
    answer = presign(client, ALICE_TOKEN)
    assert answer.status_code == 200 and answer.json["key"].startswith("uploads/alice/")


# --- every attack: 401, a code naming the check, nothing signed ---------------------------------

@functools.cache
def strangers() -> tuple[Key, Key, Key]:
    """Keys the issuer does not list (made once: RSA keys take a while)."""
    return Key.rsa("key-1"), Key.rsa("nobody-knows-me"), Key.rsa("anyone")


def attacks(issuer) -> dict[str, tuple[str, str]]:
    now = int(time.time())
    known, (stranger, nobody, _) = issuer.keys[0], strangers()  # the stranger reuses a known kid, not its key
    claims = {"iss": issuer.url, "aud": AUDIENCE, "sub": "alice", "exp": now + 300}
    header = {"alg": "HS256", "typ": "JWT", "kid": known.kid}
    signing_input = unsigned(header, claims).rsplit(".", 1)[0]
    mac = hmac.new(known.public_pem(), signing_input.encode(), hashlib.sha256).digest()  # a confused verifier's check
    return {
        "expired": (issuer.token(exp=now - 3600, iat=now - 7200), "token_expired"),
        "not yet valid": (issuer.token(nbf=now + 3600), "token_not_yet_valid"),
        "other issuer": (issuer.token(iss="https://evil.example"), "token_issuer"),
        "other audience": (issuer.token(aud="someone-else"), "token_audience"),
        "no exp": (issuer.token(exp=None), "token_claims"),
        "unknown key": (issuer.token(key=nobody), "token_unknown_key"),
        "known kid, other key": (issuer.token(key=stranger), "token_signature"),
        "alg none": (unsigned({"alg": "none", "typ": "JWT", "kid": known.kid}, claims), "token_algorithm"),
        "HS256 with the public key as secret": (unsigned(header, claims, mac), "token_algorithm"),
        "kid pointing at an EC key": (issuer.token(headers={"kid": "key-ec"}), "token_algorithm"),
        "jku header": (issuer.token(headers={"jku": "http://127.0.0.1:1/jwks"}), "token_header"),
        "x5u header": (issuer.token(headers={"x5u": "http://127.0.0.1:1/cert.pem"}), "token_header"),
        "jwk header": (issuer.token(headers={"jwk": known.public_jwk()}), "token_header"),
        "tampered payload": (issuer.token().split(".")[0] + "." + unsigned({}, {**claims, "sub": "bob"}).split(".")[1]
                             + "." + issuer.token().split(".")[2], "token_signature"),
        "unsafe sub": (issuer.token(sub="../bob"), "token_identity"),
        "sub a number": (issuer.token(sub=42), "token_identity"),
        "iat not a number": (issuer.token(iat="yesterday"), "token_malformed"),
        "garbage": ("a.b.c", "token_malformed"),
    }


@pytest.mark.parametrize("case", [
    "expired", "not yet valid", "other issuer", "other audience", "no exp", "unknown key", "known kid, other key",
    "alg none", "HS256 with the public key as secret", "kid pointing at an EC key", "jku header", "x5u header",
    "jwk header", "tampered payload", "unsafe sub", "sub a number", "iat not a number", "garbage"])
def test_every_attack_is_a_401_naming_the_check_and_nothing_is_signed(client, issuer, case) -> None:
    token, code = attacks(issuer)[case]
    answer = presign(client, token)
    assert answer.status_code == 401, answer.json
    assert answer.json["code"] == code
    assert "url" not in answer.json and "key" not in answer.json
    assert "BEGIN" not in answer.get_data(as_text=True) and issuer.keys[0].public_jwk()["n"][:20] not in \
        answer.get_data(as_text=True)


def test_hs256_with_the_public_key_as_secret_fails_even_where_hs256_is_allowed(issuer) -> None:
    """With SIGNER_JWT_SECRET set, HS256 is checked against that secret, never a public key."""
    client = create_app(load_config(jwt_env(issuer.url, SIGNER_JWT_ALGORITHMS="RS256,HS256",
                                            SIGNER_JWT_SECRET="s" * 32))).test_client()
    token, _ = attacks(issuer)["HS256 with the public key as secret"]
    assert presign(client, token).json["code"] == "token_signature"
    good = jwt.encode({"iss": issuer.url, "aud": AUDIENCE, "sub": "carol", "exp": int(time.time()) + 60}, "s" * 32,
                      algorithm="HS256")
    assert presign(client, good).json["key"].startswith("uploads/user/carol/")


def test_the_leeway_admits_a_little_skew_and_no_more(issuer) -> None:
    client = create_app(load_config(jwt_env(issuer.url, SIGNER_JWT_LEEWAY="120"))).test_client()
    now = int(time.time())
    assert presign(client, issuer.token(exp=now - 60)).status_code == 200
    assert presign(client, issuer.token(exp=now - 300)).json["code"] == "token_expired"


def test_cognito_id_tokens_pass_and_its_access_tokens_lack_an_audience(issuer) -> None:
    """docs/jwt.md's Cognito recipe: SIGNER_JWT_AUDIENCE = the app client id admits its ID tokens only."""
    client = create_app(load_config(jwt_env(issuer.url, SIGNER_JWT_AUDIENCE="app-client-id"))).test_client()
    id_token = issuer.token("f1e2d3c4-0000-4000-8000-000000000001", aud="app-client-id", token_use="id")
    assert presign(client, id_token).json["key"].startswith("uploads/user/f1e2d3c4-0000-4000-8000-000000000001/")
    access = issuer.token("f1e2d3c4-0000-4000-8000-000000000001", aud=None, client_id="app-client-id",
                          token_use="access")
    assert presign(client, access).json["code"] == "token_claims"


@pytest.mark.parametrize("value", ["alice", "auth0|64f0c2", "google-oauth2:1234", "a.b@example.com", "x" * 64])
def test_safe_identities_are_kept_as_they_are(value) -> None:
    assert checked_identity(value, "sub") == value


@pytest.mark.parametrize("value", ["", "a/b", "..", "a..b", ".hidden", "x" * 65, "a\x00b", "a\nb", "é", "a b",
                                   "anonymous", 42, None, ["alice"]])
def test_unsafe_identities_are_refused_never_mapped(value) -> None:
    with pytest.raises(Refused) as refused:
        checked_identity(value, "sub")
    assert refused.value.code == "token_identity"


# --- every protocol ---------------------------------------------------------------------------

def test_fine_uploader_and_companion_and_sign_request_take_the_token(client, issuer) -> None:
    headers = {"Authorization": f"Bearer {issuer.token('alice')}"}
    params = client.get("/s3/params?filename=cat.png&type=image/png", headers=headers)
    assert params.status_code == 200 and params.json["key"].startswith("uploads/user/alice/")
    signed = client.post("/v1/sign-request", json={"method": "PUT", "key": "cat.png", "contentType": "image/png"},
                         headers=headers)
    assert signed.status_code == 200 and signed.json["key"].startswith("uploads/user/alice/")
    now = datetime.now(UTC)
    for key, code in (("uploads/user/alice/x.png", None), ("uploads/user/bob/x.png", "key_not_allowed")):
        policy = fu.policy(now, access_key=ACCESS_KEY, bucket="uploads-bucket", key=key)  # Fine Uploader
        assert client.post("/s3/signature?v4=true", json=policy, headers=headers).json.get("code") == code
    bad = client.get("/s3/params?filename=cat.png&type=image/png",
                     headers={"Authorization": f"Bearer {issuer.token('alice', exp=int(time.time()) - 999)}"})
    assert bad.status == "401 the token has expired"  # Uppy shows only the status line


# --- the key set: rotation, floods, an issuer down ---------------------------------------------

def test_rotation_needs_no_restart_and_removed_keys_stop_working() -> None:
    old, new = Key.rsa("old"), Key.rsa("new")
    with issuer_server(old) as issuer:
        clock = [0.0]
        client = client_with_clock(issuer, clock)
        before = issuer.token(key=old)
        assert presign(client, before).status_code == 200
        issuer.keys = [new]
        clock[0] += REFETCH_AFTER  # the last fetch was 30 s ago: an unknown kid may fetch again
        assert presign(client, issuer.token(key=new)).status_code == 200
        assert presign(client, before).json["code"] == "token_unknown_key"
        assert issuer.fetches == 2


def test_a_token_without_kid_is_checked_against_the_only_key_even_after_a_rotation() -> None:
    """Some providers (oidc-provider-mock, small IdPs) sign without a kid while they have one key."""
    old, new = Key.rsa("old"), Key.rsa("new")
    with issuer_server(old) as issuer:
        clock = [0.0]
        client = client_with_clock(issuer, clock)
        assert presign(client, issuer.token(key=old, keyed=False)).status_code == 200
        issuer.keys = [new]
        assert presign(client, issuer.token(key=new, keyed=False)).json["code"] == "token_signature"  # refetched < 30 s ago
        clock[0] += REFETCH_AFTER
        assert presign(client, issuer.token(key=new, keyed=False)).status_code == 200
        assert presign(client, issuer.token(key=old, keyed=False)).json["code"] == "token_signature"
        issuer.keys = [old, new]
        clock[0] += REFETCH_AFTER
        assert presign(client, issuer.token(key=old, keyed=False)).json["code"] == "token_unknown_key"  # which of two?


def client_with_clock(issuer, clock: list[float]):
    """The service with its key cache on a clock the test moves."""
    config = load_config(jwt_env(issuer.url))
    assert config.jwt is not None
    keys = KeySet(config.jwt.issuer, clock=lambda: clock[0])
    vars(config)["jwt"] = Verifier(config.jwt.issuer, keys)  # the per-process verifier (a cached_property), on that clock
    return create_app(config).test_client()


def test_a_hundred_unknown_kids_cost_the_issuer_one_fetch() -> None:
    with issuer_server(Key.rsa("only")) as issuer:
        client = create_app(load_config(jwt_env(issuer.url))).test_client()
        assert presign(client, issuer.token()).status_code == 200
        fetched = issuer.fetches
        for number in range(100):
            answer = presign(client, issuer.token(key=Key.ec(f"made-up-{number}")))
            assert answer.json["code"] == "token_unknown_key"
        assert issuer.fetches - fetched <= 1


def test_with_the_issuer_down_known_keys_still_work_and_readyz_says_so() -> None:
    with issuer_server(Key.rsa("k")) as issuer:
        client = create_app(load_config(jwt_env(issuer.url))).test_client()
        first = client.get("/readyz").json["jwt"]  # it starts a fetch beside the answer
        assert first | {"issuer": None} == {"issuer": None, "keys": 0, "state": "none", "fetched_at": None,
                                            "error": None}
        assert wait_for(lambda: client.get("/readyz").json["jwt"]["state"] == "fresh")
        assert client.get("/readyz").json["jwt"]["keys"] == 1
        issuer.up = False
        keys: KeySet = client.application.extensions["signer_config"].jwt.keys
        assert not keys.refresh()
        assert presign(client, issuer.token()).status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json["jwt"]["state"] == "stale" and "503" in ready.json["jwt"]["error"]


def wait_for(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_old_keys_are_refetched_beside_the_request_which_the_known_key_serves() -> None:
    """Past MAX_AGE a token with a known key is answered at once; the refetch runs in a thread, so a
    key the issuer removed stops working, and a hung issuer holds no request up."""
    kept, removed = Key.rsa("kept"), Key.rsa("removed")
    with issuer_server(kept, removed) as issuer:
        clock = [0.0]
        client = client_with_clock(issuer, clock)
        assert presign(client, issuer.token(key=removed)).status_code == 200
        issuer.keys = [kept]
        clock[0] += MAX_AGE + 1
        assert presign(client, issuer.token(key=removed)).status_code == 200  # served, and refetching
        assert wait_for(lambda: issuer.fetches == 2)
        assert wait_for(lambda: presign(client, issuer.token(key=removed)).json.get("code") == "token_unknown_key")
        assert presign(client, issuer.token(key=kept)).status_code == 200


def test_the_key_cache_clock_is_injectable() -> None:
    """Unknown kids refetch once per REFETCH_AFTER seconds of the cache's own clock."""
    fetched: list[str] = []
    key = Key.rsa("k")
    clock = [1000.0]

    def fetch(url: str, _timeout: float) -> object:
        fetched.append(url)
        return {"keys": [key.public_jwk()]}

    settings = Issuer("https://issuer.example", (AUDIENCE,), jwks_url="https://issuer.example/jwks")
    keys = KeySet(settings, fetch, clock=lambda: clock[0])
    verifier = Verifier(settings, keys)
    for _ in range(5):
        with pytest.raises(Refused):
            keys.key("unknown", "RS256")
    assert len(fetched) == 1
    clock[0] += REFETCH_AFTER + 1
    with pytest.raises(Refused):
        keys.key("unknown", "RS256")
    assert len(fetched) == 2
    assert verifier.keys.status().keys == 1


def test_keys_never_fetched_are_a_503_not_a_401() -> None:
    with issuer_server(Key.rsa("k")) as issuer:
        issuer.up = False
        client = create_app(load_config(jwt_env(issuer.url))).test_client()
        answer = presign(client, issuer.token())
        assert answer.status_code == 503 and answer.json["code"] == "token_keys_unavailable"
        assert client.get("/readyz").json["jwt"]["state"] == "none"


@pytest.mark.parametrize("where", ["headers", "body"])
def test_an_issuer_answering_a_byte_at_a_time_is_cut_off_at_the_timeout(where) -> None:
    """A socket timeout bounds each read, not the answer: an issuer sending a byte every 0.2 s would
    hold the key set's lock (forced refreshes, rotation) for as long as it likes."""
    stop = threading.Event()

    class Drip(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"
            body = b'{"keys": []}' + b" " * 28
            self.wfile.write(head if where == "body" else b"")
            for byte in (head if where == "headers" else b"") + body:
                if stop.wait(0.2):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()

        def log_message(self, *_args: object) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Drip)) as url:
        started = time.monotonic()
        try:
            with pytest.raises(KeyFetchError) as error:
                fetch_json(url + "/jwks", 0.5)
            assert time.monotonic() - started < 2.0
            assert "timed out: no whole answer within 0.5 s" in str(error.value)
        finally:
            stop.set()


def test_an_https_key_url_is_fetched_only_with_a_certificate_the_machine_trusts(tmp_path, monkeypatch) -> None:
    """The fetch's own https handler (which keeps its sockets for the deadline) checks the
    certificate and the host name as urllib's default does: a self-signed issuer is refused until
    its certificate is trusted (SSL_CERT_FILE)."""
    import ssl
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
                   .serial_number(1).not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(hours=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(private, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "12")
            self.end_headers()
            self.wfile.write(b'{"keys": []}')

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    with serving(server):
        url = f"https://localhost:{server.server_address[1]}/jwks"
        with pytest.raises(KeyFetchError) as error:
            fetch_json(url, 5.0)
        assert "CERTIFICATE_VERIFY_FAILED" in str(error.value)
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
        assert fetch_json(url, 5.0) == {"keys": []}
        with pytest.raises(KeyFetchError) as error:
            fetch_json(url.replace("localhost", "127.0.0.1"), 5.0)  # trusted, but not for that name
        assert "CERTIFICATE_VERIFY_FAILED" in str(error.value)


def test_an_issuer_set_with_a_trailing_slash_its_discovery_lacks_says_both() -> None:
    """``iss`` is compared exactly (OIDC Discovery 4.3): the fix is one character, so say which."""
    with issuer_server(Key.rsa("k")) as issuer:
        settings = load_config(jwt_env(issuer.url + "/")).jwt_issuer
        assert settings is not None
        keys = KeySet(settings)
        assert not keys.refresh()
        assert f"names the issuer {issuer.url!r}, not SIGNER_JWT_ISSUER {issuer.url + '/'!r}" in (keys.status().error or "")


def test_an_x509_certificate_map_is_named_as_such() -> None:
    settings = Issuer("https://securetoken.google.com/p", ("p",), jwks_url="https://x.example/x509")
    keys = KeySet(settings, lambda _url, _timeout: {"abc": "-----BEGIN CERTIFICATE-----\nMII...\n"})
    assert not keys.refresh()
    assert "X.509 certificates, not a JWK set" in (keys.status().error or "")


# --- configuration ----------------------------------------------------------------------------

@pytest.mark.parametrize(("overrides", "words"), [
    ({"SIGNER_JWT_AUDIENCE": None}, "SIGNER_JWT_AUDIENCE is required"),
    ({"SIGNER_JWT_ALGORITHMS": "none"}, "'none' never is"),
    ({"SIGNER_JWT_ALGORITHMS": "RS256,HS256"}, "HS256 needs SIGNER_JWT_SECRET"),
    ({"SIGNER_JWT_SECRET": "s" * 32}, "lists no HS256"),
    ({"SIGNER_JWT_ISSUER": "http://idp.example"}, "must be an https:// URL"),
    ({"SIGNER_JWT_JWKS_URL": "http://idp.example/jwks"}, "SIGNER_JWT_JWKS_URL must be https://"),
    ({"SIGNER_JWT_ISSUER": None}, "needs SIGNER_JWT_ISSUER"),
    ({"SIGNER_JWT_LEEWAY": "-1"}, "SIGNER_JWT_LEEWAY"),
])
def test_bad_jwt_settings_stop_the_start(overrides, words) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(jwt_env("https://idp.example", **overrides))
    assert words in error.value.message


def test_a_jwt_issuer_alone_is_a_way_to_know_callers() -> None:
    config = load_config(jwt_env("https://idp.example/", SIGNER_API_TOKENS=None))
    assert config.jwt is not None and config.jwt.issuer.algorithms == ("RS256", "ES256")
    assert config.jwt.issuer.identity_claim == "sub" and config.jwt.issuer.leeway == 60
    assert load_config(jwt_env("http://[::1]:9/", SIGNER_API_TOKENS=None)).jwt is not None  # loopback http


# --- malformed input never gives a 500 -----------------------------------------------------------

JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=8)
HEADERS = st.fixed_dictionaries({"alg": st.sampled_from(["RS256", "ES256", "HS256", "none", "PS256"]) | JSON_VALUES},
                                optional={"kid": st.sampled_from(["key-1", "key-ec"]) | JSON_VALUES,
                                          "typ": JSON_VALUES, "crit": JSON_VALUES})
CLAIMS = st.dictionaries(st.sampled_from(["iss", "aud", "sub", "exp", "nbf", "iat"]), JSON_VALUES)


@settings(max_examples=150)
@given(header=HEADERS | JSON_VALUES, claims=CLAIMS | JSON_VALUES, signature=st.binary(max_size=300),
       raw=st.text(st.characters(min_codepoint=32, max_codepoint=0x10FFFF, exclude_categories=("Cc", "Cs")), max_size=40))
def test_hostile_tokens_are_refused_never_a_500(client, header, claims, signature, raw) -> None:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    for token in (f"{part(header)}.{part(claims)}.{base64.urlsafe_b64encode(signature).decode()}", f"{raw}.{raw}.{raw}"):
        answer = presign(client, token)
        assert answer.status_code in (400, 401), (token, answer.status_code, answer.json)
        assert answer.json["code"].startswith("token_") or answer.json["code"] in ("unauthorized", "invalid_header")


BARE_NUMBERS = ("Infinity", "-Infinity", "NaN", "1e999", "9" * 4400)
"""Words json.loads reads as numbers (floats that int() cannot take, an int past Python's digit limit)."""


@settings(max_examples=120)
@given(hostile=st.dictionaries(st.sampled_from(["iss", "aud", "sub", "exp", "nbf", "iat", "jti"]),
                               JSON_VALUES | st.sampled_from(BARE_NUMBERS), min_size=1, max_size=2))
def test_claims_of_any_type_under_a_good_signature_are_refused_never_a_500(client, issuer, hostile) -> None:
    """Past the signature PyJWT reads the claims: a buggy issuer's ``exp: Infinity`` (a float int()
    cannot take), a number ``sub``, a list ``aud`` must be a 401 naming a check, never a 500."""
    key, now = issuer.keys[0], int(time.time())
    payload = json.dumps({"iss": issuer.url, "aud": AUDIENCE, "sub": "alice", "exp": now + 300, **hostile})
    for word in BARE_NUMBERS:
        payload = payload.replace(f'"{word}"', word)

    def part(value: bytes) -> str:
        return base64.urlsafe_b64encode(value).rstrip(b"=").decode()
    signing_input = f"{part(json.dumps({'alg': 'RS256', 'kid': key.kid}).encode())}.{part(payload.encode())}"
    token = f"{signing_input}.{part(jwt.get_algorithm_by_name('RS256').sign(signing_input.encode(), key.private))}"
    answer = presign(client, token)
    assert answer.status_code in (200, 401), (payload, answer.status_code, answer.json)
    assert answer.status_code == 200 or answer.json["code"] not in ("token_signature", "token_invalid"), payload


def test_pyjwt_is_loaded_only_where_an_issuer_is_configured() -> None:
    """A worker without SIGNER_JWT_ISSUER carries neither PyJWT nor cryptography (memory per worker)."""
    import subprocess
    import sys

    script = ("import sys; from signer.service.web.app import create_app; from signer.service.config import "
              "load_config; from tests.conftest import env_with; create_app(load_config(env_with())); "
              "print('jwt' in sys.modules, 'cryptography' in sys.modules)")
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parent.parent)
    assert ran.stdout.split() == ["False", "False"], ran.stderr
