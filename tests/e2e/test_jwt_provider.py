"""The service against a real OpenID Connect provider (oidc-provider-mock on loopback: discovery,
a key set, tokens from its code flow): a user's ID token presigns under their folder; with the
provider stopped the known key still works and /readyz says the keys are stale; a restarted
provider (a new key) is picked up without restarting the service."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import jwt

from signer.service.config import load_config
from signer.service.jwt_callers import MAX_AGE, REFETCH_AFTER, WAIT_FOR_FETCH, KeySet, Verifier
from signer.service.web.app import create_app
from tests.conftest import env_with
from tests.jwt_issuer import AUDIENCE, PROVIDER_PIDS, Key, oidc_provider, provider_token
from tests.servers import free_port

PRESIGN = {"method": "PUT", "filename": "cat.png", "content_type": "image/png", "content_length": 10}


def client_for(provider: str, clock: list[float]):
    config = load_config(env_with(SIGNER_API_TOKENS=None, SIGNER_JWT_ISSUER=provider, SIGNER_JWT_AUDIENCE=AUDIENCE))
    assert config.jwt_issuer is not None
    vars(config)["jwt"] = Verifier(config.jwt_issuer, KeySet(config.jwt_issuer, clock=lambda: clock[0]))
    return create_app(config).test_client()


def presign(client, token: str):
    return client.post("/v1/presign", data=json.dumps(PRESIGN), content_type="application/json",
                       headers={"Authorization": f"Bearer {token}"})


def test_the_providers_tokens_work_and_survive_its_outage_and_its_rotation() -> None:
    port, clock = free_port(), [0.0]
    with oidc_provider(port) as provider:
        client = client_for(provider, clock)
        alice, bob = provider_token(provider, "alice"), provider_token(provider, "bob")
        answer = presign(client, alice)
        assert answer.status_code == 200, answer.json
        assert answer.json["key"].startswith("uploads/user/alice/")
        assert client.get("/readyz").json["jwt"] | {"fetched_at": None} == {
            "issuer": provider, "keys": 1, "state": "fresh", "fetched_at": None, "error": None}
        assert presign(client, provider_token(provider, "alice", client_id="another-app")).json["code"] == \
            "token_audience"

    clock[0] += REFETCH_AFTER  # stopped: a refetch fails, the known key still serves
    keys = client.application.extensions["signer_config"].jwt.keys
    assert not keys.refresh()
    assert presign(client, bob).json["key"].startswith("uploads/user/bob/")
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["jwt"]["state"] == "stale" and ready.json["jwt"]["keys"] == 1

    with oidc_provider(port) as provider:  # the same issuer with a new key: a rotation
        fresh = provider_token(provider, "alice")
        clock[0] += REFETCH_AFTER
        assert presign(client, fresh).json["key"].startswith("uploads/user/alice/")
        assert presign(client, alice).json["code"] == "token_signature"  # the old key is gone
        assert client.get("/readyz").json["jwt"]["state"] == "fresh"


def test_a_hung_provider_holds_no_request_up_and_readyz_says_the_keys_are_stale() -> None:
    """SIGSTOP, not a mock: the provider accepts connections and never answers."""
    port, clock = free_port(), [0.0]
    with oidc_provider(port) as provider:
        config = load_config(env_with(SIGNER_JWT_ISSUER=provider, SIGNER_JWT_AUDIENCE=AUDIENCE))
        assert config.jwt_issuer is not None
        settings = replace(config.jwt_issuer, timeout=1.0)
        vars(config)["jwt"] = Verifier(settings, KeySet(settings, clock=lambda: clock[0]))
        client = create_app(config).test_client()
        alice = provider_token(provider, "alice")
        assert presign(client, alice).status_code == 200
        process = PROVIDER_PIDS[provider]
        os.kill(process, signal.SIGSTOP)
        try:
            clock[0] += MAX_AGE + 1
            started = time.monotonic()
            assert presign(client, alice).status_code == 200  # the known key, while a refetch waits aside
            assert time.monotonic() - started < 1.0
            deadline = time.monotonic() + 10
            while client.get("/readyz").json["jwt"]["state"] != "stale" and time.monotonic() < deadline:
                time.sleep(0.1)
            jwt = client.get("/readyz").json["jwt"]
            assert jwt["state"] == "stale" and jwt["keys"] == 1 and "timed out" in jwt["error"], jwt

            clock[0] += REFETCH_AFTER  # a flood of made-up kids while the provider hangs: one fetch, no pile-up
            keys, stranger = client.application.extensions["signer_config"].jwt.keys, Key.rsa("made-up")
            fetches, started = keys.fetches, time.monotonic()
            forged = [issuer_token(provider, stranger, f"made-up-{n}") for n in range(20)]
            with ThreadPoolExecutor(max_workers=20) as pool:
                codes = list(pool.map(lambda token: presign(client, token).json["code"], forged))
            assert set(codes) == {"token_unknown_key"}, codes
            assert keys.fetches - fetches == 1
            assert time.monotonic() - started < 2 * settings.timeout + WAIT_FOR_FETCH + 1.5
        finally:
            os.kill(process, signal.SIGCONT)


def issuer_token(provider: str, key: Key, kid: str) -> str:
    """A token in the provider's name, signed by a key it never had."""
    now = int(time.time())
    claims = {"iss": provider, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300}
    return jwt.encode(claims, key.private, algorithm="RS256", headers={"kid": kid})


def test_doctor_reports_the_issuers_reachability_and_key_count(weed) -> None:
    from signer.service.doctor import healthy, run_doctor

    port = free_port()
    config_env = env_with(SIGNER_JWT_ISSUER=f"http://127.0.0.1:{port}", SIGNER_JWT_AUDIENCE=AUDIENCE,
                          **weed.signer_env("path"))
    with oidc_provider(port) as provider:
        findings = run_doctor(load_config(config_env))
        assert findings[-1].as_json() == {"check": "jwt issuer", "ok": True, "fix": "",
                                          "message": f"issuer {provider}: reachable, 1 signing key"}
        assert healthy(findings), [f.as_json() for f in findings if not f.ok]
    down = run_doctor(load_config(config_env))[-1]
    assert down.check == "jwt issuer" and down.ok is False and "keys unreachable" in down.message
    assert "SIGNER_JWT_JWKS_URL" in down.fix
