"""Who is calling: bearer tokens, a trusted gateway's user header, or anonymous mode."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Protocol

from .config import Config
from .errors import Refused
from .networks import is_trusted
from .rules import IDENTITY


class HeaderLookup(Protocol):
    """Anything with ``get`` by header name: a dict, Werkzeug's Headers."""

    def get(self, key: str) -> str | None: ...


ANONYMOUS = "anonymous"  # reserved: no token or gateway user may take this name


@dataclass(frozen=True)
class Caller:
    """``identity`` decides the caller's key prefix; None means the shared prefix."""

    identity: str | None
    via: str  # "token", "gateway" or "anonymous", for the access log


def _matching_token_name(config: Config, presented: bytes) -> str | None:
    """Compare against every configured token in constant time, without stopping early,
    so timing reveals neither which token matched nor how much of one did."""
    found = None
    for name, token in config.api_tokens:
        if hmac.compare_digest(presented, token):
            found = name
    return found


def anonymous_identity(config: Config) -> str | None:
    """Beside named callers an anonymous one gets its own area, or the shared prefix would
    contain every user's folder; alone, it has the shared prefix."""
    return ANONYMOUS if (config.api_tokens or config.user_header) else None


def identify(config: Config, headers: HeaderLookup, remote_addr: str | None) -> Caller:
    """Authenticate a request. The gateway's user header counts only when the TCP peer
    is a trusted proxy; from anyone else it is ignored, never trusted."""
    if config.user_header and is_trusted(remote_addr, config.trusted_proxies):
        user = headers.get(config.user_header)
        if user is not None:
            if not IDENTITY.fullmatch(user) or user == ANONYMOUS:
                raise Refused("unauthorized", f"{config.user_header} must be 1-64 letters, digits, '.', '_', '@' or '-'")
            return Caller(user, "gateway")

    authorization = headers.get("Authorization") or ""
    if authorization:
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise Refused("unauthorized", "Authorization must be 'Bearer <token>'")
        name = _matching_token_name(config, presented.strip().encode("utf-8", "replace"))
        if name is None:
            raise Refused("unauthorized", "the bearer token is not valid")
        return Caller(name, "token")

    if config.allow_anonymous:
        return Caller(anonymous_identity(config), "anonymous")
    raise Refused("unauthorized", "authentication required: send 'Authorization: Bearer <token>'")
