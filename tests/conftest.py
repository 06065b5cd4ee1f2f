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

from signer.app import create_app  # noqa: E402
from signer.config import load_config  # noqa: E402

ACCESS_KEY = "AKIDEXAMPLE12345"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
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


@pytest.fixture
def client(make_client):
    return make_client()


def bearer(token: str = ALICE_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
