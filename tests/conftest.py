"""Shared test settings: hypothesis profiles (500 examples per property in CI)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev",
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") == "true" else "dev"))


# --- service fixtures --------------------------------------------------------------

import pytest  # noqa: E402

from signer.service.config import load_config  # noqa: E402
from signer.service.web.app import create_app  # noqa: E402
from tests.helpers import ACCESS_KEY, SECRET_KEY  # noqa: E402 - also imported from here by the test modules

ALICE_TOKEN = "alice-token-0123456789abcdef"
BOB_TOKEN = "bob-token-0123456789abcdef00"

BASE_ENV = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "SIGNER_BUCKET": "uploads-bucket",
    "SIGNER_API_TOKENS": f"alice:{ALICE_TOKEN},bob:{BOB_TOKEN}",
    "SIGNER_MAX_SIZE": "1000000",
    "SIGNER_ALLOWED_CONTENT_TYPES": "image/*,application/pdf",
    "SIGNER_MAX_EXPIRES": "900",
    "SIGNER_CORS_ORIGINS": "https://app.example",
}


def env_with(**overrides: str | None) -> dict[str, str]:
    env = dict(BASE_ENV)
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@pytest.fixture
def make_client():
    """A Flask test client for a configuration built from BASE_ENV plus overrides."""

    def build(**overrides: str | None):
        return create_app(load_config(env_with(**overrides))).test_client()

    return build


@pytest.fixture(scope="module")
def s3_url():
    """moto's S3 server on loopback, one per test module (it verifies no signatures: for
    arranging and inspecting a bucket; tests/e2e uses SeaweedFS, which does)."""
    from tests.servers import moto_server

    with moto_server() as url:
        yield url


@pytest.fixture
def client(make_client):
    return make_client()


def bearer(token: str = ALICE_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- no secret in any response body or log line, across the whole run ----------------

import logging  # noqa: E402

import werkzeug.test  # noqa: E402

from tests.fake_aws import CONTAINER_AUTH, IMDS_SESSION, SECRET_MARK, WEB_IDENTITY_JWT  # noqa: E402
from tests.processes import stop_all_at_exit  # noqa: E402
from tests.servers import SERVER_LOGS  # noqa: E402

# Session tokens are not here: a presigned URL carries its token by design. The credential
# tests check separately that tokens stay out of logs, errors and /readyz.
SECRETS = (SECRET_KEY, ALICE_TOKEN, BOB_TOKEN, "not-the-right-secret-at-all", "this-is-not-the-secret-key",
           SECRET_MARK, CONTAINER_AUTH, IMDS_SESSION, WEB_IDENTITY_JWT,
           "webhook-secret-for-tests-0123456789abcdef", "a-webhook-secret-of-32-characters-at-least")
RUNTIME_SECRETS: list[str] = []
"""Secrets only known while the run goes (moto's STS answers); tests append, the scan reads."""
_SEEN: list[tuple[str, str]] = []  # (where, text)


class _RecordEverything(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            _SEEN.append((f"log {record.name}", self.format(record)))
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is still scanned, as its fields
            _SEEN.append((f"log {record.name}", repr(record.__dict__)))


def pytest_configure() -> None:
    stop_all_at_exit()  # servers die with the run, however it ends (tests/processes.py)
    handler = _RecordEverything(level=logging.DEBUG)
    logging.getLogger().addHandler(handler)
    logging.getLogger("signer").setLevel(logging.DEBUG)
    original_open = werkzeug.test.Client.open

    def recording_open(self, *args, **kwargs):
        response = original_open(self, *args, **kwargs)
        _SEEN.append((f"response {response.request.path}", response.get_data(as_text=True)))
        return response

    werkzeug.test.Client.open = recording_open


def pytest_sessionfinish(session) -> None:
    texts = list(_SEEN)
    for path in SERVER_LOGS:
        if path.exists():
            texts.append((f"server log {path.name}", path.read_text(errors="replace")))
    secrets = (*SECRETS, *RUNTIME_SECRETS)
    leaks = [(where, secret) for where, text in texts for secret in secrets if secret in text]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if leaks:
        for where, secret in leaks[:20]:
            reporter.write_line(f"SECRET LEAKED in {where}: {secret[:4]}…", red=True)
        session.exitstatus = 1
    elif reporter is not None:
        reporter.write_line(f"secrets scan: {len(texts)} response bodies, log lines and server logs, none leaked")
