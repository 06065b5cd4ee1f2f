"""Who is calling: bearer tokens, a trusted gateway's user header, the app's own JWTs, or anonymous visitors.

Each kind of caller has its own namespace under ``SIGNER_KEY_PREFIX``, so no name of one
kind can reach another kind's objects:

* a bearer token named ``webapp`` writes under ``<prefix>webapp/``;
* a gateway user ``webapp`` writes under ``<prefix>user/webapp/``;
* a user of the app's login, whose bearer JWT from SIGNER_JWT_ISSUER names ``webapp``
  (:mod:`signer.service.jwt_callers`), writes there too: both are the app's users;
* an anonymous visitor writes under ``<prefix>anonymous/<random id>/``, its id carried in a
  signed cookie (:class:`VisitorCookies`).

Token names ``user`` and ``anonymous`` are reserved (in any letter case) so a token's folder
can never be one of the other namespaces.
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import NamedTuple, Protocol

from itsdangerous import BadSignature, Signer

from .config import Config
from .errors import Unauthenticated
from .jwt_settings import looks_like_jwt
from .networks import is_trusted
from .rules import ANONYMOUS, GATEWAY_FOLDER, IDENTITY


class HeaderLookup(Protocol):
    """Anything with ``get`` by header name: a dict, Werkzeug's Headers."""

    def get(self, key: str) -> str | None: ...


VISITOR_COOKIE = "signer_visitor"
VISITOR_COOKIE_MAX_AGE = 365 * 24 * 3600
_VISITOR_ID = re.compile(r"[A-Za-z0-9_-]{22}")


class Caller(NamedTuple):
    """``identity`` names the caller (logs, /v1/whoami); ``folder`` is the part of its key
    prefix after ``SIGNER_KEY_PREFIX``. ``new_cookie``, for a visitor without a valid cookie,
    is the signed cookie value the web layer must send back. (A NamedTuple: one per request,
    at a fraction of a frozen dataclass's cost.)"""

    identity: str
    via: str  # "token", "gateway", "jwt" or "anonymous", for the access log
    folder: str
    new_cookie: str | None = None



class VisitorCookies:
    """An anonymous visitor's id, signed with the service's cookie secret (itsdangerous):
    a visitor can keep its id but never choose another visitor's."""

    def __init__(self, secret: bytes) -> None:
        self._signer = Signer(secret, salt="sigv4-signer anonymous visitor")

    def read(self, value: str | None) -> str | None:
        """The visitor id in a cookie value, or None when absent, forged or malformed."""
        if not value or len(value) > 200:
            return None
        try:
            visitor = self._signer.unsign(value.encode("ascii")).decode("ascii")
        except (BadSignature, UnicodeError):
            return None
        return visitor if _VISITOR_ID.fullmatch(visitor) else None

    def issue(self) -> tuple[str, str]:
        """A fresh random id (128 bits) and its signed cookie value."""
        visitor = secrets.token_urlsafe(16)
        return visitor, self._signer.sign(visitor.encode("ascii")).decode("ascii")


def anonymous_caller(config: Config, cookie: str | None) -> Caller:
    """The visitor named by a valid cookie, or a new visitor with a cookie to set."""
    cookies = VisitorCookies(config.cookie_secret)
    visitor, new_cookie = cookies.read(cookie), None
    if visitor is None:
        visitor, new_cookie = cookies.issue()
    return Caller(f"anon-{visitor}", "anonymous", f"{ANONYMOUS}/{visitor}", new_cookie)


def _matching_token_name(config: Config, presented: bytes) -> str | None:
    """Compare against every configured token in constant time, without stopping early,
    so timing reveals neither which token matched nor how much of one did."""
    found = None
    for name, token in config.api_tokens:
        if hmac.compare_digest(presented, token):
            found = name
    return found


def identify(config: Config, headers: HeaderLookup, remote_addr: str | None, cookie: str | None = None) -> Caller:
    """Authenticate a request. The gateway's user header counts only when the TCP peer
    is a trusted proxy; from anyone else it is ignored, never trusted. When a trusted
    gateway names a user, that user wins and an Authorization header is not looked at
    (gateways often forward their own). A bearer token that is no configured API token is
    tried as a JWT of SIGNER_JWT_ISSUER. ``cookie`` is the visitor cookie's raw value."""
    if config.user_header and is_trusted(remote_addr, config.trusted_proxies):
        user = headers.get(config.user_header)
        if user is not None:
            if not IDENTITY.fullmatch(user) or user.lower() == ANONYMOUS:
                raise Unauthenticated("unauthorized",
                              f"{config.user_header} must be 1-64 letters, digits, '.', '_', '@' or '-'")
            return Caller(user, "gateway", f"{GATEWAY_FOLDER}/{user}")

    authorization = headers.get("Authorization") or ""
    if authorization:
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise Unauthenticated("unauthorized", "Authorization must be 'Bearer <token>'")
        presented = presented.strip()
        name = _matching_token_name(config, presented.encode("utf-8", "replace"))
        if name is not None:
            return Caller(name, "token", name)
        if config.jwt is not None and looks_like_jwt(presented):
            user = config.jwt.identity(presented)
            return Caller(user, "jwt", f"{GATEWAY_FOLDER}/{user}")
        raise Unauthenticated("unauthorized", "the bearer token is not valid")

    if config.allow_anonymous:
        return anonymous_caller(config, cookie)
    raise Unauthenticated("unauthorized", "authentication required: send 'Authorization: Bearer <token>'")
