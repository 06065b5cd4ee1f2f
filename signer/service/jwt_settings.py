"""The settings of a trusted JWT issuer (SIGNER_JWT_ISSUER and its settings), standard library only: the configuration
reads them without loading PyJWT, which only the service needs (signer/service/jwt_callers.py)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

HMAC = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})
MAX_TOKEN = 16 * 1024
"""What the front admits of the headers (web/front.py HEADERS_LIMIT): tokens with many roles or
groups run past 8 KiB."""


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated parts, at most :data:`MAX_TOKEN`: worth handing to the verifier."""
    return token.count(".") == 2 and len(token) <= MAX_TOKEN


def key_url_allowed(url: str) -> bool:
    """https anywhere; http only to loopback (a provider on the same machine, tests)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Issuer:
    """One trusted issuer, as configured (SIGNER_JWT_ISSUER and its settings)."""

    issuer: str
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    jwks_url: str | None = None
    """None: found through ``<issuer>/.well-known/openid-configuration``."""
    identity_claim: str = "sub"
    leeway: int = 60
    secret: bytes | None = field(default=None, repr=False)
    """SIGNER_JWT_SECRET: the HMAC key, only when an HS* algorithm is configured."""
    timeout: float = 5.0
