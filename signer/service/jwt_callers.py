"""Bearer JWTs from the app's own OIDC issuer: the fourth kind of caller (issue #27).

PyJWT verifies; this module decides only what PyJWT is given. The algorithm comes from
SIGNER_JWT_ALGORITHMS, never from the token (its ``alg`` must merely be one of them, and the key
is chosen for that algorithm: an RSA public key is never an HMAC secret); ``kid`` is only a
lookup key into the issuer's key set; ``exp`` is required; ``jku``, ``x5u``, ``jwk`` and ``x5c``
headers (a token naming its own key) are refused, never fetched. A refusal says which check
failed (``token_expired``, ``token_audience``, ...) and nothing of the keys.

The key set (:class:`KeySet`) is fetched from SIGNER_JWT_JWKS_URL or the issuer's discovery
document, over https (http only to loopback), and cached: an unknown ``kid`` refetches at most
once per :data:`REFETCH_AFTER` seconds, so a flood of made-up kids costs the issuer nothing; when
a fetch fails, the last good keys keep working and :meth:`KeySet.status` says so (``/readyz``,
``check-config``); a rotated key is picked up on first sight, without a restart.

One issuer today. Several later would be a tuple of :class:`Issuer`, chosen by the token's
unverified ``iss`` and then verified by that issuer alone: nothing here assumes there is one.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from jwt import PyJWK

from .errors import Unauthenticated, Unavailable
from .jwt_settings import ASYMMETRIC, HMAC, Issuer, key_url_allowed

REFETCH_AFTER = 30.0
"""Seconds between two fetches of the key set caused by tokens (unknown kids, stale keys)."""
MAX_AGE = 600.0
"""Keys older than this are refetched beside the next token, so a key the issuer removed stops working."""
WAIT_FOR_FETCH = 1.0
"""How long a token waits for a fetch another request started: a hung issuer and a flood of
unknown kids must not hold every worker thread for the fetch's whole timeout."""
MAX_DOCUMENT = 256 * 1024
SELF_KEYED = ("jku", "x5u", "jwk", "x5c")
"""Headers by which a token names its own key: trusting them lets anyone sign."""
_IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@|:-]{0,63}")
"""A gateway user's alphabet (rules.IDENTITY) plus ``|`` and ``:``, which Auth0 puts in ``sub``
(``auth0|64f...``): never ``/``, a control character, a space or more than 64 bytes."""


@dataclass(frozen=True)
class KeyStatus:
    """What /readyz and check-config say of the key set: never a key."""

    issuer: str
    keys: int
    fetched_at: datetime | None
    error: str | None
    """The last fetch's failure (None once a fetch succeeds again)."""

    @property
    def state(self) -> str:
        """``fresh``, ``stale`` (last good keys in use, the issuer unreachable) or ``none``."""
        if self.fetched_at is None:
            return "none"
        return "stale" if self.error else "fresh"


class KeyFetchError(Exception):
    """The key set could not be fetched or read; the message names the step, never a key."""


Fetch = Callable[[str, float], object]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None  # a 3xx is an error: a key URL is configured exactly, not followed elsewhere


class _Deadline(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    """Keeps the sockets a fetch opens, so :meth:`cut` can shut them at the fetch's deadline: a
    socket timeout bounds each read, and an issuer sending a byte at a time would never reach it."""

    def __init__(self) -> None:
        super().__init__()
        self.tls = ssl.create_default_context()  # urllib's own default: certificates and host names checked
        self.sockets: list[socket.socket] = []
        self.was_cut = False

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._kept(http.client.HTTPConnection), req)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._kept(http.client.HTTPSConnection), req, context=self.tls)

    def _kept(self, base: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
        handler = self

        class Kept(base):  # type: ignore[valid-type,misc]
            def connect(self) -> None:
                super().connect()
                handler.sockets.append(self.sock)
                if handler.was_cut:  # the deadline passed while connecting
                    handler.cut()

        return Kept

    def cut(self) -> None:
        self.was_cut = True
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def fetch_json(url: str, timeout: float) -> object:
    """GET ``url`` as JSON: https or loopback only, no redirects, at most 256 KiB, all of it within
    ``timeout`` seconds."""
    if not key_url_allowed(url):
        raise KeyFetchError(f"{url} is neither https nor loopback http")
    deadline = _Deadline()
    opener = urllib.request.build_opener(_NoRedirects(), deadline)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - scheme checked above
    timer = threading.Timer(timeout, deadline.cut)
    timer.daemon = True
    timer.start()
    try:
        with opener.open(request, timeout=timeout) as answer:
            body = answer.read(MAX_DOCUMENT + 1)
    except Exception as exc:  # noqa: BLE001 - any failure to fetch is one kind: unreachable
        if deadline.was_cut:
            raise KeyFetchError(f"{url} timed out: no whole answer within {timeout:g} s") from None
        raise KeyFetchError(f"{url} could not be fetched ({type(exc).__name__}: {exc})") from None
    finally:
        timer.cancel()
    if deadline.was_cut:
        raise KeyFetchError(f"{url} timed out: no whole answer within {timeout:g} s")
    if len(body) > MAX_DOCUMENT:
        raise KeyFetchError(f"{url} answered more than {MAX_DOCUMENT} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise KeyFetchError(f"{url} did not answer JSON") from None


class KeySet:
    """The issuer's signing keys, cached; thread-safe (gunicorn's threads share one)."""

    def __init__(self, issuer: Issuer, fetch: Fetch = fetch_json, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.issuer = issuer
        self._fetch = fetch
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched: float | None = None
        self._fetched_at: datetime | None = None
        self._tried: float | None = None
        self._error: str | None = None
        self.fetches = 0
        """How many fetches were tried (tests count them)."""

    def key(self, kid: str | None, algorithm: str) -> PyJWK:
        """The key ``kid`` names, for ``algorithm``; without a kid, the only key there is.
        An unknown kid refetches, and waits for it, if no fetch was tried in the last
        :data:`REFETCH_AFTER` seconds; keys older than :data:`MAX_AGE` are refetched beside the
        request, which its known key serves (a hung issuer never holds a request up)."""
        jwk = self._lookup(kid)
        if jwk is None:
            self.refresh(force=False)
            jwk = self._lookup(kid)
        elif self._fetched is not None and self._clock() - self._fetched > MAX_AGE:
            self.refresh_soon()
        if jwk is None:
            if self._fetched is None:
                raise Unavailable("token_keys_unavailable", "the issuer's keys could not be fetched; retry later")
            raise Unauthenticated("token_unknown_key", "the token is signed by a key the issuer does not list")
        declared = jwk.get("alg")
        if declared is not None and declared != algorithm:
            raise Unauthenticated("token_algorithm", "the token's algorithm is not its key's")
        try:
            return PyJWK(jwk, algorithm=algorithm)
        except jwt.PyJWTError:  # e.g. an EC key for RS256: the kid points at a key of another kind
            raise Unauthenticated("token_algorithm", "the token's algorithm does not fit its key") from None

    def refresh_soon(self) -> None:
        """Refetch in a thread of its own, unless a fetch was tried in the last REFETCH_AFTER seconds."""
        if self._tried is None or self._clock() - self._tried >= REFETCH_AFTER:
            threading.Thread(target=self.refresh, kwargs={"force": False}, name="jwt-keys", daemon=True).start()

    def _lookup(self, kid: str | None) -> dict[str, Any] | None:
        keys = self._keys
        if kid is None:
            return next(iter(keys.values())) if len(keys) == 1 else None
        return keys.get(kid)

    def refresh(self, force: bool = True) -> bool:
        """Fetch the key set now (``force``) or if none was tried for REFETCH_AFTER seconds.
        On failure the last good keys stay. True when this call fetched successfully. Unforced,
        a fetch in progress elsewhere is waited for at most :data:`WAIT_FOR_FETCH` seconds."""
        if not self._lock.acquire(timeout=-1 if force else WAIT_FOR_FETCH):
            return False
        try:
            now = self._clock()
            if not force and self._tried is not None and now - self._tried < REFETCH_AFTER:
                return False
            self._tried = now
            self.fetches += 1
            try:
                keys = self._read()
            except KeyFetchError as exc:
                self._error = str(exc)
                return False
            self._keys, self._fetched, self._fetched_at, self._error = keys, now, self._wall(), None
            return True
        finally:
            self._lock.release()

    def _read(self) -> dict[str, dict[str, Any]]:
        url = self.issuer.jwks_url or self._discover()
        document = self._fetch(url, self.issuer.timeout)
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            if isinstance(document, dict) and document and all(
                    isinstance(v, str) and "BEGIN CERTIFICATE" in v for v in document.values()):
                raise KeyFetchError(f"{url} serves X.509 certificates, not a JWK set: use the issuer's JWKS URL "
                                    "(for Firebase, .../service_accounts/v1/jwk/securetoken@system.gserviceaccount.com)")
            raise KeyFetchError(f"{url} is not a JWK set ({{\"keys\": [...]}})")
        keys: dict[str, dict[str, Any]] = {}
        for number, jwk in enumerate(document["keys"]):
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig" or jwk.get("kty") not in ("RSA", "EC", "OKP"):
                continue  # encryption keys and symmetric keys are never signing keys here
            keys[str(jwk.get("kid", f"#{number}"))] = jwk
        if not keys:
            raise KeyFetchError(f"{url} lists no signing keys")
        return keys

    def _discover(self) -> str:
        url = self.issuer.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = self._fetch(url, self.issuer.timeout)
        if not isinstance(document, dict) or not isinstance(document.get("jwks_uri"), str):
            raise KeyFetchError(f"{url} has no jwks_uri")
        named = document.get("issuer")
        if named != self.issuer.issuer:  # OpenID Connect Discovery 1.0, section 4.3: exactly, a trailing slash too
            raise KeyFetchError(f"{url} names the issuer {str(named)[:200]!r}, not SIGNER_JWT_ISSUER {self.issuer.issuer!r}")
        jwks_uri: str = document["jwks_uri"]
        if not key_url_allowed(jwks_uri):
            raise KeyFetchError(f"{url} names a jwks_uri that is neither https nor loopback http")
        return jwks_uri

    def status(self) -> KeyStatus:
        return KeyStatus(self.issuer.issuer, len(self._keys), self._fetched_at, self._error)


_REFUSALS: tuple[tuple[type[Exception], str, str], ...] = (
    (jwt.ExpiredSignatureError, "token_expired", "the token has expired"),
    (jwt.ImmatureSignatureError, "token_not_yet_valid", "the token is not valid yet (nbf or iat in the future)"),
    (jwt.InvalidAudienceError, "token_audience", "the token is not for this audience (aud)"),
    (jwt.InvalidIssuerError, "token_issuer", "the token is from another issuer (iss)"),
    (jwt.InvalidSignatureError, "token_signature", "the token's signature does not verify"),
    (jwt.MissingRequiredClaimError, "token_claims", "the token lacks a required claim (exp, iss, aud)"),
    (jwt.exceptions.InvalidSubjectError, "token_identity", "the token's sub claim is not a string"),
    (jwt.InvalidIssuedAtError, "token_malformed", "the token's iat is not a number"),
    (jwt.exceptions.InvalidJTIError, "token_malformed", "the token's jti is not a string"),
    (jwt.InvalidAlgorithmError, "token_algorithm", "the token's algorithm is not allowed"),
    (jwt.DecodeError, "token_malformed", "the token is not a well-formed JWT"),
)


class Verifier:
    """Checks a bearer JWT and names its caller; one per issuer."""

    def __init__(self, issuer: Issuer, keys: KeySet | None = None) -> None:
        self.issuer = issuer
        self.keys = keys or KeySet(issuer)

    def identity(self, token: str) -> str:
        """The token's identity claim, once every check passed; else :class:`Unauthenticated`."""
        settings = self.issuer
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("token_malformed", "the token is not a well-formed JWT") from None
        if any(name in header for name in SELF_KEYED):
            raise Unauthenticated("token_header", "the token names its own key (jku, x5u, jwk or x5c): never trusted")
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in settings.algorithms:
            raise Unauthenticated("token_algorithm", "the token's algorithm is not one of SIGNER_JWT_ALGORITHMS")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("token_malformed", "the token's kid is not a string")
        if algorithm in HMAC:
            if settings.secret is None:  # config refuses this; fail closed all the same
                raise Unauthenticated("token_algorithm", "no secret is configured for HMAC tokens")
            claims = self._decode(token, settings.secret, algorithm)
        else:
            try:
                claims = self._decode(token, self.keys.key(kid, algorithm), algorithm)
            except Unauthenticated as refused:
                # A token without a kid is checked against the issuer's only key; after a rotation that
                # key is another one, which only a refetch (throttled as for unknown kids) can tell.
                if kid is not None or refused.code != "token_signature" or not self.keys.refresh(force=False):
                    raise
                claims = self._decode(token, self.keys.key(kid, algorithm), algorithm)
        return checked_identity(claims.get(settings.identity_claim), settings.identity_claim)

    def _decode(self, token: str, key: PyJWK | bytes, algorithm: str) -> dict[str, Any]:
        settings = self.issuer
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[algorithm], audience=list(settings.audiences), issuer=settings.issuer,
                leeway=settings.leeway, options={"require": ["exp", "iss", "aud"], "verify_signature": True})
        except jwt.PyJWTError as exc:
            for kind, code, message in _REFUSALS:
                if isinstance(exc, kind):
                    raise Unauthenticated(code, message) from None
            raise Unauthenticated("token_invalid", "the token is not valid") from None
        return claims


def checked_identity(value: object, claim: str) -> str:
    """A claim usable as a folder name, or refused: never mapped, cut or escaped into one."""
    if not isinstance(value, str) or not _IDENTITY.fullmatch(value) or ".." in value or value.lower() == "anonymous":
        raise Unauthenticated("token_identity", f"the token's {claim} claim is not a safe identity "
                              "(1-64 letters, digits, '.', '_', '@', '|', ':' or '-', no '..')")
    return value


def probe(verifier: Verifier) -> tuple[bool, str]:
    """Fetch the key set now and say, in one line, whether the issuer is reachable and how many
    keys it lists (``check-config``, ``doctor``). HMAC-only issuers have no key set to fetch."""
    if not ASYMMETRIC & set(verifier.issuer.algorithms):
        return True, f"issuer {verifier.issuer.issuer}: HMAC tokens only (SIGNER_JWT_SECRET), no key set to fetch"
    verifier.keys.refresh()
    status = verifier.keys.status()
    if status.error is not None:
        kept = f"; the last good {status.keys} keys stay in use" if status.state == "stale" else ""
        return False, f"issuer {status.issuer}: keys unreachable: {status.error}{kept}"
    return True, f"issuer {status.issuer}: reachable, {status.keys} signing key{'s' if status.keys != 1 else ''}"
