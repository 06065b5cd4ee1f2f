"""The service on platform credentials: simulated EKS (web identity file + moto's STS) and
ECS/EC2 (local endpoints); URLs capped at the credentials' lifetime; rotation under load on
real gunicorn with no failed request; an outage served until expiry, then 503."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from signer.service.config import load_config
from signer.service.web.app import create_app
from tests.conftest import ALICE_TOKEN, RUNTIME_SECRETS, bearer, env_with
from tests.fake_aws import CONTAINER_AUTH, SECRET_MARK, TOKEN_MARK, WEB_IDENTITY_JWT, FakeAws, fake_aws
from tests.servers import free_port, running

NO_STATIC_KEYS = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}
PUT = {"method": "PUT", "key": "uploads/alice/cat.jpg", "content_type": "image/jpeg", "content_length": 3}


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


@pytest.fixture
def ecs() -> Iterator[FakeAws]:
    with fake_aws(lifetime=100) as fake:
        yield fake


def container_env(fake: FakeAws, **more: str | None) -> dict[str, str]:
    return env_with(**NO_STATIC_KEYS, AWS_CONTAINER_CREDENTIALS_FULL_URI=f"{fake.url}/container",
                    AWS_CONTAINER_AUTHORIZATION_TOKEN=CONTAINER_AUTH, **more)


def test_simulated_eks_web_identity_with_motos_sts(tmp_path: Path) -> None:
    token = tmp_path / "eks.amazonaws.com" / "serviceaccount" / "token"
    token.parent.mkdir(parents=True)
    token.write_text(WEB_IDENTITY_JWT)
    port = free_port()
    moto = f"http://127.0.0.1:{port}"
    with running([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], f"{moto}/moto-api/"):
        cfg = load_config(env_with(**NO_STATIC_KEYS, AWS_ROLE_ARN="arn:aws:iam::123456789012:role/signer",
                                   AWS_WEB_IDENTITY_TOKEN_FILE=str(token), AWS_ENDPOINT_URL_STS=moto))
        client = create_app(cfg).test_client()
        ready = client.get("/readyz")
        answer = client.post("/v1/presign", json=PUT, headers=bearer())
    credentials = cfg.credentials_source.get()
    RUNTIME_SECRETS.append(credentials.secret_key)
    assert ready.status_code == 200 and ready.json["credentials"]["provider"] == "web-identity"
    assert ready.json["credentials"]["expires_at"] == credentials.expiration.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert credentials.session_token not in ready.get_data(as_text=True)
    assert answer.status_code == 200, answer.json
    signed = query(answer.json["url"])
    assert signed["X-Amz-Security-Token"] == credentials.session_token
    assert signed["X-Amz-Credential"].startswith(credentials.access_key + "/")


def test_simulated_ecs_and_ec2(ecs: FakeAws) -> None:
    for env in (container_env(ecs), env_with(**NO_STATIC_KEYS, AWS_EC2_METADATA_SERVICE_ENDPOINT=ecs.url)):
        client = create_app(load_config(env)).test_client()
        answer = client.post("/v1/presign", json=PUT, headers=bearer())
        assert answer.status_code == 200
        assert query(answer.json["url"])["X-Amz-Security-Token"] == ecs.issued[-1].token
        form = client.post("/v1/post-policy", json={"key": "uploads/alice/a.pdf", "content_type": "application/pdf"},
                           headers=bearer())
        assert form.json["fields"]["x-amz-security-token"] == ecs.issued[-1].token
    assert client.get("/readyz").json["credentials"]["provider"] == "instance-metadata"


def test_a_url_never_outlives_its_credentials(ecs: FakeAws) -> None:
    """Capped, not refused: the answer's expires_at is the truth."""
    client = create_app(load_config(container_env(ecs))).test_client()
    answer = client.post("/v1/presign", json={**PUT, "expires_in": 900}, headers=bearer())
    assert answer.status_code == 200
    signed = query(answer.json["url"])
    expiration = ecs.issued[-1].expiration
    assert 40 <= int(signed["X-Amz-Expires"]) <= 100
    assert stamp(signed["X-Amz-Date"]) + timedelta(seconds=int(signed["X-Amz-Expires"])) <= expiration
    form = client.post("/v1/post-policy", json={"key": "uploads/alice/a.pdf", "content_type": "application/pdf",
                                                "expires_in": 900}, headers=bearer())
    assert datetime.strptime(form.json["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) <= expiration
    # Still refused above SIGNER_MAX_EXPIRES, as with static keys.
    assert client.post("/v1/presign", json={**PUT, "expires_in": 901}, headers=bearer()).json["code"] == "expiry_too_long"


def test_an_outage_serves_until_expiry_then_fails_closed() -> None:
    with fake_aws(lifetime=3) as fake:
        client = create_app(load_config(container_env(fake))).test_client()
        assert client.post("/v1/presign", json=PUT, headers=bearer()).status_code == 200
        fake.down = True
        expiration = fake.issued[-1].expiration
        statuses = []
        while datetime.now(UTC) < expiration + timedelta(seconds=0.5):
            answer = client.post("/v1/presign", json=PUT, headers=bearer())
            statuses.append((answer.status_code, datetime.now(UTC)))
            if answer.status_code != 200:
                assert answer.status_code == 503 and answer.json["code"] == "credentials_unavailable"
                assert "container: the endpoint answered 500" in answer.json["error"]
            time.sleep(0.05)
        served = [moment for status, moment in statuses if status == 200]
        failed = [moment for status, moment in statuses if status == 503]
        assert served and failed and max(served) < min(failed)  # served, then closed, never flapping
        assert max(served) <= expiration and min(failed) >= expiration - timedelta(seconds=2)
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json["credentials"]["provider"] == "container"
        assert ready.json["code"] == "credentials_unavailable"
        for text in (ready.get_data(as_text=True), json.dumps(ready.json)):
            assert TOKEN_MARK not in text and SECRET_MARK not in text and CONTAINER_AUTH not in text


def _post(base: str) -> tuple[int, dict]:
    request = urllib.request.Request(f"{base}/v1/presign", data=json.dumps(PUT).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {ALICE_TOKEN}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_rotation_under_load_on_gunicorn_drops_nothing(tmp_path: Path) -> None:
    """2-second credentials, 2 workers, 4 client threads for 8 seconds: several rotations,
    0 failed requests, every URL signed with the token current when it was signed."""
    log = tmp_path / "gunicorn.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with fake_aws(lifetime=2) as fake:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIGNER_"))},
               **container_env(fake)}
        command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
                   "--workers", "2", "wsgi:app"]
        with running(command, f"{base}/healthz", env=env, log_path=log):
            results: list[tuple[int, dict]] = []
            deadline = time.monotonic() + 8

            def load() -> None:
                while time.monotonic() < deadline:
                    results.append(_post(base))

            threads = [threading.Thread(target=load) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            with urllib.request.urlopen(f"{base}/readyz", timeout=5) as answer:
                ready = json.loads(answer.read())
        failures = [(status, body) for status, body in results if status != 200]
        assert not failures, failures[:3]
        assert len(results) >= 100
        tokens = [query(body["url"])["X-Amz-Security-Token"] for _, body in results]
        assert len(set(tokens)) >= 5, "the credentials should have rotated several times"
        print(f"rotation: {len(results)} requests, {len(set(tokens))} tokens, {len(fake.issued)} issued, 0 failed")
        for (_, body), token in zip(results, tokens, strict=True):
            signed = query(body["url"])
            issued = fake.token_at(token)
            moment = stamp(signed["X-Amz-Date"])
            assert issued.issued.replace(microsecond=0) <= moment < issued.expiration
            assert signed["X-Amz-Credential"].startswith(issued.access_key + "/")
            assert moment + timedelta(seconds=int(signed["X-Amz-Expires"])) <= issued.expiration
        assert ready["status"] == "ready" and ready["credentials"]["provider"] == "container"
    text = log.read_text()
    assert text.count("credentials refreshed from container") >= 5
    for item in fake.issued:
        assert item.token not in text and item.secret_key not in text


def test_check_config_names_the_provider_and_expiry(ecs: FakeAws) -> None:
    import subprocess

    from tests.servers import ROOT

    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIGNER_"))}
    run = lambda: subprocess.run([sys.executable, "-m", "signer", "check-config"], cwd=ROOT,  # noqa: E731
                                 env={**base, **container_env(ecs)}, capture_output=True, text=True, timeout=60)
    result = run()
    assert result.returncode == 0, result.stderr
    issued = ecs.issued[-1]
    assert f"credentials: container, access key {issued.access_key}, expire " \
           f"{issued.expiration.strftime('%Y-%m-%dT%H:%M:%SZ')}" in result.stdout
    ecs.down = True
    result = run()
    assert result.returncode == 1
    assert "credentials from container are unavailable: container: the endpoint answered 500" in result.stderr
    for item in ecs.issued:
        assert item.secret_key not in result.stdout + result.stderr and item.token not in result.stdout + result.stderr
